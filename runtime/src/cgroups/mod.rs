//! Cgroups v1 and v2: create, limit, stats, events, remove.
//!
//! # Design note: why cgroupfs directly, not the cgroups-rs crate
//!
//! Glassbox writes cgroupfs files itself instead of using `cgroups-rs` (0.5.1), because that crate:
//! - drops memory limit write errors (`update!` ignores them), so a container could run without its
//!   memory limit and nobody would know; we read every limit back and fail with `LimitNotApplied`;
//! - reports nothing useful for OOM on v2 (`oom_control` is a default value, event registration opens
//!   v1-only files); we read `memory.events` and watch it with inotify;
//! - treats a hybrid host as plain v1 with one relative path for all hierarchies, while a process's
//!   own cgroup differs per hierarchy (e.g. `memory:/process_api/…` but `cpu:/`); we resolve each
//!   hierarchy's mount point from `/proc/self/mountinfo` and our place in it from `/proc/self/cgroup`;
//! - pulls in `zbus` and a third `nix` version for a systemd manager we do not use.
//!
//! The whole job is a few hundred lines of mkdir, write, read back and rmdir.
//!
//! # Layout
//!
//! A container's cgroup is `<parent>/glassbox/<id>` in every hierarchy it needs, where `<parent>` is
//! [`CgroupParent`]'s path or, by default, the cgroup the calling process is in (per hierarchy).
//! On v1 that is cpu, cpuacct, memory and pids, plus devices, freezer and blkio when mounted; on
//! v2 it is one directory with `cpu memory pids` (and `io`) enabled from the parent down.
//! [`Cgroup::create`] also restricts devices ([`devices`]) and fails if it cannot.
//!
//! On v2 the no-internal-processes rule applies: a cgroup with processes in it cannot enable
//! controllers for its children. When the parent is our own cgroup and it holds processes, the
//! processes in it (the runtime and whatever shares its cgroup) are first moved into the leaf
//! `<own>/glassbox-runtime`, then controllers are enabled. Later lookups of "our own cgroup" see
//! through that leaf.

pub mod devices;
mod files;
mod stats;
mod v1;
mod v2;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use protocol::{CgroupInfo, CgroupVersion, Limits, Stats};
use serde::{Deserialize, Serialize};

pub use files::StatsReader;
pub use watch::CgroupWatch;

use files::{Fresh, StatFiles};

/// Where container cgroups go. `None` = under the calling process's own cgroup (per hierarchy).
/// `Some("/glassbox-ci")` is a path relative to each hierarchy's root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupParent(pub Option<String>);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup i/o: could not {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cgroup limit not applied: wrote {wanted:?} to {file}, read back {got:?}")]
    LimitNotApplied {
        file: PathBuf,
        wanted: String,
        got: String,
    },
    #[error("cgroup controller {controller} is not available: {detail}")]
    ControllerMissing { controller: String, detail: String },
    #[error("no cgroup filesystem found at {path}")]
    NoCgroupFs { path: PathBuf },
    #[error("invalid cgroup {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
    #[error("cgroup {path} already exists")]
    AlreadyExists { path: PathBuf },
    #[error("cgroup path {path} is not inside the part of its hierarchy mounted at {mount_point}")]
    Unreachable { path: String, mount_point: PathBuf },
    #[error("could not parse {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("cgroup {path} still holds processes {pids:?} after {waited_ms} ms of killing")]
    NotEmpty {
        path: PathBuf,
        pids: Vec<i32>,
        waited_ms: u64,
    },
}

/// The host files this module reads to find hierarchies; tests point them at fixtures.
#[derive(Debug, Clone)]
pub(crate) struct HostPaths {
    pub mountinfo: PathBuf,
    pub proc_cgroup: PathBuf,
    /// Where the v2 hierarchy is mounted (pure v2 hosts).
    pub cgroup_root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            mountinfo: "/proc/self/mountinfo".into(),
            proc_cgroup: "/proc/self/cgroup".into(),
            cgroup_root: "/sys/fs/cgroup".into(),
        }
    }
}

/// Pure v2 when `/sys/fs/cgroup` is a cgroup2 mount; v1 (including hybrid, whose cgroup2 at
/// `/sys/fs/cgroup/unified` is ignored) when any v1 hierarchy is mounted.
pub fn detect_version() -> Result<CgroupVersion, CgroupError> {
    let host = HostPaths::default();
    let fs = nix::sys::statfs::statfs(&host.cgroup_root).map_err(|e| CgroupError::Io {
        op: "statfs",
        path: host.cgroup_root.clone(),
        source: e.into(),
    })?;
    if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        return Ok(CgroupVersion::V2);
    }
    let mounts = stats::parse_mountinfo(&read(&host.mountinfo)?);
    if mounts.iter().any(|m| m.fstype == "cgroup") {
        Ok(CgroupVersion::V1)
    } else {
        Err(CgroupError::NoCgroupFs {
            path: host.cgroup_root,
        })
    }
}

/// Serializable so the container record can persist it and a later process can reopen it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CgroupRecord {
    pub version: CgroupVersion,
    /// Relative to the hierarchy root (the memory hierarchy's on v1), e.g. `/a/glassbox/<id>`.
    pub path: String,
    /// v1: controller name to directory (co-mounted controllers share one directory).
    /// v2: the single key [`V2_KEY`].
    pub dirs: BTreeMap<String, PathBuf>,
}

/// The key of the one directory in a v2 [`CgroupRecord`].
pub const V2_KEY: &str = "unified";

/// Counters that change when the kernel OOM-kills or refuses a fork in the cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounters {
    pub oom_kills: u64,
    pub pids_limit_hits: u64,
}

/// One container's cgroup (a directory per hierarchy on v1, one directory on v2).
#[derive(Debug, Clone)]
pub struct Cgroup {
    record: CgroupRecord,
}

impl Cgroup {
    /// mkdir `<parent>/glassbox/<id>` in each hierarchy needed, write every limit and read each
    /// back (`LimitNotApplied` if it differs). A failure half-way removes what was made.
    ///
    /// Memory: the limit (rounded down to whole pages, as the kernel does) with swap disabled
    /// (v1 `memory.memsw.limit_in_bytes`, or `memory.swappiness` 0 without swap accounting; v2
    /// `memory.swap.max` 0 and `memory.oom.group` 1 where present). CPU: `cpu_millis * 100` µs
    /// per 100 ms period; below 10 millis is refused (the kernel's 1 ms quota minimum).
    ///
    /// Devices: only those in [`devices::ALLOWED`] (see [`devices`]); if that cannot be set up,
    /// the cgroup is removed again and the error returned.
    pub fn create(parent: &CgroupParent, id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let cg = Self::create_on(&HostPaths::default(), detect_version()?, parent, id, limits)?;
        if let Err(e) = cg.restrict_devices() {
            tracing::warn!(cgroup = %cg.record.path, error = %e, "device restriction failed; undoing");
            if let Err(e) = cg.remove() {
                tracing::warn!(cgroup = %cg.record.path, error = %e, "could not remove half-made cgroup");
            }
            return Err(e);
        }
        Ok(cg)
    }

    /// Deny every device but [`devices::ALLOWED`]: v1 `devices.*` files, v2 a BPF program.
    fn restrict_devices(&self) -> Result<(), CgroupError> {
        let dir = self
            .dir_of("devices")
            .ok_or_else(|| CgroupError::ControllerMissing {
                controller: "devices".into(),
                detail: "no devices hierarchy: containers could open any device node".into(),
            })?;
        match self.record.version {
            CgroupVersion::V1 => devices::restrict_v1(dir),
            CgroupVersion::V2 => devices::restrict_v2(dir),
        }
    }

    pub(crate) fn create_on(
        host: &HostPaths,
        version: CgroupVersion,
        parent: &CgroupParent,
        id: &str,
        limits: &Limits,
    ) -> Result<Cgroup, CgroupError> {
        validate_id(id)?;
        if let Some(p) = &parent.0 {
            validate_parent(p)?;
        }
        let record = match version {
            CgroupVersion::V1 => v1::create(host, parent.0.as_deref(), id, limits)?,
            CgroupVersion::V2 => v2::create(host, parent.0.as_deref(), id, limits)?,
        };
        tracing::info!(cgroup = %record.path, version = ?version, ?limits, "cgroup created");
        Ok(Cgroup { record })
    }

    /// The cgroup `create` makes (or made) for `id`, without creating it: to
    /// remove what a create that died half-way may have left.
    pub fn planned(parent: &CgroupParent, id: &str) -> Result<Cgroup, CgroupError> {
        validate_id(id)?;
        if let Some(p) = &parent.0 {
            validate_parent(p)?;
        }
        let host = HostPaths::default();
        let record = match detect_version()? {
            CgroupVersion::V1 => v1::plan(&host, parent.0.as_deref(), id)?,
            CgroupVersion::V2 => v2::plan(&host, parent.0.as_deref(), id)?,
        };
        Ok(Cgroup { record })
    }

    /// Set (and read back) limits on an existing cgroup, e.g. one made
    /// ahead of time for a warm start.
    pub fn set_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        match self.record.version {
            CgroupVersion::V1 => v1::apply_limits(&self.record.dirs, limits),
            CgroupVersion::V2 => {
                let dir =
                    self.record
                        .dirs
                        .get(V2_KEY)
                        .ok_or_else(|| CgroupError::ControllerMissing {
                            controller: V2_KEY.into(),
                            detail: "not in the record".into(),
                        })?;
                v2::apply_limits(dir, limits)
            }
        }
    }

    /// Reopens a cgroup from its record; no I/O.
    pub fn open(record: &CgroupRecord) -> Cgroup {
        Cgroup {
            record: record.clone(),
        }
    }

    pub fn record(&self) -> CgroupRecord {
        self.record.clone()
    }

    pub fn info(&self) -> CgroupInfo {
        CgroupInfo {
            path: self.record.path.clone(),
            version: self.record.version,
        }
    }

    /// Every distinct directory of this cgroup (co-mounted v1 controllers counted once).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.record.dirs.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// The directory holding `controller`'s files (v2: the one directory).
    pub fn dir_of(&self, controller: &str) -> Option<&Path> {
        match self.record.version {
            CgroupVersion::V2 => self.record.dirs.get(V2_KEY),
            CgroupVersion::V1 => self.record.dirs.get(controller),
        }
        .map(PathBuf::as_path)
    }

    /// The `cgroup.procs` files a new process must write its pid into (one per v1 hierarchy), so a
    /// freshly cloned child can write to them itself before it unshares its cgroup namespace.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().iter().map(|d| d.join("cgroup.procs")).collect()
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for f in self.procs_files() {
            write(&f, &pid.to_string())?;
        }
        tracing::debug!(cgroup = %self.record.path, pid, "process moved into cgroup");
        Ok(())
    }

    /// An `O_PATH|O_DIRECTORY` fd of the v2 directory for `CLONE_INTO_CGROUP` (None on v1).
    pub fn v2_dir_fd(&self) -> Option<OwnedFd> {
        use nix::fcntl::{open, OFlag};
        let dir = self.record.dirs.get(V2_KEY)?;
        if self.record.version != CgroupVersion::V2 {
            return None;
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        open(dir, flags, nix::sys::stat::Mode::empty()).ok()
    }

    /// Every counter the host provides; `None` where it doesn't.
    /// Opens and closes every file: for one-off reads. A sampler reading
    /// the same cgroup again and again uses a [`StatsReader`].
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        self.stats_from(&mut Fresh::default())
    }

    fn stats_from(&self, files: &mut dyn StatFiles) -> Result<Stats, CgroupError> {
        let mut s = match self.record.version {
            CgroupVersion::V1 => v1::stats(&self.record.dirs, files)?,
            CgroupVersion::V2 => v2::stats(self.v2_dir()?, files)?,
        };
        s.timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(s)
    }

    pub fn event_counters(&self) -> Result<EventCounters, CgroupError> {
        match self.record.version {
            CgroupVersion::V1 => v1::event_counters(&self.record.dirs, &mut Fresh::default()),
            CgroupVersion::V2 => v2::event_counters(self.v2_dir()?, &mut Fresh::default()),
        }
    }

    /// All pids in the cgroup (host pids), sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut all = Vec::new();
        for d in self.dirs() {
            if let Some(t) = read_opt(&d.join("cgroup.procs"))? {
                all.extend(stats::parse_pids(&t));
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// SIGKILL everything inside and rmdir every directory. Idempotent: missing dirs are fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        match self.record.version {
            CgroupVersion::V1 => v1::remove(&self.dirs())?,
            CgroupVersion::V2 => v2::remove(self.v2_dir()?)?,
        }
        tracing::info!(cgroup = %self.record.path, "cgroup removed");
        Ok(())
    }

    /// An fd to poll(2) on that becomes readable when OOM kills or pids-limit hits may have
    /// changed. See [`CgroupWatch`] for what each host supports.
    pub fn watch(&self) -> Result<CgroupWatch, CgroupError> {
        match self.record.version {
            CgroupVersion::V1 => watch::CgroupWatch::v1(
                self.record.dirs.get("memory").map(PathBuf::as_path),
                self.record.dirs.get("pids").map(PathBuf::as_path),
            ),
            CgroupVersion::V2 => watch::CgroupWatch::v2(self.v2_dir()?),
        }
    }

    fn v2_dir(&self) -> Result<&Path, CgroupError> {
        self.record
            .dirs
            .get(V2_KEY)
            .map(PathBuf::as_path)
            .ok_or_else(|| CgroupError::Invalid {
                what: "record (no v2 directory)",
                value: self.record.path.clone(),
            })
    }
}

fn validate_id(id: &str) -> Result<(), CgroupError> {
    let bad = id.is_empty()
        || id.len() > 200
        || id == "."
        || id == ".."
        || id.contains(['/', '\0', '\n']);
    if bad {
        return Err(CgroupError::Invalid {
            what: "id",
            value: id.into(),
        });
    }
    Ok(())
}

fn validate_parent(p: &str) -> Result<(), CgroupError> {
    let bad = !p.starts_with('/') || p.contains(['\0', '\n']) || p.split('/').any(|c| c == "..");
    if bad {
        return Err(CgroupError::Invalid {
            what: "parent",
            value: p.into(),
        });
    }
    Ok(())
}

/// `<parent>/glassbox/<id>`, normalized to one leading slash.
pub(crate) fn container_rel(parent: &str, id: &str) -> String {
    let p = parent.trim_end_matches('/');
    format!("{p}/glassbox/{id}")
}

/// The directory of `rel` (relative to the hierarchy root) in a hierarchy mounted at
/// `mount_point` whose mount shows `mount_root` of the hierarchy.
pub(crate) fn dir_in_mount(
    mount_point: &Path,
    mount_root: &str,
    rel: &str,
) -> Result<PathBuf, CgroupError> {
    let root = mount_root.trim_end_matches('/');
    let rest = rel
        .strip_prefix(root)
        .filter(|r| r.is_empty() || r.starts_with('/'));
    match rest {
        Some(r) => Ok(mount_point.join(r.trim_start_matches('/'))),
        None => Err(CgroupError::Unreachable {
            path: rel.into(),
            mount_point: mount_point.into(),
        }),
    }
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(io_err("read", path))
}

/// Like [`read`], but a missing file is `None` (a controller or feature the host lacks).
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io_err("write", path))
}

/// Writes `value`, reads the file back and requires its first line to equal `expect`.
pub(crate) fn write_checked(path: &Path, value: &str, expect: &str) -> Result<(), CgroupError> {
    write(path, value)?;
    let got = read(path)?;
    let got = got.lines().next().unwrap_or("").trim();
    if got != expect {
        return Err(CgroupError::LimitNotApplied {
            file: path.into(),
            wanted: expect.into(),
            got: got.into(),
        });
    }
    tracing::debug!(file = %path.display(), value, "cgroup limit written");
    Ok(())
}

/// rmdir that treats a missing directory as done.
pub(crate) fn rmdir(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Removes the shared `glassbox` directory above `dir` if nothing else is in it any more.
pub(crate) fn rmdir_shared_parent(dir: &Path) {
    if let Some(p) = dir.parent().filter(|p| p.ends_with("glassbox")) {
        if let Err(e) = rmdir(p) {
            tracing::trace!(dir = %p.display(), error = %e, "shared cgroup parent kept");
        }
    }
}

/// How long a create keeps going round while removals take the shared
/// parent away. Each lost round means some removal made progress, so this
/// is a guard against a bug, not a limit anyone should meet.
const MKDIR_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Creates the leaf directory (and the `glassbox` directory above it). A
/// concurrent `remove` may take the shared parent away at any moment (it
/// removes it once empty): between the two mkdirs, or inside
/// `create_dir_all` between its mkdir (EEXIST) and its check that the
/// directory is there. Either way, go round again. A count of rounds was
/// not enough: on a loaded machine a create and a remover can fall into
/// step and lose dozens of rounds in a row, so each lost round waits a
/// little longer (a few microseconds, growing) to fall out of step.
pub(crate) fn mkdir_leaf(dir: &Path) -> Result<(), CgroupError> {
    let started = std::time::Instant::now();
    let mut lost: u64 = 0;
    while !mkdir_leaf_once(dir)? {
        lost += 1;
        if started.elapsed() > MKDIR_PATIENCE {
            tracing::warn!(dir = %dir.display(), lost, "cgroup parent kept vanishing");
            return Err(io_err("mkdir", dir)(io::ErrorKind::NotFound.into()));
        }
        std::thread::sleep(std::time::Duration::from_micros((2 * lost).min(1000)));
    }
    Ok(())
}

/// One round of [`mkdir_leaf`]: `Ok(false)` when a removal took the parent
/// away meanwhile.
fn mkdir_leaf_once(dir: &Path) -> Result<bool, CgroupError> {
    if let Some(parent) = dir.parent() {
        match std::fs::create_dir_all(parent) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err("mkdir", parent)(e)),
        }
    }
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(CgroupError::AlreadyExists { path: dir.into() })
        }
        Err(e) => Err(io_err("mkdir", dir)(e)),
    }
}

/// Memory limits are kept in pages; the kernel rounds down, so do we (and compare to that).
pub(crate) fn page_round(bytes: u64) -> Result<u64, CgroupError> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096);
    let r = bytes / page * page;
    if r == 0 {
        return Err(CgroupError::Invalid {
            what: "memory limit (below one page)",
            value: bytes.to_string(),
        });
    }
    Ok(r)
}

/// CFS period used for every CPU limit, in microseconds.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

/// `cpu_millis` to a quota in microseconds per [`CPU_PERIOD_US`]; the kernel's minimum is 1 ms.
pub(crate) fn cpu_quota_us(millis: u32) -> Result<u64, CgroupError> {
    let q = u64::from(millis) * CPU_PERIOD_US / 1000;
    if q < 1000 {
        return Err(CgroupError::Invalid {
            what: "cpu limit (below 10 millis)",
            value: millis.to_string(),
        });
    }
    Ok(q)
}

/// SIGKILL one pid; a process that is already gone is fine.
pub(crate) fn kill(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    if pid <= 0 {
        return;
    }
    if let Err(e) = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pid, error = %e, "could not kill process in cgroup");
        }
    }
}

/// rmdir, retrying on EBUSY (exiting tasks still counted) until `timeout` after `start`.
pub(crate) fn rmdir_retrying(
    dir: &Path,
    start: std::time::Instant,
    timeout: std::time::Duration,
) -> Result<(), CgroupError> {
    loop {
        match rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < timeout => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(io_err("rmdir", dir)(e)),
        }
    }
}
