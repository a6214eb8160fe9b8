//! Who may reach a service through the ZoneEgress, as Envoy's network RBAC on the service's
//! chain: the model's first-match-wins grants (`Permissions::grants`) turned into Envoy's
//! unordered policies, the client known only by its certificate's URI SANs
//! (`authenticated.principal_name`, which Envoy matches against each of them). Kuma's egress
//! does the same (`NetworkRBAC` on each egress chain).
//!
//! A list decides by its first grant that takes the client; Envoy's `ALLOW` policies admit a
//! client any of them takes. So each allowing grant becomes a policy that takes its clients
//! but those of the denials before it (an allowing grant before it admits them anyway). An
//! `AllowWithShadowDeny` grant allows, and its clients (but those of any grant before it)
//! are a shadow `DENY` policy: counted (`rbac.shadow_denied`) and logged, not enforced.

use external_service_model::resource::SERVICE_TAG;
use external_service_model::traffic_permission::identity::{kuma_uri, spiffe_id};
use external_service_model::traffic_permission::{self as permission, Action, Grant};

use crate::envoy::{
    Authenticated, Map, Permission, Principal, PrincipalSet, Rbac, RbacAction, RbacPolicy,
    RbacRules, StringMatcher,
};

/// The RBAC filter's configuration for a service of `mesh` with these grants; its stats are
/// `<stat_prefix>.rbac.*`.
pub fn rules(mesh: &str, stat_prefix: &str, grants: &[Grant]) -> Rbac {
    let mut allowed = Vec::new();
    let mut shadow_denied = Vec::new();
    let mut denials_before: Vec<Principal> = Vec::new();
    let mut all_before: Vec<Principal> = Vec::new();
    for (i, grant) in grants.iter().enumerate() {
        let who = principal(mesh, &grant.who);
        let name = policy_name(i, grant);
        if grant.action != Action::Deny {
            allowed.push((name.clone(), policy(excluding(&who, &denials_before))));
        }
        match grant.action {
            Action::AllowWithShadowDeny => {
                shadow_denied.push((name, policy(excluding(&who, &all_before))));
            }
            Action::Deny => denials_before.push(who.clone()),
            Action::Allow => {}
        }
        all_before.push(who);
    }
    Rbac {
        stat_prefix: stat_prefix.to_string(),
        rules: RbacRules {
            action: RbacAction::Allow,
            policies: Map(allowed),
        },
        shadow_rules: (!shadow_denied.is_empty()).then_some(RbacRules {
            action: RbacAction::Deny,
            policies: Map(shadow_denied),
        }),
    }
}

/// `<position>: <what decided>`, unique in the list, and what the logs show.
fn policy_name(i: usize, grant: &Grant) -> String {
    match &grant.decided_by {
        Some(by) => format!("{i}: {}/{}", by.kind, by.name),
        None => format!("{i}: default"),
    }
}

fn policy(who: Principal) -> RbacPolicy {
    RbacPolicy {
        permissions: vec![Permission { any: true }],
        principals: vec![who],
    }
}

/// `who`, but none of `before`.
fn excluding(who: &Principal, before: &[Principal]) -> Principal {
    if before.is_empty() {
        return who.clone();
    }
    let not = before.iter().map(|p| Principal::NotId(Box::new(p.clone())));
    Principal::AndIds(PrincipalSet {
        ids: not.chain([who.clone()]).collect(),
    })
}

/// The clients a grant speaks of, by the URI SANs Kuma's certificates carry.
fn principal(mesh: &str, who: &permission::Principal) -> Principal {
    let san = |matcher| {
        Principal::Authenticated(Authenticated {
            principal_name: matcher,
        })
    };
    match who {
        permission::Principal::AnyMeshIdentity => {
            san(StringMatcher::Prefix(format!("spiffe://{mesh}/")))
        }
        permission::Principal::SpiffeExact(id) => san(StringMatcher::Exact(id.clone())),
        permission::Principal::SpiffePrefix(prefix) => san(StringMatcher::Prefix(prefix.clone())),
        // Never empty: the model makes no tags `AnyMeshIdentity`.
        permission::Principal::Tags(tags) => {
            let mut each: Vec<Principal> = tags
                .iter()
                .map(|(tag, value)| {
                    san(StringMatcher::Exact(match tag.as_str() {
                        SERVICE_TAG => spiffe_id(mesh, value),
                        _ => kuma_uri(tag, value),
                    }))
                })
                .collect();
            match each.len() {
                1 => each.remove(0),
                _ => Principal::AndIds(PrincipalSet { ids: each }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use external_service_model::traffic_permission::PolicyRef;
    use external_service_model::Kind;

    use super::*;
    use crate::generate::test_support::{assert_cases, yaml};

    fn grant(who: permission::Principal, action: Action, by: Option<&str>) -> Grant {
        Grant {
            who,
            action,
            decided_by: by.map(|name| PolicyRef {
                kind: Kind::MeshTrafficPermission,
                name: name.to_string(),
            }),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> permission::Principal {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        permission::Principal::Tags(map)
    }

    fn any() -> permission::Principal {
        permission::Principal::AnyMeshIdentity
    }

    #[test]
    fn a_first_match_list_becomes_allow_policies_that_leave_out_earlier_denials() {
        let web = tags(&[("kuma.io/service", "web")]);
        let batch_v2 = tags(&[("kuma.io/service", "batch"), ("version", "v2")]);
        assert_cases(&[
            (
                "allowed callers, then Kuma's default deny: only them",
                yaml(&rules(
                    "default",
                    "egress_external_service_httpbin",
                    &[
                        grant(web.clone(), Action::Allow, Some("web")),
                        grant(any(), Action::Deny, None),
                    ],
                )),
                "
stat_prefix: egress_external_service_httpbin
rules:
  action: ALLOW
  policies:
    '0: MeshTrafficPermission/web':
      permissions:
      - any: true
      principals:
      - authenticated:
          principal_name:
            exact: spiffe://default/web
",
            ),
            (
                "a denial before an allowance to all: all but the denied, by every tag's SAN",
                yaml(&rules(
                    "default",
                    "s",
                    &[
                        grant(batch_v2, Action::Deny, Some("no-batch")),
                        grant(any(), Action::Allow, Some("all")),
                    ],
                )),
                "
stat_prefix: s
rules:
  action: ALLOW
  policies:
    '1: MeshTrafficPermission/all':
      permissions:
      - any: true
      principals:
      - and_ids:
          ids:
          - not_id:
              and_ids:
                ids:
                - authenticated:
                    principal_name:
                      exact: spiffe://default/batch
                - authenticated:
                    principal_name:
                      exact: kuma://version/v2
          - authenticated:
              principal_name:
                prefix: spiffe://default/
",
            ),
            (
                "nothing allowed: no policy, so every client is refused",
                yaml(&rules("default", "s", &[grant(any(), Action::Deny, None)])),
                "
stat_prefix: s
rules:
  action: ALLOW
  policies: {}
",
            ),
        ]);
    }

    #[test]
    fn allow_with_shadow_deny_allows_and_counts_its_callers_as_shadow_denied() {
        let web = tags(&[("kuma.io/service", "web")]);
        let prefix = permission::Principal::SpiffePrefix("spiffe://default/team-".into());
        let got = rules(
            "default",
            "s",
            &[
                grant(web, Action::Allow, Some("web")),
                grant(prefix, Action::AllowWithShadowDeny, Some("teams")),
                grant(any(), Action::Deny, None),
            ],
        );
        assert_cases(&[(
            "the shadow policy leaves out who an earlier grant decides for",
            yaml(&got.shadow_rules),
            "
action: DENY
policies:
  '1: MeshTrafficPermission/teams':
    permissions:
    - any: true
    principals:
    - and_ids:
        ids:
        - not_id:
            authenticated:
              principal_name:
                exact: spiffe://default/web
        - authenticated:
            principal_name:
              prefix: spiffe://default/team-
",
        )]);
        let allowed: Vec<&str> = got
            .rules
            .policies
            .0
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            allowed,
            [
                "0: MeshTrafficPermission/web",
                "1: MeshTrafficPermission/teams"
            ]
        );
    }
}
