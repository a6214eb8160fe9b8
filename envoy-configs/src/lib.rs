//! Turns Kuma ExternalService resources into Envoy configuration.

pub mod cli;
pub mod cluster_rules;
pub mod envoy;
pub mod generate;
pub mod policy;
pub mod read;
pub mod resolve;
