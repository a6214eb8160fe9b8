//! From documents to a checked set of resources, and the filter's plugin configuration:
//! `{"resources": [...], "mesh": "...", "service": "..."}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{self, Catalog, ServiceId};
use crate::report::{Report, Violation};
use crate::resource::{self, Kind, Origin, Resource, Spec};
use crate::traffic_permission::Permissions;
use crate::validate;

/// Every document read, in order, each with its report (valid ones have no violations).
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub resources: Vec<Resource>,
    pub reports: Vec<Report>,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        self.reports.iter().all(Report::is_valid)
    }

    pub fn invalid(&self) -> impl Iterator<Item = &Report> {
        self.reports.iter().filter(|r| !r.is_valid())
    }
}

/// Extra checks a caller adds to validation (the CLI reads files and PEM data, and keeps what
/// it resolved for them); the result is aligned with the resources, like `validate::validate`.
pub type ExtraChecks<'a> = &'a mut dyn FnMut(&[Resource]) -> Vec<Vec<Violation>>;

/// Reads every document, validates the resources together, and reports on each.
pub fn check(documents: Vec<(Value, Origin)>, extra: Option<ExtraChecks<'_>>) -> Checked {
    Found::in_documents(documents, extra).reported()
}

/// What [`check`] finds, before it writes a report on each resource: the filter needs reports
/// only when something is wrong (10,000 of them cost four strings each).
struct Found {
    /// Per document, the resource it was read as, or why it could not be.
    slots: Vec<Result<usize, Report>>,
    resources: Vec<Resource>,
    /// Aligned with `resources`.
    violations: Vec<Vec<Violation>>,
}

impl Found {
    fn in_documents(documents: Vec<(Value, Origin)>, extra: Option<ExtraChecks<'_>>) -> Found {
        let mut slots: Vec<Result<usize, Report>> = Vec::new();
        let mut resources = Vec::new();
        for (value, origin) in documents {
            match resource::from_value(value, origin) {
                Ok(r) => {
                    slots.push(Ok(resources.len()));
                    resources.push(r);
                }
                Err(rejected) => slots.push(Err(Report::from(*rejected))),
            }
        }
        let mut violations = validate::validate(&resources);
        if let Some(extra) = extra {
            for (found, more) in violations.iter_mut().zip(extra(&resources)) {
                found.extend(more);
            }
        }
        Found {
            slots,
            resources,
            violations,
        }
    }

    /// [`Checked::is_valid`] of the reports, without writing them.
    fn is_valid(&self) -> bool {
        self.slots.iter().all(|slot| match slot {
            Ok(i) => self.violations[*i].is_empty(),
            Err(report) => report.is_valid(),
        })
    }

    fn reported(self) -> Checked {
        let Found {
            slots,
            resources,
            violations,
        } = self;
        let mut violations = violations.into_iter().map(Some).collect::<Vec<_>>();
        let reports = slots
            .into_iter()
            .map(|slot| match slot {
                Ok(i) => Report::of(&resources[i], violations[i].take().unwrap_or_default()),
                Err(report) => report,
            })
            .collect();
        Checked { resources, reports }
    }
}

pub const PLUGIN_CONFIGURATION: &str = "plugin configuration";

/// The filter's configuration, as Envoy hands it over.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// ExternalServices, MeshExternalServices (and the Mesh and MeshPassthroughs, for
    /// passthrough) in the model's JSON form.
    pub resources: Vec<Value>,
    /// The mesh to serve; needed only when the resources span several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    /// Binds this filter to one `kuma.io/service`: every request goes there, whatever its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Binds this filter to one MeshExternalService, as `service` does.
    #[serde(
        default,
        rename = "meshExternalService",
        skip_serializing_if = "Option::is_none"
    )]
    pub mesh_external_service: Option<String>,
    /// This Envoy is this Dataplane's sidecar: the services its traffic permissions do not let
    /// it reach are refused (`not-permitted`). The Dataplane and the permissions are among
    /// `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<String>,
}

/// A configured filter: the catalog of its mesh and, maybe, the one service it is bound to.
#[derive(Debug, Clone)]
pub struct Filter {
    pub catalog: Catalog,
    pub bound: Option<ServiceId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// Not the expected JSON document.
    Syntax(String),
    Invalid(Vec<Report>),
    Mesh(String),
    UnknownService {
        kind: Kind,
        service: String,
        mesh: String,
    },
    /// Both `service` and `meshExternalService` are set.
    TwoBindings,
    UnknownDataplane {
        dataplane: String,
        mesh: String,
    },
}

impl ConfigError {
    /// One line per problem, as `extsvc validate` prints them.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Syntax(e) => vec![format!("{PLUGIN_CONFIGURATION}: {e}")],
            ConfigError::Invalid(reports) => reports
                .iter()
                .flat_map(|r| {
                    let heading = r.heading();
                    r.violations.iter().map(move |v| format!("{heading}: {v}"))
                })
                .collect(),
            ConfigError::Mesh(e) => vec![format!(
                "{PLUGIN_CONFIGURATION}: mesh: {e}: set `mesh` to the one to serve"
            )],
            ConfigError::UnknownService {
                kind: Kind::MeshExternalService,
                service,
                mesh,
            } => vec![format!(
                "{PLUGIN_CONFIGURATION}: meshExternalService: mesh {mesh:?} has no MeshExternalService {service:?}"
            )],
            ConfigError::UnknownService { service, mesh, .. } => vec![format!(
                "{PLUGIN_CONFIGURATION}: service: no ExternalService of mesh {mesh:?} has kuma.io/service {service:?}"
            )],
            ConfigError::TwoBindings => vec![format!(
                "{PLUGIN_CONFIGURATION}: service and meshExternalService both bind the filter: set one"
            )],
            ConfigError::UnknownDataplane { dataplane, mesh } => vec![format!(
                "{PLUGIN_CONFIGURATION}: dataplane: mesh {mesh:?} has no Dataplane {dataplane:?} among the resources"
            )],
        }
    }
}

/// Reads the plugin configuration, validates it all, and builds the filter's tables.
pub fn configure(bytes: &[u8]) -> Result<Filter, ConfigError> {
    let config: PluginConfig =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    let found = Found::in_documents(
        Origin::in_file(PLUGIN_CONFIGURATION, config.resources),
        None,
    );
    if !found.is_valid() {
        let checked = found.reported();
        return Err(ConfigError::Invalid(checked.invalid().cloned().collect()));
    }
    let resources = found.resources;
    let mesh =
        catalog::select_mesh(&resources, config.mesh.as_deref()).map_err(ConfigError::Mesh)?;
    let mut catalog = Catalog::build(&resources, &mesh);
    if let Some(dataplane) = &config.dataplane {
        let tags = resources
            .iter()
            .find_map(|r| match &r.spec {
                Spec::Dataplane(dp) if r.mesh == mesh && r.name == *dataplane => {
                    Some(dp.inbound_tags())
                }
                _ => None,
            })
            .ok_or_else(|| ConfigError::UnknownDataplane {
                dataplane: dataplane.clone(),
                mesh: mesh.clone(),
            })?;
        let permissions = Permissions::of_mesh(&resources, &mesh);
        catalog.refuse_unpermitted(&permissions, dataplane, &tags);
    }
    let binding = match (config.service, config.mesh_external_service) {
        (Some(_), Some(_)) => return Err(ConfigError::TwoBindings),
        (Some(service), None) => Some((Kind::ExternalService, service)),
        (None, Some(name)) => Some((Kind::MeshExternalService, name)),
        (None, None) => None,
    };
    let bound = match binding {
        None => None,
        Some((kind, service)) => Some(catalog.service_id(kind, &service).ok_or(
            ConfigError::UnknownService {
                kind,
                service,
                mesh: mesh.clone(),
            },
        )?),
    };
    Ok(Filter { catalog, bound })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn configured(resources: serde_json::Value) -> Result<Filter, ConfigError> {
        configure(
            serde_json::json!({ "resources": resources })
                .to_string()
                .as_bytes(),
        )
    }

    fn valid_service(name: &str) -> serde_json::Value {
        serde_json::json!({ "type": "ExternalService", "name": name,
                            "tags": { "kuma.io/service": name },
                            "networking": { "address": "api.test:443" } })
    }

    /// configure skips the reports of valid resources, but not the verdict: a resource at
    /// fault, or a document that is none, still refuses the configuration with its report
    /// alone.
    #[test]
    fn only_the_resources_at_fault_are_reported() {
        let at_fault = serde_json::json!({ "type": "ExternalService", "name": "bad",
                                           "tags": { "kuma.io/service": "bad" } });
        let Err(ConfigError::Invalid(reports)) =
            configured(serde_json::json!([valid_service("good"), at_fault]))
        else {
            panic!("a resource at fault was accepted");
        };
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].name, "bad");
        assert_eq!(
            ConfigError::Invalid(reports).lines(),
            ["plugin configuration: ExternalService \"bad\" (mesh \"default\"): networking: should have networking"]
        );
        let Err(ConfigError::Invalid(reports)) =
            configured(serde_json::json!([valid_service("good"), 7]))
        else {
            panic!("a document that is no resource was accepted");
        };
        assert_eq!(
            ConfigError::Invalid(reports).lines(),
            ["plugin configuration: resource (document 2): expected a resource (a mapping), found a number"]
        );
        assert_eq!(
            configured(serde_json::json!([valid_service("good")]))
                .unwrap()
                .catalog
                .services
                .len(),
            1
        );
    }
}
