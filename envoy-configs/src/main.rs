//! `extsvc`: checks Kuma ExternalService resources and turns them into Envoy configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use envoy_configs::cli::validate::{self, ValidateArgs};

#[derive(Debug, Parser)]
#[command(
    name = "extsvc",
    version,
    about = "Kuma ExternalService resources for stock Envoy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check resource files and report every violation
    Validate(ValidateArgs),
}

/// Bad content exits 1; a command that cannot run exits 2 (clap does the same for usage).
fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let result = match &cli.command {
        Command::Validate(args) => validate::run(args, &mut stdout),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("extsvc: {e}");
            ExitCode::from(2)
        }
    }
}
