//! What the builders' table tests share: a context from resources in YAML, and YAML out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use external_service_model::catalog::{Catalog, Service};
use external_service_model::config;
use external_service_model::documents::yaml_documents;
use external_service_model::{Origin, Resource};
use serde::Serialize;

use super::{Context, Options, Upstreams};
use crate::policy::Policies;
use crate::resolve::{self, Resolved};

/// Valid resources of mesh `default` (model validation only: material need not be PEM), the
/// catalog built from them, and options with a short module path.
pub struct Fixture {
    pub options: Options,
    pub catalog: Catalog,
    pub resources: Vec<Resource>,
    pub resolved: Resolved,
    pub policies: Policies,
}

impl Fixture {
    pub fn new(resources: &str) -> Fixture {
        let (values, error) = yaml_documents("test.yaml", resources);
        assert!(error.is_none(), "{error:?}");
        let documents = values
            .into_iter()
            .enumerate()
            .map(|(document, v)| {
                let file = "test.yaml".to_string();
                (v, Origin { file, document })
            })
            .collect();
        let checked = config::check(documents, None);
        assert!(
            checked.is_valid(),
            "{:#?}",
            checked.invalid().collect::<Vec<_>>()
        );
        Fixture {
            options: Options {
                wasm: PathBuf::from("/filter.wasm"),
                ..Options::default()
            },
            catalog: Catalog::build(&checked.resources, "default"),
            policies: Policies::build(&checked.resources),
            resolved: resolve::resolve(&checked.resources),
            resources: checked.resources,
        }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            options: &self.options,
            catalog: &self.catalog,
            resources: &self.resources,
            resolved: &self.resolved,
            policies: &self.policies,
            source_service: None,
            upstreams: Upstreams::Own,
        }
    }

    pub fn service(&self, name: &str) -> &Service {
        let found = self.catalog.services.iter().find(|s| s.name == name);
        found.unwrap_or_else(|| panic!("no service {name}"))
    }
}

/// An ExternalService named after its service, in mesh `default`.
pub fn service(name: &str, protocol: &str, networking: &str) -> String {
    format!(
        "type: ExternalService\nmesh: default\nname: {name}\n\
         tags: {{kuma.io/service: {name}, kuma.io/protocol: {protocol}}}\n\
         networking: {networking}\n---\n"
    )
}

/// What the generated file holds for `value`.
pub fn yaml(value: &impl Serialize) -> String {
    yaml_eliding::<&str>(value, &[])
}

/// [`yaml`], with what is at these JSON pointers shown as `<elided>`: other tests show it.
pub fn yaml_eliding<P: AsRef<str>>(value: &impl Serialize, pointers: &[P]) -> String {
    let mut v = serde_json::to_value(value).unwrap();
    for p in pointers.iter().map(P::as_ref) {
        let at = v.pointer_mut(p).unwrap_or_else(|| panic!("nothing at {p}"));
        *at = serde_json::Value::String("<elided>".into());
    }
    serde_yaml_ng::to_string(&v).unwrap()
}

/// The part of `value` at a JSON pointer.
pub fn part(value: &impl Serialize, pointer: &str) -> serde_json::Value {
    let v = serde_json::to_value(value).unwrap();
    let found = v.pointer(pointer).cloned();
    found.unwrap_or_else(|| panic!("nothing at {pointer}"))
}

/// Each case's YAML is the one wanted (written from its second line on, for readability).
pub fn assert_cases(cases: &[(&str, String, &str)]) {
    for (case, got, want) in cases {
        assert_eq!(got, want.trim_start_matches('\n'), "{case}; got:\n{got}");
    }
}

/// A MeshExternalService of mesh `default` on `match.port` with one endpoint (`address`,
/// `port`), which Kuma's default HostnameGenerator names `<name>.extsvc.mesh.local`.
pub fn mesh_external_service(name: &str, protocol: &str, port: u16, endpoint: &str) -> String {
    let (address, endpoint_port) = endpoint.rsplit_once(':').unwrap();
    format!(
        "type: MeshExternalService\nmesh: default\nname: {name}\n\
         spec:\n  match: {{port: {port}, protocol: {protocol}}}\n  \
         endpoints: [{{address: {address}, port: {endpoint_port}}}]\n---\n"
    )
}
