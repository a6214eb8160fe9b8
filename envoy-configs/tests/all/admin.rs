//! Envoy's admin interface is out of the apps' reach (issue 26, finding 4): by default a Unix
//! socket of mode 0600 that only Envoy's user and root can open, no TCP admin port, and a
//! stats listener that serves `GET /stats/prometheus` and `GET /ready` and nothing else;
//! `--admin ADDR:PORT` still gives a TCP admin when a user asks for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use support::{
    docs, http_request, http_service, mesh, test_dir, AdminAt, Sidecar, UpstreamBuilder,
};

/// A uid that is neither root nor Envoy's (the tests run Envoy as root).
const OTHER_UID: u32 = 5679;

/// The TCP ports the process `pid` listens on, from `/proc` (its sockets' inodes in
/// `/proc/net/tcp{,6}` with state LISTEN).
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if *state == "0A" && inodes.contains(*inode) {
                let port = local.rsplit(':').next().unwrap();
                ports.insert(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

fn start(extra: &[&str]) -> (tempfile::TempDir, support::Upstream, Sidecar) {
    let dir = test_dir();
    let up = UpstreamBuilder::new().plain("plain").start(dir.path());
    let resources = docs(&[
        mesh(false),
        http_service("plain", &format!("plain.test:{}", up.port("plain"))),
    ]);
    let extra: Vec<_> = extra.iter().map(Into::into).collect();
    let s = Sidecar::start(dir.path(), up.dns_addr(), &resources, &extra);
    (dir, up, s)
}

#[test]
fn by_default_the_admin_is_a_unix_socket_only_envoys_user_and_root_can_open() {
    let (dir, _up, s) = start(&[]);
    let socket = dir.path().join("envoy.admin.sock");
    assert_eq!(s.envoy.admin, Some(AdminAt::Unix(socket.clone())));
    let meta = fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket(), "{meta:?}");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "srw-------");
    // Envoy runs as root here: its user owns the socket.
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert_eq!(s.envoy.admin_get("/ready").unwrap(), (200, "LIVE\n".into()));

    // Another uid (an app) cannot connect, though it may reach the directory; root can.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let curl = |uid: Option<u32>| {
        let mut line: Vec<String> = uid
            .map(|uid| {
                [
                    "setpriv",
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                ]
                .map(String::from)
                .to_vec()
            })
            .unwrap_or_default();
        line.extend(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--unix-socket",
            ]
            .map(String::from),
        );
        line.push(socket.display().to_string());
        line.push("http://localhost/ready".into());
        let out = Command::new(&line[0]).args(&line[1..]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(curl(None), (Some(0), "200".into()));
    // curl's 7: "Failed to connect" (EACCES on the socket).
    assert_eq!(curl(Some(OTHER_UID)), (Some(7), "000".into()));

    // No TCP admin: Envoy listens on its two listeners' ports and on nothing else.
    let listeners = s.envoy.listeners();
    assert_eq!(
        listeners.keys().collect::<Vec<_>>(),
        ["outbound_http", "stats"],
        "{listeners:?}"
    );
    let ports: BTreeSet<u16> = listeners.values().map(SocketAddr::port).collect();
    assert_eq!(listening_ports(s.envoy.pid().unwrap()), ports);
}

#[test]
fn the_stats_listener_serves_prometheus_and_ready_and_nothing_else() {
    let (_dir, _up, s) = start(&[]);
    let stats = SocketAddr::from(([127, 0, 0, 1], s.envoy.listener_port("stats")));
    let at = |method: &str, path: &str| {
        http_request(stats, method, path, Duration::from_secs(5)).unwrap()
    };
    // A refusal, counted: the counter must survive what follows.
    assert_eq!(s.with_host("evil.example", "/").run().status, 403);
    s.denied("undeclared-host", 1);

    let (status, body) = at("GET", "/stats/prometheus");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.lines()
            .any(|l| l == r#"external_service_denied{reason="undeclared-host"} 1"#),
        "{body}"
    );
    assert!(body.lines().any(|l| l == "envoy_server_live{} 1"), "{body}");
    assert_eq!(at("GET", "/stats/prometheus?usedonly").0, 200);
    assert_eq!(at("GET", "/ready"), (200, "LIVE\n".into()));

    for path in [
        "/quitquitquit",
        "/reset_counters",
        "/logging?level=trace",
        "/drain_listeners",
        "/stats",
        "/config_dump",
        "/",
        "/ready/../quitquitquit",
        "/stats/prometheus/../../quitquitquit",
    ] {
        for method in ["GET", "POST"] {
            assert_eq!(at(method, path).0, 404, "{method} {path}");
        }
    }
    for method in ["POST", "PUT", "HEAD", "DELETE"] {
        assert_eq!(at(method, "/stats/prometheus").0, 404, "{method}");
        assert_eq!(at(method, "/ready").0, 404, "{method}");
    }

    // Nothing of it reached the admin: Envoy serves, the counter is whole, the level as it was.
    assert_eq!(s.envoy.admin_get("/ready").unwrap().0, 200);
    s.denied("undeclared-host", 1);
    let (_, logging) = s.envoy.admin_post("/logging").unwrap();
    assert!(!logging.contains(": trace"), "{logging}");
}

#[test]
fn an_admin_address_asked_for_is_a_tcp_admin() {
    // The test kit adds `--stats-listen 127.0.0.1:0`: the stats listener reaches a TCP admin too.
    let admin = format!("127.0.0.1:{}", support::free_port());
    let (dir, _up, s) = start(&["--admin", &admin]);
    assert_eq!(s.envoy.admin, Some(AdminAt::Tcp(admin.parse().unwrap())));
    assert_eq!(s.envoy.admin_get("/ready").unwrap(), (200, "LIVE\n".into()));
    let port = admin.rsplit(':').next().unwrap().parse().unwrap();
    assert!(listening_ports(s.envoy.pid().unwrap()).contains(&port));
    assert!(!dir.path().join("envoy.admin.sock").exists());
    let stats = SocketAddr::from(([127, 0, 0, 1], s.envoy.listener_port("stats")));
    let ready = http_request(stats, "GET", "/ready", Duration::from_secs(5)).unwrap();
    assert_eq!(ready, (200, "LIVE\n".into()));
    assert_eq!(
        http_request(stats, "POST", "/quitquitquit", Duration::from_secs(5))
            .unwrap()
            .0,
        404
    );

    // Without --stats-listen, a TCP admin gets no stats listener (it would be the same thing);
    // a Unix one gets it on 127.0.0.1:9901.
    let generate = |admin: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "generate".into(),
            dir.path().join("resources.yaml").into(),
            "--format".into(),
            "json".into(),
            "--wasm".into(),
            support::wasm_module().into(),
        ];
        args.extend(admin.iter().map(Into::into));
        support::extsvc(dir.path(), &args)
    };
    let stats_listeners = |admin: &[&str]| -> Vec<serde_json::Value> {
        let cli = generate(admin);
        assert_eq!(cli.code, Some(0), "{cli:?}");
        let config: serde_json::Value = serde_json::from_str(&cli.stdout).unwrap();
        config["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["name"] == "stats")
            .map(|l| l["address"].clone())
            .collect()
    };
    assert_eq!(
        stats_listeners(&["--admin", "127.0.0.1:9901"]),
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        stats_listeners(&[]),
        [serde_json::json!({"socket_address": {"address": "127.0.0.1", "port_value": 9901}})]
    );
    // The stats listener connects to the admin's address: port 0 is none.
    let cli = generate(&["--admin", "127.0.0.1:0", "--stats-listen", "127.0.0.1:0"]);
    assert_eq!(cli.code, Some(2), "{cli:?}");
    assert!(
        cli.stderr.contains("--admin 127.0.0.1:0 has no fixed port"),
        "{}",
        cli.stderr
    );
}

#[test]
fn with_an_xds_dir_the_stats_listener_stays_in_the_bootstrap() {
    // Relative to the directory extsvc runs in, the test's.
    let (dir, _up, s) = start(&["--xds-dir", "xds"]);
    // Static, with the admin: the listener files (what a live update rewrites) do not have it.
    let lds = fs::read_to_string(dir.path().join("xds/lds.yaml")).unwrap();
    assert!(!lds.contains("/stats/prometheus"), "{lds}");
    let stats = SocketAddr::from(([127, 0, 0, 1], s.envoy.listener_port("stats")));
    let at = |method: &str, path: &str| {
        http_request(stats, method, path, Duration::from_secs(5)).unwrap()
    };
    assert_eq!(at("GET", "/ready"), (200, "LIVE\n".into()));
    assert_eq!(at("GET", "/stats/prometheus").0, 200);
    assert_eq!(at("POST", "/quitquitquit").0, 404);
}
