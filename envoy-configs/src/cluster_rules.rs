//! What this generator cannot build: it makes one Envoy cluster per `kuma.io/service`, so the
//! endpoints of a service must agree on their kind and TLS settings ([`endpoints`]: Kuma
//! accepts such files, so `validate` warns and `generate` refuses), and one route per HTTP
//! service, so no two may be forwarded with one authority ([`routes`]: both refuse).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use external_service_model::address;
use external_service_model::catalog::Catalog;
use external_service_model::resource::{ExternalServiceSpec, Resource};
use external_service_model::validate::external_services;
use external_service_model::Violation;

/// What Kuma accepts but one Envoy cluster per `kuma.io/service` cannot hold: endpoints of one
/// service mixing IP addresses and host names (STATIC vs STRICT_DNS), or differing in TLS
/// settings. The generator relies on this; the filter does not care. Aligned with `resources`.
pub fn endpoints(resources: &[Resource]) -> Vec<Vec<Violation>> {
    let mut out = vec![Vec::new(); resources.len()];
    let mut first_of: HashMap<(&str, &str), (&Resource, &ExternalServiceSpec)> = HashMap::new();
    for (i, r, es) in external_services(resources) {
        let (Some(service), Some(net)) = (es.service(), &es.networking) else {
            continue;
        };
        let Some(&(first, first_es)) = first_of.get(&(r.mesh.as_str(), service)) else {
            first_of.insert((r.mesh.as_str(), service), (r, es));
            continue;
        };
        let first_net = first_es.networking.clone().unwrap_or_default();
        let is_ip = |address: &str| address::parse(address).map(|a| a.host.is_ip());
        if let (Ok(a), Ok(b)) = (is_ip(&net.address), is_ip(&first_net.address)) {
            if a != b {
                out[i].push(Violation::new(
                    "networking.address",
                    format!(
                        "ExternalService {:?} has the same kuma.io/service {service:?} with {}: \
                         one Envoy cluster cannot mix IP addresses and host names",
                        first.name,
                        if b { "an IP address" } else { "a host name" }
                    ),
                ));
            }
        }
        if net.tls != first_net.tls {
            out[i].push(Violation::new(
                "networking.tls",
                format!(
                    "must match ExternalService {:?}, which has the same kuma.io/service {service:?}: \
                     the endpoints of one Envoy cluster share their TLS settings",
                    first.name
                ),
            ));
        }
    }
    out
}

/// Two HTTP services that the filter sends to the same authority: no route can tell them
/// apart. Reported on the first ExternalService of the second service. Aligned with
/// `resources`.
pub fn routes(resources: &[Resource]) -> Vec<Vec<Violation>> {
    let mut out = vec![Vec::new(); resources.len()];
    let meshes: BTreeSet<&str> = external_services(resources)
        .map(|(_, r, _)| r.mesh.as_str())
        .collect();
    for mesh in meshes {
        let catalog = Catalog::build(resources, mesh);
        let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
        for service in catalog.services.iter().filter(|s| s.protocol.is_http()) {
            let Some(other) = owners.insert(&service.authority, &service.name) else {
                continue;
            };
            let first = service.endpoints.first().map(|e| e.resource.as_str());
            let at = external_services(resources)
                .find(|(_, r, _)| r.mesh == mesh && Some(r.name.as_str()) == first);
            if let Some((i, _, _)) = at {
                out[i].push(Violation::new(
                    "networking.address",
                    format!(
                        "services {other:?} and {:?} are both forwarded with authority {:?}, so \
                         no route can tell them apart; give one of them another port or set \
                         disableHostDNSEntry on it",
                        service.name, service.authority
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use external_service_model::config::check as check_documents;
    use external_service_model::Origin;
    use serde_json::json;

    #[test]
    fn one_cluster_per_service_needs_one_kind_of_endpoint() {
        let es = |name: &str, address: &str| {
            json!({"type": "ExternalService", "mesh": "default", "name": name,
                   "tags": {"kuma.io/service": "backend"}, "networking": {"address": address}})
        };
        let documents = vec![
            es("es-1", "192.168.0.1:8080"),
            es("es-2", "example.com:8080"),
        ];
        let checked = check_documents(Origin::in_file("test.json", documents), None);
        assert!(checked.is_valid(), "Kuma accepts this");
        let found = super::endpoints(&checked.resources);
        assert_eq!(found[0], Vec::new());
        assert!(found[1][0]
            .message
            .contains("cannot mix IP addresses and host names"));
    }
}
