//! The transparent proxy's world, as its tests, `make run-transparent` and the bench's part 4
//! set it up: the [`Topology`] of an app namespace, where Envoy runs as [`ENVOY_UID`] under
//! `extsvc transparent-proxy install`'s rules, and a world namespace with the outside servers
//! (an [`Upstream`], its DNS included) on [`WORLD_IP`], behind the app's default route.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::netns::{Netns, Topology, WORLD_IP};
use crate::{extsvc_binary, Envoy, EnvoyOptions, Upstream, UpstreamBuilder};

/// Kuma's uid for Envoy: the rules leave its traffic alone.
pub const ENVOY_UID: u32 = 5678;

/// `port` on the world's address.
pub fn world_addr(port: u16) -> SocketAddr {
    SocketAddr::from((WORLD_IP, port))
}

/// The arguments of `extsvc transparent-proxy install --envoy-uid <ENVOY_UID>` and `flags`.
pub fn install_args(flags: &[&str]) -> Vec<String> {
    ["transparent-proxy", "install", "--envoy-uid"]
        .iter()
        .map(|s| s.to_string())
        .chain([ENVOY_UID.to_string()])
        .chain(flags.iter().map(|s| s.to_string()))
        .collect()
}

/// The namespaces and the world's servers.
pub struct World {
    // Dropped in this order: the servers, then the namespaces.
    pub upstream: Upstream,
    pub topology: Topology,
}

impl World {
    /// Lets Envoy (as [`ENVOY_UID`]) read its configuration in `dir` and write there, makes
    /// the namespaces and starts `servers` in the world (their files in `dir`, named `world`).
    /// `id`: the namespaces are `extsvc-app-<id>` and `extsvc-world-<id>`, and what a killed
    /// run of the same `id` left is removed first; `None`: a pair of this process's own. Fails,
    /// saying why, when namespaces cannot be made (not root, no `ip`).
    pub fn create(dir: &Path, id: Option<&str>, servers: UpstreamBuilder) -> Result<World, String> {
        open_to_envoy(dir)?;
        let topology = match id {
            Some(id) => {
                Topology::remove_leftovers(id);
                Topology::create_with_id(id)
            }
            None => Topology::create(),
        }
        .map_err(|e| format!("{e} (network namespaces need root)"))?;
        let upstream = topology.world.run(|| servers.start_named(dir, "world"));
        Ok(World { upstream, topology })
    }

    /// `extsvc transparent-proxy install --envoy-uid <ENVOY_UID>` and `flags` in the app's
    /// namespace (the rules go with it). Returns what it printed.
    pub fn install(&self, flags: &[&str]) -> Result<String, String> {
        install_in(&self.topology.app, flags)
    }

    /// Envoy on `config` in the app's namespace, as [`ENVOY_UID`], with these `options`
    /// otherwise (files in `dir`, named `name`).
    pub fn start_envoy(
        &self,
        dir: &Path,
        name: &str,
        config: &Path,
        options: &EnvoyOptions,
    ) -> Result<Envoy, String> {
        start_envoy_in(&self.topology.app, dir, name, config, options)
    }
}

/// Lets Envoy as [`ENVOY_UID`] read its configuration in `dir` and write its files there.
pub fn open_to_envoy(dir: &Path) -> Result<(), String> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// `extsvc transparent-proxy install --envoy-uid <ENVOY_UID>` and `flags` in `ns` (the rules
/// go with it). Returns what it printed.
pub fn install_in(ns: &Netns, flags: &[&str]) -> Result<String, String> {
    let out = ns
        .command(&extsvc_binary().to_string_lossy())
        .args(install_args(flags))
        .output()
        .map_err(|e| format!("cannot run extsvc: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "extsvc transparent-proxy install {} in {} failed ({}): {}",
            flags.join(" "),
            ns.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Envoy on `config` in `ns`, as [`ENVOY_UID`], with these `options` otherwise (files in `dir`,
/// named `name`).
pub fn start_envoy_in(
    ns: &Netns,
    dir: &Path,
    name: &str,
    config: &Path,
    options: &EnvoyOptions,
) -> Result<Envoy, String> {
    let options = EnvoyOptions {
        uid: Some(ENVOY_UID),
        ..options.clone()
    };
    ns.run(|| Envoy::try_start_file(dir, name, config, &options))
}
