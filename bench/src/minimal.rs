//! The least a proxy-wasm filter can cost for this job, as modules written by hand in
//! WebAssembly text beside the bench and compiled here (the `wat` crate): each exports only
//! what Envoy needs and does one thing on request headers. The filter's instructions per
//! request over theirs is how far it is from the limit of proxy-wasm in this Envoy.

use std::fs;
use std::path::{Path, PathBuf};

use super::Bench;

/// A minimal module: its variant letter (its own proxy port in part 1), its source under the
/// workspace root, and what it does, for the report.
pub struct Minimal {
    pub kind: &'static str,
    pub wat: &'static str,
    pub does: &'static str,
}

/// Returns Continue at once: what Envoy's two calls into any module cost.
pub const FLOOR: Minimal = Minimal {
    kind: "floor",
    wat: "bench/floor.wat",
    does: "returns Continue, no host call",
};

/// Reads `:authority` (one host call, and Envoy's call back for the buffer), Continue.
pub const READ: Minimal = Minimal {
    kind: "R",
    wat: "bench/read_authority.wat",
    does: "reads `:authority`, returns Continue",
};

/// Reads `:authority` and writes it back (Envoy then picks the route again), Continue.
pub const REWRITE: Minimal = Minimal {
    kind: "W",
    wat: "bench/rewrite_authority.wat",
    does: "reads `:authority`, writes it back, returns Continue",
};

impl Minimal {
    /// The module compiled to `dir/<kind>.wasm`.
    pub fn compile(&self, b: &Bench, dir: &Path) -> Result<PathBuf, String> {
        let source = b.root.join(self.wat);
        let binary = wat::parse_file(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = dir.join(format!("{}.wasm", self.kind));
        fs::write(&out, binary).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module the bench counts is valid WebAssembly text (a typo would otherwise surface
    /// only in the middle of a run).
    #[test]
    fn every_minimal_module_compiles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for m in [FLOOR, READ, REWRITE] {
            let binary =
                wat::parse_file(root.join(m.wat)).unwrap_or_else(|e| panic!("{}: {e}", m.wat));
            assert!(binary.starts_with(b"\0asm"), "{}", m.wat);
        }
    }
}
