//! The transparent proxy's capture: iptables rules that send an app's outbound traffic to
//! Envoy ([`rules`]: what they are; [`iptables`]: applying and removing them, all or nothing;
//! [`uncaptured`]: whether what they do not capture is blocked, from the mesh's passthrough).
//! The VIPs and the builtin DNS they pair with are part of the generated configuration
//! ([`crate::generate::transparent`]).

pub mod iptables;
pub mod rules;
pub mod uncaptured;
