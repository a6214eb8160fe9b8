//! The resources as users write them: the spec types ([`spec`]), the two forms they are
//! written in ([`forms`]) and the reader that reports every field at fault ([`reader`]).

mod forms;
mod reader;
mod spec;

/// MeshExternalService, HostnameGenerator and MeshPassthrough read their specs from outside
/// `forms`.
pub(crate) use forms::typed_spec;
pub use forms::{from_value, Rejected};
pub use reader::typed;
pub use spec::*;
