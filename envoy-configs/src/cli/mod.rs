//! The `extsvc` subcommands.

pub mod generate;
pub mod validate;
