//! MeshTimeout: its `default` and Kuma's rules on it (`api`), and the timeouts it sets on
//! the cluster, the route and `tcp_proxy` (`configurer`).

mod api;
mod configurer;
#[cfg(test)]
mod tests;

pub use api::*;
