//! TLS origination: an `UpstreamTlsContext` that verifies the server (the given CA, else the
//! system store) and its name, unless the user spells out otherwise.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::resolve::{self, Material};
use base64::Engine as _;
use external_service_model::address::Host;
use external_service_model::catalog::Service;
use external_service_model::resource::{DataSource, Tls};
use serde_json::{json, Map, Value};

use super::{protocol, Context, Error};

pub struct Built {
    pub transport_socket: Value,
    pub inline_private_key: bool,
}

/// The transport socket for the endpoints on `host`.
pub fn upstream(
    ctx: &Context<'_>,
    service: &Service,
    tls: &Tls,
    host: &Host,
) -> Result<Built, Error> {
    let sni = sni(tls, host);
    let mut common = Map::new();
    common.insert(
        "tls_params".into(),
        // Envoy's upstream default stops at TLS 1.2.
        json!({
            "tls_minimum_protocol_version": "TLSv1_2",
            "tls_maximum_protocol_version": "TLSv1_3",
        }),
    );
    if let Some(alpn) = protocol::alpn(service.protocol) {
        common.insert("alpn_protocols".into(), json!([alpn]));
    }
    let mut inline_private_key = false;
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let key = data_source(ctx, service, "clientKey", key)?;
            inline_private_key = key.get("filename").is_none();
            common.insert(
                "tls_certificates".into(),
                json!([{
                    "certificate_chain": data_source(ctx, service, "clientCert", cert)?,
                    "private_key": key,
                }]),
            );
        }
        (None, None) => {}
        // Validation refuses one without the other.
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::DataSource {
                service: service.name.clone(),
                resource: resource(service),
                field: "clientKey",
                message: "clientCert and clientKey go together".into(),
            })
        }
    }
    let mut validation = Map::new();
    validation.insert(
        "trusted_ca".into(),
        match &tls.ca_cert {
            Some(ca) => data_source(ctx, service, "caCert", ca)?,
            None => json!({"filename": absolute(&ctx.options.system_ca)}),
        },
    );
    if !tls.skip_hostname_verification {
        let expected = sni.clone().unwrap_or_else(|| bare(host));
        let san_type = if expected.parse::<IpAddr>().is_ok() {
            "IP_ADDRESS"
        } else {
            "DNS"
        };
        validation.insert(
            "match_typed_subject_alt_names".into(),
            json!([{"san_type": san_type, "matcher": {"exact": expected}}]),
        );
    }
    common.insert("validation_context".into(), Value::Object(validation));

    let mut context = Map::new();
    context.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"),
    );
    if let Some(sni) = sni {
        context.insert("sni".into(), json!(sni));
    }
    if tls.allow_renegotiation {
        context.insert("allow_renegotiation".into(), json!(true));
    }
    context.insert("common_tls_context".into(), Value::Object(common));
    Ok(Built {
        transport_socket: json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": context,
        }),
        inline_private_key,
    })
}

/// `serverName`, else the host when it is a name: no SNI for an IP.
fn sni(tls: &Tls, host: &Host) -> Option<String> {
    match (&tls.server_name, host) {
        (Some(name), _) => Some(name.clone()),
        (None, Host::Name(name)) => Some(name.clone()),
        (None, Host::Ip(_)) => None,
    }
}

fn bare(host: &Host) -> String {
    match host {
        Host::Name(n) => n.clone(),
        Host::Ip(ip) => ip.to_string(),
    }
}

/// The ExternalService that declared the service's (shared) TLS settings.
fn resource(service: &Service) -> String {
    service
        .endpoints
        .first()
        .map(|e| e.resource.clone())
        .unwrap_or_default()
}

/// An Envoy DataSource: inline bytes as text when they are text, a file by its absolute path.
fn data_source(
    ctx: &Context<'_>,
    service: &Service,
    field: &'static str,
    ds: &DataSource,
) -> Result<Value, Error> {
    let material =
        resolve::material(ds, ctx.mesh(), ctx.resources).map_err(|message| Error::DataSource {
            service: service.name.clone(),
            resource: resource(service),
            field,
            message,
        })?;
    Ok(match material {
        Material::Inline(bytes) => match String::from_utf8(bytes) {
            Ok(text) => json!({"inline_string": text}),
            Err(e) => json!({
                "inline_bytes": base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            }),
        },
        Material::File(path) => json!({"filename": absolute(&path)}),
    })
}

/// Envoy reads files relative to its own working directory; `validate` read them relative to
/// ours.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}
