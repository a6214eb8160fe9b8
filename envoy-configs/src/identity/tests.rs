#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::generate::test_support::Fixture;

/// A self-signed certificate and its PKCS#8 key: a CA as Kuma wants one, or not.
fn authority(is_ca: bool, usages: Vec<KeyUsagePurpose>) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = if is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    params.key_usages = usages;
    let key = KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

fn good_ca() -> (String, String) {
    authority(
        true,
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    )
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Mesh `default` with a `provided` CA given inline, the `dpCert` block as written, and more
/// resources after it.
fn mesh_with(cert: &str, key: &str, dp_cert: &str, more: &str) -> String {
    format!(
        "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca\n  backends:\n  - name: ca\n    \
         type: provided\n{dp_cert}    conf:\n      cert: {{inline: {}}}\n      \
         key: {{inline: {}}}\n---\n{more}",
        b64(cert),
        b64(key)
    )
}

fn violations(resources: &str) -> Vec<(String, String)> {
    let f = Fixture::new(resources);
    check(&f.resources, &f.resolved)
        .into_iter()
        .flatten()
        .map(|v| (v.field, v.message))
        .collect()
}

fn pair(field: &str, message: &str) -> (String, String) {
    (field.to_string(), message.to_string())
}

#[test]
fn the_provided_ca_is_checked_in_kumas_words() {
    let (cert, key) = good_ca();
    assert_eq!(violations(&mesh_with(&cert, &key, "", "")), []);

    let (leaf, leaf_key) = authority(false, vec![KeyUsagePurpose::DigitalSignature]);
    assert_eq!(
        violations(&mesh_with(&leaf, &leaf_key, "", "")),
        [
            pair(
                "mtls.backends[0].conf.cert[0]",
                "basic constraint 'CA' must be set to 'true' (see X509-SVID: 4.1. Basic Constraints)"
            ),
            pair(
                "mtls.backends[0].conf.cert[0]",
                "key usage extension 'keyCertSign' must be set (see X509-SVID: 4.3. Key Usage)"
            ),
        ]
    );
    let (agreeing, agreeing_key) = authority(
        true,
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::KeyAgreement],
    );
    assert_eq!(
        violations(&mesh_with(&agreeing, &agreeing_key, "", "")),
        [pair(
            "mtls.backends[0].conf.cert[0]",
            "key usage extension 'keyAgreement' must NOT be set (see X509-SVID: Appendix A. X.509 Field Reference)"
        )]
    );
    let (_, other_key) = good_ca();
    assert_eq!(
        violations(&mesh_with(&cert, &other_key, "", "")),
        [pair(
            "mtls.backends[0].conf.cert",
            "not a valid TLS key pair: tls: private key does not match public key"
        )]
    );
    assert_eq!(
        violations(&mesh_with("not PEM", &key, "", "")),
        [pair(
            "mtls.backends[0].conf.cert",
            "not a valid TLS key pair: tls: failed to find any PEM data in certificate input"
        )]
    );
    // Kuma skips the CA's checks when asked to.
    let skipped = mesh_with(&leaf, &other_key, "", "").replace(
        "  enabledBackend: ca\n",
        "  enabledBackend: ca\n  skipValidation: true\n",
    );
    assert_eq!(violations(&skipped), []);
}

#[test]
fn a_provided_cas_data_sources_are_checked_in_kumas_words() {
    let mesh = |conf: &str| {
        format!(
            "type: Mesh\nname: default\nmtls:\n  backends:\n  - name: ca\n    type: provided\n    \
             conf: {conf}\n"
        )
    };
    assert_eq!(
        violations(&mesh("{}")),
        [
            pair("mtls.backends[0].conf.cert", "has to be defined"),
            pair("mtls.backends[0].conf.key", "has to be defined"),
        ]
    );
    assert_eq!(
        violations(&mesh("{cert: {}, key: {secret: ''}}")),
        [
            pair(
                "mtls.backends[0].conf.cert",
                "data source has to be chosen. Available sources: secret, file, inline"
            ),
            pair("mtls.backends[0].conf.key.secret", "cannot be empty"),
        ]
    );
    let unknown = violations(&mesh("{cert: {secret: a}, key: {secret: b}, other: 1}"));
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].0, "mtls.backends[0].conf");
    assert!(
        unknown[0]
            .1
            .starts_with("could not convert backend config: unknown field `other`"),
        "{unknown:?}"
    );
    assert_eq!(
        violations(&mesh("{cert: {secret: missing}, key: {secret: missing}}")),
        [pair(
            "mtls.backends[0].conf.cert",
            "could not load data: Secret \"missing\" not found in the mesh"
        )]
    );
    // Another type is Kuma's business (it checks those in its control plane).
    assert_eq!(
        violations(
            "type: Mesh\nname: default\nmtls:\n  backends:\n  - {name: ca, type: builtin}\n"
        ),
        []
    );
}

#[test]
fn the_expiration_is_read_as_kuma_reads_it_where_kuma_reports_it() {
    let (cert, key) = good_ca();
    let with = |dp_cert: &str| violations(&mesh_with(&cert, &key, dp_cert, ""));
    let invalid = [pair(
        "mtls.dpcert.rotation.expiration",
        "has to be a valid format",
    )];
    assert_eq!(with("    dpCert: {rotation: {expiration: 10s}}\n"), []);
    assert_eq!(with("    dpCert: {rotation: {expiration: 1d}}\n"), []);
    assert_eq!(
        with("    dpCert: {rotation: {expiration: 1h30m}}\n"),
        invalid
    );
    // A dpCert without an expiration is one Kuma cannot read either.
    assert_eq!(with("    dpCert: {}\n"), invalid);
    assert_eq!(with(""), []);
}

fn dataplane(name: &str, inbounds: &str) -> String {
    format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  \
         inbound: {inbounds}\n---\n"
    )
}

#[test]
fn a_dataplane_is_named_as_kuma_names_it_in_its_certificate() {
    let f = Fixture::new(&dataplane(
        "web",
        "[{port: 80, tags: {kuma.io/service: web, version: v2, team: a}}, \
         {port: 81, tags: {kuma.io/service: web-admin, team: a}}]",
    ));
    let (_, dp) = crate::role::dataplane(&f.resources, "default", "web").unwrap();
    assert_eq!(
        dataplane_uris("default", dp),
        [
            "spiffe://default/web",
            "spiffe://default/web-admin",
            "kuma://kuma.io/service/web",
            "kuma://kuma.io/service/web-admin",
            "kuma://team/a",
            "kuma://version/v2",
        ]
    );
    assert_eq!(
        zone_egress_uris("default"),
        [
            "spiffe://default/zone-egress",
            "kuma://kuma.io/service/zone-egress"
        ]
    );
}

const ZONE_EGRESS: &str =
    "type: ZoneEgress\nname: egress\nnetworking: {address: 127.0.0.1, port: 10002}\n---\n";

fn issued(
    f: &Fixture,
    role: &Role,
    kept: Option<&Kept>,
    now: SystemTime,
) -> Result<Option<Issued>, String> {
    for_role(&f.resources, &f.resolved, "default", role, kept, now)
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_900_000_000 + seconds)
}

#[test]
fn the_certificate_names_the_dataplane_lives_the_backends_lifetime_and_chains_to_the_ca() {
    let (cert, key) = good_ca();
    let resources = mesh_with(
        &cert,
        &key,
        "    dpCert: {rotation: {expiration: 1h}}\n",
        &format!(
            "{}{}",
            dataplane("web", "[{port: 80, tags: {kuma.io/service: web}}]"),
            ZONE_EGRESS
        ),
    )
    .replace("mtls:\n", "routing: {zoneEgress: true}\nmtls:\n");
    let f = Fixture::new(&resources);
    let now = at(0);
    let web = issued(&f, &Role::Dataplane("web".into()), None, now)
        .unwrap()
        .unwrap();
    assert_eq!(
        web.uris,
        ["spiffe://default/web", "kuma://kuma.io/service/web"]
    );
    assert_eq!(web.renew_at, at(48 * 60));
    assert!(!web.certificate_pem.contains(key.trim()) && !web.trust_pem.contains("PRIVATE"));

    let der = rustls::pki_types::pem::PemObject::from_pem_slice(web.certificate_pem.as_bytes());
    let der: rustls::pki_types::CertificateDer = der.unwrap();
    let (_, parsed) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(issue::uri_sans(&parsed), web.uris);
    let validity = parsed.validity();
    assert_eq!(validity.not_before.timestamp(), 1_900_000_000 - 10);
    assert_eq!(validity.not_after.timestamp(), 1_900_000_000 + 3600);
    assert!(!parsed.is_ca());
    assert!(parsed.subject().iter_attributes().next().is_none());
    let ca_der: rustls::pki_types::CertificateDer =
        rustls::pki_types::pem::PemObject::from_pem_slice(web.trust_pem.as_bytes()).unwrap();
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    parsed.verify_signature(Some(ca.public_key())).unwrap();

    let egress = issued(&f, &Role::ZoneEgress("egress".into()), None, now)
        .unwrap()
        .unwrap();
    assert_eq!(egress.uris, zone_egress_uris("default"));
    assert_eq!(issued(&f, &Role::Mesh, None, now).unwrap(), None);
}

#[test]
fn a_kept_certificate_serves_until_four_fifths_of_its_life_and_while_it_says_the_same() {
    let (cert, key) = good_ca();
    let resources = |dp_cert: &str, service: &str| {
        mesh_with(
            &cert,
            &key,
            dp_cert,
            &dataplane(
                "web",
                &format!("[{{port: 80, tags: {{kuma.io/service: {service}}}}}]"),
            ),
        )
        .replace("mtls:\n", "routing: {zoneEgress: true}\nmtls:\n")
    };
    let ten_seconds = "    dpCert: {rotation: {expiration: 10s}}\n";
    let f = Fixture::new(&resources(ten_seconds, "web"));
    let web = Role::Dataplane("web".into());
    let first = issued(&f, &web, None, at(0)).unwrap().unwrap();
    let kept = Kept {
        certificate_pem: first.certificate_pem.clone(),
        key_pem: first.key_pem.clone(),
    };
    let again = |f: &Fixture, now| issued(f, &web, Some(&kept), now).unwrap().unwrap();
    assert_eq!(again(&f, at(7)), first, "before 8 s of 10: kept");
    assert_ne!(
        again(&f, at(8)).certificate_pem,
        first.certificate_pem,
        "at 8 s: renewed"
    );
    let other_name = Fixture::new(&resources(ten_seconds, "api"));
    assert_ne!(
        again(&other_name, at(1)).certificate_pem,
        first.certificate_pem
    );
    let longer = Fixture::new(&resources(
        "    dpCert: {rotation: {expiration: 1h}}\n",
        "web",
    ));
    assert_ne!(again(&longer, at(1)).certificate_pem, first.certificate_pem);
    let (other_cert, other_key) = good_ca();
    let other_ca = Fixture::new(
        &resources(ten_seconds, "web")
            .replace(&b64(&cert), &b64(&other_cert))
            .replace(&b64(&key), &b64(&other_key)),
    );
    assert_ne!(
        again(&other_ca, at(1)).certificate_pem,
        first.certificate_pem
    );
}

#[test]
fn what_cannot_be_issued_says_what_to_change() {
    let (cert, key) = good_ca();
    let zone_egress = |more: &str| {
        mesh_with(&cert, &key, "", more).replace("mtls:\n", "routing: {zoneEgress: true}\nmtls:\n")
    };
    let f = Fixture::new(&zone_egress(&dataplane(
        "fake",
        "[{port: 80, tags: {kuma.io/service: zone-egress}}]",
    )));
    let e = issued(&f, &Role::Dataplane("fake".into()), None, at(0)).unwrap_err();
    assert!(
        e.starts_with("test.yaml: Dataplane \"fake\" (mesh \"default\"): networking.inbound[0].tags[\"kuma.io/service\"]: \"zone-egress\" is the ZoneEgress's identity"),
        "{e}"
    );

    let builtin = "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca\n  backends:\n  \
                   - {name: ca, type: builtin}\n---\n"
        .to_string()
        + ZONE_EGRESS;
    let f = Fixture::new(&builtin);
    let e = issued(&f, &Role::ZoneEgress("egress".into()), None, at(0)).unwrap_err();
    assert!(
        e.starts_with("test.yaml: Mesh \"default\" (mesh \"default\"): mtls.backends[0].type: \"builtin\" cannot issue certificates without Kuma's control plane"),
        "{e}"
    );

    let f = Fixture::new(&("type: Mesh\nname: default\n---\n".to_string() + ZONE_EGRESS));
    let e = issued(&f, &Role::ZoneEgress("egress".into()), None, at(0)).unwrap_err();
    assert!(e.contains("mtls.enabledBackend: is not set"), "{e}");

    let f = Fixture::new(&zone_egress(""));
    let e = issued(&f, &Role::ZoneEgress("nope".into()), None, at(0)).unwrap_err();
    assert_eq!(e, "no ZoneEgress \"nope\": there is none");

    // A Dataplane needs no certificate when the mesh does not route through the egress.
    let f = Fixture::new(&mesh_with(
        &cert,
        &key,
        "",
        &dataplane("web", "[{port: 80, tags: {kuma.io/service: web}}]"),
    ));
    assert_eq!(
        issued(&f, &Role::Dataplane("web".into()), None, at(0)).unwrap(),
        None
    );

    let zero = Fixture::new(&zone_egress(ZONE_EGRESS).replace(
        "    conf:",
        "    dpCert: {rotation: {expiration: '0'}}\n    conf:",
    ));
    let e = issued(&zero, &Role::ZoneEgress("egress".into()), None, at(0)).unwrap_err();
    assert!(e.contains("expires before Envoy can use it"), "{e}");
}

#[test]
fn the_ca_may_be_given_by_secrets_of_its_mesh() {
    let (cert, key) = good_ca();
    let secret = |name: &str, pem: &str| {
        format!(
            "type: Secret\nname: {name}\nmesh: default\ndata: {}\n---\n",
            b64(pem)
        )
    };
    let resources = format!(
        "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca\n  backends:\n  - name: ca\n    \
         type: provided\n    conf: {{cert: {{secret: ca-cert}}, key: {{secret: ca-key}}}}\n---\n\
         {}{}{ZONE_EGRESS}",
        secret("ca-cert", &cert),
        secret("ca-key", &key),
    );
    assert_eq!(violations(&resources), []);
    let f = Fixture::new(&resources);
    let egress = issued(&f, &Role::ZoneEgress("egress".into()), None, at(0))
        .unwrap()
        .unwrap();
    assert_eq!(egress.uris, zone_egress_uris("default"));
    assert_eq!(
        egress.renew_at,
        at(24 * 60 * 60 * 4 / 5),
        "Kuma's default: 24h"
    );
}
