//! `extsvc generate FILE...`: a full Envoy bootstrap from the resources.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{format_word, Inputs};
use crate::atomic::{self, WriteError};
use crate::generate;
use crate::generate::admin::{AdminAddress, DEFAULT_STATS_LISTEN};
use crate::generate::transparent::{self, Cidr, Cidr6};
use crate::generate::{Options, DEFAULT_LISTEN, DEFAULT_ROUTE_TIMEOUT_SECS, DEFAULT_SYSTEM_CA};
use crate::kubernetes::{self, Fleet, Layout};
pub use crate::pipeline::Error;
use crate::pipeline::{self, absolute, Request};
use crate::role::Role;
use crate::transparent_proxy::rules::Capture;
use crate::transparent_proxy::uncaptured;
use external_service_model::catalog;

/// The egress gateway's listener in a pod, which other pods reach.
const KUBERNETES_LISTEN: &str = "0.0.0.0:15001";
/// The stats listener in a pod: Prometheus and the readiness probe reach it.
const KUBERNETES_STATS_LISTEN: &str = "0.0.0.0:9901";

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc generate services.yaml -o envoy.yaml
  extsvc generate mesh.yaml services/ --listen 127.0.0.1:15001 -o envoy.yaml
  extsvc generate -f services.yaml -o envoy.json       # JSON, from the file name
  envoy -c envoy.yaml
  extsvc generate services.yaml -o envoy.yaml --xds-dir xds/   # then again after each edit
  extsvc generate services.yaml -o envoy.yaml --transparent-proxy
      # with `extsvc transparent-proxy install`: apps need no proxy settings
  extsvc generate mesh/ --dataplane web --xds-dir web-xds/ -o web.yaml
      # web's sidecar; through the ZoneEgress when the Mesh says routing.zoneEgress
  extsvc generate mesh/ --zone-egress egress-1 --xds-dir egress-xds/ -o egress.yaml
      # the ZoneEgress; `extsvc watch` with the same arguments renews their certificates
  extsvc generate mesh/ --format kubernetes --replicas 3 -o egress.yaml
  kubectl apply -f egress.yaml
      # a fleet: ConfigMaps, a Secret, the egress gateway's Deployment and Service;
      # generate again with the same -o and apply after each change

The configuration has an HTTP proxy listener (`outbound_http`; use it as
http_proxy=http://127.0.0.1:15001 or send a Host header), one listener per Dataplane
outbound, one cluster per kuma.io/service (`external_service_<name>`) with TLS
origination, and the filter on every HTTP listener (wasm failure_policy FAIL_RELOAD: a
request whose VM fails is refused and the VM reloaded; no request ever skips the filter).

Exit status: 0 when the configuration was written, 1 when the resources are invalid
(the report is the one `extsvc validate` prints; nothing is written), 2 when the
command cannot run (unknown flag, missing file).")]
pub struct GenerateArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Write the configuration to FILE instead of stdout. A file holding inline private keys
    /// is created readable by its owner only (mode 0600).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The configuration's format; by default JSON for an output file named *.json (Envoy
    /// reads a bootstrap by its extension), else YAML. `kubernetes`: manifests for a fleet
    /// (the README's "Running a fleet"): ConfigMaps of the xDS files, the module and the
    /// bootstrap, a Secret of the keys, and the egress gateway's Deployment and Service, or
    /// with --dataplane a PodTemplate of the sidecar's pieces to merge into a workload.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// With --format kubernetes: the objects' name, and their names' prefix. By default
    /// `extsvc-egress`, with --dataplane `<NAME>-sidecar`, with --zone-egress its NAME.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// With --format kubernetes: the objects' namespace (none: kubectl's current one).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// With --format kubernetes: the egress gateway's replicas.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub replicas: u32,

    /// With --format kubernetes: the Envoy image.
    #[arg(long, value_name = "IMAGE", default_value_t = kubernetes::default_envoy_image())]
    pub envoy_image: String,

    /// With --format kubernetes and --transparent-proxy: the init containers' image, which
    /// must have `iptables-restore` and `ip6tables-restore`.
    #[arg(long, value_name = "IMAGE", default_value = kubernetes::DEFAULT_INIT_IMAGE)]
    pub init_image: String,

    /// With --format kubernetes: where the Envoy container mounts the volumes, which the
    /// configuration names (`xds/`, `module/`, `bootstrap/`, `run/`).
    #[arg(long, value_name = "DIR", default_value = kubernetes::DEFAULT_MOUNT_ROOT)]
    pub mount_root: PathBuf,

    /// The filter module Envoy loads (what `make build` makes). By default the one beside
    /// this extsvc's build (`<target>/wasm32-wasip1/release/`), else ./target/...: it must
    /// exist.
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,

    /// Address of the HTTP proxy listener; by default 127.0.0.1:15001, and 0.0.0.0:15001 for
    /// the egress gateway of --format kubernetes, which other pods reach.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Envoy's admin interface: `unix:PATH`, a Unix socket only Envoy's user and root can open
    /// (mode 0600), or `ADDR:PORT`, which any local process (every app, under the transparent
    /// proxy) can use to stop Envoy or wipe its counters. By default `unix:` beside the
    /// configuration: `<FILE's stem>.admin.sock` in -o FILE's directory, else
    /// `envoy.admin.sock` in the current directory. Envoy's user must be able to create it.
    #[arg(long, value_name = "unix:PATH|ADDR:PORT")]
    pub admin: Option<AdminAddress>,

    /// A read-only listener for Prometheus that serves only `GET /stats/prometheus` and
    /// `GET /ready` from the admin (anything else: 404). By default 127.0.0.1:9901 when the
    /// admin is a Unix socket (0.0.0.0:9901 with --format kubernetes, for Prometheus and the
    /// readiness probe), none when it is a TCP address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub stats_listen: Option<SocketAddr>,

    /// CA bundle that verifies external services without a caCert.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SYSTEM_CA)]
    pub system_ca: PathBuf,

    /// DNS server for Envoy to use instead of the system's resolver.
    #[arg(long, value_name = "ADDR:PORT")]
    pub dns_resolver: Option<SocketAddr>,

    /// The mesh to serve, when the resources span several.
    #[arg(long, value_name = "NAME")]
    pub mesh: Option<String>,

    /// How long a request may wait for the upstream's whole answer before the app gets 504
    /// (0: no limit).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ROUTE_TIMEOUT_SECS)]
    pub route_timeout: u64,

    /// Write TLS material given inline or by a Secret to files in DIR (created mode 0700,
    /// files mode 0600) and have the configuration name them by path, instead of inlining it.
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// Put the listeners and clusters in DIR/lds.yaml and DIR/cds.yaml, and the clusters'
    /// CAs and client certificates in DIR/sds/ (SDS, reloaded when a certificate file is
    /// renamed), which the bootstrap has Envoy watch: running the command again with changed
    /// resources updates a running Envoy, with no restart. Each file is renamed into place
    /// whole; clusters that the listeners may still name go last. An invalid change leaves
    /// DIR as it was.
    #[arg(long, value_name = "DIR")]
    pub xds_dir: Option<PathBuf>,

    /// For apps whose traffic `extsvc transparent-proxy install` captures: --listen becomes
    /// the capture listener (original destination), each declared name gets a VIP with a
    /// listener per port, the builtin DNS answers those names, and any other destination is
    /// passed through or, with passthrough off, refused and logged, or let out only as a
    /// MeshPassthrough's matches say (a Domain to what its name resolves to, never to the
    /// address the app dialled). With --xds-dir, the VIPs
    /// are kept in DIR/vips.json: a later run moves none and never reuses a removed one's.
    #[arg(long)]
    pub transparent_proxy: bool,

    /// The IPv4 range VIPs come from.
    #[arg(long, value_name = "CIDR", default_value = transparent::DEFAULT_VIP_CIDR, requires = "transparent_proxy")]
    pub vip_cidr: Cidr,

    /// The IPv4 range MeshExternalServices' VIPs come from (Kuma's
    /// ipam.meshExternalService.cidr); it may lie inside --vip-cidr: no VIP goes to two.
    #[arg(long, value_name = "CIDR", default_value = transparent::DEFAULT_MES_VIP_CIDR, requires = "transparent_proxy")]
    pub mes_vip_cidr: Cidr,

    /// The IPv6 /96 of the VIPs' IPv6 twins: the VIP a.b.c.d has the twin <prefix>a.b.c.d,
    /// which the builtin DNS answers AAAA with and which has the VIP's listeners.
    #[arg(long, value_name = "CIDR", default_value = transparent::DEFAULT_VIP_CIDR6, requires = "transparent_proxy")]
    pub vip_cidr6: Cidr6,

    /// The builtin DNS's UDP address.
    #[arg(long, value_name = "ADDR:PORT", default_value = transparent::DEFAULT_DNS_LISTEN, requires = "transparent_proxy")]
    pub dns_listen: SocketAddr,

    /// The sidecar of the Dataplane of this name: its outbounds only (and, with
    /// --transparent-proxy, the capture listeners). When its Mesh sends external traffic
    /// through the ZoneEgress (routing.zoneEgress), each service goes to the ZoneEgress
    /// instances over mTLS, with the Dataplane's certificate from the Mesh's provided CA.
    /// Needs --xds-dir.
    #[arg(long, value_name = "NAME", conflicts_with = "zone_egress")]
    pub dataplane: Option<String>,

    /// The Envoy of the ZoneEgress of this name: it listens on its networking.address:port,
    /// takes only clients with a certificate of the Mesh's CA, lets each reach the services
    /// traffic permissions allow, and originates TLS to them. Needs --xds-dir.
    #[arg(long, value_name = "NAME", conflicts_with = "transparent_proxy")]
    pub zone_egress: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
    Kubernetes,
}

impl GenerateArgs {
    /// The run this command asks for: the module found, the format chosen, paths made
    /// absolute (Envoy may run elsewhere).
    pub fn request(&self) -> Result<Request, Error> {
        if let Some(word) = self.output.as_deref().and_then(format_word) {
            return Err(Error::Usage(format!(
                "-o takes a file name, not a format: use --format {word}, or -o envoy.{word}"
            )));
        }
        let json_file = self
            .output
            .as_deref()
            .and_then(Path::extension)
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let format = match self.format {
            Some(Format::Json) => pipeline::Format::Json,
            None if json_file => pipeline::Format::Json,
            Some(Format::Yaml | Format::Kubernetes) | None => pipeline::Format::Yaml,
        };
        let layout = self.kubernetes().map(|fleet| fleet.layout);
        if layout.is_some() {
            self.refuse_local_paths()?;
        }
        let admin = match (&self.admin, &layout) {
            (Some(AdminAddress::Unix(path)), _) => AdminAddress::unix(absolute(path)),
            (Some(tcp @ AdminAddress::Tcp(_)), _) => Ok(tcp.clone()),
            (None, Some(layout)) => AdminAddress::unix(layout.admin_socket()),
            (None, None) => AdminAddress::beside(self.output.as_deref()),
        }
        .map_err(Error::Usage)?;
        let default_stats = match layout {
            Some(_) => KUBERNETES_STATS_LISTEN,
            None => DEFAULT_STATS_LISTEN,
        };
        let stats_listen = self.stats_listen.or_else(|| match admin {
            AdminAddress::Unix(_) => default_stats.parse().ok(),
            AdminAddress::Tcp(_) => None,
        });
        if let (Some(_), AdminAddress::Tcp(at)) = (stats_listen, &admin) {
            if at.port() == 0 {
                return Err(Error::Usage(format!(
                    "--stats-listen passes scrapes to the admin, and --admin {at} has no fixed \
                     port: give one, or --admin unix:PATH"
                )));
            }
        }
        let role = match (&self.dataplane, &self.zone_egress) {
            (Some(name), _) => Role::Dataplane(name.clone()),
            (None, Some(name)) => Role::ZoneEgress(name.clone()),
            (None, None) => Role::Mesh,
        };
        let default_listen = match (&layout, &role) {
            (Some(_), Role::Mesh) => KUBERNETES_LISTEN,
            _ => DEFAULT_LISTEN,
        };
        let listen = self.listen.unwrap_or_else(|| {
            default_listen
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 15001)))
        });
        if role != Role::Mesh && self.xds_dir.is_none() && layout.is_none() {
            return Err(Error::Usage(
                "--dataplane and --zone-egress give Envoy its certificate as SDS files of \
                 --xds-dir, which a renewal (`extsvc watch`) replaces with no restart: give \
                 --xds-dir DIR"
                    .to_string(),
            ));
        }
        Ok(Request {
            files: self.inputs.all(),
            format,
            options: Options {
                listen,
                admin,
                stats_listen,
                wasm: match &layout {
                    Some(layout) => layout.module(),
                    None => pipeline::find_module(self.wasm.as_deref())?,
                },
                system_ca: absolute(&self.system_ca),
                dns_resolver: self.dns_resolver,
                mesh: self.mesh.clone(),
                route_timeout: std::time::Duration::from_secs(self.route_timeout),
                secrets_dir: self.secrets_dir.as_deref().map(absolute),
                xds_dir: match &layout {
                    Some(layout) => Some(layout.xds_dir()),
                    None => self.xds_dir.as_deref().map(absolute),
                },
                in_pod: layout.is_some(),
                transparent: self.transparent_proxy.then_some(transparent::Options {
                    vip_cidr: self.vip_cidr,
                    mes_vip_cidr: self.mes_vip_cidr,
                    vip_cidr6: self.vip_cidr6,
                    dns_listen: self.dns_listen,
                    previous: None,
                }),
                role,
                identity: None,
            },
        })
    }
}

impl GenerateArgs {
    /// With --format kubernetes, what the manifests are beyond the configuration.
    pub fn kubernetes(&self) -> Option<Fleet> {
        (self.format == Some(Format::Kubernetes)).then(|| Fleet {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| match (&self.dataplane, &self.zone_egress) {
                    (Some(dataplane), _) => format!("{dataplane}-sidecar"),
                    (None, Some(zone_egress)) => zone_egress.clone(),
                    (None, None) => "extsvc-egress".to_string(),
                }),
            namespace: self.namespace.clone(),
            replicas: self.replicas,
            envoy_image: self.envoy_image.clone(),
            init_image: self.init_image.clone(),
            layout: Layout {
                root: self.mount_root.clone(),
            },
        })
    }

    /// A Kubernetes volume holds what these name on this machine.
    fn refuse_local_paths(&self) -> Result<(), Error> {
        let local = [
            ("--xds-dir", self.xds_dir.is_some()),
            ("--secrets-dir", self.secrets_dir.is_some()),
        ];
        if let Some((flag, _)) = local.iter().find(|(_, given)| *given) {
            return Err(Error::Usage(format!(
                "{flag} names a directory of this machine; --format kubernetes puts its files \
                 in ConfigMaps and Secrets that the pods mount under --mount-root: drop {flag}"
            )));
        }
        let in_container = [
            ("--mount-root", &self.mount_root),
            ("--system-ca", &self.system_ca),
        ];
        match in_container.iter().find(|(_, path)| !path.is_absolute()) {
            Some((flag, path)) => Err(Error::Usage(format!(
                "{flag} {} is a path in the Envoy container: give it absolute",
                path.display()
            ))),
            None => Ok(()),
        }
    }
}

/// Runs the command: the configuration goes to `-o FILE`, else to `out`; warnings about what
/// the configuration lets through go to `notes`.
pub fn run(args: &GenerateArgs, out: &mut dyn Write, notes: &mut dyn Write) -> Result<(), Error> {
    let request = args.request()?;
    let (text, private) = match args.kubernetes() {
        Some(fleet) => {
            let manifests = kubernetes_manifests(args, &request, &fleet, notes)?;
            let _ = writeln!(notes, "extsvc: configuration version {}", manifests.version);
            (manifests.text, manifests.holds_keys)
        }
        None => {
            let generated = pipeline::apply(&request, notes)?;
            (generated.bootstrap, generated.private)
        }
    };
    match &args.output {
        Some(path) => Ok(atomic::write_file(path, text.as_bytes(), private)?),
        None => out
            .write_all(text.as_bytes())
            .map_err(|error| Error::Write(WriteError::new(Path::new("stdout"))(error))),
    }
}

/// The manifests of `request`, keeping what the manifests at `-o FILE` issued and allotted.
fn kubernetes_manifests(
    args: &GenerateArgs,
    request: &Request,
    fleet: &Fleet,
    notes: &mut dyn Write,
) -> Result<kubernetes::Manifests, Error> {
    let previous = match &args.output {
        Some(path) => kubernetes::previous(path, &fleet.name).map_err(Error::Usage)?,
        None => pipeline::Previous::default(),
    };
    let module_path = pipeline::find_module(args.wasm.as_deref())?;
    let module = std::fs::read(&module_path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the module {}: {e}",
            module_path.display()
        ))
    })?;
    let built = pipeline::build(request, previous, notes)?;
    let capture = match (&built.options.transparent, &built.options.role) {
        (Some(transparent), Role::Dataplane(_)) => Some(Capture {
            envoy_uid: kubernetes::SIDECAR_UID,
            redirect_dns: true,
            outbound_port: built.options.listen.port(),
            dns_port: transparent.dns_listen.port(),
            exclude_outbound_ports: Vec::new(),
            block_uncaptured: uncaptured::closed(
                &built.loaded.checked.resources,
                &catalog::select_mesh(
                    &built.loaded.checked.resources,
                    built.options.mesh.as_deref(),
                )
                .map_err(|e| Error::Generate(generate::Error::Mesh(e)))?,
            )
            .is_some(),
        }),
        _ => None,
    };
    kubernetes::manifests(&built, &module, fleet, capture.as_ref()).map_err(Error::Manifests)
}
