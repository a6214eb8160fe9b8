//! Kuma's ExternalService policy: the resource model, its validation, the lookup tables built
//! from it, and the per-request decision. `glue` is the only module that speaks proxy-wasm.

pub mod address;
pub mod authority;
pub mod catalog;
pub mod config;
pub mod decision;
pub mod protocol;
pub mod report;
pub mod resource;
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use catalog::{Catalog, Service, ServiceId};
pub use config::{Checked, PluginConfig};
pub use decision::{decide, Decision, Denial, Request};
pub use report::{Report, Violation};
pub use resource::{Kind, Origin, Resource, Spec};
#[cfg(feature = "resolve")]
pub mod resolve;
