//! MeshTimeout on Envoy: the cluster's connect timeout and how long its upstream connections
//! may stay open, the route's timeouts, and a tcp service's `tcp_proxy` idle timeout.

use external_service_model::catalog::Service;

use crate::envoy::{Cluster, CommonHttpProtocolOptions, MaxStreamDuration, RouteAction, TcpProxy};
use crate::policy::Configure;

use super::Conf;

impl Configure for Conf {
    /// `connectionTimeout` replaces Kuma's default.
    fn cluster(&self, _service: &Service, cluster: &mut Cluster) {
        if let Some(timeout) = self.connection_timeout {
            cluster.connect_timeout = timeout.to_envoy();
        }
    }

    /// `idleTimeout` and `http.maxConnectionDuration`.
    fn upstream_http(&self, options: &mut CommonHttpProtocolOptions) {
        if let Some(idle) = self.idle_timeout {
            options.idle_timeout = Some(idle.to_envoy());
        }
        if let Some(max) = self.http.as_ref().and_then(|h| h.max_connection_duration) {
            options.max_connection_duration = Some(max.to_envoy());
        }
    }

    /// `http.requestTimeout` for the whole upstream answer (504 `UT` past it) replaces the
    /// options' timeout; `streamIdleTimeout` and `maxStreamDuration`.
    fn route(&self, _service: &Service, route: &mut RouteAction) {
        let Some(http) = &self.http else {
            return;
        };
        if let Some(timeout) = http.request_timeout {
            route.timeout = Some(timeout.to_envoy());
        }
        if let Some(idle) = http.stream_idle_timeout {
            route.idle_timeout = Some(idle.to_envoy());
        }
        if let Some(max) = http.max_stream_duration {
            route.max_stream_duration = Some(MaxStreamDuration {
                max_stream_duration: max.to_envoy(),
            });
        }
    }

    /// `idleTimeout`.
    fn tcp_proxy(&self, proxy: &mut TcpProxy) {
        if let Some(idle) = self.idle_timeout {
            proxy.idle_timeout = Some(idle.to_envoy());
        }
    }
}
