//! Turns Kuma ExternalService resources into Envoy configuration.

pub mod generate;
pub mod read;
