//! The workload that runs the Envoys: the egress gateway's Deployment and Service, or the
//! pieces of a Dataplane's sidecar as a PodTemplate, whose `initContainers`, `containers` and
//! `volumes` a user merges into their own pod (the README's "Running a fleet" says how).

use serde_json::{json, Value};

use super::pack::{File, Packed};
use super::{pod_path, Fleet, Meta};
use crate::pipeline::Built;
use crate::role::{self, Role};
use crate::transparent_proxy::rules::{install_rules, restore_input, Capture, Family};

/// The uid of the official Envoy image's `envoy` user: the egress gateway runs as it.
pub const EGRESS_UID: u32 = 101;
/// The uid a sidecar's Envoy runs as, which its transparent proxy does not capture (Kuma's
/// default).
pub const SIDECAR_UID: u32 = 5678;
/// The transparent proxy's rules, as `iptables-restore` input, in the bootstrap's ConfigMap.
const CAPTURE_FILES: [(Family, &str); 2] = [(Family::V4, "capture.v4"), (Family::V6, "capture.v6")];

/// The volumes' objects.
pub struct Volumes<'a> {
    pub xds_maps: &'a [Packed],
    pub key_secrets: &'a [Packed],
    pub module: &'a str,
    pub bootstrap: &'a str,
}

/// The transparent proxy's rules for the init containers.
pub fn capture_files(capture: &Capture) -> Vec<File> {
    let rules = install_rules(capture);
    CAPTURE_FILES
        .iter()
        .map(|(family, name)| File::text(name, restore_input(&rules, *family)))
        .collect()
}

/// The egress gateway's Deployment and Service, or the sidecar's PodTemplate.
pub fn workload(
    built: &Built,
    meta: &Meta<'_>,
    volumes: &Volumes<'_>,
    capture: Option<&Capture>,
) -> Result<Vec<Value>, String> {
    let (options, fleet) = (&built.options, meta.fleet);
    let stats_port = options.stats_listen.map(|a| a.port());
    match &options.role {
        Role::Mesh => Ok(egress(
            meta,
            volumes,
            options.listen.port(),
            None,
            stats_port,
        )),
        Role::ZoneEgress(name) => {
            let (_, spec) = role::zone_egress(&built.loaded.checked.resources, name)?;
            let port = u16::try_from(spec.networking.port).unwrap_or_default();
            let address = spec.networking.address.as_str();
            Ok(egress(meta, volumes, port, Some(address), stats_port))
        }
        Role::Dataplane(_) => {
            let envoy = envoy_container("extsvc-envoy", fleet, SIDECAR_UID, None, stats_port);
            let init = capture.map(|_| init_containers(fleet)).unwrap_or_default();
            let spec = pod_spec(SIDECAR_UID, init, envoy, volumes);
            Ok(vec![json!({
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": meta.metadata(&fleet.name, false),
                "template": {"spec": spec},
            })])
        }
    }
}

/// The egress gateway's Deployment and its Service on `port`; a ZoneEgress's Service holds
/// its `networking.address` (`cluster_ip`), where the sidecars send to.
fn egress(
    meta: &Meta<'_>,
    volumes: &Volumes<'_>,
    port: u16,
    cluster_ip: Option<&str>,
    stats_port: Option<u16>,
) -> Vec<Value> {
    let fleet = meta.fleet;
    let envoy = envoy_container("envoy", fleet, EGRESS_UID, Some(port), stats_port);
    let spec = pod_spec(EGRESS_UID, Vec::new(), envoy, volumes);
    let selector = json!({"app.kubernetes.io/name": fleet.name});
    let mut service = json!({
        "selector": selector,
        "ports": [{"name": "proxy", "port": port, "targetPort": "proxy"}],
    });
    if let Some(ip) = cluster_ip {
        service["clusterIP"] = json!(ip);
    }
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta.metadata(&fleet.name, false),
            "spec": {
                "replicas": fleet.replicas,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": meta.labels()}, "spec": spec},
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta.metadata(&fleet.name, false),
            "spec": service,
        }),
    ]
}

fn pod_spec(uid: u32, init_containers: Vec<Value>, envoy: Value, volumes: &Volumes<'_>) -> Value {
    let mut spec = json!({
        // The projected files are readable by this group only (mode 0440).
        "securityContext": {"fsGroup": uid},
    });
    if !init_containers.is_empty() {
        spec["initContainers"] = json!(init_containers);
    }
    spec["containers"] = json!([envoy]);
    spec["volumes"] = json!(pod_volumes(volumes));
    spec
}

fn envoy_container(
    name: &str,
    fleet: &Fleet,
    uid: u32,
    proxy_port: Option<u16>,
    stats_port: Option<u16>,
) -> Value {
    let layout = &fleet.layout;
    let mut ports = Vec::new();
    if let Some(port) = proxy_port {
        ports.push(json!({"name": "proxy", "containerPort": port}));
    }
    let mut container = json!({
        "name": name,
        "image": fleet.envoy_image,
        "args": ["-c", pod_path(&layout.bootstrap())],
    });
    if let Some(port) = stats_port {
        ports.push(json!({"name": "extsvc-stats", "containerPort": port}));
    }
    if !ports.is_empty() {
        container["ports"] = json!(ports);
    }
    if let Some(port) = stats_port {
        container["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": port}});
    }
    container["securityContext"] = json!({
        "runAsUser": uid,
        "runAsGroup": uid,
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": match proxy_port {
            // A port below 1024 needs this one capability, even for a non-root user.
            Some(port) if port < 1024 => json!({"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}),
            _ => json!({"drop": ["ALL"]}),
        },
    });
    container["volumeMounts"] = json!([
        {"name": "extsvc-xds", "mountPath": pod_path(&layout.xds_dir()), "readOnly": true},
        {"name": "extsvc-module", "mountPath": pod_path(&layout.module_dir()), "readOnly": true},
        {"name": "extsvc-bootstrap", "mountPath": pod_path(&layout.bootstrap_dir()), "readOnly": true},
        {"name": "extsvc-run", "mountPath": pod_path(&layout.run_dir())},
    ]);
    container
}

/// One init container per IP family, each applying its rules with `iptables-restore` (the
/// image has no shell), as root with `NET_ADMIN` for this pod's network namespace only.
fn init_containers(fleet: &Fleet) -> Vec<Value> {
    let dir = fleet.layout.bootstrap_dir();
    CAPTURE_FILES
        .iter()
        .map(|(family, file)| {
            let tool = format!("{}-restore", family.tool());
            json!({
                "name": format!("extsvc-{}", file.replace('.', "-")),
                "image": fleet.init_image,
                "command": [tool, "--noflush", pod_path(&dir.join(file))],
                "securityContext": {
                    "runAsUser": 0,
                    "runAsNonRoot": false,
                    "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                },
                "volumeMounts": [{
                    "name": "extsvc-bootstrap",
                    "mountPath": pod_path(&dir),
                    "readOnly": true,
                }],
            })
        })
        .collect()
}

fn pod_volumes(volumes: &Volumes<'_>) -> Vec<Value> {
    let items = |packed: &Packed| -> Vec<Value> {
        (packed.files.iter())
            .map(|f| json!({"key": f.key, "path": f.path}))
            .collect()
    };
    let mut sources: Vec<Value> = (volumes.xds_maps.iter())
        .map(|m| json!({"configMap": {"name": m.name, "items": items(m)}}))
        .collect();
    sources.extend(
        (volumes.key_secrets.iter())
            .map(|s| json!({"secret": {"name": s.name, "items": items(s)}})),
    );
    vec![
        json!({"name": "extsvc-xds", "projected": {"defaultMode": 0o440, "sources": sources}}),
        json!({"name": "extsvc-module", "configMap": {"name": volumes.module, "defaultMode": 0o444}}),
        json!({"name": "extsvc-bootstrap", "configMap": {"name": volumes.bootstrap, "defaultMode": 0o444}}),
        json!({"name": "extsvc-run", "emptyDir": {}}),
    ]
}
