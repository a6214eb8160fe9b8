//! Kinds `extsvc` reads and validates but does not serve yet: a file holding one is refused
//! by `generate`, never served without it.

use external_service_model::mesh_external_service::NOT_SERVED;
use external_service_model::resource::Resource;

use super::Error;

/// The first resource of a kind that is validated but not served, as an error.
pub fn refuse(resources: &[Resource]) -> Result<(), Error> {
    match resources.iter().find(|r| NOT_SERVED.contains(&r.kind())) {
        None => Ok(()),
        Some(r) => Err(Error::NotServed {
            file: r.origin.file.clone(),
            kind: r.kind(),
            name: r.name.clone(),
        }),
    }
}
