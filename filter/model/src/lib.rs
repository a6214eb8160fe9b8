//! Kuma's ExternalService policy in plain Rust: the resources and the documents they are read
//! from, their validation, the catalog built from them, and the per-request decision. Both the
//! filter module and `extsvc` are built on this crate; neither rule nor message lives elsewhere.

pub mod address;
pub mod authority;
pub mod catalog;
pub mod config;
pub mod contract;
pub mod data_source;
pub mod decision;
pub mod documents;
pub mod hostname_generator;
pub mod mesh_external_service;
pub mod mesh_passthrough;
pub mod protocol;
pub mod report;
pub mod resource;
pub mod selectors;
pub mod traffic_permission;
pub mod upstream_tls;
pub mod validate;
pub mod violation;

pub use catalog::{Catalog, Service, ServiceId};
pub use config::{Checked, PluginConfig};
pub use decision::{decide, Decision, Denial, Request};
pub use report::{Report, Violation};
pub use resource::{Kind, Origin, Resource, Spec};
