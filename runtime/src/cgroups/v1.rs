//! cgroup v1: one hierarchy per controller (or per co-mounted group, e.g. `cpu,cpuacct`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protocol::{CgroupVersion, Limits, Stats};

use super::files::StatFiles;
use super::stats::{self as parse, flat_keyed_value};
use super::{
    container_rel, cpu_quota_us, dir_in_mount, mkdir_leaf, page_round, read, read_opt, rmdir,
    rmdir_shared_parent, write, write_checked, CgroupError, CgroupRecord, EventCounters, HostPaths,
    CPU_PERIOD_US,
};

/// Controllers a container cannot do without.
const REQUIRED: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];
/// Controllers whose directory is made when mounted, so the container's processes do not stay
/// in the runtime's cgroup there.
const OPTIONAL: [&str; 3] = ["devices", "freezer", "blkio"];

/// How long `remove` keeps killing before it gives up.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One mounted v1 hierarchy and where the calling process is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    pub mount_root: String,
    /// The calling process's cgroup in this hierarchy, relative to its root.
    pub own_path: String,
}

/// Every mounted v1 hierarchy, from mountinfo and /proc/self/cgroup.
pub(crate) fn hierarchies(host: &HostPaths) -> Result<Vec<Hierarchy>, CgroupError> {
    let mounts = parse::parse_mountinfo(&read(&host.mountinfo)?);
    let own = parse::parse_proc_cgroup(&read(&host.proc_cgroup)?);
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts.into_iter().filter(|m| m.fstype == "cgroup") {
        let Some(line) = own.iter().find(|l| {
            !l.controllers.is_empty() && l.controllers.iter().all(|c| m.super_options.contains(c))
        }) else {
            continue;
        };
        // The same hierarchy mounted twice: keep the first mount.
        if out.iter().any(|h| h.controllers == line.controllers) {
            continue;
        }
        out.push(Hierarchy {
            controllers: line.controllers.clone(),
            mount_point: m.mount_point.into(),
            mount_root: m.root,
            own_path: line.path.clone(),
        });
    }
    Ok(out)
}

pub(crate) fn create(
    host: &HostPaths,
    parent: Option<&str>,
    id: &str,
    limits: &Limits,
) -> Result<CgroupRecord, CgroupError> {
    let record = plan(host, parent, id)?;
    let mut unique: Vec<PathBuf> = record.dirs.values().cloned().collect();
    unique.sort();
    unique.dedup();
    let mut made = Vec::new();
    let result = unique
        .iter()
        .try_for_each(|d| {
            mkdir_leaf(d)?;
            made.push(d.clone());
            Ok(())
        })
        .and_then(|()| apply_limits(&record.dirs, limits));
    if let Err(e) = result {
        tracing::warn!(cgroup = %record.path, error = %e, "cgroup creation failed; undoing");
        for d in &made {
            if let Err(e) = rmdir(d) {
                tracing::warn!(dir = %d.display(), error = %e, "could not remove half-made cgroup");
            }
            rmdir_shared_parent(d);
        }
        return Err(e);
    }
    Ok(record)
}

/// The record `create` would make for `id`, without touching the hierarchies.
pub(crate) fn plan(
    host: &HostPaths,
    parent: Option<&str>,
    id: &str,
) -> Result<CgroupRecord, CgroupError> {
    let hs = hierarchies(host)?;
    let mut dirs = BTreeMap::new();
    let mut path = None;
    for ctrl in REQUIRED.iter().chain(OPTIONAL.iter()) {
        let Some(h) = hs.iter().find(|h| h.controllers.iter().any(|c| c == ctrl)) else {
            if REQUIRED.contains(ctrl) {
                return Err(CgroupError::ControllerMissing {
                    controller: ctrl.to_string(),
                    detail: format!("no v1 hierarchy in {}", host.mountinfo.display()),
                });
            }
            continue;
        };
        let rel = container_rel(parent.unwrap_or(&h.own_path), id);
        match dir_in_mount(&h.mount_point, &h.mount_root, &rel) {
            Ok(d) => dirs.insert(ctrl.to_string(), d),
            Err(e) if OPTIONAL.contains(ctrl) => {
                tracing::warn!(controller = ctrl, error = %e, "optional cgroup controller skipped");
                continue;
            }
            Err(e) => return Err(e),
        };
        if *ctrl == "memory" {
            path = Some(rel);
        }
    }
    Ok(CgroupRecord {
        version: CgroupVersion::V1,
        path: path.unwrap_or_default(),
        dirs,
    })
}

pub(super) fn apply_limits(
    dirs: &BTreeMap<String, PathBuf>,
    limits: &Limits,
) -> Result<(), CgroupError> {
    let dir = |c: &str| {
        dirs.get(c).ok_or_else(|| CgroupError::ControllerMissing {
            controller: c.into(),
            detail: "not in the record".into(),
        })
    };
    if let Some(bytes) = limits.memory_bytes {
        let mem = dir("memory")?;
        let v = page_round(bytes)?.to_string();
        write_checked(&mem.join("memory.limit_in_bytes"), &v, &v)?;
        let memsw = mem.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write_checked(&memsw, &v, &v)?;
        } else {
            // No swap accounting on this kernel: the best we can do is not to swap.
            tracing::warn!(dir = %mem.display(), "no memory.memsw.limit_in_bytes; using swappiness 0");
            write_checked(&mem.join("memory.swappiness"), "0", "0")?;
        }
    }
    if let Some(millis) = limits.cpu_millis {
        let cpu = dir("cpu")?;
        let q = cpu_quota_us(millis)?.to_string();
        let p = CPU_PERIOD_US.to_string();
        write_checked(&cpu.join("cpu.cfs_period_us"), &p, &p)?;
        write_checked(&cpu.join("cpu.cfs_quota_us"), &q, &q)?;
    }
    if let Some(n) = limits.pids {
        let v = n.to_string();
        write_checked(&dir("pids")?.join("pids.max"), &v, &v)?;
    }
    Ok(())
}

/// Reads `ctrl`'s file `name`; `None` when the controller or the file is absent.
fn read_ctrl<'f>(
    files: &'f mut dyn StatFiles,
    dirs: &BTreeMap<String, PathBuf>,
    ctrl: &str,
    name: &'static str,
) -> Result<Option<&'f str>, CgroupError> {
    match dirs.get(ctrl) {
        Some(dir) => files.read(dir, name),
        None => Ok(None),
    }
}

/// `ctrl`'s file `name` parsed by `f`; `None` when absent or junk.
fn parsed<T>(
    files: &mut dyn StatFiles,
    dirs: &BTreeMap<String, PathBuf>,
    ctrl: &str,
    name: &'static str,
    f: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, CgroupError> {
    Ok(read_ctrl(files, dirs, ctrl, name)?.and_then(f))
}

/// The value of `key` in `ctrl`'s flat keyed file `name` (0 when absent).
fn keyed(
    files: &mut dyn StatFiles,
    dirs: &BTreeMap<String, PathBuf>,
    ctrl: &str,
    name: &'static str,
    key: &str,
) -> Result<u64, CgroupError> {
    Ok(parsed(files, dirs, ctrl, name, |t| flat_keyed_value(t, key))?.unwrap_or(0))
}

pub(crate) fn stats(
    dirs: &BTreeMap<String, PathBuf>,
    files: &mut dyn StatFiles,
) -> Result<Stats, CgroupError> {
    let number = |files: &mut dyn StatFiles, ctrl, name| {
        parsed(files, dirs, ctrl, name, parse::parse_u64).map(|v| v.unwrap_or(0))
    };
    let mut s = Stats {
        cpu_usage_ns: number(files, "cpuacct", "cpuacct.usage")?,
        memory_current: number(files, "memory", "memory.usage_in_bytes")?,
        pids_current: number(files, "pids", "pids.current")?,
        ..Stats::default()
    };
    if let Some(t) = read_ctrl(files, dirs, "cpu", "cpu.stat")? {
        s.cpu_throttled_ns = flat_keyed_value(t, "throttled_time").unwrap_or(0);
        s.cpu_throttled_periods = flat_keyed_value(t, "nr_throttled").unwrap_or(0);
    }
    // Each text lives until the next read: the quota is parsed first.
    let quota = parsed(files, dirs, "cpu", "cpu.cfs_quota_us", |t| {
        Some(t.trim().to_owned())
    })?;
    if let Some(q) = quota {
        s.cpu_limit_millis = parsed(files, dirs, "cpu", "cpu.cfs_period_us", |p| {
            parse::parse_v1_cpu_limit(&q, p)
        })?
        .flatten();
    }
    s.memory_peak = parsed(
        files,
        dirs,
        "memory",
        "memory.max_usage_in_bytes",
        parse::parse_u64,
    )?;
    s.memory_limit = parsed(
        files,
        dirs,
        "memory",
        "memory.limit_in_bytes",
        parse::parse_v1_limit,
    )?
    .flatten();
    s.pids_limit = parsed(files, dirs, "pids", "pids.max", parse::parse_max)?.flatten();
    files.near_limit(super::files::near_limit(&s));
    let ev = event_counters(dirs, files)?;
    s.oom_kills = ev.oom_kills;
    s.pids_limit_hits = ev.pids_limit_hits;
    if let Some((r, w)) = parsed(
        files,
        dirs,
        "blkio",
        "blkio.throttle.io_service_bytes",
        |t| Some(parse::parse_blkio_service_bytes(t)),
    )? {
        s.io_read_bytes = Some(r);
        s.io_write_bytes = Some(w);
    }
    Ok(s)
}

pub(crate) fn event_counters(
    dirs: &BTreeMap<String, PathBuf>,
    files: &mut dyn StatFiles,
) -> Result<EventCounters, CgroupError> {
    Ok(EventCounters {
        oom_kills: keyed(files, dirs, "memory", "memory.oom_control", "oom_kill")?,
        pids_limit_hits: keyed(files, dirs, "pids", "pids.events", "max")?,
    })
}

/// Freeze (if the freezer is there), SIGKILL every process, thaw, wait until empty, rmdir.
pub(crate) fn remove(dirs: &[PathBuf]) -> Result<(), CgroupError> {
    // The common case, a container whose processes have all exited: each
    // rmdir simply succeeds, with nothing read first. A directory that is
    // still busy (processes left) goes the long way.
    let busy: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| match rmdir(d) {
            Ok(()) => {
                rmdir_shared_parent(d);
                false
            }
            Err(_) => true,
        })
        .cloned()
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    remove_busy(&busy)
}

/// Freeze, kill every process, thaw, wait until empty, rmdir.
fn remove_busy(dirs: &[PathBuf]) -> Result<(), CgroupError> {
    let start = Instant::now();
    let live: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    // The common case is a container whose processes are all gone: nothing
    // to freeze or kill.
    let empty = live.iter().all(|d| {
        read_opt(&d.join("cgroup.procs"))
            .ok()
            .flatten()
            .is_none_or(|t| parse::parse_pids(&t).is_empty())
    });
    let freezer = live
        .iter()
        .map(|d| d.join("freezer.state"))
        .find(|f| !empty && f.exists());
    if let Some(f) = &freezer {
        freeze(f, start)?;
    }
    let mut thawed = freezer.is_none();
    loop {
        let mut pids = Vec::new();
        for d in &live {
            if let Some(t) = read_opt(&d.join("cgroup.procs"))? {
                pids.extend(parse::parse_pids(&t));
            }
        }
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() {
            break;
        }
        for &pid in &pids {
            super::kill(pid);
        }
        if !thawed {
            if let Some(f) = &freezer {
                write(f, "THAWED")?;
            }
            thawed = true;
        }
        if start.elapsed() > REMOVE_TIMEOUT {
            return Err(CgroupError::NotEmpty {
                path: live.first().map(|d| d.to_path_buf()).unwrap_or_default(),
                pids,
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let (Some(f), false) = (&freezer, thawed) {
        write(f, "THAWED")?;
    }
    for d in dirs {
        super::rmdir_retrying(d, start, REMOVE_TIMEOUT)?;
        rmdir_shared_parent(d);
    }
    Ok(())
}

fn freeze(state: &Path, start: Instant) -> Result<(), CgroupError> {
    write(state, "FROZEN")?;
    while start.elapsed() < Duration::from_secs(1) {
        if read(state)?.trim() == "FROZEN" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Still FREEZING (e.g. a task in uninterruptible sleep): killing still works, only racier.
    tracing::warn!(file = %state.display(), "cgroup did not freeze within 1 s; killing anyway");
    Ok(())
}
