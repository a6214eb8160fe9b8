//! Whether `transparent-proxy install` blocks what the capture does not take (UDP other than
//! DNS, ICMP, other protocols, IPv6): the mesh's passthrough, read from the resources of
//! `--from`, decides by default; `--block-uncaptured` and `--allow-uncaptured` say it outright.
//!
//! What the capture does not take never reaches Envoy, so no MeshPassthrough match (each one
//! TCP, TLS or HTTP) can let it through: only a passthrough of everything (`All`) leaves it
//! open. Without a Dataplane identity the command cannot tell which proxy it is, so a
//! MeshPassthrough that targets a `MeshSubset` or a `Dataplane` is taken to select it: the
//! capture stays open only when every proxy of the mesh passes everything through.

use std::fmt;

use external_service_model::catalog::Catalog;
use external_service_model::mesh_passthrough::{
    effective, merge, MeshPassthroughSpec, PassthroughMode, Selected,
};
use external_service_model::resource::{Resource, Spec};

/// Why the mesh's passthrough is off, for what the capture does not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The Mesh turns passthrough off and no MeshPassthrough turns it on.
    MeshFlag { mesh: String },
    /// The MeshPassthroughs that select every proxy make it `None` or `Matched`; `set_by`,
    /// the one whose `passthroughMode` won, or none when none writes one (`Matched`).
    EveryProxy {
        mode: PassthroughMode,
        set_by: Option<String>,
    },
    /// A MeshPassthrough that may select this proxy (its `targetRef` is not the mesh) makes
    /// it `None` or `Matched` (`passthroughMode` written or not).
    SomeProxies {
        policy: String,
        target: String,
        mode: PassthroughMode,
    },
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::MeshFlag { mesh } => write!(
                f,
                "Mesh {mesh:?} turns passthrough off (networking.outbound.passthrough: false)"
            ),
            Closed::EveryProxy {
                mode,
                set_by: Some(policy),
            } => write!(
                f,
                "MeshPassthrough {policy:?} sets passthroughMode {mode:?}"
            ),
            Closed::EveryProxy { mode, set_by: None } => write!(
                f,
                "the MeshPassthroughs of the mesh set no passthroughMode, which is {mode:?}"
            ),
            Closed::SomeProxies {
                policy,
                target,
                mode,
            } => write!(
                f,
                "MeshPassthrough {policy:?} (targetRef {target}) may select this proxy and makes \
                 passthroughMode {mode:?}"
            ),
        }
    }
}

/// Whether the passthrough of `mesh` is off for what the capture does not take, and why; the
/// resources are valid (`read::load`).
pub fn closed(resources: &[Resource], mesh: &str) -> Option<Closed> {
    let policies: Vec<Selected<'_>> = resources
        .iter()
        .filter(|r| r.mesh == mesh)
        .filter_map(|r| match &r.spec {
            Spec::MeshPassthrough(spec) => Some(Selected {
                name: &r.name,
                spec,
            }),
            _ => None,
        })
        .collect();
    let (every_proxy, some_proxies): (Vec<_>, Vec<_>) = policies
        .into_iter()
        .partition(|p| selects_every_proxy(p.spec));
    let mesh_flag = Catalog::build(resources, mesh).passthrough;
    let merged = merge(&every_proxy);
    match (effective(mesh_flag, merged.as_ref()), merged) {
        (PassthroughMode::All, _) => {}
        (_, None) => {
            return Some(Closed::MeshFlag {
                mesh: mesh.to_string(),
            })
        }
        (mode, Some(merged)) => {
            return Some(Closed::EveryProxy {
                mode,
                set_by: merged.mode_from,
            })
        }
    }
    some_proxies.into_iter().find_map(|p| {
        let written = p.spec.default.passthrough_mode.as_deref();
        let mode = PassthroughMode::of(written).unwrap_or(PassthroughMode::None);
        (mode != PassthroughMode::All).then(|| Closed::SomeProxies {
            policy: p.name.to_string(),
            target: p
                .spec
                .target_ref
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default(),
            mode,
        })
    })
}

/// A `targetRef` left out or `kind: Mesh`.
fn selects_every_proxy(spec: &MeshPassthroughSpec) -> bool {
    spec.target_ref.as_ref().is_none_or(|t| t.kind == "Mesh")
}

/// What the user said about uncaptured traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Neither flag: the mesh decides, when it is known.
    Default,
    /// `--block-uncaptured`.
    Block,
    /// `--allow-uncaptured`.
    Allow,
}

/// What is known of the mesh's passthrough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passthrough {
    /// No `--from`: not read.
    Unknown,
    On,
    Off(Closed),
}

/// A line for standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Note(String),
    Warning(String),
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Note(text) => write!(f, "extsvc: note: {text}"),
            Message::Warning(text) => write!(f, "extsvc: warning: {text}"),
        }
    }
}

/// Whether to block what the capture does not take, and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub block: bool,
    pub message: Option<Message>,
}

/// The decision: a closed passthrough blocks unless `--allow-uncaptured` opts out, which is
/// warned about every time. `redirect_dns`: whether DNS is captured (it then stays out of
/// what is named as left open).
pub fn decide(asked: Asked, passthrough: &Passthrough, redirect_dns: bool) -> Decision {
    let open = left_open(redirect_dns);
    let (block, message) = match (asked, passthrough) {
        (Asked::Block, _) => (true, None),
        (Asked::Default, Passthrough::Off(why)) => (
            true,
            Some(Message::Note(format!(
                "{why}: blocking {open}, as --block-uncaptured does (--allow-uncaptured leaves \
                 it open)"
            ))),
        ),
        (Asked::Allow, Passthrough::Off(why)) => (
            false,
            Some(Message::Warning(format!(
                "--allow-uncaptured: {why}, yet {open} of every uid but Envoy's leaves this \
                 network namespace without passing Envoy"
            ))),
        ),
        (Asked::Default, Passthrough::Unknown) => (
            false,
            Some(Message::Note(format!(
                "{open} is left open: with --from FILE... (the resources given to `generate`) \
                 it is blocked when the mesh's passthrough is off; --block-uncaptured blocks it \
                 always"
            ))),
        ),
        (Asked::Default | Asked::Allow, Passthrough::On | Passthrough::Unknown) => (false, None),
    };
    Decision { block, message }
}

/// What the capture does not take (it takes TCP over IPv4 and IPv6, and IPv4 DNS when asked).
fn left_open(redirect_dns: bool) -> String {
    let udp = if redirect_dns {
        "UDP other than IPv4 DNS"
    } else {
        "UDP (DNS included)"
    };
    format!("{udp}, ICMP, ICMPv6 and other protocols")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use external_service_model::documents::yaml_documents;
    use external_service_model::Origin;

    use super::*;

    fn resources(yaml: &str) -> Vec<Resource> {
        let (values, error) = yaml_documents("test.yaml", yaml);
        assert!(error.is_none(), "{error:?}");
        let loaded = crate::read::check(Origin::in_file("test.yaml", values));
        assert!(loaded.is_valid(), "{:?}", loaded.checked.reports);
        loaded.checked.resources
    }

    fn mesh(passthrough: bool) -> String {
        format!(
            "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: {passthrough}\n"
        )
    }

    fn policy(name: &str, target: Option<&str>, mode: Option<&str>) -> String {
        let target = match target {
            Some("MeshSubset") => "  targetRef: {kind: MeshSubset, tags: {app: web}}\n".into(),
            Some(kind) => format!("  targetRef: {{kind: {kind}}}\n"),
            None => String::new(),
        };
        let mode = mode.map_or(String::new(), |m| format!("    passthroughMode: {m}\n"));
        format!(
            "type: MeshPassthrough\nname: {name}\nmesh: default\nspec:\n{target}  default:\n\
             {mode}    appendMatch:\n    - {{type: Domain, value: a.test, port: 443, protocol: tls}}\n"
        )
    }

    fn closed_for(documents: &[String]) -> Option<Closed> {
        closed(&resources(&documents.join("---\n")), "default")
    }

    #[test]
    fn the_mesh_flag_decides_without_a_mesh_passthrough() {
        assert_eq!(closed_for(&[mesh(true)]), None);
        assert_eq!(
            closed_for(&[mesh(false)]),
            Some(Closed::MeshFlag {
                mesh: "default".into()
            })
        );
        // No Mesh resource: Kuma's default, passthrough on.
        assert_eq!(closed_for(&[policy("p", None, Some("All"))]), None);
    }

    #[test]
    fn a_mesh_passthrough_for_every_proxy_overrides_the_flag() {
        assert_eq!(
            closed_for(&[mesh(false), policy("p", Some("Mesh"), Some("All"))]),
            None
        );
        assert_eq!(
            closed_for(&[mesh(true), policy("p", None, Some("None"))]),
            Some(Closed::EveryProxy {
                mode: PassthroughMode::None,
                set_by: Some("p".into())
            })
        );
        // Matched lets only its matches through, all of them captured TCP.
        assert_eq!(
            closed_for(&[mesh(true), policy("p", Some("Mesh"), Some("Matched"))]),
            Some(Closed::EveryProxy {
                mode: PassthroughMode::Matched,
                set_by: Some("p".into())
            })
        );
        assert_eq!(
            closed_for(&[mesh(true), policy("p", None, None)]),
            Some(Closed::EveryProxy {
                mode: PassthroughMode::Matched,
                set_by: None
            })
        );
    }

    #[test]
    fn a_mesh_passthrough_that_may_select_the_proxy_closes_unless_it_passes_all() {
        assert_eq!(
            closed_for(&[mesh(true), policy("subset", Some("MeshSubset"), None)]),
            Some(Closed::SomeProxies {
                policy: "subset".into(),
                target: "MeshSubset".into(),
                mode: PassthroughMode::Matched,
            })
        );
        assert_eq!(
            closed_for(&[
                mesh(false),
                policy("mesh", None, Some("All")),
                policy("subset", Some("MeshSubset"), Some("All")),
            ]),
            None
        );
        // It may not select this proxy either: then the mesh's own passthrough applies.
        assert_eq!(
            closed_for(&[
                mesh(false),
                policy("subset", Some("MeshSubset"), Some("All"))
            ]),
            Some(Closed::MeshFlag {
                mesh: "default".into()
            })
        );
    }

    #[test]
    fn other_meshes_do_not_count() {
        let other = policy("p", None, Some("None")).replace("mesh: default", "mesh: other");
        assert_eq!(closed_for(&[mesh(true), other]), None);
    }

    #[test]
    fn decision_table() {
        let off = Passthrough::Off(Closed::MeshFlag {
            mesh: "default".into(),
        });
        let note = |text: &str| Some(Message::Note(text.into()));
        let cases = [
            (Asked::Default, Passthrough::On, false, None),
            (
                Asked::Default,
                off.clone(),
                true,
                note(
                    "Mesh \"default\" turns passthrough off (networking.outbound.passthrough: \
                     false): blocking UDP other than IPv4 DNS, ICMP, ICMPv6 and other \
                     protocols, as --block-uncaptured does (--allow-uncaptured leaves it open)",
                ),
            ),
            (
                Asked::Default,
                Passthrough::Unknown,
                false,
                note(
                    "UDP other than IPv4 DNS, ICMP, ICMPv6 and other protocols is left open: \
                     with --from FILE... (the resources given to `generate`) it is blocked when \
                     the mesh's passthrough is off; --block-uncaptured blocks it always",
                ),
            ),
            (Asked::Block, Passthrough::On, true, None),
            (Asked::Block, off.clone(), true, None),
            (Asked::Block, Passthrough::Unknown, true, None),
            (Asked::Allow, Passthrough::On, false, None),
            (
                Asked::Allow,
                off,
                false,
                Some(Message::Warning(
                    "--allow-uncaptured: Mesh \"default\" turns passthrough off \
                     (networking.outbound.passthrough: false), yet UDP other than IPv4 DNS, ICMP, \
                     ICMPv6 and other protocols of every uid but Envoy's leaves this network \
                     namespace without passing Envoy"
                        .into(),
                )),
            ),
        ];
        for (asked, passthrough, block, message) in cases {
            let got = decide(asked, &passthrough, true);
            assert_eq!(
                got,
                Decision { block, message },
                "{asked:?} with {passthrough:?}"
            );
        }
        let without_dns = decide(Asked::Default, &Passthrough::Unknown, false);
        assert!(
            format!("{}", without_dns.message.unwrap()).contains("UDP (DNS included)"),
            "DNS is named as open when it is not captured"
        );
    }
}
