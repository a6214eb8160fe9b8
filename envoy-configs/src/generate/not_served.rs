//! Kinds `extsvc` reads and validates but does not serve yet: a file holding one is refused
//! by `generate`, never served without it.

use external_service_model::resource::{Kind, Resource};

use super::Error;

/// The first resource of a kind that is validated but not served, as an error.
pub fn refuse(resources: &[Resource]) -> Result<(), Error> {
    let waiting = [Kind::MeshExternalService, Kind::HostnameGenerator];
    match resources.iter().find(|r| waiting.contains(&r.kind())) {
        None => Ok(()),
        Some(r) => Err(Error::NotServed {
            file: r.origin.file.clone(),
            kind: r.kind(),
            name: r.name.clone(),
        }),
    }
}
