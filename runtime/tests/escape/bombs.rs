//! Denial of service from inside: fork, memory, disk and inode bombs stop
//! at the container's limits, and the host carries on.

use super::*;

#[test]
fn container_escape_fork_bomb() {
    let host = HostSnapshot::take("fork");
    let mut r = Report::new("fork bomb");
    let env = Env::new();
    let mut args = LIMITS.to_vec();
    args.extend_from_slice(&["-m", MEMORY]);
    let id = env.detached(&args, &["sh", "-c", "f() { f | f & }; f; sleep 600"]);
    let stats = wait_for(
        "the pids limit to refuse forks",
        Duration::from_secs(30),
        || {
            let s = env.stats(&id);
            (s["pids_limit_hits"].as_u64().unwrap_or(0) > 0).then_some(s)
        },
    );
    let current = stats["pids_current"].as_u64().unwrap_or(u64::MAX);
    r.verdict(
        "f() { f | f & }; f",
        current <= 64,
        &format!(
            "pids.max 64: {} forks refused, {current} tasks",
            stats["pids_limit_hits"]
        ),
        &format!("{current} tasks under a limit of 64"),
    );
    let other = env.run(&["run", "--rm", "busybox", "echo", "alive"]);
    r.verdict(
        "another container starts during the bomb",
        other.0 == 0 && other.1.trim() == "alive",
        "it runs",
        &format!("{other:?}"),
    );
    let forks = std::process::Command::new("true").status();
    r.verdict(
        "the host still forks during the bomb",
        forks.is_ok_and(|s| s.success()),
        "it does",
        "fork failed on the host",
    );
    let _ = env.run(&["rm", "-f", &id]);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_memory_bomb() {
    let host = HostSnapshot::take("memory");
    let mut r = Report::new("memory bomb");
    let env = Env::new();
    let (code, _, err) = env.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "64m",
        "busybox",
        "tail",
        "/dev/zero",
    ]);
    let info = env.inspect("hog");
    r.verdict(
        "tail /dev/zero (anonymous memory without end)",
        code == 137 && info["oom_killed"] == true,
        "OOM kill inside the container's cgroup, exit 137",
        &format!("exit {code}, oom_killed {}: {err}", info["oom_killed"]),
    );
    env.ok(&["rm", "hog"]);
    // tmpfs pages are charged to the writer's cgroup: /dev/shm cannot hold
    // memory beyond the limit either.
    let v = Victim::with_memory("48m");
    let run = v.sh("head -c 200m /dev/zero > /dev/shm/fill");
    let hit = run.code == 137 || run.out.contains(ENOSPC.1);
    r.verdict(
        "head -c 200m /dev/zero > /dev/shm/fill",
        run.code != 0 && hit,
        &format!("stopped (exit {}: OOM kill or ENOSPC)", run.code),
        &format!("exit {}: {}", run.code, report::brief(&run.out)),
    );
    drop(v);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_disk_fill() {
    let host = HostSnapshot::take("disk");
    let mut r = Report::new("disk fill");
    let v = Victim::with_memory("256m");
    let run = v.sh("dd if=/dev/zero of=/fill bs=1M count=512");
    r.expect_error("dd if=/dev/zero of=/fill bs=1M (RW layer)", &run, &[ENOSPC]);
    let used: u64 = v
        .sh("df -k / | awk 'NR==2 {print $3}'")
        .out
        .trim()
        .parse()
        .unwrap_or(u64::MAX);
    r.verdict(
        "RW layer usage after the fill",
        used <= 32 * 1024,
        &format!("{used} KiB of a 32 MiB cap"),
        &format!("{used} KiB used, cap 32 MiB"),
    );
    let run = v.sh("rm -f /fill; dd if=/dev/zero of=/dev/shm/fill bs=1M count=512");
    r.expect_error("dd into /dev/shm", &run, &[ENOSPC]);
    let run = v.sh("rm -f /dev/shm/fill; dd if=/dev/zero of=/dev/fill bs=1M count=512");
    r.expect_error("dd into /dev", &run, &[ENOSPC]);
    drop(v);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_inode_fill() {
    let host = HostSnapshot::take("inode");
    let mut r = Report::new("inode fill");
    let v = Victim::start();
    let run = v.sh("mkdir /f && cd /f && seq 1 200000 | xargs touch");
    r.expect_error("seq 1 200000 | xargs touch (RW layer)", &run, &[ENOSPC]);
    let files: u64 = v.sh("ls /f | wc -l").out.trim().parse().unwrap_or(0);
    r.verdict(
        "files made before the inode cap",
        files < 200_000,
        &format!("{files} files"),
        &format!("all {files} files made"),
    );
    let run = v.sh("rm -rf /f; mkdir /dev/shm/f && cd /dev/shm/f && seq 1 200000 | xargs touch");
    r.expect_error("seq 1 200000 | xargs touch (/dev/shm)", &run, &[ENOSPC]);
    drop(v);
    host.verify(&mut r);
    r.finish();
}
