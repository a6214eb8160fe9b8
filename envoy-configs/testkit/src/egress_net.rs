//! The four hosts of the egress tests, as network namespaces: `web` and `batch` (an app and its
//! sidecar Envoy each), `egress` (the egress Envoy) and `world` (the outside HTTPS servers and
//! their DNS). A firewall in small: only `egress` reaches `world`; the app hosts reach `egress`
//! and nothing else.
//!
//! Point-to-point veth pairs with `egress` in the middle, IPv4 only:
//!
//! ```text
//!   web   10.78.1.2 ── 10.78.1.1 ─┐
//!                                egress ── 10.78.3.1 ── 10.78.3.2  world
//!   batch 10.78.2.2 ── 10.78.2.1 ─┘  EGRESS_IPS 10.78.0.1, 10.78.0.2 (on its lo)
//! ```
//!
//! Every other host's default route goes to `egress` (the world's too, so that replies would
//! find their way back), and `egress` forwards nothing: `net.ipv4.ip_forward` is set to 0,
//! not assumed, since a new namespace takes the machine's value. That one switch is what closes
//! the network ([`EgressNet::set_egress_forwarding`] opens it, which the tests use to show the
//! closed network is what stops a connection). Packets for one of `egress`'s own addresses are
//! delivered, not forwarded, so both app hosts reach [`EGRESS_IPS`], the ZoneEgresses'
//! `networking.address` (two, for two instances; [`EgressNet::vanish`] takes one away, as a
//! host that is gone: what is sent to it is dropped with no answer). Each app host's only
//! neighbour is `egress`, so `web` and `batch` do not reach each other either. A bridge would
//! have put them on one segment, open to each other unless its ports were isolated; the veths
//! need nothing more than the default routes.
//!
//! The hosts have no IPv6 address beyond loopback, so IPv6 reaches nothing from anywhere.
//!
//! `world`'s DNS (on [`WORLD_IP`] port 53) answers the test's names with [`WORLD_IP`] and is
//! every host's `resolv.conf` nameserver: `egress` reaches it (the egress Envoy's
//! `--dns-resolver`); the app hosts do not, so their names are answered by their sidecars'
//! builtin DNS (`transparent-proxy install --redirect-dns`) or not at all.
//!
//! `world` counts every TCP connection attempt that reaches it over its link (an iptables rule
//! with no target, [`EgressNet::world_tcp_attempts`]), so a test can say it saw nothing, not
//! even a handshake that failed.
//!
//! Namespaces are `extsvc-eg-<host>-<id>`; dropping the [`EgressNet`] (panics included) kills
//! the world's servers and deletes the namespaces, and the veths with them.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::lchown;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::netns::Netns;
use crate::transparent::{install_in, open_to_envoy, start_envoy_in, ENVOY_UID};
use crate::{Curl, Envoy, EnvoyOptions, Pki, Upstream, UpstreamBuilder};

/// The egress host's own addresses (on its loopback), reached by both app hosts: one per
/// ZoneEgress instance.
pub const EGRESS_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 78, 0, 1), Ipv4Addr::new(10, 78, 0, 2)];
/// The first of them, the address of a lone ZoneEgress.
pub const EGRESS_IP: Ipv4Addr = EGRESS_IPS[0];
pub const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 1, 2);
pub const BATCH_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 2, 2);
pub const WORLD_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 3, 2);
/// The port of the world's HTTPS server, as in the real world.
pub const WORLD_HTTPS_PORT: u16 = 443;
/// The world's HTTPS server, as named in its Envoy (its stats' prefix).
const WORLD_HTTPS: &str = "https";
/// How long a TCP connect from one host to another may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One of the four hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Web,
    Batch,
    Egress,
    World,
}

impl Host {
    pub const ALL: [Host; 4] = [Host::Web, Host::Batch, Host::Egress, Host::World];

    fn role(self) -> &'static str {
        match self {
            Host::Web => "web",
            Host::Batch => "batch",
            Host::Egress => "egress",
            Host::World => "world",
        }
    }

    /// The namespace of this host in the network `id`.
    pub fn namespace(self, id: &str) -> String {
        format!("extsvc-eg-{}-{id}", self.role())
    }
}

/// The four namespaces, joined, and the world's servers.
pub struct EgressNet {
    // Dropped in this order: the servers, then the namespaces.
    /// One HTTPS listener on [`WORLD_IP`]:[`WORLD_HTTPS_PORT`] for every name, and the DNS.
    pub world_servers: Upstream,
    pub web: Netns,
    pub batch: Netns,
    pub egress: Netns,
    pub world: Netns,
    /// The world's CA (what an ExternalService's `caCert` names) and its server certificate
    /// for every name, in `<dir>/world/`.
    pub world_pki: Pki,
}

impl EgressNet {
    /// Makes the network and starts the world's servers for `names` (their files in
    /// `<dir>/world/`); lets Envoy as its own uid use `dir`. `id`: the namespaces carry it, and
    /// what a killed run of the same `id` left is removed first; `None`: an id of this process's
    /// own. Fails, saying why, when namespaces cannot be made (not root, no `ip`).
    pub fn create(dir: &Path, id: Option<&str>, names: &[&str]) -> Result<EgressNet, String> {
        open_to_envoy(dir)?;
        let id = match id {
            Some(id) => {
                Self::remove_leftovers(id);
                id.to_string()
            }
            None => process_id(),
        };
        let host = |h: Host| {
            Netns::create(&h.namespace(&id)).map_err(|e| format!("{e} (namespaces need root)"))
        };
        let (web, batch, egress, world) = (
            host(Host::Web)?,
            host(Host::Batch)?,
            host(Host::Egress)?,
            host(Host::World)?,
        );
        let egress_side = |subnet: u8| Ipv4Addr::new(10, 78, subnet, 1);
        for (other, ns, ip, egress_ip) in [
            (Host::Web, &web, WEB_IP, egress_side(1)),
            (Host::Batch, &batch, BATCH_IP, egress_side(2)),
            (Host::World, &world, WORLD_IP, egress_side(3)),
        ] {
            join(other, ns, ip, &egress, egress_ip)?;
            ns.ip(&["route", "add", "default", "via", &egress_ip.to_string()])?;
        }
        for ip in EGRESS_IPS {
            egress.ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"])?;
        }
        set_forwarding(&egress, false)?;
        for ns in [&web, &batch, &egress] {
            ns.set_nameserver(WORLD_IP);
        }
        count_syns(&world)?;

        let world_dir = dir.join("world");
        fs::create_dir_all(&world_dir).map_err(|e| format!("{}: {e}", world_dir.display()))?;
        let world_pki = Pki::for_names(&world_dir, names);
        let servers = names.iter().fold(
            UpstreamBuilder::new()
                .tls(WORLD_HTTPS, &world_pki.server)
                .at(SocketAddr::from((WORLD_IP, WORLD_HTTPS_PORT)))
                .dns_at(SocketAddr::from((WORLD_IP, 53))),
            |b, name| b.dns(name, &[WORLD_IP.into()]),
        );
        let world_servers = world.run(|| servers.start_named(&world_dir, "world"));
        Ok(EgressNet {
            world_servers,
            web,
            batch,
            egress,
            world,
            world_pki,
        })
    }

    /// Deletes what an earlier, killed run of `create` with this `id` left behind.
    pub fn remove_leftovers(id: &str) {
        for host in Host::ALL {
            drop(Netns {
                name: host.namespace(id),
            });
        }
    }

    pub fn host(&self, host: Host) -> &Netns {
        match host {
            Host::Web => &self.web,
            Host::Batch => &self.batch,
            Host::Egress => &self.egress,
            Host::World => &self.world,
        }
    }

    /// Whether `egress` forwards packets between the other hosts (it does not, unless this
    /// says so).
    pub fn set_egress_forwarding(&self, on: bool) -> Result<(), String> {
        set_forwarding(&self.egress, on)
    }

    /// Takes `ip`, one of [`EGRESS_IPS`], off the egress host: what is sent to it is dropped
    /// with no answer (the egress forwards nothing), as when a host is gone. A listener bound
    /// to it stays, reached by nothing.
    pub fn vanish(&self, ip: Ipv4Addr) -> Result<(), String> {
        self.egress
            .ip(&["addr", "del", &format!("{ip}/32"), "dev", "lo"])
    }

    /// `extsvc transparent-proxy install --envoy-uid <ENVOY_UID> --block-uncaptured` and
    /// `flags` on `app`. Returns what it printed.
    pub fn install_transparent_proxy(&self, app: Host, flags: &[&str]) -> Result<String, String> {
        let all: Vec<&str> = ["--block-uncaptured"]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        install_in(self.host(app), &all)
    }

    /// Envoy on `config` on `host`, as [`ENVOY_UID`], with these `options` otherwise (files in
    /// `dir`, named `name`; see [`give_to_envoy`]).
    pub fn start_envoy(
        &self,
        host: Host,
        dir: &Path,
        name: &str,
        config: &Path,
        options: &EnvoyOptions,
    ) -> Result<Envoy, String> {
        start_envoy_in(self.host(host), dir, name, config, options)
    }

    /// A GET from `host` (curl in its namespace, with its `resolv.conf`).
    pub fn curl(&self, host: Host, url: &str) -> Curl {
        Curl::get(url)
            .in_netns(&self.host(host).name)
            .timeout(Duration::from_secs(10))
    }

    /// A TCP connection from `host` to `to`, or why there is none (within 1 s).
    pub fn connect(&self, host: Host, to: SocketAddr) -> io::Result<TcpStream> {
        self.host(host)
            .run(|| TcpStream::connect_timeout(&to, CONNECT_TIMEOUT))
    }

    /// How many HTTP requests the world's HTTPS server has answered.
    pub fn world_requests(&self) -> u64 {
        self.world_stat(&format!("http.{WORLD_HTTPS}.downstream_rq_total"))
    }

    /// How many TCP connection attempts (SYNs, to any port) have reached the world from
    /// outside: counted by the kernel, so a connection that never became a request, or never
    /// got past the world's TLS inspector, counts too.
    pub fn world_tcp_attempts(&self) -> u64 {
        let out = self
            .world
            .output("iptables", &["-w", "-t", "filter", "-nvx", "-L", "INPUT"]);
        let listing = String::from_utf8_lossy(&out.stdout);
        syns_counted(&listing).unwrap_or_else(|| {
            panic!(
                "no SYN count in `iptables -L INPUT` in {} ({}): {listing}{}",
                self.world.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// A counter of the world's servers (their admin is reached from inside the world).
    fn world_stat(&self, name: &str) -> u64 {
        self.world
            .run(|| self.world_servers.envoy.stat(name))
            .unwrap_or_else(|| panic!("the world's Envoy has no stat {name}"))
    }
}

/// Hands `dir` and everything in it to Envoy's uid, as a host's Envoy owns its own files: the
/// private key `generate` writes (mode 0600) is then Envoy's to read, and the admin socket
/// Envoy's to create.
pub fn give_to_envoy(dir: &Path) -> Result<(), String> {
    let fail = |e: io::Error| format!("chown {} to {ENVOY_UID}: {e}", dir.display());
    lchown(dir, Some(ENVOY_UID), Some(ENVOY_UID)).map_err(fail)?;
    if fs::symlink_metadata(dir).map_err(fail)?.is_dir() {
        for entry in fs::read_dir(dir).map_err(fail)? {
            give_to_envoy(&entry.map_err(fail)?.path())?;
        }
    }
    Ok(())
}

/// An id of this process's own, distinct for each network it makes.
fn process_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A veth pair between `host` (`ns`, as `<ip>/24`) and `egress` (as `<egress_ip>/24`), each
/// end named after the host it leads to, both up.
fn join(
    host: Host,
    ns: &Netns,
    ip: Ipv4Addr,
    egress: &Netns,
    egress_ip: Ipv4Addr,
) -> Result<(), String> {
    let to_host = format!("to-{}", host.role());
    ns.ip(&[
        "link",
        "add",
        "to-egress",
        "type",
        "veth",
        "peer",
        "name",
        &to_host,
        "netns",
        &egress.name,
    ])?;
    for (ns, dev, addr) in [(ns, "to-egress", ip), (egress, to_host.as_str(), egress_ip)] {
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev])?;
        ns.ip(&["link", "set", dev, "up"])?;
    }
    Ok(())
}

/// `net.ipv4.ip_forward` in `ns`, written from a thread inside it.
fn set_forwarding(ns: &Netns, on: bool) -> Result<(), String> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    ns.run(|| fs::write(path, if on { "1" } else { "0" }))
        .map_err(|e| format!("{path} in {}: {e}", ns.name))
}

/// Counts, in `world`, every TCP SYN that arrives over its link: a rule with no target.
fn count_syns(world: &Netns) -> Result<(), String> {
    let args = [
        "-w",
        "-t",
        "filter",
        "-A",
        "INPUT",
        "-i",
        "to-egress",
        "-p",
        "tcp",
        "--syn",
    ];
    let out = world.output("iptables", &args);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`iptables {}` in {}: {}",
            args.join(" "),
            world.name,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The packet count of the SYN rule in `iptables -nvx -L INPUT`'s listing.
fn syns_counted(listing: &str) -> Option<u64> {
    listing
        .lines()
        .find(|l| l.contains("flags:0x17/0x02"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
