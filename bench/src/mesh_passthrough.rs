//! Part 5: what Envoy itself does with the transparent proxy's MeshPassthrough as it grows. One
//! MeshPassthrough of N matches (`BENCH_MPT_MATCHES`, 10 and 10,000 by default), half `http` on
//! port 8080 (the capture listener's virtual-host domains, matched by `Host`), half `tls` on
//! 8443 (its `server_names`, matched by SNI), each half exact names and wildcards. Envoy runs
//! the generated configuration under callgrind, and four requests are counted at each N: an
//! exact name and a wildcard, by `Host` and by SNI.
//!
//! In network namespaces of its own, as part 4: the capture listener takes what the rules
//! redirect, and its chains match on the port the app dialled. On loopback without the rules,
//! a connection to the capture listener has the listener's own address as its destination, so
//! only matches on the listener's own port would apply, and a `Host` allowed there would be
//! dialled on that port again: the path measured would not be the one apps take.
//!
//! Envoy looks a wildcard `Host` up once per distinct length of the wildcard domains, longest
//! first (its route matcher keeps one hash table per length): the names here have up to
//! [`LENGTHS`] lengths, as real names do, and the wildcard `Host` requested is longer than all
//! of them, so every length is tried. An SNI is looked up once per label.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::config;
use super::instructions::{self, Counted};
use super::load::{hellos_in_sequence, in_sequence};
use super::{log, Bench};
use extsvc_testkit::netns::WORLD_IP;
use extsvc_testkit::runner::Tracked;
use extsvc_testkit::transparent::{world_addr, World, ENVOY_UID};
use extsvc_testkit::{EnvoyOptions, UpstreamBuilder};

/// The namespaces are `extsvc-app-benchmpt` and `extsvc-world-benchmpt`.
const NETNS_ID: &str = "benchmpt";
/// The world's ports: a plain HTTP server (`direct_response` 200) and a TCP echo server.
pub const HTTP_PORT: u16 = 8080;
pub const TLS_PORT: u16 = 8443;
/// Distinct lengths of the names (see the module's comment): the first label, `e` or `w`, five
/// digits and up to 47 `x`s, stays under DNS's 63 bytes.
pub const LENGTHS: usize = 48;
/// Requests before a count: connections to the world and the DNS cache. Nothing on this path
/// is compiled at run time (no wasm, no Lua), so a few hundred do.
pub const WARM_UP: usize = 200;

/// Match `i`'s `value` in each half: even `i` an exact name, odd `i` a wildcard; its first
/// label holds `i` in five digits and a pad of `x`s, so that names have up to [`LENGTHS`]
/// lengths.
pub fn value(i: usize) -> String {
    let pad = "x".repeat((i / 2) % LENGTHS);
    if i.is_multiple_of(2) {
        format!("e{i:05}{pad}.bench.test")
    } else {
        format!("*.w{i:05}{pad}.bench.test")
    }
}

/// The exact name requested: match 0's, the same at every N.
pub fn exact_name() -> String {
    value(0)
}

/// The name requested under match 1's wildcard (the shortest length), longer than every
/// wildcard, so that Envoy tries them all before it finds it.
pub fn wildcard_name() -> String {
    let long = "a".repeat(40);
    format!("{long}.{long}{}", value(1).trim_start_matches('*'))
}

/// The Mesh, passthrough off, and one MeshPassthrough of `n` matches: `n / 2` http ones on
/// [`HTTP_PORT`], then as many tls ones on [`TLS_PORT`], with the same values.
pub fn resources(n: usize) -> String {
    let mut doc = String::from(
        "type: Mesh\nname: default\nnetworking: {outbound: {passthrough: false}}\n---\n\
         type: MeshPassthrough\nname: bench\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  \
         default:\n    passthroughMode: Matched\n    appendMatch:\n",
    );
    for (protocol, port) in [("http", HTTP_PORT), ("tls", TLS_PORT)] {
        for i in 0..n / 2 {
            doc.push_str(&format!(
                "    - {{type: Domain, value: '{}', port: {port}, protocol: {protocol}}}\n",
                value(i)
            ));
        }
    }
    doc
}

/// One of the four requests counted at each N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    HostExact,
    HostWildcard,
    SniExact,
    SniWildcard,
}

impl Request {
    pub const ALL: [Request; 4] = [
        Request::HostExact,
        Request::HostWildcard,
        Request::SniExact,
        Request::SniWildcard,
    ];

    /// What the report calls it.
    pub fn title(self) -> &'static str {
        match self {
            Request::HostExact => "`http`, `Host` an exact name (`GET` on a kept-alive connection)",
            Request::HostWildcard => {
                "`http`, `Host` under a wildcard (`GET` on a kept-alive connection)"
            }
            Request::SniExact => "`tls`, SNI an exact name (a connection: ClientHello, echoed)",
            Request::SniWildcard => {
                "`tls`, SNI under a wildcard (a connection: ClientHello, echoed)"
            }
        }
    }

    /// `n` of them, one after another, from the calling thread's namespace (the app's).
    fn send(self, n: usize) -> Result<(), String> {
        let host = |name: String| format!("{name}:{HTTP_PORT}");
        let tls = SocketAddr::new(IpAddr::V4(WORLD_IP), TLS_PORT);
        let http = SocketAddr::new(IpAddr::V4(WORLD_IP), HTTP_PORT);
        match self {
            Request::HostExact => in_sequence(http, &host(exact_name()), n),
            Request::HostWildcard => in_sequence(http, &host(wildcard_name()), n),
            Request::SniExact => hellos_in_sequence(tls, &exact_name(), n),
            Request::SniWildcard => hellos_in_sequence(tls, &wildcard_name(), n),
        }
    }
}

/// What part 5 measured.
#[derive(Clone, Debug, Default)]
pub struct Cost {
    /// N -> request -> its count.
    pub counted: BTreeMap<usize, BTreeMap<Request, Counted>>,
    /// N -> bytes of the configuration Envoy ran.
    pub config_bytes: BTreeMap<usize, u64>,
    /// The last `extsvc generate` command.
    pub gen_cmd: Vec<String>,
    pub dir: PathBuf,
}

impl Cost {
    /// `request`'s instructions per request at the largest N over the smallest.
    pub fn ratio(&self, request: Request) -> f64 {
        let per = |c: Option<&BTreeMap<Request, Counted>>| {
            c.and_then(|c| c.get(&request))
                .map_or(f64::NAN, Counted::per_request)
        };
        per(self.counted.values().next_back()) / per(self.counted.values().next())
    }
}

/// Runs part 5 for each N of `BENCH_MPT_MATCHES`, one Envoy at a time (one capture port).
pub fn run(b: &Bench) -> Result<Cost, String> {
    let k = &b.knobs;
    let d = b.work.join("mesh-passthrough");
    fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let mut servers = UpstreamBuilder::new()
        .without_echo()
        .plain("http")
        .at(world_addr(HTTP_PORT))
        .tcp("echo")
        .at(world_addr(TLS_PORT))
        .dns_at(world_addr(53));
    for name in [exact_name(), wildcard_name()] {
        servers = servers.dns(&name, &[IpAddr::V4(WORLD_IP)]);
    }
    let world = World::create(&d, Some(NETNS_ID), servers).map_err(|e| {
        format!("part 5: {e}; run the bench as root, or BENCH_MPT_MATCHES=0 to skip it")
    })?;
    let _tracked = Tracked::new(world.upstream.envoy.pid().unwrap_or(0));
    world.install(&[])?;
    let options = EnvoyOptions {
        uid: Some(ENVOY_UID),
        ..b.envoy_options()
    };
    let dns = world_addr(53).to_string();
    let flags = [
        "--transparent-proxy",
        "--listen",
        "127.0.0.1:15001",
        "--dns-resolver",
        &dns,
    ];
    let mut cost = Cost {
        dir: d.clone(),
        ..Cost::default()
    };
    for &n in &k.mpt_matches {
        let res = d.join(format!("{n}.resources.yaml"));
        fs::write(&res, resources(n)).map_err(|e| format!("{}: {e}", res.display()))?;
        let generated = d.join(format!("{n}.generated.yaml"));
        cost.gen_cmd = config::generate_with(b, &res, &generated, &flags)?.cmd;
        let mut cfg = config::read_yaml(&generated)?;
        if !k.access_log {
            drop_access_logs(&mut cfg);
        }
        let path = d.join(format!("{n}.yaml"));
        config::write_yaml(&path, &cfg)?;
        let bytes = fs::metadata(&path).map_or(0, |m| m.len());
        cost.config_bytes.insert(n, bytes);
        log(&format!(
            "part 5: {n} matches ({bytes} bytes of configuration) under callgrind"
        ));
        let label = format!("mpt-{n}");
        let counted = world.topology.app.run(|| {
            let proxies = instructions::start(&d, &[(label.as_str(), path.clone())], &options)?;
            let mut counted = BTreeMap::new();
            for p in &proxies {
                // Each request is let through, or the count stops here.
                for request in Request::ALL {
                    request.send(1)?;
                }
                for request in Request::ALL {
                    let what = format!("{n} matches, {request:?}");
                    let c = p.count(&what, WARM_UP, k.mpt_requests, &|m| request.send(m))?;
                    counted.insert(request, c);
                }
            }
            Ok::<_, String>(counted)
        })?;
        cost.counted.insert(n, counted);
    }
    Ok(cost)
}

/// Removes every access log: each request would pay for its line at every N alike, which
/// hides the matching (`BENCH_ACCESS_LOG=1` keeps them).
fn drop_access_logs(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            m.remove("access_log");
            m.values_mut().for_each(drop_access_logs);
        }
        Value::Sequence(s) => s.iter_mut().for_each(drop_access_logs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn names_alternate_exact_and_wildcard_with_many_lengths() {
        assert_eq!(value(0), "e00000.bench.test");
        assert_eq!(value(1), "*.w00001.bench.test");
        assert_eq!(value(2), "e00002x.bench.test");
        assert_eq!(value(2 * LENGTHS + 1), "*.w00097.bench.test");
        let wildcard_lengths: std::collections::BTreeSet<usize> =
            (1..10_000).step_by(2).map(|i| value(i).len()).collect();
        assert_eq!(wildcard_lengths.len(), LENGTHS);
        // The wildcard request is under match 1 and longer than every wildcard.
        let name = wildcard_name();
        assert!(name.ends_with(".w00001.bench.test"), "{name}");
        let longest = (0..10_000).map(|i| value(i).len()).max().unwrap();
        assert!(name.len() > longest, "{name}");
    }

    /// The resources at the largest default count are valid, and the generated
    /// configuration holds each match once per capture listener (IPv4 and IPv6): exact names
    /// and wildcards in `server_names` and in the virtual host's domains, each `Host` with
    /// its port; and no access log once dropped.
    #[test]
    fn the_capture_listeners_hold_every_match_and_no_access_log_once_dropped() {
        let dir = extsvc_testkit::test_dir();
        let out = extsvc_testkit::generate(
            dir.path(),
            &resources(10_000),
            15001,
            None,
            &["--transparent-proxy".into()],
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let mut cfg = config::read_yaml(&dir.path().join("envoy.yaml")).unwrap();
        let text = serde_yaml_ng::to_string(&cfg).unwrap();
        let items = |item: &str| {
            text.lines()
                .filter(|l| l.trim().trim_start_matches("- ").trim_matches('\'') == item)
                .count()
        };
        for i in 0..5 {
            assert_eq!(items(&value(i)), 2, "{}", value(i));
            assert_eq!(
                items(&format!("{}:{HTTP_PORT}", value(i))),
                2,
                "{}",
                value(i)
            );
        }
        assert!(text.contains("access_log:"));
        drop_access_logs(&mut cfg);
        let text = serde_yaml_ng::to_string(&cfg).unwrap();
        assert!(!text.contains("access_log:"), "{text}");
    }
}
