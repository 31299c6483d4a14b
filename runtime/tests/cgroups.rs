//! Real cgroup tests: run as root, on cgroup v1 (hybrid) and pure v2 hosts alike.
//! `cargo test -p runtime --test cgroups`; every test is named `cgroup_*`.
//! Only `/bin/busybox` is needed in the environment.

use std::io::Write;
use std::ops::Deref;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::{CgroupVersion, Limits};
use runtime::cgroups::{Cgroup, CgroupParent, CgroupRecord, StatsReader};

const BUSYBOX: &str = "/bin/busybox";
const MIB: u64 = 1024 * 1024;

/// Removes the cgroup even when the test fails.
struct Guard(Cgroup);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove() {
            eprintln!("cleanup of {} failed: {e}", self.0.info().path);
        }
    }
}

impl Deref for Guard {
    type Target = Cgroup;
    fn deref(&self) -> &Cgroup {
        &self.0
    }
}

/// Kills and reaps the child even when the test fails.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn id(name: &str) -> String {
    format!("test-{name}-{}", std::process::id())
}

fn create(name: &str, limits: Limits) -> Guard {
    let cg = Cgroup::create(&CgroupParent(None), &id(name), &limits)
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    Guard(cg)
}

/// Spawns `busybox sh -c script` inside `cg`: the shell waits on stdin until it has been moved.
fn spawn_in(cg: &Cgroup, script: &str) -> Proc {
    let mut child = Command::new(BUSYBOX)
        .args(["sh", "-c", &format!("read go; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn busybox");
    let pid = child.id() as i32;
    cg.add_pid(pid).expect("add_pid");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("release child");
    Proc(child)
}

fn wait_exit(p: &mut Proc, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = p.0.try_wait().expect("try_wait") {
            return st;
        }
        assert!(
            start.elapsed() < timeout,
            "child still running after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn cgroup_create_limits_stats_pids_remove() {
    let limits = Limits {
        memory_bytes: Some(64 * MIB),
        cpu_millis: Some(500),
        pids: Some(32),
        disk_bytes: None,
    };
    let cg = create("basic", limits);
    let info = cg.info();
    assert!(
        info.path.ends_with(&format!("/glassbox/{}", id("basic"))),
        "{info:?}"
    );

    // The files hold the limits.
    let (mem, cpu, pids) = (
        cg.dir_of("memory").expect("memory dir").to_path_buf(),
        cg.dir_of("cpu").expect("cpu dir").to_path_buf(),
        cg.dir_of("pids").expect("pids dir").to_path_buf(),
    );
    match info.version {
        CgroupVersion::V1 => {
            assert_eq!(
                read(mem.join("memory.limit_in_bytes")),
                (64 * MIB).to_string()
            );
            let memsw = mem.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read(memsw), (64 * MIB).to_string());
            }
            assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        }
        CgroupVersion::V2 => {
            assert_eq!(read(mem.join("memory.max")), (64 * MIB).to_string());
            if mem.join("memory.swap.max").exists() {
                assert_eq!(read(mem.join("memory.swap.max")), "0");
            }
            assert_eq!(read(cpu.join("cpu.max")), "50000 100000");
        }
    }
    assert_eq!(read(pids.join("pids.max")), "32");

    // The record survives a round trip and reopens the same cgroup.
    let json = serde_json::to_string(&cg.record()).expect("serialize");
    let back: CgroupRecord = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(Cgroup::open(&back).record(), cg.record());

    // A real process moves in and shows up.
    let child = spawn_in(&cg, &format!("exec {BUSYBOX} sleep 5"));
    let pid = child.0.id() as i32;
    assert!(cg.pids().expect("pids").contains(&pid));
    for f in cg.procs_files() {
        assert!(read(f).lines().any(|l| l == pid.to_string()));
    }

    std::thread::sleep(Duration::from_millis(100));
    let s = cg.stats().expect("stats");
    assert_eq!(s.memory_limit, Some(64 * MIB));
    assert_eq!(s.cpu_limit_millis, Some(500));
    assert_eq!(s.pids_limit, Some(32));
    assert!(s.pids_current >= 1, "{s:?}");
    assert!(s.cpu_usage_ns > 0, "{s:?}");
    assert!(
        s.memory_current > 0 && s.memory_current <= 64 * MIB,
        "{s:?}"
    );
    assert!(s.timestamp_ms > 1_600_000_000_000, "{s:?}");
    assert_eq!((s.oom_kills, s.pids_limit_hits), (0, 0));

    // remove() kills the process and leaves no directory behind in any hierarchy.
    let dirs = cg.dirs();
    assert!(!dirs.is_empty());
    cg.remove().expect("remove");
    let mut child = child;
    let st = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(st.signal(), Some(9), "{st:?}");
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    cg.remove().expect("remove is idempotent");
}

#[test]
fn cgroup_stats_reader_keeps_files_open_and_follows_changes() {
    let limits = Limits {
        memory_bytes: Some(64 * MIB),
        cpu_millis: Some(500),
        pids: Some(32),
        disk_bytes: None,
    };
    let cg = create("reader", limits);
    let _one = spawn_in(&cg, &format!("exec {BUSYBOX} sleep 10"));
    std::thread::sleep(Duration::from_millis(100));
    let mut reader = StatsReader::new((*cg).clone());
    let (kept, fresh) = (reader.stats().expect("reader"), cg.stats().expect("stats"));
    assert!(reader.open_files() >= 4, "{} files", reader.open_files());
    assert_eq!(
        (kept.memory_limit, kept.cpu_limit_millis, kept.pids_limit),
        (fresh.memory_limit, fresh.cpu_limit_millis, fresh.pids_limit)
    );
    assert_eq!(
        (kept.memory_limit, kept.pids_limit),
        (Some(64 * MIB), Some(32))
    );
    assert_eq!(kept.pids_current, 1, "{kept:?}");
    assert!(kept.memory_current > 0, "{kept:?}");
    // The files held open show what changed since (pread from offset 0).
    let _two = spawn_in(&cg, &format!("exec {BUSYBOX} sleep 10"));
    let files = reader.open_files();
    let again = reader.stats().expect("reader again");
    assert_eq!(again.pids_current, 2, "{again:?}");
    assert!(again.cpu_usage_ns >= kept.cpu_usage_ns);
    assert_eq!(reader.open_files(), files, "no file opened twice");
    // A removed cgroup is an error, not stale figures.
    cg.remove().expect("remove");
    assert!(reader.stats().is_err(), "stats of a removed cgroup");
}

#[test]
fn cgroup_oom_kill_is_counted_and_watched() {
    let cg = create(
        "oom",
        Limits {
            memory_bytes: Some(16 * MIB),
            ..Limits::default()
        },
    );
    let watch = cg.watch().expect("watch");
    assert!(watch.covers_oom(), "no OOM notification on this host");
    assert!(
        !watch.wait(Duration::ZERO).expect("wait"),
        "readable before any OOM"
    );
    // Doubling a shell string grows the shell's memory without bound.
    let mut child = spawn_in(&cg, "x=0123456789abcdef; while :; do x=$x$x; done");
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(st.signal(), Some(9), "hog was not OOM-killed: {st:?}");
    assert!(
        watch.wait(Duration::from_secs(5)).expect("wait"),
        "watch fd not readable after OOM"
    );
    let ev = cg.event_counters().expect("event counters");
    assert!(ev.oom_kills >= 1, "{ev:?}");
    assert_eq!(cg.stats().expect("stats").oom_kills, ev.oom_kills);
    // Let the kernel finish its burst of notifications (oom, oom_kill, oom_group_kill) first.
    std::thread::sleep(Duration::from_millis(200));
    let mut watch = watch;
    watch.drain();
    assert!(
        !watch.wait(Duration::from_millis(50)).expect("wait"),
        "still readable after drain"
    );
}

#[test]
fn cgroup_pids_limit_hits_are_counted_and_watched() {
    let cg = create(
        "pids",
        Limits {
            pids: Some(5),
            ..Limits::default()
        },
    );
    let watch = cg.watch().expect("watch");
    // v1 kernels do not notify pids.events; there the caller polls event_counters() instead.
    let v2 = cg.info().version == CgroupVersion::V2;
    assert_eq!(watch.covers_pids(), v2);
    let script = format!("for i in 1 2 3 4 5 6 7 8; do {BUSYBOX} sleep 1 & done; wait");
    let mut child = spawn_in(&cg, &script);
    wait_exit(&mut child, Duration::from_secs(20));
    let ev = cg.event_counters().expect("event counters");
    assert!(ev.pids_limit_hits >= 1, "{ev:?}");
    if v2 {
        assert!(
            watch.wait(Duration::from_secs(2)).expect("wait"),
            "watch fd not readable"
        );
    }
    let s = cg.stats().expect("stats");
    assert_eq!(s.pids_limit, Some(5));
    assert_eq!(s.pids_limit_hits, ev.pids_limit_hits);
}

#[test]
fn cgroup_cpu_limit_throttles() {
    let cg = create(
        "cpu",
        Limits {
            cpu_millis: Some(100),
            ..Limits::default()
        },
    );
    let _child = spawn_in(&cg, "while :; do :; done");
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    let s = cg.stats().expect("stats");
    let wall = start.elapsed().as_nanos() as u64;
    assert_eq!(s.cpu_limit_millis, Some(100));
    assert!(
        s.cpu_throttled_ns > 0 && s.cpu_throttled_periods > 0,
        "{s:?}"
    );
    // 10% of a CPU, with generous slack for the period boundaries.
    assert!(
        s.cpu_usage_ns > 0 && s.cpu_usage_ns < wall / 3,
        "used {} of {wall} ns",
        s.cpu_usage_ns
    );
}

#[test]
fn cgroup_failed_create_leaves_nothing() {
    let probe = create("probe", Limits::default());
    let parents: Vec<PathBuf> = probe
        .dirs()
        .iter()
        .filter_map(|d| d.parent().map(PathBuf::from))
        .collect();
    // 5 millis is below the kernel's 1 ms quota minimum: refused after the directories exist.
    let bad = Limits {
        pids: Some(8),
        cpu_millis: Some(5),
        ..Limits::default()
    };
    let err = Cgroup::create(&CgroupParent(None), &id("bad"), &bad).expect_err("must fail");
    assert!(err.to_string().contains("cpu"), "{err}");
    for p in &parents {
        assert!(
            !p.join(id("bad")).exists(),
            "half-made cgroup under {}",
            p.display()
        );
    }
    // The same id twice is refused and does not disturb the first.
    let again = Cgroup::create(&CgroupParent(None), &id("probe"), &Limits::default());
    assert!(again.is_err());
    assert!(probe.dirs().iter().all(|d| d.exists()));
    assert!(Cgroup::create(&CgroupParent(None), "../x", &Limits::default()).is_err());
}

#[test]
fn cgroup_lives_under_own_cgroup_or_given_parent() {
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let cg = create("where", Limits::default());
    let path = cg.info().path;
    let memory_line = own
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "memory"))
        })
        .or_else(|| own.lines().find(|l| l.starts_with("0::")))
        .expect("own cgroup line");
    let own_path = memory_line
        .splitn(3, ':')
        .nth(2)
        .expect("path")
        .trim_end_matches('/');
    let own_path = own_path.trim_end_matches("/glassbox-runtime");
    assert_eq!(path, format!("{own_path}/glassbox/{}", id("where")));

    let parent = format!("/glassbox-test-{}", std::process::id());
    let cg2 = Guard(
        Cgroup::create(
            &CgroupParent(Some(parent.clone())),
            &id("where"),
            &Limits::default(),
        )
        .expect("create under parent"),
    );
    assert_eq!(
        cg2.info().path,
        format!("{parent}/glassbox/{}", id("where"))
    );
    let dirs = cg2.dirs();
    drop(cg2);
    for d in dirs {
        assert!(!d.exists());
        // Clean up the test parent itself (runtime leaves configured parents alone).
        if let Some(p) = d.parent().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir(p);
        }
    }
}
