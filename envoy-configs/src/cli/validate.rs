//! `extsvc validate FILE...`: every violation of every resource, Kuma's wording.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use external_service_model::resource::{Kind, Resource, Spec, SERVICE_TAG};
use external_service_model::traffic_permission::{
    self, Action, Caller, Grant, Permissions, Verdict,
};
use external_service_model::{catalog, Catalog, Report};
use serde::Serialize;

use super::{format_word, Inputs};
use crate::policy::{Policies, ServicePolicies};
use crate::read::{self, Loaded, SyntaxError};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc validate services.yaml
  extsvc validate mesh.yaml services/ --format json
  kubectl get externalservices -o yaml | extsvc validate -

Exit status: 0 when every resource is valid, 1 when any is not, 2 when the command
cannot run (unknown flag, missing file).")]
pub struct ValidateArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// text: one line per resource, then one `field: message` line per violation; then, in a
    /// mesh with permissions or mTLS, one `permissions:` line per service.
    /// json: {"resources":[{"file","kind","name","mesh","violations":[{"field","message"}]}],
    /// "errors":[{"file","line","column","message"}], "effective":[{"mesh","service",
    /// "policies":{"MeshTimeout":{"conf","fields":{FIELD: POLICY}}}}], "permissions":[{"mesh",
    /// "enforced","services":[{"kind","name","sources":[{"dataplane","service","action",
    /// "decided_by"}],"grants":[{"who","action","decided_by"}]}]}], "warnings":[...]}.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write the report to FILE instead of stdout. (`-o json` and `-o text`, the old spelling
    /// of --format, still work.)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    resources: &'a [Report],
    errors: &'a [SyntaxError],
    /// Each service some policy applies to, with the merged configuration per kind and the
    /// policy that set each field.
    effective: Vec<ServicePolicies>,
    /// Per mesh: who may reach each service, and which policy decides.
    permissions: &'a [MeshPermissions],
    warnings: &'a [String],
    /// Valid resources that `generate` refuses: one Envoy cluster per service cannot hold them.
    #[serde(skip_serializing_if = "<[Report]>::is_empty")]
    generator_limits: &'a [Report],
}

/// Runs the command: Ok(verdict), or why it could not run (exit 2). Notes for the user go
/// to `notes`.
pub fn run(
    args: &ValidateArgs,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<bool, Box<dyn std::error::Error>> {
    let (format, file) = match args.output.as_deref().map(|o| (o, old_spelling(o))) {
        Some((_, Some((word, format)))) => {
            let _ = writeln!(
                notes,
                "extsvc: `-o {word}` is deprecated: use --format {word} (-o names a file)"
            );
            (format, None)
        }
        Some((path, None)) => (args.format, Some(path)),
        None => (args.format, None),
    };
    let loaded = read::load(&args.inputs.all())?;
    // Kuma takes these, so they are no violations; `generate` refuses them in these words.
    for limit in &loaded.limits {
        for v in &limit.violations {
            let _ = writeln!(
                notes,
                "extsvc: warning: generate refuses {}: {v}",
                limit.heading()
            );
        }
    }
    let policies = Policies::build(&loaded.checked.resources);
    let permissions = permissions(&loaded.checked.resources);
    let warnings = warnings(&loaded, &policies, &permissions);
    let mut report = Vec::new();
    let _ = match format {
        Format::Text => write_text(&loaded, &mut report)
            .and_then(|()| write_permissions(&permissions, &mut report))
            .and_then(|()| {
                warnings
                    .iter()
                    .try_for_each(|w| writeln!(report, "warning: {w}"))
            }),
        Format::Json => {
            let json = JsonReport {
                resources: &loaded.checked.reports,
                errors: &loaded.syntax_errors,
                effective: policies.view(),
                permissions: &permissions,
                warnings: &warnings,
                generator_limits: &loaded.limits,
            };
            serde_json::to_writer_pretty(&mut report, &json)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(report))
        }
    };
    match file {
        Some(path) => {
            fs::write(path, &report).map_err(|e| format!("cannot write {}: {e}", path.display()))?
        }
        // A closed pipe is the reader's choice; the verdict stands.
        None => {
            let _ = out.write_all(&report);
        }
    }
    Ok(loaded.is_valid())
}

/// What Kuma accepts but a user should know: policy targets that name no service,
/// MeshExternalServices a HostnameGenerator gave no hostname, MeshPassthroughs and
/// permissions that decide nothing here (every mesh's).
fn warnings(loaded: &Loaded, policies: &Policies, permissions: &[MeshPermissions]) -> Vec<String> {
    let resources = &loaded.checked.resources;
    let meshes: BTreeSet<&str> = resources.iter().map(|r| r.mesh.as_str()).collect();
    let mut found = policies.warnings().to_vec();
    for mesh in meshes {
        found.extend(catalog::hostname_warnings(resources, mesh));
        found.extend(catalog::passthrough_warnings(resources, mesh));
        let enforced = permissions.iter().any(|p| p.mesh == mesh && p.enforced);
        found.extend(traffic_permission::warnings(resources, mesh, enforced));
    }
    found
}

/// Who may reach the services of one mesh.
#[derive(Serialize)]
struct MeshPermissions {
    mesh: String,
    /// Whether Kuma enforces permissions here: the Mesh's mTLS is enabled.
    enforced: bool,
    /// The mesh has MeshTrafficPermissions or TrafficPermissions.
    #[serde(skip)]
    has_policies: bool,
    services: Vec<ServicePermissions>,
}

#[derive(Serialize)]
struct ServicePermissions {
    kind: Kind,
    name: String,
    /// Each Dataplane of the mesh in the files (its inbounds' tags), with its verdict.
    sources: Vec<Source>,
    /// What the egress enforces: the first grant whose principal the client's certificate
    /// proves decides.
    grants: Vec<Grant>,
}

#[derive(Serialize)]
struct Source {
    dataplane: String,
    service: Option<String>,
    #[serde(flatten)]
    verdict: Verdict,
}

/// For each mesh, its permissions applied to each service: the verdict of each
/// Dataplane of the files and the grants.
fn permissions(resources: &[Resource]) -> Vec<MeshPermissions> {
    let meshes: BTreeSet<&str> = resources.iter().map(|r| r.mesh.as_str()).collect();
    meshes
        .into_iter()
        .map(|mesh| {
            let catalog = Catalog::build(resources, mesh);
            let permissions = Permissions::of_mesh(resources, mesh);
            let callers: Vec<(&str, BTreeMap<String, String>)> = resources
                .iter()
                .filter(|r| r.mesh == mesh)
                .filter_map(|r| match &r.spec {
                    Spec::Dataplane(dp) => Some((r.name.as_str(), dp.inbound_tags())),
                    _ => None,
                })
                .collect();
            let services = catalog
                .services
                .iter()
                .map(|s| ServicePermissions {
                    kind: s.kind,
                    name: s.name.clone(),
                    sources: callers
                        .iter()
                        .map(|(dataplane, tags)| Source {
                            dataplane: dataplane.to_string(),
                            service: tags.get(SERVICE_TAG).cloned(),
                            verdict: permissions.decide(s.kind, &s.name, &Caller { tags }),
                        })
                        .collect(),
                    grants: permissions.grants(s.kind, &s.name),
                })
                .collect();
            let has_policies = resources.iter().any(|r| {
                r.mesh == mesh
                    && matches!(
                        r.spec,
                        Spec::MeshTrafficPermission(_) | Spec::TrafficPermission(_)
                    )
            });
            MeshPermissions {
                mesh: mesh.to_string(),
                enforced: permissions.enforced(),
                has_policies,
                services,
            }
        })
        .collect()
}

/// One line per service of a mesh with permissions or mTLS: each source's verdict and what
/// decided it, or the grants when the files hold no Dataplane.
fn write_permissions(meshes: &[MeshPermissions], out: &mut dyn Write) -> std::io::Result<()> {
    for mesh in meshes.iter().filter(|m| m.enforced || m.has_policies) {
        for service in &mesh.services {
            let verdicts: Vec<String> = match service.sources.as_slice() {
                [] => service.grants.iter().map(grant_text).collect(),
                sources => sources
                    .iter()
                    .map(|s| {
                        let who = s.service.as_deref().unwrap_or("no kuma.io/service");
                        format!("{} ({who}) {}", s.dataplane, verdict_text(&s.verdict))
                    })
                    .collect(),
            };
            let what = if service.sources.is_empty() {
                "no Dataplane in the files; the egress grants"
            } else {
                "sources"
            };
            writeln!(
                out,
                "permissions: {} {:?} (mesh {:?}): {what}: {}",
                service.kind,
                service.name,
                mesh.mesh,
                verdicts.join("; ")
            )?;
        }
    }
    Ok(())
}

fn verdict_text(verdict: &Verdict) -> String {
    match (&verdict.decided_by, verdict.action) {
        (Some(by), action) => format!("{} by {by}", action.as_str()),
        (None, Action::Deny) => "Deny, no rule allows it".to_string(),
        (None, action) => format!("{}, Kuma's default", action.as_str()),
    }
}

fn grant_text(grant: &Grant) -> String {
    use traffic_permission::Principal;
    let who = match &grant.who {
        Principal::AnyMeshIdentity => "everyone".to_string(),
        Principal::Tags(tags) => {
            let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            tags.join(",")
        }
        Principal::SpiffeExact(id) => id.clone(),
        Principal::SpiffePrefix(prefix) => format!("{prefix}*"),
    };
    let verdict = Verdict {
        action: grant.action,
        decided_by: grant.decided_by.clone(),
    };
    format!("{who} {}", verdict_text(&verdict))
}

/// `-o json` and `-o text`, the old spelling of `--format`: only validate's formats; any other
/// name is a file.
fn old_spelling(output: &std::path::Path) -> Option<(&str, Format)> {
    let word = format_word(output)?;
    Some((word, Format::from_str(word, true).ok()?))
}

/// Text output, shared with `generate`'s refusal.
pub fn write_text(loaded: &Loaded, out: &mut dyn Write) -> std::io::Result<()> {
    for error in &loaded.syntax_errors {
        writeln!(out, "{error}")?;
    }
    for report in &loaded.checked.reports {
        match report.violations.len() {
            0 => writeln!(out, "{}: valid", report.heading())?,
            n => writeln!(
                out,
                "{}: {n} violation{}",
                report.heading(),
                if n == 1 { "" } else { "s" }
            )?,
        }
        for v in &report.violations {
            writeln!(out, "  {v}")?;
        }
    }
    Ok(())
}
