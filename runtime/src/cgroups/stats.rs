//! Parsers for the text files of cgroupfs and procfs.
//!
//! Every function here is pure (text in, values out) and total: junk input
//! yields `None` or skips the junk line, never a panic.

/// Values at or above this are "no limit" in v1 files (the kernel prints
/// `PAGE_COUNTER_MAX * PAGE_SIZE`, a page-rounded `i64::MAX`).
pub const V1_UNLIMITED: u64 = 1 << 62;

/// A single unsigned number, e.g. `memory.current` or `cpuacct.usage`.
pub fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A limit that is either a number or `max` (v2 `memory.max`, `pids.max`).
/// `Some(None)` means "max" (no limit); `None` means junk.
pub fn parse_max(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        t => t.parse().ok().map(Some),
    }
}

/// A v1 byte limit: huge values mean "no limit".
pub fn parse_v1_limit(text: &str) -> Option<Option<u64>> {
    parse_u64(text).map(|v| (v < V1_UNLIMITED).then_some(v))
}

/// Flat keyed files: `key value` per line (`cpu.stat`, `memory.events`,
/// `memory.oom_control`, `pids.events`). The value of the first line that is
/// exactly `key` and an unsigned number; other lines are skipped. No map is
/// built: this is the stats sampler's hot path.
pub fn flat_keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) if k == key => v.parse().ok(),
            _ => None,
        }
    })
}

/// v2 `cpu.max`: `"<quota|max> <period>"`. Returns the limit in thousandths
/// of a CPU (`Some(None)` for `max`).
pub fn parse_cpu_max(text: &str) -> Option<Option<u32>> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: u64 = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    if quota == "max" {
        return Some(None);
    }
    millis_from_quota(quota.parse().ok()?, period).map(Some)
}

/// v1 `cpu.cfs_quota_us` + `cpu.cfs_period_us`; a negative quota is no limit.
pub fn parse_v1_cpu_limit(quota: &str, period: &str) -> Option<Option<u32>> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    if quota < 0 {
        return Some(None);
    }
    millis_from_quota(quota as u64, period).map(Some)
}

fn millis_from_quota(quota_us: u64, period_us: u64) -> Option<u32> {
    if period_us == 0 {
        return None;
    }
    let millis = quota_us.checked_mul(1000)? / period_us;
    u32::try_from(millis).ok()
}

/// v2 `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=..` per device; sums
/// `rbytes` and `wbytes` over devices.
pub fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        for field in line.split_whitespace().skip(1) {
            match field.split_once('=') {
                Some(("rbytes", v)) => r = r.saturating_add(v.parse().unwrap_or(0)),
                Some(("wbytes", v)) => w = w.saturating_add(v.parse().unwrap_or(0)),
                _ => {}
            }
        }
    }
    (r, w)
}

/// v1 `blkio.throttle.io_service_bytes`: `MAJ:MIN Read N` lines plus a
/// `Total N` line; sums the per-device `Read` and `Write` lines.
pub fn parse_blkio_service_bytes(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_dev, op, n] = f.as_slice() {
            let n: u64 = n.parse().unwrap_or(0);
            match *op {
                "Read" => r = r.saturating_add(n),
                "Write" => w = w.saturating_add(n),
                _ => {}
            }
        }
    }
    (r, w)
}

/// A `cgroup.procs` file: one pid per line.
pub fn parse_pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// One line of `/proc/<pid>/cgroup`: `id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub hierarchy_id: u32,
    /// Empty for the v2 line (`0::/path`); `name=systemd` style entries kept as is.
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let id = it.next()?.parse().ok()?;
            let ctrl = it.next()?;
            let path = it.next()?;
            if !path.starts_with('/') {
                return None;
            }
            Some(ProcCgroup {
                hierarchy_id: id,
                controllers: ctrl
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: path.to_string(),
            })
        })
        .collect()
}

/// The fields of a `/proc/self/mountinfo` line this module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the filesystem that is mounted (4th field).
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    /// Superblock options, split on commas (for cgroup v1: the controllers).
    pub super_options: Vec<String>,
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            if sep < 6 || f.len() < sep + 4 {
                return None;
            }
            Some(Mount {
                root: unescape(f[3]),
                mount_point: unescape(f[4]),
                fstype: f[sep + 1].to_string(),
                super_options: f[sep + 3].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Undo mountinfo's octal escapes (`\040` for a space, etc.).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let oct = b
                .get(i + 1..i + 4)
                .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
            if let Some(v) =
                oct.and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_max() {
        assert_eq!(parse_u64("123\n"), Some(123));
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_max("max\n"), Some(None));
        assert_eq!(parse_max("16777216\n"), Some(Some(16777216)));
        assert_eq!(parse_max("maxx"), None);
        assert_eq!(parse_v1_limit("9223372036854771712\n"), Some(None));
        assert_eq!(parse_v1_limit("16777216\n"), Some(Some(16777216)));
        assert_eq!(parse_v1_limit("\u{0}\u{1}"), None);
    }

    #[test]
    fn flat_keyed_v2_cpu_stat() {
        let t = "usage_usec 1520\nuser_usec 1000\nsystem_usec 520\nnr_periods 12\n\
                 nr_throttled 3\nthrottled_usec 45000\nnr_bursts 0\nburst_usec 0\n";
        assert_eq!(flat_keyed_value(t, "usage_usec"), Some(1520));
        assert_eq!(flat_keyed_value(t, "nr_throttled"), Some(3));
        assert_eq!(flat_keyed_value(t, "throttled_usec"), Some(45000));
        assert_eq!(flat_keyed_value(t, "usage"), None, "a key is a whole word");
    }

    #[test]
    fn flat_keyed_v1_files() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(flat_keyed_value(oom, "oom_kill"), Some(2));
        let cpu = "nr_periods 10\nnr_throttled 4\nthrottled_time 123456789\n";
        assert_eq!(flat_keyed_value(cpu, "throttled_time"), Some(123456789));
        assert_eq!(flat_keyed_value("max 7\n", "max"), Some(7));
        let ev = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 1\n";
        assert_eq!(flat_keyed_value(ev, "oom_kill"), Some(1));
        assert_eq!(flat_keyed_value(ev, "max"), Some(5));
    }

    #[test]
    fn flat_keyed_skips_junk() {
        let t = "oom_kill\noom_kill x\n a b c\n\u{fffd}\u{0} 3\nmax -4\n\n  ok 9  \n";
        assert_eq!(flat_keyed_value(t, "ok"), Some(9));
        assert_eq!(flat_keyed_value(t, "\u{fffd}\u{0}"), Some(3));
        assert_eq!(flat_keyed_value(t, "oom_kill"), None);
        assert_eq!(flat_keyed_value(t, "max"), None);
        assert_eq!(flat_keyed_value(t, "a"), None);
        assert_eq!(flat_keyed_value("", "ok"), None);
    }

    #[test]
    fn cpu_limits() {
        assert_eq!(parse_cpu_max("max 100000\n"), Some(None));
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(Some(500)));
        assert_eq!(parse_cpu_max("10000 100000"), Some(Some(100)));
        assert_eq!(parse_cpu_max("10000 0"), None);
        assert_eq!(parse_cpu_max("10000"), None);
        assert_eq!(parse_cpu_max("a b"), None);
        assert_eq!(parse_cpu_max("1 2 3"), None);
        assert_eq!(parse_cpu_max(&format!("{} 1", u64::MAX)), None);
        assert_eq!(parse_v1_cpu_limit("-1\n", "100000\n"), Some(None));
        assert_eq!(parse_v1_cpu_limit("25000\n", "100000\n"), Some(Some(250)));
        assert_eq!(parse_v1_cpu_limit("x", "100000"), None);
    }

    #[test]
    fn io_stat_sums_devices() {
        let t = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
                 253:0 rbytes=100 wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(t), (4196, 8193));
        assert_eq!(parse_io_stat(""), (0, 0));
        assert_eq!(parse_io_stat("8:0 rbytes=x wbytes\n=\n"), (0, 0));
    }

    #[test]
    fn blkio_sums_read_write() {
        let t = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 4608\n8:0 Async 0\n8:0 Discard 0\n\
                 8:0 Total 4608\n8:16 Read 4\n8:16 Write 4\nTotal 4616\n";
        assert_eq!(parse_blkio_service_bytes(t), (4100, 516));
        assert_eq!(parse_blkio_service_bytes("Total 0\n"), (0, 0));
        assert_eq!(parse_blkio_service_bytes("8:0 Read\nRead 1 2 3\n"), (0, 0));
    }

    #[test]
    fn pids_list() {
        assert_eq!(parse_pids("12\n345\n\njunk\n7"), vec![12, 345, 7]);
    }

    #[test]
    fn proc_cgroup_hybrid_and_v2() {
        let t =
            "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/bfd8\n2:cpu,cpuacct:/a/b\n0::/\n";
        let v = parse_proc_cgroup(t);
        assert_eq!(v.len(), 5);
        assert_eq!(v[2].controllers, vec!["memory"]);
        assert_eq!(v[2].path, "/process_api/bfd8");
        assert_eq!(v[3].controllers, vec!["cpu", "cpuacct"]);
        assert!(v[4].controllers.is_empty());
        // a path may itself contain ':'
        assert_eq!(parse_proc_cgroup("0::/a:b\n")[0].path, "/a:b");
        assert!(parse_proc_cgroup("x::/\n4:memory\n4:memory:rel\n").is_empty());
    }

    #[test]
    fn mountinfo_cgroup_mounts() {
        let t = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                 32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n\
                 41 31 0:38 /sub /sys/fs/cgroup/unified\\040dir rw,relatime - cgroup2 cgroup2 rw\n\
                 garbage line\n1 2 - x\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].fstype, "cgroup");
        assert_eq!(m[1].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
        assert!(m[1].super_options.contains(&"cpuacct".to_string()));
        assert_eq!(m[2].root, "/sub");
        assert_eq!(m[2].mount_point, "/sys/fs/cgroup/unified dir");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\"), "\\");
        assert_eq!(unescape("\\999x"), "\\999x");
    }
}
