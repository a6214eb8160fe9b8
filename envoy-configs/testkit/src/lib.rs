//! The test kit: what the end-to-end tests against real Envoy run on, and the pieces the
//! tools beside it (the bench in `bench/`, the soak in `soak/`, the demos in
//! `envoy-configs/demo/`) start their Envoys and upstreams with. Every piece is
//! bounded in time, uses loopback addresses only, and cleans up after itself
//! (processes are killed on drop, files live in a per-test temp dir).
//!
//! - [`certs`]: a test CA, server / client certificates ([`Pki`]), wrong CA, expired certs
//!   (rcgen).
//! - [`envoy`]: start Envoy, wait for readiness, read stats and logs, `--mode validate`.
//! - [`upstream`]: a second Envoy acting as TLS / mTLS / HTTP/2 / TCP upstreams and a DNS server.
//! - [`scripted`]: a plain HTTP upstream that answers by a script (slow, failing, then
//!   healthy) and counts what reached it.
//! - [`curl`]: run curl and get status, headers and body back.
//! - [`h2c`]: a hand-made HTTP/2 cleartext client: many streams at once on one connection,
//!   some reset by the client.
//! - [`net`]: free loopback ports, a bounded "eventually" helper, a TCP echo round trip.
//! - [`netns`]: an app and a "world" network namespace joined by a veth pair, for the
//!   transparent proxy (deleted on drop).
//! - [`transparent`]: the transparent proxy's world on those namespaces: the outside servers,
//!   `transparent-proxy install`'s rules, Envoy as its own uid.
//! - [`egress_net`]: the egress tests' four hosts (`web`, `batch`, `egress`, `world`) as
//!   network namespaces where only `egress` reaches `world`, with the world's HTTPS servers and
//!   DNS (deleted on drop).
//! - [`runner`]: what the tools share: processes stopped on Ctrl-C and panic, CPU pinning,
//!   `/proc` readings.
//! - [`tls_client`]: a hand-made TLS client (`openssl s_client`): any SNI, any client
//!   certificate, raw bytes.
//! - [`kubelet`]: a ConfigMap or Secret volume as kubelet writes and updates it (timestamped
//!   directories, `..data`, the atomic swap), for Envoy's `watched_directory`.
//! - [`manifests`]: Kubernetes manifests checked against Kubernetes' schemas
//!   (`kubernetes-validate`, strict), and a PodTemplate's pieces merged into a workload as
//!   `kubectl patch --type strategic` does.
//! - [`sidecar`]: the system under test: run `extsvc`, start Envoy on what `extsvc generate`
//!   wrote, build the resources YAML, check the access log lines.
//!
//! Typical use (see `envoy-configs/tests/all/envoy_facts.rs` for complete examples):
//!
//! ```text
//! let dir = test_dir();
//! let ca = Ca::new(dir.path(), "test-ca");
//! let cert = ca.server_cert(dir.path(), "httpbin", &["httpbin.test"], &[LOCALHOST]);
//! let up = UpstreamBuilder::new()
//!     .tls("tls", &cert)
//!     .dns("httpbin.test", &[LOCALHOST])
//!     .start(dir.path());
//! // A bootstrap naming up.port("tls") and dns_resolver_yaml(up.dns_addr().unwrap(), 0):
//! let envoy = Envoy::start(dir.path(), "sidecar", &yaml);
//! let r = Curl::get("http://httpbin.test/get")
//!     .proxy(format!("http://127.0.0.1:{}", envoy.listener_port("outbound")))
//!     .run();
//! assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"));
//! assert_eq!(envoy.counter("cluster.httpbin.ssl.handshake"), 1);
//! ```
//!
//! The end-to-end tests (`envoy-configs/tests/`)
//! drive the generated configuration through [`sidecar`] instead:
//!
//! ```text
//! let s = Sidecar::start(dir.path(), up.dns_addr(), &docs(&[mesh(false),
//!     https_service("httpbin", "http", &format!("httpbin.test:{}", up.port("tls")),
//!         &[ca_file(&ca)])]), &[]);
//! assert_ok_from(&s.via_proxy("http://httpbin.mesh/get").run(), "tls");
//! s.forwarded("httpbin", 1);
//! ```
//!
//! `envoy-configs/demo/src/bin/demo.rs` (`make run`) serves the built-in demo on the same pieces.
//!
//! `ENVOY_FACTS.md` in this crate records the Envoy 1.40 configuration facts the
//! generator relies on, each checked against the real binary.

// Test support: failing loudly is the point (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod certs;
pub mod curl;
pub mod egress_net;
pub mod envoy;
pub mod h2c;
pub mod kubelet;
pub mod manifests;
pub mod net;
pub mod netns;
pub mod runner;
pub mod scripted;
pub mod sidecar;
pub mod tls_client;
pub mod transparent;
pub mod upstream;

pub use certs::{Ca, CertKey, Pki, Validity};
pub use curl::{Curl, Response};
pub use envoy::{
    envoy_binary, hot_restart_base_id, http_request, validate_config, validate_yaml, wasm_module,
    AdminAt, Envoy, EnvoyOptions, Validation,
};
pub use kubelet::{manifest_objects, mount_pod, volume_payload, KubeletVolume};
pub use manifests::{merge_pod_pieces, validate_manifests, KUBERNETES_VERSION};
pub use net::{eventually, free_port, tcp_echo, test_dir};
pub use scripted::{Reply, Scripted};
pub use sidecar::{
    assert_503_without_upstream, assert_forwarded_line, assert_not_permitted, assert_ok_from,
    assert_tls_failure_line, ca_file, dataplane, dedent, docs, extsvc, extsvc_binary, generate,
    http_service, https_service, mesh, mesh_through_egress, tcp_service, with_dns, zone_egress,
    Cli, Sidecar, WAIT,
};
pub use tls_client::{TlsClient, TlsExchange};
pub use upstream::{dns_resolver_yaml, loopback_ports_bindable, Upstream, UpstreamBuilder};
