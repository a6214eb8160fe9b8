//! Kuma's MeshExternalService (MES), the external-service resource Kuma recommends since 2.9:
//! its spec as written (`spec`), Kuma's validator in Kuma's words plus this project's own
//! refusals (`validate`). Read in both forms by `resource`, validated by `validate`; not yet
//! served (`extsvc generate` refuses it, the filter's catalog holds none).

pub mod spec;
pub mod validate;

pub use spec::MeshExternalServiceSpec;

use serde_json::Value;

use crate::resource::{Kind, Resource, Spec};
use crate::violation::Violation;

/// The kinds that are read and validated but not served yet: `extsvc generate` and the filter
/// refuse a configuration that holds one, rather than leave it out unsaid.
pub const NOT_SERVED: [Kind; 2] = [Kind::MeshExternalService, Kind::HostnameGenerator];

/// Reads the spec of a MeshExternalService or HostnameGenerator, kept under `spec` in both
/// forms (`prefix` is `spec.` for Kubernetes, whose CRD defaults apply) and named `spec.…`
/// in both.
#[cfg(feature = "mesh-external-service")]
pub(crate) fn read_spec(kind: Kind, body: Value, prefix: &str) -> Result<Spec, Vec<Violation>> {
    fn typed<T: serde::de::DeserializeOwned>(
        body: Value,
        prefix: &str,
    ) -> Result<T, Vec<Violation>> {
        use crate::resource::{policy_spec, typed};
        if !prefix.is_empty() {
            return typed(body);
        }
        typed(policy_spec(body)?).map_err(|found| {
            found
                .into_iter()
                .map(|v| Violation::new(format!("spec.{}", v.field), v.message))
                .collect()
        })
    }
    Ok(if kind == Kind::HostnameGenerator {
        Spec::HostnameGenerator(typed(body, prefix)?)
    } else {
        let spec: MeshExternalServiceSpec = typed(body, prefix)?;
        let spec = if prefix.is_empty() {
            spec
        } else {
            spec.with_kubernetes_defaults()
        };
        Spec::MeshExternalService(Box::new(spec))
    })
}

/// Without the feature (the filter module), both kinds are refused as they are read.
#[cfg(not(feature = "mesh-external-service"))]
pub(crate) fn read_spec(kind: Kind, _: Value, _: &str) -> Result<Spec, Vec<Violation>> {
    Err(vec![Violation::new(
        "",
        format!("{kind} is validated by extsvc but not served by the filter yet"),
    )])
}

/// The violations of a MeshExternalService or HostnameGenerator (none for another kind).
pub(crate) fn validate_resource(resource: &Resource) -> Vec<Violation> {
    match &resource.spec {
        #[cfg(feature = "mesh-external-service")]
        Spec::MeshExternalService(spec) => validate::validate(&resource.name, spec),
        #[cfg(feature = "mesh-external-service")]
        Spec::HostnameGenerator(spec) => crate::hostname_generator::validate(spec),
        _ => Vec::new(),
    }
}
