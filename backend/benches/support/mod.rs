//! What the scale benches (soak, load, stats_scale) measure on the host:
//! mounts, container cgroup directories, the server's fds, threads and
//! memory, processes and supervisors, CPU time. Everything comes from /proc
//! and cgroupfs, read the same way on cgroup v1 and v2.
//!
//! The server runs in the bench's own process (see tests/common), so "the
//! server" is `/proc/self`; its supervisors are the `glassbox-supervisor`
//! processes whose command line names the server's state dir.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The in-process server's log on stderr: warnings and errors by default
/// (an internal error's detail is only there), `RUST_LOG` for more.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(env(name, default as usize) as u64)
}

/// The p-th percentile in milliseconds (sorts `v`).
pub fn pct_ms(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

/// A cgroup parent of our own, so that the directories counted are this
/// bench's only (other servers on the host use the default parent).
pub fn cgroup_parent(bench: &str) -> String {
    format!("/glassbox-bench-{bench}-{}", std::process::id())
}

/// Mount points of every cgroup hierarchy (v1 controllers and cgroup2).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let point = left.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(point))
        })
        .collect()
}

/// Container cgroup directories under `parent` in every hierarchy
/// (`<mount>/<parent>/glassbox/<id>`).
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    let mut dirs = Vec::new();
    for m in cgroup_mounts() {
        if let Ok(rd) = std::fs::read_dir(m.join(rel).join("glassbox")) {
            dirs.extend(
                rd.flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path()),
            );
        }
    }
    dirs
}

/// Remove the (empty) cgroup parent directories a bench made.
pub fn remove_cgroup_parent(parent: &str) {
    let rel = parent.trim_start_matches('/');
    for m in cgroup_mounts() {
        let p = m.join(rel);
        let _ = std::fs::remove_dir(p.join("glassbox"));
        let _ = std::fs::remove_dir(&p);
    }
}

/// Memory charged to the containers under `parent`, in bytes: the
/// `glassbox` directory's hierarchical usage (v1 memory.usage_in_bytes, v2
/// memory.current). Warm-pool containers are included.
pub fn charged_memory(parent: &str) -> u64 {
    let rel = parent.trim_start_matches('/');
    for m in cgroup_mounts() {
        let d = m.join(rel).join("glassbox");
        for f in ["memory.usage_in_bytes", "memory.current"] {
            if let Some(v) = read_u64(&d.join(f)) {
                return v;
            }
        }
    }
    0
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// A `Key:   1234 kB` field of /proc/PID/status or smaps_rollup, in KiB.
pub fn kib_field(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Pids of every process on the host.
pub fn host_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Supervisors of the server whose state dir is `state_dir`.
pub fn supervisors(state_dir: &Path) -> Vec<i32> {
    let needle = state_dir.as_os_str().as_encoded_bytes();
    host_pids()
        .into_iter()
        .filter(|pid| {
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            cmd.starts_with(b"glassbox-supervisor\0")
                && cmd.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

/// Proportional and resident set size of `pid`, KiB.
pub fn pss_rss_kib(pid: i32) -> (u64, u64) {
    let f = format!("/proc/{pid}/smaps_rollup");
    (kib_field(&f, "Pss"), kib_field(&f, "Rss"))
}

/// utime + stime of `pid` (all its threads), in seconds.
pub fn cpu_secs(pid: i32) -> f64 {
    let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) in parentheses.
    let Some((_, rest)) = t.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / clock_ticks()
}

pub fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// Busy and total jiffies of the whole host (first line of /proc/stat).
pub fn host_cpu() -> (u64, u64) {
    let t = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = t
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Wait (up to `limit`) until the host has been nearly idle (under 5 % of
/// its CPUs) for a quarter of a second. Deleting containers leaves the
/// kernel work behind (network namespaces are torn down by a kernel
/// worker, for a second or more after 50 deletes): a round that starts
/// during it measures that work, not ours.
pub async fn quiet_host(limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        let (b0, t0) = host_cpu();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (b1, t1) = host_cpu();
        if (b1 - b0) * 20 < (t1 - t0).max(1) {
            return;
        }
    }
}

/// The figures a leak would move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub mounts_total: usize,
    pub mounts_state: usize,
    pub cgroup_dirs: usize,
    pub fds: usize,
    pub threads: u64,
    pub host_procs: usize,
    pub supervisors: usize,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// Bytes in live allocations (glibc `mallinfo2`, every arena), in KiB:
    /// what a leak grows. RSS also grows with freed memory the allocator
    /// keeps (fragmentation, arenas sized for the peak), which is not a leak.
    pub heap_kib: u64,
}

/// The glibc tunable that turns off malloc's per-thread caches.
const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";

/// Re-exec this bench with malloc's per-thread caches off, unless they are
/// off already. A chunk parked in a thread's cache counts as in use, so
/// with 40 threads [`heap_in_use_kib`] would swing by megabytes with which
/// threads ran last; without the caches it counts live allocations only.
/// Call first thing in `main` (after the supervisor entry point).
pub fn without_malloc_thread_caches() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.split(':').any(|t| t == NO_TCACHE) {
        return;
    }
    let value = if tunables.is_empty() {
        NO_TCACHE.to_string()
    } else {
        format!("{tunables}:{NO_TCACHE}")
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", value)
        .exec();
    println!("could not re-exec without malloc's thread caches ({err}); heap figures are rough");
}

/// KiB in live malloc allocations of this process, over all arenas.
pub fn heap_in_use_kib() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's own counters.
    let info = unsafe { libc::mallinfo2() };
    ((info.uordblks + info.hblkhd) / 1024) as u64
}

impl Figures {
    pub fn now(state_dir: &Path, parent: &str) -> Figures {
        let mounts_total = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| t.lines().count())
            .unwrap_or(0);
        Figures {
            mounts_total,
            mounts_state: runtime::rootfs::rw::mounts_under(state_dir).len(),
            cgroup_dirs: cgroup_dirs(parent).len(),
            fds: std::fs::read_dir("/proc/self/fd")
                .map(|d| d.count())
                .unwrap_or(0),
            threads: kib_field("/proc/self/status", "Threads"),
            host_procs: host_pids().len(),
            supervisors: supervisors(state_dir).len(),
            rss_kib: kib_field("/proc/self/status", "VmRSS"),
            hwm_kib: kib_field("/proc/self/status", "VmHWM"),
            heap_kib: heap_in_use_kib(),
        }
    }

    pub fn print(&self, label: &str) {
        println!(
            "{label:<14} mounts {} (state dir {}) | cgroup dirs {} | server fds {} threads {} \
             RSS {} KiB HWM {} KiB heap in use {} KiB | host processes {} supervisors {}",
            self.mounts_total,
            self.mounts_state,
            self.cgroup_dirs,
            self.fds,
            self.threads,
            self.rss_kib,
            self.hwm_kib,
            self.heap_kib,
            self.host_procs,
            self.supervisors
        );
    }
}

/// A kernel setting raised for a run and put back when dropped.
pub struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    /// Raise `/proc/sys/<name>` to at least `min`; `None` if it already was.
    pub fn at_least(name: &str, min: u64) -> Option<Sysctl> {
        let path = Path::new("/proc/sys").join(name);
        let old = std::fs::read_to_string(&path).ok()?;
        let cur: u64 = old.trim().parse().ok()?;
        if cur >= min {
            println!("{name} = {cur} (enough)");
            return None;
        }
        match std::fs::write(&path, min.to_string()) {
            Ok(()) => {
                println!("{name} raised {cur} -> {min} for the run");
                Some(Sysctl { path, old })
            }
            Err(e) => {
                println!("{name} = {cur}; could not raise it to {min}: {e}");
                None
            }
        }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, self.old.trim());
    }
}

pub mod fleet;
