//! The transparent proxy end to end, in network namespaces the tests make: an app namespace
//! with Envoy (as its own uid) and `extsvc transparent-proxy install`'s rules, and a "world"
//! namespace with the outside servers (HTTPS, HTTP, TLS, TCP echo, UDP, DNS, IPv6) behind the
//! app's default route. The app uses no proxy settings: names resolve through the builtin
//! DNS, connections are captured.
//!
//! These tests need root (CI runs as root); without it they fail and say so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use extsvc::generate::transparent::{first_choice, Cidr, Cidr6, DEFAULT_VIP_CIDR6};
use extsvc_testkit::netns::{Netns, Topology, WORLD_IP, WORLD_IP6};
use extsvc_testkit::sidecar::{extsvc_binary, generate};
use extsvc_testkit::transparent::{install_args, world_addr as world, ENVOY_UID};
use extsvc_testkit::{
    ca_file, docs, eventually, http_service, https_service, mesh, tcp_service, test_dir, Ca, Curl,
    Envoy, EnvoyOptions, Response, Upstream, UpstreamBuilder,
};

use crate::live::{self, Stream};

const UDP_PORT: u16 = 9999;
/// `generate`'s default `--dns-listen`.
const DNS_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 15053);

/// The app's namespace with Envoy and the rules, and the world with its servers.
pub struct World {
    // Dropped in this order: the processes, then the namespaces, then the files.
    pub sidecar: Envoy,
    pub upstream: Upstream,
    /// A UDP socket in the world: what an app's datagram would reach.
    pub udp: UdpSocket,
    pub topology: Topology,
    pub ca: Ca,
    /// What `generate` was given beyond the resources.
    generate_args: Vec<OsString>,
    /// Envoy's configuration and logs, kept until the processes are gone.
    dir: tempfile::TempDir,
}

/// The services every world starts with (the `ca` signed httpbin's certificate).
fn services(passthrough: bool, ca: &Ca) -> Vec<String> {
    vec![
        mesh(passthrough),
        https_service("httpbin", "http", "httpbin.test:8443", &[ca_file(ca)]),
        http_service("plainweb", "plain.test:8080"),
        tcp_service("secure", "secure.test:9443", &[]),
    ]
}

impl World {
    /// `block_uncaptured`: install with `--block-uncaptured` (what the capture does not take is
    /// rejected, IPv4 and IPv6).
    pub fn start(passthrough: bool, block_uncaptured: bool) -> World {
        World::start_with(block_uncaptured, &[], |ca| docs(&services(passthrough, ca)))
    }

    /// A world whose Envoy is generated from `resources(ca)` with `extra` arguments to
    /// `generate` (which [`World::update`] passes again).
    fn start_with(
        block_uncaptured: bool,
        extra: &[OsString],
        resources: impl FnOnce(&Ca) -> String,
    ) -> World {
        let dir = test_dir();
        let ca = Ca::new(dir.path(), "ca");
        let httpbin = ca.server_cert(dir.path(), "httpbin", &["httpbin.test"], &[]);
        let secure = ca.server_cert(dir.path(), "secure", &["secure.test"], &[]);
        let mut builder = UpstreamBuilder::new()
            .tls("httpbin", &httpbin)
            .at(world(8443))
            .plain("plainweb")
            .at(world(8080))
            .tls("secure", &secure)
            .at(world(9443))
            .plain("undeclared")
            .at(world(8081))
            .plain("added")
            .at(world(8083))
            .plain("another")
            .at(world(8084))
            .plain("ipv6")
            .at(SocketAddr::from((WORLD_IP6, 8082)))
            .plain("undeclared6")
            .at(SocketAddr::from((WORLD_IP6, 8085)))
            .tcp("raw")
            .at(world(7000))
            .dns_at(world(53));
        for name in [
            "httpbin.test",
            "plain.test",
            "secure.test",
            "other.test",
            "added.test",
            "another.test",
            "api.allowed.test",
            "web.allowed.test",
        ] {
            builder = builder.dns(name, &[WORLD_IP.into()]);
        }
        let net = extsvc_testkit::transparent::World::create(dir.path(), None, builder)
            .unwrap_or_else(|e| {
                panic!(
                    "the transparent proxy's tests make network namespaces, which needs root \
                     (CI runs as root): {e}"
                )
            });
        let udp = net
            .topology
            .world
            .run(|| UdpSocket::bind(world(UDP_PORT)))
            .unwrap();

        let mut generate_args = vec!["--transparent-proxy".into()];
        generate_args.extend_from_slice(extra);
        let generated = generate(
            dir.path(),
            &resources(&ca),
            15001,
            Some(world(53)),
            &generate_args,
        );
        assert_eq!(generated.code, Some(0), "{}", generated.stderr);
        assert!(
            !generated.stderr.contains("no listener reaches it"),
            "every service has VIP listeners: {}",
            generated.stderr
        );
        let config = dir.path().join("envoy.yaml");

        let mut install = vec!["--redirect-dns"];
        if block_uncaptured {
            install.push("--block-uncaptured");
        }
        net.install(&install).unwrap_or_else(|e| panic!("{e}"));

        let sidecar = net
            .start_envoy(dir.path(), "sidecar", &config, &EnvoyOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let extsvc_testkit::transparent::World { upstream, topology } = net;
        World {
            sidecar,
            upstream,
            udp,
            topology,
            ca,
            generate_args,
            dir,
        }
    }

    /// Runs `generate` again with `resources` (and the arguments it started with), as a user
    /// does after an edit.
    fn update(&self, resources: &[String]) {
        let generated = generate(
            self.dir.path(),
            &docs(resources),
            15001,
            Some(world(53)),
            &self.generate_args,
        );
        assert_eq!(generated.code, Some(0), "{}", generated.stderr);
    }

    pub fn app(&self) -> &Netns {
        &self.topology.app
    }

    /// A GET from the app, with no proxy settings.
    pub fn curl(&self, url: &str) -> Curl {
        Curl::get(url)
            .in_netns(&self.topology.app.name)
            .timeout(Duration::from_secs(15))
    }

    /// A world server's counter (read inside the world).
    pub fn world_stat(&self, name: &str) -> u64 {
        self.topology
            .world
            .run(|| self.upstream.envoy.stat(name))
            .unwrap_or_else(|| panic!("the world's Envoy has no stat {name}"))
    }

    pub fn sidecar_counter(&self, name: &str) -> u64 {
        self.topology.app.run(|| self.sidecar.counter(name))
    }

    /// The first IPv4 address the app's resolver gives for `name`.
    pub fn resolve(&self, name: &str) -> Option<Ipv4Addr> {
        let out = self.app().output("getent", &["ahostsv4", name]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|ip| ip.parse().ok())
    }

    /// What a raw TCP connection from the app to `host:port` gets back after sending `bytes`
    /// (`printf` escapes), within 3 s.
    pub fn tcp_exchange(&self, host: &str, port: u16, bytes: &str) -> String {
        let script = format!(
            "exec 3<>/dev/tcp/{host}/{port} || exit 0; printf '{bytes}' >&3; timeout 3 cat <&3"
        );
        let out = self.app().output("timeout", &["10", "bash", "-c", &script]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What 50 queries for `name` to the builtin DNS got: every distinct answer.
    fn dns_answers(&self, name: &str) -> BTreeSet<Option<Ipv4Addr>> {
        self.app().run(|| {
            (0..50)
                .map(|_| dns_a(DNS_LISTEN, name, Duration::from_secs(5)).unwrap())
                .collect()
        })
    }

    /// Whether a ping from the app to the world is answered (two echo requests, 2 s each).
    fn ping_answered(&self) -> bool {
        let ip = WORLD_IP.to_string();
        let out = self
            .app()
            .output("ping", &["-n", "-c", "2", "-W", "2", &ip]);
        out.status.success()
    }

    /// How many ICMP echo requests the world has received (its `/proc/net/snmp`).
    fn world_echo_requests(&self) -> u64 {
        let out = self.topology.world.output("cat", &["/proc/net/snmp"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
        let at = names
            .split_whitespace()
            .position(|n| n == "InEchos")
            .unwrap_or_else(|| panic!("no InEchos in {names}"));
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    }

    /// Sends one datagram from the app to the world's UDP socket; whether it arrived.
    pub fn udp_arrives(&self) -> bool {
        let script = format!("echo datagram > /dev/udp/{WORLD_IP}/{UDP_PORT}");
        let _ = self.app().output("bash", &["-c", &script]);
        self.udp
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut buf = [0u8; 64];
        self.udp.recv(&mut buf).is_ok()
    }
}

fn run_ok(ns: &Netns, args: &[String]) -> String {
    let out = ns
        .command(extsvc_binary().to_str().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "extsvc {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_from(r: &Response, upstream: &str) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-upstream-name"), Some(upstream), "{r:?}");
}

fn in_vip_range(ip: Ipv4Addr) -> bool {
    ip.octets()[0] >= 240
}

#[test]
fn declared_services_by_mesh_name_and_real_name_and_nothing_else_gets_out() {
    let w = World::start(false, true);

    // Names resolve to VIPs in 240.0.0.0/4; others to their real address.
    for name in [
        "httpbin.mesh",
        "httpbin.test",
        "plainweb.mesh",
        "secure.test",
    ] {
        let ip = w
            .resolve(name)
            .unwrap_or_else(|| panic!("{name} does not resolve"));
        assert!(in_vip_range(ip), "{name} -> {ip}");
    }
    assert_ne!(w.resolve("httpbin.mesh"), w.resolve("httpbin.test"));
    // Passthrough off: an undeclared name does not resolve (see
    // `undeclared_names_get_nxdomain_and_never_reach_the_worlds_resolver`).
    assert_eq!(w.resolve("other.test"), None);

    // `.mesh` on 80 and on the service's port, and the real name: plain HTTP from the app,
    // TLS from Envoy.
    for url in [
        "http://httpbin.mesh/get",
        "http://httpbin.mesh:8443/get",
        "http://httpbin.test:8443/get",
    ] {
        let r = w.curl(url).run();
        assert_from(&r, "httpbin");
        assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"), "{url}");
        assert_eq!(r.header("x-seen-host"), Some("httpbin.test:8443"), "{url}");
    }
    assert_from(&w.curl("http://plain.test:8080/").run(), "plainweb");
    assert_from(&w.curl("http://plainweb.mesh/").run(), "plainweb");

    // A tcp service carries the app's own TLS end to end.
    let r = w
        .curl("https://secure.test:9443/")
        .cacert(w.ca.ca_path())
        .run();
    assert_from(&r, "secure");
    assert_eq!(r.header("x-seen-sni"), Some("secure.test"));

    // Passthrough off: an undeclared IP, an undeclared name, raw TCP, UDP and IPv6 get
    // nothing, and the world's servers see nothing.
    assert!(w.curl(&format!("http://{WORLD_IP}:8081/")).send().is_err());
    // The name does not resolve (NXDOMAIN); its address, asked for directly, is refused.
    assert!(w.curl("http://other.test:8081/").send().is_err());
    assert!(w.curl(&format!("http://{WORLD_IP}:8084/")).send().is_err());
    assert_eq!(w.tcp_exchange(&WORLD_IP.to_string(), 7000, "ping\\n"), "");
    assert!(!w.udp_arrives(), "a datagram got out");
    assert!(w
        .curl(&format!("http://[{WORLD_IP6}]:8082/"))
        .connect_timeout(Duration::from_secs(3))
        .send()
        .is_err());
    assert_eq!(w.world_stat("http.undeclared.downstream_cx_total"), 0);
    assert_eq!(w.world_stat("http.another.downstream_cx_total"), 0);
    assert_eq!(w.world_stat("http.ipv6.downstream_cx_total"), 0);
    assert_eq!(
        w.world_stat("listener.10.77.0.2_7000.downstream_cx_total"),
        0
    );

    // Each refusal is counted and logged with the destination the app asked for.
    let line = w.sidecar.wait_for_stdout(
        &format!("\"original_destination\":\"{WORLD_IP}:8081\""),
        Duration::from_secs(10),
    );
    assert!(
        line.contains("\"denied\":\"undeclared-destination\""),
        "{line}"
    );
    w.sidecar
        .wait_for_stdout(&format!("{WORLD_IP}:7000"), Duration::from_secs(10));
    assert!(w.sidecar_counter("cluster.refused.upstream_cx_none_healthy") >= 3);

    // Envoy's own connections and DNS queries (its uid) went out uncaptured.
    let rules = w.app().output(
        "iptables",
        &["-t", "nat", "-L", "EXTSVC_OUTPUT", "-v", "-x", "-n"],
    );
    let rules = String::from_utf8_lossy(&rules.stdout);
    let envoy_packets: u64 = rules
        .lines()
        .find(|l| l.contains(&format!("owner UID match {ENVOY_UID}")))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no uid rule in\n{rules}"));
    assert!(envoy_packets > 0, "{rules}");
}

/// Loopback is not captured, so every app could use a TCP admin: the admin is a Unix socket
/// of Envoy's uid, mode 0600, that an app's uid cannot open, and what loopback offers is the
/// stats listener, which stops nothing.
#[test]
fn the_apps_cannot_reach_the_admin() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let w = World::start(false, false);
    let socket = w.dir.path().join("envoy.admin.sock");
    let meta = fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket(), "{meta:?}");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), ENVOY_UID);

    let as_app = |args: &[&str]| {
        let out = w
            .app()
            .command("setpriv")
            .args([
                "--reuid=1000",
                "--regid=1000",
                "--clear-groups",
                "curl",
                "-s",
            ])
            .args(["-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let socket = socket.display().to_string();
    let quit = [
        "-X",
        "POST",
        "--unix-socket",
        &socket,
        "http://localhost/quitquitquit",
    ];
    // curl's 7: it could not connect.
    assert_eq!(as_app(&quit), (Some(7), "000".into()));
    // Nothing listens on the admin's old port; the stats listener refuses.
    assert_eq!(
        as_app(&["-X", "POST", "http://127.0.0.1:9901/quitquitquit"]),
        (Some(7), "000".into())
    );
    let stats = w.app().run(|| w.sidecar.listener_port("stats"));
    for path in ["quitquitquit", "reset_counters"] {
        let url = format!("http://127.0.0.1:{stats}/{path}");
        assert_eq!(
            as_app(&["-X", "POST", &url]),
            (Some(0), "404".into()),
            "{path}"
        );
    }
    let url = format!("http://127.0.0.1:{stats}/stats/prometheus");
    assert_eq!(as_app(&[&url]), (Some(0), "200".into()));
    assert_eq!(
        w.app().run(|| w.sidecar.admin_get("/ready")).unwrap(),
        (200, "LIVE\n".into())
    );
}

/// Passthrough off: the builtin DNS answers the declared names only. Any other name gets
/// NXDOMAIN, counted and logged, and is never asked of a resolver, so a name cannot carry
/// data out: the world's resolver never sees it, not even `other.test`, which it would answer.
#[test]
fn undeclared_names_get_nxdomain_and_never_reach_the_worlds_resolver() {
    let w = World::start(false, true);
    let names = ["c2VjcmV0.exfil.evil.test", "other.test"];
    for name in names {
        let answer = w
            .app()
            .run(|| dns_query(DNS_LISTEN, name, Duration::from_secs(5)))
            .unwrap();
        assert_eq!(answer, (3, None), "{name}");
        // The app's own resolver (UDP 53 to the world, redirected to the builtin DNS).
        assert_eq!(w.resolve(name), None, "{name}");
    }
    let declared = w
        .app()
        .run(|| dns_query(DNS_LISTEN, "httpbin.mesh", Duration::from_secs(5)));
    assert!(
        matches!(declared, Ok((0, Some(ip))) if in_vip_range(ip)),
        "{declared:?}"
    );

    for name in names {
        let line = w.sidecar.wait_for_stdout(
            &format!("\"query_name\":\"{name}\""),
            Duration::from_secs(10),
        );
        assert!(line.contains("\"response_code\":\"3\""), "{line}");
        assert!(line.contains("\"listener\":\"builtin_dns\""), "{line}");
    }
    assert!(w.sidecar_counter("dns_filter.builtin_dns.unanswered_queries") >= 4);
    assert_eq!(
        w.sidecar_counter("dns_filter.builtin_dns.externally_resolved_queries"),
        0
    );
    // The world's resolver logs every query it gets (its own Envoy's names, from Envoy's
    // uid, do reach it).
    let seen = w.topology.world.run(|| w.upstream.envoy.stdout());
    for name in names {
        assert!(
            !seen.contains(name),
            "the world's resolver saw {name}:\n{seen}"
        );
    }
}

#[test]
fn passthrough_on_lets_undeclared_traffic_through() {
    let w = World::start(true, false);
    // An undeclared name is asked of `--dns-resolver`, the world's.
    assert_eq!(w.resolve("other.test"), Some(WORLD_IP));
    assert_from(
        &w.curl(&format!("http://{WORLD_IP}:8081/")).run(),
        "undeclared",
    );
    assert_from(&w.curl("http://other.test:8081/").run(), "undeclared");
    assert_eq!(
        w.tcp_exchange(&WORLD_IP.to_string(), 7000, "ping\\n"),
        "ping\n"
    );
    assert!(
        w.udp_arrives(),
        "without --block-uncaptured UDP goes out as it is"
    );
    let echoes = w.world_echo_requests();
    assert!(
        w.ping_answered(),
        "without --block-uncaptured ICMP goes out as it is"
    );
    assert!(w.world_echo_requests() > echoes);
    assert_from(
        &w.curl(&format!("http://[{WORLD_IP6}]:8082/")).run(),
        "ipv6",
    );
    // Declared services still go through their own listeners.
    assert_from(&w.curl("http://httpbin.mesh/").run(), "httpbin");
    let line = w.sidecar.wait_for_stdout(
        &format!("\"original_destination\":\"{WORLD_IP}:8081\""),
        Duration::from_secs(10),
    );
    assert!(
        line.contains("\"upstream_cluster\":\"passthrough\""),
        "{line}"
    );

    // A connection straight to the capture listener would pass through to itself, over and
    // over: it is refused.
    assert!(w.curl("http://127.0.0.1:15001/").send().is_err());
    let line = w.sidecar.wait_for_stdout(
        "\"original_destination\":\"127.0.0.1:15001\"",
        Duration::from_secs(10),
    );
    assert!(
        line.contains("\"denied\":\"undeclared-destination\""),
        "{line}"
    );
    assert_eq!(
        w.sidecar_counter("cluster.refused.upstream_cx_none_healthy"),
        1
    );
}

/// `--block-uncaptured` rejects ICMP too: a ping from the app gets no answer, and the world
/// receives no echo request (with the rules but not that flag, the ping above is answered).
#[test]
fn icmp_gets_nothing_out_under_block_uncaptured() {
    let w = World::start(false, true);
    let echoes = w.world_echo_requests();
    assert!(!w.ping_answered(), "a ping got an answer");
    assert_eq!(
        w.world_echo_requests(),
        echoes,
        "an echo request reached the world"
    );
}

/// IPv6 TCP is captured as IPv4 is: a declared name resolves (AAAA) to its VIP's IPv6 twin,
/// which serves it; a declared IPv6 address is served through Envoy; an undeclared one gets
/// nothing with passthrough off; and `--block-uncaptured` rejects the rest of IPv6 (UDP,
/// ICMPv6 echo).
#[test]
fn ipv6_is_captured_and_served_as_ipv4_is() {
    let w = World::start_with(true, &[], |ca| {
        let mut resources = services(false, ca);
        // Quoted: `[` opens a YAML list.
        resources.push(http_service("v6web", &format!("\"[{WORLD_IP6}]:8082\"")));
        docs(&resources)
    });
    let out = w.app().output("getent", &["ahostsv6", "httpbin.mesh"]);
    let out = String::from_utf8_lossy(&out.stdout);
    let twin = out.split_whitespace().next().unwrap_or_default();
    let vip4 = w.resolve("httpbin.mesh").unwrap();
    let cidr6: Cidr6 = DEFAULT_VIP_CIDR6.parse().unwrap();
    assert_eq!(twin, cidr6.twin(vip4).to_string(), "{out}");
    // The name on the address its AAAA gave (curl would prefer the A: RFC 6724 ranks IPv4
    // over unique local IPv6), and the twin itself on the service's port.
    let by_name = w
        .curl("http://httpbin.mesh/get")
        .resolve("httpbin.mesh", 80, &format!("[{twin}]"))
        .run();
    let by_address = w.curl(&format!("http://[{twin}]:8443/get")).run();
    for r in [by_name, by_address] {
        assert_from(&r, "httpbin");
        assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"), "{r:?}");
    }
    let line = w.sidecar.wait_for_stdout(
        &format!("\"listener\":\"outbound:[{twin}]:8443\""),
        Duration::from_secs(10),
    );
    assert!(line.contains("\"external_service\":\"httpbin\""), "{line}");

    assert_from(
        &w.curl(&format!("http://[{WORLD_IP6}]:8082/")).run(),
        "ipv6",
    );
    w.sidecar
        .wait_for_stdout("\"external_service\":\"v6web\"", Duration::from_secs(10));

    assert!(w
        .curl(&format!("http://[{WORLD_IP6}]:8085/"))
        .connect_timeout(Duration::from_secs(3))
        .send()
        .is_err());
    let line = w.sidecar.wait_for_stdout(
        &format!("\"original_destination\":\"[{WORLD_IP6}]:8085\""),
        Duration::from_secs(10),
    );
    assert!(
        line.contains("\"denied\":\"undeclared-destination\""),
        "{line}"
    );
    assert_eq!(w.world_stat("http.undeclared6.downstream_cx_total"), 0);

    let udp6 = w
        .topology
        .world
        .run(|| UdpSocket::bind(SocketAddr::from((WORLD_IP6, UDP_PORT))))
        .unwrap();
    udp6.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let script = format!("echo datagram > /dev/udp/{WORLD_IP6}/{UDP_PORT}");
    let _ = w.app().output("bash", &["-c", &script]);
    assert!(
        udp6.recv(&mut [0u8; 64]).is_err(),
        "a datagram got out over IPv6"
    );

    let echoes = world_icmp6_echo_requests(&w);
    let ping = w.app().output(
        "ping",
        &["-6", "-n", "-c", "2", "-W", "2", &WORLD_IP6.to_string()],
    );
    assert!(!ping.status.success(), "an IPv6 ping got an answer");
    assert_eq!(world_icmp6_echo_requests(&w), echoes);
}

/// How many ICMPv6 echo requests the world has received (its `/proc/net/snmp6`).
fn world_icmp6_echo_requests(w: &World) -> u64 {
    let out = w.topology.world.output("cat", &["/proc/net/snmp6"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Icmp6InEchos"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Icmp6InEchos in /proc/net/snmp6")
}

/// Rules as `iptables-save` prints them, without its comments and counters.
fn saved_rules(ns: &Netns) -> String {
    let mut all = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let out = ns.output(tool, &[]);
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = match line.rfind(" [") {
                Some(i) if line.starts_with(':') => &line[..i],
                _ => line,
            };
            all.push_str(line);
            all.push('\n');
        }
    }
    all
}

#[test]
fn uninstall_restores_the_rules_and_dry_run_changes_nothing() {
    let dir = test_dir();
    let ns = Netns::create(&format!("extsvc-rules-{}", std::process::id())).unwrap_or_else(|e| {
        panic!("this test makes a network namespace, which needs root (CI runs as root): {e}")
    });
    // Rules of the user's own, which must stay.
    for (tool, table) in [
        ("iptables", "nat"),
        ("iptables", "filter"),
        ("ip6tables", "nat"),
        ("ip6tables", "filter"),
    ] {
        let out = ns.output(
            tool,
            &[
                "-t", table, "-A", "OUTPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let before = saved_rules(&ns);
    let args = |more: &[&str]| -> Vec<String> {
        install_args(&[&["--redirect-dns", "--block-uncaptured"], more].concat())
    };

    let printed = run_ok(&ns, &args(&["--dry-run"]));
    assert!(
        printed.contains("iptables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT"),
        "{printed}"
    );
    assert_eq!(saved_rules(&ns), before, "--dry-run changed the rules");

    run_ok(&ns, &args(&[]));
    let installed = saved_rules(&ns);
    assert!(
        installed.contains("-A OUTPUT -j EXTSVC_OUTPUT"),
        "{installed}"
    );
    assert!(
        installed.contains("REDIRECT --to-ports 15001"),
        "{installed}"
    );

    // A second install refuses and changes nothing.
    let again = ns
        .command(extsvc_binary().to_str().unwrap())
        .args(args(&[]))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already installed"));
    assert_eq!(saved_rules(&ns), installed);

    run_ok(&ns, &["transparent-proxy".into(), "uninstall".into()]);
    assert_eq!(
        saved_rules(&ns),
        before,
        "uninstall left something behind or took too much"
    );

    // Without root, or without iptables: a clear error, and nothing applied.
    let not_root = ns
        .command("setpriv")
        .args(["--reuid=5678", "--regid=5678", "--clear-groups"])
        .arg(extsvc_binary())
        .args(args(&[]))
        .output()
        .unwrap();
    assert_eq!(not_root.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_root.stderr).contains("needs root"));
    let empty = dir.path().join("empty-path");
    fs::create_dir(&empty).unwrap();
    let no_iptables = ns
        .command("env")
        .arg(format!("PATH={}", empty.display()))
        .arg(extsvc_binary())
        .args(args(&[]))
        .output()
        .unwrap();
    assert_eq!(no_iptables.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&no_iptables.stderr).contains("iptables is not installed"),
        "{}",
        String::from_utf8_lossy(&no_iptables.stderr)
    );
    assert_eq!(saved_rules(&ns), before);
}

#[test]
fn uninstall_where_nothing_was_installed_says_so() {
    let ns = Netns::create(&format!("extsvc-clean-{}", std::process::id())).unwrap_or_else(|e| {
        panic!("this test makes a network namespace, which needs root (CI runs as root): {e}")
    });
    let before = saved_rules(&ns);
    let said = run_ok(&ns, &["transparent-proxy".into(), "uninstall".into()]);
    assert_eq!(
        said,
        "extsvc: the transparent proxy is not installed in this network namespace (no \
         EXTSVC_OUTPUT or EXTSVC_REDIRECT chain); nothing was changed\n"
    );
    assert_eq!(saved_rules(&ns), before);
}

/// With `--xds-dir`, VIPs are kept in `vips.json`: a later `generate` moves none and never
/// gives a removed service's VIP to another name; a damaged file is refused and nothing is
/// written.
#[test]
fn kept_vips_never_move_and_are_never_reused() {
    let dir = test_dir();
    // Envoy (its own uid) reads the xDS files here.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let xds = dir.path().join("xds");
    let vips_file = xds.join("vips.json");
    let generate = |services: &[&str]| {
        let resources: Vec<String> = services
            .iter()
            .enumerate()
            .map(|(i, name)| http_service(name, &format!("10.1.0.{}:80", i + 1)))
            .collect();
        let extra: Vec<OsString> = [
            "--transparent-proxy",
            "--vip-cidr",
            // Two usable addresses: one name per service (IP endpoints get no VIP of their own).
            "10.99.0.0/30",
            "--xds-dir",
            xds.to_str().unwrap(),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        generate(dir.path(), &docs(&resources), 15001, None, &extra)
    };
    let vips = || -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(&vips_file).unwrap()).unwrap()
    };

    assert_eq!(generate(&["alpha"]).code, Some(0));
    let alpha = vips()["vips"]["alpha.mesh"].clone();
    assert!(alpha.is_string(), "{}", vips());
    assert_eq!(generate(&["beta", "alpha"]).code, Some(0));
    assert_eq!(
        vips()["vips"]["alpha.mesh"],
        alpha,
        "adding a service moved a VIP"
    );
    let both = vips();

    // beta removed, gamma added: beta's VIP stays beta's, so no VIP is left for gamma.
    let refused = generate(&["alpha", "gamma"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("no free VIP left for \"gamma.mesh\""),
        "{}",
        refused.stderr
    );
    assert_eq!(vips(), both, "a refused run changed the kept VIPs");

    let lds = fs::read_to_string(xds.join("lds.yaml")).unwrap();
    fs::write(&vips_file, "{not json").unwrap();
    let damaged = generate(&["alpha"]);
    assert_eq!(damaged.code, Some(2));
    assert!(damaged.stderr.contains("vips.json"), "{}", damaged.stderr);
    assert_eq!(fs::read_to_string(xds.join("lds.yaml")).unwrap(), lds);
}

/// Two names that hash to one VIP: without `--xds-dir` an error (no order of names can decide
/// fairly), with it, from the first run on, each gets a VIP, kept in `vips.json`.
#[test]
fn with_an_xds_dir_names_that_hash_alike_get_a_vip_each_from_the_first_run() {
    let dir = test_dir();
    let cidr = "10.99.0.0/30";
    let range: Cidr = cidr.parse().unwrap();
    let other = (0..1000)
        .map(|n| format!("svc-{n}"))
        .find(|name| {
            first_choice(&format!("{name}.mesh"), range) == first_choice("alpha.mesh", range)
        })
        .unwrap();
    let resources = docs(&[
        http_service("alpha", "10.1.0.1:80"),
        http_service(&other, "10.1.0.2:80"),
    ]);
    let run = |extra: &[&str]| {
        let mut args: Vec<OsString> = ["--transparent-proxy", "--vip-cidr", cidr]
            .iter()
            .map(OsString::from)
            .collect();
        args.extend(extra.iter().map(OsString::from));
        generate(dir.path(), &resources, 15001, None, &args)
    };
    let clash = run(&[]);
    assert_eq!(clash.code, Some(1), "{}", clash.stderr);
    assert!(
        clash.stderr.contains("hash to the same VIP"),
        "{}",
        clash.stderr
    );

    let xds = dir.path().join("xds");
    let kept = run(&["--xds-dir", xds.to_str().unwrap()]);
    assert_eq!(kept.code, Some(0), "{}", kept.stderr);
    let vips: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(xds.join("vips.json")).unwrap()).unwrap();
    let (a, b) = (
        &vips["vips"]["alpha.mesh"],
        &vips["vips"][format!("{other}.mesh")],
    );
    assert!(a.is_string() && b.is_string() && a != b, "{vips}");
}

/// `--vip-cidr` and `--dns-listen` belong to `--transparent-proxy`; a bad range says what is
/// wrong with it, and nothing is written.
#[test]
fn transparent_options_are_checked() {
    let dir = test_dir();
    let resources = http_service("alpha", "10.1.0.1:80");
    let run = |extra: &[&str]| {
        let extra: Vec<OsString> = extra.iter().map(OsString::from).collect();
        generate(dir.path(), &resources, 15001, None, &extra)
    };
    let alone = run(&["--vip-cidr", "10.0.0.0/8"]);
    assert_eq!(alone.code, Some(2));
    assert!(
        alone.stderr.contains("--transparent-proxy"),
        "{}",
        alone.stderr
    );
    let host_bits = run(&["--transparent-proxy", "--vip-cidr", "10.0.0.1/8"]);
    assert_eq!(host_bits.code, Some(2));
    assert!(
        host_bits.stderr.contains("host bits set"),
        "{}",
        host_bits.stderr
    );
    let not_96 = run(&["--transparent-proxy", "--vip-cidr6", "fd00::/64"]);
    assert_eq!(not_96.code, Some(2));
    assert!(
        not_96.stderr.contains("--vip-cidr6") && not_96.stderr.contains("is not 96"),
        "{}",
        not_96.stderr
    );
    assert!(!dir.path().join("envoy.yaml").exists());
}

/// One DNS query for `name`'s A record to `server`: the first address of the answer (`None`
/// for an answer without one), or an error when no answer came within `timeout`.
fn dns_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Option<Ipv4Addr>, String> {
    dns_query(server, name, timeout).map(|(_, address)| address)
}

/// [`dns_a`], with the answer's response code (3: NXDOMAIN).
fn dns_query(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<(u8, Option<Ipv4Addr>), String> {
    // Header: id 0x7e57, recursion desired, one question.
    let mut query = vec![0x7e, 0x57, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // root; type A; class IN
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(timeout)).unwrap();
    socket.send_to(&query, server).map_err(|e| e.to_string())?;
    let mut answer = [0u8; 512];
    let n = socket
        .recv(&mut answer)
        .map_err(|e| format!("no answer: {e}"))?;
    let answer = &answer[..n];
    if answer.len() < query.len() || answer[..2] != query[..2] {
        return Err(format!("not an answer to the query: {answer:?}"));
    }
    let rcode = answer[3] & 0x0f;
    let answers = u16::from_be_bytes([answer[6], answer[7]]);
    // The first record after the question: a name (a pointer or labels), type, class, TTL,
    // length, then the address.
    let mut at = query.len();
    if answers == 0 || at >= answer.len() {
        return Ok((rcode, None));
    }
    if answer[at] & 0xc0 == 0xc0 {
        at += 2;
    } else {
        while at < answer.len() && answer[at] != 0 {
            at += usize::from(answer[at]) + 1;
        }
        at += 1;
    }
    let rdata = answer
        .get(at + 10..at + 14)
        .ok_or("a short answer record")?;
    Ok((
        rcode,
        Some(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
    ))
}

/// Asks the builtin DNS for `name` over and over on a thread in the app's namespace, until
/// stopped: how many queries went unanswered, and every answer seen.
struct DnsProbe {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<(usize, usize, BTreeSet<Option<Ipv4Addr>>)>,
}

impl DnsProbe {
    fn start(w: &World, name: &'static str) -> DnsProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            w.app().spawn(move || {
                let (mut sent, mut lost, mut seen) = (0, 0, BTreeSet::new());
                while !stop.load(Ordering::Relaxed) {
                    sent += 1;
                    match dns_a(DNS_LISTEN, name, Duration::from_secs(2)) {
                        Ok(ip) => {
                            seen.insert(ip);
                        }
                        Err(_) => lost += 1,
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                (sent, lost, seen)
            })
        };
        DnsProbe { stop, thread }
    }

    /// Stops it: (queries sent, queries unanswered, answers).
    fn finish(self) -> (usize, usize, BTreeSet<Option<Ipv4Addr>>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// With `--xds-dir`, `generate` run again updates the running Envoy: an added service gets a
/// new VIP from the builtin DNS (whose table LDS replaces) and is served; a removed one no
/// longer resolves and its VIP is refused; a name added later never gets the removed one's
/// VIP, even when it hashes to it. All the while an unchanged service, asked for by its
/// `.mesh` name (DNS included), answers every request at the same VIP; Envoy is the same
/// process and rejects no update.
#[test]
fn a_live_update_keeps_every_vip_and_never_gives_a_removed_one_to_another_name() {
    // Small enough to find a name that hashes to a given VIP, wide enough for no clash.
    let cidr = "240.0.0.0/24";
    let dir = test_dir();
    // Envoy (its own uid) reads the xDS files here.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let xds = dir.path().join("xds");
    let extra: Vec<OsString> = ["--vip-cidr", cidr, "--xds-dir", xds.to_str().unwrap()]
        .iter()
        .map(OsString::from)
        .collect();
    let w = World::start_with(true, &extra, |ca| docs(&services(false, ca)));
    let mut resources = services(false, &w.ca);
    let pid = w.sidecar.pid();
    let vip = |name| {
        w.resolve(name)
            .unwrap_or_else(|| panic!("{name} does not resolve"))
    };
    let steady = vip("httpbin.mesh");
    let plainweb = vip("plainweb.mesh");
    assert_from(&w.curl("http://plainweb.mesh/").run(), "plainweb");
    assert_eq!(w.resolve("added.mesh"), None);

    let stream = {
        let app = w.app().name.clone();
        Stream::of(move || {
            Curl::get("http://httpbin.mesh/get")
                .in_netns(&app)
                .timeout(Duration::from_secs(15))
        })
    };
    let probe = DnsProbe::start(&w, "httpbin.mesh");
    let mut seen = w.app().run(|| live::successes(&w.sidecar));
    let modified = || w.sidecar_counter("listener_manager.listener_modified");
    let modified_before = modified();
    let took = |seen| w.app().run(|| live::assert_updates_took(&w.sidecar, seen));

    // Added: a new VIP, from the DNS table LDS replaced, and served on it.
    resources.push(http_service("added", "added.test:8083"));
    w.update(&resources);
    seen = took(seen);
    let added = eventually(
        "added.mesh resolves",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || w.resolve("added.mesh").ok_or("not yet".to_string()),
    );
    assert!(
        in_vip_range(added) && added != steady && added != plainweb,
        "{added}"
    );
    assert_eq!(w.dns_answers("added.mesh"), BTreeSet::from([Some(added)]));
    assert_from(&w.curl("http://added.mesh/").run(), "added");
    assert_from(&w.curl("http://added.test:8083/").run(), "added");
    assert_eq!(vip("httpbin.mesh"), steady);
    stream.wait_for_more(5);

    // Removed: its names no longer resolve, and its VIP is refused.
    resources.retain(|r| !r.contains("name: plainweb"));
    w.update(&resources);
    seen = took(seen);
    eventually(
        "plainweb.mesh no longer resolves",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || match w.resolve("plainweb.mesh") {
            None => Ok(()),
            Some(ip) => Err(ip.to_string()),
        },
    );
    assert_eq!(w.dns_answers("plainweb.mesh"), BTreeSet::from([None]));
    let served = w.world_stat("http.plainweb.downstream_cx_total");
    assert!(w.curl(&format!("http://{plainweb}/")).send().is_err());
    assert!(w.curl("http://plain.test:8080/").send().is_err());
    assert_eq!(w.world_stat("http.plainweb.downstream_cx_total"), served);
    stream.wait_for_more(5);

    // Another name, one that would have had plainweb.mesh's VIP: it gets another.
    let range: Cidr = cidr.parse().unwrap();
    let another = (0..100_000)
        .map(|n| format!("another-{n}"))
        .find(|name| first_choice(&format!("{name}.mesh"), range) == plainweb)
        .expect("a name that hashes to the removed VIP");
    let another_mesh = format!("{another}.mesh");
    resources.push(http_service(&another, "another.test:8084"));
    w.update(&resources);
    took(seen);
    let got = eventually(
        "the added name resolves",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || w.resolve(&another_mesh).ok_or("not yet".to_string()),
    );
    assert_ne!(got, plainweb, "a removed name's VIP went to {another_mesh}");
    assert!(in_vip_range(got) && got != steady && got != added, "{got}");
    assert_from(&w.curl(&format!("http://{another_mesh}/")).run(), "another");
    stream.wait_for_more(5);

    let (sent, lost, answers) = probe.finish();
    stream.assert_all_served();
    assert_eq!(vip("httpbin.mesh"), steady);
    assert_eq!(
        answers,
        BTreeSet::from([Some(steady)]),
        "the unchanged name's VIP moved"
    );
    // Each update replaced the builtin DNS's listener (its table changed; the others were
    // added or removed), on the same UDP address: no query went unanswered, and the old one,
    // draining, answered none with its old table (the answers above).
    assert!(
        modified() >= modified_before + 3,
        "the DNS listener was not replaced"
    );
    assert!(sent > 20, "{sent} DNS queries");
    assert_eq!(
        lost, 0,
        "{lost} of {sent} DNS queries went unanswered across the updates"
    );
    assert_eq!(w.sidecar.pid(), pid, "Envoy was restarted");
}

/// MeshExternalServices through the transparent proxy: the app names one by its generated
/// hostname (`<name>.extsvc.mesh.local`) on its `match.port`, the builtin DNS answers
/// with its VIP from 242.0.0.0/8, and the VIP's listener takes the connection to its endpoints
/// (an http one through the filter, a tcp one through tcp_proxy), passthrough off.
#[test]
fn mesh_external_services_by_their_hostnames_and_vips() {
    let mes = |name: &str, protocol: &str, port: u16, endpoint: &str| {
        let (address, endpoint_port) = endpoint.rsplit_once(':').unwrap();
        format!(
            "type: MeshExternalService\nmesh: default\nname: {name}\nspec:\n  \
             match: {{port: {port}, protocol: {protocol}}}\n  \
             endpoints: [{{address: {address}, port: {endpoint_port}}}]\n"
        )
    };
    let w = World::start_with(false, &[], |_| {
        docs(&[
            mesh(false),
            mes("web", "http", 9000, "plain.test:8080"),
            mes("echo", "tcp", 7000, &world(7000).to_string()),
        ])
    });
    let mes_range: Cidr = "242.0.0.0/8".parse().unwrap();
    let web = w.resolve("web.extsvc.mesh.local").expect("web resolves");
    let echo = w.resolve("echo.extsvc.mesh.local").expect("echo resolves");
    for ip in [web, echo] {
        assert!(mes_range.contains(ip), "{ip} is not in 242.0.0.0/8");
    }
    assert_ne!(web, echo);
    // Kuma's hostnames only: no `.mesh` name.
    assert_eq!(w.resolve("web.mesh"), None);

    let r = w.curl("http://web.extsvc.mesh.local:9000/").run();
    assert_from(&r, "plainweb");
    // Kuma's auto_host_rewrite: the upstream sees its endpoint's address.
    assert_eq!(r.header("x-seen-host"), Some("plain.test"), "{r:?}");
    assert_eq!(
        w.tcp_exchange("echo.extsvc.mesh.local", 7000, "ping\\n"),
        "ping\n"
    );
    // The VIP's listener serves match.port alone.
    assert!(w.curl("http://web.extsvc.mesh.local/").send().is_err());
    let line = w.sidecar.wait_for_stdout(
        "\"external_service\":\"MeshExternalService/echo\"",
        Duration::from_secs(10),
    );
    // On the VIP or its IPv6 twin: the resolver picks which.
    let twin: Cidr6 = DEFAULT_VIP_CIDR6.parse().unwrap();
    let twin = twin.twin(echo);
    assert!(
        line.contains(&format!("outbound:{echo}:7000"))
            || line.contains(&format!("outbound:[{twin}]:7000")),
        "{line}"
    );
}

/// An address of the world that no name resolves to, where a MeshPassthrough test's app
/// dials with an allowed name: a connection there is the leak Kuma has.
const DECOY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);

/// The world's passthrough off, a MeshPassthrough that allows `*.allowed.test` by SNI on 9443
/// and by `Host` on 8081, the world's raw TCP server by IP, `added` by CIDR.
fn mesh_passthrough_world() -> World {
    let mesh_passthrough = "type: MeshPassthrough\nname: allow-some\nmesh: default\nspec:\n  \
                            targetRef: {kind: Mesh}\n  default:\n    appendMatch:\n    \
                            - {type: Domain, value: '*.allowed.test', port: 9443, protocol: tls}\n    \
                            - {type: Domain, value: '*.allowed.test', port: 8081, protocol: http}\n    \
                            - {type: IP, value: 10.77.0.2, port: 7000}\n    \
                            - {type: CIDR, value: 10.77.0.0/30, port: 8083}\n"
        .to_string();
    World::start_with(false, &[], |ca| {
        let mut resources = services(false, ca);
        resources.push(mesh_passthrough);
        docs(&resources)
    })
}

/// Listening sockets on the decoy address, in the world, one per port: each tells whether it
/// accepted a connection.
fn decoys(w: &World, ports: &[u16]) -> Vec<std::net::TcpListener> {
    w.topology
        .world
        .ip(&["addr", "add", &format!("{DECOY}/32"), "dev", "lo"])
        .unwrap();
    ports
        .iter()
        .map(|&port| {
            let listener = w
                .topology
                .world
                .run(|| std::net::TcpListener::bind((DECOY, port)))
                .unwrap();
            listener.set_nonblocking(true).unwrap();
            listener
        })
        .collect()
}

fn accepted_nothing(listener: &std::net::TcpListener) -> bool {
    matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn a_mesh_passthrough_lets_out_names_by_sni_and_host_and_addresses_by_ip_and_cidr() {
    let w = mesh_passthrough_world();
    // A wildcard Domain by SNI (the `secure` server takes any name; -k: its certificate is
    // for secure.test).
    let r = w.curl("https://api.allowed.test:9443/").insecure().run();
    assert_from(&r, "secure");
    // By Host, on the port the match names.
    assert_from(&w.curl("http://web.allowed.test:8081/").run(), "undeclared");
    let line = w.sidecar.wait_for_stdout(
        "\"authority\":\"web.allowed.test:8081\"",
        Duration::from_secs(10),
    );
    assert!(
        line.contains("\"upstream_cluster\":\"mesh_passthrough_by_name\""),
        "{line}"
    );
    // By IP and by CIDR, to the original destination.
    assert_eq!(
        w.tcp_exchange(&WORLD_IP.to_string(), 7000, "ping\\n"),
        "ping\n"
    );
    assert_from(&w.curl(&format!("http://{WORLD_IP}:8083/")).run(), "added");
    // Declared services still go through their own listeners, which no match names.
    assert_from(&w.curl("http://httpbin.mesh/").run(), "httpbin");
}

#[test]
fn an_allowed_name_dialled_at_another_address_reaches_the_named_host_only() {
    let w = mesh_passthrough_world();
    let [tls, http, by_cidr] = &decoys(&w, &[9443, 8081, 8083])[..] else {
        unreachable!()
    };
    let r = w
        .curl("https://api.allowed.test:9443/")
        .resolve("api.allowed.test", 9443, &DECOY.to_string())
        .insecure()
        .run();
    assert_from(&r, "secure");
    let r = w
        .curl("http://web.allowed.test:8081/")
        .resolve("web.allowed.test", 8081, &DECOY.to_string())
        .run();
    assert_from(&r, "undeclared");
    assert!(
        accepted_nothing(tls),
        "the SNI's dialled address was reached"
    );
    assert!(
        accepted_nothing(http),
        "the Host's dialled address was reached"
    );
    // The decoy can be reached: its CIDR is allowed on 8083. The app sends nothing, as with
    // a protocol whose server speaks first: after the inspectors' wait, it goes through.
    w.tcp_exchange(&DECOY.to_string(), 8083, "");
    assert!(!accepted_nothing(by_cidr), "the decoy is out of reach");
}

#[test]
fn with_a_mesh_passthrough_what_no_match_allows_gets_403_or_is_closed() {
    let w = mesh_passthrough_world();
    let r = w.curl("http://other.test:8081/").run();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.header("x-external-service-denied"),
        Some("not-matched"),
        "{r:?}"
    );
    assert!(r.body.contains("other.test:8081"), "{r:?}");
    // A port the Host does not carry is not the one the match names.
    let r = w
        .curl("http://web.allowed.test:8081/")
        .host("web.allowed.test:8083")
        .run();
    assert_eq!(r.status, 403, "{r:?}");
    // Not HTTP, and no match for its address and port: closed (`another` would answer).
    assert_eq!(w.tcp_exchange(&WORLD_IP.to_string(), 8084, "ping\\n"), "");
    let line = w.sidecar.wait_for_stdout(
        &format!("\"original_destination\":\"{WORLD_IP}:8084\""),
        Duration::from_secs(10),
    );
    assert!(line.contains("\"denied\":\"not-matched\""), "{line}");
    // An SNI no match allows: closed too.
    assert!(w
        .curl("https://other.test:9443/")
        .insecure()
        .send()
        .is_err());
    let line = w.sidecar.wait_for_stdout(
        "\"requested_server_name\":\"other.test\"",
        Duration::from_secs(10),
    );
    assert!(line.contains("\"denied\":\"not-matched\""), "{line}");
    assert!(w.sidecar_counter("cluster.refused.upstream_cx_none_healthy") >= 2);
}

#[test]
fn a_mesh_passthrough_cidr_lets_out_ipv6_and_nothing_else() {
    let w = World::start_with(true, &[], |ca| {
        let mut resources = services(false, ca);
        resources.push(
            "type: MeshPassthrough\nname: v6-range\nmesh: default\nspec:\n  \
             targetRef: {kind: Mesh}\n  default:\n    appendMatch:\n    \
             - {type: CIDR, value: 'fd77::/64', port: 8085}\n"
                .to_string(),
        );
        docs(&resources)
    });
    // In the range, on the port the match names: through, to the address dialled.
    assert_from(
        &w.curl(&format!("http://[{WORLD_IP6}]:8085/")).run(),
        "undeclared6",
    );
    // Another port of the same address: closed, and its server sees nothing.
    assert!(!w
        .curl(&format!("http://[{WORLD_IP6}]:8082/"))
        .connect_timeout(Duration::from_secs(3))
        .send()
        .is_ok_and(|r| r.status == 200));
    assert_eq!(w.world_stat("http.ipv6.downstream_cx_total"), 0);
}
