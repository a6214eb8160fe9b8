//! Access logs.

use serde::Serialize;

use super::core::{DataSource, Extension, Map};

pub type AccessLog = Extension<AccessLogConfig>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum AccessLogConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
    )]
    Stdout(StdoutAccessLog),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StdoutAccessLog {
    pub log_format: SubstitutionFormatString,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubstitutionFormatString {
    JsonFormat(Map<String>),
    /// Text with Envoy's `%...%` commands (`text_format` itself is deprecated).
    TextFormatSource(DataSource),
}
