//! `extsvc transparent-proxy install|uninstall`: the arguments of
//! [`crate::transparent_proxy`], and what it prints.

use std::io::Write;

use clap::{Args, Subcommand};

use crate::transparent_proxy::iptables::{self, Error};
use crate::transparent_proxy::rules::{
    install_rules, removal_rules, Capture, Rule, CHAINS, OUTPUT_CHAIN, REDIRECT_CHAIN,
};

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
  extsvc transparent-proxy install --envoy-uid 5678 --redirect-dns --block-uncaptured
  runuser -u envoy -- envoy -c envoy.yaml    # Envoy as that uid: its traffic is not captured
  extsvc transparent-proxy uninstall

Outbound TCP (IPv4 and IPv6) of every other uid, except to loopback and to
--exclude-outbound-ports, goes to --outbound-port (the capture listeners of `extsvc generate
--transparent-proxy`). Needs root, iptables and ip6tables; a failed install removes what it
applied.")]
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
    /// mesh whose passthrough is off, nothing undeclared then leaves the namespace.
    #[arg(long)]
    pub block_uncaptured: bool,

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

impl InstallArgs {
    fn capture(&self) -> Capture {
        Capture {
            envoy_uid: self.envoy_uid,
            redirect_dns: self.redirect_dns,
            outbound_port: self.outbound_port,
            dns_port: self.dns_port,
            exclude_outbound_ports: self.exclude_outbound_ports.clone(),
            block_uncaptured: self.block_uncaptured,
        }
    }
}

pub fn run(command: &TransparentProxyCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        TransparentProxyCommand::Install(args) => install(args, out),
        TransparentProxyCommand::Uninstall(args) => uninstall(args, out),
    }
}

fn install(args: &InstallArgs, out: &mut dyn Write) -> Result<(), Error> {
    let capture = args.capture();
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
