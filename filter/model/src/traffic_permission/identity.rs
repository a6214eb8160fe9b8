//! A caller's identity as Kuma's certificates carry it.
//! Kuma (`pkg/xds/envoy/tls`, `ServiceSpiffeIDMatcher`, `KumaIDMatcher`) gives a data plane
//! the URI SAN `spiffe://<mesh>/<kuma.io/service>` and `kuma://<tag>/<value>` for each other
//! tag, and matches them so in RBAC principals. A SPIFFE ID a policy writes is judged as
//! go-spiffe judges it (`spiffe_id_problem`).

use std::collections::BTreeMap;

use crate::resource::SERVICE_TAG;

/// `spiffe://<mesh>/<service>`: the SPIFFE ID of a service of a mesh.
pub fn spiffe_id(mesh: &str, service: &str) -> String {
    format!("spiffe://{mesh}/{service}")
}

/// `kuma://<tag>/<value>`: a tag other than `kuma.io/service`, as a URI SAN.
pub fn kuma_uri(tag: &str, value: &str) -> String {
    format!("kuma://{tag}/{value}")
}

/// The URI SANs of a certificate for a caller of `mesh` with `tags`, in tag order.
pub fn uri_sans(mesh: &str, tags: &BTreeMap<String, String>) -> Vec<String> {
    tags.iter()
        .map(|(tag, value)| match tag.as_str() {
            SERVICE_TAG => spiffe_id(mesh, value),
            _ => kuma_uri(tag, value),
        })
        .collect()
}

/// go-spiffe's `spiffeid.FromString` (v2.6.0, the version Kuma 2.14 uses): `Ok` for a valid
/// SPIFFE ID, else the reason in its words.
pub fn spiffe_id_problem(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("cannot be empty");
    }
    let rest = id
        .strip_prefix("spiffe://")
        .ok_or("scheme is missing or invalid")?;
    let trust_domain_end = rest.find('/').unwrap_or(rest.len());
    let trust_domain_char =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b);
    if !rest[..trust_domain_end].bytes().all(trust_domain_char) {
        return Err("trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores");
    }
    if trust_domain_end == 0 {
        return Err("trust domain is missing");
    }
    path_problem(&rest[trust_domain_end..])
}

/// go-spiffe's `ValidatePath` of a path that is empty or starts with `/`.
fn path_problem(path: &str) -> Result<(), &'static str> {
    let segment_char = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" if last => return Err("path cannot have a trailing slash"),
            "" => return Err("path cannot contain empty segments"),
            "." | ".." => return Err("path cannot contain dot segments"),
            _ if !segment.bytes().all(segment_char) => {
                return Err(
                    "path segment characters are limited to letters, numbers, dots, dashes, and underscores",
                )
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_are_judged_as_go_spiffe_judges_them() {
        let cases = [
            ("spiffe://trust.domain", Ok(())),
            ("spiffe://default/web", Ok(())),
            ("spiffe://default/ns/backend-ns/sa/backend", Ok(())),
            ("", Err("cannot be empty")),
            ("some-service", Err("scheme is missing or invalid")),
            ("SPIFFE://default/web", Err("scheme is missing or invalid")),
            ("spiffe://", Err("trust domain is missing")),
            ("spiffe:///web", Err("trust domain is missing")),
            ("spiffe://Default/web", Err("trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores")),
            ("spiffe://default/", Err("path cannot have a trailing slash")),
            ("spiffe://default//web", Err("path cannot contain empty segments")),
            ("spiffe://default/./web", Err("path cannot contain dot segments")),
            ("spiffe://default/web/..", Err("path cannot contain dot segments")),
            ("spiffe://default/web:80", Err("path segment characters are limited to letters, numbers, dots, dashes, and underscores")),
        ];
        for (id, want) in cases {
            assert_eq!(spiffe_id_problem(id), want, "{id:?}");
        }
    }
}
