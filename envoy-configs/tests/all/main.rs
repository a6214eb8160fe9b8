//! Every test of `extsvc` and of the Envoy it configures, in one test binary (one link of the
//! test kit instead of one per file). One module per concern:
//!
//! - `harness`: the test kit itself, and the Envoy facts of `testkit/ENVOY_FACTS.md` (the
//!   filter module's too) with hand-written configurations.
//! - `golden`: golden files of `extsvc generate`, each also accepted by `envoy --mode validate`.
//! - `validate`: `extsvc validate` as a user runs it.
//! - `cli`: what a new user meets: empty input, typos, `-o`/`--format`, stdin, directories, `-f`,
//!   the module path, and `generate`'s warnings.
//! - `e2e`: resources -> `extsvc generate` -> real Envoy -> real TLS / mTLS / HTTP/2 / TCP
//!   upstreams.
//! - `faults`: upstream faults and reloads with an invalid configuration.
//! - `live`: live updates through the xDS files of `--xds-dir`, with no restart.
//! - `hostile`: hostile requests through real Envoy.
//! - `secrets`: key material stays out of output and logs.
//! - `policies`: MeshTimeout and MeshRetry: validation, the effective view, and real Envoy
//!   against slow and failing upstreams.
//! - `mesh_external_service`: MeshExternalService and HostnameGenerator: `validate` checks
//!   them as Kuma does, `generate` refuses them as not served yet.
//! - `transparent`: the transparent proxy and builtin DNS in network namespaces of its own
//!   (needs root, as CI has).
//!
//! Run one module: `cargo test -p envoy-configs --test all e2e::`.

mod cli;
mod e2e;
mod faults;
mod golden;
mod harness;
mod hostile;
mod live;
mod mesh_external_service;
mod policies;
mod secrets;
mod transparent;
mod validate;
