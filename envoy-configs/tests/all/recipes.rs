//! The README's recipes as a new user follows them, through real Envoy: a Kuma service name
//! with `_` through the proxy port, and Envoy run as a dedicated uid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use extsvc_testkit::{
    assert_ok_from, docs, http_service, mesh, test_dir, Curl, EnvoyOptions, Sidecar,
    UpstreamBuilder,
};

/// The README's uid for Envoy (Kuma's).
const ENVOY_UID: u32 = 5678;

/// Envoy's HTTP/1 parser refuses `_` in the host of a proxied URL before any filter sees it:
/// its 400 names the dotted form, which reaches the same service, as the name in a `Host`
/// header does.
#[test]
fn a_service_name_with_underscores_through_the_proxy_port() {
    let dir = test_dir();
    let up = UpstreamBuilder::new().plain("web").start(dir.path());
    let resources = docs(&[
        mesh(false),
        http_service("httpbin_org", &up.addr("web").to_string()),
    ]);
    let s = Sidecar::start(dir.path(), None, &resources, &[]);

    let r = Curl::get("http://httpbin_org.mesh/get")
        .proxy(s.proxy())
        .run();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body
            .contains("'_' as '.' (http://httpbin.org.mesh/ reaches httpbin_org.mesh)"),
        "{r:?}"
    );

    let r = Curl::get("http://httpbin.org.mesh/get")
        .proxy(s.proxy())
        .run();
    assert_ok_from(&r, "web");
    assert_ok_from(&s.with_host("httpbin_org.mesh", "/get").run(), "web");
    s.forwarded("httpbin_org", 2);
}

/// The README's recipe for Envoy under a uid of its own: `make install-envoy` puts a binary
/// that uid can run, and the Envoy the tests run (the Makefile's `.venv/envoy`) serves as that
/// uid. A process of that uid execs each (`env`), as `runuser` does: the exec of `setpriv`
/// itself passed here even where the uid cannot reach the file, so it would not have shown a
/// Python wrapper whose interpreter sits under root's home (mode 0700).
#[test]
fn envoy_runs_as_a_dedicated_uid() {
    let dir = test_dir();
    // Envoy, as ENVOY_UID, reads its configuration here and writes its admin address.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = dir.path().join("prefix");
    let make = Command::new("make")
        .current_dir(&workspace)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .args(["-s", "install-envoy"])
        .arg(format!("PREFIX={}", prefix.display()))
        .output()
        .unwrap();
    assert!(
        make.status.success(),
        "make install-envoy: {}",
        String::from_utf8_lossy(&make.stderr)
    );
    let as_uid = |envoy: &PathBuf| {
        Command::new("setpriv")
            .arg(format!("--reuid={ENVOY_UID}"))
            .arg(format!("--regid={ENVOY_UID}"))
            .args(["--clear-groups", "env"])
            .arg(envoy)
            .arg("--version")
            .output()
            .unwrap()
    };
    // The copy the README's recipe installs, run by a process of that uid (`env`), not only
    // by setpriv's own exec. (The tests' `.venv/envoy` runs as another uid only where the
    // workspace's folders let that uid through, which is the clone's place, not the project's.)
    let installed = prefix.join("bin/envoy");
    let out = as_uid(&installed);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1.40.0"),
        "{} as uid {ENVOY_UID}: {}",
        installed.display(),
        String::from_utf8_lossy(&out.stderr)
    );

    let up = UpstreamBuilder::new().plain("web").start(dir.path());
    let resources = docs(&[
        mesh(false),
        http_service("web", &up.addr("web").to_string()),
    ]);
    let options = EnvoyOptions {
        uid: Some(ENVOY_UID),
        under: vec!["env".into()],
        binary: Some(installed),
        ..EnvoyOptions::default()
    };
    let s = Sidecar::start_with(dir.path(), None, &resources, &[], &options);
    assert_ok_from(&s.with_host("web.mesh", "/get").run(), "web");
    let uid = fs::read_to_string(format!("/proc/{}/status", s.envoy.pid().unwrap()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").map(str::to_owned))
        .unwrap();
    assert_eq!(
        uid.split_whitespace().next(),
        Some(ENVOY_UID.to_string().as_str()),
        "Envoy's uid"
    );
}
