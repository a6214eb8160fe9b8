//! Names of Envoy resources that several builders use.

/// The cluster name of a service: readable and stable.
pub fn cluster(service: &str) -> String {
    format!("external_service_{service}")
}
