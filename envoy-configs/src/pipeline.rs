//! What `generate` and `watch` share: read and check the resources, generate, and write the
//! secrets' and xDS directories; the bootstrap's text is returned for the caller to place.
//! Invalid resources write nothing.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use external_service_model::catalog;
use external_service_model::contract::MODULE_PATH;

use crate::atomic::{self, WriteError};
use crate::generate::{self, xds, Options};
use crate::identity::{self, Issued};
use crate::read::{self, Loaded};
use crate::role::Role;
use crate::xds_dir;

/// The bootstrap's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// One run: the resource files, the bootstrap's format, and the generator's options. The
/// VIPs an earlier run kept in the xDS directory are read here
/// (`options.transparent.previous` is left `None` by the caller).
#[derive(Debug)]
pub struct Request {
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub options: Options,
}

/// Why a run wrote nothing (or, for [`Error::Write`], not everything).
#[derive(Debug)]
pub enum Error {
    /// A file could not be read (exit 2).
    Read(read::ReadError),
    /// The options cannot work: the module is missing, the kept VIPs cannot be read (exit 2).
    Usage(String),
    /// Invalid resources (exit 1): print with `cli::validate::write_text`.
    Invalid(Box<Loaded>),
    /// Valid resources that one Envoy configuration cannot hold (exit 1).
    Generate(generate::Error),
    /// The output could not be written (exit 2).
    Write(WriteError),
    /// Valid resources whose configuration Kubernetes objects cannot hold (exit 1).
    Manifests(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) | Error::Generate(_) | Error::Manifests(_) => 1,
            Error::Read(_) | Error::Usage(_) | Error::Write(_) => 2,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read(e) => e.fmt(f),
            Error::Usage(e) => f.write_str(e),
            Error::Invalid(_) => f.write_str("invalid resources: no configuration written"),
            Error::Generate(e) => e.fmt(f),
            Error::Write(e) => e.fmt(f),
            Error::Manifests(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Error {
        Error::Write(e)
    }
}

impl From<xds_dir::Error> for Error {
    fn from(e: xds_dir::Error) -> Error {
        match e {
            xds_dir::Error::Write(e) => Error::Write(e),
            xds_dir::Error::KeptVips(e) => Error::Usage(e),
            xds_dir::Error::Serialize(e) => Error::Generate(e),
        }
    }
}

/// What [`apply`] made and wrote.
#[derive(Debug)]
pub struct Generated {
    /// The bootstrap's text, not written yet.
    pub bootstrap: String,
    /// Whether the bootstrap holds a private key (its file must then be private).
    pub private: bool,
    /// With `--xds-dir`: the xDS files, and whether any of them changed.
    pub xds: Option<(xds::Files, bool)>,
    /// The certificate this Envoy presents, when its role has one: `watch` renews it at its
    /// `renew_at`.
    pub identity: Option<Issued>,
}

/// What an earlier run left for this one to keep: the VIPs names have, and the certificate
/// this Envoy presents while it serves. From the xDS directory, or from the manifests of
/// `--format kubernetes`.
#[derive(Debug, Default)]
pub struct Previous {
    pub vips: Option<crate::generate::transparent::Vips>,
    pub identity: Option<identity::Kept>,
}

/// The configuration made from valid resources, nothing written yet.
#[derive(Debug)]
pub struct Built {
    pub bootstrap: generate::Bootstrap,
    /// The resources it was made from.
    pub loaded: Loaded,
    /// The options it was made with, the certificate issued among them.
    pub options: Options,
}

/// `files` by their names, then their paths: the configuration is the same whatever order
/// the command line gives them in, and wherever they are (a directory is already read in
/// name order).
fn in_name_order(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = files.to_vec();
    files.sort_by(|a, b| (a.file_name(), a).cmp(&(b.file_name(), b)));
    files
}

/// Checks the resources and generates, writing nothing; warnings about what the configuration
/// lets through go to `notes`.
pub fn build(request: &Request, previous: Previous, notes: &mut dyn Write) -> Result<Built, Error> {
    let mut loaded = read::load(&in_name_order(&request.files)).map_err(Error::Read)?;
    if !loaded.is_valid() {
        return Err(Error::Invalid(Box::new(loaded)));
    }
    let mut options = request.options.clone();
    if options.in_pod {
        loaded.resolved = loaded.resolved.inlined().map_err(Error::Usage)?;
    }
    if let (Some(_), Some(transparent)) = (&options.xds_dir, &mut options.transparent) {
        // A first run too keeps what it allocates, so names that hash alike can both have one.
        transparent.previous = Some(previous.vips.unwrap_or_default());
    }
    if options.xds_dir.is_some() && options.role != Role::Mesh {
        options.identity = identity(&loaded, &options, previous.identity.as_ref())?;
    }
    let bootstrap = match generate::generate(&loaded, &options) {
        Ok(b) => b,
        Err(generate::Error::Invalid(reports)) => {
            let mut loaded = loaded;
            loaded.checked.reports = reports;
            return Err(Error::Invalid(Box::new(loaded)));
        }
        Err(e) => return Err(Error::Generate(e)),
    };
    for warning in &bootstrap.warnings {
        let _ = writeln!(notes, "extsvc: warning: {warning}");
    }
    Ok(Built {
        bootstrap,
        loaded,
        options,
    })
}

/// Checks the resources, generates, and writes the secrets' and the xDS files; warnings
/// about what the configuration lets through go to `notes`.
pub fn apply(request: &Request, notes: &mut dyn Write) -> Result<Generated, Error> {
    let previous = match &request.options.xds_dir {
        Some(dir) => Previous {
            vips: xds_dir::kept_vips(dir)?,
            identity: xds_dir::kept_identity(dir),
        },
        None => Previous::default(),
    };
    let Built {
        bootstrap, options, ..
    } = build(request, previous, notes)?;
    if let Some(dir) = &options.secrets_dir {
        xds_dir::write_secrets(dir, &bootstrap.secret_files)?;
    }
    let xds = match (&options.xds_dir, bootstrap.xds.clone()) {
        (Some(dir), Some(files)) => {
            let changed = xds_dir::write(
                dir,
                &files,
                bootstrap.vips.as_ref(),
                bootstrap.inline_private_keys,
            )?;
            Some((files, changed))
        }
        _ => None,
    };
    Ok(Generated {
        bootstrap: bootstrap_text(&bootstrap, request.format)?,
        private: bootstrap.inline_private_keys,
        xds,
        identity: options.identity,
    })
}

/// The bootstrap's text in `format`.
pub fn bootstrap_text(bootstrap: &generate::Bootstrap, format: Format) -> Result<String, Error> {
    match format {
        Format::Json => bootstrap.to_json(),
        Format::Yaml => bootstrap.to_yaml(),
    }
    .map_err(Error::Generate)
}

/// The certificate the role's Envoy presents: the `kept` one while it serves, else a new one
/// from the mesh CA.
fn identity(
    loaded: &Loaded,
    options: &Options,
    kept: Option<&identity::Kept>,
) -> Result<Option<Issued>, Error> {
    let resources = &loaded.checked.resources;
    let mesh = catalog::select_mesh(resources, options.mesh.as_deref())
        .map_err(|e| Error::Generate(generate::Error::Mesh(e)))?;
    identity::for_role(
        resources,
        &loaded.resolved,
        &mesh,
        &options.role,
        kept,
        SystemTime::now(),
    )
    .map_err(|e| Error::Generate(generate::Error::Proxy(e)))
}

/// Writes the bootstrap to `path` unless it already holds it (what `watch` does after
/// [`apply`]).
pub fn write_bootstrap(path: &Path, generated: &Generated) -> Result<(), Error> {
    atomic::write_changed(path, generated.bootstrap.as_bytes(), generated.private)?;
    Ok(())
}

/// The module Envoy will load, as an absolute path that exists: `asked` (`--wasm`), else the
/// one that `make build` put beside this binary's build, else `./target/...`.
pub fn find_module(asked: Option<&Path>) -> Result<PathBuf, Error> {
    let candidates: Vec<PathBuf> = match asked {
        Some(path) => vec![absolute(path)],
        None => beside_this_build()
            .into_iter()
            .chain([absolute(Path::new(MODULE_PATH))])
            .collect(),
    };
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Error::Usage(format!(
                "the filter module is missing (looked for {}): build it with `make build` \
                 (or `cargo build --release --target wasm32-wasip1 -p external-service-filter`), \
                 or name it with --wasm PATH",
                tried.join(", ")
            ))
        })
}

/// `<target>/wasm32-wasip1/release/<module>` for an extsvc at `<target>/<profile>/extsvc`.
fn beside_this_build() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?;
    let module = Path::new(MODULE_PATH);
    let relative = module.strip_prefix("target").ok()?;
    Some(target.join(relative))
}

/// `path` made absolute against the current directory, as Envoy may run elsewhere.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
