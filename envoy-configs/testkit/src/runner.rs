//! What the soak and bench binaries share: every process they start is stopped on Ctrl-C,
//! SIGTERM and panic (release builds abort on panic, so drops alone would leave Envoys behind),
//! CPU pinning, `/proc` readings, and the Markdown files they write.

use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Envoy, EnvoyOptions};

static STOP: AtomicBool = AtomicBool::new(false);
static TRACKED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Call first in `main`: SIGINT and SIGTERM ask the run to stop (it then unwinds and drops every
/// process), and a panic kills every tracked process before the default hook runs.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_tracked();
        default(info);
    }));
}

/// True once SIGINT or SIGTERM arrived.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// `Err` once a stop was asked for: put `check()?` between steps.
pub fn check() -> Result<(), String> {
    if stopping() {
        Err("interrupted: stopped every process started".to_string())
    } else {
        Ok(())
    }
}

fn kill_tracked() {
    let pids = TRACKED.lock().map(|t| t.clone()).unwrap_or_default();
    for pid in pids {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: plain syscall on a pid this process started and has not reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Keeps a child's pid on the list the panic hook kills; drop it before the child is reaped.
pub struct Tracked(u32);

impl Tracked {
    pub fn new(pid: u32) -> Tracked {
        if let Ok(mut t) = TRACKED.lock() {
            t.push(pid);
        }
        Tracked(pid)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut t) = TRACKED.lock() {
            t.retain(|p| *p != self.0);
        }
    }
}

/// A kit [`Envoy`] whose pid the panic hook knows; killed on drop like any kit Envoy.
pub struct Proc {
    // Field order: untracked first, then killed.
    tracked: Tracked,
    pub envoy: Envoy,
}

impl Proc {
    /// Tracks an Envoy the kit started.
    pub fn track(envoy: Envoy) -> Proc {
        let pid = envoy.pid().unwrap_or(0);
        Proc {
            tracked: Tracked::new(pid),
            envoy,
        }
    }

    pub fn pid(&self) -> u32 {
        self.tracked.0
    }

    /// Starts Envoy on `config` (pinned to `cpu` when given) and tracks it.
    pub fn start(
        dir: &Path,
        name: &str,
        config: &Path,
        opts: &EnvoyOptions,
        cpu: Option<usize>,
    ) -> Result<Proc, String> {
        check()?;
        let envoy = on_cpu(cpu, || Envoy::try_start_file(dir, name, config, opts))?;
        Ok(Proc::track(envoy))
    }
}

impl Deref for Proc {
    type Target = Envoy;
    fn deref(&self) -> &Envoy {
        &self.envoy
    }
}

/// Runs `f` with this thread pinned to `cpu`, so that what it spawns starts (and stays) there.
/// Without `cpu`, or where pinning fails (fewer CPUs), `f` runs unpinned.
pub fn on_cpu<T>(cpu: Option<usize>, f: impl FnOnce() -> T) -> T {
    let Some(cpu) = cpu else { return f() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data; the calls read and write only the sets passed.
    let (old, pinned) = unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        let have_old = libc::sched_getaffinity(0, size, &mut old) == 0;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        (old, have_old && libc::sched_setaffinity(0, size, &set) == 0)
    };
    if !pinned {
        eprintln!("note: could not pin to CPU {cpu}; running unpinned");
    }
    let out = f();
    if pinned {
        // SAFETY: as above.
        unsafe {
            libc::sched_setaffinity(0, size, &old);
        }
    }
    out
}

/// What a command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to the end (output to files: no pipe fills up), killing it when a stop is asked
/// for or `limit` passes.
pub fn run(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    check()?;
    let what = format!("{cmd:?}");
    let out = tempfile::tempfile().map_err(|e| format!("temp file: {e}"))?;
    let err = tempfile::tempfile().map_err(|e| format!("temp file: {e}"))?;
    let clone = |f: &fs::File| f.try_clone().map_err(|e| format!("temp file: {e}"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(clone(&out)?)
        .stderr(clone(&err)?)
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let tracked = Tracked::new(child.id());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if stopping() || start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                drop(tracked);
                check()?;
                return Err(format!("{what} took over {limit:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    drop(tracked);
    Ok(Output {
        status,
        stdout: read_all(out)?,
        stderr: read_all(err)?,
    })
}

fn read_all(mut f: fs::File) -> Result<String, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut buf))
        .map_err(|e| format!("read output: {e}"))?;
    Ok(String::from_utf8_lossy(&buf).to_string())
}

/// Runs a shell line for the report's header; its output, or `(error)`.
pub fn sh(line: &str) -> String {
    match run(
        Command::new("sh").args(["-c", line]),
        Duration::from_secs(30),
    ) {
        Ok(o) => o.stdout.trim().to_string(),
        Err(e) => format!("({e})"),
    }
}

/// The workspace root (two levels above this crate).
pub fn root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// `git rev-parse --short HEAD` of the workspace.
pub fn commit() -> String {
    sh(&format!(
        "git -C '{}' rev-parse --short HEAD",
        root().display()
    ))
}

/// `YYYY-MM-DD HH:MM UTC`, now.
pub fn utc_now() -> String {
    sh("date -u '+%Y-%m-%d %H:%M UTC'")
}

/// The first three fields of `/proc/loadavg`, or all of it with `full`.
pub fn load_average(full: bool) -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    if full {
        text.trim().to_string()
    } else {
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// utime + stime of a process (all its threads), in clock ticks, from `/proc/<pid>/stat`.
pub fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("{e}"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(format!("/proc/{pid}/stat: unexpected {stat:?}")),
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// VmRSS of a process in bytes (0 when it cannot be read).
pub fn rss_bytes(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The byte range of the section headed `heading` (a `## ` line) up to the next `## ` line.
fn section_range(text: &str, heading: &str) -> Option<(usize, usize)> {
    let head = format!("{heading}\n");
    let start = if text.starts_with(&head) {
        0
    } else {
        text.find(&format!("\n{head}"))? + 1
    };
    let after = start + head.len();
    let end = text[after..]
        .find("\n## ")
        .map_or(text.len(), |i| after + i + 1);
    Some((start, end))
}

/// The section headed `heading`, if the text has one.
pub fn section<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    section_range(text, heading).map(|(s, e)| &text[s..e])
}

/// Replaces the section headed `heading` with `new` (which starts with that heading), or
/// appends `new` when there is none.
pub fn replace_section(text: &str, heading: &str, new: &str) -> String {
    match section_range(text, heading) {
        Some((s, e)) => {
            let rest = &text[e..];
            format!(
                "{}{new}{}{rest}",
                &text[..s],
                if rest.is_empty() { "" } else { "\n" }
            )
        }
        None => format!("{}\n\n{new}", text.trim_end_matches('\n')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_and_replaced() {
        let text = "# B\n\n## One\nx\n## Soak\nold\n\n## Notes\nn\n";
        assert_eq!(section(text, "## Soak"), Some("## Soak\nold\n\n"));
        assert_eq!(
            replace_section(text, "## Soak", "## Soak\nnew\n"),
            "# B\n\n## One\nx\n## Soak\nnew\n\n## Notes\nn\n"
        );
        assert_eq!(
            replace_section("# B\n", "## Soak", "## Soak\nnew\n"),
            "# B\n\n## Soak\nnew\n"
        );
        assert_eq!(
            section("## Soak\nlast\n", "## Soak"),
            Some("## Soak\nlast\n")
        );
    }
}
