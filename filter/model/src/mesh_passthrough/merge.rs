//! The MeshPassthroughs that select one proxy, merged as Kuma merges policies
//! (`core/rules/merge.go`, `matchers.SortByTargetRef`), and the passthrough that results
//! with the `Mesh`'s own flag (Kuma 2.9's `meshpassthrough/plugin/v1alpha1/plugin.go`).
//!
//! Order: by the top-level `targetRef` (`Mesh` or none, then `Dataplane` by labels, then
//! `Dataplane` by name, then `MeshSubset`: Kuma 2.10+'s ranks; 2.9 had no `Dataplane`), then
//! by name, the name that sorts first applied last. The `default`s are applied in that order
//! as JSON merge patches, except that a field named `append…` is appended (MADR-053): so the
//! `appendMatch` lists are concatenated in that order, and the last policy that sets
//! `passthroughMode` decides it: the most specific target, or, among equals, the name that
//! sorts first.

use std::cmp::Reverse;

use super::spec::{Match, MeshPassthroughSpec, PassthroughMode, TargetRef};

/// A MeshPassthrough that selects the proxy (which proxies a target selects is the caller's
/// to say).
#[derive(Debug, Clone, Copy)]
pub struct Selected<'a> {
    pub name: &'a str,
    pub spec: &'a MeshPassthroughSpec,
}

/// One match of the merged list, with the policy it came from (to name it in a report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedMatch {
    pub policy: String,
    pub matcher: Match,
}

/// The merged `default` of the policies that select one proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The mode written by the policy applied last among those that write one; unset (no
    /// policy writes one) is `Matched`.
    pub mode: PassthroughMode,
    /// The policy that set `mode`, if one did.
    pub mode_from: Option<String>,
    pub matches: Vec<MergedMatch>,
}

/// Merges the valid policies that select one proxy; `None` when there are none.
pub fn merge(selected: &[Selected<'_>]) -> Option<Merged> {
    if selected.is_empty() {
        return None;
    }
    let mut ordered = selected.to_vec();
    ordered.sort_by_key(|s| (rank(s.spec.target_ref.as_ref()), Reverse(s.name)));
    let mut merged = Merged {
        mode: PassthroughMode::Matched,
        mode_from: None,
        matches: Vec::new(),
    };
    for policy in ordered {
        let written = policy.spec.default.passthrough_mode.as_deref();
        if let Some(mode) = written.and_then(|w| PassthroughMode::of(Some(w))) {
            merged.mode = mode;
            merged.mode_from = Some(policy.name.to_string());
        }
        merged
            .matches
            .extend(policy.spec.matches().iter().map(|m| MergedMatch {
                policy: policy.name.to_string(),
                matcher: m.clone(),
            }));
    }
    Some(merged)
}

/// Kuma's rank of a top-level target: a higher rank is applied later, and so wins.
fn rank(target: Option<&TargetRef>) -> u8 {
    let Some(target) = target else { return 0 };
    match target.kind.as_str() {
        "Dataplane" if target.labels.is_some() => 1,
        "Dataplane" => 2,
        "MeshSubset" => 3,
        _ => 0,
    }
}

/// What passes through a proxy, given the `Mesh`'s `networking.outbound.passthrough` (unset
/// is on) and the merged MeshPassthrough, as Kuma 2.9's plugin decides it:
/// - no MeshPassthrough: the Mesh's flag, `All` when on, `None` when off;
/// - `None`: nothing, whatever the flag (with the flag on, Kuma removes the passthrough);
/// - `All`: everything, whatever the flag (with the flag off, Kuma adds it back);
/// - `Matched`, or unset: the matches alone, whatever the flag.
///
/// (Kong's docs: "When using this policy, the passthrough mode flag is ignored". MADR-053
/// said otherwise; the code is followed.)
pub fn effective(mesh_passthrough: bool, merged: Option<&Merged>) -> PassthroughMode {
    match merged {
        Some(merged) => merged.mode,
        None if mesh_passthrough => PassthroughMode::All,
        None => PassthroughMode::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh_passthrough::spec::Conf;

    fn spec(
        target: Option<(&str, bool)>,
        mode: Option<&str>,
        values: &[&str],
    ) -> MeshPassthroughSpec {
        MeshPassthroughSpec {
            target_ref: target.map(|(kind, by_labels)| TargetRef {
                kind: kind.into(),
                labels: by_labels.then(Default::default),
                ..TargetRef::default()
            }),
            default: Conf {
                passthrough_mode: mode.map(Into::into),
                append_match: Some(
                    values
                        .iter()
                        .map(|v| Match {
                            kind: "Domain".into(),
                            value: (*v).into(),
                            port: Some(443),
                            protocol: Some("tls".into()),
                        })
                        .collect(),
                ),
            },
        }
    }

    fn values(merged: &Merged) -> Vec<(&str, &str)> {
        merged
            .matches
            .iter()
            .map(|m| (m.policy.as_str(), m.matcher.value.as_str()))
            .collect()
    }

    #[test]
    fn no_policy_merges_to_nothing() {
        assert_eq!(merge(&[]), None);
    }

    #[test]
    fn lists_are_concatenated_in_kumas_order_and_the_last_mode_wins() {
        let subset = spec(Some(("MeshSubset", false)), Some("None"), &["c.test"]);
        let mesh_b = spec(None, Some("All"), &["b.test"]);
        let mesh_a = spec(Some(("Mesh", false)), None, &["a.test"]);
        let merged = merge(&[
            Selected {
                name: "subset",
                spec: &subset,
            },
            Selected {
                name: "a",
                spec: &mesh_a,
            },
            Selected {
                name: "b",
                spec: &mesh_b,
            },
        ])
        .unwrap();
        // Mesh targets first, the name that sorts first last; then MeshSubset.
        assert_eq!(
            values(&merged),
            vec![("b", "b.test"), ("a", "a.test"), ("subset", "c.test")]
        );
        assert_eq!(merged.mode, PassthroughMode::None);
        assert_eq!(merged.mode_from.as_deref(), Some("subset"));
    }

    #[test]
    fn among_equal_targets_the_name_that_sorts_first_decides_the_mode() {
        let all = spec(None, Some("All"), &[]);
        let none = spec(None, Some("None"), &[]);
        let merged = merge(&[
            Selected {
                name: "a",
                spec: &all,
            },
            Selected {
                name: "b",
                spec: &none,
            },
        ])
        .unwrap();
        assert_eq!(merged.mode, PassthroughMode::All);
        assert_eq!(merged.mode_from.as_deref(), Some("a"));
    }

    #[test]
    fn a_policy_without_a_mode_keeps_the_mode_of_one_applied_before() {
        let none = spec(None, Some("None"), &[]);
        let unset = spec(Some(("MeshSubset", false)), None, &["a.test"]);
        let merged = merge(&[
            Selected {
                name: "unset",
                spec: &unset,
            },
            Selected {
                name: "none",
                spec: &none,
            },
        ])
        .unwrap();
        assert_eq!(merged.mode, PassthroughMode::None);
        let only_unset = merge(&[Selected {
            name: "unset",
            spec: &unset,
        }])
        .unwrap();
        assert_eq!(only_unset.mode, PassthroughMode::Matched);
        assert_eq!(only_unset.mode_from, None);
    }

    #[test]
    fn dataplane_targets_rank_between_mesh_and_mesh_subset_by_name_above_labels() {
        let by_name = spec(Some(("Dataplane", false)), Some("All"), &["name.test"]);
        let by_labels = spec(Some(("Dataplane", true)), Some("None"), &["labels.test"]);
        let subset = spec(Some(("MeshSubset", false)), None, &["subset.test"]);
        let mesh = spec(Some(("Mesh", false)), Some("None"), &["mesh.test"]);
        let merged = merge(&[
            Selected {
                name: "1",
                spec: &subset,
            },
            Selected {
                name: "2",
                spec: &by_name,
            },
            Selected {
                name: "3",
                spec: &by_labels,
            },
            Selected {
                name: "4",
                spec: &mesh,
            },
        ])
        .unwrap();
        let order: Vec<&str> = merged.matches.iter().map(|m| m.policy.as_str()).collect();
        assert_eq!(order, vec!["4", "3", "2", "1"]);
        assert_eq!(merged.mode, PassthroughMode::All);
    }

    #[test]
    fn effective_passthrough_follows_kumas_plugin() {
        let with = |mode: Option<&str>| {
            let spec = spec(None, mode, &["a.test"]);
            merge(&[Selected {
                name: "p",
                spec: &spec,
            }])
        };
        let cases = [
            (Some("All"), PassthroughMode::All),
            (Some("None"), PassthroughMode::None),
            (Some("Matched"), PassthroughMode::Matched),
            (Option::None, PassthroughMode::Matched),
        ];
        for mesh in [true, false] {
            for (mode, want) in cases {
                let got = effective(mesh, with(mode).as_ref());
                assert_eq!(got, want, "{mode:?} with the mesh's passthrough {mesh}");
            }
        }
        assert_eq!(effective(true, Option::None), PassthroughMode::All);
        assert_eq!(effective(false, Option::None), PassthroughMode::None);
    }
}
