//! Bootstrap.

use serde::Serialize;

use super::cluster::Cluster;
use super::config_source::ConfigSource;
use super::core::{Address, DnsResolverConfig, Extension};
use super::listener::Listener;
use super::tls::Secret;

/// `config.bootstrap.v3.Bootstrap`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bootstrap {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    pub admin: Admin,
    pub stats_config: StatsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typed_dns_resolver_config: Option<Extension<DnsResolverConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_resources: Option<StaticResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_resources: Option<DynamicResources>,
}

/// `config.metrics.v3.StatsConfig`: tags that turn parts of stat names into labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsConfig {
    pub stats_tags: Vec<TagSpecifier>,
}

/// The regex's first group is cut from the name; its second, inside it, is the tag's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagSpecifier {
    pub tag_name: String,
    pub regex: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admin {
    pub address: Address,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticResources {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
}

/// `config.core.v3.Node`: who this Envoy is, which xDS requires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub cluster: String,
}

/// `config.bootstrap.v3.Bootstrap.DynamicResources`: listeners and clusters from xDS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicResources {
    pub lds_config: ConfigSource,
    pub cds_config: ConfigSource,
}

/// `service.discovery.v3.DiscoveryResponse` as a file: what a `path_config_source` holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryResponse<R> {
    pub version_info: String,
    pub resources: Vec<R>,
}

/// A resource of a DiscoveryResponse, as an `Any`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum XdsResource<'a> {
    #[serde(rename = "type.googleapis.com/envoy.config.listener.v3.Listener")]
    Listener(&'a Listener),
    #[serde(rename = "type.googleapis.com/envoy.config.cluster.v3.Cluster")]
    Cluster(&'a Cluster),
    #[serde(rename = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret")]
    Secret(&'a Secret),
}
