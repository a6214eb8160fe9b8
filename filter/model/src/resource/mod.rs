//! The resources as users write them: the spec types ([`spec`]), the two forms they are
//! written in ([`forms`]) and the reader that reports every field at fault ([`reader`]).

mod forms;
mod reader;
mod spec;

/// Only MeshExternalService and HostnameGenerator read a policy-like spec from outside `forms`.
pub(crate) use forms::policy_spec;
pub use forms::{from_value, Rejected};
pub use reader::typed;
pub use spec::*;
