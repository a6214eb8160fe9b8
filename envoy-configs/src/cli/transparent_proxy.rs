//! `extsvc transparent-proxy install|uninstall`: the arguments of
//! [`crate::transparent_proxy`], and what it prints.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use external_service_model::catalog;

use crate::read::{self, Loaded, ReadError};
use crate::transparent_proxy::iptables;
use crate::transparent_proxy::rules::{
    install_rules, removal_rules, Capture, Rule, CHAINS, OUTPUT_CHAIN, REDIRECT_CHAIN,
};
use crate::transparent_proxy::uncaptured::{self, Asked, Decision, Passthrough};

#[derive(Debug, Subcommand)]
pub enum TransparentProxyCommand {
    /// Apply the capture rules in the current network namespace
    Install(InstallArgs),
    /// Remove exactly the rules `install` applied
    Uninstall(UninstallArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc transparent-proxy install --envoy-uid 5678 --redirect-dns --dry-run
  extsvc transparent-proxy install --envoy-uid 5678 --redirect-dns --from mesh.yaml services/
  extsvc transparent-proxy install --envoy-uid 5678 --redirect-dns --block-uncaptured
  runuser -u envoy -- envoy -c envoy.yaml    # Envoy as that uid: its traffic is not captured
  extsvc transparent-proxy uninstall

Outbound TCP (IPv4 and IPv6) of every other uid, except to loopback and to
--exclude-outbound-ports, goes to --outbound-port (the capture listeners of `extsvc generate
--transparent-proxy`). With --from (the resource files given to `generate`), what the capture
does not take is blocked when the mesh's passthrough is off, as with --block-uncaptured.
Needs root, iptables and ip6tables; a failed install removes what it applied.

Exit status: 0 when the rules were applied (or printed), 1 when the resources of --from
are invalid (the report is the one `extsvc validate` prints; nothing is changed), 2 when
the command cannot run.")]
pub struct InstallArgs {
    /// The uid Envoy runs as: its own traffic is never captured (Kuma's default: 5678).
    #[arg(long, value_name = "UID")]
    pub envoy_uid: u32,

    /// Also send UDP port 53 (DNS), to any address, to --dns-port: the builtin DNS.
    #[arg(long)]
    pub redirect_dns: bool,

    /// Where captured TCP goes: the capture listener (`generate --listen`).
    #[arg(long, value_name = "PORT", default_value_t = 15001)]
    pub outbound_port: u16,

    /// Where DNS goes with --redirect-dns (`generate --dns-listen`).
    #[arg(long, value_name = "PORT", default_value_t = 15053)]
    pub dns_port: u16,

    /// TCP destination ports that go out directly, not through Envoy (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub exclude_outbound_ports: Vec<u16>,

    /// Reject what the capture does not take, for every uid but Envoy's, IPv4 and IPv6: UDP
    /// (other than IPv4 DNS with --redirect-dns), ICMP, ICMPv6 and other protocols. With a
    /// mesh whose passthrough is off, nothing undeclared then leaves the namespace. Implied by
    /// --from when the mesh's passthrough is off.
    #[arg(long)]
    pub block_uncaptured: bool,

    /// The resource files `generate` is given (files or directories, `-` for standard
    /// input), read and checked as it reads them: when the served mesh's passthrough is off
    /// (the Mesh's networking.outbound.passthrough: false, or a MeshPassthrough that may
    /// select this proxy with passthroughMode None or Matched), --block-uncaptured is implied.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub from: Vec<PathBuf>,

    /// The mesh to serve, when the resources of --from span several.
    #[arg(long, value_name = "NAME", requires = "from")]
    pub mesh: Option<String>,

    /// With --from and the mesh's passthrough off: leave what the capture does not take open
    /// all the same (warned about on every run).
    #[arg(long, requires = "from", conflicts_with = "block_uncaptured")]
    pub allow_uncaptured: bool,

    /// Print the iptables commands and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Print the iptables commands and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Why `transparent-proxy` changed nothing.
#[derive(Debug)]
pub enum Error {
    /// A file of --from could not be read (exit 2).
    Read(ReadError),
    /// The resources of --from are invalid (exit 1): print with `cli::validate::write_text`.
    Invalid(Box<Loaded>),
    /// The mesh to serve is not clear (exit 2).
    Mesh(String),
    /// Applying or removing the rules failed (exit 2).
    Rules(iptables::Error),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) => 1,
            Error::Read(_) | Error::Mesh(_) | Error::Rules(_) => 2,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read(e) => e.fmt(f),
            Error::Invalid(_) => f.write_str("invalid resources in --from: nothing was changed"),
            Error::Mesh(e) => write!(f, "{e}: name the one to serve with --mesh NAME"),
            Error::Rules(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<iptables::Error> for Error {
    fn from(e: iptables::Error) -> Error {
        Error::Rules(e)
    }
}

impl InstallArgs {
    fn asked(&self) -> Asked {
        match (self.block_uncaptured, self.allow_uncaptured) {
            (true, _) => Asked::Block,
            (false, true) => Asked::Allow,
            (false, false) => Asked::Default,
        }
    }

    /// The served mesh's passthrough, from the resources of --from.
    fn passthrough(&self) -> Result<Passthrough, Error> {
        if self.from.is_empty() {
            return Ok(Passthrough::Unknown);
        }
        let loaded = read::load(&self.from).map_err(Error::Read)?;
        // What `generate` cannot build yet does not change what passes: only invalid input
        // is refused.
        if !loaded.is_valid() {
            return Err(Error::Invalid(Box::new(loaded)));
        }
        let resources = &loaded.checked.resources;
        let mesh = catalog::select_mesh(resources, self.mesh.as_deref()).map_err(Error::Mesh)?;
        Ok(match uncaptured::closed(resources, &mesh) {
            Some(why) => Passthrough::Off(why),
            None => Passthrough::On,
        })
    }

    fn capture(&self, block_uncaptured: bool) -> Capture {
        Capture {
            envoy_uid: self.envoy_uid,
            redirect_dns: self.redirect_dns,
            outbound_port: self.outbound_port,
            dns_port: self.dns_port,
            exclude_outbound_ports: self.exclude_outbound_ports.clone(),
            block_uncaptured,
        }
    }
}

/// Runs the command: the rules (or, with --dry-run, the commands) and what was done go to
/// `out`; notes and warnings about what is left open go to `notes`.
pub fn run(
    command: &TransparentProxyCommand,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<(), Error> {
    match command {
        TransparentProxyCommand::Install(args) => install(args, out, notes),
        TransparentProxyCommand::Uninstall(args) => uninstall(args, out),
    }
}

fn install(args: &InstallArgs, out: &mut dyn Write, notes: &mut dyn Write) -> Result<(), Error> {
    let Decision { block, message } =
        uncaptured::decide(args.asked(), &args.passthrough()?, args.redirect_dns);
    if let Some(message) = message {
        let _ = writeln!(notes, "{message}");
    }
    let capture = args.capture(block);
    if args.dry_run {
        print(out, &install_rules(&capture));
        return Ok(());
    }
    let applied = iptables::install(&capture)?;
    let _ = writeln!(out, "extsvc: transparent proxy installed ({applied} rules)");
    Ok(())
}

fn uninstall(args: &UninstallArgs, out: &mut dyn Write) -> Result<(), Error> {
    if args.dry_run {
        print(out, &removal_rules(&CHAINS));
        return Ok(());
    }
    if !iptables::uninstall()? {
        let _ = writeln!(
            out,
            "extsvc: the transparent proxy is not installed in this network namespace (no \
             {OUTPUT_CHAIN} or {REDIRECT_CHAIN} chain); nothing was changed"
        );
        return Ok(());
    }
    let _ = writeln!(out, "extsvc: transparent proxy uninstalled");
    Ok(())
}

fn print(out: &mut dyn Write, rules: &[Rule]) {
    for r in rules {
        let _ = writeln!(out, "{r}");
    }
}
