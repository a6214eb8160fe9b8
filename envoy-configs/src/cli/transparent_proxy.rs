//! `extsvc transparent-proxy install|uninstall`: the iptables rules that send an app's
//! outbound TCP (and DNS) to Envoy, after Kuma's `kumactl install transparent-proxy`, in
//! chains of their own. The rules are built by a pure function ([`install_rules`],
//! [`removal_rules`]); a thin layer runs them.

use std::fmt;
use std::io::Write;
use std::process::Command;

use clap::{Args, Subcommand};

/// Every chain this command makes: `uninstall` removes these and nothing else.
const CHAINS: [Chain; 4] = [
    Chain {
        family: Family::V4,
        table: "nat",
        name: OUTPUT_CHAIN,
        jumped_from_output: true,
    },
    Chain {
        family: Family::V4,
        table: "nat",
        name: REDIRECT_CHAIN,
        jumped_from_output: false,
    },
    Chain {
        family: Family::V4,
        table: "filter",
        name: OUTPUT_CHAIN,
        jumped_from_output: true,
    },
    Chain {
        family: Family::V6,
        table: "filter",
        name: OUTPUT_CHAIN,
        jumped_from_output: true,
    },
];
const OUTPUT_CHAIN: &str = "EXTSVC_OUTPUT";
const REDIRECT_CHAIN: &str = "EXTSVC_REDIRECT";

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

Outbound TCP of every other uid, except to loopback and to --exclude-outbound-ports,
goes to --outbound-port (the capture listener of `extsvc generate --transparent-proxy`).
Needs root and iptables; a failed install removes what it applied.")]
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

    /// Reject what the capture does not take, for every uid but Envoy's: UDP (other than
    /// DNS with --redirect-dns), ICMP and other protocols, and all IPv6. With a mesh whose
    /// passthrough is off, nothing undeclared then leaves the namespace.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chain {
    family: Family,
    table: &'static str,
    name: &'static str,
    jumped_from_output: bool,
}

/// One iptables command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub table: &'static str,
    pub args: Vec<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -w -t {} {}",
            self.family.tool(),
            self.table,
            self.args.join(" ")
        )
    }
}

fn rule(family: Family, table: &'static str, args: &str) -> Rule {
    Rule {
        family,
        table,
        args: args.split_whitespace().map(str::to_string).collect(),
    }
}

/// The rules of `install`, in order: chains made and filled first, the jumps from OUTPUT
/// last, so capture starts whole.
pub fn install_rules(args: &InstallArgs) -> Vec<Rule> {
    use Family::{V4, V6};
    let uid = args.envoy_uid;
    let nat = |a: &str| rule(V4, "nat", a);
    let mut rules = vec![
        nat(&format!("-N {OUTPUT_CHAIN}")),
        nat(&format!("-N {REDIRECT_CHAIN}")),
        nat(&format!(
            "-A {REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {}",
            args.outbound_port
        )),
        nat(&format!(
            "-A {OUTPUT_CHAIN} -m owner --uid-owner {uid} -j RETURN"
        )),
    ];
    if args.redirect_dns {
        // Before the loopback exception: a resolver on 127.0.0.53 is redirected too.
        rules.push(nat(&format!(
            "-A {OUTPUT_CHAIN} -p udp --dport 53 -j REDIRECT --to-ports {}",
            args.dns_port
        )));
    }
    rules.push(nat(&format!("-A {OUTPUT_CHAIN} -o lo -j RETURN")));
    for port in &args.exclude_outbound_ports {
        rules.push(nat(&format!(
            "-A {OUTPUT_CHAIN} -p tcp --dport {port} -j RETURN"
        )));
    }
    rules.push(nat(&format!(
        "-A {OUTPUT_CHAIN} -p tcp -j {REDIRECT_CHAIN}"
    )));
    let mut jumps = vec![nat(&format!("-A OUTPUT -j {OUTPUT_CHAIN}"))];
    if args.block_uncaptured {
        for family in [V4, V6] {
            let filter = |a: &str| rule(family, "filter", a);
            rules.push(filter(&format!("-N {OUTPUT_CHAIN}")));
            rules.push(filter(&format!(
                "-A {OUTPUT_CHAIN} -m owner --uid-owner {uid} -j RETURN"
            )));
            rules.push(filter(&format!("-A {OUTPUT_CHAIN} -o lo -j RETURN")));
            if family == V4 {
                // What the REDIRECT captured, now bound for Envoy: the hook still sees the
                // interface routed before the REDIRECT, so `-o lo` does not match it.
                rules.push(filter(&format!(
                    "-A {OUTPUT_CHAIN} -m conntrack --ctstate DNAT -j RETURN"
                )));
            }
            // Answers to connections made to the app.
            rules.push(filter(&format!(
                "-A {OUTPUT_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
            )));
            if family == V4 {
                for port in &args.exclude_outbound_ports {
                    rules.push(filter(&format!(
                        "-A {OUTPUT_CHAIN} -p tcp --dport {port} -j RETURN"
                    )));
                }
            }
            rules.push(filter(&format!("-A {OUTPUT_CHAIN} -j REJECT")));
            jumps.push(filter(&format!("-A OUTPUT -j {OUTPUT_CHAIN}")));
        }
    }
    rules.extend(jumps);
    rules
}

/// The rules that remove the chains of [`CHAINS`] that exist (`present`): the jumps from
/// OUTPUT first, so nothing is captured by half a chain, then each chain.
fn removal_rules(present: &[Chain]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = present
        .iter()
        .filter(|c| c.jumped_from_output)
        .map(|c| rule(c.family, c.table, &format!("-D OUTPUT -j {}", c.name)))
        .collect();
    for verb in ["-F", "-X"] {
        rules.extend(
            present
                .iter()
                .map(|c| rule(c.family, c.table, &format!("{verb} {}", c.name))),
        );
    }
    rules
}

/// Why the rules were not (all) applied or removed.
#[derive(Debug)]
pub enum Error {
    NotRoot,
    Missing(&'static str),
    AlreadyInstalled(String),
    /// A command failed; whatever was applied before it has been removed again.
    Failed {
        rule: String,
        stderr: String,
        undone: bool,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRoot => f.write_str(
                "changing iptables rules needs root (CAP_NET_ADMIN in this network namespace); \
                 nothing was changed; --dry-run prints the rules",
            ),
            Error::Missing(tool) => write!(
                f,
                "{tool} is not installed (Debian: apt-get install iptables; `make setup` does it); \
                 nothing was changed"
            ),
            Error::AlreadyInstalled(chain) => write!(
                f,
                "the rules are already installed ({chain} exists); nothing was changed: run \
                 `extsvc transparent-proxy uninstall` first"
            ),
            Error::Failed {
                rule,
                stderr,
                undone,
            } => write!(
                f,
                "`{rule}` failed: {}; {}",
                stderr.trim(),
                if *undone {
                    "the rules applied before it were removed again"
                } else {
                    "removing the rules applied before it failed too: run `extsvc \
                     transparent-proxy uninstall`"
                }
            ),
        }
    }
}

impl std::error::Error for Error {}

pub fn run(command: &TransparentProxyCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        TransparentProxyCommand::Install(args) => install(args, out),
        TransparentProxyCommand::Uninstall(args) => uninstall(args, out),
    }
}

fn install(args: &InstallArgs, out: &mut dyn Write) -> Result<(), Error> {
    let rules = install_rules(args);
    if args.dry_run {
        print(out, &rules);
        return Ok(());
    }
    let families: &[Family] = if args.block_uncaptured {
        &[Family::V4, Family::V6]
    } else {
        &[Family::V4]
    };
    check_can_run(families)?;
    if let Some(chain) = present_chains().first() {
        return Err(Error::AlreadyInstalled(format!(
            "{} table {} chain {}",
            chain.family.tool(),
            chain.table,
            chain.name
        )));
    }
    for r in &rules {
        if let Err(stderr) = apply(r) {
            let undone = remove_present().is_ok();
            return Err(Error::Failed {
                rule: r.to_string(),
                stderr,
                undone,
            });
        }
    }
    let _ = writeln!(
        out,
        "extsvc: transparent proxy installed ({} rules)",
        rules.len()
    );
    Ok(())
}

fn uninstall(args: &UninstallArgs, out: &mut dyn Write) -> Result<(), Error> {
    if args.dry_run {
        print(out, &removal_rules(&CHAINS));
        return Ok(());
    }
    check_can_run(&[Family::V4])?;
    if present_chains().is_empty() {
        let _ = writeln!(
            out,
            "extsvc: the transparent proxy is not installed in this network namespace (no \
             {OUTPUT_CHAIN} or {REDIRECT_CHAIN} chain); nothing was changed"
        );
        return Ok(());
    }
    remove_present().map_err(|(rule, stderr)| Error::Failed {
        rule,
        stderr,
        undone: false,
    })?;
    let _ = writeln!(out, "extsvc: transparent proxy uninstalled");
    Ok(())
}

fn print(out: &mut dyn Write, rules: &[Rule]) {
    for r in rules {
        let _ = writeln!(out, "{r}");
    }
}

fn check_can_run(families: &[Family]) -> Result<(), Error> {
    for family in families {
        let tool = family.tool();
        match Command::new(tool).arg("--version").output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::Missing(tool)),
            Err(_) => return Err(Error::Missing(tool)),
            Ok(_) => {}
        }
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::NotRoot);
    }
    Ok(())
}

fn apply(r: &Rule) -> Result<(), String> {
    let output = Command::new(r.family.tool())
        .args(["-w", "-t", r.table])
        .args(&r.args)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The chains of [`CHAINS`] that exist now (a missing ip6tables has none).
fn present_chains() -> Vec<Chain> {
    CHAINS
        .iter()
        .filter(|c| {
            Command::new(c.family.tool())
                .args(["-w", "-t", c.table, "-S", c.name])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .copied()
        .collect()
}

/// Removes every chain of ours that exists; a jump already gone is no error.
fn remove_present() -> Result<(), (String, String)> {
    for r in removal_rules(&present_chains()) {
        if let Err(stderr) = apply(&r) {
            let missing_jump = r.args.first().is_some_and(|a| a == "-D");
            if !missing_jump {
                return Err((r.to_string(), stderr));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn args() -> InstallArgs {
        InstallArgs {
            envoy_uid: 5678,
            redirect_dns: false,
            outbound_port: 15001,
            dns_port: 15053,
            exclude_outbound_ports: Vec::new(),
            block_uncaptured: false,
            dry_run: false,
        }
    }

    fn text(rules: &[Rule]) -> String {
        rules.iter().map(|r| format!("{r}\n")).collect()
    }

    #[test]
    fn install_rules_table() {
        let cases: [(&str, InstallArgs, &str); 3] = [
            (
                "TCP only",
                args(),
                "iptables -w -t nat -N EXTSVC_OUTPUT
iptables -w -t nat -N EXTSVC_REDIRECT
iptables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 15001
iptables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
iptables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
",
            ),
            (
                "DNS, other ports, exclusions",
                InstallArgs {
                    envoy_uid: 1000,
                    redirect_dns: true,
                    outbound_port: 16001,
                    dns_port: 16053,
                    exclude_outbound_ports: vec![22, 8080],
                    ..args()
                },
                "iptables -w -t nat -N EXTSVC_OUTPUT
iptables -w -t nat -N EXTSVC_REDIRECT
iptables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 16001
iptables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 1000 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 16053
iptables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp --dport 22 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp --dport 8080 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
iptables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
",
            ),
            (
                "everything else rejected, IPv6 too",
                InstallArgs {
                    redirect_dns: true,
                    exclude_outbound_ports: vec![22],
                    block_uncaptured: true,
                    ..args()
                },
                "iptables -w -t nat -N EXTSVC_OUTPUT
iptables -w -t nat -N EXTSVC_REDIRECT
iptables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 15001
iptables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053
iptables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp --dport 22 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
iptables -w -t filter -N EXTSVC_OUTPUT
iptables -w -t filter -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
iptables -w -t filter -A EXTSVC_OUTPUT -o lo -j RETURN
iptables -w -t filter -A EXTSVC_OUTPUT -m conntrack --ctstate DNAT -j RETURN
iptables -w -t filter -A EXTSVC_OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
iptables -w -t filter -A EXTSVC_OUTPUT -p tcp --dport 22 -j RETURN
iptables -w -t filter -A EXTSVC_OUTPUT -j REJECT
ip6tables -w -t filter -N EXTSVC_OUTPUT
ip6tables -w -t filter -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -o lo -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -j REJECT
iptables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
iptables -w -t filter -A OUTPUT -j EXTSVC_OUTPUT
ip6tables -w -t filter -A OUTPUT -j EXTSVC_OUTPUT
",
            ),
        ];
        for (case, args, want) in cases {
            assert_eq!(text(&install_rules(&args)), want, "{case}");
        }
    }

    #[test]
    fn removal_takes_the_jumps_out_first_and_only_our_chains() {
        assert_eq!(
            text(&removal_rules(&CHAINS[..2])),
            "iptables -w -t nat -D OUTPUT -j EXTSVC_OUTPUT
iptables -w -t nat -F EXTSVC_OUTPUT
iptables -w -t nat -F EXTSVC_REDIRECT
iptables -w -t nat -X EXTSVC_OUTPUT
iptables -w -t nat -X EXTSVC_REDIRECT
"
        );
        assert_eq!(text(&removal_rules(&[])), "");
    }
}
