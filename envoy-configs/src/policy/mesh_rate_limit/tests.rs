use external_service_model::protocol::Protocol::{Http, Tcp};

use super::Conf;
use crate::policy::test_support::{
    assert_hooks, assert_never_applies_to_mesh_external_service, assert_violations,
};

#[test]
fn what_it_sets_on_envoy() {
    assert_hooks::<Conf>(&[
        (
            "{local: {http: {requestRate: {num: 2, interval: 10s}, onRateLimit: {status: 503, \
             headers: {add: [{name: x-limited, value: 'yes'}]}}}}}",
            Http,
            "
route_filters:
  envoy.filters.http.local_ratelimit:
    '@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: external_service_rate_limit
    token_bucket:
      max_tokens: 2
      tokens_per_fill: 2
      fill_interval: 10s
    filter_enabled:
      default_value:
        numerator: 100
        denominator: HUNDRED
      runtime_key: local_rate_limit_enabled
    filter_enforced:
      default_value:
        numerator: 100
        denominator: HUNDRED
      runtime_key: local_rate_limit_enabled
    status:
      code: 503
    response_headers_to_add:
    - header:
        key: x-limited
        value: yes
http_filter:
  name: envoy.filters.http.local_ratelimit
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: external_service_rate_limit
",
        ),
        ("{local: {http: {disabled: true}}}", Http, "
http_filter:
  name: envoy.filters.http.local_ratelimit
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: external_service_rate_limit
"),
        ("{local: {tcp: {connectionRate: {num: 2, interval: 1s}}}}", Tcp, "
listener:
- name: envoy.filters.network.local_ratelimit
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
    stat_prefix: outbound_stats
    token_bucket:
      max_tokens: 2
      tokens_per_fill: 2
      fill_interval: 1s
"),
        (
            "{local: {tcp: {disabled: true, connectionRate: {num: 2, interval: 1s}}}}",
            Tcp,
            "
{}
",
        ),
    ]);
}

#[test]
fn kumas_rules() {
    assert_violations::<Conf>(&[
        ("{}", &["default.local: must be defined"]),
        (
            "{local: {http: {requestRate: {num: 0, interval: 50ms}}, tcp: {}}}",
            &[
                "default.local.http.requestRate.num: must be greater than 0",
                "default.local.http.requestRate.interval: must be greater than: 50ms",
                "default.local.tcp: must have at least one defined: disabled, connectionRate",
            ],
        ),
    ]);
}

#[test]
fn never_applies_to_a_mesh_external_service() {
    assert_never_applies_to_mesh_external_service::<Conf>("{local: {http: {requestRate: {num: 2, interval: 10s}}}}");
}
