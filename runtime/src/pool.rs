//! Warm starts: containers prepared ahead of time.
//!
//! Most of a cold start is spent in the kernel: cloning six new namespaces
//! and, on cgroup v1, moving the new process into a cgroup in every
//! hierarchy (each first move waits for an RCU grace period). A pool entry is
//! a supervisor that has already done all of that and waits, with its
//! container process parked before the rootfs, to be claimed. Claiming
//! renames `pool/<id>` to `containers/<id>`, sets the limits, and hands the
//! supervisor the container's config: what is left is the overlay, the
//! mounts and the exec.
//!
//! Entries need no daemon: whoever claims one spawns its replacement, and an
//! entry nobody claims removes itself after an idle timeout.

use crate::cgroups::{Cgroup, CgroupRecord};
use crate::process::spawn::SUPERVISOR_ARG;
use crate::state::{self, StateDir, StateError};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long an unclaimed entry waits before it removes itself.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// `pool/<id>/pool.json`: written last, so an entry with it is ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolEntry {
    pub id: String,
    pub cgroup: CgroupRecord,
    pub supervisor_pid: u32,
    /// Start time of the supervisor (field 22 of /proc/PID/stat), to tell it from a recycled PID.
    pub supervisor_start: Option<u64>,
    pub created_at_ms: u64,
}

pub fn pool_dir(state: &StateDir) -> PathBuf {
    state.root.join("pool")
}

pub fn entry_dir(state: &StateDir, id: &str) -> PathBuf {
    pool_dir(state).join(id)
}

/// Ready entries (those with a `pool.json`).
pub fn entries(state: &StateDir) -> Vec<PoolEntry> {
    let Ok(rd) = std::fs::read_dir(pool_dir(state)) else {
        return Vec::new();
    };
    let mut out: Vec<PoolEntry> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(state::is_valid_id))
        .filter_map(|e| state::read_json(&e.path().join("pool.json")).ok())
        .collect();
    out.sort_by_key(|e| e.created_at_ms);
    out
}

/// Take the oldest live entry: its directory becomes `containers/<id>`.
/// Call with the state lock held. Entries whose supervisor died are removed.
pub fn take(state: &StateDir) -> Option<PoolEntry> {
    for entry in entries(state) {
        let from = entry_dir(state, &entry.id);
        if !supervisor_alive(&entry) {
            discard(state, &entry);
            continue;
        }
        let to = state.container(&entry.id).dir;
        if std::fs::rename(&from, &to).is_ok() {
            tracing::debug!(container = %entry.id, "claimed a warm container");
            return Some(entry);
        }
    }
    None
}

/// Kill an entry's supervisor (its container process dies with the cgroup).
pub fn kill_supervisor(entry: &PoolEntry) {
    if supervisor_alive(entry) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(entry.supervisor_pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Remove one entry: its processes, cgroup and directory.
pub fn discard(state: &StateDir, entry: &PoolEntry) {
    kill_supervisor(entry);
    if let Err(e) = Cgroup::open(&entry.cgroup).remove() {
        tracing::warn!(entry = %entry.id, error = %e, "removing a warm container's cgroup");
    }
    let dir = crate::state::ContainerDir {
        dir: entry_dir(state, &entry.id),
    };
    let _ = crate::rootfs::rw::remove(&dir);
    let _ = std::fs::remove_dir_all(&dir.dir);
}

/// Remove every entry (`gbx pool drain`). Returns how many went.
pub fn drain(state: &StateDir) -> Result<usize, StateError> {
    let _lock = state.lock()?;
    let all = entries(state);
    for entry in &all {
        discard(state, entry);
    }
    // Entries still being made have no pool.json yet; their supervisors see
    // the directory gone and give up.
    if let Ok(rd) = std::fs::read_dir(pool_dir(state)) {
        for e in rd.filter_map(|e| e.ok()) {
            let _ = crate::rootfs::rw::remove(&crate::state::ContainerDir { dir: e.path() });
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(all.len())
}

/// Start `n` more entries in the background. The returned children exit at
/// once (the supervisors detach); reap them.
pub fn spawn(
    state: &StateDir,
    cgroup_parent: Option<&str>,
    idle: Duration,
    n: usize,
) -> Vec<std::process::Child> {
    (0..n)
        .filter_map(|_| {
            let mut cmd = Command::new("/proc/self/exe");
            cmd.arg0("glassbox-supervisor")
                .arg(SUPERVISOR_ARG)
                .arg("warm")
                .arg(&state.root)
                .arg(cgroup_parent.unwrap_or("-"))
                .arg(idle.as_secs().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            cmd.spawn()
                .map_err(|e| tracing::warn!(error = %e, "could not start a warm container"))
                .ok()
        })
        .collect()
}

/// Reap spawned children without blocking the caller.
pub fn reap_in_background(children: Vec<std::process::Child>) {
    if children.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("glassbox-pool-reaper".into())
        .spawn(move || {
            for mut c in children {
                let _ = c.wait();
            }
        });
}

/// Entries that exist or are being made (directories under pool/).
pub fn count(state: &StateDir) -> usize {
    std::fs::read_dir(pool_dir(state))
        .map(|rd| rd.filter_map(|e| e.ok()).count())
        .unwrap_or(0)
}

fn supervisor_alive(entry: &PoolEntry) -> bool {
    let now = crate::process::supervisor::process_start_time(entry.supervisor_pid as i32);
    now.is_some() && now == entry.supervisor_start
}

/// The argv a warm supervisor gets: `warm <state root> <cgroup parent or -> <idle secs>`.
pub struct WarmArgs {
    pub state_root: PathBuf,
    pub cgroup_parent: Option<String>,
    pub idle: Duration,
}

impl WarmArgs {
    pub fn parse(args: &[std::ffi::OsString]) -> Option<WarmArgs> {
        let [root, parent, idle] = args else {
            return None;
        };
        let parent = parent.to_str()?;
        Some(WarmArgs {
            state_root: PathBuf::from(root),
            cgroup_parent: (parent != "-").then(|| parent.to_string()),
            idle: Duration::from_secs(idle.to_str()?.parse().ok()?),
        })
    }
}

/// Is `dir` still an unclaimed pool entry?
pub fn still_pooled(dir: &Path) -> bool {
    dir.join("pool.json").exists()
}
