//! Network namespaces for the transparent proxy's tests: an "app" namespace (the app and its
//! Envoy) whose default route goes over a veth pair to a "world" namespace (the outside
//! servers). Nothing is joined to the machine's own network, so no packet leaves the machine.
//! The namespaces (and their `/etc/netns/<name>/`) are deleted on drop, panics included.
//!
//! Code runs inside a namespace in two ways: [`Netns::run`] runs a closure on a thread that
//! has entered it (its sockets, and the processes it spawns, live there; Envoy's admin is
//! reached that way), and [`Netns::command`] is `ip netns exec`, which also gives the process
//! the namespace's `resolv.conf`.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

/// The app's end of the veth pair, and its default gateway's.
pub const APP_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const WORLD_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const APP_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
pub const WORLD_IP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);

/// One named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `ip netns add`; the error says why (not root, no `ip`).
    pub fn create(name: &str) -> Result<Netns, String> {
        run_ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n <name> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// `ip netns exec <name> PROGRAM`: with the namespace's `resolv.conf`, if it has one.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program args` in the namespace and returns what it printed.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {program}: {e}", self.name))
    }

    /// The namespace's `resolv.conf` names this server.
    pub fn set_nameserver(&self, server: Ipv4Addr) {
        let dir = self.etc_dir();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("resolv.conf"), format!("nameserver {server}\n")).unwrap();
    }

    fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it opens and processes it
    /// spawns are in the namespace, and stay there after it returns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        thread::scope(|s| {
            s.spawn(|| {
                enter(&self.name);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Starts `f` on a thread of its own that has entered the namespace, for work that runs
    /// alongside the test.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let name = self.name.clone();
        thread::spawn(move || {
            enter(&name);
            f()
        })
    }
}

/// Moves the calling thread into the namespace `name`.
fn enter(name: &str) {
    let path = PathBuf::from("/run/netns").join(name);
    let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: a valid namespace fd; setns changes only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns into {name}: {}",
        std::io::Error::last_os_error()
    );
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_ip(&["netns", "del", &self.name]);
        let _ = fs::remove_dir_all(self.etc_dir());
    }
}

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` ({e}): install iproute2"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The app and the world, joined by a veth pair (IPv4 and IPv6); the app's default routes go
/// to the world, whose `resolv.conf` is the app's nameserver (the world's DNS on port 53).
pub struct Topology {
    pub app: Netns,
    pub world: Netns,
}

impl Topology {
    /// A pair of this process's own. Fails, saying why, when namespaces cannot be made (not
    /// root, no `ip`).
    pub fn create() -> Result<Topology, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        Self::create_with_id(&id)
    }

    /// The namespaces `extsvc-app-<id>` and `extsvc-world-<id>` (`id`: 12 characters at most).
    pub fn create_with_id(id: &str) -> Result<Topology, String> {
        let app = Netns::create(&Self::app_name(id))?;
        let world = Netns::create(&format!("extsvc-world-{id}"))?;
        // Interface names: at most 15 characters.
        let (app_if, world_if) = (format!("xa{id}"), format!("xw{id}"));
        run_ip(&[
            "link",
            "add",
            &app_if,
            "netns",
            &app.name,
            "type",
            "veth",
            "peer",
            "name",
            &world_if,
            "netns",
            &world.name,
        ])?;
        for (ns, dev, v4, v6) in [
            (&app, &app_if, APP_IP, APP_IP6),
            (&world, &world_if, WORLD_IP, WORLD_IP6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev])?;
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        app.ip(&["route", "add", "default", "via", &WORLD_IP.to_string()])?;
        app.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &WORLD_IP6.to_string(),
        ])?;
        app.set_nameserver(WORLD_IP);
        Ok(Topology { app, world })
    }

    pub fn app_name(id: &str) -> String {
        format!("extsvc-app-{id}")
    }

    /// Deletes what an earlier, killed run of `create_with_id(id)` left behind.
    pub fn remove_leftovers(id: &str) {
        for name in [Self::app_name(id), format!("extsvc-world-{id}")] {
            drop(Netns { name });
        }
    }
}
