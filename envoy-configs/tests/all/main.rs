//! Every test of `extsvc` and of the Envoy it configures, in one test binary (one link of the
//! test kit instead of one per file). One module per concern:
//!
//! - `admin`: the admin interface out of the apps' reach, and the read-only stats listener.
//! - `architecture`: the layout's rules (no module imports one that imports it back).
//! - `egress_net`: the egress tests' four hosts (`web`, `batch`, `egress`, `world`) in network
//!   namespaces, where only the egress reaches the world, and the ZoneEgress scenario on them:
//!   `web` allowed through its sidecar and the egress, `batch` refused at both (root).
//! - `envoy_facts`: smoke tests of the test kit, and the Envoy facts of
//!   `testkit/ENVOY_FACTS.md` (the filter module's too) with hand-written configurations.
//! - `golden`: golden files of `extsvc generate`, each also accepted by `envoy --mode validate`.
//! - `kubernetes`: `generate --format kubernetes`: the manifests against Kubernetes' schemas,
//!   keys only in Secrets, byte-identical output, what a later run keeps, the size limit, the
//!   init containers' rules, a ZoneEgress pod from its mounted volumes (root for the last two).
//! - `validate`: `extsvc validate` as a user runs it.
//! - `cli`: what a new user meets: empty input, typos, `-o`/`--format`, stdin, directories, `-f`,
//!   the module path, and `generate`'s warnings.
//! - `e2e`: resources -> `extsvc generate` -> real Envoy -> real TLS / mTLS / HTTP/2 / TCP
//!   upstreams, one module per theme: `e2e::names` (access by name), `e2e::tls` (TLS
//!   origination), `e2e::passthrough`, `e2e::mesh_passthrough` (MeshPassthrough through the proxy port),
//!   `e2e::protocols` (Dataplane outbounds, HTTP/2, gRPC,
//!   TCP), `e2e::bad_input`, `e2e::policy_doc_examples` (the policy document's resources).
//! - `faults`: upstream faults and reloads with an invalid configuration.
//! - `fleet`: a fleet on Kubernetes ConfigMap volumes: three egress replicas and two sidecars,
//!   each its own Envoy in a network namespace, volumes updated with the kubelet's
//!   atomic-writer steps, converging through an add, a move and a removal under load (root).
//! - `live`: live updates through the xDS files of `--xds-dir`, with no restart.
//! - `hostile`: hostile requests through real Envoy.
//! - `secrets`: key material stays out of output and logs.
//! - `client_certs`: one host with two client certificates by two `.mesh` names, and X.509 v1
//!   client certificates, through real Envoy.
//! - `policies`: the traffic policies, one module per theme: `policies::validation` (Kuma's
//!   wording, field by field), `policies::effective` (the effective view, merge order and
//!   warnings), and one module per kind in real Envoy against upstreams that misbehave on
//!   purpose (`policies::timeout`, `retry`, `circuit_breaker`, `health_check`, `rate_limit`,
//!   `fault_injection`).
//! - `migrate`: `extsvc migrate`: what it makes validates and generates the same clusters, the
//!   input's form kept, the notes on stderr, and what it refuses.
//! - `mesh_external_service`: MeshExternalService and HostnameGenerator: `validate` checks
//!   them as Kuma does, `generate` serves them beside ExternalServices.
//! - `mes_outbounds`: Dataplane outbounds by backendRef to MeshExternalServices (http, tcp)
//!   through real Envoy.
//! - `mes_upstream`: MeshExternalService upstreams through the proxy port against real TLS,
//!   mTLS, HTTP/2 and gRPC upstreams: verification modes, SNI and SANs, versions, client
//!   certificates, priority failover, protocols, `Host`, passthrough off, Kuma's doc example.
//! - `recipes`: the README's recipes as a new user follows them: Kuma service names with `_`
//!   through the proxy port, Envoy as a dedicated uid.
//! - `transparent`: the transparent proxy and builtin DNS in network namespaces of its own
//!   (needs root, as CI has).
//! - `transparent_from`: `transparent-proxy install --from`: the mesh's passthrough decides
//!   whether uncaptured traffic is blocked (network namespaces, root).
//! - `zone_egress`: a Dataplane's sidecar (`--dataplane`) through the ZoneEgress
//!   (`--zone-egress`) on loopback: certificates of the mesh's provided CA, who the egress
//!   takes, renewal through `watch`, two egresses and one stopping.
//!
//! Run one module: `cargo test -p extsvc --test all e2e::` (or `e2e::tls::`).

mod admin;
mod architecture;
mod cli;
mod client_certs;
mod e2e;
mod egress_net;
mod envoy_facts;
mod faults;
mod fleet;
mod golden;
mod hostile;
mod kubernetes;
mod live;
mod mes_outbounds;
mod mes_upstream;
mod mesh_external_service;
mod migrate;
mod policies;
mod recipes;
mod secrets;
mod transparent;
mod transparent_from;
mod validate;
mod zone_egress;
