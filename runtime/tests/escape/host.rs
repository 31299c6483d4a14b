//! What the host looks like before and after a class of attempts: the
//! kernel knobs a container must never reach, the host's mount table, its
//! cgroup release agents, a file outside the state dir, and its memory.

use super::report::Report;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Host files whose content must never change because of a container.
const KNOBS: &[&str] = &[
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/sysrq",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/vm/panic_on_oom",
    "/sys/kernel/uevent_helper",
];

/// Every mount point an attempt makes inside a container carries this, so a
/// mount that leaks out to the host is found even while other tests (or
/// other users of the host) mount things of their own.
pub const MOUNT_MARK: &str = "gbx-escape-";

pub struct HostSnapshot {
    files: BTreeMap<PathBuf, Option<String>>,
    binfmt: Vec<String>,
    sentinel: Sentinel,
    /// Kernel uptime (s) when the snapshot was taken: later global OOM lines count.
    since: f64,
}

/// A file of the host outside the state dir, which no container may see or change.
pub struct Sentinel {
    pub path: PathBuf,
    pub content: String,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl HostSnapshot {
    pub fn take(class: &str) -> HostSnapshot {
        let mut files = BTreeMap::new();
        for knob in KNOBS {
            files.insert(PathBuf::from(knob), std::fs::read_to_string(knob).ok());
        }
        for agent in release_agents() {
            let v = std::fs::read_to_string(&agent).ok();
            files.insert(agent, v);
        }
        let path = std::env::temp_dir().join(format!(
            "{MOUNT_MARK}sentinel-{class}-{}",
            std::process::id()
        ));
        let content = format!("host file of {class}\n");
        std::fs::write(&path, &content).expect("writing the sentinel file");
        HostSnapshot {
            files,
            binfmt: binfmt_entries(),
            sentinel: Sentinel { path, content },
            since: runtime::kmsg::uptime_secs(),
        }
    }

    pub fn sentinel(&self) -> &Path {
        &self.sentinel.path
    }

    /// Compare the host with the snapshot; one row per thing checked.
    pub fn verify(&self, report: &mut Report) {
        let mut changed = Vec::new();
        for (path, before) in &self.files {
            let now = std::fs::read_to_string(path).ok();
            if &now != before {
                changed.push(format!("{}: {before:?} -> {now:?}", path.display()));
            }
        }
        report.verdict(
            "host: kernel knobs and cgroup release agents unchanged",
            changed.is_empty(),
            &format!("{} files as before", self.files.len()),
            &changed.join("; "),
        );
        let binfmt = binfmt_entries();
        report.verdict(
            "host: binfmt_misc entries unchanged",
            binfmt == self.binfmt,
            &format!("{} entries as before", binfmt.len()),
            &format!("{:?} -> {binfmt:?}", self.binfmt),
        );
        let leaked: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(MOUNT_MARK))
            .map(str::to_string)
            .collect();
        report.verdict(
            "host: no mount of an attempt in the host's mount table",
            leaked.is_empty(),
            "none",
            &leaked.join("; "),
        );
        let now = std::fs::read_to_string(&self.sentinel.path).ok();
        report.verdict(
            "host: a file outside the state dir unchanged",
            now.as_deref() == Some(self.sentinel.content.as_str()),
            "same content",
            &format!("{now:?}"),
        );
        let oom = runtime::kmsg::global_oom_kills_since(self.since)
            .unwrap_or_else(|e| vec![format!("reading the kernel log: {e}")]);
        report.verdict(
            "host: no global OOM kill (kernel log)",
            oom.is_empty(),
            "none since the class started",
            &oom.join("; "),
        );
        let avail = mem_available();
        report.verdict(
            "host: memory not exhausted",
            avail > 128 << 20,
            &format!("{} MiB available", avail >> 20),
            &format!("only {} MiB available", avail >> 20),
        );
    }
}

fn release_agents() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("release_agent"))
        .filter(|p| p.exists())
        .collect();
    v.sort();
    v
}

fn binfmt_entries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemAvailable:")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb << 10)
}
