//! The filter in an HTTP connection manager, and its plugin configuration: the model's
//! own `PluginConfig`, so what the generator writes is what the filter reads.

use external_service_model::config::PluginConfig;
use external_service_model::contract::FILTER_NAME;
use external_service_model::resource::{Resource, Spec};

use crate::envoy::{
    self, AsyncDataSource, DataSource, Extension, FailurePolicy, HttpFilter, HttpFilterConfig,
    PluginConfiguration, StringValue, VmConfig, Wasm,
};

use super::Context;

/// The plugin configuration: the served mesh's Mesh and ExternalServices, without TLS key and
/// certificate material (the filter never needs it, and secrets stay out of it); no Secrets, no
/// Dataplanes. `service` binds the filter to one service (a Dataplane outbound listener).
pub fn plugin_config(ctx: &Context<'_>, service: Option<&str>) -> PluginConfig {
    let resources = ctx
        .resources
        .iter()
        .filter(|r| r.mesh == ctx.mesh())
        .filter_map(for_filter)
        .map(|r| r.to_universal())
        .collect();
    PluginConfig {
        resources,
        mesh: Some(ctx.mesh().to_string()),
        service: service.map(str::to_string),
    }
}

fn for_filter(resource: &Resource) -> Option<Resource> {
    match &resource.spec {
        Spec::Mesh(_) => Some(resource.clone()),
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
        Spec::Secret(_) | Spec::Dataplane(_) => None,
    }
}

/// The HTTP filter. A configuration the filter refuses stops Envoy from starting, whatever
/// the policy; FAIL_RELOAD answers 503 to a request whose VM crashed and reloads the VM, where
/// FAIL_CLOSED would answer 503 to every later request until a restart (ENVOY_FACTS.md, e).
pub fn http_filter(ctx: &Context<'_>, service: Option<&str>) -> HttpFilter {
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
