//! The error-collecting reader: one typed reading of a spec that reports every field at
//! fault, each with its path, instead of serde's first error alone.

use serde_json::Value;

use crate::violation::Violation;

/// One reading, with the field path kept for a report of a spec at fault. serde stops at the
/// first error, so each field at fault is taken out and the rest read again: every field at
/// fault is reported, unknown or of the wrong type (every field has a default, so taking one
/// out causes no error).
pub fn typed<T: serde::de::DeserializeOwned>(mut body: Value) -> Result<T, Vec<Violation>> {
    let mut found = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(&body) {
            Ok(spec) if found.is_empty() => return Ok(spec),
            Ok(_) => return Err(found),
            Err(e) => e,
        };
        let path = error.path().clone();
        let field = match path.to_string() {
            root if root == "." => String::new(),
            field => field,
        };
        found.push(Violation::new(field, error.into_inner().to_string()));
        if !remove_at(&mut body, &path) {
            return Err(found);
        }
    }
}

/// Takes out the value at `path`; false when there is none (so reading again cannot help).
fn remove_at(body: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = body;
    for segment in parents {
        let next = match (segment, at) {
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key.as_str()),
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    match (last, at) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// [`typed`], tried first without paths, for the kind that comes by the thousand
/// (ExternalService): tracking paths costs an allocation per field, a third of reading 10,000
/// services. A spec at fault is read again by [`typed`], so its report is the same. Not for
/// every kind: each kind read so carries a second copy of its deserialiser in the module
/// (all kinds: +105 KB, 17%, which Envoy's start-up pays compiling it; ExternalService
/// alone: +11 KB).
pub fn typed_at_first_try<T: serde::de::DeserializeOwned>(
    body: Value,
) -> Result<T, Vec<Violation>> {
    match T::deserialize(&body) {
        Ok(spec) => Ok(spec),
        Err(_) => typed(body),
    }
}
