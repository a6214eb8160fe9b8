//! The MeshPassthrough `spec` as Kuma 2.9 to 2.14 write it (`meshpassthrough.go`): a policy's
//! `targetRef` and its `default`. Enumerations are kept as the strings written, as Kuma's Go
//! types do: Kuma's validator, not the reader, says which values it takes, in its own words.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use crate::selectors::TargetRef;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshPassthroughSpec {
    /// Unset selects every proxy of the mesh, as `kind: Mesh`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    pub default: Conf,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    /// `All`, `Matched` or `None`; unset is `Matched` (see [`PassthroughMode::of`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_match: Option<Vec<Match>>,
}

/// One destination let through.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    /// `Domain`, `IP` or `CIDR`.
    #[serde(rename = "type", deserialize_with = "scalar")]
    pub kind: String,
    #[serde(deserialize_with = "scalar")]
    pub value: String,
    /// Unset: every port. Kuma 2.9 reads an `int`, 2.10+ a `uint32`: a value out of 1-65535
    /// is the validator's to refuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// `tcp`, `tls`, `grpc`, `http`, `http2`, or (2.10+) `mysql`; unset is `tcp`
    /// ([`MeshPassthroughSpec::with_defaults`]).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_scalar"
    )]
    pub protocol: Option<String>,
}

/// The `passthroughMode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassthroughMode {
    /// Every destination, `appendMatch` ignored.
    All,
    /// Only the `appendMatch` destinations.
    Matched,
    /// No destination, `appendMatch` ignored.
    None,
}

impl PassthroughMode {
    pub const NAMES: [&str; 3] = ["All", "Matched", "None"];

    /// The mode a valid `passthroughMode` names; unset is `Matched`, as Kuma 2.10+ documents
    /// and as Kuma 2.9's plugin treats a nil mode. (Kuma 2.9's Kubernetes CRD alone filled in
    /// `None`, which made `appendMatch` do nothing; 2.10 removed that default, and one meaning
    /// for both forms is kept here.)
    pub fn of(written: Option<&str>) -> Option<PassthroughMode> {
        match written {
            None | Some("Matched") => Some(PassthroughMode::Matched),
            Some("All") => Some(PassthroughMode::All),
            Some("None") => Some(PassthroughMode::None),
            Some(_) => None,
        }
    }
}

impl MeshPassthroughSpec {
    /// What Kuma 2.10+ fills in from its schema, on Kubernetes (the CRD) and in Universal
    /// (the API server's defaulting, #12829): a match's `protocol` left out is `tcp`. Kuma 2.9
    /// did so on Kubernetes only, and its validator refused a Universal match without one;
    /// what either accepts is accepted, so both forms take the default.
    pub fn with_defaults(mut self) -> Self {
        for m in self.default.append_match.iter_mut().flatten() {
            m.protocol.get_or_insert_with(|| "tcp".into());
        }
        self
    }

    /// The matches, in the order written.
    pub fn matches(&self) -> &[Match] {
        self.default.append_match.as_deref().unwrap_or_default()
    }
}

/// A string field as Kuma reads YAML (`sigs.k8s.io/yaml` into a Go string): a number or a
/// boolean written there is read as its text, for the validator to judge.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(optional_scalar(d)?.unwrap_or_default())
}

fn optional_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(serde::de::Error::invalid_type(
            match other {
                Value::Array(_) => serde::de::Unexpected::Seq,
                _ => serde::de::Unexpected::Map,
            },
            &"a string",
        )),
    }
}
