//! What the upstream speaks: HTTP/2 options for http2 and grpc, and the ALPN TLS offers.

use external_service_model::protocol::Protocol;

use crate::envoy::{
    ExplicitHttpConfig, Http2ProtocolOptions, HttpProtocolOptions, Map, ProtocolOptions,
};

/// `typed_extension_protocol_options` of an HTTP/2 cluster.
pub fn http2_options() -> Map<ProtocolOptions> {
    Map::of(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        ProtocolOptions::Http(HttpProtocolOptions {
            explicit_http_config: ExplicitHttpConfig::Http2ProtocolOptions(Http2ProtocolOptions {}),
        }),
    )
}

/// The ALPN to offer over TLS: what the cluster will speak, nothing for TCP.
pub fn alpn(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Http => Some("http/1.1"),
        Protocol::Http2 | Protocol::Grpc => Some("h2"),
        Protocol::Tcp | Protocol::Kafka => None,
    }
}
