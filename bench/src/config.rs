//! The bench's configurations: n ExternalServices, `extsvc generate` on them (timed), and the
//! variants made from the generated bootstrap: A as generated, B native routes, C Lua.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use serde_yaml_ng::Value;

use super::{name, Bench};
use extsvc_testkit::runner;

/// Where service i lives: a name the bench DNS answers, or a loopback IP (no DNS at all).
pub fn address(b: &Bench, i: usize, tls: bool, ip: bool) -> String {
    let port = if tls { b.upstream_tls } else { b.upstream_http };
    if ip {
        format!("127.1.{}.{}:{port}", i >> 8, i & 255)
    } else {
        format!("{}.bench.test:{port}", name(i))
    }
}

/// n ExternalServices `svc-NNNNN` -> [`address`], passthrough off, TLS with the bench CA
/// inline when `tls`.
pub fn resources(b: &Bench, n: usize, tls: bool, ip: bool) -> String {
    let ca = tls.then(|| base64::engine::general_purpose::STANDARD.encode(b.ca.ca_pem()));
    resources_at(n, &|i| address(b, i, tls, ip), ca.as_deref())
}

/// n ExternalServices `svc-NNNNN` -> `address(i)`, passthrough off, TLS verified by `ca_base64`
/// (inline) when given.
pub fn resources_at(
    n: usize,
    address: &dyn Fn(usize) -> String,
    ca_base64: Option<&str>,
) -> String {
    let mut y = String::from(
        "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n",
    );
    for i in 0..n {
        let _ = write!(
            y,
            "---\ntype: ExternalService\nmesh: default\nname: es-{i}\ntags:\n  kuma.io/service: {}\n  \
             kuma.io/protocol: http\nnetworking:\n  address: {}\n",
            name(i),
            address(i)
        );
        if let Some(ca) = ca_base64 {
            let _ = write!(
                y,
                "  tls:\n    enabled: true\n    caCert:\n      inline: {ca}\n"
            );
        }
    }
    y
}

/// One `extsvc generate` run under `/usr/bin/time`.
pub struct Generated {
    pub cmd: Vec<String>,
    pub wall: f64,
    pub rss_kib: u64,
    pub cpu: f64,
}

/// Runs `extsvc generate RESOURCES -o OUT` (listener on A's port) under `/usr/bin/time`.
pub fn generate(b: &Bench, resources: &Path, out: &Path) -> Result<Generated, String> {
    let listen = format!("127.0.0.1:{}", b.port("A"));
    let flags = ["--listen", &listen, "--dns-resolver", &b.dns.to_string()];
    generate_with(b, resources, out, &flags)
}

/// [`generate`] with these flags instead of the listener and resolver.
pub fn generate_with(
    b: &Bench,
    resources: &Path,
    out: &Path,
    flags: &[&str],
) -> Result<Generated, String> {
    let mut cmd: Vec<String> = vec![
        b.extsvc.display().to_string(),
        "generate".into(),
        resources.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--stats-listen".into(),
        "127.0.0.1:0".into(),
        "--wasm".into(),
        b.wasm.display().to_string(),
        "--system-ca".into(),
        "/etc/ssl/certs/ca-certificates.crt".into(),
    ];
    cmd.extend(flags.iter().map(|f| f.to_string()));
    let stats = out.with_extension("time");
    let o = runner::run(
        Command::new("/usr/bin/time")
            .arg("-o")
            .arg(&stats)
            .args(["-f", "%e %M %U %S"])
            .args(&cmd),
        Duration::from_secs(300),
    )?;
    if !o.status.success() {
        return Err(format!(
            "extsvc generate failed ({}): {}\n{}",
            o.status,
            cmd.join(" "),
            o.stderr
        ));
    }
    let text = fs::read_to_string(&stats).map_err(|e| format!("{}: {e}", stats.display()))?;
    let f: Vec<&str> = text.split_whitespace().collect();
    let last4 = f.get(f.len().saturating_sub(4)..).unwrap_or(&[]);
    let num = |i: usize| last4.get(i).and_then(|v| v.parse::<f64>().ok());
    match (num(0), num(1), num(2), num(3)) {
        (Some(wall), Some(rss), Some(user), Some(sys)) => Ok(Generated {
            cmd,
            wall,
            rss_kib: rss as u64,
            cpu: user + sys,
        }),
        _ => Err(format!("{}: unexpected {text:?}", stats.display())),
    }
}

/// Reads a YAML file into a value (order kept).
pub fn read_yaml(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a value as YAML.
pub fn write_yaml(path: &Path, v: &Value) -> Result<(), String> {
    let text = serde_yaml_ng::to_string(v).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Gives a variant's admin a Unix socket of its own (the generated one's path and `.kind`),
/// and the stats listener's cluster with it: variants may run side by side.
pub(super) fn own_admin(cfg: &mut Value, kind: &str) -> Result<(), String> {
    let pipe = ["address", "pipe", "path"];
    let path = at(cfg, &[&["admin"][..], &pipe].concat())?;
    let own = Value::from(format!(
        "{}.{kind}",
        path.as_str().ok_or("the admin's path is not a string")?
    ));
    *path = own.clone();
    for cluster in seq(cfg, &["static_resources", "clusters"])? {
        if cluster.get("name").and_then(Value::as_str) == Some("admin") {
            let endpoint = [
                "load_assignment",
                "endpoints",
                "0",
                "lb_endpoints",
                "0",
                "endpoint",
            ];
            *at(cluster, &[&endpoint[..], &pipe].concat())? = own.clone();
        }
    }
    Ok(())
}

pub(super) fn at<'a>(v: &'a mut Value, path: &[&str]) -> Result<&'a mut Value, String> {
    let mut cur = v;
    for key in path {
        cur = match key.parse::<usize>() {
            Ok(i) => cur.get_mut(i),
            Err(_) => cur.get_mut(*key),
        }
        .ok_or_else(|| format!("generated config has no {}", path.join(".")))?;
    }
    Ok(cur)
}

pub(super) fn seq<'a>(v: &'a mut Value, path: &[&str]) -> Result<&'a mut Vec<Value>, String> {
    at(v, path)?
        .as_sequence_mut()
        .ok_or_else(|| format!("generated config: {} is not a list", path.join(".")))
}

fn to_value(j: serde_json::Value) -> Value {
    serde_yaml_ng::to_value(j).unwrap_or(Value::Null)
}

/// The same job as the filter: .mesh name (or declared host) -> rewrite; anything else -> 403.
const LUA: &str = r#"
-- The same job as the filter: .mesh name (or declared host) -> rewrite; anything else -> 403.
local services = {
%s
}
function envoy_on_request(handle)
  local headers = handle:headers()
  local target = services[string.lower(headers:get(":authority") or "")]
  if target == nil then
    handle:respond({[":status"] = "403", ["x-external-service-denied"] = "undeclared-host"},
      "the host is not declared by any ExternalService or MeshExternalService\n")
    return
  end
  headers:replace(":authority", target)
  handle:clearRouteCache()
end
"#;

/// Where the wasm filter is in a list of HTTP filters.
pub(super) fn wasm_position(filters: &[Value]) -> Option<usize> {
    filters.iter().position(|f| {
        f.get("typed_config")
            .and_then(|t| t.get("@type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t.contains("wasm"))
    })
}

/// An inline Lua HTTP filter.
pub(super) fn lua_filter(code: &str) -> Value {
    to_value(json!({
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code},
        },
    }))
}

/// What one variant is made of.
pub struct Variant<'a> {
    /// `A` (generated, wasm), `B` (native routes + `host_rewrite_literal`), `C` (Lua); `R`
    /// and `W` are A with a minimal module (`minimal.rs`).
    pub kind: char,
    pub services: usize,
    /// The authority the filter rewrites service i to.
    pub authority: &'a dyn Fn(usize) -> String,
    /// For A, R and W: another module than the generated one.
    pub wasm: Option<&'a Path>,
    pub listen: u16,
    pub access_log: bool,
}

/// Variant `v` of the generated config `cfg_a`: the same clusters, an admin socket of its own.
pub fn variant(cfg_a: &Value, v: &Variant) -> Result<Value, String> {
    let mut cfg = cfg_a.clone();
    own_admin(&mut cfg, &v.kind.to_string())?;
    let listeners = seq(&mut cfg, &["static_resources", "listeners"])?;
    let outbound = listeners
        .iter_mut()
        .find(|l| l.get("name").and_then(Value::as_str) == Some("outbound_http"))
        .ok_or("generated config has no outbound_http listener")?;
    *at(outbound, &["address", "socket_address", "port_value"])? = Value::from(v.listen);
    let hcm = at(
        outbound,
        &["filter_chains", "0", "filters", "0", "typed_config"],
    )?;
    if !v.access_log {
        if let Some(m) = hcm.as_mapping_mut() {
            m.remove("access_log");
        }
    }
    let filters = seq(hcm, &["http_filters"])?;
    let wasm_at = wasm_position(filters).ok_or("generated config has no wasm filter")?;
    let names: Vec<String> = (0..v.services).map(name).collect();
    match v.kind {
        'A' | 'R' | 'W' => {
            if let Some(wasm) = v.wasm {
                let f = &mut filters[wasm_at];
                *at(
                    f,
                    &[
                        "typed_config",
                        "config",
                        "vm_config",
                        "code",
                        "local",
                        "filename",
                    ],
                )? = Value::from(wasm.display().to_string());
            }
        }
        'B' => {
            filters.remove(wasm_at);
            let vhosts = seq(hcm, &["route_config", "virtual_hosts"])?;
            let catch_all = vhosts
                .pop()
                .ok_or("generated config has no virtual hosts")?;
            vhosts.clear();
            for (i, n) in names.iter().enumerate() {
                let a = (v.authority)(i);
                vhosts.push(to_value(json!({
                    "name": format!("external_service_{n}"),
                    "domains": [format!("{n}.mesh"), format!("{n}.mesh:80"), a],
                    "routes": [{"match": {"prefix": "/"}, "route": {
                        "cluster": format!("external_service_{n}"), "host_rewrite_literal": a}}],
                })));
            }
            vhosts.push(catch_all);
        }
        'C' => {
            let mut entries = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let a = (v.authority)(i);
                for h in [format!("{n}.mesh"), format!("{n}.mesh:80"), a.clone()] {
                    entries.push(format!("  [\"{h}\"] = \"{a}\","));
                }
            }
            filters[wasm_at] = lua_filter(&LUA.replacen("%s", &entries.join("\n"), 1));
        }
        k => return Err(format!("unknown variant {k}")),
    }
    Ok(cfg)
}
