//! Whose Envoy a run makes: one for the whole mesh (every Dataplane's outbounds: the
//! default), one Dataplane's (`--dataplane NAME`), or a ZoneEgress's (`--zone-egress NAME`);
//! and the resources each is found by.

use external_service_model::resource::{
    DataplaneSpec, Kind, MeshSpec, Resource, Spec, ZoneEgressSpec,
};
use external_service_model::Report;

/// Whose Envoy this is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Role {
    /// One Envoy for the apps of the whole mesh: every Dataplane's outbounds.
    #[default]
    Mesh,
    /// The sidecar of the Dataplane of this name, in the served mesh.
    Dataplane(String),
    /// The ZoneEgress of this name: the mesh's external traffic leaves through it.
    ZoneEgress(String),
}

/// The Dataplane `name` of `mesh`, or what there is instead.
pub fn dataplane<'r>(
    resources: &'r [Resource],
    mesh: &str,
    name: &str,
) -> Result<(&'r Resource, &'r DataplaneSpec), String> {
    let dataplanes: Vec<(&Resource, &DataplaneSpec)> = resources
        .iter()
        .filter(|r| r.mesh == mesh)
        .filter_map(|r| match &r.spec {
            Spec::Dataplane(dp) => Some((r, dp)),
            _ => None,
        })
        .collect();
    dataplanes
        .iter()
        .find(|(r, _)| r.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = dataplanes.iter().map(|(r, _)| r.name.as_str()).collect();
            not_found(Kind::Dataplane, name, &format!(" in mesh {mesh:?}"), &names)
        })
}

/// Every ZoneEgress, in the order written.
pub fn zone_egresses(resources: &[Resource]) -> Vec<(&Resource, &ZoneEgressSpec)> {
    resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::ZoneEgress(egress) => Some((r, egress)),
            _ => None,
        })
        .collect()
}

/// The ZoneEgress `name`, or what there is instead.
pub fn zone_egress<'r>(
    resources: &'r [Resource],
    name: &str,
) -> Result<(&'r Resource, &'r ZoneEgressSpec), String> {
    let egresses = zone_egresses(resources);
    egresses
        .iter()
        .find(|(r, _)| r.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = egresses.iter().map(|(r, _)| r.name.as_str()).collect();
            not_found(Kind::ZoneEgress, name, "", &names)
        })
}

/// The Mesh resource of `mesh`, when the resources have one.
pub fn mesh<'r>(resources: &'r [Resource], mesh: &str) -> Option<(&'r Resource, &'r MeshSpec)> {
    resources.iter().find_map(|r| match &r.spec {
        Spec::Mesh(spec) if r.name == mesh => Some((r, spec)),
        _ => None,
    })
}

/// `file: Kind "name" (mesh "m"): field: message`: a fault of one field of one resource.
pub fn fault(resource: &Resource, field: &str, message: &str) -> String {
    format!(
        "{}: {field}: {message}",
        Report::of(resource, Vec::new()).heading()
    )
}

fn not_found(kind: Kind, name: &str, place: &str, names: &[&str]) -> String {
    let there = if names.is_empty() {
        "there is none".to_string()
    } else {
        let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        format!("there are {}", quoted.join(", "))
    };
    format!("no {kind} {name:?}{place}: {there}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::Fixture;

    const RESOURCES: &str = "type: Dataplane\nmesh: default\nname: web\nnetworking:\n  \
                             address: 127.0.0.1\n  inbound: [{port: 80, tags: {kuma.io/service: web}}]\n\
                             ---\ntype: Dataplane\nmesh: other\nname: batch\nnetworking:\n  \
                             address: 127.0.0.1\n  inbound: [{port: 80, tags: {kuma.io/service: batch}}]\n\
                             ---\ntype: ZoneEgress\nname: egress-1\nnetworking: {address: 127.0.0.1, port: 10002}\n";

    #[test]
    fn a_name_not_found_is_told_with_what_there_is() {
        let f = Fixture::new(RESOURCES);
        assert_eq!(
            dataplane(&f.resources, "default", "web").unwrap().0.name,
            "web"
        );
        assert_eq!(
            dataplane(&f.resources, "default", "batch").unwrap_err(),
            "no Dataplane \"batch\" in mesh \"default\": there are \"web\""
        );
        assert_eq!(
            dataplane(&f.resources, "third", "web").unwrap_err(),
            "no Dataplane \"web\" in mesh \"third\": there is none"
        );
        assert_eq!(
            zone_egress(&f.resources, "egress-1")
                .unwrap()
                .1
                .networking
                .port,
            10002
        );
        assert_eq!(
            zone_egress(&f.resources, "egress-2").unwrap_err(),
            "no ZoneEgress \"egress-2\": there are \"egress-1\""
        );
    }
}
