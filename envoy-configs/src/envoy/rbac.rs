//! Role-based access control: the network filter and its rules.

use serde::Serialize;

use super::core::{Map, StringMatcher};

/// `extensions.filters.network.rbac.v3.RBAC`: decides once, on the connection's first bytes
/// (Envoy's default), by the client's certificate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rbac {
    pub stat_prefix: String,
    pub rules: RbacRules,
    /// Not enforced: counted (`shadow_allowed`, `shadow_denied`) and logged only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_rules: Option<RbacRules>,
}

/// `config.rbac.v3.RBAC`: with `ALLOW`, what no policy matches is refused (no policy at all
/// refuses everyone); with `DENY`, what a policy matches is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RbacRules {
    pub action: RbacAction,
    /// By name: the resource that decided, for the stats and logs.
    pub policies: Map<RbacPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RbacAction {
    Allow,
    Deny,
}

/// Who (any of `principals`) may do what (any of `permissions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RbacPolicy {
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

/// `config.rbac.v3.Permission`: here always any (the chain is the service already).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Permission {
    pub any: bool,
}

/// `config.rbac.v3.Principal`: a client, by its certificate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    AndIds(PrincipalSet),
    NotId(Box<Principal>),
    /// A certificate whose SAN (URI first, then DNS) or subject matches.
    Authenticated(Authenticated),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrincipalSet {
    pub ids: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Authenticated {
    pub principal_name: StringMatcher,
}
