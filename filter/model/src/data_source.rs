//! Kuma's DataSource as the checks and `extsvc` read it: the one way it gives its bytes, the
//! Secret it names, and base64 as Kuma writes it. Pure; files are read by `extsvc`.

use base64::Engine as _;

use crate::resource::{DataSource, Resource, Source, Spec};

/// Base64 as Kuma writes it (standard alphabet, padded); line breaks are tolerated.
pub fn decode_base64(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = data.split_ascii_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// The one way a DataSource gives its bytes, if it sets exactly one.
pub fn single_source(ds: &DataSource) -> Option<Source<'_>> {
    match ds.sources().as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The Secret named `name` in `mesh`, if any.
pub fn find_secret<'r>(resources: &'r [Resource], mesh: &str, name: &str) -> Option<&'r str> {
    resources.iter().find_map(|r| match &r.spec {
        Spec::Secret(s) if r.mesh == mesh && r.name == name => Some(s.data.as_str()),
        _ => None,
    })
}
