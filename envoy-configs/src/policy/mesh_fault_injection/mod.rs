//! MeshFaultInjection: its `default` and Kuma's rules on it (`api`), and the fault filter it
//! adds and turns on in the service's routes (`configurer`).

mod api;
mod configurer;
#[cfg(test)]
mod tests;

pub use api::*;
