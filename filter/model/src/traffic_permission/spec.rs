//! The permission specs as Kuma 2.9 to 2.14 write them: MeshTrafficPermission
//! (`meshtrafficpermission.go`: a `targetRef`, `from[]`, and 2.12+'s `rules[]`) and the older
//! TrafficPermission (`traffic_permission.proto`: `sources` and `destinations`). Enumerations
//! are kept as the strings written, as Kuma's Go types do: Kuma's validator, not the reader,
//! says which values it takes, in its own words.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resource::tags_with_empty_values;
pub use crate::selectors::TargetRef;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshTrafficPermissionSpec {
    /// The destinations (a Dataplane's inbounds, here the services behind the egress); unset
    /// is `kind: Mesh`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Who may call, by tags, each with its action (2.9+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<FromItem>>,
    /// Who may call, by SPIFFE ID, and to which SNI (2.12+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

impl MeshTrafficPermissionSpec {
    pub fn from_items(&self) -> &[FromItem] {
        self.from.as_deref().unwrap_or_default()
    }

    pub fn rule_items(&self) -> &[Rule] {
        self.rules.as_deref().unwrap_or_default()
    }
}

/// One item of `from`: a group of callers and what they may do.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FromItem {
    pub target_ref: TargetRef,
    pub default: Conf,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conf {
    /// `Allow`, `Deny` or `AllowWithShadowDeny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    pub default: RuleConf,
}

/// Callers matched by any of a list are denied, allowed and logged, or allowed; denials are
/// looked at first.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleConf {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<Match>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_with_shadow_deny: Option<Vec<Match>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<Match>>,
}

/// Kuma's common `Match`: a caller's SPIFFE ID, the SNI it asked for, or both.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    #[serde(rename = "spiffeID", skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<ValueMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<ValueMatch>,
}

/// `{type, value}`: `Exact` or `Prefix` for a SPIFFE ID, `Exact` for an SNI.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValueMatch {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// What a `from` item lets its callers do: Kuma's `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    Allow,
    Deny,
    /// Allowed, and logged as if denied: for trying out a denial.
    AllowWithShadowDeny,
}

impl Action {
    pub const NAMES: [&str; 3] = ["Allow", "Deny", "AllowWithShadowDeny"];

    pub fn parse(written: &str) -> Option<Action> {
        match written {
            "Allow" => Some(Action::Allow),
            "Deny" => Some(Action::Deny),
            "AllowWithShadowDeny" => Some(Action::AllowWithShadowDeny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::AllowWithShadowDeny => "AllowWithShadowDeny",
        }
    }

    /// Whether the caller gets through.
    pub fn allows(self) -> bool {
        self != Action::Deny
    }
}

/// The older TrafficPermission: callers matching any of `sources` may reach the services
/// matching any of `destinations`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrafficPermissionSpec {
    pub sources: Vec<Selector>,
    pub destinations: Vec<Selector>,
}

/// Tags a caller or a service must all have; `*` stands for any value.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Selector {
    /// `key:` with no value is an empty value, for Kuma's validator to name.
    #[serde(rename = "match", deserialize_with = "tags_with_empty_values")]
    pub tags: BTreeMap<String, String>,
}
