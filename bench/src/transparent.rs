//! Part 4: A, B and C through the transparent proxy. wrk runs in an app network namespace with
//! `extsvc transparent-proxy install`'s rules and connects to a service's VIP, which the rules
//! send to the capture listener and the capture listener hands to that VIP:port's listener;
//! the upstream is in a second namespace behind the app's default route. Envoy runs as its own
//! uid (the rules leave its traffic alone). One capture port per namespace: the variants take
//! turns, one Envoy at a time, in rotated rounds. Both namespaces go on every exit path.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde_yaml_ng::Value;

use super::config::{self, at, seq};
use super::instructions::{self, Counted};
use super::load::{in_sequence, measured, request_at, wrk, Target};
use super::{log, log_sample, name, rotated, Bench, Throughput, LOAD_CPU, PROXY_CPU, TARGET_HOST};
use extsvc_testkit::netns::WORLD_IP;
use extsvc_testkit::runner::{self, Proc, Tracked};
use extsvc_testkit::transparent::{world_addr, World, ENVOY_UID};
use extsvc_testkit::{EnvoyOptions, UpstreamBuilder};

/// The namespaces are `extsvc-app-bench` and `extsvc-world-bench`.
const NETNS_ID: &str = "bench";
/// The upstream's plain HTTP port in the world namespace.
const UPSTREAM_PORT: u16 = 8080;
/// The variants' letters, in the order of the first round.
const KINDS: [&str; 3] = ["A", "B", "C"];

/// Service i's real authority: a name the world's DNS answers.
fn authority(i: usize) -> String {
    format!("{}.bench.test:{UPSTREAM_PORT}", name(i))
}

/// Runs part 4: `rounds` rounds of A, B, C (rotated), `seconds` each at the configured
/// connections, to [`TARGET_HOST`]'s VIP on port 80 with that `Host`; then, when the
/// `callgrind` knob names `transparent`, each variant's instructions per request.
pub fn run(
    b: &Bench,
    rounds: usize,
    seconds: u64,
) -> Result<(Throughput, Option<BTreeMap<String, Counted>>), String> {
    let k = &b.knobs;
    let d = b.work.join("transparent");
    fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;

    let mut servers = UpstreamBuilder::new()
        .without_echo()
        .plain("http")
        .at(world_addr(UPSTREAM_PORT))
        .dns_at(world_addr(53));
    for i in 0..k.services {
        servers = servers.dns(&format!("{}.bench.test", name(i)), &[IpAddr::V4(WORLD_IP)]);
    }
    // Threads inherit the pinning: the upstream starts on LOAD_CPU, inside the world.
    let world = runner::on_cpu(Some(LOAD_CPU), || {
        World::create(&d, Some(NETNS_ID), servers)
    })
    .map_err(|e| {
        format!("part 4: {e}; run the bench as root, or BENCH_TPROXY_ROUNDS=0 to skip it")
    })?;
    let topology = &world.topology;
    let _tracked = Tracked::new(world.upstream.envoy.pid().unwrap_or(0));

    let res = d.join("resources.yaml");
    fs::write(&res, config::resources_at(k.services, &authority, None))
        .map_err(|e| format!("{}: {e}", res.display()))?;
    let generated = d.join("A.generated.yaml");
    let dns = world_addr(53).to_string();
    let flags = [
        "--transparent-proxy",
        "--listen",
        "127.0.0.1:15001",
        "--dns-resolver",
        &dns,
    ];
    let gen = config::generate_with(b, &res, &generated, &flags)?;
    let cfg_a = config::read_yaml(&generated)?;
    let vip = SocketAddr::new(mesh_vip(&cfg_a, TARGET_HOST)?, 80);
    let mut paths = Vec::new();
    for kind in KINDS {
        let path = d.join(format!("{kind}.yaml"));
        config::write_yaml(&path, &variant(&cfg_a, kind, k.access_log)?)?;
        paths.push((kind, path));
    }
    world.install(&[])?;

    let to = Target {
        netns: Some(&topology.app.name),
        addr: vip,
    };
    let options = EnvoyOptions {
        uid: Some(ENVOY_UID),
        ..b.envoy_options()
    };
    let up = |kind: &str, path: &Path| -> Result<Proc, String> {
        let p = runner::on_cpu(Some(PROXY_CPU), || {
            topology
                .app
                .run(|| Proc::start(&d, kind, path, &options, None))
        })?;
        // The VIP is reachable only through the capture: a 200 proves the path.
        let got = topology.app.run(|| request_at(vip, TARGET_HOST))?;
        if got != 200 {
            return Err(format!(
                "transparent {kind}: {TARGET_HOST} at {vip} answered {got}, expected 200; see {}",
                p.stderr_path.display()
            ));
        }
        // Warm-up: connections to the upstream, V8 tiers up.
        wrk(&to, 2, k.connections, TARGET_HOST)?;
        Ok(p)
    };
    let mut t = Throughput {
        gen_cmd: gen.cmd,
        dir: d.clone(),
        ..Throughput::default()
    };
    for r in 0..rounds {
        for (kind, path) in rotated(&paths, r) {
            let p = up(kind, path)?;
            let (s, cmd) = measured(p.pid(), &to, seconds, k.connections, TARGET_HOST)?;
            t.wrk_cmd = cmd;
            log_sample("transparent", r, rounds, kind, &s);
            t.results.entry(kind.to_string()).or_default().push(s);
        }
    }
    if !k.callgrind.iter().any(|p| p == "transparent") {
        return Ok((t, None));
    }
    log("part 4: instructions per request under callgrind");
    let mut counted = BTreeMap::new();
    // One capture port: one variant at a time. Started from the app's namespace, whose
    // threads and processes stay in it.
    for (kind, path) in &paths {
        let one = [(*kind, path.clone())];
        let send = |_: &str, host: &str, n: usize| in_sequence(vip, host, n);
        let counts = instructions::each(&one, TARGET_HOST);
        counted.extend(
            topology
                .app
                .run(|| instructions::count(&d, &one, &options, &counts, &send))?,
        );
    }
    Ok((t, Some(counted)))
}

/// The VIP the builtin DNS gives `host`.
fn mesh_vip(cfg: &Value, host: &str) -> Result<IpAddr, String> {
    let listeners = cfg
        .get("static_resources")
        .and_then(|s| s.get("listeners"))
        .and_then(Value::as_sequence)
        .ok_or("generated config has no listeners")?;
    listeners
        .iter()
        .filter_map(|l| l.get("listener_filters")?.get(0)?.get("typed_config"))
        .filter_map(|t| {
            t.get("server_config")?
                .get("inline_dns_table")?
                .get("virtual_domains")
        })
        .filter_map(Value::as_sequence)
        .flatten()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(host))
        .and_then(|v| {
            v.get("endpoint")?
                .get("address_list")?
                .get("address")?
                .get(0)
        })
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the builtin DNS of the generated config has no VIP for {host}"))
}

/// Variant `kind` of the generated transparent configuration, with an admin socket of its own. On every VIP
/// listener (bound to one service): A keeps the wasm filter; B drops it and its route rewrites
/// the host (`host_rewrite_literal`); C replaces it with a Lua filter that rewrites `:authority`.
fn variant(cfg_a: &Value, kind: &str, access_log: bool) -> Result<Value, String> {
    let mut cfg = cfg_a.clone();
    config::own_admin(&mut cfg, kind)?;
    let mut vip_listeners = 0;
    for listener in seq(&mut cfg, &["static_resources", "listeners"])? {
        // The stats listener passes scrapes to the admin: no service of its own.
        if listener.get("name").and_then(Value::as_str) == Some("stats") {
            continue;
        }
        let Some(hcm) = listener
            .get_mut("filter_chains")
            .and_then(|c| c.get_mut(0))
            .and_then(|c| c.get_mut("filters"))
            .and_then(|f| f.get_mut(0))
            .and_then(|f| f.get_mut("typed_config"))
            .filter(|t| t.get("http_filters").is_some())
        else {
            continue;
        };
        vip_listeners += 1;
        if !access_log {
            if let Some(m) = hcm.as_mapping_mut() {
                m.remove("access_log");
            }
        }
        let service = at(hcm, &["route_config", "virtual_hosts", "0", "name"])?
            .as_str()
            .and_then(|n| n.strip_prefix("external_service_svc-"))
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or("a VIP listener's virtual host is not external_service_svc-NNNNN")?;
        let rewrite = authority(service);
        let filters = seq(hcm, &["http_filters"])?;
        let wasm_at = config::wasm_position(filters).ok_or("a VIP listener has no wasm filter")?;
        match kind {
            "A" => {}
            "B" => {
                filters.remove(wasm_at);
                for route in seq(hcm, &["route_config", "virtual_hosts", "0", "routes"])? {
                    if let Some(r) = route.get_mut("route").and_then(Value::as_mapping_mut) {
                        r.insert("host_rewrite_literal".into(), rewrite.clone().into());
                    }
                }
            }
            "C" => {
                let lua = format!(
                    "function envoy_on_request(handle)\n  handle:headers():replace(\":authority\", \"{rewrite}\")\nend\n"
                );
                filters[wasm_at] = config::lua_filter(&lua);
            }
            k => return Err(format!("unknown variant {k}")),
        }
    }
    if vip_listeners == 0 {
        return Err("generated config has no VIP listener".to_string());
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Per VIP listener: its name, the authority of the service its virtual host names, its
    /// HTTP filters' names, the `/` route's `host_rewrite_literal`, the Lua code (if any), and
    /// whether it keeps an access log.
    type Row = (
        String,
        String,
        Vec<String>,
        Option<String>,
        Option<String>,
        bool,
    );

    fn vip_listeners(cfg: &Value) -> Vec<Row> {
        let listeners = cfg["static_resources"]["listeners"].as_sequence().unwrap();
        let text = |v: &Value| v.as_str().map(str::to_string);
        listeners
            .iter()
            .filter(|l| l["name"] != "stats")
            .filter_map(|l| {
                let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
                let filters = hcm.get("http_filters")?.as_sequence()?;
                let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
                    .as_sequence()
                    .unwrap();
                let prefix = routes.iter().find(|r| r["match"].get("prefix").is_some());
                let lua = filters
                    .iter()
                    .find_map(|f| text(&f["typed_config"]["default_source_code"]["inline_string"]));
                let vhost = text(&hcm["route_config"]["virtual_hosts"][0]["name"]).unwrap();
                let service: usize = vhost["external_service_svc-".len()..].parse().unwrap();
                Some((
                    text(&l["name"]).unwrap(),
                    authority(service),
                    filters.iter().filter_map(|f| text(&f["name"])).collect(),
                    prefix.and_then(|r| text(&r["route"]["host_rewrite_literal"])),
                    lua,
                    hcm.get("access_log").is_some(),
                ))
            })
            .collect()
    }

    #[test]
    fn variants_differ_only_in_how_each_vip_listener_rewrites() {
        let dir = extsvc_testkit::test_dir();
        let resources = config::resources_at(2, &authority, None);
        let out = extsvc_testkit::generate(
            dir.path(),
            &resources,
            15001,
            None,
            &["--transparent-proxy".into()],
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let a = config::read_yaml(&dir.path().join("envoy.yaml")).unwrap();
        let vip = mesh_vip(&a, "svc-00001.mesh").unwrap();
        assert!(mesh_vip(&a, "svc-00009.mesh").is_err());
        let generated = vip_listeners(&a);
        assert!(
            generated
                .iter()
                .any(|(name, ..)| *name == format!("outbound:{vip}:80")),
            "{generated:?}"
        );
        for kind in KINDS {
            let rows = vip_listeners(&variant(&a, kind, false).unwrap());
            assert_eq!(rows.len(), generated.len(), "{kind}");
            for (name, service, filters, rewrite, lua, access_log) in rows {
                assert!(!access_log, "{kind} {name}");
                match kind {
                    "A" => {
                        assert_eq!(filters[0], "external_service", "{name}");
                        assert_eq!((rewrite, lua), (None, None), "{name}");
                    }
                    "B" => {
                        assert!(!filters.iter().any(|f| f.contains("lua")), "{name}");
                        assert!(!filters.iter().any(|f| f == "external_service"), "{name}");
                        assert_eq!(rewrite, Some(service), "{name}");
                    }
                    _ => {
                        assert_eq!(filters[0], "envoy.filters.http.lua", "{name}");
                        assert_eq!(rewrite, None, "{name}");
                        let lua = lua.unwrap();
                        assert!(lua.contains(&format!("\"{service}\"")), "{name}: {lua}");
                    }
                }
            }
        }
    }
}
