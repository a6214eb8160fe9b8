//! `decide` (a caller known by its tags, at a sidecar) and `grants` (a first-match-wins list
//! for Envoy's RBAC on the egress, where a caller is known by its certificate's URI SANs
//! alone) must agree, for any set of permissions and any caller: else a sidecar and the egress
//! would answer one request two ways. The lists are judged here as Envoy's RBAC judges a
//! certificate, from the URI SANs Kuma gives a caller; and, for policies with `from` alone,
//! `decide` is held to Kuma's merge read the slow way: the last item that selects the caller.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Reverse;
use std::collections::BTreeMap;

use external_service_model::config::check;
use external_service_model::resource::{Kind, Origin};
use external_service_model::traffic_permission::identity::uri_sans;
use external_service_model::traffic_permission::{
    sni, Action, Caller, Grant, Permissions, Principal, Verdict,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const SERVICES: [&str; 4] = ["web", "web-admin", "batch", "api"];
const KEYS: [&str; 2] = ["version", "env"];
const VALUES: [&str; 4] = ["v1", "v2", "prod", "dev"];
/// httpbin's tags: what top-level targets select it by.
const HTTPBIN_ENV: &str = "prod";

type Tags = Vec<(&'static str, &'static str)>;

#[derive(Debug, Clone)]
enum Target {
    Unset,
    Mesh,
    Subset(Tags),
    Service(&'static str),
    ServiceSubset(&'static str, Tags),
}

impl Target {
    fn json(&self) -> Option<Value> {
        let tags = |t: &Tags| {
            t.iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
        };
        Some(match self {
            Target::Unset => return None,
            Target::Mesh => json!({"kind": "Mesh"}),
            Target::Subset(t) => json!({"kind": "MeshSubset", "tags": tags(t)}),
            Target::Service(s) => json!({"kind": "MeshService", "name": s}),
            Target::ServiceSubset(s, t) => {
                json!({"kind": "MeshServiceSubset", "name": s, "tags": tags(t)})
            }
        })
    }

    /// Kuma's rank of a top-level target.
    fn rank(&self) -> u8 {
        match self {
            Target::Unset | Target::Mesh => 1,
            Target::Subset(_) => 3,
            Target::Service(_) => 5,
            Target::ServiceSubset(..) => 8,
        }
    }

    /// Whether it selects a caller (or an ExternalService) with `tags`.
    fn selects(&self, tags: &BTreeMap<String, String>) -> bool {
        let has = |t: &Tags| {
            t.iter()
                .all(|(k, v)| tags.get(*k).map(String::as_str) == Some(*v))
        };
        let named = |s: &str| tags.get("kuma.io/service").map(String::as_str) == Some(s);
        match self {
            Target::Unset | Target::Mesh => true,
            Target::Subset(t) => has(t),
            Target::Service(s) => named(s),
            Target::ServiceSubset(s, t) => named(s) && has(t),
        }
    }
}

#[derive(Debug, Clone)]
struct RuleMatch {
    spiffe_id: Option<(&'static str, String)>,
    sni: Option<String>,
}

#[derive(Debug, Clone)]
enum Body {
    From(Vec<(Target, Action)>),
    Rules(Vec<[Vec<RuleMatch>; 3]>),
}

#[derive(Debug, Clone)]
struct Policy {
    name: String,
    target: Target,
    body: Body,
}

#[derive(Debug, Clone)]
struct World {
    mtls: bool,
    forbid_mesh_external_services: bool,
    policies: Vec<Policy>,
    /// Each: sources and destinations, tag maps.
    traffic_permissions: Vec<(Vec<Tags>, Vec<Tags>)>,
}

fn tags_strategy(min: usize) -> impl Strategy<Value = Tags> {
    prop::collection::btree_map(
        prop::sample::select(KEYS.to_vec()),
        prop::sample::select(VALUES.to_vec()),
        min..=2,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn service() -> impl Strategy<Value = &'static str> {
    prop::sample::select(SERVICES.to_vec())
}

fn from_target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::Mesh),
        tags_strategy(1).prop_map(Target::Subset),
        service().prop_map(Target::Service),
        (service(), tags_strategy(1)).prop_map(|(s, t)| Target::ServiceSubset(s, t)),
    ]
}

fn top_target() -> impl Strategy<Value = Target> {
    prop::sample::select(vec![
        Target::Unset,
        Target::Mesh,
        Target::Service("httpbin"),
        Target::Service("other"),
        Target::Service("ghost"),
        Target::Subset(vec![("env", HTTPBIN_ENV)]),
        Target::Subset(vec![("env", "dev")]),
        Target::ServiceSubset("httpbin", vec![("env", HTTPBIN_ENV)]),
    ])
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(vec![
        Action::Allow,
        Action::Deny,
        Action::AllowWithShadowDeny,
    ])
}

fn aurora_sni() -> String {
    sni::mesh_external_service("aurora", "default", 5432)
}

fn rule_match() -> impl Strategy<Value = RuleMatch> {
    let spiffe_id = prop_oneof![
        service().prop_map(|s| ("Exact", format!("spiffe://default/{s}"))),
        prop::sample::select(vec![
            "spiffe://default",
            "spiffe://default/web",
            "spiffe://other"
        ])
        .prop_map(|p| ("Prefix", p.to_string())),
    ];
    let sni = prop::sample::select(vec![aurora_sni(), "other.example".to_string()]);
    (prop::option::of(spiffe_id), prop::option::of(sni))
        .prop_map(|(spiffe_id, sni)| RuleMatch { spiffe_id, sni })
}

fn body() -> impl Strategy<Value = Body> {
    let lists = [0, 1, 2].map(|_| prop::collection::vec(rule_match(), 0..3));
    let rule = lists.prop_filter("a rule needs a list", |l| l.iter().any(|m| !m.is_empty()));
    prop_oneof![
        prop::collection::vec((from_target(), action()), 1..5).prop_map(Body::From),
        prop::collection::vec(rule, 1..3).prop_map(Body::Rules),
    ]
}

fn world() -> impl Strategy<Value = World> {
    let policy = (
        prop::sample::select(vec!["a", "b", "c"]),
        top_target(),
        body(),
    );
    let source = prop::collection::vec(
        prop_oneof![Just("*"), service()].prop_map(|s| ("kuma.io/service", s)),
        1..=1,
    )
    .prop_flat_map(|service| tags_strategy(0).prop_map(move |t| [service.clone(), t].concat()));
    let destination = prop::sample::select(vec![
        vec![("kuma.io/service", "httpbin")],
        vec![("kuma.io/service", "*")],
        vec![("kuma.io/service", "other")],
        vec![("kuma.io/service", "*"), ("env", HTTPBIN_ENV)],
    ]);
    let traffic_permission = (
        prop::collection::vec(source, 1..3),
        prop::collection::vec(destination, 1..3),
    );
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(policy, 0..4),
        prop::collection::vec(traffic_permission, 0..3),
    )
        .prop_map(|(mtls, forbid, policies, traffic_permissions)| World {
            mtls,
            forbid_mesh_external_services: forbid,
            // Distinct names, in an order of their own.
            policies: policies
                .into_iter()
                .enumerate()
                .map(|(i, (prefix, target, body))| Policy {
                    name: format!("{prefix}-{i}"),
                    target,
                    body,
                })
                .collect(),
            traffic_permissions,
        })
}

fn caller() -> impl Strategy<Value = BTreeMap<String, String>> {
    (service(), tags_strategy(0)).prop_map(|(s, t)| {
        let mut tags: BTreeMap<String, String> = t
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tags.insert("kuma.io/service".into(), s.into());
        tags
    })
}

fn match_json(m: &RuleMatch) -> Value {
    let mut out = serde_json::Map::new();
    if let Some((kind, value)) = &m.spiffe_id {
        out.insert("spiffeID".into(), json!({"type": kind, "value": value}));
    }
    if let Some(sni) = &m.sni {
        out.insert("sni".into(), json!({"type": "Exact", "value": sni}));
    }
    Value::Object(out)
}

fn tag_map(tags: &Tags) -> Value {
    Value::Object(
        tags.iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

fn documents(world: &World) -> Vec<Value> {
    let mut mesh = json!({"type": "Mesh", "name": "default", "routing": {"defaultForbidMeshExternalServiceAccess": world.forbid_mesh_external_services}});
    if world.mtls {
        mesh["mtls"] =
            json!({"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]});
    }
    let mut docs = vec![
        mesh,
        json!({"type": "ExternalService", "name": "httpbin", "mesh": "default",
               "tags": {"kuma.io/service": "httpbin", "env": HTTPBIN_ENV},
               "networking": {"address": "httpbin.org:443"}}),
        json!({"type": "MeshExternalService", "name": "aurora", "mesh": "default",
               "spec": {"match": {"type": "HostnameGenerator", "port": 5432, "protocol": "tcp"},
                        "endpoints": [{"address": "aurora.example", "port": 5432}]}}),
    ];
    for p in &world.policies {
        let mut spec = serde_json::Map::new();
        if let Some(target) = p.target.json() {
            spec.insert("targetRef".into(), target);
        }
        match &p.body {
            Body::From(items) => {
                let items: Vec<Value> = items
                    .iter()
                    .map(|(t, a)| json!({"targetRef": t.json(), "default": {"action": a.as_str()}}))
                    .collect();
                spec.insert("from".into(), json!(items));
            }
            Body::Rules(rules) => {
                let rules: Vec<Value> = rules
                    .iter()
                    .map(|[deny, shadow, allow]| {
                        let list = |l: &Vec<RuleMatch>| json!(l.iter().map(match_json).collect::<Vec<_>>());
                        json!({"default": {"deny": list(deny), "allowWithShadowDeny": list(shadow), "allow": list(allow)}})
                    })
                    .collect();
                spec.insert("rules".into(), json!(rules));
            }
        }
        docs.push(json!({"type": "MeshTrafficPermission", "name": p.name, "mesh": "default", "spec": spec}));
    }
    for (i, (sources, destinations)) in world.traffic_permissions.iter().enumerate() {
        let selectors = |l: &Vec<Tags>| {
            json!(l
                .iter()
                .map(|t| json!({"match": tag_map(t)}))
                .collect::<Vec<_>>())
        };
        docs.push(
            json!({"type": "TrafficPermission", "name": format!("tp-{i}"), "mesh": "default",
                         "sources": selectors(sources), "destinations": selectors(destinations)}),
        );
    }
    docs
}

fn permissions(world: &World) -> Permissions {
    let checked = check(Origin::in_file("world.json", documents(world)), None);
    let invalid: Vec<String> = checked.invalid().map(ToString::to_string).collect();
    assert!(invalid.is_empty(), "{}", invalid.join("\n"));
    Permissions::of_mesh(&checked.resources, "default")
}

/// As Envoy's RBAC judges a principal against a certificate's URI SANs.
fn admits_by_certificate(who: &Principal, sans: &[String]) -> bool {
    match who {
        Principal::AnyMeshIdentity => true,
        Principal::Tags(tags) => tags.iter().all(|(k, v)| {
            let san = match k.as_str() {
                "kuma.io/service" => format!("spiffe://default/{v}"),
                _ => format!("kuma://{k}/{v}"),
            };
            sans.contains(&san)
        }),
        Principal::SpiffeExact(id) => sans.iter().any(|s| s == id),
        Principal::SpiffePrefix(prefix) => sans.iter().any(|s| s.starts_with(prefix.as_str())),
    }
}

fn by_certificate(grants: &[Grant], sans: &[String]) -> Option<Verdict> {
    grants
        .iter()
        .find(|g| admits_by_certificate(&g.who, sans))
        .map(|g| Verdict {
            action: g.action,
            decided_by: g.decided_by.clone(),
        })
}

/// Kuma's merge of `from`, the slow way: the policies that select httpbin in Kuma's order,
/// their items in order, and the last one that selects the caller.
fn kumas_merge(world: &World, caller: &BTreeMap<String, String>) -> Action {
    let httpbin = BTreeMap::from([
        ("kuma.io/service".to_string(), "httpbin".to_string()),
        ("env".to_string(), HTTPBIN_ENV.to_string()),
    ]);
    let mut selecting: Vec<&Policy> = world
        .policies
        .iter()
        .filter(|p| p.target.selects(&httpbin))
        .collect();
    selecting.sort_by_key(|p| (p.target.rank(), Reverse(p.name.clone())));
    let mut action = Action::Deny;
    for p in selecting {
        if let Body::From(items) = &p.body {
            for (target, a) in items {
                if target.selects(caller) {
                    action = *a;
                }
            }
        }
    }
    action
}

const DESTINATIONS: [(Kind, &str); 4] = [
    (Kind::ExternalService, "httpbin"),
    (Kind::MeshExternalService, "aurora"),
    (Kind::ExternalService, "ghost"),
    (Kind::MeshExternalService, "ghost"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decide_agrees_with_the_grants_judged_by_the_callers_certificate(
        world in world(),
        callers in prop::collection::vec(caller(), 1..6),
    ) {
        let p = permissions(&world);
        for (kind, name) in DESTINATIONS {
            let grants = p.grants(kind, name);
            prop_assert_eq!(grants.last().map(|g| &g.who), Some(&Principal::AnyMeshIdentity), "{:?}", grants);
            for tags in &callers {
                let sans = uri_sans("default", tags);
                let decided = p.decide(kind, name, &Caller { tags });
                prop_assert_eq!(Some(decided), by_certificate(&grants, &sans), "{} {} for {:?}: {:?}", kind, name, tags, grants);
            }
        }
    }

    #[test]
    fn from_alone_is_merged_as_kuma_merges_it(
        world in world().prop_map(|mut w| {
            w.mtls = true;
            w.traffic_permissions.clear();
            w.policies.retain(|p| matches!(p.body, Body::From(_)));
            w
        }),
        callers in prop::collection::vec(caller(), 1..6),
    ) {
        let p = permissions(&world);
        for tags in &callers {
            let decided = p.decide(Kind::ExternalService, "httpbin", &Caller { tags });
            prop_assert_eq!(decided.action, kumas_merge(&world, tags), "{:?}", tags);
        }
    }
}
