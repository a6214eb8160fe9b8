//! Part 6: a fleet on Kubernetes ConfigMap volumes. The fleet test of `extsvc`
//! (`envoy-configs/tests/all/fleet.rs`: three egress replicas and two sidecars, each its own
//! Envoy in a network namespace, the volumes updated with the kubelet's atomic-writer steps)
//! is run as it is, and what it prints is recorded: for each update, the time from the
//! `..data` swap to the last Envoy serving the change. The test asserts the rest (every Envoy
//! at the new version, no failed request, no rejected update).

use std::process::Command;

use super::Bench;

/// One update: its name, and the milliseconds to the last Envoy serving it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub envoys: usize,
    pub millis: u64,
}

/// What the fleet test printed, and the command that ran it.
#[derive(Debug, Clone)]
pub struct Convergence {
    pub command: String,
    pub steps: Vec<Step>,
}

/// Runs the fleet test `rounds` times with the extsvc of this bench (needs root).
pub fn run(bench: &Bench, rounds: usize) -> Result<Convergence, String> {
    let args = [
        "test",
        "-q",
        "-p",
        "extsvc",
        "--test",
        "all",
        "--",
        "fleet::",
        "--nocapture",
    ];
    let mut steps = Vec::new();
    for _ in 0..rounds {
        let out = Command::new("cargo")
            .args(args)
            .current_dir(&bench.root)
            .env("EXTSVC", &bench.extsvc)
            .output()
            .map_err(|e| format!("cargo test (fleet): {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "the fleet test failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        steps.extend(stdout.lines().filter_map(parse));
    }
    if steps.is_empty() {
        return Err("the fleet test printed no convergence time".to_string());
    }
    Ok(Convergence {
        command: format!("EXTSVC={} cargo {}", bench.extsvc.display(), args.join(" ")),
        steps,
    })
}

/// `fleet: <step>: the last of <n> Envoys served the change <ms> ms after the swap`.
fn parse(line: &str) -> Option<Step> {
    let rest = line.strip_prefix("fleet: ")?;
    let (name, rest) = rest.split_once(": the last of ")?;
    let (envoys, rest) = rest.split_once(" Envoys served the change ")?;
    let millis = rest.strip_suffix(" ms after the swap")?;
    Some(Step {
        name: name.to_string(),
        envoys: envoys.parse().ok()?,
        millis: millis.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_what_the_fleet_test_prints() {
        let line = "fleet: move beta: the last of 5 Envoys served the change 234 ms after the swap";
        assert_eq!(
            parse(line),
            Some(Step {
                name: "move beta".to_string(),
                envoys: 5,
                millis: 234
            })
        );
        assert_eq!(parse("test result: ok."), None);
    }
}
