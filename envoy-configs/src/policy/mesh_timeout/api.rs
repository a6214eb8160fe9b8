//! MeshTimeout: `to[].default` and Kuma's rules on it.

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;

use crate::policy::duration::Duration;
use crate::policy::rules::{greater_than_zero, not_negative};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    pub connection_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub http: Option<Http>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Http {
    pub request_timeout: Option<Duration>,
    pub stream_idle_timeout: Option<Duration>,
    pub max_stream_duration: Option<Duration>,
    pub max_connection_duration: Option<Duration>,
}

impl crate::policy::Conf for Conf {
    const KIND: Kind = Kind::MeshTimeout;

    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        if self.connection_timeout.is_none() && self.idle_timeout.is_none() && self.http.is_none() {
            out.push(Violation::new(
                path,
                "at least one timeout should be configured",
            ));
            return;
        }
        greater_than_zero(path, "connectionTimeout", self.connection_timeout, out);
        not_negative(path, "idleTimeout", self.idle_timeout, out);
        let Some(http) = &self.http else {
            return;
        };
        let path = format!("{path}.http");
        let all = [
            ("requestTimeout", http.request_timeout),
            ("streamIdleTimeout", http.stream_idle_timeout),
            ("maxStreamDuration", http.max_stream_duration),
            ("maxConnectionDuration", http.max_connection_duration),
        ];
        if all.iter().all(|(_, d)| d.is_none()) {
            out.push(Violation::new(
                path.as_str(),
                "at least one timeout in this section should be configured",
            ));
        }
        for (field, d) in all {
            not_negative(&path, field, d, out);
        }
    }
}
