//! Part 2, the per-request cost inside the filter (`host-tests/benches/filter_cost.rs`, fuel in
//! wasmtime), and the release profile study's module builds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{log, Bench};
use extsvc_testkit::runner;

/// `cargo bench -q -p host-tests --bench filter_cost -- LABEL=PATH...`: the command and its
/// stdout (Markdown, plus one `SUMMARY` line per module).
pub fn filter_cost(
    b: &Bench,
    modules: &[(String, PathBuf)],
) -> Result<(Vec<String>, String), String> {
    let mut cmd: Vec<String> = [
        "cargo",
        "bench",
        "-q",
        "-p",
        "host-tests",
        "--bench",
        "filter_cost",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cmd.extend(modules.iter().map(|(l, p)| format!("{l}={}", p.display())));
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).current_dir(&b.root);
    // The bench profile inherits release (fat LTO, 1 codegen unit): minutes more for wasmtime,
    // and fuel counts the module's instructions, not the host's.
    for (k, v) in [
        ("CARGO_PROFILE_BENCH_LTO", "false"),
        ("CARGO_PROFILE_BENCH_CODEGEN_UNITS", "16"),
    ] {
        if std::env::var_os(k).is_none() {
            c.env(k, v);
        }
    }
    let o = runner::run(&mut c, Duration::from_secs(3600))?;
    if !o.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}",
            cmd.join(" "),
            o.status,
            o.stderr
        ));
    }
    Ok((cmd, o.stdout))
}

/// name: `--config` overrides on top of `[profile.release]` (lto, codegen-units 1, panic
/// abort, strip).
const PROFILE_SET: [(&str, &[(&str, &str)]); 4] = [
    ("o3", &[("opt-level", "3")]),
    ("os", &[("opt-level", "\"s\"")]),
    ("oz", &[("opt-level", "\"z\"")]),
    (
        "o3-thin",
        &[
            ("opt-level", "3"),
            ("lto", "\"thin\""),
            ("codegen-units", "16"),
        ],
    ),
];

/// Builds the module with each profile, then (where binaryen's `wasm-opt` is or can be
/// installed) three `wasm-opt` passes: (name, module, command) for each.
pub fn build_profiles(b: &Bench) -> Result<Vec<(String, PathBuf, String)>, String> {
    let mut built = Vec::new();
    for (prof, opts) in PROFILE_SET {
        let pname = format!("wasm-{prof}");
        let mut cmd: Vec<String> = [
            "cargo",
            "build",
            "-q",
            "--target",
            "wasm32-wasip1",
            "-p",
            "external-service-filter",
            "--profile",
            &pname,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut cfg = vec![format!("profile.{pname}.inherits=\"release\"")];
        cfg.extend(opts.iter().map(|(k, v)| format!("profile.{pname}.{k}={v}")));
        for c in cfg {
            cmd.push("--config".into());
            cmd.push(c);
        }
        let shown: Vec<String> = opts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        log(&format!(
            "building the module with {prof}: {}",
            shown.join(", ")
        ));
        let o = runner::run(
            Command::new(&cmd[0]).args(&cmd[1..]).current_dir(&b.root),
            Duration::from_secs(1800),
        )?;
        if !o.status.success() {
            return Err(format!("{} failed:\n{}", cmd.join(" "), o.stderr));
        }
        let path = b
            .root
            .join("target/wasm32-wasip1")
            .join(&pname)
            .join("external_service_filter.wasm");
        built.push((prof.to_string(), path, cmd.join(" ")));
    }
    if !has("wasm-opt") {
        let _ = runner::run(
            Command::new("apt-get").args(["install", "-y", "-qq", "binaryen"]),
            Duration::from_secs(600),
        );
    }
    if has("wasm-opt") {
        let feats = [
            "--enable-bulk-memory",
            "--enable-sign-ext",
            "--enable-nontrapping-float-to-int",
            "--enable-mutable-globals",
            "--enable-multivalue",
            "--enable-reference-types",
        ];
        for (src, flag) in [("o3", "-O3"), ("oz", "-Oz"), ("os", "-Oz")] {
            let Some((_, path, _)) = built.iter().find(|(n, _, _)| n == src).cloned() else {
                continue;
            };
            let out = b.work.join(format!("{src}+wasm-opt{flag}.wasm"));
            let mut cmd: Vec<String> = vec![
                "wasm-opt".into(),
                flag.into(),
                "--strip-debug".into(),
                "--strip-producers".into(),
            ];
            cmd.extend(feats.iter().map(|f| f.to_string()));
            cmd.extend([
                path.display().to_string(),
                "-o".into(),
                out.display().to_string(),
            ]);
            let o = runner::run(
                Command::new(&cmd[0]).args(&cmd[1..]),
                Duration::from_secs(600),
            )?;
            if o.status.success() {
                built.push((format!("{src}+wasm-opt{flag}"), out, cmd.join(" ")));
            } else {
                let e: String = o.stderr.trim().chars().take(300).collect();
                log(&format!("wasm-opt {flag} on {src} failed: {e}"));
            }
        }
    }
    Ok(built)
}

fn has(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| is_executable(&d.join(program))))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
