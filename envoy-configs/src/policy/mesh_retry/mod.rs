//! MeshRetry: its `default` and Kuma's rules on it (`api`), and the route's retry policy and
//! `tcp_proxy`'s connection attempts it sets (`configurer`).

mod api;
mod configurer;
#[cfg(test)]
mod tests;

pub use api::*;
