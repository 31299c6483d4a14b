//! Warm starts: containers prepared ahead of time.
//!
//! Most of a cold start is spent in the kernel: cloning seven new namespaces
//! and, on cgroup v1, moving the new process into a cgroup in every
//! hierarchy (each first move waits for an RCU grace period). The user
//! namespace's host id range, its maps and the idmapped layer store are made
//! then too. A pool entry is
//! a supervisor that has already done all of that and waits, with its
//! container process parked before the rootfs, to be claimed. Claiming
//! renames `pool/<id>` to `containers/<id>`, sets the limits, and hands the
//! supervisor the container's config: what is left is the overlay, the
//! mounts and the exec.
//!
//! An entry comes in one of two kinds:
//! - **parked** (above): any create of the pool's image can claim it;
//! - **shell**: the container already runs, with the image's shell on a
//!   terminal, exactly as a create that asks for nothing but limits would
//!   start it (the backend's default sandbox). Its container's config is
//!   written when the entry is made, as `shell.json`, which marks the kind.
//!   Claiming one renames it, writes its `config.json` (with the limits)
//!   and sets its limits: nothing is left to start, and its prompt is
//!   already in the terminal's replay buffer.
//!
//! Entries need no daemon: whoever claims one spawns its replacement (or,
//! with a long-lived caller such as the backend, refills when the creates
//! pause), and an entry nobody claims removes itself after an idle timeout.

use crate::cgroups::{Cgroup, CgroupParent, CgroupRecord};
use crate::process::spawn::SUPERVISOR_ARG;
use crate::state::{self, ContainerConfig, ContainerDir, StateDir, StateError, StateLock};
use crate::userns::{ranges, IdRange};
use protocol::Limits;
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long an unclaimed entry waits before it removes itself.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// `pool/<id>/pool.json`: written under the state lock by whoever makes the
/// entry, before its supervisor starts. An entry is ready once its
/// supervisor has parked the container process and created `ready`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolEntry {
    pub id: String,
    pub cgroup: CgroupRecord,
    /// Taken when the entry is made, so that the user namespace and the
    /// idmapped layers are ready before a claim.
    pub id_map: IdRange,
    /// The image layer directories (lowest first) its rootfs is built from.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    pub supervisor_pid: Option<u32>,
    /// Start time of the supervisor (field 22 of /proc/PID/stat), to tell it from a recycled PID.
    pub supervisor_start: Option<u64>,
    pub created_at_ms: u64,
    /// The limits its cgroup was made with (see [`Refill::limits`]).
    #[serde(default)]
    pub limits: Limits,
}

pub fn pool_dir(state: &StateDir) -> PathBuf {
    state.root.join("pool")
}

pub fn entry_dir(state: &StateDir, id: &str) -> PathBuf {
    pool_dir(state).join(id)
}

/// Every entry with a record, ready or not, oldest first.
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

/// A shell entry's container config, until it is claimed.
const SHELL_CONFIG: &str = "shell.json";

/// Which kind of entry a directory holds: a shell entry has its container's
/// config from the start.
fn is_shell(entry_dir: &Path) -> bool {
    entry_dir.join(SHELL_CONFIG).exists()
}

/// The container config of a shell entry; `None` for a parked entry.
pub fn shell_config(entry_dir: &Path) -> Option<ContainerConfig> {
    state::read_json(&entry_dir.join(SHELL_CONFIG)).ok()
}

/// Write the config of a claimed shell entry, now in `dir`. Its config
/// file is new (not a replacement, which ext4 writes out at once) and its
/// temporary file exists, empty (no new inode, nothing to truncate): this
/// runs once per create, under the state lock. The template (`shell.json`)
/// stays until the container is removed: unlinking a file frees its block,
/// which a filesystem mounted with `discard` trims before the call returns.
pub fn write_claimed_config(
    dir: &ContainerDir,
    config: &ContainerConfig,
) -> Result<(), StateError> {
    state::write_json_atomic(&dir.config(), config)
}

/// Whether the entry runs its shell already (else it is parked).
pub fn is_shell_entry(state: &StateDir, entry: &PoolEntry) -> bool {
    is_shell(&entry_dir(state, &entry.id))
}

/// Whether the entry's container is parked in its finished rootfs (or, for
/// a shell entry, runs its shell), ready to be claimed.
pub fn is_ready(state: &StateDir, entry: &PoolEntry) -> bool {
    entry_dir(state, &entry.id).join("ready").exists()
}

/// Take a ready entry of the kind asked for (a running shell or parked)
/// built for the image `layers`: its directory becomes
/// `containers/<id>`. Call with the state lock held, which a burst of
/// creates queues on: only ready entries' records are read. A ready entry whose
/// supervisor died is removed; [`spawn`] removes the others.
///
/// The pool directory is listed once for a run of takes, not once each
/// (see [`Listing`]).
pub fn take(
    state: &StateDir,
    layers: &[&Path],
    shell: bool,
    listing: &Listing,
) -> Option<PoolEntry> {
    let mut listed = listing.of_kind(shell);
    let mut listed_now = false;
    loop {
        let Some(dir) = listed.pop() else {
            if listed_now {
                return None;
            }
            // Popped from the end: reversed, the directory's own order.
            let rd = std::fs::read_dir(pool_dir(state)).ok()?;
            *listed = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            listed.reverse();
            listed_now = true;
            continue;
        };
        if !dir.join("ready").exists() || is_shell(&dir) != shell {
            continue;
        }
        let Ok(entry) = state::read_json::<PoolEntry>(&dir.join("pool.json")) else {
            continue;
        };
        if !supervisor_alive(&entry) {
            discard(state, &entry);
            continue;
        }
        let same_image = entry
            .layers
            .iter()
            .map(PathBuf::as_path)
            .eq(layers.iter().copied());
        if !same_image {
            continue;
        }
        let to = state.container(&entry.id).dir;
        if std::fs::rename(&dir, &to).is_ok() {
            tracing::debug!(container = %entry.id, "claimed a warm container");
            return Some(entry);
        }
    }
}

/// Pool entries a take listed and has not looked at yet, one list per kind.
///
/// A burst of claims, which take turns, lists the pool once instead of once
/// each (50 creates at once: 0.86 ms of host CPU per create instead of
/// 1.05, in seven runs alternated with the listing per claim). The list is
/// only a hint. Each entry is checked when its turn comes, and one
/// that is gone (taken by another process), not ready yet or of the other
/// kind is passed over; an entry made since is found once the list has run
/// out and the pool is listed again.
#[derive(Debug, Default)]
pub struct Listing {
    shell: std::sync::Mutex<Vec<PathBuf>>,
    parked: std::sync::Mutex<Vec<PathBuf>>,
}

impl Listing {
    fn of_kind(&self, shell: bool) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        let list = if shell { &self.shell } else { &self.parked };
        list.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Kill an entry's supervisor and wait (briefly) until it is gone, so that
/// it cannot make anything after we cleaned up.
pub fn kill_supervisor(entry: &PoolEntry) {
    if !supervisor_alive(entry) {
        return;
    }
    if let Some(pid) = entry.supervisor_pid {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while supervisor_alive(entry) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Remove one entry: its supervisor, container process, cgroup, RW layer
/// and directory. Call with the state lock held.
pub fn discard(state: &StateDir, entry: &PoolEntry) {
    kill_supervisor(entry);
    discard_self(state, entry);
    // A container process cloned just before its supervisor was killed
    // may not be in the cgroup yet; it dies with its parent (its death
    // signal), but only when the kernel gets to it. It is a clone of the
    // supervisor and names the entry on its command line too: whoever
    // drained the pool finds nothing of it left.
    let dir = entry_dir(state, &entry.id);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let left = crate::sweep::supervisors_of(&dir);
        if left.is_empty() || std::time::Instant::now() >= deadline {
            break;
        }
        for pid in left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What [`discard`] does, minus the supervisor: for a supervisor removing
/// its own idle entry (its container process is killed with the cgroup).
pub fn discard_self(state: &StateDir, entry: &PoolEntry) {
    if let Err(e) = Cgroup::open(&entry.cgroup).remove() {
        tracing::warn!(entry = %entry.id, error = %e, "removing a warm container's cgroup");
    }
    let dir = ContainerDir {
        dir: entry_dir(state, &entry.id),
    };
    let _ = crate::rootfs::rw::remove(&dir);
    let _ = std::fs::remove_dir_all(&dir.dir);
    ranges::release(&state.root, &entry.id);
}

/// Remove every entry (`gbx pool drain`). Returns how many went.
pub fn drain(state: &StateDir) -> Result<usize, StateError> {
    let _lock = state.lock()?;
    let all = entries(state);
    for entry in &all {
        discard(state, entry);
    }
    // A directory without a record is an entry whose maker died half-way.
    if let Ok(rd) = std::fs::read_dir(pool_dir(state)) {
        for e in rd.filter_map(|e| e.ok()) {
            let _ = crate::rootfs::rw::remove(&ContainerDir { dir: e.path() });
            let _ = std::fs::remove_dir_all(e.path());
            if let Some(id) = e.file_name().to_str() {
                ranges::release(&state.root, id);
            }
        }
    }
    Ok(all.len())
}

/// What [`spawn`] makes.
pub struct Refill<'a> {
    pub cgroup_parent: Option<&'a str>,
    pub idle: Duration,
    /// The image's layer directories, lowest first.
    pub layers: &'a [PathBuf],
    /// Entries of this kind the pool should hold.
    pub target: usize,
    /// Entries to start at most in this call.
    pub at_most: usize,
    /// `Some`: shell entries, whose container config (for the entry's id,
    /// cgroup and id range) this gives; `None`: parked entries.
    pub shell: Option<&'a ShellConfig<'a>>,
    /// The limits an entry's cgroup (and a shell entry's RW layer) is made
    /// with; a claim asking for the same has none to set.
    pub limits: Limits,
    /// Asked before each entry: false stops the refill (the caller's
    /// creates have resumed).
    pub keep_going: &'a dyn Fn() -> bool,
}

/// The config of a shell entry's container, given its id, cgroup and id range.
pub type ShellConfig<'a> = dyn Fn(&str, CgroupRecord, IdRange) -> ContainerConfig + 'a;

/// Make entries of one kind until the pool holds `target` of them
/// (counting those being made) and start their supervisors. Each entry is
/// made whole (directory, cgroup, records) under the state lock before its
/// supervisor runs, and the count is taken under that lock too: many
/// refills at once (a burst of claims) still stop at `target`. The returned
/// children are the supervisors: reap them (they live until claimed or
/// idle).
pub fn spawn(state: &StateDir, refill: &Refill) -> Vec<std::process::Child> {
    spawn_entries(state, refill, None)
}

/// [`spawn`] for a caller that holds the state lock already, and keeps it
/// until every entry is made: a claim's refill, which is handed the lock so
/// that a drain after the claimed container's exit waits for it.
pub fn spawn_holding(
    state: &StateDir,
    refill: &Refill,
    lock: &StateLock,
) -> Vec<std::process::Child> {
    spawn_entries(state, refill, Some(lock))
}

fn spawn_entries(
    state: &StateDir,
    refill: &Refill,
    held: Option<&StateLock>,
) -> Vec<std::process::Child> {
    // Without a lock held throughout, each entry takes it in turn, so that
    // claims can come between them.
    let lock = || match held {
        Some(_) => Ok(None),
        None => state.lock().map(Some),
    };
    let mut children = Vec::new();
    if let Ok(_lock) = lock() {
        remove_dead(state);
    }
    while children.len() < refill.at_most && (refill.keep_going)() {
        let made = lock()
            .map_err(|e| e.to_string())
            .and_then(|_lock| spawn_one(state, refill));
        match made {
            Ok(Some(c)) => children.push(c),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "could not start a warm container");
                break;
            }
        }
    }
    children
}

/// Make one entry and start its supervisor. Call with the state lock held.
fn spawn_one(state: &StateDir, refill: &Refill) -> Result<Option<std::process::Child>, String> {
    if count(state, refill.shell.is_some()) >= refill.target {
        return Ok(None);
    }
    let id = state::new_id();
    let dir = entry_dir(state, &id);
    std::fs::create_dir_all(pool_dir(state))
        .map_err(|e| format!("creating {}: {e}", pool_dir(state).display()))?;
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let undo = |cgroup: Option<&Cgroup>| {
        if let Some(c) = cgroup {
            let _ = c.remove();
        }
        let _ = std::fs::remove_dir_all(&dir);
        ranges::release(&state.root, &id);
    };
    let id_map = match ranges::allocate(&state.root, &id) {
        Ok(r) => r,
        Err(e) => {
            undo(None);
            return Err(e.to_string());
        }
    };
    let cgroup = match Cgroup::create(
        &CgroupParent(refill.cgroup_parent.map(str::to_string)),
        &id,
        &refill.limits,
    ) {
        Ok(c) => c,
        Err(e) => {
            undo(None);
            return Err(e.to_string());
        }
    };
    let mut entry = PoolEntry {
        id: id.clone(),
        cgroup: cgroup.record(),
        id_map,
        layers: refill.layers.to_vec(),
        supervisor_pid: None,
        supervisor_start: None,
        created_at_ms: state::now_ms(),
        limits: refill.limits,
    };
    let record = dir.join("pool.json");
    if let Err(e) = state::write_json_atomic(&record, &entry) {
        undo(Some(&cgroup));
        return Err(e.to_string());
    }
    if let Some(config) = refill.shell {
        let config = config(&id, cgroup.record(), id_map);
        let written = state::write_json_atomic(&dir.join(SHELL_CONFIG), &config)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let tmp = state::atomic_tmp(&dir.join(state::CONFIG_FILE));
                std::fs::File::create(&tmp)
                    .map(drop)
                    .map_err(|e| format!("creating {}: {e}", tmp.display()))
            });
        if let Err(e) = written {
            undo(Some(&cgroup));
            return Err(e);
        }
    }
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("glassbox-supervisor")
        .arg(SUPERVISOR_ARG)
        .arg("warm")
        .arg(&dir)
        .arg(refill.idle.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // A crash switch is for the process under test, not its supervisors,
    // unless it names a supervisor's step.
    crate::failpoint::pass_to_supervisor(&mut cmd);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            undo(Some(&cgroup));
            return Err(format!("starting a warm supervisor: {e}"));
        }
    };
    entry.supervisor_pid = Some(child.id());
    entry.supervisor_start = crate::process::supervisor::process_start_time(child.id() as i32);
    if let Err(e) = state::write_json_atomic(&record, &entry) {
        tracing::warn!(error = %e, "recording a warm supervisor");
    }
    Ok(Some(child))
}

/// Remove entries whose supervisor died (a crash while preparing one), so
/// that they do not count towards the target. Call with the state lock held.
fn remove_dead(state: &StateDir) {
    for entry in entries(state) {
        if !supervisor_alive(&entry) {
            discard(state, &entry);
        }
    }
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

/// Entries of one kind that exist or are being made (directories under
/// pool/).
pub fn count(state: &StateDir, shell: bool) -> usize {
    std::fs::read_dir(pool_dir(state))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| is_shell(&e.path()) == shell)
                .count()
        })
        .unwrap_or(0)
}

fn supervisor_alive(entry: &PoolEntry) -> bool {
    let Some(pid) = entry.supervisor_pid else {
        return false;
    };
    let now = crate::process::supervisor::process_start_time(pid as i32);
    now.is_some() && now == entry.supervisor_start
}

/// The argv a warm supervisor gets: `warm <entry dir> <idle secs>`.
pub struct WarmArgs {
    pub entry: PathBuf,
    pub idle: Duration,
}

impl WarmArgs {
    pub fn parse(args: &[std::ffi::OsString]) -> Option<WarmArgs> {
        let [entry, idle] = args else { return None };
        Some(WarmArgs {
            entry: PathBuf::from(entry),
            idle: Duration::from_secs(idle.to_str()?.parse().ok()?),
        })
    }
}
