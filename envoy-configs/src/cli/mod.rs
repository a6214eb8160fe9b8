//! The `extsvc` subcommands.

pub mod validate;
