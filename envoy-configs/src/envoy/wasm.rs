//! Wasm.

use serde::Serialize;

use super::core::DataSource;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wasm {
    pub config: PluginConfig,
}

/// `extensions.wasm.v3.PluginConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginConfig {
    pub name: &'static str,
    pub vm_config: VmConfig,
    pub configuration: PluginConfiguration,
    pub failure_policy: FailurePolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmConfig {
    pub vm_id: &'static str,
    pub runtime: &'static str,
    pub code: AsyncDataSource,
}

/// `config.core.v3.AsyncDataSource` (local only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsyncDataSource {
    pub local: DataSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum PluginConfiguration {
    #[serde(rename = "type.googleapis.com/google.protobuf.StringValue")]
    String(StringValue),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StringValue {
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailurePolicy {
    FailReload,
}
