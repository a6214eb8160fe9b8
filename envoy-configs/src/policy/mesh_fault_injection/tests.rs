use external_service_model::protocol::Protocol::Http;

use super::Conf;
use crate::policy::test_support::{
    assert_hooks, assert_never_applies_to_mesh_external_service, assert_violations,
};

#[test]
fn what_it_sets_on_envoy() {
    assert_hooks::<Conf>(&[
        (
            "{http: [{abort: {httpStatus: 503, percentage: 50}}, {delay: {value: 2s, \
             percentage: '12.5'}, responseBandwidth: {limit: 1 Mbps, percentage: 100}}]}",
            Http,
            "
route_filters:
  envoy.filters.http.fault:
    '@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    delay:
      fixed_delay: 2s
      percentage:
        numerator: 125000
        denominator: MILLION
    abort:
      http_status: 503
      percentage:
        numerator: 500000
        denominator: MILLION
    response_rate_limit:
      fixed_limit:
        limit_kbps: 1000
      percentage:
        numerator: 1000000
        denominator: MILLION
http_filter:
  name: envoy.filters.http.fault
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
",
        ),
        ("{http: []}", Http, "
http_filter:
  name: envoy.filters.http.fault
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
"),
    ]);
}

#[test]
fn kumas_rules() {
    assert_violations::<Conf>(&[
        ("{}", &[]),
        (
            "{http: [{abort: {httpStatus: 600, percentage: 50}}, {abort: {httpStatus: 500, \
             percentage: 101}}]}",
            &[
                "default.http[0].abort.httpStatus: must be in inclusive range [100, 599]",
                "default.http[1].abort.percentage: must be in inclusive range [0.0, 100.0]",
                "default.http: not supported yet by extsvc: more than one abort",
            ],
        ),
    ]);
}

#[test]
fn never_applies_to_a_mesh_external_service() {
    assert_never_applies_to_mesh_external_service::<Conf>("{http: [{abort: {httpStatus: 503, percentage: 50}}]}");
}
