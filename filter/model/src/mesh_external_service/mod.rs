//! Kuma's MeshExternalService (MES), the external-service resource Kuma recommends since 2.9:
//! its spec as written (`spec`), Kuma's validator in Kuma's words plus this project's own
//! refusals (`validate`). Read in both forms by `resource`, validated by `validate`; not yet
//! served (`extsvc generate` refuses it, the filter's catalog holds none).

pub mod spec;
pub mod validate;

pub use spec::MeshExternalServiceSpec;
