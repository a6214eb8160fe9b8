//! The transparent proxy (`--transparent-proxy`), after Kuma's: a capture listener that the
//! iptables REDIRECT of `extsvc transparent-proxy install` sends every outbound TCP connection
//! to; one listener per VIP:port (not bound to a port) that the capture listener hands a
//! connection to by its original destination (a MeshExternalService: its VIP on its
//! `match.port`); the builtin DNS that answers declared names with their VIPs; and, for every other destination, passthrough or a logged refusal.

mod dns;
mod listeners;
mod passthrough;
mod vips;

use std::net::SocketAddr;

use dns::{dns, dns_names, mesh_external_services};
pub use dns::{DEFAULT_DNS_LISTEN, DNS};
use listeners::{capture, destinations, ipv6_capture_address, original_destination, refused};
pub use listeners::{CAPTURE, CAPTURE_IPV6, REFUSED, UNDECLARED_DESTINATION};
use passthrough::Passthrough;
pub use passthrough::{BY_NAME, NOT_MATCHED};
pub use vips::{
    allocate, first_choice, Cidr, Cidr6, MeshExternalServiceVips, Vips, DEFAULT_MES_VIP_CIDR,
    DEFAULT_VIP_CIDR, DEFAULT_VIP_CIDR6, VIPS_FILE,
};

use crate::envoy::{Cluster, Listener};

use super::{cluster, listener, Context, Error};

/// What the transparent proxy needs beyond the resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub vip_cidr: Cidr,
    /// Where MeshExternalServices' VIPs come from (Kuma: 242.0.0.0/8).
    pub mes_vip_cidr: Cidr,
    /// Where each VIP's IPv6 twin lies: the DNS answers AAAA with it, and it has the IPv4
    /// VIP's listeners.
    pub vip_cidr6: Cidr6,
    /// The builtin DNS's UDP address (`--redirect-dns` sends port 53 there).
    pub dns_listen: SocketAddr,
    /// With `--xds-dir`, the allocation earlier runs kept there (empty on the first): its
    /// VIPs do not move, and a new name whose first choice is taken gets a free one.
    pub previous: Option<Vips>,
}

/// What the transparent proxy adds to a configuration.
pub struct Parts {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    pub vips: Vips,
}

/// The capture listeners (IPv4 and IPv6), the builtin DNS, one listener per declared VIP:port, and the cluster
/// for everything else (passthrough to the original destination, or refusal).
pub fn build(ctx: &Context<'_>, options: &Options) -> Result<Parts, Error> {
    let names = dns_names(ctx.catalog);
    // Every MeshExternalService gets a VIP, as Kuma allocates one to each: one without a
    // hostname (a collision) is still reached at VIP:match.port, though no name answers.
    let mesh_external_services = mesh_external_services(ctx.catalog)
        .map(|(s, _)| s.name.clone())
        .collect();
    let vips = allocate(
        &names.ports.keys().cloned().collect(),
        &mesh_external_services,
        options,
    )?;
    let passthrough = passthrough::of(ctx);
    let forward = passthrough != Passthrough::None;
    let listen = ctx.options.listen;
    let mut listeners = vec![capture(ctx, CAPTURE, listen, &passthrough)?];
    if let Some(at) = ipv6_capture_address(listen) {
        listeners.push(capture(ctx, CAPTURE_IPV6, at, &passthrough)?);
    }
    listeners.push(dns(ctx, options, &names, &vips, forward));
    listeners.extend(
        destinations(ctx.catalog, &names, &vips, options.vip_cidr6)
            .into_iter()
            .map(|d| Listener {
                bind_to_port: Some(false),
                ..listener::bound(ctx, d.address, d.service)
            }),
    );
    // With passthrough on, `refused` still takes connections made to the capture listener.
    let mut clusters = vec![refused()];
    if forward {
        clusters.insert(0, original_destination());
    }
    if let Passthrough::Matched(_) = passthrough {
        clusters.push(cluster::dynamic_forward_proxy(BY_NAME));
    }
    Ok(Parts {
        listeners,
        clusters,
        vips,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Options with `cidr`, the default DNS address and `previous`.
    pub(super) fn options(cidr: &str, previous: Option<Vips>) -> Options {
        Options {
            vip_cidr: cidr.parse().unwrap(),
            mes_vip_cidr: DEFAULT_MES_VIP_CIDR.parse().unwrap(),
            vip_cidr6: DEFAULT_VIP_CIDR6.parse().unwrap(),
            dns_listen: DEFAULT_DNS_LISTEN.parse().unwrap(),
            previous,
        }
    }
}
