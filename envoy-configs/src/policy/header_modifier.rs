//! Kuma's HeaderModifier, which several kinds share (MeshRateLimit on a refused request,
//! MeshHealthCheck on its requests), and its Envoy form.

use serde::Deserialize;

use crate::envoy::{AppendAction, HeaderValue, HeaderValueOption};

/// Headers to add or set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderModifier {
    pub add: Option<Vec<Header>>,
    pub set: Option<Vec<Header>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl HeaderModifier {
    /// `add` appends (Envoy's default), `set` overwrites.
    pub fn to_envoy(&self) -> Vec<HeaderValueOption> {
        let added = self.add.iter().flatten().map(|h| h.to_envoy(None));
        let set = self
            .set
            .iter()
            .flatten()
            .map(|h| h.to_envoy(Some(AppendAction::OverwriteIfExistsOrAdd)));
        added.chain(set).collect()
    }
}

impl Header {
    fn to_envoy(&self, append_action: Option<AppendAction>) -> HeaderValueOption {
        HeaderValueOption {
            header: HeaderValue {
                key: self.name.clone(),
                value: self.value.clone(),
            },
            append_action,
        }
    }
}
