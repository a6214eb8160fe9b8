//! The `extsvc` subcommands.

use std::path::PathBuf;

use clap::Args;

pub mod generate;
pub mod migrate;
pub mod transparent_proxy;
pub mod validate;
pub mod watch;

/// The resource files of a command, as kubectl and kumactl users type them.
#[derive(Debug, Args)]
pub struct Inputs {
    /// Resource files: YAML (documents separated by ---) or JSON (one resource or an array),
    /// in Kuma's Universal or Kubernetes form. `-` is standard input; a directory is all its
    /// *.yaml, *.yml and *.json files in name order. All are checked together.
    #[arg(value_name = "FILE", required_unless_present = "filename")]
    pub files: Vec<PathBuf>,

    /// The same as a FILE argument (repeatable), as in `kubectl apply -f`.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Vec<PathBuf>,
}

impl Inputs {
    /// Every file named, in the order given.
    pub fn all(&self) -> Vec<PathBuf> {
        self.files.iter().chain(&self.filename).cloned().collect()
    }
}

/// An `-o` value that is a format's name, not a file: the spelling `validate -o json` had.
pub fn format_word(output: &std::path::Path) -> Option<&str> {
    output
        .to_str()
        .filter(|word| ["text", "json", "yaml"].contains(word))
}
