//! Kuma's HostnameGenerator (`hostnamegenerator/api/v1alpha1`, `hostnamegenerator/hostname`):
//! the resource, its validation in Kuma's words, its template, and the hostnames it gives
//! MeshExternalServices, collisions included. Pure: the caller gives names and labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::address;
pub use crate::mesh_external_service::spec::Extension;
use crate::violation::Violation;

/// The generator Kuma's control plane creates for MeshExternalServices when none is given
/// (`pkg/defaults/hostname_generator.go`, `local-mesh-external-service`).
pub const DEFAULT_NAME: &str = "local-mesh-external-service";
pub const DEFAULT_TEMPLATE: &str = "{{ .DisplayName }}.extsvc.mesh.local";
/// The label that gives a resource's `.DisplayName` (else its name).
pub const DISPLAY_NAME_LABEL: &str = "kuma.io/display-name";
const ZONE_LABEL: &str = "kuma.io/zone";
const NAMESPACE_LABEL: &str = "k8s.kuma.io/namespace";

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostnameGeneratorSpec {
    pub selector: Selector,
    pub template: String,
    /// Kuma 2.10+.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_service: Option<LabelSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_external_service: Option<LabelSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_multi_zone_service: Option<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
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

/// Kubernetes' `IsDNS1123Subdomain`, in its words, its problems joined; `None` when `s` is one.
fn dns1123_subdomain(s: &str) -> Option<String> {
    let problems = address::dns1123_subdomain(s);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn templates_render_kumas_fields() {
        let l = labels(&[("app", "my-app"), (DISPLAY_NAME_LABEL, "shown")]);
        let meta = Meta {
            name: "backend",
            display_name: "shown",
            namespace: "my-ns",
            mesh: "default",
            zone: "zone-1",
            labels: Some(&l),
        };
        let cases = [
            ("{{ .Name }}.mesh", Ok("backend.mesh")),
            ("{{.Name}}.{{ .Namespace }}.mesh", Ok("backend.my-ns.mesh")),
            (
                "{{ .DisplayName }}.extsvc.mesh.local",
                Ok("shown.extsvc.mesh.local"),
            ),
            (
                "{{ .Name }}.{{ .Zone }}.{{ .Mesh }}",
                Ok("backend.zone-1.default"),
            ),
            ("{{ label \"app\" }}.mesh", Ok("my-app.mesh")),
            ("a {{- .Name -}} b", Ok("abackendb")),
            (
                "{{ label \"missing\" }}.mesh",
                Err("label missing not found"),
            ),
        ];
        for (text, expected) in cases {
            let rendered = Template::parse(text).unwrap().render(&meta);
            assert_eq!(
                rendered.as_deref(),
                expected.map_err(String::from).as_deref(),
                "{text}"
            );
        }
        for bad in [
            "{{ .Name[0 }}.mesh",
            "{{ .Name }",
            "{{ .Other }}",
            "{{ printf \"x\" }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_validator_renders_stub_values_and_wants_a_dns_name() {
        let spec = |template: &str| HostnameGeneratorSpec {
            selector: Selector {
                mesh_external_service: Some(LabelSelector::default()),
                ..Selector::default()
            },
            template: template.to_string(),
            extension: None,
        };
        assert_eq!(validate(&spec(DEFAULT_TEMPLATE)), vec![]);
        assert_eq!(validate(&spec("{{ label \"a\" }}.mesh")), vec![]);
        let message = |t: &str| validate(&spec(t)).pop().map(|v| (v.field, v.message));
        assert_eq!(
            message(""),
            Some(("spec.template".into(), "must not be empty".into()))
        );
        assert!(message("{{ .Name")
            .unwrap()
            .1
            .starts_with("couldn't parse template: "));
        let upper = message("{{ .Name }}.UPPER").unwrap();
        assert!(
            upper
                .1
                .starts_with("template renders to \"name.UPPER\" which is not a valid DNS name: a lowercase RFC 1123 subdomain"),
            "{upper:?}"
        );
    }

    #[test]
    fn hostnames_default_to_kumas_and_a_collision_leaves_the_second_without_one() {
        let none = BTreeMap::new();
        let shown = labels(&[(DISPLAY_NAME_LABEL, "httpbin")]);
        let services = [
            Service {
                name: "httpbin-b",
                mesh: "default",
                labels: &shown,
            },
            Service {
                name: "httpbin",
                mesh: "default",
                labels: &none,
            },
            Service {
                name: "httpbin",
                mesh: "other",
                labels: &none,
            },
            Service {
                name: "api",
                mesh: "default",
                labels: &none,
            },
        ];
        let assigned = assign(&[], &services, "zone");
        let outcome = |i: usize| {
            let a = assigned.iter().find(|a| a.service == i).unwrap();
            assert_eq!(a.generator, DEFAULT_NAME);
            a.outcome.clone()
        };
        assert_eq!(
            outcome(3),
            Outcome::Generated("api.extsvc.mesh.local".into())
        );
        // By name, "httpbin" comes before "httpbin-b" (whose display name is also httpbin).
        assert_eq!(
            outcome(1),
            Outcome::Generated("httpbin.extsvc.mesh.local".into())
        );
        assert_eq!(
            outcome(2),
            Outcome::Generated("httpbin.extsvc.mesh.local".into()),
            "another mesh"
        );
        assert_eq!(
            outcome(0),
            Outcome::Collision {
                hostname: "httpbin.extsvc.mesh.local".into(),
                winner: "httpbin".into(),
                message: "Hostname collision with MeshExternalService: httpbin-b".into(),
            }
        );
        let warnings: Vec<String> = assigned
            .iter()
            .filter_map(|a| a.warning(&services))
            .collect();
        assert_eq!(
            warnings,
            ["MeshExternalService \"httpbin-b\" (mesh \"default\"): HostnameGenerator \"local-mesh-external-service\": Hostname collision with MeshExternalService: httpbin-b (\"httpbin.extsvc.mesh.local\" is MeshExternalService \"httpbin\"'s)"]
        );
    }

    #[test]
    fn given_generators_replace_the_default_and_select_by_label() {
        let web = labels(&[("team", "web")]);
        let none = BTreeMap::new();
        let services = [
            Service {
                name: "a",
                mesh: "m",
                labels: &web,
            },
            Service {
                name: "b",
                mesh: "m",
                labels: &none,
            },
        ];
        let by_team = HostnameGeneratorSpec {
            selector: Selector {
                mesh_external_service: Some(LabelSelector {
                    match_labels: labels(&[("team", "web")]),
                }),
                ..Selector::default()
            },
            template: "{{ .Name }}.{{ label \"team\" }}.{{ .Zone }}".into(),
            extension: None,
        };
        let for_services = HostnameGeneratorSpec {
            selector: Selector {
                mesh_service: Some(LabelSelector::default()),
                ..Selector::default()
            },
            template: "{{ .Name }}.svc".into(),
            extension: None,
        };
        let upper = HostnameGeneratorSpec {
            selector: Selector {
                mesh_external_service: Some(LabelSelector::default()),
                ..Selector::default()
            },
            template: "{{ .Name }}.UPPER".into(),
            extension: None,
        };
        let generators = [
            Generator {
                name: "team",
                spec: &by_team,
            },
            Generator {
                name: "ms",
                spec: &for_services,
            },
            Generator {
                name: "upper",
                spec: &upper,
            },
        ];
        let assigned = assign(&generators, &services, "zone-1");
        let got: Vec<(usize, &str, &Outcome)> = assigned
            .iter()
            .map(|a| (a.service, a.generator.as_str(), &a.outcome))
            .collect();
        let template_error = |name: &str| {
            Outcome::TemplateError(format!("generated hostname \"{name}.UPPER\" is not a valid DNS name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
        };
        assert_eq!(
            got,
            [
                (0, "team", &Outcome::Generated("a.web.zone-1".into())),
                (0, "upper", &template_error("a")),
                (1, "upper", &template_error("b")),
            ]
        );
    }
}
