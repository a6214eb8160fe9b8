//! MeshCircuitBreaker: its `default` and Kuma's rules on it (`api`), and the cluster's
//! circuit breakers and outlier detection it sets (`configurer`).

mod api;
mod configurer;
#[cfg(test)]
mod tests;

pub use api::*;
