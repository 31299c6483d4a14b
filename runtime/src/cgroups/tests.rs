//! Fixture tests: fake v1 and v2 trees in a tempdir (no root, no real cgroupfs).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use protocol::{CgroupVersion, Limits};

use super::*;

struct Fake {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    host: HostPaths,
}

fn write_file(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write fixture");
}

/// A hybrid v1 host: `cpu,cpuacct` co-mounted, memory with its own path for us, blkio mounted
/// from a sub-directory of its hierarchy (as inside another container).
fn fake_v1(proc_cgroup: &str) -> Fake {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("cg");
    let r = root.display();
    let mountinfo = format!(
        "31 23 0:28 / {r} rw - tmpfs tmpfs rw\n\
         32 31 0:29 / {r}/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n\
         35 31 0:32 / {r}/memory rw - cgroup cgroup rw,memory\n\
         36 31 0:33 / {r}/pids rw - cgroup cgroup rw,pids\n\
         37 31 0:34 / {r}/freezer rw - cgroup cgroup rw,freezer\n\
         38 31 0:35 /docker/abc {r}/blkio rw - cgroup cgroup rw,blkio\n\
         40 31 0:37 / {r}/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
         41 31 0:38 / {r}/unified rw - cgroup2 cgroup2 rw\n"
    );
    for d in [
        "cpu,cpuacct",
        "memory/process_api/x",
        "pids",
        "freezer",
        "blkio/inner",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    write_file(&tmp.path().join("mountinfo"), &mountinfo);
    write_file(&tmp.path().join("cgroup"), proc_cgroup);
    let host = HostPaths {
        mountinfo: tmp.path().join("mountinfo"),
        proc_cgroup: tmp.path().join("cgroup"),
        cgroup_root: root.clone(),
    };
    Fake {
        _tmp: tmp,
        root,
        host,
    }
}

const V1_PROC_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n7:blkio:/docker/abc/inner\n\
                              6:freezer:/\n4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/\n";

#[test]
fn v1_hierarchies_from_mountinfo_and_proc_cgroup() {
    let f = fake_v1(V1_PROC_CGROUP);
    let hs = v1::hierarchies(&f.host).expect("hierarchies");
    assert_eq!(hs.len(), 6, "{hs:?}");
    let cpu = hs
        .iter()
        .find(|h| h.controllers.contains(&"cpuacct".into()))
        .expect("cpu");
    assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
    assert_eq!(cpu.mount_point, f.root.join("cpu,cpuacct"));
    let mem = hs
        .iter()
        .find(|h| h.controllers == ["memory"])
        .expect("memory");
    assert_eq!(mem.own_path, "/process_api/x");
    let blkio = hs
        .iter()
        .find(|h| h.controllers == ["blkio"])
        .expect("blkio");
    assert_eq!(blkio.mount_root, "/docker/abc");
}

#[test]
fn v1_create_makes_dirs_per_hierarchy_and_writes_limits() {
    let f = fake_v1(V1_PROC_CGROUP);
    let limits = Limits {
        memory_bytes: Some(64 << 20),
        cpu_millis: Some(250),
        pids: Some(10),
        disk_bytes: None,
    };
    let cg = Cgroup::create_on(
        &f.host,
        CgroupVersion::V1,
        &CgroupParent(None),
        "c1",
        &limits,
    )
    .expect("create");
    assert_eq!(cg.info().path, "/process_api/x/glassbox/c1");
    let d = |s: &str| f.root.join(s);
    assert_eq!(
        cg.dir_of("memory"),
        Some(d("memory/process_api/x/glassbox/c1").as_path())
    );
    // Co-mounted controllers share one directory; blkio is found through its mount root.
    assert_eq!(
        cg.dir_of("cpu"),
        Some(d("cpu,cpuacct/glassbox/c1").as_path())
    );
    assert_eq!(cg.dir_of("cpu"), cg.dir_of("cpuacct"));
    assert_eq!(
        cg.dir_of("blkio"),
        Some(d("blkio/inner/glassbox/c1").as_path())
    );
    assert_eq!(cg.dirs().len(), 5);
    assert_eq!(cg.procs_files().len(), 5);
    let read = |p: &str| fs::read_to_string(d(p)).expect("read");
    assert_eq!(
        read("memory/process_api/x/glassbox/c1/memory.limit_in_bytes"),
        "67108864"
    );
    // No memsw file in the fixture: swappiness 0 instead.
    assert_eq!(
        read("memory/process_api/x/glassbox/c1/memory.swappiness"),
        "0"
    );
    assert_eq!(read("cpu,cpuacct/glassbox/c1/cpu.cfs_quota_us"), "25000");
    assert_eq!(read("cpu,cpuacct/glassbox/c1/cpu.cfs_period_us"), "100000");
    assert_eq!(read("pids/glassbox/c1/pids.max"), "10");
    // A configured parent is used in every hierarchy instead of our own cgroup.
    let p = CgroupParent(Some("/docker/abc/ci".into()));
    let cg2 = Cgroup::create_on(&f.host, CgroupVersion::V1, &p, "c2", &Limits::default())
        .expect("create under parent");
    assert_eq!(
        cg2.dir_of("memory"),
        Some(d("memory/docker/abc/ci/glassbox/c2").as_path())
    );
    assert_eq!(
        cg2.dir_of("blkio"),
        Some(d("blkio/ci/glassbox/c2").as_path())
    );
}

#[test]
fn v1_create_failure_removes_what_it_made() {
    let f = fake_v1(V1_PROC_CGROUP);
    let bad = Limits {
        cpu_millis: Some(5),
        ..Limits::default()
    };
    let err = Cgroup::create_on(&f.host, CgroupVersion::V1, &CgroupParent(None), "c", &bad)
        .expect_err("5 millis is below the minimum");
    assert!(matches!(err, CgroupError::Invalid { .. }), "{err}");
    for h in [
        "memory/process_api/x",
        "cpu,cpuacct",
        "pids",
        "freezer",
        "blkio/inner",
    ] {
        assert!(!f.root.join(h).join("glassbox").exists(), "{h} left behind");
    }
}

#[test]
fn v1_missing_required_controller_and_unreachable_optional() {
    // No pids line for us: pids is required.
    let f = fake_v1("4:memory:/\n2:cpu,cpuacct:/\n7:blkio:/elsewhere\n");
    let err = Cgroup::create_on(
        &f.host,
        CgroupVersion::V1,
        &CgroupParent(None),
        "c",
        &Limits::default(),
    )
    .expect_err("pids missing");
    assert!(
        matches!(&err, CgroupError::ControllerMissing { controller, .. } if controller == "pids")
    );
    // blkio's own path is outside its mount: optional, so skipped.
    let f = fake_v1("4:memory:/\n2:cpu,cpuacct:/\n8:pids:/\n7:blkio:/elsewhere\n");
    let cg = Cgroup::create_on(
        &f.host,
        CgroupVersion::V1,
        &CgroupParent(None),
        "c",
        &Limits::default(),
    )
    .expect("create");
    assert!(cg.dir_of("blkio").is_none());
    assert!(cg.dir_of("memory").is_some());
}

/// A v1 cgroup whose `controllers` all live in the fixture directory `dir`.
fn v1_fixture_cgroup(dir: &Path, controllers: &[&str]) -> Cgroup {
    let dirs: BTreeMap<String, PathBuf> = controllers
        .iter()
        .map(|c| (c.to_string(), dir.to_path_buf()))
        .collect();
    Cgroup::open(&CgroupRecord {
        version: CgroupVersion::V1,
        path: "/glassbox/c".into(),
        dirs,
    })
}

fn fixture_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    for (name, text) in files {
        write_file(&dir.join(name), text);
    }
    (tmp, dir)
}

#[test]
fn v1_stats_from_realistic_files() {
    let (_t, dir) = fixture_dir(&[
        ("cpuacct.usage", "1234567890\n"),
        (
            "cpu.stat",
            "nr_periods 20\nnr_throttled 7\nthrottled_time 350000000\nnr_bursts 0\nburst_time 0\n",
        ),
        ("cpu.cfs_quota_us", "50000\n"),
        ("cpu.cfs_period_us", "100000\n"),
        ("memory.usage_in_bytes", "1048576\n"),
        ("memory.max_usage_in_bytes", "2097152\n"),
        ("memory.limit_in_bytes", "16777216\n"),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        ),
        ("pids.current", "2\n"),
        ("pids.max", "max\n"),
        ("pids.events", "max 4\n"),
        (
            "blkio.throttle.io_service_bytes",
            "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n",
        ),
    ]);
    let cg = v1_fixture_cgroup(&dir, &["cpu", "cpuacct", "memory", "pids", "blkio"]);
    let s = cg.stats().expect("stats");
    assert_eq!(s.cpu_usage_ns, 1234567890);
    assert_eq!(
        (s.cpu_throttled_ns, s.cpu_throttled_periods),
        (350000000, 7)
    );
    assert_eq!(s.cpu_limit_millis, Some(500));
    assert_eq!(
        (s.memory_current, s.memory_peak, s.memory_limit),
        (1 << 20, Some(2 << 20), Some(16 << 20))
    );
    assert_eq!((s.pids_current, s.pids_limit), (2, None));
    assert_eq!((s.oom_kills, s.pids_limit_hits), (3, 4));
    assert_eq!((s.io_read_bytes, s.io_write_bytes), (Some(4096), Some(512)));
    assert_eq!(
        cg.event_counters().expect("ev"),
        EventCounters {
            oom_kills: 3,
            pids_limit_hits: 4
        }
    );
    assert!(cg.v2_dir_fd().is_none());
}

#[test]
fn stats_reader_matches_stats_and_rereads_limits_now_and_then() {
    let (_t, dir) = fixture_dir(&[
        ("cpuacct.usage", "100\n"),
        ("memory.max_usage_in_bytes", "8192\n"),
        ("cpu.cfs_quota_us", "50000\n"),
        ("cpu.cfs_period_us", "100000\n"),
        ("memory.usage_in_bytes", "4096\n"),
        ("memory.limit_in_bytes", "16777216\n"),
        ("pids.current", "1\n"),
        ("pids.max", "64\n"),
    ]);
    let cg = v1_fixture_cgroup(&dir, &["cpu", "cpuacct", "memory", "pids"]);
    let mut reader = super::StatsReader::new(cg.clone());
    let (mut a, mut b) = (reader.stats().expect("reader"), cg.stats().expect("stats"));
    a.timestamp_ms = 0;
    b.timestamp_ms = 0;
    assert_eq!(a, b);
    // Counters are read every time, slow counters every SLOW_EVERY reads,
    // limits every LIMITS_EVERY reads.
    fs::write(dir.join("cpuacct.usage"), "200\n").expect("write");
    fs::write(dir.join("memory.max_usage_in_bytes"), "12288\n").expect("write");
    fs::write(dir.join("memory.limit_in_bytes"), "8388608\n").expect("write");
    let s = reader.stats().expect("reader");
    assert_eq!(
        (s.cpu_usage_ns, s.memory_peak, s.memory_limit),
        (200, Some(8192), Some(16 << 20))
    );
    for _ in 2..super::files::SLOW_EVERY {
        reader.stats().expect("reader");
    }
    assert_eq!(reader.stats().expect("reader").memory_peak, Some(12288));
    for _ in (super::files::SLOW_EVERY + 1)..super::files::LIMITS_EVERY {
        reader.stats().expect("reader");
    }
    assert_eq!(reader.stats().expect("reader").memory_limit, Some(8 << 20));
}

#[test]
fn stats_reader_reads_event_counters_every_sample_only_near_a_limit() {
    let (_t, dir) = fixture_dir(&[
        ("memory.usage_in_bytes", "4096\n"),
        ("memory.limit_in_bytes", "16777216\n"),
        ("memory.oom_control", "oom_kill 0\n"),
        ("pids.current", "1\n"),
        ("pids.max", "64\n"),
        ("pids.events", "max 0\n"),
    ]);
    let cg = v1_fixture_cgroup(&dir, &["memory", "pids"]);
    let mut reader = super::StatsReader::new(cg);
    let counts = |r: &mut super::StatsReader| {
        let s = r.stats().expect("reader");
        (s.oom_kills, s.pids_limit_hits)
    };
    assert_eq!(counts(&mut reader), (0, 0));
    // Far from both limits: a kill shows at the next slow read, not before.
    fs::write(dir.join("memory.oom_control"), "oom_kill 1\n").expect("write");
    for _ in 1..super::files::SLOW_EVERY {
        assert_eq!(counts(&mut reader), (0, 0));
    }
    assert_eq!(counts(&mut reader), (1, 0), "late, never lost");
    // Near the pids limit (52 of 64 is over 80 %): every sample looks.
    fs::write(dir.join("pids.current"), "52\n").expect("write");
    counts(&mut reader);
    fs::write(dir.join("pids.events"), "max 3\n").expect("write");
    assert_eq!(counts(&mut reader), (1, 3));
    fs::write(dir.join("memory.oom_control"), "oom_kill 2\n").expect("write");
    assert_eq!(counts(&mut reader), (2, 3));
}

#[test]
fn v1_stats_without_optional_controllers_and_with_junk() {
    let (_t, dir) = fixture_dir(&[
        ("cpuacct.usage", "\u{0}\u{1}garbage"),
        ("cpu.stat", "throttled_time lots\n"),
        ("cpu.cfs_quota_us", "-1\n"),
        ("cpu.cfs_period_us", "100000\n"),
        ("memory.limit_in_bytes", "9223372036854771712\n"),
        ("memory.oom_control", "oom_kill\n"),
    ]);
    let s = v1_fixture_cgroup(&dir, &["cpu", "cpuacct", "memory"])
        .stats()
        .expect("stats");
    assert_eq!(
        (s.cpu_usage_ns, s.cpu_throttled_ns, s.cpu_limit_millis),
        (0, 0, None)
    );
    assert_eq!(
        (s.memory_limit, s.memory_peak, s.pids_limit),
        (None, None, None)
    );
    assert_eq!(
        (s.io_read_bytes, s.io_write_bytes, s.oom_kills),
        (None, None, 0)
    );
}

#[test]
fn v2_stats_from_realistic_files() {
    let (_t, dir) = fixture_dir(&[
        ("cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 40\nnr_throttled 12\nthrottled_usec 900\n"),
        ("cpu.max", "10000 100000\n"),
        ("memory.current", "4096\n"),
        ("memory.peak", "8192\n"),
        ("memory.max", "16777216\n"),
        ("memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 1\n"),
        ("pids.current", "3\n"),
        ("pids.max", "5\n"),
        ("pids.events", "max 2\n"),
        ("io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"),
    ]);
    let rec = CgroupRecord {
        version: CgroupVersion::V2,
        path: "/glassbox/c".into(),
        dirs: BTreeMap::from([(V2_KEY.to_string(), dir.clone())]),
    };
    let cg = Cgroup::open(&rec);
    let s = cg.stats().expect("stats");
    assert_eq!(
        (s.cpu_usage_ns, s.cpu_throttled_ns, s.cpu_throttled_periods),
        (2_500_000, 900_000, 12)
    );
    assert_eq!(s.cpu_limit_millis, Some(100));
    assert_eq!(
        (s.memory_current, s.memory_peak, s.memory_limit),
        (4096, Some(8192), Some(16 << 20))
    );
    assert_eq!(
        (s.pids_current, s.pids_limit, s.pids_limit_hits, s.oom_kills),
        (3, Some(5), 2, 1)
    );
    assert_eq!((s.io_read_bytes, s.io_write_bytes), (Some(101), Some(202)));
    assert_eq!(cg.procs_files(), vec![dir.join("cgroup.procs")]);
    assert_eq!(cg.dir_of("memory"), Some(dir.as_path()));
    assert!(cg.v2_dir_fd().is_some());
    // Older kernels: no memory.peak, no io controller.
    fs::remove_file(dir.join("memory.peak")).expect("rm");
    fs::remove_file(dir.join("io.stat")).expect("rm");
    fs::write(dir.join("cpu.max"), "max 100000\n").expect("write");
    let s = cg.stats().expect("stats");
    assert_eq!(
        (s.memory_peak, s.io_read_bytes, s.cpu_limit_millis),
        (None, None, None)
    );
}

#[test]
fn v2_locate_sees_through_runtime_leaf() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("cg");
    write_file(
        &tmp.path().join("mountinfo"),
        &format!(
            "30 23 0:27 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            root.display()
        ),
    );
    let host = HostPaths {
        mountinfo: tmp.path().join("mountinfo"),
        proc_cgroup: tmp.path().join("cgroup"),
        cgroup_root: root.clone(),
    };
    for (line, own) in [
        (
            "0::/system.slice/gb.service/glassbox-runtime\n",
            "/system.slice/gb.service",
        ),
        ("0::/system.slice/gb.service\n", "/system.slice/gb.service"),
        ("0::/glassbox-runtime\n", "/"),
        ("0::/\n", "/"),
    ] {
        write_file(&host.proc_cgroup, line);
        let (r, mount_root, o) = v2::locate(&host).expect("locate");
        assert_eq!(
            (r.as_path(), mount_root.as_str(), o.as_str()),
            (root.as_path(), "/", own)
        );
    }
    write_file(&host.proc_cgroup, "4:memory:/\n");
    assert!(v2::locate(&host).is_err());
}

#[test]
fn paths_and_names() {
    assert_eq!(container_rel("/", "a"), "/glassbox/a");
    assert_eq!(container_rel("/x/y/", "a"), "/x/y/glassbox/a");
    let mp = Path::new("/m");
    assert_eq!(
        dir_in_mount(mp, "/", "/a/b").expect("in"),
        Path::new("/m/a/b")
    );
    assert_eq!(
        dir_in_mount(mp, "/d/e", "/d/e/f").expect("in"),
        Path::new("/m/f")
    );
    assert_eq!(
        dir_in_mount(mp, "/d/e", "/d/e").expect("in"),
        Path::new("/m/")
    );
    assert!(dir_in_mount(mp, "/d/e", "/d/ef").is_err());
    assert!(dir_in_mount(mp, "/d/e", "/x").is_err());
    for bad in ["", ".", "..", "a/b", "a\0b"] {
        assert!(validate_id(bad).is_err(), "{bad:?}");
    }
    assert!(validate_id("3f2a-b_c.d").is_ok());
    assert!(validate_parent("rel").is_err());
    assert!(validate_parent("/a/../b").is_err());
    assert!(validate_parent("/glassbox-ci").is_ok());
    assert_eq!(cpu_quota_us(100).expect("quota"), 10_000);
    assert_eq!(cpu_quota_us(2500).expect("quota"), 250_000);
    assert!(cpu_quota_us(9).is_err());
    assert!(page_round(100).is_err());
    assert_eq!(page_round(16 << 20).expect("round"), 16 << 20);
}

#[test]
fn errors_say_what_and_where() {
    let e = CgroupError::LimitNotApplied {
        file: "/sys/fs/cgroup/memory/x/memory.limit_in_bytes".into(),
        wanted: "16777216".into(),
        got: "9223372036854771712".into(),
    };
    let msg = e.to_string();
    assert!(msg.starts_with("cgroup limit not applied"), "{msg}");
    assert!(
        msg.contains("memory.limit_in_bytes") && msg.contains("16777216"),
        "{msg}"
    );
    let e = read(Path::new("/nonexistent/cgroup.procs")).expect_err("missing");
    assert!(
        e.to_string()
            .contains("could not read /nonexistent/cgroup.procs"),
        "{e}"
    );
    assert_eq!(read_opt(Path::new("/nonexistent/x")).expect("ok"), None);
}

#[test]
fn mkdir_leaf_survives_the_shared_parent_being_removed_meanwhile() {
    // A removal takes the shared `glassbox` directory away once it is
    // empty, at any moment of a concurrent create (a soak of 32 creates at
    // once got EEXIST out of create_dir_all: the parent existed at its
    // mkdir and was gone at its check). Here one thread makes and removes
    // leaves while another removes the parent whenever it is empty.
    let tmp = tempfile::tempdir().expect("tempdir");
    let shared = tmp.path().join("glassbox");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let remover = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_dir(&shared);
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let (mut made, mut failed) = (0u32, Vec::new());
    while std::time::Instant::now() < deadline {
        let leaf = shared.join(format!("leaf{made}"));
        match super::mkdir_leaf(&leaf) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&leaf);
            }
            Err(e) => failed.push(e.to_string()),
        }
        made += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    remover.join().expect("remover");
    assert!(
        failed.is_empty(),
        "{} of {made} creates failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
}
