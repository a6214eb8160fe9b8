//! `extsvc generate FILE...`: a full Envoy bootstrap from the resources.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use external_service_model::contract::MODULE_PATH;

use super::{format_word, Inputs};
use crate::generate::transparent::{self, Cidr, Vips};
use crate::generate::{
    self, secrets, xds, Options, DEFAULT_ADMIN, DEFAULT_LISTEN, DEFAULT_ROUTE_TIMEOUT_SECS,
    DEFAULT_SYSTEM_CA,
};
use crate::read::{self, Loaded};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc generate services.yaml -o envoy.yaml
  extsvc generate mesh.yaml services/ --listen 127.0.0.1:15001 -o envoy.yaml
  extsvc generate -f services.yaml -o envoy.json       # JSON, from the file name
  envoy -c envoy.yaml
  extsvc generate services.yaml -o envoy.yaml --xds-dir xds/   # then again after each edit
  extsvc generate services.yaml -o envoy.yaml --transparent-proxy
      # with `extsvc transparent-proxy install`: apps need no proxy settings

The configuration has an HTTP proxy listener (`outbound_http`; use it as
http_proxy=http://127.0.0.1:15001 or send a Host header), one listener per Dataplane
outbound, one cluster per kuma.io/service (`external_service_<name>`) with TLS
origination, and the filter on every HTTP listener (wasm failure_policy FAIL_RELOAD: a
request whose VM fails is refused and the VM reloaded; no request ever skips the filter).

Exit status: 0 when the configuration was written, 1 when the resources are invalid
(the report is the one `extsvc validate` prints; nothing is written), 2 when the
command cannot run (unknown flag, missing file).")]
pub struct GenerateArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Write the configuration to FILE instead of stdout. A file holding inline private keys
    /// is created readable by its owner only (mode 0600).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The configuration's format; by default JSON for an output file named *.json (Envoy
    /// reads a bootstrap by its extension), else YAML.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// The filter module Envoy loads (what `make build` makes). By default the one beside
    /// this extsvc's build (`<target>/wasm32-wasip1/release/`), else ./target/...: it must
    /// exist.
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,

    /// Address of the HTTP proxy listener.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Address of Envoy's admin interface.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_ADMIN)]
    pub admin: SocketAddr,

    /// CA bundle that verifies external services without a caCert.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SYSTEM_CA)]
    pub system_ca: PathBuf,

    /// DNS server for Envoy to use instead of the system's resolver.
    #[arg(long, value_name = "ADDR:PORT")]
    pub dns_resolver: Option<SocketAddr>,

    /// The mesh to serve, when the resources span several.
    #[arg(long, value_name = "NAME")]
    pub mesh: Option<String>,

    /// How long a request may wait for the upstream's whole answer before the app gets 504
    /// (0: no limit).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ROUTE_TIMEOUT_SECS)]
    pub route_timeout: u64,

    /// Write TLS material given inline or by a Secret to files in DIR (created mode 0700,
    /// files mode 0600) and have the configuration name them by path, instead of inlining it.
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// Put the listeners and clusters in DIR/lds.yaml and DIR/cds.yaml, and the clusters'
    /// CAs and client certificates in DIR/sds/ (SDS, reloaded when a certificate file is
    /// renamed), which the bootstrap has Envoy watch: running the command again with changed
    /// resources updates a running Envoy, with no restart. Each file is renamed into place
    /// whole; clusters that the listeners may still name go last. An invalid change leaves
    /// DIR as it was.
    #[arg(long, value_name = "DIR")]
    pub xds_dir: Option<PathBuf>,

    /// For apps whose traffic `extsvc transparent-proxy install` captures: --listen becomes
    /// the capture listener (original destination), each declared name gets a VIP with a
    /// listener per port, the builtin DNS answers those names, and any other destination is
    /// passed through or, with passthrough off, refused and logged. With --xds-dir, the VIPs
    /// are kept in DIR/vips.json: a later run moves none and never reuses a removed one's.
    #[arg(long)]
    pub transparent_proxy: bool,

    /// The IPv4 range VIPs come from.
    #[arg(long, value_name = "CIDR", default_value = transparent::DEFAULT_VIP_CIDR, requires = "transparent_proxy")]
    pub vip_cidr: Cidr,

    /// The builtin DNS's UDP address.
    #[arg(long, value_name = "ADDR:PORT", default_value = transparent::DEFAULT_DNS_LISTEN, requires = "transparent_proxy")]
    pub dns_listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

impl GenerateArgs {
    /// The generator's options; paths made absolute, as Envoy may run elsewhere. `previous`:
    /// the VIPs `--xds-dir` kept.
    pub fn options(&self, wasm: PathBuf, previous: Option<Vips>) -> Options {
        Options {
            listen: self.listen,
            admin: self.admin,
            wasm,
            system_ca: absolute(&self.system_ca),
            dns_resolver: self.dns_resolver,
            mesh: self.mesh.clone(),
            route_timeout: std::time::Duration::from_secs(self.route_timeout),
            secrets_dir: self.secrets_dir.as_deref().map(absolute),
            xds_dir: self.xds_dir.as_deref().map(absolute),
            transparent: self.transparent_proxy.then_some(transparent::Options {
                vip_cidr: self.vip_cidr,
                dns_listen: self.dns_listen,
                previous,
            }),
        }
    }
}

/// Why `generate` wrote nothing.
#[derive(Debug)]
pub enum Error {
    /// A file could not be read (exit 2).
    Read(read::ReadError),
    /// The options cannot work: the module is missing, `-o` names a format (exit 2).
    Usage(String),
    /// Invalid resources (exit 1): print with `cli::validate::write_text`.
    Invalid(Box<Loaded>),
    /// Valid resources that one Envoy configuration cannot hold (exit 1).
    Generate(generate::Error),
    /// The output could not be written (exit 2).
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) | Error::Generate(_) => 1,
            Error::Read(_) | Error::Usage(_) | Error::Write { .. } => 2,
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
            Error::Write { path, error } => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// Runs the command: the configuration goes to `-o FILE`, else to `out`; warnings about what
/// the configuration lets through go to `notes`.
pub fn run(args: &GenerateArgs, out: &mut dyn Write, notes: &mut dyn Write) -> Result<(), Error> {
    let applied = apply(args, notes)?;
    match &args.output {
        Some(path) => write_file(path, applied.bootstrap.as_bytes(), applied.private),
        None => out
            .write_all(applied.bootstrap.as_bytes())
            .map_err(|error| Error::Write {
                path: PathBuf::from("stdout"),
                error,
            }),
    }
}

/// What [`apply`] made and wrote.
#[derive(Debug)]
pub struct Applied {
    /// The bootstrap's text, not written yet.
    pub bootstrap: String,
    /// Whether the bootstrap holds a private key (its file must then be private).
    pub private: bool,
    /// With `--xds-dir`: the xDS files, and whether any of them changed.
    pub xds: Option<(xds::Files, bool)>,
}

/// All that `generate` does but write the bootstrap, shared with `watch`: checks the
/// resources, generates, and writes the secrets' and the xDS files. Invalid resources write
/// nothing.
pub fn apply(args: &GenerateArgs, notes: &mut dyn Write) -> Result<Applied, Error> {
    if let Some(word) = args.output.as_deref().and_then(format_word) {
        return Err(Error::Usage(format!(
            "-o takes a file name, not a format: use --format {word}, or -o envoy.{word}"
        )));
    }
    let wasm = module(args.wasm.as_deref())?;
    let loaded = read::load(&args.inputs.all()).map_err(Error::Read)?;
    if !loaded.is_valid() {
        return Err(Error::Invalid(Box::new(loaded)));
    }
    let previous = match (&args.xds_dir, args.transparent_proxy) {
        // A first run too keeps what it allocates, so names that hash alike can both have one.
        (Some(dir), true) => {
            Some(kept_vips(&dir.join(transparent::VIPS_FILE))?.unwrap_or_default())
        }
        _ => None,
    };
    let options = args.options(wasm, previous);
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
    if let Some(dir) = &options.secrets_dir {
        write_secrets(dir, &bootstrap.secret_files)?;
    }
    let xds = match (&options.xds_dir, bootstrap.xds.clone()) {
        (Some(dir), Some(files)) => {
            let mut changed = false;
            // Before the listeners that use them: a kept VIP is never lost, even if a write fails.
            if let Some(vips) = &bootstrap.vips {
                create_dir(dir, 0o755)?;
                let text = serde_json::to_string_pretty(vips)
                    .map_err(|e| Error::Generate(generate::Error::Serialize(e.to_string())))?
                    + "\n";
                changed |=
                    write_changed(&dir.join(transparent::VIPS_FILE), text.as_bytes(), false)?;
            }
            changed |= write_xds(dir, &files, bootstrap.inline_private_keys)?;
            Some((files, changed))
        }
        _ => None,
    };
    let json_file = args
        .output
        .as_deref()
        .and_then(Path::extension)
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = match args.format {
        Some(Format::Json) => bootstrap.to_json(),
        None if json_file => bootstrap.to_json(),
        Some(Format::Yaml) | None => bootstrap.to_yaml(),
    }
    .map_err(Error::Generate)?;
    Ok(Applied {
        bootstrap: text,
        private: bootstrap.inline_private_keys,
        xds,
    })
}

/// Writes the bootstrap to `-o FILE` when given and changed (what `watch` does after
/// [`apply`]).
pub fn write_output(args: &GenerateArgs, applied: &Applied) -> Result<(), Error> {
    match &args.output {
        Some(path) => write_changed(path, applied.bootstrap.as_bytes(), applied.private).map(drop),
        None => Ok(()),
    }
}

/// The VIPs a previous run kept, when it did.
fn kept_vips(path: &Path) -> Result<Option<Vips>, Error> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Usage(format!("cannot read {}: {e}", path.display()))),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Usage(format!(
            "{}: {e}: it should hold the VIPs an earlier `extsvc generate --transparent-proxy` \
             wrote; restore it, or remove it to give every name a new VIP",
            path.display()
        ))
    })
}

/// The module Envoy will load, as an absolute path that exists: `--wasm`, else the one that
/// `make build` put beside this binary's build, else `./target/...`.
fn module(asked: Option<&Path>) -> Result<PathBuf, Error> {
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

/// Creates `dir` (mode 0700) when missing and writes each file into it with mode 0600.
fn write_secrets(dir: &Path, files: &[secrets::SecretFile]) -> Result<(), Error> {
    create_dir(dir, 0o700)?;
    for file in files {
        write_file(&file.path, &file.bytes, true)?;
    }
    Ok(())
}

/// Updates the xDS files in `dir` (created when missing) so that no route ever names a
/// cluster Envoy has dropped, nor a cluster a secret not written yet: the secrets first, then
/// the old and new clusters, then the listeners, then the new clusters, and last the secrets'
/// files no cluster names any more. A file already holding its text is left alone. Whether
/// any file changed.
fn write_xds(dir: &Path, files: &xds::Files, private: bool) -> Result<bool, Error> {
    create_dir(dir, 0o755)?;
    let sds_dir = dir.join(xds::SDS_DIR);
    let (cds_path, lds_path) = (dir.join(xds::CDS_FILE), dir.join(xds::LDS_FILE));
    let old_cds = fs::read_to_string(&cds_path).ok();
    let union = old_cds
        .as_deref()
        .and_then(|old| xds::cluster_union(&files.cds, old));
    let update = |path: &Path, response: &serde_json::Value| {
        let text = xds::to_yaml(response).map_err(Error::Generate)?;
        write_changed(path, text.as_bytes(), private)
    };
    let mut changed = false;
    if !files.sds.is_empty() {
        create_dir(&sds_dir, 0o755)?;
    }
    for (file, response) in &files.sds {
        changed |= update(&sds_dir.join(file), response)?;
    }
    if let Some(union) = &union {
        changed |= update(&cds_path, union)?;
    }
    changed |= update(&lds_path, &files.lds)?;
    changed |= update(&cds_path, &files.cds)?;
    changed |= remove_unnamed_secrets(&sds_dir, files)?;
    Ok(changed)
}

/// Removes the files of `DIR/sds/` that hold no secret of `files` (a removed service's).
fn remove_unnamed_secrets(sds_dir: &Path, files: &xds::Files) -> Result<bool, Error> {
    let error = |error| Error::Write {
        path: sds_dir.to_path_buf(),
        error,
    };
    let entries = match fs::read_dir(sds_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(error(e)),
    };
    let named: std::collections::HashSet<&str> =
        files.sds.iter().map(|(file, _)| file.as_str()).collect();
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Another writer's file in progress starts with a dot.
        if name.starts_with('.') || named.contains(name.as_str()) {
            continue;
        }
        fs::remove_file(entry.path()).map_err(error)?;
        removed = true;
    }
    Ok(removed)
}

/// Creates `dir` and its parents, when missing, with `mode`.
fn create_dir(dir: &Path, mode: u32) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|error| Error::Write {
            path: dir.to_path_buf(),
            error,
        })
}

/// [`write_file`], unless `path` already holds `text` (a watcher of its directory is not
/// woken for nothing): whether it wrote.
fn write_changed(path: &Path, text: &[u8], private: bool) -> Result<bool, Error> {
    if fs::read(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    write_file(path, text, private).map(|()| true)
}

/// Writes a sibling temporary file, then renames it: a reader never sees half a file, and a
/// file holding private keys is private from its first byte.
fn write_file(path: &Path, text: &[u8], private: bool) -> Result<(), Error> {
    let error = |error| Error::Write {
        path: path.to_path_buf(),
        error,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mode = if private { 0o600 } else { 0o644 };
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(error)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
