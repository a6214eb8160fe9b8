//! `extsvc migrate`: the MeshExternalService that does what a `kuma.io/service`'s
//! ExternalServices do, and, per ExternalService, what cannot be carried over and why. Each
//! ExternalService is one endpoint of its service, so the ExternalServices of one
//! `kuma.io/service` become one MeshExternalService. Pure: the CLI reads and writes.

use std::collections::BTreeMap;
use std::path::Path;

use external_service_model::address::{self, Address, Host};
use external_service_model::mesh_external_service::spec::{
    Endpoint, Match, MeshExternalServiceSpec, Tls as MesTls, Verification,
};
use external_service_model::resource::{
    DataSource, ExternalServiceSpec, Kind, Origin, Resource, Spec, Tls, PROTOCOL_TAG, SERVICE_TAG,
};
use external_service_model::{Report, Violation};
use serde_json::{json, Value};

use crate::resolve::{Material, Resolved};

/// Kuma's default HostnameGenerator's domain for MeshExternalServices.
const HOSTNAME_DOMAIN: &str = "extsvc.mesh.local";
/// Where Kuma keeps MeshExternalServices on Kubernetes (only its system namespace takes them).
const SYSTEM_NAMESPACE: &str = "kuma-system";

/// The form a resource is written in; a MeshExternalService is written as its first
/// ExternalService was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Universal,
    Kubernetes,
}

impl Form {
    /// As the model's reader tells the forms apart.
    pub fn of(document: &Value) -> Form {
        match document {
            Value::Object(map)
                if map.contains_key("apiVersion") || map.contains_key("metadata") =>
            {
                Form::Kubernetes
            }
            _ => Form::Universal,
        }
    }
}

/// One MeshExternalService made, and the form to write it in.
#[derive(Debug, Clone, PartialEq)]
pub struct Migrated {
    pub resource: Resource,
    pub form: Form,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Migration {
    pub services: Vec<Migrated>,
    /// Per ExternalService (that has any), what was not carried over and why.
    pub notes: Vec<Report>,
}

/// How a `file` DataSource's content is had: the CLI reads the file.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> Result<String, String>;

/// The MeshExternalServices for every `kuma.io/service` of `resources` (valid ones: `extsvc
/// validate` finds nothing wrong), in the order their first ExternalService comes.
/// `kubernetes`: the documents written in Kubernetes form.
pub fn migrate(
    resources: &[Resource],
    resolved: &Resolved,
    kubernetes: &[Origin],
    read_file: ReadFile<'_>,
) -> Result<Migration, String> {
    let mut migration = Migration::default();
    for group in services(resources) {
        let first = group[0].0;
        let mut service = Service::of(&group, resources)?;
        for (resource, es) in &group {
            let mut notes = Vec::new();
            if std::ptr::eq(*resource, first) {
                notes.append(&mut service.group_notes);
            }
            notes.extend(endpoint_notes(es, &service));
            notes.extend(tls_notes(resource, es, &group, &service, resolved));
            if !notes.is_empty() {
                migration.notes.push(Report::of(resource, notes));
            }
        }
        let form = match kubernetes.contains(&first.origin) {
            true => Form::Kubernetes,
            false => Form::Universal,
        };
        let tls = mes_tls(first, group[0].1, resolved, read_file)?;
        migration.services.push(Migrated {
            resource: service.resource(first, tls),
            form,
        });
    }
    Ok(migration)
}

/// The document of a MeshExternalService in its form: Universal as the model writes it;
/// Kubernetes in Kuma's system namespace, its mesh a label.
pub fn document(migrated: &Migrated) -> Value {
    let resource = &migrated.resource;
    match migrated.form {
        Form::Universal => resource.to_universal(),
        Form::Kubernetes => {
            let mut labels = resource.labels.clone();
            labels.insert("kuma.io/mesh".into(), resource.mesh.clone());
            let spec = match &resource.spec {
                Spec::MeshExternalService(spec) => json!(spec),
                _ => Value::Null,
            };
            json!({
                "apiVersion": "kuma.io/v1alpha1",
                "kind": "MeshExternalService",
                "metadata": {
                    "name": resource.name,
                    "namespace": SYSTEM_NAMESPACE,
                    "labels": labels,
                },
                "spec": spec,
            })
        }
    }
}

type Group<'r> = Vec<(&'r Resource, &'r ExternalServiceSpec)>;

/// The ExternalServices of each (mesh, `kuma.io/service`), in the order of their first.
fn services(resources: &[Resource]) -> Vec<Group<'_>> {
    let mut groups: Vec<((&str, &str), Group<'_>)> = Vec::new();
    for resource in resources {
        let Spec::ExternalService(es) = &resource.spec else {
            continue;
        };
        let key = (resource.mesh.as_str(), es.service().unwrap_or_default());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push((resource, es)),
            None => groups.push((key, vec![(resource, es)])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// What a group's MeshExternalService is made of, but for its `tls`.
struct Service {
    name: String,
    hostname: String,
    protocol: String,
    port: u16,
    endpoints: Vec<Address>,
    /// What the group loses as a whole; said once, of its first ExternalService.
    group_notes: Vec<Violation>,
}

impl Service {
    fn of(group: &Group<'_>, resources: &[Resource]) -> Result<Service, String> {
        let (first, es) = group[0];
        let service = es.service().unwrap_or_default();
        let name = mes_name(service);
        let hostname = format!("{name}.{HOSTNAME_DOMAIN}");
        let endpoints = group
            .iter()
            .map(|(r, es)| endpoint_address(r, es))
            .collect::<Result<Vec<_>, _>>()?;
        let written = es.tags.get(PROTOCOL_TAG).map_or("tcp", String::as_str);
        let protocol = if written == "kafka" { "tcp" } else { written };
        let port = match_port(protocol, &endpoints[0]);
        let mut group_notes = vec![Violation::new(
            format!("tags[{SERVICE_TAG:?}]"),
            mesh_name_note(service, &name, &hostname),
        )];
        group_notes.push(Violation::new(
            "networking.address",
            port_note(service, protocol, &hostname, port, endpoints[0].port),
        ));
        if written == "kafka" {
            group_notes.push(Violation::new(
                format!("tags[{PROTOCOL_TAG:?}]"),
                "kafka becomes `match.protocol: tcp`: a MeshExternalService has no kafka \
                 (Kuma drops its Kafka broker filter and stats; here kafka was plain TCP already)",
            ));
        }
        group_notes.extend(dataplane_notes(resources, &first.mesh, service, &name));
        Ok(Service {
            name,
            hostname,
            protocol: protocol.to_string(),
            port,
            endpoints,
            group_notes,
        })
    }

    fn resource(&self, first: &Resource, tls: Option<MesTls>) -> Resource {
        let spec = MeshExternalServiceSpec {
            matcher: Match {
                kind: Some("HostnameGenerator".into()),
                port: i64::from(self.port),
                protocol: Some(self.protocol.clone()),
            },
            extension: None,
            endpoints: Some(
                self.endpoints
                    .iter()
                    .map(|a| Endpoint {
                        address: a.bare_host(),
                        port: i64::from(a.port),
                        priority: None,
                    })
                    .collect(),
            ),
            tls,
        };
        Resource {
            origin: first.origin.clone(),
            name: self.name.clone(),
            mesh: first.mesh.clone(),
            labels: user_labels(&first.labels),
            spec: Spec::MeshExternalService(Box::new(spec)),
        }
    }
}

/// A MeshExternalService's name is the DNS label of its hostname (and, on Kubernetes, its
/// `metadata.name`): the service's name, lower-cased, with `-` for what a label cannot hold.
fn mes_name(service: &str) -> String {
    service
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect()
}

fn mesh_name_note(service: &str, name: &str, hostname: &str) -> String {
    let renamed = if name == service {
        String::new()
    } else {
        format!(" (named {name:?}: {service:?} is no DNS label)")
    };
    format!(
        "`{service}.mesh` is not carried over: the MeshExternalService{renamed} is reached as \
         `{hostname}`, the name Kuma's default HostnameGenerator gives it \
         (`{{{{ .DisplayName }}}}.{HOSTNAME_DOMAIN}`)"
    )
}

/// The one port a MeshExternalService is reached on. http: 80, as an http app called
/// `http://<service>.mesh/`. Otherwise the service's own port, which a tcp, http2 or grpc
/// client names.
fn match_port(protocol: &str, first: &Address) -> u16 {
    if protocol == "http" {
        80
    } else {
        first.port
    }
}

fn port_note(service: &str, protocol: &str, hostname: &str, port: u16, own: u16) -> String {
    let (why, lost) = if protocol == "http" {
        (
            format!(
                "as an http app called `http://{service}.mesh/`; it calls `http://{hostname}/` now"
            ),
            own,
        )
    } else {
        (
            format!("the service's own port, which a {protocol} client names; it connects to `{hostname}:{port}` now"),
            80,
        )
    };
    let mut note =
        format!("the MeshExternalService is reached on port {port} (`match.port`), {why}");
    if lost != port {
        note.push_str(&format!(
            "; `{service}.mesh:{lost}` has no equivalent (a MeshExternalService has one port)"
        ));
    }
    note
}

/// Dataplane outbounds that name the service by tag name the MeshExternalService by
/// `backendRef` in Kuma 2.9+.
fn dataplane_notes(
    resources: &[Resource],
    mesh: &str,
    service: &str,
    name: &str,
) -> Vec<Violation> {
    let mut notes = Vec::new();
    for resource in resources.iter().filter(|r| r.mesh == mesh) {
        let Spec::Dataplane(dataplane) = &resource.spec else {
            continue;
        };
        for outbound in &dataplane.networking.outbound {
            if outbound.service() == Some(service) {
                notes.push(Violation::new(
                    format!("tags[{SERVICE_TAG:?}]"),
                    format!(
                        "Dataplane {:?} reaches it on outbound port {} by this tag: give that \
                         outbound `backendRef: {{kind: MeshExternalService, name: {name}}}` instead",
                        resource.name, outbound.port
                    ),
                ));
            }
        }
    }
    notes
}

fn endpoint_address(resource: &Resource, es: &ExternalServiceSpec) -> Result<Address, String> {
    let written = es.networking.as_ref().map_or("", |n| n.address.as_str());
    address::parse(written).map_err(|_| {
        format!(
            "{}: networking.address {written:?} does not parse",
            Report::of(resource, Vec::new()).heading()
        )
    })
}

/// What one ExternalService, as one endpoint, loses: its real name and its other tags.
fn endpoint_notes(es: &ExternalServiceSpec, service: &Service) -> Vec<Violation> {
    let mut notes = Vec::new();
    match &es.networking {
        Some(n) if n.disable_host_dns_entry => notes.push(Violation::new(
            "networking.disableHostDNSEntry",
            "nothing to carry over: a MeshExternalService never takes the real name",
        )),
        Some(n) => notes.push(Violation::new(
            "networking.address",
            format!(
                "the real name `{}` is not carried over: a MeshExternalService is reached only by \
                 its generated hostnames (`{}`), and Kuma advises against taking real names with \
                 one; use a MeshPassthrough for traffic to the real name",
                n.address, service.hostname
            ),
        )),
        None => {}
    }
    for (tag, value) in &es.tags {
        let why = match tag.as_str() {
            SERVICE_TAG | PROTOCOL_TAG => continue,
            "kuma.io/zone" => {
                "a MeshExternalService belongs to the zone whose control plane holds \
                 it (Kuma labels it `kuma.io/zone` itself): create it on that zone's control plane"
                    .to_string()
            }
            _ => format!(
                "a MeshExternalService has labels, not tags: what selected this service by tag \
                 selects it by `kind: MeshExternalService, name: {}`",
                service.name
            ),
        };
        notes.push(Violation::new(
            format!("tags[{tag:?}]"),
            format!("{tag}: {value} is not carried over: {why}"),
        ));
    }
    notes
}

/// The labels a user wrote, without those Kuma sets itself.
fn user_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("kuma.io/") && !k.starts_with("k8s.kuma.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// An ExternalService's TLS when it is on (a `tls` section without `enabled` is on here).
fn enabled_tls(es: &ExternalServiceSpec) -> Option<&Tls> {
    es.networking
        .as_ref()?
        .tls
        .as_ref()
        .filter(|t| t.is_enabled())
}

/// What one ExternalService's TLS loses in its MeshExternalService, whose `tls` is the first
/// ExternalService's.
fn tls_notes(
    resource: &Resource,
    es: &ExternalServiceSpec,
    group: &Group<'_>,
    service: &Service,
    resolved: &Resolved,
) -> Vec<Violation> {
    let (first, first_es) = group[0];
    let mut notes = Vec::new();
    if !std::ptr::eq(resource, first) {
        if enabled_tls(es) != enabled_tls(first_es) {
            notes.push(Violation::new(
                "networking.tls",
                format!(
                    "differs from ExternalService {:?}'s, which is used: a MeshExternalService has \
                     one `tls` for all its endpoints; give this endpoint a MeshExternalService of its \
                     own to keep its TLS",
                    first.name
                ),
            ));
        }
        return notes;
    }
    let Some(tls) = enabled_tls(es) else {
        return notes;
    };
    if tls.enabled.is_none() {
        notes.push(Violation::new(
            "networking.tls.enabled",
            "unset, which is on here (Kuma reads it as off): the MeshExternalService says \
             `enabled: true`",
        ));
    }
    if tls.skip_hostname_verification {
        notes.push(Violation::new(
            "networking.tls.skipHostnameVerification",
            "becomes `verification.mode: SkipSAN`, which also sends no SNI (Kuma clears the \
             server name): an upstream that picks its certificate by SNI may answer with another",
        ));
    } else if tls.server_name.is_none() {
        notes.extend(sni_notes(service));
    }
    for (field, path) in file_sources(first, tls, resolved) {
        notes.push(Violation::new(
            format!("networking.tls.{field}"),
            format!(
                "a `file` DataSource has no MeshExternalService equivalent in Kuma 2.9 to 2.14: \
                 {} is inlined as `inlineString`, as it is now, so a rotated file is no longer \
                 followed; put it in a Secret and name it with `secret:` instead",
                path.display()
            ),
        ));
    }
    notes
}

/// A MeshExternalService sends every endpoint one SNI, its first endpoint's name (none for an
/// IP); an ExternalService without `serverName` sent each its own host.
fn sni_notes(service: &Service) -> Vec<Violation> {
    let sni = match service.endpoints.first().map(|a| &a.host) {
        Some(Host::Name(name)) => Some(name),
        _ => None,
    };
    let mut others: Vec<String> = Vec::new();
    for endpoint in &service.endpoints {
        if let Host::Name(name) = &endpoint.host {
            if Some(name) != sni && !others.contains(name) {
                others.push(name.clone());
            }
        }
    }
    if others.is_empty() {
        return Vec::new();
    }
    let sent = match sni {
        Some(name) => format!("the SNI `{name}` (its first endpoint's name)"),
        None => "no SNI (its first endpoint is an IP address)".to_string(),
    };
    let each: Vec<String> = others.iter().map(|n| format!("`{n}`")).collect();
    vec![Violation::new(
        "networking.tls.serverName",
        format!(
            "unset: the MeshExternalService sends every endpoint {sent} and checks their \
             certificates against it, where the ExternalServices sent {}: give each host a \
             MeshExternalService of its own if their certificates differ",
            each.join(", ")
        ),
    )]
}

/// The `file` DataSources of an ExternalService's TLS, by field, with their resolved paths.
fn file_sources(
    resource: &Resource,
    tls: &Tls,
    resolved: &Resolved,
) -> Vec<(&'static str, std::path::PathBuf)> {
    let Some(material) = resolved.tls(Kind::ExternalService, &resource.mesh, &resource.name) else {
        return Vec::new();
    };
    [
        ("caCert", &tls.ca_cert, &material.ca_cert),
        ("clientCert", &tls.client_cert, &material.client_cert),
        ("clientKey", &tls.client_key, &material.client_key),
    ]
    .into_iter()
    .filter_map(|(field, written, material)| match (written, material) {
        (Some(DataSource { file: Some(_), .. }), Some(Material::File(path))) => {
            Some((field, path.clone()))
        }
        _ => None,
    })
    .collect()
}

/// The MeshExternalService `tls` of an ExternalService's: `enabled`, `serverName`,
/// `skipHostnameVerification` as `SkipSAN`, the DataSources (a file's content inlined),
/// `allowRenegotiation`. The mode and `match.type` are written out: Kuma 2.9 refuses them
/// empty.
fn mes_tls(
    resource: &Resource,
    es: &ExternalServiceSpec,
    resolved: &Resolved,
    read_file: ReadFile<'_>,
) -> Result<Option<MesTls>, String> {
    let Some(tls) = enabled_tls(es) else {
        return Ok(None);
    };
    let files: BTreeMap<_, _> = file_sources(resource, tls, resolved).into_iter().collect();
    let carried =
        |field: &str, source: &Option<DataSource>| -> Result<Option<DataSource>, String> {
            match files.get(field) {
                Some(path) => Ok(Some(DataSource {
                    inline_string: Some(read_file(path)?),
                    ..DataSource::default()
                })),
                None => Ok(source.clone()),
            }
        };
    let mode = if tls.skip_hostname_verification {
        "SkipSAN"
    } else {
        "Secured"
    };
    Ok(Some(MesTls {
        enabled: true,
        version: None,
        allow_renegotiation: tls.allow_renegotiation,
        verification: Some(Verification {
            mode: Some(mode.into()),
            server_name: tls.server_name.clone(),
            subject_alt_names: None,
            ca_cert: carried("caCert", &tls.ca_cert)?,
            client_cert: carried("clientCert", &tls.client_cert)?,
            client_key: carried("clientKey", &tls.client_key)?,
        }),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use external_service_model::documents::yaml_documents;

    use super::*;
    use crate::read;

    /// The migration of `yaml` (its `file:` sources read as `PEM of <file name>`), with the
    /// input's documents in Kubernetes form marked so.
    fn migrated(yaml: &str) -> Migration {
        let (values, error) = yaml_documents("t.yaml", yaml);
        assert_eq!(error, None);
        let documents = Origin::in_file("t.yaml", values);
        let kubernetes: Vec<Origin> = documents
            .iter()
            .filter(|(v, _)| Form::of(v) == Form::Kubernetes)
            .map(|(_, o)| o.clone())
            .collect();
        let loaded = read::check(documents);
        let read_file = |path: &Path| -> Result<String, String> {
            Ok(format!(
                "PEM of {}",
                path.file_name().unwrap().to_str().unwrap()
            ))
        };
        migrate(
            &loaded.checked.resources,
            &loaded.resolved,
            &kubernetes,
            &read_file,
        )
        .unwrap()
    }

    fn spec(m: &Migrated) -> &MeshExternalServiceSpec {
        match &m.resource.spec {
            Spec::MeshExternalService(spec) => spec,
            other => panic!("not an MES: {other:?}"),
        }
    }

    /// The notes of the ExternalService named `name`, as `field: message` lines.
    fn notes(migration: &Migration, name: &str) -> Vec<String> {
        migration
            .notes
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.violations.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    fn es(name: &str, service: &str, address: &str, more: &str) -> String {
        format!(
            "type: ExternalService\nname: {name}\nmesh: default\ntags:\n  kuma.io/service: {service}\n{more}networking:\n  address: {address}\n"
        )
    }

    #[test]
    fn the_external_services_of_one_service_are_one_mesh_external_service_with_their_endpoints() {
        let yaml = [
            es("a", "api", "a.example:8443", "  kuma.io/protocol: http\n"),
            es("b", "api", "10.0.0.1:9443", "  kuma.io/protocol: http\n"),
            es("c", "other", "c.example:443", ""),
        ]
        .join("---\n");
        let m = migrated(&yaml);
        let names: Vec<_> = m
            .services
            .iter()
            .map(|s| s.resource.name.as_str())
            .collect();
        assert_eq!(names, ["api", "other"]);
        let api = spec(&m.services[0]);
        let endpoints: Vec<_> = api
            .endpoints
            .iter()
            .flatten()
            .map(|e| (e.address.as_str(), e.port))
            .collect();
        assert_eq!(endpoints, [("a.example", 8443), ("10.0.0.1", 9443)]);
        // http: port 80, as `http://api.mesh/`; tcp: the service's own port.
        assert_eq!(
            (api.matcher.port, api.matcher.protocol.as_deref()),
            (80, Some("http"))
        );
        assert_eq!(api.matcher.kind.as_deref(), Some("HostnameGenerator"));
        let other = spec(&m.services[1]);
        assert_eq!(
            (other.matcher.port, other.matcher.protocol.as_deref()),
            (443, Some("tcp"))
        );
        assert_eq!(api.tls, None);
        let a = notes(&m, "a");
        assert!(a[0].starts_with("tags[\"kuma.io/service\"]: `api.mesh` is not carried over: the MeshExternalService is reached as `api.extsvc.mesh.local`"), "{a:?}");
        assert!(a[1].contains("reached on port 80 (`match.port`), as an http app called `http://api.mesh/`; it calls `http://api.extsvc.mesh.local/` now; `api.mesh:8443` has no equivalent"), "{a:?}");
        assert!(
            a[2].starts_with(
                "networking.address: the real name `a.example:8443` is not carried over"
            ),
            "{a:?}"
        );
        assert!(a[2].contains("MeshPassthrough"), "{a:?}");
        // Group notes are said once, of the first.
        assert_eq!(notes(&m, "b").len(), 1, "{:?}", notes(&m, "b"));
        let c = notes(&m, "c");
        assert!(c[1].contains("reached on port 443 (`match.port`), the service's own port, which a tcp client names; it connects to `other.extsvc.mesh.local:443` now; `other.mesh:80` has no equivalent"), "{c:?}");
    }

    #[test]
    fn kafka_is_tcp_and_other_tags_and_the_real_name_are_said_to_be_left() {
        let yaml = es(
            "k",
            "broker",
            "kafka.example:9092",
            "  kuma.io/protocol: kafka\n  kuma.io/zone: east\n  team: data\n",
        )
        .replace("  address:", "  disableHostDNSEntry: true\n  address:");
        let m = migrated(&yaml);
        let broker = spec(&m.services[0]);
        assert_eq!(
            (broker.matcher.port, broker.matcher.protocol.as_deref()),
            (9092, Some("tcp"))
        );
        let k = notes(&m, "k");
        let fields: Vec<_> = k.iter().map(|n| n.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "tags[\"kuma.io/service\"]",
                "networking.address",
                "tags[\"kuma.io/protocol\"]",
                "networking.disableHostDNSEntry",
                "tags[\"kuma.io/zone\"]",
                "tags[\"team\"]"
            ]
        );
        assert!(
            k[2].contains("kafka becomes `match.protocol: tcp`"),
            "{k:?}"
        );
        assert!(
            k[4].contains("create it on that zone's control plane"),
            "{k:?}"
        );
        assert!(k[5].contains("labels, not tags"), "{k:?}");
    }

    #[test]
    fn tls_is_carried_field_by_field() {
        let yaml = es("s", "secure", "secure.example:443", "")
            + "  tls:\n    serverName: name.example\n    allowRenegotiation: true\n    caCert: {inlineString: CA}\n    clientCert: {secret: cert}\n    clientKey: {inline: S0VZ}\n";
        let m = migrated(&yaml);
        let tls = spec(&m.services[0]).tls.clone().unwrap();
        assert!(tls.enabled && tls.allow_renegotiation);
        let v = tls.verification.unwrap();
        assert_eq!(v.mode.as_deref(), Some("Secured"));
        assert_eq!(v.server_name.as_deref(), Some("name.example"));
        assert_eq!(v.ca_cert.unwrap().inline_string.as_deref(), Some("CA"));
        assert_eq!(v.client_cert.unwrap().secret.as_deref(), Some("cert"));
        assert_eq!(v.client_key.unwrap().inline.as_deref(), Some("S0VZ"));
        let s = notes(&m, "s");
        assert!(
            s.iter().any(|n| n.starts_with(
                "networking.tls.enabled: unset, which is on here (Kuma reads it as off)"
            )),
            "{s:?}"
        );
    }

    #[test]
    fn skipping_hostname_verification_is_skip_san_which_sends_no_sni() {
        let yaml = es("s", "lax", "lax.example:443", "")
            + "  tls:\n    enabled: true\n    skipHostnameVerification: true\n";
        let m = migrated(&yaml);
        let tls = spec(&m.services[0]).tls.clone().unwrap();
        assert_eq!(tls.verification.unwrap().mode.as_deref(), Some("SkipSAN"));
        let s = notes(&m, "s");
        assert!(
            s.iter()
                .any(|n| n.starts_with("networking.tls.skipHostnameVerification: becomes `verification.mode: SkipSAN`, which also sends no SNI")),
            "{s:?}"
        );
        assert!(!s.iter().any(|n| n.contains("enabled: unset")), "{s:?}");
    }

    #[test]
    fn a_file_source_is_inlined_and_said_so() {
        let yaml = es("f", "files", "files.example:443", "")
            + "  tls:\n    caCert: {file: certs/ca.pem}\n    clientCert: {file: certs/c.pem}\n    clientKey: {file: certs/k.pem}\n";
        let m = migrated(&yaml);
        let v = spec(&m.services[0])
            .tls
            .clone()
            .unwrap()
            .verification
            .unwrap();
        assert_eq!(
            v.ca_cert.unwrap(),
            DataSource {
                inline_string: Some("PEM of ca.pem".into()),
                ..DataSource::default()
            }
        );
        assert_eq!(
            v.client_key.unwrap().inline_string.as_deref(),
            Some("PEM of k.pem")
        );
        let f = notes(&m, "f");
        let key = f
            .iter()
            .find(|n| n.starts_with("networking.tls.clientKey: a `file` DataSource has no MeshExternalService equivalent in Kuma 2.9 to 2.14: "))
            .unwrap();
        assert!(
            key.contains("certs/k.pem is inlined as `inlineString`"),
            "{key}"
        );
        assert!(key.contains("put it in a Secret"), "{key}");
    }

    #[test]
    fn differing_tls_and_one_sni_for_several_hosts_are_said() {
        let yaml = [
            es("one", "pair", "one.example:443", "") + "  tls: {enabled: true}\n",
            es("two", "pair", "two.example:443", "")
                + "  tls: {enabled: true, allowRenegotiation: true}\n",
        ]
        .join("---\n");
        let m = migrated(&yaml);
        assert!(
            !spec(&m.services[0])
                .tls
                .clone()
                .unwrap()
                .allow_renegotiation
        );
        let two = notes(&m, "two");
        assert!(
            two.iter().any(|n| n.starts_with(
                "networking.tls: differs from ExternalService \"one\"'s, which is used"
            )),
            "{two:?}"
        );
        let one = notes(&m, "one");
        assert!(one.iter().any(|n| n.starts_with("networking.tls.serverName: unset: the MeshExternalService sends every endpoint the SNI `one.example` (its first endpoint's name) and checks their certificates against it, where the ExternalServices sent `two.example`")), "{one:?}");
    }

    #[test]
    fn a_name_that_is_no_dns_label_is_made_one() {
        let m = migrated(&es("u", "httpbin_Org", "httpbin.org:80", ""));
        assert_eq!(m.services[0].resource.name, "httpbin-org");
        let u = notes(&m, "u");
        assert!(u[0].contains("the MeshExternalService (named \"httpbin-org\": \"httpbin_Org\" is no DNS label) is reached as `httpbin-org.extsvc.mesh.local`"), "{u:?}");
    }

    #[test]
    fn a_dataplane_outbound_by_tag_is_told_to_name_the_mesh_external_service() {
        let yaml = es("d", "db", "db.example:5432", "")
            + "---\ntype: Dataplane\nname: app\nmesh: default\nnetworking:\n  address: 127.0.0.1\n  outbound:\n  - port: 10000\n    tags:\n      kuma.io/service: db\n";
        let d = notes(&migrated(&yaml), "d");
        assert!(d.iter().any(|n| n.contains("Dataplane \"app\" reaches it on outbound port 10000 by this tag: give that outbound `backendRef: {kind: MeshExternalService, name: db}` instead")), "{d:?}");
    }

    #[test]
    fn each_is_written_in_the_form_of_its_first_external_service() {
        let kubernetes = "apiVersion: kuma.io/v1alpha1\nkind: ExternalService\nmesh: prod\nmetadata:\n  name: k\n  labels:\n    team: web\nspec:\n  tags:\n    kuma.io/service: web\n  networking:\n    address: web.example:443\n";
        let yaml = format!(
            "{kubernetes}---\n{}",
            es("u", "plain", "plain.example:80", "")
        );
        let m = migrated(&yaml);
        assert_eq!(
            document(&m.services[0]),
            json!({
                "apiVersion": "kuma.io/v1alpha1",
                "kind": "MeshExternalService",
                "metadata": {"name": "web", "namespace": "kuma-system", "labels": {"kuma.io/mesh": "prod", "team": "web"}},
                "spec": {
                    "match": {"type": "HostnameGenerator", "port": 443, "protocol": "tcp"},
                    "endpoints": [{"address": "web.example", "port": 443}],
                },
            })
        );
        assert_eq!(
            document(&m.services[1]),
            json!({
                "type": "MeshExternalService", "name": "plain", "mesh": "default",
                "spec": {
                    "match": {"type": "HostnameGenerator", "port": 80, "protocol": "tcp"},
                    "endpoints": [{"address": "plain.example", "port": 80}],
                },
            })
        );
    }
}
