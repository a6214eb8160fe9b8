//! The names the filter, the generator, the tests and the tools agree on: written here once.

/// The filter's name in the generated configuration (`http_filters[].name`, the plugin name).
pub const FILTER_NAME: &str = "external_service";
/// The response header of a refusal: its value is the denial's reason.
pub const DENIED_HEADER: &str = "x-external-service-denied";
/// Why Envoy refused a CONNECT (`https_proxy`): the value of `DENIED_HEADER` on that reply.
pub const CONNECT_DENIAL: &str = "connect-not-served";
/// The response header of a reply Envoy made because the upstream connection failed: why
/// (e.g. the TLS verification error).
pub const UPSTREAM_FAILURE_HEADER: &str = "x-external-service-upstream-failure";
/// The filter-state key the filter sets, on a forwarded request, to the authority the app
/// asked for (Envoy's `:authority` is the rewritten one by the time the access log is written).
pub const REQUESTED_AUTHORITY_PROPERTY: &str = "requested_authority";
/// The same key as Envoy's access log reads it
/// (`%FILTER_STATE(wasm.requested_authority:PLAIN)%`).
pub const REQUESTED_AUTHORITY_FILTER_STATE: &str = "wasm.requested_authority";
/// Where `make build` puts the module, relative to the workspace root.
pub const MODULE_PATH: &str = "target/wasm32-wasip1/release/external_service_filter.wasm";
/// The prefix Envoy gives every metric a wasm module defines.
pub const ENVOY_METRIC_PREFIX: &str = "wasmcustom.";
/// Requests forwarded through the filter's listener to an undeclared host (passthrough on).
pub const PASSTHROUGH_METRIC: &str = "external_service.passthrough";
/// The VM's linear memory, published every few seconds.
pub const VM_MEMORY_METRIC: &str = "external_service.vm_memory_bytes";

/// Requests forwarded to a service: `FORWARDED_METRIC.<kuma.io/service>`.
pub const FORWARDED_METRIC: &str = "external_service.forwarded";
/// Requests refused: `DENIED_METRIC.<reason>` (`Denial::reason`).
pub const DENIED_METRIC: &str = "external_service.denied";

pub fn forwarded_metric(service: &str) -> String {
    format!("{FORWARDED_METRIC}.{service}")
}

pub fn denied_metric(reason: &str) -> String {
    format!("{DENIED_METRIC}.{reason}")
}
