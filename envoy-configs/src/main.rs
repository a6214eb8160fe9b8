//! `extsvc`: checks Kuma ExternalService resources and turns them into Envoy configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use extsvc::cli::generate::{self, GenerateArgs};
use extsvc::cli::migrate::{self, MigrateArgs};
use extsvc::cli::transparent_proxy::{self, TransparentProxyCommand};
use extsvc::cli::validate::{self, ValidateArgs};
use extsvc::cli::watch::{self, WatchArgs};

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
    /// Write an Envoy bootstrap that serves the resources
    Generate(Box<GenerateArgs>),
    /// Generate again on every change of the resource files, updating a running Envoy
    /// through --xds-dir
    Watch(Box<WatchArgs>),
    /// Print the MeshExternalServices that do what the ExternalServices do, and what cannot
    /// be carried over
    Migrate(MigrateArgs),
    /// Capture an app's outbound traffic for Envoy with iptables (install, uninstall)
    #[command(subcommand)]
    TransparentProxy(TransparentProxyCommand),
}

/// Bad content exits 1; a command that cannot run exits 2 (as clap does for usage errors).
fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match &cli.command {
        Command::Validate(args) => {
            match validate::run(args, &mut stdout, &mut std::io::stderr().lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail(&e, 2),
            }
        }
        Command::Generate(args) => {
            match generate::run(args, &mut stdout, &mut std::io::stderr().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(generate::Error::Invalid(loaded)) => {
                    // The configuration may be going to stdout: the report goes to stderr.
                    let _ = validate::write_text(&loaded, &mut std::io::stderr().lock());
                    fail(&"invalid resources: no configuration written", 1)
                }
                Err(e) => fail(&e, e.exit_code()),
            }
        }
        Command::Watch(args) => {
            match watch::run(args, &mut stdout, &mut std::io::stderr().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e, e.exit_code()),
            }
        }
        Command::Migrate(args) => {
            match migrate::run(args, &mut stdout, &mut std::io::stderr().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    if let migrate::Error::Invalid(loaded) | migrate::Error::Unmigratable(loaded) =
                        &e
                    {
                        let _ = validate::write_text(loaded, &mut std::io::stderr().lock());
                    }
                    fail(&e, e.exit_code())
                }
            }
        }
        Command::TransparentProxy(command) => {
            match transparent_proxy::run(command, &mut stdout, &mut std::io::stderr().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    if let transparent_proxy::Error::Invalid(loaded) = &e {
                        let _ = validate::write_text(loaded, &mut std::io::stderr().lock());
                    }
                    fail(&e, e.exit_code())
                }
            }
        }
    }
}

fn fail(error: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("extsvc: {error}");
    ExitCode::from(code)
}
