//! Containers as a user sees them: real namespaces, cgroups, overlay and pty,
//! driven through the real `gbx` binary. Run as root.

mod common;

use common::{pool_ids, ready_pool_ids, wait_for, Env, Screen};
use std::time::Duration;

#[test]
fn container_pid1_hostname_and_only_loopback() {
    let env = Env::new();
    let out = env.ok(&[
        "run",
        "--rm",
        "--no-init",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $$; hostname; ls /sys/class/net",
    ]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1", "box", "lo"], "{out}");
    // With init (the default), PID 1 is Glassbox's init and the command is its child.
    let out = env.ok(&[
        "run",
        "--rm",
        "--name",
        "named",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/comm; echo $$; hostname",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["glassbox-init", "2", "named"],
        "{out}"
    );
    // Only the container's processes are visible.
    let out = env.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ls -d /proc/[0-9]* | wc -l",
    ]);
    let n: u32 = out.trim().parse().expect("count");
    assert!(
        n <= 4,
        "container sees {n} processes: host processes leak in"
    );
    env.assert_clean();
}

#[test]
fn container_namespaces_differ_from_host_and_exec_joins_them() {
    let env = Env::new();
    let id = env.detached(&[], &["sleep", "60"]);
    let info = env.inspect(&id);
    assert_eq!(info["state"], "running");
    let host_pid = info["host_pid"].as_u64().expect("host pid");
    assert!(host_pid > 1);
    for kind in ["user", "pid", "net", "mnt", "uts", "ipc", "cgroup"] {
        let ns = &info["namespaces"][kind];
        let inside = ns["inode"].as_u64().expect("inode");
        assert_ne!(
            inside,
            ns["host_inode"].as_u64().expect("host inode"),
            "{kind} is not isolated"
        );
        // What inspect says is what the kernel says for PID 1 ...
        let link = std::fs::read_link(format!("/proc/{host_pid}/ns/{kind}")).expect("ns link");
        assert_eq!(link.to_string_lossy(), format!("{kind}:[{inside}]"));
        // ... and an exec'd process is in the very same namespace.
        let out = env.ok(&["exec", &id, "readlink", &format!("/proc/self/ns/{kind}")]);
        assert_eq!(
            out.trim(),
            format!("{kind}:[{inside}]"),
            "exec is not in PID 1's {kind} namespace"
        );
    }
    // exec also joins the cgroup: its process shows up among the container's.
    let out = env.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert!(
        out.lines().all(|l| l.ends_with(":/")),
        "exec is outside the container's cgroup: {out}"
    );
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

/// Collect a container's events until it exits (or `timeout`).
fn events_until_exit(env: &Env, id: &str, timeout: Duration) -> Vec<protocol::ContainerEvent> {
    let rt = runtime::Runtime::open(runtime::RuntimeOptions::new(env.path())).expect("runtime");
    let mut monitor = rt.events(id).expect("events");
    let deadline = std::time::Instant::now() + timeout;
    let mut all = Vec::new();
    while !monitor.exited() && std::time::Instant::now() < deadline {
        all.extend(monitor.next(Duration::from_millis(500)));
    }
    all
}

#[test]
fn container_memory_limit_kills_and_reports_oom() {
    let env = Env::new();
    // `tail` of an endless line keeps all of it in memory.
    let (code, _, err) = env.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox",
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(code, 137, "the hog should die of SIGKILL: {err}");
    let info = env.inspect("hog");
    assert_eq!(info["state"], "exited");
    assert_eq!(info["exit_code"], 137);
    assert_eq!(info["oom_killed"], true, "OOM kill not reported: {info}");
    let dirs = env.cgroup_dirs(info["id"].as_str().expect("id"));
    env.ok(&["rm", "hog"]);
    for d in dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    // Live: the event stream names the OOM kill and the limit, then the exit.
    let id = env.detached(&["-m", "32m"], &["sh", "-c", "sleep 0.5; tail /dev/zero"]);
    let events = events_until_exit(&env, &id, Duration::from_secs(20));
    let oom = events.iter().position(|e| {
        matches!(e, protocol::ContainerEvent::OomKill { count, limit_bytes: Some(l), .. } if *count >= 1 && *l == 32 << 20)
    });
    let exit = events
        .iter()
        .position(|e| matches!(e, protocol::ContainerEvent::Exited { code: 137, .. }));
    assert!(
        oom.is_some() && exit.is_some() && oom < exit,
        "events: {events:?}"
    );
    env.ok(&["rm", &id]);
    env.assert_clean();
}

#[test]
fn container_fork_bomb_is_stopped_by_the_pids_limit() {
    let env = Env::new();
    let id = env.detached(
        &["--pids-limit", "32"],
        &["sh", "-c", "f() { f | f & }; f; sleep 30"],
    );
    let stats = wait_for("pids limit hits", Duration::from_secs(20), || {
        let s = env.stats(&id);
        (s["pids_limit_hits"].as_u64().unwrap_or(0) > 0).then_some(s)
    });
    assert!(
        stats["pids_current"].as_u64().expect("pids") <= 32,
        "{stats}"
    );
    assert_eq!(stats["pids_limit"], 32);
    // The host is fine: another container starts and runs.
    assert_eq!(
        env.ok(&["run", "--rm", "busybox", "echo", "alive"]).trim(),
        "alive"
    );
    let dirs = env.cgroup_dirs(&id);
    env.ok(&["rm", "-f", &id]);
    for d in dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    env.assert_clean();
}

#[test]
fn container_cpu_limit_shows_as_throttling() {
    let env = Env::new();
    let id = env.detached(&["--cpus", "0.2"], &["sh", "-c", "while :; do :; done"]);
    let stats = wait_for("throttling", Duration::from_secs(20), || {
        let s = env.stats(&id);
        (s["cpu_throttled_ns"].as_u64().unwrap_or(0) > 0).then_some(s)
    });
    assert!(
        stats["cpu_throttled_periods"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert_eq!(stats["cpu_limit_millis"], 200);
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

#[test]
fn container_copy_on_write_never_touches_the_image() {
    let env = Env::new();
    let id = env.detached(&[], &["sleep", "60"]);
    env.ok(&["exec", &id, "rm", "/bin/sh"]);
    env.ok(&["exec", &id, "touch", "/etc/passwd"]);
    env.ok(&["exec", &id, "mkdir", "/newdir"]);
    let diff = env.ok(&["diff", &id]);
    for line in ["D /bin/sh", "C /etc/passwd", "A /newdir"] {
        assert!(
            diff.lines().any(|l| l == line),
            "diff lacks {line:?}:\n{diff}"
        );
    }
    // The deletion is a whiteout in the RW layer, visible on the host.
    let upper = env.inspect(&id)["upper_dir"]
        .as_str()
        .expect("upper")
        .to_string();
    let meta = std::fs::symlink_metadata(format!("{upper}/bin/sh")).expect("whiteout");
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        meta.file_type().is_char_device() && meta.rdev() == 0,
        "not a whiteout"
    );
    // Another container of the same image still has /bin/sh.
    assert_eq!(
        env.ok(&["run", "--rm", "busybox", "sh", "-c", "echo still here"])
            .trim(),
        "still here"
    );
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

/// Count zombie processes inside a container.
fn zombies(env: &Env, id: &str) -> usize {
    let out = env.ok(&["exec", id, "sh", "-c", "cat /proc/[0-9]*/stat"]);
    out.lines()
        .filter(|l| {
            l.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .count()
}

#[test]
fn container_init_reaps_zombies_and_no_init_does_not() {
    let env = Env::new();
    // The subshell's child is orphaned and reparented to PID 1.
    let cmd = ["sh", "-c", "(sleep 0.2 &); exec sleep 60"];
    let with_init = env.detached(&[], &cmd);
    let without = env.detached(&["--no-init"], &cmd);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(zombies(&env, &with_init), 0, "init left a zombie");
    assert!(
        zombies(&env, &without) >= 1,
        "with --no-init the orphan should stay a zombie"
    );
    env.ok(&["rm", "-f", &with_init, &without]);
    env.assert_clean();
}

#[test]
fn container_exit_codes_pass_through() {
    let env = Env::new();
    for (init, cmd, want) in [
        ("--init", "exit 42", 42),
        ("--no-init", "exit 42", 42),
        ("--init", "kill -TERM $$", 143),
        ("--init", "true", 0),
    ] {
        let (code, _, err) = env.run(&["run", "--rm", init, "busybox", "sh", "-c", cmd]);
        assert_eq!(code, want, "{init} {cmd}: {err}");
    }
    let (code, _, err) = env.run(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("not found"), "{err}");
    env.assert_clean();
}

#[test]
fn container_output_is_kept_at_the_exit() {
    let env = Env::new();
    let rt = runtime::Runtime::open(runtime::RuntimeOptions::new(env.path())).expect("runtime");
    let running = env.detached(&[], &["sleep", "30"]);
    assert_eq!(rt.kept_output(&running, 0).expect("kept output"), None);
    let id = env.detached(&[], &["sh", "-c", "echo kept-$((6*7)); exit 3"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.inspect(&id)["state"] != "exited" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(env.inspect(&id)["exit_code"], 3);
    let (_, all) = rt
        .kept_output(&id, 0)
        .expect("kept output")
        .expect("output kept");
    assert_eq!((all.gap, all.seq), (None, 0));
    assert!(
        String::from_utf8_lossy(&all.data).starts_with("kept-42"),
        "{all:?}"
    );
    let (_, tail) = rt
        .kept_output(&id, 5)
        .expect("kept output")
        .expect("output kept");
    assert_eq!(tail.seq, 5);
    assert_eq!(tail.data, all.data[5..]);
    let (code, out, err) = env.run(&["attach", &id]);
    assert_eq!((code, out.trim()), (3, "kept-42"), "{err}");
    env.ok(&["rm", "-f", &running, &id]);
    env.assert_clean();
}

#[test]
fn container_failed_create_leaves_nothing() {
    let env = Env::new();
    let (code, _, err) = env.run(&["run", "--name", "bad", "busybox", "/nope"]);
    assert_eq!(code, 127, "{err}");
    let (code, _, err) = env.run(&["run", "no-such-image"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    let (code, _, _) = env.run(&["run", "--name", "../evil", "busybox", "true"]);
    assert_ne!(code, 0);
    env.assert_clean();
    // The name of the failed container is free again.
    env.ok(&["run", "--rm", "--name", "bad", "busybox", "true"]);
}

#[test]
fn container_run_rm_is_gone_on_return_and_its_files_follow() {
    let env = Env::new();
    let names = || -> Vec<String> {
        std::fs::read_dir(env.path().join("containers"))
            .expect("containers dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".lock")
            .collect()
    };
    env.ok(&["run", "--rm", "busybox", "true"]);
    // Listed nowhere and holding nothing on the host once `run` returns ...
    assert!(env.container_dirs().is_empty(), "{:?}", names());
    assert_eq!(env.ok(&["ps", "-a"]).lines().count(), 1, "ps lists it");
    assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
    // ... and its files are deleted right after.
    wait_for(
        "the removed container's files",
        Duration::from_secs(5),
        || names().is_empty().then_some(()),
    );
}

#[test]
fn container_claim_refills_the_pool_and_a_drain_after_the_exit_finds_it_whole() {
    let env = Env::new();
    env.ok(&["pool", "fill"]);
    let first = wait_for("a warm container", Duration::from_secs(10), || {
        ready_pool_ids(&env).pop()
    });
    // The refill waits for the claimed container's start-up, but is under
    // way (holding the state lock) by the time the exit is reported: a
    // drain right after it removes the replacement, and nothing comes later.
    env.ok(&["run", "--rm", "busybox", "true"]);
    env.ok(&["pool", "drain"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(pool_ids(&env).is_empty(), "{:?}", pool_ids(&env));
    let pool = env.path().join("pool");
    assert!(pool
        .read_dir()
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));
    assert!(
        processes_naming(&pool).is_empty(),
        "{:?}",
        processes_naming(&pool)
    );
    // A claim refills the pool once its command exits ...
    env.ok(&["pool", "fill"]);
    let second = wait_for("a warm container", Duration::from_secs(10), || {
        ready_pool_ids(&env).pop()
    });
    assert_ne!(second, first);
    env.ok(&["run", "--rm", "busybox", "true"]);
    wait_for("a refill after the exit", Duration::from_secs(10), || {
        ready_pool_ids(&env).into_iter().find(|p| *p != second)
    });
    // ... and while a longer one still runs.
    let id = env.detached(&[], &["sleep", "30"]);
    wait_for(
        "a refill beside a running container",
        Duration::from_secs(10),
        || ready_pool_ids(&env).into_iter().find(|p| *p != id),
    );
    env.ok(&["rm", "-f", &id]);
    env.ok(&["pool", "drain"]);
    env.assert_clean();
}

#[test]
fn container_rm_and_auto_remove_clean_up_everything() {
    let env = Env::new();
    let id = env.detached(&["--rm"], &["sh", "-c", "sleep 0.3"]);
    let dirs = env.cgroup_dirs(&id);
    wait_for("auto-remove", Duration::from_secs(10), || {
        env.container_dirs().is_empty().then_some(())
    });
    for d in &dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    let id = env.detached(&[], &["sleep", "60"]);
    let (code, _, err) = env.run(&["rm", &id]);
    assert_ne!(code, 0, "rm of a running container needs -f");
    assert!(err.contains("running"), "{err}");
    let info = env.inspect(&id);
    let host_pid = info["host_pid"].as_u64().expect("pid");
    let sup_pid = info["supervisor_pid"].as_u64().expect("supervisor pid");
    env.ok(&["rm", "-f", &id]);
    assert!(
        !std::path::Path::new(&format!("/proc/{host_pid}")).exists(),
        "PID 1 survived rm"
    );
    wait_for("supervisor exit", Duration::from_secs(5), || {
        (!std::path::Path::new(&format!("/proc/{sup_pid}")).exists()).then_some(())
    });
    env.assert_clean();
}

#[test]
fn container_tty_is_real_and_follows_resizes() {
    use runtime::process::client::Client;
    use runtime::process::wire::{Request, Target};
    let env = Env::new();
    let id = env.detached(&["-t"], &["sh"]);
    let socket = env
        .path()
        .join("containers")
        .join(&id)
        .join("supervisor.sock");
    let mut client = Client::connect(&socket).expect("connect");
    client
        .send(Request::Attach {
            target: Target::Main,
            since: Some(0),
        })
        .expect("attach");
    client
        .send(Request::Resize {
            cols: 123,
            rows: 45,
        })
        .expect("resize");
    client
        .send_input(
            b"stty size; tty; test -e $(tty) && echo tty-exists; stat -c pts-owner=%u:%g $(tty)\n",
        )
        .expect("input");
    let mut screen = Screen::default();
    screen.wait(&mut client, "45 123");
    screen.wait(&mut client, "tty-exists");
    // devpts is mounted inside: the terminal belongs to the container's root.
    screen.wait(&mut client, "pts-owner=0:0");
    // Absurd sizes are clamped, not rejected.
    client
        .send(Request::Resize {
            cols: 60000,
            rows: 60000,
        })
        .expect("resize");
    client.send_input(b"stty size\n").expect("input");
    screen.wait(&mut client, "500 1000");
    // Job control: a background job and `fg` need a controlling terminal.
    client.send_input(b"sleep 30 &\njobs\n").expect("input");
    screen.wait(&mut client, "sleep 30");
    // An exec session gets a terminal of its own.
    let mut exec = Client::connect(&socket).expect("connect");
    exec.send(Request::Exec {
        cmd: vec!["sh".into(), "-c".into(), "tty; stty size".into()],
        env: vec![],
        tty: true,
        cols: 77,
        rows: 22,
    })
    .expect("exec");
    let out = Screen::default().wait(&mut exec, "22 77");
    assert!(out.contains("/dev/pts/"), "{out}");
    client.send_input(b"exit 7\n").expect("input");
    drop(client);
    let info = wait_for("exit", Duration::from_secs(10), || {
        let i = env.inspect(&id);
        (i["state"] == "exited").then_some(i)
    });
    assert_eq!(info["exit_code"], 7);
    env.ok(&["rm", &id]);
    env.assert_clean();
}

#[test]
fn container_warm_pool_hands_out_prepared_containers_with_their_limits() {
    let env = Env::new();
    env.ok(&["pool", "drain"]);
    env.ok(&["pool", "fill"]);
    let warm = wait_for("a warm container", Duration::from_secs(10), || {
        ready_pool_ids(&env).pop()
    });
    let id = env.detached(
        &["-m", "48m", "--pids-limit", "10", "--disk", "8m"],
        &["sleep", "30"],
    );
    assert_eq!(id, warm, "the start did not use the warm container");
    let stats = env.stats(&id);
    assert_eq!(stats["memory_limit"], 48 << 20, "{stats}");
    assert_eq!(stats["pids_limit"], 10, "{stats}");
    let df = env.ok(&["exec", &id, "df", "-k", "/"]);
    assert!(df.contains(" 8192 "), "the RW layer is not 8 MiB: {df}");
    assert_eq!(env.ok(&["exec", &id, "hostname"]).trim(), &id[..12]);
    // The claim started a replacement.
    let refill = wait_for("a refill", Duration::from_secs(10), || {
        ready_pool_ids(&env).into_iter().find(|p| *p != id)
    });
    // A claim that keeps the default size finds its RW layer at that size.
    let default = env.detached(&[], &["sleep", "30"]);
    assert_eq!(default, refill, "the start did not use the warm container");
    let df = env.ok(&["exec", &default, "df", "-k", "/"]);
    assert!(df.contains(" 1048576 "), "the RW layer is not 1 GiB: {df}");
    env.ok(&["rm", "-f", &id, &default]);
    env.ok(&["pool", "drain"]);
    assert!(pool_ids(&env).is_empty());
    assert!(env
        .path()
        .join("pool")
        .read_dir()
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));
    env.assert_clean();
}

#[test]
fn container_unclaimed_warm_containers_remove_themselves() {
    let env = Env::new();
    env.ok(&["--warm-idle-secs", "1", "pool", "fill"]);
    let warm = wait_for("a warm container", Duration::from_secs(10), || {
        ready_pool_ids(&env).pop()
    });
    let entry = env.path().join("pool").join(&warm);
    let dirs = common::entry_cgroup_dirs(&entry);
    // Its supervisor, its container process and the refill child it keeps
    // parked for a claim.
    assert!(
        processes_naming(&entry).len() >= 3,
        "{:?}",
        processes_naming(&entry)
    );
    common::assert_entry_goes("the idle warm container to go", &entry, dirs);
    wait_for("its processes to go", Duration::from_secs(5), || {
        processes_naming(&entry).is_empty().then_some(())
    });
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&warm),
        "the warm container's RW layer is still mounted"
    );
}

/// Host processes whose command line names `dir` (a supervisor and, cloned
/// from it, its container process).
fn processes_naming(dir: &std::path::Path) -> Vec<i32> {
    let needle = dir.as_os_str().as_encoded_bytes().to_vec();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_slice()))
        })
        .collect()
}

#[test]
fn container_warm_entry_whose_supervisor_dies_while_preparing_leaves_nothing() {
    // A drain may kill an entry's supervisor at any point of its
    // preparation, also right after it cloned the container process and
    // before that joined the cgroup the drain removes: the container
    // process must not outlive its supervisor (it once waited for ever,
    // holding both ends of its channel). The crash switch kills the
    // supervisor at exactly that step.
    let env = Env::new();
    let out = env
        .cmd(&["pool", "fill"])
        .env(runtime::failpoint::ENV, "supervisor.cloned")
        .output()
        .expect("gbx pool fill");
    assert!(out.status.success(), "{out:?}");
    let dir = wait_for("the warm entry", Duration::from_secs(10), || {
        Some(
            std::fs::read_dir(env.path().join("pool"))
                .ok()?
                .next()?
                .ok()?
                .path(),
        )
    });
    wait_for("its supervisor to crash", Duration::from_secs(10), || {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("pool.json")).ok()?).ok()?;
        let pid = record["supervisor_pid"].as_i64()?;
        let alive = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains(&*dir.to_string_lossy()));
        (!alive).then_some(())
    });
    env.ok(&["pool", "drain"]);
    wait_for(
        "the entry's processes to go",
        Duration::from_secs(10),
        || processes_naming(&dir).is_empty().then_some(()),
    );
    env.assert_clean();
}

/// Output frames of a terminal, from `since`, until `bytes` bytes arrived.
/// Checks that every frame continues the previous one.
fn collect_output(socket: &std::path::Path, since: u64, bytes: usize) -> (Vec<u8>, usize) {
    use runtime::process::client::Client;
    use runtime::process::wire::{Frame, Reply, Request, Target};
    let mut client = Client::connect(socket).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    client
        .send(Request::Attach {
            target: Target::Main,
            since: Some(since),
        })
        .expect("attach");
    let (mut out, mut largest, mut next) = (Vec::new(), 0, since);
    while out.len() < bytes {
        match client.next_frame().expect("a frame") {
            Frame::Output { seq, data } => {
                assert_eq!(seq, next, "output does not continue the previous frame");
                next += data.len() as u64;
                largest = largest.max(data.len());
                out.extend_from_slice(&data);
            }
            Frame::Control(Reply::Gap { from, to }) => panic!("unexpected gap {from}..{to}"),
            Frame::Control(_) | Frame::Input(_) => {}
        }
    }
    (out, largest)
}

#[test]
fn container_streaming_output_is_batched_exact_and_replayable() {
    let env = Env::new();
    // About 200 KB: it all fits the 256 KiB replay ring. `cat` writes it in
    // large blocks once we are attached: output streams, as from a build log.
    let id = env.detached(
        &["-t"],
        &[
            "sh",
            "-c",
            "seq 1 35000 >/tmp/s; sleep 1; cat /tmp/s; sleep 30",
        ],
    );
    let expected: Vec<u8> = (1..=35000)
        .flat_map(|n| format!("{n}\r\n").into_bytes())
        .collect();
    let socket = env
        .path()
        .join("containers")
        .join(&id)
        .join("supervisor.sock");
    let (all, largest) = collect_output(&socket, 0, expected.len());
    assert_eq!(all.len(), expected.len());
    assert!(
        all == expected,
        "streamed output differs from what was written"
    );
    // Streaming output goes out in frames larger than one PTY read.
    assert!(largest > 4096, "largest frame {largest} bytes: no batching");
    // A client resuming mid-stream gets exactly the rest.
    let (rest, _) = collect_output(&socket, 100_001, expected.len() - 100_001);
    assert!(rest == expected[100_001..], "replay from 100001 differs");
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

/// What a server restart does with the state dir: containers it still
/// wants stay untouched; everything else goes, including a create that died
/// after its directory and cgroup were made but before its config.
#[test]
fn container_sweep_removes_half_made_and_unwanted_containers() {
    use runtime::cgroups::{Cgroup, CgroupParent};
    let env = Env::new();
    let kept = env.detached(&[], &["sleep", "60"]);
    let gone = env.detached(&[], &["sleep", "60"]);
    let gone_sup = env.inspect(&gone)["supervisor_pid"]
        .as_u64()
        .expect("supervisor pid");
    let gone_dirs = env.cgroup_dirs(&gone);
    let half = runtime::state::new_id();
    std::fs::create_dir(env.path().join("containers").join(&half)).expect("dir");
    let cg =
        Cgroup::create(&CgroupParent(None), &half, &protocol::Limits::default()).expect("cgroup");
    let half_dirs = cg.dirs();
    assert!(half_dirs.iter().all(|d| d.exists()));
    assert_eq!(
        Cgroup::planned(&CgroupParent(None), &half)
            .expect("planned")
            .dirs(),
        half_dirs,
        "the planned cgroup is the one create makes"
    );

    // The files of a removed container whose supervisor was killed before
    // it deleted them (it had renamed the directory out of the listing).
    let forgotten = env
        .path()
        .join("containers")
        .join(format!(".gone.{}", runtime::state::new_id()));
    std::fs::create_dir_all(forgotten.join("rootfs")).expect("forgotten dir");
    std::fs::write(forgotten.join("config.json"), "{}").expect("forgotten file");

    let rt = runtime::Runtime::open(runtime::RuntimeOptions::new(env.path())).expect("open");
    let mut removed = rt.sweep(|id| id == kept).expect("sweep");
    assert!(
        !forgotten.exists(),
        "the sweep left {}",
        forgotten.display()
    );
    removed.sort();
    let mut want = vec![gone.clone(), half.clone()];
    want.sort();
    assert_eq!(removed, want);
    assert_eq!(env.container_dirs(), vec![kept.clone()]);
    for d in gone_dirs.iter().chain(&half_dirs) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    wait_for("supervisor exit", Duration::from_secs(5), || {
        (!std::path::Path::new(&format!("/proc/{gone_sup}")).exists()).then_some(())
    });
    assert_eq!(env.inspect(&kept)["state"], "running");
    assert_eq!(rt.sweep(|_| false).expect("sweep"), vec![kept]);
    env.assert_clean();
}
