//! The filter in an HTTP connection manager, and its plugin configuration: the model's
//! own `PluginConfig`, so what the generator writes is what the filter reads.

use external_service_model::catalog::Service;
use external_service_model::config::PluginConfig;
use external_service_model::contract::FILTER_NAME;
use external_service_model::resource::{Kind, Resource, Spec};

use crate::envoy::{
    self, AsyncDataSource, DataSource, Extension, FailurePolicy, HttpFilter, HttpFilterConfig,
    PluginConfiguration, StringValue, VmConfig, Wasm,
};

use super::Context;
use crate::role::Role;

/// The plugin configuration: the served mesh's Mesh, ExternalServices and
/// MeshExternalServices, its MeshPassthroughs (only where no service is bound: a bound filter
/// lets nothing pass through), and the HostnameGenerators, without TLS key and certificate material
/// (the filter never needs it, and secrets stay out of it); no Secrets, no Dataplanes but a
/// sidecar's own (its inbounds), and then the mesh's traffic permissions.
/// `service` binds the filter to one service (a Dataplane outbound or VIP listener), whose
/// configuration then holds that service's resources alone: one listener per service must
/// not each carry every service.
pub fn plugin_config(ctx: &Context<'_>, service: Option<&Service>) -> PluginConfig {
    let dataplane = match &ctx.options.role {
        Role::Dataplane(name) => Some(name.as_str()),
        Role::Mesh | Role::ZoneEgress(_) => None,
    };
    let resources = ctx
        .resources
        .iter()
        .filter(|r| r.mesh == ctx.mesh() || r.kind() == Kind::HostnameGenerator)
        .filter(|r| match (&r.spec, service) {
            (Spec::ExternalService(es), Some(bound)) => {
                bound.kind == Kind::ExternalService && es.service() == Some(bound.name.as_str())
            }
            (Spec::MeshExternalService(_), Some(bound)) => {
                bound.kind == Kind::MeshExternalService && r.name == bound.name
            }
            (Spec::MeshPassthrough(_), Some(_)) => false,
            _ => true,
        })
        .filter_map(|r| for_filter(r, dataplane))
        .map(|r| r.to_universal())
        .collect();
    let bound = |kind: Kind| service.filter(|s| s.kind == kind).map(|s| s.name.clone());
    PluginConfig {
        resources,
        mesh: Some(ctx.mesh().to_string()),
        service: bound(Kind::ExternalService),
        mesh_external_service: bound(Kind::MeshExternalService),
        dataplane: dataplane.map(str::to_string),
    }
}

/// What the filter is given of a resource. `dataplane` names the sidecar's own Dataplane,
/// whose inbound tags (who it is) and the mesh's permissions decide what it may reach.
fn for_filter(resource: &Resource, dataplane: Option<&str>) -> Option<Resource> {
    match &resource.spec {
        Spec::HostnameGenerator(_) | Spec::MeshPassthrough(_) => Some(resource.clone()),
        Spec::MeshTrafficPermission(_) | Spec::TrafficPermission(_) if dataplane.is_some() => {
            Some(resource.clone())
        }
        // Its outbounds name services a bound filter is not given: the inbounds say who it is.
        Spec::Dataplane(dp) if dataplane == Some(resource.name.as_str()) => {
            let mut dp = dp.clone();
            dp.networking.outbound.clear();
            Some(Resource {
                spec: Spec::Dataplane(dp),
                ..resource.clone()
            })
        }
        // The CA's certificate and key stay out: the filter needs only whether mTLS is on.
        Spec::Mesh(mesh) => {
            let mut mesh = mesh.clone();
            for backend in mesh.mtls.iter_mut().flat_map(|m| m.backends.iter_mut()) {
                backend.conf = None;
            }
            Some(Resource {
                spec: Spec::Mesh(mesh),
                ..resource.clone()
            })
        }
        Spec::MeshExternalService(mes) => {
            let mut mes = mes.clone();
            if let Some(v) = mes.tls.as_mut().and_then(|t| t.verification.as_mut()) {
                v.ca_cert = None;
                v.client_cert = None;
                v.client_key = None;
            }
            Some(Resource {
                spec: Spec::MeshExternalService(mes),
                ..resource.clone()
            })
        }
        Spec::ExternalService(es) => {
            let mut es = es.clone();
            if let Some(tls) = es.networking.as_mut().and_then(|n| n.tls.as_mut()) {
                tls.ca_cert = None;
                tls.client_cert = None;
                tls.client_key = None;
            }
            Some(Resource {
                spec: Spec::ExternalService(es),
                ..resource.clone()
            })
        }
        Spec::Secret(_)
        | Spec::Dataplane(_)
        | Spec::ZoneEgress(_)
        | Spec::MeshTrafficPermission(_)
        | Spec::TrafficPermission(_)
        | Spec::Policy { .. } => None,
    }
}

/// The HTTP filter. A configuration the filter refuses stops Envoy from starting, whatever
/// the policy; FAIL_RELOAD answers 503 to a request whose VM crashed and reloads the VM, where
/// FAIL_CLOSED would answer 503 to every later request until a restart (ENVOY_FACTS.md, e).
pub fn http_filter(ctx: &Context<'_>, service: Option<&Service>) -> HttpFilter {
    let config = plugin_config(ctx, service);
    // PluginConfig holds only strings and JSON values: serialising cannot fail.
    let text = serde_json::to_string_pretty(&config).unwrap_or_default();
    Extension {
        name: FILTER_NAME,
        typed_config: HttpFilterConfig::Wasm(Wasm {
            config: envoy::PluginConfig {
                name: FILTER_NAME,
                vm_config: VmConfig {
                    vm_id: FILTER_NAME,
                    runtime: "envoy.wasm.runtime.v8",
                    code: AsyncDataSource {
                        local: DataSource::Filename(ctx.options.wasm.display().to_string()),
                    },
                },
                configuration: PluginConfiguration::String(StringValue { value: text + "\n" }),
                failure_policy: FailurePolicy::FailReload,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{assert_cases, service, yaml, yaml_eliding, Fixture};

    #[test]
    fn the_filter_and_its_configuration() {
        let f = Fixture::new(
            &[
                "type: Mesh\nname: default\n---\n",
                "type: Secret\nmesh: default\nname: key\ndata: S0VZ\n---\n",
                &service(
                    "api",
                    "http",
                    "{address: api.test:443, tls: {serverName: api.test, \
                     caCert: {inlineString: CA}, clientCert: {inlineString: CERT}, \
                     clientKey: {secret: key}}}",
                ),
                "type: Dataplane\nmesh: default\nname: dp\n\
                 networking: {address: 127.0.0.1, outbound: [{port: 10000, \
                 tags: {kuma.io/service: api}}]}\n---\n",
                &service("web", "http", "{address: web.test:80}"),
                "type: ExternalService\nmesh: other\nname: elsewhere\n\
                 tags: {kuma.io/service: elsewhere}\nnetworking: {address: elsewhere.test:80}\n",
            ]
            .concat(),
        );
        // Both plugin configurations begin with the Mesh and `api`, its TLS material left out.
        const MESH_AND_API: &str = "
resources:
- type: Mesh
  name: default
- type: ExternalService
  name: api
  mesh: default
  tags:
    kuma.io/protocol: http
    kuma.io/service: api
  networking:
    address: api.test:443
    tls:
      serverName: api.test
";
        assert_cases(&[
            (
                "the served mesh's Mesh and ExternalServices, without TLS material",
                yaml(&plugin_config(&f.ctx(), None)),
                &format!(
                    "{MESH_AND_API}\
- type: ExternalService
  name: web
  mesh: default
  tags:
    kuma.io/protocol: http
    kuma.io/service: web
  networking:
    address: web.test:80
mesh: default
"
                ),
            ),
            (
                "bound to one service (a Dataplane outbound): its own ExternalServices alone",
                yaml(&plugin_config(&f.ctx(), Some(f.service("api")))),
                &format!("{MESH_AND_API}mesh: default\nservice: api\n"),
            ),
            (
                "the wasm filter, failing closed",
                yaml_eliding(
                    &http_filter(&f.ctx(), None),
                    &["/typed_config/config/configuration/value"],
                ),
                "
name: external_service
typed_config:
  '@type': type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
  config:
    name: external_service
    vm_config:
      vm_id: external_service
      runtime: envoy.wasm.runtime.v8
      code:
        local:
          filename: /filter.wasm
    configuration:
      '@type': type.googleapis.com/google.protobuf.StringValue
      value: <elided>
    failure_policy: FAIL_RELOAD
",
            ),
        ]);
        // The value is the plugin configuration as JSON, which the filter reads back.
        let filter = serde_json::to_value(http_filter(&f.ctx(), Some(f.service("api")))).unwrap();
        let value = &filter["typed_config"]["config"]["configuration"]["value"];
        let text = value.as_str().unwrap();
        let read = external_service_model::config::configure(text.as_bytes()).unwrap();
        assert!(read.bound.is_some(), "{text}");
        assert_eq!(read.catalog.services[0].name, "api", "{text}");
        assert!(text.ends_with("}\n"), "{text}");
    }

    #[test]
    fn the_mesh_ca_stays_out_of_the_filter() {
        let f = Fixture::new(&[
            "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca\n  backends:\n  - name: ca\n    \
             type: provided\n    dpCert: {rotation: {expiration: 1h}}\n    conf:\n      \
             cert: {inlineString: CA-CERT}\n      key: {inlineString: CA-KEY}\n---\n",
            &service("web", "http", "{address: web.test:80}"),
        ]
        .concat());
        let text = yaml(&plugin_config(&f.ctx(), None));
        assert!(
            !text.contains("CA-KEY") && !text.contains("CA-CERT"),
            "{text}"
        );
        assert!(text.contains("enabledBackend: ca"), "{text}");
        let read = external_service_model::config::configure(
            serde_json::to_string(&plugin_config(&f.ctx(), None))
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(read.catalog.services[0].name, "web");
    }
}
