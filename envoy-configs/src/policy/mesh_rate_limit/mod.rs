//! MeshRateLimit: its `default` and Kuma's rules on it (`api`), and the local rate limits it
//! adds to the service's routes and listeners (`configurer`).

mod api;
mod configurer;
#[cfg(test)]
mod tests;

pub use api::*;
