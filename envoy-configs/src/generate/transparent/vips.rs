//! The VIPs: the range they come from, a name's stable first choice (a hash of the name alone),
//! and the allocation `--xds-dir` keeps, so that a VIP never moves or goes to another name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::generate::Error;

use super::Options;

/// Kuma's range for VIPs: reserved addresses that route out of the namespace, so the
/// REDIRECT rule sees them.
pub const DEFAULT_VIP_CIDR: &str = "240.0.0.0/4";
/// What `--xds-dir` keeps beside the listeners: every name ever given a VIP.
pub const VIPS_FILE: &str = "vips.json";

/// An IPv4 range `a.b.c.d/n`, its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix_len: u8,
}

impl Cidr {
    /// How many addresses it holds, the first and last left out.
    fn usable(self) -> u64 {
        (1u64 << (32 - u32::from(self.prefix_len))) - 2
    }

    fn nth_usable(self, n: u64) -> Ipv4Addr {
        // n < usable() < 2^32, so the sum fits.
        Ipv4Addr::from(self.base + 1 + u32::try_from(n).unwrap_or(0))
    }

    fn contains(self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        u32::from(ip) & mask == self.base
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv4 range such as {DEFAULT_VIP_CIDR}"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|n| (1..=30).contains(n))
            .ok_or_else(|| format!("prefix length {len:?} is not in 1..=30"))?;
        let cidr = Cidr {
            base: u32::from(ip),
            prefix_len,
        };
        if !cidr.contains(ip) {
            return Err(format!(
                "{s:?} has host bits set: write the range's first address"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix_len)
    }
}

/// Every DNS name that was ever given a VIP, with it; a removed service's names stay, so that
/// their VIPs never go to another name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vips {
    pub vip_cidr: String,
    pub vips: BTreeMap<String, Ipv4Addr>,
}

impl Vips {
    pub fn get(&self, name: &str) -> Option<Ipv4Addr> {
        self.vips.get(name).copied()
    }
}

/// The VIP of each of `names` (sorted, distinct). A name's first choice is a hash of the name
/// alone, so adding a service never moves another's VIP. With a previous allocation, its VIPs
/// stay and a new name whose first choice is taken gets the next free address; without one,
/// two names with one first choice are an error (no order of names can decide fairly).
pub fn allocate(names: &BTreeSet<String>, options: &Options) -> Result<Vips, Error> {
    let cidr = options.vip_cidr;
    let mut vips = match &options.previous {
        Some(previous) => {
            if let Some((name, ip)) = previous.vips.iter().find(|(_, ip)| !cidr.contains(**ip)) {
                return Err(Error::Vips(format!(
                    "{VIPS_FILE} gives {name:?} the VIP {ip}, outside --vip-cidr {cidr} (it was \
                     made with {}): keep that range, or remove the file to give every name a new VIP",
                    previous.vip_cidr
                )));
            }
            previous.vips.clone()
        }
        None => BTreeMap::new(),
    };
    let mut taken: BTreeMap<Ipv4Addr, String> =
        vips.iter().map(|(n, ip)| (*ip, n.clone())).collect();
    let size = cidr.usable();
    let new: Vec<&String> = names.iter().filter(|n| !vips.contains_key(*n)).collect();
    for name in new {
        let first = first_index(name, cidr);
        let free = (0..size)
            .map(|step| cidr.nth_usable((first + step) % size))
            .take(if options.previous.is_some() {
                usize::MAX
            } else {
                1
            })
            .find(|ip| !taken.contains_key(ip));
        let Some(ip) = free else {
            let holder = taken
                .get(&first_choice(name, cidr))
                .cloned()
                .unwrap_or_default();
            return Err(Error::Vips(if options.previous.is_some() {
                format!("--vip-cidr {cidr} has no free VIP left for {name:?}: give a wider range")
            } else {
                format!(
                    "{name:?} and {holder:?} hash to the same VIP {} in --vip-cidr {cidr}: give a \
                     wider range, or --xds-dir, which keeps an allocation that tells them apart",
                    first_choice(name, cidr)
                )
            }));
        };
        taken.insert(ip, name.clone());
        vips.insert(name.clone(), ip);
    }
    Ok(Vips {
        vip_cidr: cidr.to_string(),
        vips,
    })
}

/// The VIP a new name gets in `cidr` when no other name holds it: a hash of the name alone.
pub fn first_choice(name: &str, cidr: Cidr) -> Ipv4Addr {
    cidr.nth_usable(first_index(name, cidr))
}

fn first_index(name: &str, cidr: Cidr) -> u64 {
    fnv1a(name) % cidr.usable()
}

/// FNV-1a, 64 bits: fixed forever, unlike std's hasher, so VIPs survive a rebuild.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::transparent::tests::options;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            DEFAULT_VIP_CIDR.parse::<Cidr>().unwrap().to_string(),
            "240.0.0.0/4"
        );
        for (bad, why) in [
            ("240.0.0.0", "not an IPv4 range"),
            ("240.0.0.1/4", "host bits set"),
            ("240.0.0.0/31", "not in 1..=30"),
            ("fd00::/8", "not an IPv4 address"),
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_vip_depends_on_its_name_alone_and_stays_in_the_range() {
        let o = options(DEFAULT_VIP_CIDR, None);
        let one = allocate(&names(&["httpbin.mesh"]), &o).unwrap();
        let more = allocate(&names(&["a.mesh", "httpbin.mesh", "z.example"]), &o).unwrap();
        assert_eq!(one.get("httpbin.mesh"), more.get("httpbin.mesh"));
        let cidr: Cidr = DEFAULT_VIP_CIDR.parse().unwrap();
        assert!(more.vips.values().all(|ip| cidr.contains(*ip)));
        let distinct: BTreeSet<_> = more.vips.values().collect();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn a_kept_allocation_keeps_every_vip_and_never_reuses_one() {
        // A /30 holds two usable addresses: the third name cannot have one.
        let first = allocate(
            &names(&["a.mesh", "b.mesh"]),
            &options("10.0.0.0/30", Some(Vips::default())),
        )
        .unwrap();
        let again = allocate(
            &names(&["b.mesh"]),
            &options("10.0.0.0/30", Some(first.clone())),
        )
        .unwrap();
        assert_eq!(again, first, "a removed name keeps its VIP");
        let e = allocate(
            &names(&["b.mesh", "c.mesh"]),
            &options("10.0.0.0/30", Some(again)),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no free VIP left for \"c.mesh\""),
            "{e}"
        );
        let moved =
            allocate(&names(&["a.mesh"]), &options("192.168.0.0/16", Some(first))).unwrap_err();
        assert!(
            moved
                .to_string()
                .contains("outside --vip-cidr 192.168.0.0/16"),
            "{moved}"
        );
    }

    #[test]
    fn without_a_kept_allocation_two_names_on_one_vip_are_an_error() {
        let e = allocate(
            &names(&["a.mesh", "b.mesh", "c.mesh"]),
            &options("10.0.0.0/30", None),
        )
        .unwrap_err();
        assert!(e.to_string().contains("hash to the same VIP"), "{e}");
    }
}
