//! The names the filter, the generator, the tests and the tools agree on: written here once.

/// The filter's name in the generated configuration (`http_filters[].name`, the plugin name).
pub const FILTER_NAME: &str = "external_service";
/// The response header of a refusal: its value is the denial's reason.
pub const DENIED_HEADER: &str = "x-external-service-denied";
/// Why Envoy refused a CONNECT (`https_proxy`): the value of `DENIED_HEADER` on that reply.
pub const CONNECT_DENIAL: &str = "connect-not-served";
/// Why Envoy refused an upgrade (`Upgrade: websocket`, `Upgrade: CONNECT`, ...): none is served.
pub const UPGRADE_DENIAL: &str = "upgrade-not-served";
/// Why Envoy refused an `https://` URL sent over plain HTTP (Envoy originates TLS: the app
/// sends `http://host:443/`).
pub const HTTPS_URL_DENIAL: &str = "https-url-not-served";
/// Why Envoy refused a path that is not absolute (`OPTIONS *`, `GET x`).
pub const PATH_DENIAL: &str = "bad-path";
/// The response header of a reply Envoy made because the upstream connection failed: why
/// (e.g. the TLS verification error).
pub const UPSTREAM_FAILURE_HEADER: &str = "x-external-service-upstream-failure";
/// The filter-state key the filter sets, on a forwarded request whose authority it rewrote,
/// to the authority the app asked for (Envoy's `:authority` is the rewritten one by the time
/// the access log is written). A request that already named the real authority sets nothing.
pub const REQUESTED_AUTHORITY_PROPERTY: &str = "requested_authority";
/// The same key as Envoy's access log reads it
/// (`%FILTER_STATE(wasm.requested_authority:PLAIN)%`).
pub const REQUESTED_AUTHORITY_FILTER_STATE: &str = "wasm.requested_authority";
/// Where `make build` puts the module (optimised by binaryen's `wasm-opt`), relative to the
/// workspace root.
pub const MODULE_PATH: &str = "target/wasm32-wasip1/release/external_service_filter.wasm";
/// Where `make build` puts the test build that counts its allocations (cargo profile and
/// feature `count-allocations`), relative to the workspace root.
pub const ALLOCATION_COUNTING_MODULE_PATH: &str =
    "target/wasm32-wasip1/count-allocations/external_service_filter.wasm";
/// The export of that build that answers how many allocations the module has made.
pub const ALLOCATIONS_EXPORT: &str = "external_service_allocations";
/// The prefix Envoy gives every metric a wasm module defines.
pub const ENVOY_METRIC_PREFIX: &str = "wasmcustom.";
/// The VM's linear memory, published every few seconds.
pub const VM_MEMORY_METRIC: &str = "external_service.vm_memory_bytes";

/// Requests refused: `DENIED_METRIC.<reason>` (`Denial::reason`).
pub const DENIED_METRIC: &str = "external_service.denied";
/// The cluster stat that counts the requests forwarded to a service (or passed through):
/// `cluster.<cluster>.upstream_rq_completed`, every request the router finished with that
/// cluster, whatever the answer (a failed connection's 503 included). Envoy keeps it; the
/// filter counts no forwards.
pub const FORWARDED_CLUSTER_STAT: &str = "upstream_rq_completed";
/// The prefix of a refusal's `%RESPONSE_CODE_DETAILS%`: `external_service_denied{<reason>}`.
pub const DENIED_DETAILS: &str = "external_service_denied";
/// `%RESPONSE_CODE_DETAILS%` of the 500 the filter answers a stream whose plugin
/// configuration it does not know (never forwarded open).
pub const UNCONFIGURED_DETAILS: &str = "external_service_unconfigured";

pub fn denied_metric(reason: &str) -> String {
    format!("{DENIED_METRIC}.{reason}")
}

/// A refusal's response code details, as Envoy logs them (`%RESPONSE_CODE_DETAILS%`).
pub fn denied_details(reason: &str) -> String {
    format!("{DENIED_DETAILS}{{{reason}}}")
}

/// The full name of the stat that counts the requests forwarded to `cluster`.
pub fn forwarded_stat(cluster: &str) -> String {
    format!("cluster.{cluster}.{FORWARDED_CLUSTER_STAT}")
}

/// `proxy_log_level_t` of the proxy-wasm ABI 0.2.1: the levels the filter logs at and reads
/// from its host, and the levels the test host (`host-tests`) records and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    #[default]
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    /// The level of an ABI value; one the ABI does not define is `None`.
    pub fn from_u32(value: u32) -> Option<LogLevel> {
        Some(match value {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_built_from_parts() {
        assert_eq!(
            denied_details("undeclared-host"),
            "external_service_denied{undeclared-host}"
        );
        assert_eq!(
            forwarded_stat("external_service_httpbin"),
            "cluster.external_service_httpbin.upstream_rq_completed"
        );
    }
}
