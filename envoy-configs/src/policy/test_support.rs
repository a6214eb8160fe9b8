//! What the kinds' table tests share: a `default` written in YAML, the violations Kuma's rules
//! find in it, and what its hooks make of Envoy's values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_model::catalog::Service;
use external_service_model::protocol::Protocol;
use external_service_model::resource::{Resource, Spec};
use external_service_model::{Kind, Origin};
use serde::Serialize;
use serde_json::{Map, Value};

use super::merge::{merge, Parsed};
use super::spec::Named;
use super::{check_policy, Conf};
use crate::envoy::{Cluster, CommonHttpProtocolOptions, Duration, RouteAction, TcpProxy};

/// `default` (YAML) as the kind reads it.
fn conf<C: Conf>(default: &str) -> C {
    serde_yaml_ng::from_str(default).unwrap_or_else(|e| panic!("{default}: {e}"))
}

/// Every `field: message` Kuma's rules find in `default`, written at `default`.
fn violations<C: Conf>(default: &str) -> Vec<String> {
    let mut out = Vec::new();
    conf::<C>(default).validate("default", &mut out);
    out.iter().map(ToString::to_string).collect()
}

/// What the hooks of `default` change for a service of `protocol`, as YAML: under each
/// hook's name, the fields of Envoy's value that differ from the builder's (the values of a
/// service no policy names). Only the hooks the builders call for that protocol: the HTTP
/// ones for HTTP services, `tcp_proxy` for the others.
fn hooks<C: Conf>(default: &str, protocol: Protocol) -> String {
    hooks_on::<C>(default, Kind::ExternalService, protocol)
}

/// [`hooks`] on a service of `kind`.
fn hooks_on<C: Conf>(default: &str, kind: Kind, protocol: Protocol) -> String {
    let conf = conf::<C>(default);
    let service = Service {
        kind,
        name: "s".to_string(),
        protocol,
        protocol_untagged: false,
        endpoints: Vec::new(),
        tls: None,
        authority: "s.test".to_string(),
        host_rewrite: None,
        matched: None,
        refused: None,
    };
    let mut found = Map::new();
    let mut put = |hook: &str, value: Option<Value>| {
        if let Some(value) = value {
            found.insert(hook.to_string(), value);
        }
    };

    let mut cluster = Cluster::default();
    conf.cluster(&service, &mut cluster);
    put("cluster", changed(&Cluster::default(), &cluster));

    let none = CommonHttpProtocolOptions {
        idle_timeout: None,
        max_connection_duration: None,
    };
    let mut upstream_http = none.clone();
    conf.upstream_http(&mut upstream_http);
    put("upstream_http", changed(&none, &upstream_http));

    if protocol.is_http() {
        let base = RouteAction {
            cluster: "external_service_s".to_string(),
            timeout: Some(Duration::from_secs(15)),
            idle_timeout: None,
            max_stream_duration: None,
            retry_policy: None,
            auto_host_rewrite: false,
            host_rewrite_literal: None,
            upgrade_configs: Vec::new(),
        };
        let mut route = base.clone();
        conf.route(&service, &mut route);
        put("route", changed(&base, &route));

        let mut route_filters = Vec::new();
        conf.route_filters(&mut route_filters);
        put("route_filters", some(&crate::envoy::Map(route_filters)));
        put("http_filter", conf.http_filter().map(|f| json(&f)));
    }

    let mut listener = Vec::new();
    conf.listener("outbound_stats", &mut listener);
    put("listener", some(&listener));

    if !protocol.is_http() {
        let base = TcpProxy {
            stat_prefix: "outbound_stats".to_string(),
            cluster: "external_service_s".to_string(),
            access_log: Vec::new(),
            idle_timeout: None,
            max_connect_attempts: None,
            ..TcpProxy::default()
        };
        let mut proxy = base.clone();
        conf.tcp_proxy(&mut proxy);
        put("tcp_proxy", changed(&base, &proxy));
    }

    serde_yaml_ng::to_string(&found).unwrap()
}

fn json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap()
}

/// `value`, unless it is empty.
fn some(value: &impl Serialize) -> Option<Value> {
    let value = json(value);
    let empty =
        value.as_array().is_some_and(Vec::is_empty) || value.as_object().is_some_and(Map::is_empty);
    (!empty).then_some(value)
}

/// The fields of `after` that differ from `before`'s.
fn changed(before: &impl Serialize, after: &impl Serialize) -> Option<Value> {
    let (Value::Object(before), Value::Object(after)) = (json(before), json(after)) else {
        panic!("not a struct");
    };
    let fields: Map<String, Value> = after
        .into_iter()
        .filter(|(k, v)| before.get(k) != Some(v))
        .collect();
    some(&fields)
}

/// Each case: a `default`, the protocol of the service it applies to, and what its hooks
/// change (YAML, written from its second line on, for readability).
pub fn assert_hooks<C: Conf>(cases: &[(&str, Protocol, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(default, protocol, want)| {
            let got = hooks::<C>(default, *protocol);
            (got != want.trim_start_matches('\n'))
                .then(|| format!("{default} ({protocol}); got:\n{got}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Each case: a `default` and every violation Kuma's rules find in it, in order.
pub fn assert_violations<C: Conf>(cases: &[(&str, &[&str])]) {
    for (default, want) in cases {
        assert_eq!(violations::<C>(default), *want, "{default}");
    }
}

/// A policy of kind `C` named `name` in mesh `default`, its spec written in YAML.
pub fn policy<C: Conf>(name: &str, spec: &str) -> Resource {
    Resource {
        origin: Origin {
            file: "test.yaml".to_string(),
            document: 0,
        },
        name: name.to_string(),
        mesh: "default".to_string(),
        labels: Default::default(),
        spec: Spec::Policy {
            kind: C::KIND,
            spec: serde_yaml_ng::from_str(spec).unwrap_or_else(|e| panic!("{spec}: {e}")),
        },
    }
}

/// Every `field: message` Kuma's rules find in a policy of kind `C` with this spec.
pub fn spec_violations<C: Conf>(spec: &str) -> Vec<String> {
    let Spec::Policy { kind, spec } = policy::<C>("p", spec).spec else {
        unreachable!("a policy");
    };
    check_policy(kind, &spec)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// What `policies` (of kind `C`, all valid) merge to for the service `kind`/`name` of mesh
/// `default`, if anything: the merged `default`, and which policy set each field.
pub fn merged<C: Conf>(
    policies: &[Resource],
    kind: Kind,
    name: &str,
) -> Option<(Value, Vec<String>)> {
    let parsed: Vec<Parsed<'_>> = policies
        .iter()
        .map(|p| Parsed::of(p).unwrap_or_else(|| panic!("invalid: {p:?}")))
        .collect();
    let found = merge::<C>(&parsed, "default", Named { kind, name })?;
    let fields = found
        .fields
        .iter()
        .map(|(f, p)| format!("{f}: {p}"))
        .collect();
    Some((found.merged, fields))
}

/// A `to[]` kind's entry for the MeshExternalService `ext`: Kuma's rules accept it, it is
/// what the MeshExternalService `ext` gets (and not an ExternalService whose
/// `kuma.io/service` is `ext`), and its hooks do to a MeshExternalService of `protocol`
/// what they do to an ExternalService.
pub fn assert_applies_to_mesh_external_service<C: Conf>(default: &str, protocol: Protocol) {
    let spec = format!(
        "{{to: [{{targetRef: {{kind: MeshExternalService, name: ext}}, default: {default}}}]}}"
    );
    assert_eq!(spec_violations::<C>(&spec), Vec::<String>::new(), "{spec}");
    let policies = [policy::<C>("p", &spec)];
    let (conf, _) = merged::<C>(&policies, Kind::MeshExternalService, "ext").expect("applies");
    let written: Value = serde_yaml_ng::from_str(default).unwrap();
    assert_eq!(conf, written, "{spec}");
    assert_eq!(
        merged::<C>(&policies, Kind::ExternalService, "ext"),
        None,
        "{spec}"
    );
    let on_mes = hooks_on::<C>(default, Kind::MeshExternalService, protocol);
    assert_eq!(on_mes, hooks::<C>(default, protocol), "{default}");
    assert_ne!(on_mes, "{}\n", "{default} changes nothing");
}

/// A `from[]` kind never applies to a MeshExternalService: Kuma refuses one as its target
/// (top level and `from[]`), and a mesh-wide policy applies to an ExternalService only (Kuma's
/// egress applies these kinds to ExternalServices alone).
pub fn assert_never_applies_to_mesh_external_service<C: Conf>(default: &str) {
    let targeted = format!(
        "{{targetRef: {{kind: MeshExternalService, name: ext}}, \
          from: [{{targetRef: {{kind: MeshExternalService, name: ext}}, default: {default}}}]}}"
    );
    assert_eq!(
        spec_violations::<C>(&targeted),
        [
            "spec.targetRef.kind: value is not supported",
            "spec.from[0].targetRef.kind: value is not supported",
        ]
    );
    let mesh_wide = format!("{{from: [{{targetRef: {{kind: Mesh}}, default: {default}}}]}}");
    let policies = [policy::<C>("p", &mesh_wide)];
    assert!(merged::<C>(&policies, Kind::ExternalService, "ext").is_some());
    assert_eq!(
        merged::<C>(&policies, Kind::MeshExternalService, "ext"),
        None
    );
}
