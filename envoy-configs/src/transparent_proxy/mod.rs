//! The transparent proxy's capture: iptables rules that send an app's outbound traffic to
//! Envoy ([`rules`]: what they are; [`iptables`]: applying and removing them, all or nothing).
//! The VIPs and the builtin DNS they pair with are part of the generated configuration
//! ([`crate::generate::transparent`]).

pub mod iptables;
pub mod rules;
