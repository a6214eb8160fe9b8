//! Kuma's MeshPassthrough: which destinations outside the mesh a proxy lets through, by name
//! (`Domain`, wildcards included), `IP` or `CIDR`, on one port or all. Its spec as written
//! (`spec`), Kuma's validator in Kuma's words (`validate`), the merge of the policies that
//! select one proxy and the passthrough that results with the `Mesh`'s flag (`merge`), and
//! the table that answers, per request, which match lets it through (`table`).
//!
//! A Kuma policy (`targetRef` + `default`), but not one of `with_policy_kinds!`: that list
//! gives each kind an Envoy slice in `extsvc`'s `policy/` folder, and MeshPassthrough is read
//! by the filter too, so its typed spec lives here, as MeshExternalService's does.

pub mod merge;
pub mod spec;
pub mod table;
pub mod validate;

pub use merge::{effective, merge, Merged, MergedMatch, Selected};
pub use spec::{Match, MeshPassthroughSpec, PassthroughMode};
pub use table::{Allowed, Class, Query, Table};

use serde_json::Value;

use crate::resource::{typed_spec, Spec};
use crate::violation::Violation;

/// Reads the spec, kept under `spec` in both forms (`prefix` is `spec.` for Kubernetes, which
/// names the fields itself) and named `spec.…` in both; Kuma's defaults filled in.
pub(crate) fn read_spec(body: Value, prefix: &str) -> Result<Spec, Vec<Violation>> {
    let spec: MeshPassthroughSpec = typed_spec(body, prefix)?;
    Ok(Spec::MeshPassthrough(Box::new(spec.with_defaults())))
}
