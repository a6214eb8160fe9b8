//! MeshFaultInjection: its `default` and Kuma's rules on it (`api`), and the fault filter it
//! adds and turns on in the service's routes (`configurer`).

mod api;
mod configurer;

pub use api::*;
