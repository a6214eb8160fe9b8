//! The VIPs: the ranges they come from (one for DNS names, one for MeshExternalServices), a
//! key's stable first choice (a hash of the key alone), the allocation `--xds-dir` keeps,
//! so that a VIP never moves or goes to another key, and each VIP's IPv6 twin ([`Cidr6`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::generate::Error;

use super::Options;

/// Kuma's range for VIPs: reserved addresses that route out of the namespace, so the
/// REDIRECT rule sees them.
pub const DEFAULT_VIP_CIDR: &str = "240.0.0.0/4";
/// Kuma's range for MeshExternalService VIPs (`ipam.meshExternalService.cidr`), inside the
/// other.
pub const DEFAULT_MES_VIP_CIDR: &str = "242.0.0.0/8";
/// Where each VIP's IPv6 twin lies: a unique local /96 inside Kuma's IPv6 VIP range
/// (fd00:fd00::/64), its last 32 bits the IPv4 VIP's.
pub const DEFAULT_VIP_CIDR6: &str = "fd00:fd00::/96";
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

    pub fn contains(self, ip: Ipv4Addr) -> bool {
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

/// An IPv6 /96 `p::/96` that gives each IPv4 VIP `a.b.c.d` its IPv6 twin `p::a.b.c.d`: as
/// stable as the IPv4 VIP, never shared, and nothing more to keep in [`VIPS_FILE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr6 {
    prefix: u128,
}

impl Cidr6 {
    /// The IPv6 twin of `vip`.
    pub fn twin(self, vip: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.prefix | u128::from(u32::from(vip)))
    }
}

impl FromStr for Cidr6 {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr6, String> {
        let example = DEFAULT_VIP_CIDR6;
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv6 /96 such as {example}"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        if len != "96" {
            return Err(format!(
                "prefix length {len:?} is not 96: the last 32 bits are the IPv4 VIP's"
            ));
        }
        if ip.to_ipv4_mapped().is_some() {
            return Err(format!(
                "{s:?} holds IPv4-mapped addresses, which go out as IPv4: give a unique local \
                 range such as {example}"
            ));
        }
        let prefix = u128::from(ip);
        if prefix & u128::from(u32::MAX) != 0 {
            return Err(format!(
                "{s:?} has host bits set: write the range's first address"
            ));
        }
        Ok(Cidr6 { prefix })
    }
}

impl fmt::Display for Cidr6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/96", Ipv6Addr::from(self.prefix))
    }
}

/// Every DNS name that was ever given a VIP, with it, and every MeshExternalService; a removed
/// service's stay, so that their VIPs never go to another.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vips {
    pub vip_cidr: String,
    pub vips: BTreeMap<String, Ipv4Addr>,
    /// By MeshExternalService name, apart from the DNS names (a `kuma.io/service` and a
    /// MeshExternalService may share a name). Absent while there is none, as in files
    /// written before MeshExternalServices were served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_external_services: Option<MeshExternalServiceVips>,
}

/// The VIPs of MeshExternalServices, from their own range (`--mes-vip-cidr`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshExternalServiceVips {
    pub vip_cidr: String,
    pub vips: BTreeMap<String, Ipv4Addr>,
}

impl Vips {
    /// A DNS name's VIP.
    pub fn get(&self, name: &str) -> Option<Ipv4Addr> {
        self.vips.get(name).copied()
    }

    /// A MeshExternalService's VIP.
    pub fn of_mesh_external_service(&self, name: &str) -> Option<Ipv4Addr> {
        let kept = self.mesh_external_services.as_ref()?;
        kept.vips.get(name).copied()
    }
}

/// One kind's share of an allocation: its range, and the VIPs it keeps and gains.
struct Pool<'a> {
    cidr: Cidr,
    /// The flag that sets `cidr`, for messages.
    flag: &'static str,
    /// How messages name a key.
    label: fn(&str) -> String,
    wanted: &'a BTreeSet<String>,
    /// The range the kept VIPs were made with.
    made_with: Option<&'a str>,
    vips: BTreeMap<String, Ipv4Addr>,
}

impl Pool<'_> {
    fn check_kept(&self) -> Result<(), Error> {
        let Some((key, ip)) = self.vips.iter().find(|(_, ip)| !self.cidr.contains(**ip)) else {
            return Ok(());
        };
        Err(Error::Vips(format!(
            "{VIPS_FILE} gives {} the VIP {ip}, outside {} {} (it was made with {}): keep that \
             range, or remove the file to give every name a new VIP",
            (self.label)(key),
            self.flag,
            self.cidr,
            self.made_with.unwrap_or_default()
        )))
    }

    /// Gives each wanted key without a VIP its first choice or, with a kept allocation
    /// (`search`), the next free address.
    fn add_new(
        &mut self,
        taken: &mut BTreeMap<Ipv4Addr, String>,
        search: bool,
    ) -> Result<(), Error> {
        let (cidr, flag) = (self.cidr, self.flag);
        let size = cidr.usable();
        let new: Vec<&String> = self
            .wanted
            .iter()
            .filter(|k| !self.vips.contains_key(*k))
            .collect();
        for key in new {
            let label = (self.label)(key);
            let first = first_index(key, cidr);
            let free = (0..size)
                .map(|step| cidr.nth_usable((first + step) % size))
                .take(if search { usize::MAX } else { 1 })
                .find(|ip| !taken.contains_key(ip));
            let Some(ip) = free else {
                let holder = taken.get(&first_choice(key, cidr)).cloned();
                return Err(Error::Vips(if search {
                    format!("{flag} {cidr} has no free VIP left for {label}: give a wider range")
                } else {
                    format!(
                        "{label} and {} hash to the same VIP {} in {flag} {cidr}: give a \
                         wider range, or --xds-dir, which keeps an allocation that tells them apart",
                        holder.unwrap_or_default(),
                        first_choice(key, cidr)
                    )
                }));
            };
            taken.insert(ip, label);
            self.vips.insert(key.clone(), ip);
        }
        Ok(())
    }
}

/// The VIP of each DNS name of `names` and each MeshExternalService of `mesh_external_services`
/// (each sorted, distinct; each kind from its own range, which may overlap the other's, as
/// Kuma's do: no VIP goes to two). A key's first choice is a hash of the key alone, so adding
/// a service never moves another's VIP. With a previous allocation, its VIPs stay and a new
/// key whose first choice is taken gets the next free address; without one, two keys with one
/// first choice are an error (no order of keys can decide fairly).
pub fn allocate(
    names: &BTreeSet<String>,
    mesh_external_services: &BTreeSet<String>,
    options: &Options,
) -> Result<Vips, Error> {
    let previous = options.previous.as_ref();
    let kept_mes = previous.and_then(|p| p.mesh_external_services.as_ref());
    let mut pools = [
        Pool {
            cidr: options.vip_cidr,
            flag: "--vip-cidr",
            label: |name| format!("{name:?}"),
            wanted: names,
            made_with: previous.map(|p| p.vip_cidr.as_str()),
            vips: previous.map(|p| p.vips.clone()).unwrap_or_default(),
        },
        Pool {
            cidr: options.mes_vip_cidr,
            flag: "--mes-vip-cidr",
            label: |name| format!("MeshExternalService {name:?}"),
            wanted: mesh_external_services,
            made_with: kept_mes.map(|k| k.vip_cidr.as_str()),
            vips: kept_mes.map(|k| k.vips.clone()).unwrap_or_default(),
        },
    ];
    for pool in &pools {
        pool.check_kept()?;
    }
    let mut taken: BTreeMap<Ipv4Addr, String> = pools
        .iter()
        .flat_map(|p| p.vips.iter().map(|(key, ip)| (*ip, (p.label)(key))))
        .collect();
    for pool in &mut pools {
        pool.add_new(&mut taken, previous.is_some())?;
    }
    let [names, mes] = pools;
    Ok(Vips {
        vip_cidr: names.cidr.to_string(),
        vips: names.vips,
        mesh_external_services: (!mes.vips.is_empty()).then(|| MeshExternalServiceVips {
            vip_cidr: mes.cidr.to_string(),
            vips: mes.vips,
        }),
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
    fn an_ipv6_twin_is_its_ipv4_vip_in_the_last_32_bits() {
        let default: Cidr6 = DEFAULT_VIP_CIDR6.parse().unwrap();
        assert_eq!(default.to_string(), "fd00:fd00::/96");
        assert_eq!(
            default.twin(Ipv4Addr::new(240, 1, 2, 3)).to_string(),
            "fd00:fd00::f001:203"
        );
        for (bad, why) in [
            ("fd00:fd00::", "not an IPv6 /96"),
            ("240.0.0.0/96", "not an IPv6 address"),
            ("fd00:fd00::/64", "is not 96"),
            ("fd00:fd00::1/96", "host bits set"),
            ("::ffff:0:0/96", "IPv4-mapped"),
        ] {
            let e = bad.parse::<Cidr6>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_vip_depends_on_its_name_alone_and_stays_in_the_range() {
        let o = options(DEFAULT_VIP_CIDR, None);
        let one = allocate(&names(&["httpbin.mesh"]), &names(&[]), &o).unwrap();
        let more = allocate(
            &names(&["a.mesh", "httpbin.mesh", "z.example"]),
            &names(&[]),
            &o,
        )
        .unwrap();
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
            &names(&[]),
            &options("10.0.0.0/30", Some(Vips::default())),
        )
        .unwrap();
        let again = allocate(
            &names(&["b.mesh"]),
            &names(&[]),
            &options("10.0.0.0/30", Some(first.clone())),
        )
        .unwrap();
        assert_eq!(again, first, "a removed name keeps its VIP");
        let e = allocate(
            &names(&["b.mesh", "c.mesh"]),
            &names(&[]),
            &options("10.0.0.0/30", Some(again)),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no free VIP left for \"c.mesh\""),
            "{e}"
        );
        let moved = allocate(
            &names(&["a.mesh"]),
            &names(&[]),
            &options("192.168.0.0/16", Some(first)),
        )
        .unwrap_err();
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
            &names(&[]),
            &options("10.0.0.0/30", None),
        )
        .unwrap_err();
        assert!(e.to_string().contains("hash to the same VIP"), "{e}");
    }

    /// Options with the default ranges and `previous`.
    fn defaults(previous: Option<Vips>) -> Options {
        options(DEFAULT_VIP_CIDR, previous)
    }

    #[test]
    fn a_mesh_external_service_gets_a_vip_of_its_range_apart_from_a_name_of_its_own_name() {
        let vips = allocate(&names(&["ext"]), &names(&["ext"]), &defaults(None)).unwrap();
        let mes = vips.of_mesh_external_service("ext").unwrap();
        assert!(
            DEFAULT_MES_VIP_CIDR.parse::<Cidr>().unwrap().contains(mes),
            "{mes}"
        );
        assert_ne!(vips.get("ext"), Some(mes));
        assert_eq!(vips.of_mesh_external_service("other"), None);
        let text = serde_json::to_string(&vips).unwrap();
        assert!(
            text.contains(
                "\"mesh_external_services\":{\"vip_cidr\":\"242.0.0.0/8\",\"vips\":{\"ext\":"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_file_of_dns_names_alone_reads_and_is_written_as_it_was() {
        // What `vips.json` held before MeshExternalServices were served.
        let old = "{\"vip_cidr\":\"240.0.0.0/4\",\"vips\":{\"a.mesh\":\"240.1.2.3\"}}";
        let kept: Vips = serde_json::from_str(old).unwrap();
        let again = allocate(&names(&["a.mesh"]), &names(&[]), &defaults(Some(kept))).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), old);
    }

    #[test]
    fn no_vip_goes_to_two_kinds_and_a_removed_mesh_external_service_keeps_its_own() {
        // Both ranges the same /30: two usable addresses for both kinds together.
        let o = |previous| Options {
            mes_vip_cidr: "10.0.0.0/30".parse().unwrap(),
            ..options("10.0.0.0/30", previous)
        };
        let first = allocate(
            &names(&["a.mesh"]),
            &names(&["x"]),
            &o(Some(Vips::default())),
        )
        .unwrap();
        assert_ne!(first.get("a.mesh"), first.of_mesh_external_service("x"));
        let again = allocate(&names(&["a.mesh"]), &names(&[]), &o(Some(first.clone()))).unwrap();
        assert_eq!(again, first, "a removed MeshExternalService keeps its VIP");
        let e = allocate(&names(&["a.mesh"]), &names(&["y"]), &o(Some(again))).unwrap_err();
        assert!(
            e.to_string().contains(
                "--mes-vip-cidr 10.0.0.0/30 has no free VIP left for MeshExternalService \"y\""
            ),
            "{e}"
        );
        let moved = allocate(
            &names(&["a.mesh"]),
            &names(&["x"]),
            &options("10.0.0.0/30", Some(first)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            moved.contains("gives MeshExternalService \"x\" the VIP 10.0.0.")
                && moved
                    .contains("outside --mes-vip-cidr 242.0.0.0/8 (it was made with 10.0.0.0/30)"),
            "{moved}"
        );
    }
}
