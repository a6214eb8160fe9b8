//! What the upstream speaks: HTTP/2 options for http2 and grpc, and the ALPN TLS offers.

use external_service_model::protocol::Protocol;

use crate::envoy::{
    CommonHttpProtocolOptions, ExplicitHttpConfig, Http1ProtocolOptions, Http2ProtocolOptions,
    HttpProtocolOptions, Map, ProtocolOptions,
};

/// `typed_extension_protocol_options` of a cluster: HTTP/2 for http2 and grpc, and how long
/// its connections may stay open (a MeshTimeout's `idleTimeout` and
/// `http.maxConnectionDuration`); none for HTTP/1.1 with Envoy's defaults, and for TCP.
pub fn options(
    protocol: Protocol,
    common: Option<CommonHttpProtocolOptions>,
) -> Option<Map<ProtocolOptions>> {
    let explicit_http_config = match protocol {
        Protocol::Http2 | Protocol::Grpc => {
            ExplicitHttpConfig::Http2ProtocolOptions(Http2ProtocolOptions {})
        }
        Protocol::Http if common.is_some() => {
            ExplicitHttpConfig::HttpProtocolOptions(Http1ProtocolOptions {})
        }
        Protocol::Http | Protocol::Tcp | Protocol::Kafka => return None,
    };
    Some(Map::of(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        ProtocolOptions::Http(HttpProtocolOptions {
            common_http_protocol_options: common,
            explicit_http_config,
        }),
    ))
}

/// The ALPN to offer over TLS: what the cluster will speak, nothing for TCP.
pub fn alpn(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Http => Some("http/1.1"),
        Protocol::Http2 | Protocol::Grpc => Some("h2"),
        Protocol::Tcp | Protocol::Kafka => None,
    }
}
