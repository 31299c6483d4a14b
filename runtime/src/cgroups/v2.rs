//! cgroup v2: one unified hierarchy, controllers enabled top-down via `cgroup.subtree_control`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protocol::{CgroupVersion, Limits, Stats};

use super::files::StatFiles;
use super::stats::{self as parse, flat_keyed_value};
use super::{
    container_rel, cpu_quota_us, dir_in_mount, mkdir_leaf, page_round, read, read_opt, rmdir,
    rmdir_shared_parent, write, write_checked, CgroupError, CgroupRecord, EventCounters, HostPaths,
    CPU_PERIOD_US, V2_KEY,
};

/// Controllers enabled for containers; `io` is welcome but not required.
const WANTED: [&str; 4] = ["cpu", "memory", "pids", "io"];
const OPTIONAL: [&str; 1] = ["io"];
/// The leaf the runtime's own processes move to when its cgroup must enable controllers.
pub(crate) const RUNTIME_LEAF: &str = "glassbox-runtime";
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The mount point of the v2 hierarchy, the part of it that is mounted, and our own cgroup.
pub(crate) fn locate(host: &HostPaths) -> Result<(PathBuf, String, String), CgroupError> {
    let mounts = parse::parse_mountinfo(&read(&host.mountinfo)?);
    let root = host.cgroup_root.clone();
    let mount_root = mounts
        .iter()
        .rev()
        .find(|m| m.fstype == "cgroup2" && Path::new(&m.mount_point) == root)
        .map(|m| m.root.clone())
        .unwrap_or_else(|| "/".into());
    let own = parse::parse_proc_cgroup(&read(&host.proc_cgroup)?)
        .into_iter()
        .find(|l| l.hierarchy_id == 0 && l.controllers.is_empty())
        .map(|l| l.path)
        .ok_or_else(|| CgroupError::Parse {
            path: host.proc_cgroup.clone(),
            detail: "no `0::` line".into(),
        })?;
    // After a move into our leaf, "our cgroup" is still the one above it.
    let own = match own.strip_suffix(&format!("/{RUNTIME_LEAF}")) {
        Some("") => "/".to_string(),
        Some(p) => p.to_string(),
        None => own,
    };
    Ok((root, mount_root, own))
}

/// The record `create` would make for `id`, without touching the hierarchy.
pub(crate) fn plan(
    host: &HostPaths,
    parent: Option<&str>,
    id: &str,
) -> Result<CgroupRecord, CgroupError> {
    let (root, mount_root, own) = locate(host)?;
    let rel = container_rel(parent.unwrap_or(&own), id);
    let dir = dir_in_mount(&root, &mount_root, &rel)?;
    Ok(CgroupRecord {
        version: CgroupVersion::V2,
        path: rel,
        dirs: BTreeMap::from([(V2_KEY.to_string(), dir)]),
    })
}

pub(crate) fn create(
    host: &HostPaths,
    parent: Option<&str>,
    id: &str,
    limits: &Limits,
) -> Result<CgroupRecord, CgroupError> {
    let (root, mount_root, own) = locate(host)?;
    let parent_rel = parent.unwrap_or(&own);
    let rel = container_rel(parent_rel, id);
    let dir = dir_in_mount(&root, &mount_root, &rel)?;
    let parent_dir = dir_in_mount(&root, &mount_root, parent_rel)?;
    let own_dir = dir_in_mount(&root, &mount_root, &own).ok();
    std::fs::create_dir_all(&parent_dir).map_err(super::io_err("mkdir", &parent_dir))?;

    // Enable controllers in every ancestor from the mount root down to `<parent>/glassbox`, then
    // make the leaf. A concurrent `remove` may rmdir the shared `glassbox` directory in between
    // (and a re-made one has no controllers enabled), so check the leaf and retry.
    let gb = parent_dir.join("glassbox");
    for attempt in 0.. {
        std::fs::create_dir_all(&gb).map_err(super::io_err("mkdir", &gb))?;
        let mut chain: Vec<&Path> = gb
            .ancestors()
            .take_while(|a| a.starts_with(&root))
            .collect();
        chain.reverse();
        for d in chain {
            enable_controllers(d, own_dir.as_deref() == Some(d))?;
        }
        mkdir_leaf(&dir)?;
        let have = read(&dir.join("cgroup.controllers"))?;
        let have: Vec<&str> = have.split_whitespace().collect();
        let missing = WANTED
            .iter()
            .find(|c| !OPTIONAL.contains(c) && !have.contains(c));
        match missing {
            None => break,
            Some(c) if attempt >= 2 => {
                let _ = rmdir(&dir);
                return Err(CgroupError::ControllerMissing {
                    controller: c.to_string(),
                    detail: format!("not enabled for {}", dir.display()),
                });
            }
            Some(_) => rmdir(&dir).map_err(super::io_err("rmdir", &dir))?,
        }
    }
    if let Err(e) = apply_limits(&dir, limits) {
        tracing::warn!(cgroup = %rel, error = %e, "cgroup creation failed; undoing");
        if let Err(e) = rmdir(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove half-made cgroup");
        }
        rmdir_shared_parent(&dir);
        return Err(e);
    }
    Ok(CgroupRecord {
        version: CgroupVersion::V2,
        path: rel,
        dirs: BTreeMap::from([(V2_KEY.to_string(), dir)]),
    })
}

/// Writes `+c` to `dir/cgroup.subtree_control` for each wanted controller that `dir` has and
/// has not enabled yet. On EBUSY in our own cgroup, moves its processes to a leaf first.
fn enable_controllers(dir: &Path, is_own: bool) -> Result<(), CgroupError> {
    let available = read(&dir.join("cgroup.controllers"))?;
    let available: Vec<&str> = available.split_whitespace().collect();
    let ctl = dir.join("cgroup.subtree_control");
    let enabled = read(&ctl)?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let mut moved = false;
    for c in WANTED {
        if enabled.contains(&c) {
            continue;
        }
        if !available.contains(&c) {
            if OPTIONAL.contains(&c) {
                continue;
            }
            return Err(CgroupError::ControllerMissing {
                controller: c.into(),
                detail: format!("not in {}", dir.join("cgroup.controllers").display()),
            });
        }
        let mut res = std::fs::write(&ctl, format!("+{c}"));
        if let Err(e) = &res {
            if e.raw_os_error() == Some(libc::EBUSY) && is_own && !moved {
                move_processes_to_leaf(dir)?;
                moved = true;
                res = std::fs::write(&ctl, format!("+{c}"));
            }
        }
        match res {
            Ok(()) => tracing::debug!(dir = %dir.display(), controller = c, "controller enabled"),
            Err(e) if OPTIONAL.contains(&c) => {
                tracing::warn!(dir = %dir.display(), controller = c, error = %e, "optional controller not enabled")
            }
            Err(e) => return Err(super::io_err("write", &ctl)(e)),
        }
    }
    Ok(())
}

/// The no-internal-processes rule: move everything in `dir` into `dir/glassbox-runtime`.
fn move_processes_to_leaf(dir: &Path) -> Result<(), CgroupError> {
    let leaf = dir.join(RUNTIME_LEAF);
    if let Err(e) = std::fs::create_dir(&leaf) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(super::io_err("mkdir", &leaf)(e));
        }
    }
    let procs = leaf.join("cgroup.procs");
    for _ in 0..10 {
        let pids = parse::parse_pids(&read(&dir.join("cgroup.procs"))?);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // A process may exit meanwhile (ESRCH); anything else shows up in the retry.
            if let Err(e) = std::fs::write(&procs, pid.to_string()) {
                tracing::debug!(pid, error = %e, "could not move process to runtime leaf");
            }
        }
    }
    tracing::info!(from = %dir.display(), to = %leaf.display(), "moved the runtime's processes into a leaf cgroup so controllers can be enabled");
    Ok(())
}

pub(super) fn apply_limits(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    if let Some(bytes) = limits.memory_bytes {
        let v = page_round(bytes)?.to_string();
        write_checked(&dir.join("memory.max"), &v, &v)?;
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            write_checked(&swap, "0", "0")?;
        } else {
            tracing::debug!(dir = %dir.display(), "no memory.swap.max (no swap accounting)");
        }
    }
    let group = dir.join("memory.oom.group");
    if group.exists() {
        write_checked(&group, "1", "1")?;
    }
    if let Some(millis) = limits.cpu_millis {
        let v = format!("{} {CPU_PERIOD_US}", cpu_quota_us(millis)?);
        write_checked(&dir.join("cpu.max"), &v, &v)?;
    }
    if let Some(n) = limits.pids {
        let v = n.to_string();
        write_checked(&dir.join("pids.max"), &v, &v)?;
    }
    Ok(())
}

/// The value of `key` in the flat keyed file `name` (0 when absent).
fn keyed(
    files: &mut dyn StatFiles,
    dir: &Path,
    name: &'static str,
    key: &str,
) -> Result<u64, CgroupError> {
    Ok(opt(files, dir, name, |t| flat_keyed_value(t, key))?.unwrap_or(0))
}

fn opt<T>(
    files: &mut dyn StatFiles,
    dir: &Path,
    name: &'static str,
    f: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, CgroupError> {
    Ok(files.read(dir, name)?.and_then(f))
}

pub(crate) fn stats(dir: &Path, files: &mut dyn StatFiles) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if let Some(t) = files.read(dir, "cpu.stat")? {
        let get = |k| flat_keyed_value(t, k).unwrap_or(0);
        s.cpu_usage_ns = get("usage_usec").saturating_mul(1000);
        s.cpu_throttled_ns = get("throttled_usec").saturating_mul(1000);
        s.cpu_throttled_periods = get("nr_throttled");
    }
    s.cpu_limit_millis = opt(files, dir, "cpu.max", parse::parse_cpu_max)?.flatten();
    s.memory_current = opt(files, dir, "memory.current", parse::parse_u64)?.unwrap_or(0);
    s.memory_peak = opt(files, dir, "memory.peak", parse::parse_u64)?;
    s.memory_limit = opt(files, dir, "memory.max", parse::parse_max)?.flatten();
    s.pids_current = opt(files, dir, "pids.current", parse::parse_u64)?.unwrap_or(0);
    s.pids_limit = opt(files, dir, "pids.max", parse::parse_max)?.flatten();
    files.near_limit(super::files::near_limit(&s));
    let ev = event_counters(dir, files)?;
    s.oom_kills = ev.oom_kills;
    s.pids_limit_hits = ev.pids_limit_hits;
    if let Some((r, w)) = opt(files, dir, "io.stat", |t| Some(parse::parse_io_stat(t)))? {
        s.io_read_bytes = Some(r);
        s.io_write_bytes = Some(w);
    }
    Ok(s)
}

pub(crate) fn event_counters(
    dir: &Path,
    files: &mut dyn StatFiles,
) -> Result<EventCounters, CgroupError> {
    Ok(EventCounters {
        oom_kills: keyed(files, dir, "memory.events", "oom_kill")?,
        pids_limit_hits: keyed(files, dir, "pids.events", "max")?,
    })
}

/// `cgroup.kill` when the kernel has it (≥5.14), else SIGKILL in a loop; then rmdir.
pub(crate) fn remove(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    // The common case, a container whose processes have all exited (or a
    // directory already gone): the rmdir simply succeeds.
    if rmdir(dir).is_ok() {
        rmdir_shared_parent(dir);
        return Ok(());
    }
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() {
        write(&kill_file, "1")?;
    }
    loop {
        let pids = read_opt(&dir.join("cgroup.procs"))?
            .map(|t| parse::parse_pids(&t))
            .unwrap_or_default();
        if pids.is_empty() {
            break;
        }
        pids.iter().for_each(|&p| super::kill(p));
        if start.elapsed() > REMOVE_TIMEOUT {
            return Err(CgroupError::NotEmpty {
                path: dir.into(),
                pids,
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    super::rmdir_retrying(dir, start, REMOVE_TIMEOUT)?;
    rmdir_shared_parent(dir);
    Ok(())
}
