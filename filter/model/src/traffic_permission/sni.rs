//! The SNI a sidecar presents to the egress for a service, in Kuma's format for its kind
//! (`pkg/xds/envoy/tls/sni.go`, 2.9.0): the egress routes by it, and MeshTrafficPermission
//! `rules` name a destination by it.

/// An ExternalService by its `kuma.io/service`: `<service>{mesh=<mesh>}` (Kuma's
/// `SNIFromTags` of the service and its mesh tag). Not a DNS name, so no `sni` match can name
/// it.
pub fn external_service(service: &str, mesh: &str) -> String {
    format!("{service}{{mesh={mesh}}}")
}

/// Kuma's limit of a DNS label, less the `x` that marks a name cut short.
const LABEL: usize = 62;

/// A MeshExternalService by its display name (its `kuma.io/display-name` label, else its
/// name) and `match.port`: `a<fnv-1a 64 of "<name>;<mesh>;">.<name>.<port>.<mesh>.mes`
/// (Kuma's `SNIForResource`, format version `a`), a name or mesh longer than 62 characters
/// cut to 62 and marked with `x`.
pub fn mesh_external_service(name: &str, mesh: &str, port: u16) -> String {
    let hash = fnv1a64(format!("{name};{mesh};").as_bytes());
    format!("a{hash:016x}.{}.{port}.{}.mes", label(name), label(mesh))
}

fn label(name: &str) -> String {
    if name.len() <= LABEL {
        return name.to_string();
    }
    // Cut as Kuma cuts, by bytes.
    format!("{}x", String::from_utf8_lossy(&name.as_bytes()[..LABEL]))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kuma's own case (`sni_test.go`, "simple"), for a MeshService there; only the suffix
    /// differs for a MeshExternalService.
    #[test]
    fn a_mesh_external_service_sni_is_kumas() {
        assert_eq!(
            mesh_external_service("backend", "demo", 8080),
            "ae10a8071b8a8eeb8.backend.8080.demo.mes"
        );
    }

    #[test]
    fn long_names_are_cut_to_a_dns_label_and_marked() {
        let long = format!("{}-qwe", "a".repeat(62));
        let sni = mesh_external_service(&long, "demo", 443);
        let labels: Vec<&str> = sni.split('.').collect();
        assert_eq!(labels[1], format!("{}x", "a".repeat(62)));
        assert_eq!(labels[1].len(), 63);
        // The hash is of the whole name: two names cut alike still differ.
        let other = format!("{}-rty", "a".repeat(62));
        assert_ne!(sni, mesh_external_service(&other, "demo", 443));
    }

    #[test]
    fn an_external_service_sni_names_its_mesh() {
        assert_eq!(
            external_service("httpbin", "default"),
            "httpbin{mesh=default}"
        );
    }
}
