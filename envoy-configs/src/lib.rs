//! Turns Kuma ExternalService resources into Envoy configuration.

pub mod atomic;
pub mod cli;
pub mod cluster_rules;
pub mod envoy;
pub mod generate;
pub mod identity;
pub mod kubernetes;
pub mod migrate;
pub mod pipeline;
pub mod policy;
pub mod read;
pub mod resolve;
pub mod role;
pub mod transparent_proxy;
pub mod xds_dir;
