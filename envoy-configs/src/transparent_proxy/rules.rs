//! The iptables and ip6tables rules that send an app's outbound TCP (and DNS) to Envoy, after
//! Kuma's `kumactl install transparent-proxy`, in chains of their own: built by pure functions
//! ([`install_rules`], [`removal_rules`]) that [`super::iptables`] runs.

use std::fmt;

/// Every chain this command makes: `uninstall` removes these and nothing else.
pub const CHAINS: [Chain; 6] = [
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
        family: Family::V6,
        table: "nat",
        name: OUTPUT_CHAIN,
        jumped_from_output: true,
    },
    Chain {
        family: Family::V6,
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
pub const OUTPUT_CHAIN: &str = "EXTSVC_OUTPUT";
pub const REDIRECT_CHAIN: &str = "EXTSVC_REDIRECT";

/// What to capture, and for whom not: the options of `transparent-proxy install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The uid Envoy runs as: its own traffic is never captured.
    pub envoy_uid: u32,
    /// Also send UDP port 53 (DNS), to any address, to `dns_port`.
    pub redirect_dns: bool,
    /// Where captured TCP goes: the capture listener.
    pub outbound_port: u16,
    /// Where DNS goes with `redirect_dns`.
    pub dns_port: u16,
    /// TCP destination ports that go out directly, not through Envoy.
    pub exclude_outbound_ports: Vec<u16>,
    /// Reject what the capture does not take, for every uid but Envoy's.
    pub block_uncaptured: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub family: Family,
    pub table: &'static str,
    pub name: &'static str,
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

/// The rules of `family` as `iptables-restore --noflush` input: a table at a time, in the
/// order the tables come in `rules`, its new chains declared, then its rules in order. What a
/// Kubernetes init container with `iptables-restore` and no shell applies.
pub fn restore_input(rules: &[Rule], family: Family) -> String {
    let rules: Vec<&Rule> = rules.iter().filter(|r| r.family == family).collect();
    let mut tables: Vec<&str> = Vec::new();
    for rule in &rules {
        if !tables.contains(&rule.table) {
            tables.push(rule.table);
        }
    }
    let mut text = String::new();
    for table in tables {
        text.push_str(&format!("*{table}\n"));
        let in_table = rules.iter().filter(|r| r.table == table);
        let (new_chains, others): (Vec<&&Rule>, Vec<&&Rule>) =
            in_table.partition(|r| r.args.first().is_some_and(|a| a == "-N"));
        for chain in new_chains {
            text.push_str(&format!(":{} - [0:0]\n", chain.args[1..].join(" ")));
        }
        for rule in others {
            text.push_str(&rule.args.join(" "));
            text.push('\n');
        }
        text.push_str("COMMIT\n");
    }
    text
}

fn rule(family: Family, table: &'static str, args: &str) -> Rule {
    Rule {
        family,
        table,
        args: args.split_whitespace().map(str::to_string).collect(),
    }
}

/// The rules of `install`, in order: chains made and filled first, the jumps from OUTPUT
/// last, so capture starts whole. IPv6 TCP is captured as IPv4 is (the REDIRECT sends it to
/// `[::1]:<outbound_port>`).
pub fn install_rules(args: &Capture) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut jumps = Vec::new();
    for family in [Family::V4, Family::V6] {
        rules.extend(capture_rules(family, args));
        jumps.push(rule(family, "nat", &format!("-A OUTPUT -j {OUTPUT_CHAIN}")));
    }
    if args.block_uncaptured {
        for family in [Family::V4, Family::V6] {
            rules.extend(block_rules(family, args));
            jumps.push(rule(
                family,
                "filter",
                &format!("-A OUTPUT -j {OUTPUT_CHAIN}"),
            ));
        }
    }
    rules.extend(jumps);
    rules
}

/// The nat chains of one family: TCP of every uid but Envoy's, except to loopback and the
/// excluded ports, to the capture listener.
fn capture_rules(family: Family, args: &Capture) -> Vec<Rule> {
    let nat = |a: &str| rule(family, "nat", a);
    let mut rules = vec![
        nat(&format!("-N {OUTPUT_CHAIN}")),
        nat(&format!("-N {REDIRECT_CHAIN}")),
        nat(&format!(
            "-A {REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {}",
            args.outbound_port
        )),
        nat(&format!(
            "-A {OUTPUT_CHAIN} -m owner --uid-owner {} -j RETURN",
            args.envoy_uid
        )),
    ];
    // The builtin DNS listens on IPv4: IPv6 DNS is not redirected (`--block-uncaptured`
    // rejects it).
    if args.redirect_dns && family == Family::V4 {
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
    rules
}

/// The filter chain of one family under `--block-uncaptured`: what the capture did not take
/// is rejected, for every uid but Envoy's.
fn block_rules(family: Family, args: &Capture) -> Vec<Rule> {
    let filter = |a: &str| rule(family, "filter", a);
    let mut rules = vec![
        filter(&format!("-N {OUTPUT_CHAIN}")),
        filter(&format!(
            "-A {OUTPUT_CHAIN} -m owner --uid-owner {} -j RETURN",
            args.envoy_uid
        )),
        filter(&format!("-A {OUTPUT_CHAIN} -o lo -j RETURN")),
        // What the REDIRECT captured, now bound for Envoy: the hook still sees the interface
        // routed before the REDIRECT, so `-o lo` does not match it.
        filter(&format!(
            "-A {OUTPUT_CHAIN} -m conntrack --ctstate DNAT -j RETURN"
        )),
        // Answers to connections made to the app.
        filter(&format!(
            "-A {OUTPUT_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
        )),
    ];
    if family == Family::V6 {
        // Neighbour discovery, IPv6's ARP, is sent by no socket: without it Envoy's own IPv6
        // connections find no route.
        for kind in ["neighbour-solicitation", "neighbour-advertisement"] {
            rules.push(filter(&format!(
                "-A {OUTPUT_CHAIN} -p ipv6-icmp --icmpv6-type {kind} -j RETURN"
            )));
        }
    }
    for port in &args.exclude_outbound_ports {
        rules.push(filter(&format!(
            "-A {OUTPUT_CHAIN} -p tcp --dport {port} -j RETURN"
        )));
    }
    rules.push(filter(&format!("-A {OUTPUT_CHAIN} -j REJECT")));
    rules
}

/// The rules that remove the chains of [`CHAINS`] that exist (`present`): the jumps from
/// OUTPUT first, so nothing is captured by half a chain, then each chain.
pub fn removal_rules(present: &[Chain]) -> Vec<Rule> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn args() -> Capture {
        Capture {
            envoy_uid: 5678,
            redirect_dns: false,
            outbound_port: 15001,
            dns_port: 15053,
            exclude_outbound_ports: Vec::new(),
            block_uncaptured: false,
        }
    }

    fn text(rules: &[Rule]) -> String {
        rules.iter().map(|r| format!("{r}\n")).collect()
    }

    #[test]
    fn restore_input_declares_each_tables_chains_then_its_rules_in_order() {
        let capture = Capture {
            block_uncaptured: true,
            ..args()
        };
        let rules = install_rules(&capture);
        let v4 = restore_input(&rules, Family::V4);
        assert_eq!(
            v4,
            "*nat
:EXTSVC_OUTPUT - [0:0]
:EXTSVC_REDIRECT - [0:0]
-A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
-A EXTSVC_OUTPUT -o lo -j RETURN
-A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
-A OUTPUT -j EXTSVC_OUTPUT
COMMIT
*filter
:EXTSVC_OUTPUT - [0:0]
-A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
-A EXTSVC_OUTPUT -o lo -j RETURN
-A EXTSVC_OUTPUT -m conntrack --ctstate DNAT -j RETURN
-A EXTSVC_OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A EXTSVC_OUTPUT -j REJECT
-A OUTPUT -j EXTSVC_OUTPUT
COMMIT
"
        );
        let v6 = restore_input(&rules, Family::V6);
        assert!(v6.contains("-p ipv6-icmp --icmpv6-type neighbour-solicitation -j RETURN"));
        assert_eq!(v6.matches("COMMIT").count(), 2, "{v6}");
    }

    #[test]
    fn install_rules_table() {
        let cases: [(&str, Capture, &str); 3] = [
            (
                "TCP only, IPv4 and IPv6",
                args(),
                "iptables -w -t nat -N EXTSVC_OUTPUT
iptables -w -t nat -N EXTSVC_REDIRECT
iptables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 15001
iptables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
ip6tables -w -t nat -N EXTSVC_OUTPUT
ip6tables -w -t nat -N EXTSVC_REDIRECT
ip6tables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 15001
ip6tables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
iptables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
ip6tables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
",
            ),
            (
                "DNS (IPv4 alone), other ports, exclusions",
                Capture {
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
ip6tables -w -t nat -N EXTSVC_OUTPUT
ip6tables -w -t nat -N EXTSVC_REDIRECT
ip6tables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 16001
ip6tables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 1000 -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -p tcp --dport 22 -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -p tcp --dport 8080 -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
iptables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
ip6tables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
",
            ),
            (
                "everything else rejected, IPv6 too",
                Capture {
                    exclude_outbound_ports: vec![22],
                    block_uncaptured: true,
                    ..args()
                },
                "iptables -w -t nat -N EXTSVC_OUTPUT
iptables -w -t nat -N EXTSVC_REDIRECT
iptables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 15001
iptables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp --dport 22 -j RETURN
iptables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
ip6tables -w -t nat -N EXTSVC_OUTPUT
ip6tables -w -t nat -N EXTSVC_REDIRECT
ip6tables -w -t nat -A EXTSVC_REDIRECT -p tcp -j REDIRECT --to-ports 15001
ip6tables -w -t nat -A EXTSVC_OUTPUT -m owner --uid-owner 5678 -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -o lo -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -p tcp --dport 22 -j RETURN
ip6tables -w -t nat -A EXTSVC_OUTPUT -p tcp -j EXTSVC_REDIRECT
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
ip6tables -w -t filter -A EXTSVC_OUTPUT -m conntrack --ctstate DNAT -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -p ipv6-icmp --icmpv6-type neighbour-advertisement -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -p tcp --dport 22 -j RETURN
ip6tables -w -t filter -A EXTSVC_OUTPUT -j REJECT
iptables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
ip6tables -w -t nat -A OUTPUT -j EXTSVC_OUTPUT
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
