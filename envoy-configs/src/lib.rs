//! Turns Kuma ExternalService resources into Envoy configuration.

pub mod cli;
pub mod generate;
pub mod read;
