//! Runs the rules of [`super::rules`] in the current network namespace: all or nothing.

use std::fmt;
use std::process::Command;

use super::rules::{install_rules, removal_rules, Capture, Chain, Family, Rule, CHAINS};

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

/// Applies the rules of `capture`; on any failure removes what it applied. How many rules
/// it applied.
pub fn install(capture: &Capture) -> Result<usize, Error> {
    let rules = install_rules(capture);
    check_can_run(&[Family::V4, Family::V6])?;
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
    Ok(rules.len())
}

/// Removes every chain of ours that exists: whether there was any.
pub fn uninstall() -> Result<bool, Error> {
    check_can_run(&[Family::V4])?;
    if present_chains().is_empty() {
        return Ok(false);
    }
    remove_present().map_err(|(rule, stderr)| Error::Failed {
        rule,
        stderr,
        undone: false,
    })?;
    Ok(true)
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
