//! What a kind's merged `default` does to Envoy, one hook per Envoy concern (as Kuma's
//! `configurer.go`). The generic builders in `generate/` call every hook of every kind that
//! applies to a service, in the registry's order, and know no kind by name; a kind writes only
//! the hooks it needs, the others do nothing.

use std::fmt;

use external_service_model::catalog::Service;

use crate::envoy::{
    Cluster, CommonHttpProtocolOptions, HttpFilter, HttpFilterConfig, NetworkFilter, RouteAction,
    TcpProxy,
};

pub trait Configure: fmt::Debug + Send + Sync {
    /// The service's cluster, after the builder set its endpoints, TLS and defaults.
    fn cluster(&self, _service: &Service, _cluster: &mut Cluster) {}

    /// How long the service's upstream HTTP connections may stay open; the cluster builder
    /// writes these options only when some hook sets one.
    fn upstream_http(&self, _options: &mut CommonHttpProtocolOptions) {}

    /// The route to an HTTP service, after the builder set its cluster and default timeout.
    fn route(&self, _service: &Service, _route: &mut RouteAction) {}

    /// What the route turns on in the HTTP filters of [`Configure::http_filter`]
    /// (`typed_per_filter_config`, by filter name).
    fn route_filters(&self, _config: &mut Vec<(String, HttpFilterConfig)>) {}

    /// The HTTP filter this kind needs in every connection manager when some HTTP service has
    /// it, configured to do nothing by itself (its routes turn it on).
    fn http_filter(&self) -> Option<HttpFilter> {
        None
    }

    /// Network filters that go before the listener's own, on each listener bound to the
    /// service.
    fn listener(&self, _stat_prefix: &str, _filters: &mut Vec<NetworkFilter>) {}

    /// A tcp service's `tcp_proxy`.
    fn tcp_proxy(&self, _proxy: &mut TcpProxy) {}
}
