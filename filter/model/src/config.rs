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
    let checked = check(
        Origin::in_file(PLUGIN_CONFIGURATION, config.resources),
        None,
    );
    if !checked.is_valid() {
        return Err(ConfigError::Invalid(checked.invalid().cloned().collect()));
    }
    let mesh = catalog::select_mesh(&checked.resources, config.mesh.as_deref())
        .map_err(ConfigError::Mesh)?;
    let mut catalog = Catalog::build(&checked.resources, &mesh);
    if let Some(dataplane) = &config.dataplane {
        let tags = checked
            .resources
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
        let permissions = Permissions::of_mesh(&checked.resources, &mesh);
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
