//! Kuma's HostnameGenerator (`hostnamegenerator/api/v1alpha1`, `hostnamegenerator/hostname`):
//! the resource, its validation in Kuma's words, its template, and the hostnames it gives
//! MeshExternalServices, collisions included. Pure: the caller gives names and labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::Violation;

/// The generator Kuma's control plane creates for MeshExternalServices when none is given
/// (`pkg/defaults/hostname_generator.go`, `local-mesh-external-service`).
pub const DEFAULT_NAME: &str = "local-mesh-external-service";
pub const DEFAULT_TEMPLATE: &str = "{{ .DisplayName }}.extsvc.mesh.local";
/// The label that gives a resource's `.DisplayName` (else its name).
pub const DISPLAY_NAME_LABEL: &str = "kuma.io/display-name";
const ZONE_LABEL: &str = "kuma.io/zone";
const NAMESPACE_LABEL: &str = "k8s.kuma.io/namespace";

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostnameGeneratorSpec {
    #[serde(default)]
    pub selector: Selector,
    #[serde(default)]
    pub template: String,
    /// Kuma 2.10+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_service: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_external_service: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_multi_zone_service: Option<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    /// Every label asked for is there with that value (none asked: everything matches).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// Kuma's validator (v2.14.3 `validate.go`): one selector, a template that parses, renders
/// with stub values and gives a DNS name, an extension with a type.
pub fn validate(spec: &HostnameGeneratorSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let s = &spec.selector;
    let selectors = [
        s.mesh_service.is_some(),
        s.mesh_external_service.is_some(),
        s.mesh_multi_zone_service.is_some(),
    ];
    if selectors.into_iter().filter(|&set| set).count() != 1 {
        out.push(Violation::new(
            "spec.selector",
            "exact one selector (meshService, meshExternalService) must be defined",
        ));
    }
    if let Some(message) = template_problem(&spec.template) {
        out.push(Violation::new("spec.template", message));
    }
    if spec.extension.as_ref().is_some_and(|e| e.kind.is_empty()) {
        out.push(Violation::new("spec.extension.type", "must not be empty"));
    }
    out
}

fn template_problem(template: &str) -> Option<String> {
    if template.is_empty() {
        return Some("must not be empty".into());
    }
    let parsed = match Template::parse(template) {
        Ok(parsed) => parsed,
        Err(e) => return Some(format!("couldn't parse template: {e}")),
    };
    let stub = Meta {
        name: "name",
        display_name: "displayname",
        namespace: "namespace",
        mesh: "mesh",
        zone: "zone",
        labels: None,
    };
    let rendered = match parsed.render(&stub) {
        Ok(rendered) => rendered,
        Err(e) => return Some(format!("couldn't render template with stub values: {e}")),
    };
    dns1123_subdomain(&rendered).map(|problems| {
        format!("template renders to {rendered:?} which is not a valid DNS name: {problems}")
    })
}

/// A HostnameGenerator template: Go's text/template with the actions Kuma's templates use,
/// `{{ .Name }}`, `{{ .DisplayName }}`, `{{ .Namespace }}`, `{{ .Mesh }}`, `{{ .Zone }}` and
/// `{{ label "key" }}` (with `{{-`/`-}}` trimming). Any other action is refused when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
    Label(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    DisplayName,
    Namespace,
    Mesh,
    Zone,
}

/// What a template is evaluated on (Kuma's `meshedName`, plus the labels for `label`).
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub namespace: &'a str,
    pub mesh: &'a str,
    pub zone: &'a str,
    /// `None` for the validator's stub, whose `label` gives `label`.
    pub labels: Option<&'a BTreeMap<String, String>>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            let after = &rest[open + 2..];
            let (trim_left, after) = match after.strip_prefix("- ") {
                Some(a) => (true, a),
                None => (false, after),
            };
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed action at {:?}", &rest[open..]))?;
            let mut action = &after[..close];
            let trim_right = action.ends_with(" -");
            if trim_right {
                action = &action[..action.len() - 2];
            }
            rest = &after[close + 2..];
            if trim_left {
                before = before.trim_end();
            }
            if trim_right {
                rest = rest.trim_start();
            }
            if !before.is_empty() {
                pieces.push(Piece::Text(before.to_string()));
            }
            pieces.push(action_piece(action.trim())?);
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// Kuma's `EvaluateTemplate` before its DNS check; a missing label is an error.
    pub fn render(&self, meta: &Meta<'_>) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(field) => out.push_str(match field {
                    Field::Name => meta.name,
                    Field::DisplayName => meta.display_name,
                    Field::Namespace => meta.namespace,
                    Field::Mesh => meta.mesh,
                    Field::Zone => meta.zone,
                }),
                Piece::Label(key) => match meta.labels {
                    None => out.push_str("label"),
                    Some(labels) => match labels.get(key) {
                        Some(value) => out.push_str(value),
                        None => return Err(format!("label {key} not found")),
                    },
                },
            }
        }
        Ok(out)
    }
}

fn action_piece(action: &str) -> Result<Piece, String> {
    let field = match action {
        ".Name" => Some(Field::Name),
        ".DisplayName" => Some(Field::DisplayName),
        ".Namespace" => Some(Field::Namespace),
        ".Mesh" => Some(Field::Mesh),
        ".Zone" => Some(Field::Zone),
        _ => None,
    };
    if let Some(field) = field {
        return Ok(Piece::Field(field));
    }
    let key = action
        .strip_prefix("label")
        .map(str::trim_start)
        .and_then(|k| k.strip_prefix('"'))
        .and_then(|k| k.strip_suffix('"'))
        .filter(|k| !k.contains('"'));
    key.map(|k| Piece::Label(k.to_string())).ok_or_else(|| {
        format!(
            "unsupported action {{{{ {action} }}}}: extsvc reads .Name, .DisplayName, .Namespace, .Mesh, .Zone and label \"key\""
        )
    })
}

/// Kubernetes' `IsDNS1123Subdomain`, in its words; `None` when `s` is one.
fn dns1123_subdomain(s: &str) -> Option<String> {
    let mut problems = Vec::new();
    if s.len() > 253 {
        problems.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'-')
    };
    if !s.split('.').all(label_ok) {
        problems.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// A generator as the assignment sees it.
#[derive(Debug, Clone, Copy)]
pub struct Generator<'a> {
    pub name: &'a str,
    pub spec: &'a HostnameGeneratorSpec,
}

/// A MeshExternalService as the assignment sees it.
#[derive(Debug, Clone, Copy)]
pub struct Service<'a> {
    pub name: &'a str,
    pub mesh: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// What a generator did for a service: a hostname, or why not (Kuma's condition reasons
/// `TemplateError` and `Collision`, with Kuma's message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Generated(String),
    TemplateError(String),
    /// `hostname` is already `winner`'s; `message` is Kuma's condition message.
    Collision {
        hostname: String,
        winner: String,
        message: String,
    },
}

/// One line of the result: `service` (index into the services given), `generator`'s name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub service: usize,
    pub generator: String,
    pub outcome: Outcome,
}

impl Assigned {
    /// The warning for a service that did not get a hostname, naming the one that has it.
    pub fn warning(&self, services: &[Service<'_>]) -> Option<String> {
        let service = services.get(self.service)?;
        match &self.outcome {
            Outcome::Generated(_) => None,
            Outcome::TemplateError(message) => Some(format!(
                "MeshExternalService {:?} (mesh {:?}): HostnameGenerator {:?}: {message}",
                service.name, service.mesh, self.generator
            )),
            Outcome::Collision {
                hostname,
                winner,
                message,
            } => Some(format!(
                "MeshExternalService {:?} (mesh {:?}): HostnameGenerator {:?}: {message} ({hostname:?} is MeshExternalService {winner:?}'s)",
                service.name, service.mesh, self.generator
            )),
        }
    }
}

/// Kuma's hostname generation for MeshExternalServices (`hostname/generator.go`): generators
/// by name, services by name (files have no creation time, Kuma's first key), each generator
/// whose `meshExternalService` selector matches gives each service its template's hostname;
/// a hostname another service of the mesh already has goes to that one, and this one gets
/// Kuma's `Collision`. With no generators given, Kuma's default one applies to every service.
pub fn assign(generators: &[Generator<'_>], services: &[Service<'_>], zone: &str) -> Vec<Assigned> {
    let default_spec;
    let mut generators = generators.to_vec();
    if generators.is_empty() {
        default_spec = HostnameGeneratorSpec {
            selector: Selector {
                mesh_external_service: Some(LabelSelector::default()),
                ..Selector::default()
            },
            template: DEFAULT_TEMPLATE.to_string(),
            extension: None,
        };
        generators.push(Generator {
            name: DEFAULT_NAME,
            spec: &default_spec,
        });
    }
    generators.sort_by_key(|g| g.name);
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by_key(|&i| services[i].name);

    let mut taken: BTreeMap<(&str, String), &str> = BTreeMap::new();
    let mut out = Vec::new();
    for generator in &generators {
        let Some(selector) = &generator.spec.selector.mesh_external_service else {
            continue;
        };
        let template = Template::parse(&generator.spec.template);
        for &i in &order {
            let service = &services[i];
            if !selector.matches(service.labels) {
                continue;
            }
            let outcome = match evaluate(&template, service, zone) {
                Err(message) => Outcome::TemplateError(message),
                Ok(hostname) => match taken.get(&(service.mesh, hostname.clone())) {
                    Some(&winner) if winner != service.name => Outcome::Collision {
                        message: format!(
                            "Hostname collision with MeshExternalService: {}",
                            service.name
                        ),
                        winner: winner.to_string(),
                        hostname,
                    },
                    _ => {
                        taken.insert((service.mesh, hostname.clone()), service.name);
                        Outcome::Generated(hostname)
                    }
                },
            };
            out.push(Assigned {
                service: i,
                generator: generator.name.to_string(),
                outcome,
            });
        }
    }
    out
}

/// Kuma's `EvaluateTemplate` with its DNS check, in its words.
fn evaluate(
    template: &Result<Template, String>,
    service: &Service<'_>,
    zone: &str,
) -> Result<String, String> {
    let template = template
        .as_ref()
        .map_err(|e| format!("failed compiling gotemplate error={e:?}"))?;
    let label = |key: &str| service.labels.get(key).map(String::as_str);
    let meta = Meta {
        name: service.name,
        display_name: label(DISPLAY_NAME_LABEL).unwrap_or(service.name),
        namespace: label(NAMESPACE_LABEL).unwrap_or_default(),
        mesh: service.mesh,
        zone: label(ZONE_LABEL).filter(|z| !z.is_empty()).unwrap_or(zone),
        labels: Some(service.labels),
    };
    let generated = template.render(&meta).map_err(|e| {
        format!("pre evaluation of template with parameters failed with error={e:?}")
    })?;
    match dns1123_subdomain(&generated) {
        None => Ok(generated),
        Some(problems) => Err(format!(
            "generated hostname {generated:?} is not a valid DNS name: {problems}"
        )),
    }
}
