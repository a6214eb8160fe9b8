//! Kuma's MeshExternalService (MES), the external-service resource Kuma recommends since 2.9:
//! its spec as written (`spec`), Kuma's validator in Kuma's words plus this project's own
//! refusals (`validate`). Read in both forms by `resource`, validated by `validate`, served
//! as a service of the catalog.

pub mod spec;
pub mod validate;

pub use spec::MeshExternalServiceSpec;

use serde_json::Value;

use crate::resource::{Kind, Resource, Spec};
use crate::violation::Violation;

/// Reads the spec of a MeshExternalService or HostnameGenerator, kept under `spec` in both
/// forms (`prefix` is `spec.` for Kubernetes, whose CRD defaults apply) and named `spec.…`
/// in both.
pub(crate) fn read_spec(kind: Kind, body: Value, prefix: &str) -> Result<Spec, Vec<Violation>> {
    use crate::resource::typed_spec;
    Ok(if kind == Kind::HostnameGenerator {
        Spec::HostnameGenerator(typed_spec(body, prefix)?)
    } else {
        let spec: MeshExternalServiceSpec = typed_spec(body, prefix)?;
        let spec = if prefix.is_empty() {
            spec
        } else {
            spec.with_kubernetes_defaults()
        };
        Spec::MeshExternalService(Box::new(spec))
    })
}

/// The violations of a MeshExternalService or HostnameGenerator (none for another kind).
pub(crate) fn validate_resource(resource: &Resource) -> Vec<Violation> {
    match &resource.spec {
        Spec::MeshExternalService(spec) => validate::validate(&resource.name, spec),
        Spec::HostnameGenerator(spec) => crate::hostname_generator::validate(spec),
        _ => Vec::new(),
    }
}
