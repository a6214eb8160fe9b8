//! What the kinds' table tests share: a `default` written in YAML, the violations Kuma's rules
//! find in it, and what its hooks make of Envoy's values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_model::catalog::Service;
use external_service_model::protocol::Protocol;
use external_service_model::Kind;
use serde::Serialize;
use serde_json::{Map, Value};

use super::Conf;
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
    let conf = conf::<C>(default);
    let service = Service {
        kind: Kind::ExternalService,
        name: "s".to_string(),
        protocol,
        protocol_untagged: false,
        endpoints: Vec::new(),
        tls: None,
        authority: "s.test".to_string(),
        host_rewrite: None,
        matched: None,
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
