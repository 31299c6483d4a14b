//! The escape suite: as root inside a fresh busybox container per class, try
//! every escape and denial-of-service class of the threat model
//! (docs/testing.md lists them), check that each attempt fails the way a
//! defence makes it fail, and that the host shows nothing changed. Each class
//! prints a table (class | attempt | result) and fails if any row escaped.
//!
//! Attempts that could harm a shared host if they worked are written so that
//! success is still visible but harmless: a kernel knob is written with its
//! own current value, binfmt_misc gets an invalid rule, a release agent is
//! opened for writing but given nothing.

#[path = "../common/mod.rs"]
mod common;
mod host;
mod net;
mod report;

use common::{wait_for, Env};
use host::{HostSnapshot, MOUNT_MARK};
use report::{
    Report, Run, EACCES, ECONNREFUSED, ENETUNREACH, ENOENT, ENOSPC, ENOSYS, ENXIO, EPERM, EROFS,
    ETIMEDOUT,
};
use std::time::Duration;

/// Limits every container of the suite runs with (the server's defaults are
/// of the same order), so a bomb that works still cannot take the host down.
const LIMITS: &[&str] = &["--pids-limit", "64", "--disk", "32m"];
const MEMORY: &str = "128m";

const ESRCH: (&str, &str) = ("ESRCH", "No such process");
const EBUSY: (&str, &str) = ("EBUSY", "Device or resource busy");
/// busybox mount's words for EPERM and EACCES alike.
const MOUNT_DENIED: (&str, &str) = ("EPERM", "permission denied (are you root?)");
/// ash's words for ENOENT when a redirection cannot create its file.
const ENOENT_SH: (&str, &str) = ("ENOENT", "nonexistent directory");

/// A container of one class, removed (with everything in it) on drop.
struct Victim {
    env: Env,
    id: String,
}

impl Victim {
    fn start() -> Victim {
        Victim::with_memory(MEMORY)
    }

    fn with_memory(memory: &str) -> Victim {
        let env = Env::new();
        let mut args: Vec<&str> = LIMITS.to_vec();
        args.extend_from_slice(&["-m", memory]);
        let id = env.detached(&args, &["sleep", "600"]);
        Victim { env, id }
    }

    /// Run a busybox shell snippet as root inside.
    fn sh(&self, snippet: &str) -> Run {
        run_of(self.env.run(&["exec", &self.id, "sh", "-c", snippet]))
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.env.cmd(&["rm", "-f", &self.id]).output();
    }
}

fn run_of((code, out, err): (i32, String, String)) -> Run {
    Run {
        code,
        out: out + &err,
    }
}

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

#[test]
fn container_escape_kernel_knobs() {
    let host = HostSnapshot::take("knobs");
    let mut r = Report::new("proc and sys writes");
    let v = Victim::start();
    let denied = [EROFS, EACCES, EPERM];
    // The trigger only acts on the bytes written: opening it for writing is the test.
    let run = v.sh(": > /proc/sysrq-trigger");
    let enoent = |run: &Run| run.out.contains(ENOENT.1) || run.out.contains(ENOENT_SH.1);
    if !std::path::Path::new("/proc/sysrq-trigger").exists() && enoent(&run) {
        r.blocked(
            ": > /proc/sysrq-trigger",
            "ENOENT: this kernel has no sysrq",
        );
    } else {
        r.expect_error(": > /proc/sysrq-trigger", &run, &denied);
    }
    for knob in [
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/vm/panic_on_oom",
        "/proc/sys/kernel/modprobe",
        "/sys/kernel/uevent_helper",
    ] {
        // Its own value written back: a change on the host would be a bug of
        // the suite, a successful write the escape.
        let exists = std::path::Path::new(knob).exists();
        let run = v.sh(&format!("v=$(cat {knob}) ; printf '%s\\n' \"$v\" > {knob}"));
        if !exists && enoent(&run) {
            r.blocked(
                format!("write {knob}"),
                "ENOENT: not on this kernel".to_string(),
            );
        } else {
            r.expect_error(&format!("write {knob}"), &run, &denied);
        }
    }
    // An invalid rule: if the write reaches the parser (EINVAL), the rule
    // table was writable.
    let run = v.sh("echo x > /proc/sys/fs/binfmt_misc/register");
    r.expect_error(
        "echo x > /proc/sys/fs/binfmt_misc/register",
        &run,
        &[EROFS, EACCES, EPERM, ENOENT, ENOENT_SH],
    );
    let run = v.sh(&format!(
        "mkdir -p /{MOUNT_MARK}binfmt && mount -t binfmt_misc b /{MOUNT_MARK}binfmt && \
         echo x > /{MOUNT_MARK}binfmt/register"
    ));
    r.expect_error(
        "mount -t binfmt_misc, then register a rule",
        &run,
        &[EPERM, MOUNT_DENIED],
    );
    drop(v);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_mount_namespaces_modules() {
    let host = HostSnapshot::take("mount");
    let mut r = Report::new("mount, namespaces, modules");
    let v = Victim::start();
    let run = v.sh(&format!(
        "mkdir -p /{MOUNT_MARK}mnt && mount -t tmpfs t /{MOUNT_MARK}mnt"
    ));
    r.expect_error("mount -t tmpfs t /mnt", &run, &[EPERM, MOUNT_DENIED]);
    let run = v.sh("mount -o remount,rw /sys");
    r.expect_error("mount -o remount,rw /sys", &run, &[EPERM, MOUNT_DENIED]);
    let run = v.sh("unshare -U true");
    r.expect_error("unshare -U true", &run, &[EPERM]);
    let run = v.sh("unshare -m true");
    r.expect_error("unshare -m true", &run, &[EPERM]);
    let run = v.sh("nsenter -t 1 -m -u -i -n -p true");
    r.expect_error(
        "nsenter -t 1 (setns to own namespaces)",
        &run,
        &[EPERM, EACCES],
    );
    // A bogus module: EPERM is the capability check; ENOEXEC would mean the
    // kernel's loader was reached.
    let run = v.sh("head -c 64 /dev/zero > /tmp/m.ko && insmod /tmp/m.ko");
    if run.out.contains("kernel does not support")
        && !std::path::Path::new("/proc/modules").exists()
    {
        r.blocked(
            "insmod a module (init_module)",
            "ENOSYS: this kernel has no module support",
        );
    } else {
        r.expect_error("insmod a module (init_module)", &run, &[EPERM, ENOSYS]);
    }
    let bnd = v.sh("grep CapBnd /proc/self/status");
    let caps = bnd
        .out
        .split_whitespace()
        .nth(1)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(u64::MAX);
    for (bit, name) in [
        (16, "CAP_SYS_MODULE"),
        (21, "CAP_SYS_ADMIN"),
        (19, "CAP_SYS_PTRACE"),
        (13, "CAP_NET_RAW"),
        (27, "CAP_MKNOD"),
    ] {
        r.verdict(
            &format!("{name} in the bounding set"),
            caps & (1 << bit) == 0,
            "absent",
            &format!("present (CapBnd {caps:016x})"),
        );
    }
    drop(v);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_raw_and_packet_sockets() {
    let host = HostSnapshot::take("sockets");
    let mut r = Report::new("raw and packet sockets");
    let v = Victim::start();
    let run = v.sh("traceroute -n -m 1 -w 1 -q 1 127.0.0.1");
    r.expect_error(
        "traceroute (socket(AF_INET, SOCK_RAW, ICMP))",
        &run,
        &[EPERM, EACCES],
    );
    let run = v.sh("udhcpc -i lo -n -q -t 1 -T 1 -s /bin/true");
    r.expect_error(
        "udhcpc on lo (socket(AF_PACKET, SOCK_DGRAM))",
        &run,
        &[EPERM, EACCES],
    );
    drop(v);
    host.verify(&mut r);
    r.finish();
}

/// The host's root block device as `major minor` (for a mknod attempt);
/// the first block device when the root is not on one.
fn host_block_device() -> Option<(u32, u32)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let root = info.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(4) == Some(&"/")).then(|| f.get(2).map(|s| s.to_string()))?
    });
    let parse = |s: &str| {
        let (a, b) = s.trim().split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    if let Some(d) = root.as_deref().and_then(parse).filter(|(m, _)| *m != 0) {
        return Some(d);
    }
    let rd = std::fs::read_dir("/sys/block").ok()?;
    rd.filter_map(|e| e.ok())
        .find_map(|e| parse(&std::fs::read_to_string(e.path().join("dev")).ok()?))
}

#[test]
fn container_escape_devices() {
    let host = HostSnapshot::take("devices");
    let mut r = Report::new("devices");
    let v = Victim::start();
    let run = v.sh("head -c 1 /dev/mem > /dev/null");
    r.expect_error("head -c1 /dev/mem", &run, &[ENOENT, EPERM, EACCES]);
    let run = v.sh("mknod /tmp/mem c 1 1");
    r.expect_error("mknod /tmp/mem c 1 1", &run, &[EPERM]);
    let run = v.sh("mknod /tmp/mem2 c 1 1 ; head -c 1 /tmp/mem2 > /dev/null");
    r.expect_error(
        "read /dev/mem through a node made inside",
        &run,
        &[EPERM, EACCES, ENOENT, ENXIO],
    );
    match host_block_device() {
        Some((major, minor)) => {
            let run = v.sh(&format!(
                "mknod /tmp/disk b {major} {minor} ; head -c 1 /tmp/disk > /dev/null"
            ));
            r.expect_error(
                &format!("read the host's disk ({major}:{minor}) through mknod"),
                &run,
                &[EPERM, EACCES, ENOENT],
            );
        }
        // A host without block devices (the cgroup v2 VM runs from RAM):
        // nothing to read; the /dev/mem rows above cover the class.
        None => println!("devices: no host block device, the disk attempt is not made"),
    }
    drop(v);
    host.verify(&mut r);
    r.finish();
}

/// A host process with a marker in its command line, killed (with its
/// child) on drop.
struct HostProcess(std::process::Child);

impl HostProcess {
    fn start() -> HostProcess {
        use std::os::unix::process::CommandExt;
        // A shell that waits for its child keeps its own command line (marker
        // included), busybox and bash alike; its own process group, so that
        // the child goes with it.
        HostProcess(
            std::process::Command::new("/bin/sh")
                .args(["-c", "sleep 600; : gbx-escape-sentinel"])
                .process_group(0)
                .spawn()
                .expect("a host process to look for"),
        )
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this struct made.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn container_escape_host_processes_and_proc() {
    let host = HostSnapshot::take("proc");
    let mut r = Report::new("ptrace, /proc/*/exe, /proc/*/root");
    let sentinel = HostProcess::start();
    let hpid = sentinel.0.id();
    wait_for(
        "the host process to look for",
        Duration::from_secs(10),
        || {
            let cmdline = std::fs::read(format!("/proc/{hpid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline)
                .contains("gbx-escape-sentinel")
                .then_some(())
        },
    );
    let v = Victim::start();
    let run = v.sh("ls -d /proc/[0-9]* | wc -l");
    let n: u32 = run.out.trim().parse().unwrap_or(u32::MAX);
    r.verdict(
        "ls /proc: only the container's processes",
        n <= 5,
        &format!("{n} processes visible"),
        &format!("{n} processes visible: {}", report::brief(&run.out)),
    );
    let run = v.sh("grep -l gbx-escape-[s]entinel /proc/[0-9]*/cmdline");
    r.verdict(
        "find a host process by its command line",
        run.code != 0 && run.out.trim().is_empty(),
        "not found",
        &report::brief(&run.out),
    );
    let run = v.sh(&format!("kill -0 {hpid}"));
    r.expect_error(&format!("kill -0 <host pid {hpid}>"), &run, &[ESRCH]);
    let run = v.sh(&format!("ls /proc/{hpid}/root/"));
    r.expect_error("ls /proc/<host pid>/root/", &run, &[ENOENT]);
    // An exe link that names a file missing from the container names a host
    // file (CVE-2019-5736's way out); a sealed memfd is fine.
    let run = v.sh(
        "for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null) || { echo \"denied $p\"; continue; }; \
         case \"$l\" in /memfd:*) ;; *) [ -e \"$l\" ] || echo \"host $p -> $l\";; esac; done",
    );
    let host_paths: Vec<&str> = run.out.lines().filter(|l| l.starts_with("host ")).collect();
    let denied = run.out.lines().filter(|l| l.starts_with("denied ")).count();
    r.verdict(
        "readlink /proc/*/exe",
        host_paths.is_empty(),
        &format!("no host path ({denied} links not readable, the rest the container's own or a sealed memfd)"),
        &host_paths.join("; "),
    );
    let run = v.sh("[ \"$(ls -a /proc/1/root/)\" = \"$(ls -a /)\" ] && readlink /proc/1/root");
    r.verdict(
        "/proc/1/root",
        run.code == 0 && run.out.trim() == "/",
        "the container's own root",
        &report::brief(&run.out),
    );
    let run = v.sh(&format!("cat {}", host.sentinel().display()));
    r.expect_error("cat a host file outside the state dir", &run, &[ENOENT]);
    drop(sentinel);
    drop(v);
    host.verify(&mut r);
    r.finish();
}

/// One `ls -l /proc/X/fd` listing: the fds that are neither stdio nor a
/// terminal, /dev/null or the listing's own directory.
fn unexpected_fds(listing: &str, stdio_pipes: bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd: u32 = left.split_whitespace().last()?.parse().ok()?;
            let fine = target == "/dev/null"
                || target.starts_with("/dev/pts/")
                || target == "/dev/console"
                || (stdio_pipes && fd <= 2 && target.starts_with("pipe:"));
            (!fine).then(|| format!("{fd} -> {target}"))
        })
        .collect()
}

#[test]
fn container_escape_leaked_fds() {
    let host = HostSnapshot::take("fds");
    let mut r = Report::new("leaked fds");
    let v = Victim::start();
    let run = v.sh("ls -l /proc/self/fd/");
    let bad = unexpected_fds(&run.out, true);
    r.verdict(
        "ls -l /proc/self/fd (an exec'd shell)",
        run.code == 0 && bad.is_empty(),
        "only stdio",
        &format!("{bad:?}"),
    );
    let run = v.sh("ls -l /proc/1/fd/");
    let bad = unexpected_fds(&run.out, false);
    if run.code != 0 && (run.out.contains(EACCES.1) || run.out.contains(EPERM.1)) {
        r.blocked(
            "ls -l /proc/1/fd (glassbox-init)",
            "EACCES: not inspectable",
        );
    } else {
        r.verdict(
            "ls -l /proc/1/fd (glassbox-init)",
            bad.is_empty(),
            "only /dev/null and terminals",
            &format!("reachable: {bad:?}"),
        );
    }
    let out = run_of(v.env.run(&[
        "run",
        "--rm",
        "--no-init",
        "busybox",
        "ls",
        "-l",
        "/proc/1/fd/",
    ]));
    let bad = unexpected_fds(&out.out, true);
    r.verdict(
        "ls -l /proc/1/fd (PID 1 without init)",
        out.code == 0 && bad.is_empty(),
        "only stdio",
        &format!("{bad:?}"),
    );
    drop(v);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_cgroup_release_agent() {
    let host = HostSnapshot::take("release");
    let mut r = Report::new("cgroup v1 release_agent");
    let v = Victim::start();
    // Opened for writing with nothing written: the host's agent cannot change,
    // but a successful open is the escape.
    let run = v.sh(
        "for f in /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/release_agent; do \
         [ -e \"$f\" ] || continue; : > \"$f\" && echo \"wrote $f\"; done; true",
    );
    r.verdict(
        "write /sys/fs/cgroup/*/release_agent",
        !run.out.contains("wrote"),
        &format!(
            "none writable{}",
            if run.out.trim().is_empty() {
                " (none visible)"
            } else {
                ""
            }
        ),
        &report::brief(&run.out),
    );
    let rdma = std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("rdma"));
    let run = v.sh(&format!(
        "mkdir -p /{MOUNT_MARK}rdma && mount -t cgroup -o rdma c /{MOUNT_MARK}rdma"
    ));
    if !rdma && run.out.contains("Invalid argument") {
        r.blocked(
            "mount -t cgroup -o rdma",
            "EINVAL: this kernel has no rdma controller (see the next rows)",
        );
    } else {
        r.expect_error(
            "mount -t cgroup -o rdma",
            &run,
            &[EPERM, MOUNT_DENIED, EBUSY],
        );
    }
    for opts in ["memory", "none,name=gbxescape"] {
        let dir = format!("/{MOUNT_MARK}cg-{}", opts.len());
        let run = v.sh(&format!(
            "mkdir -p {dir} && mount -t cgroup -o {opts} c {dir} && echo mounted"
        ));
        let attempt = format!("mount -t cgroup -o {opts}");
        if run.out.contains("mounted") {
            r.escaped(attempt, "mounted");
            let run = v.sh(&format!(": > {dir}/release_agent"));
            r.expect_error(
                &format!("write release_agent of the -o {opts} mount"),
                &run,
                &[EPERM, EACCES, EROFS, ENOENT, ENOENT_SH],
            );
        } else {
            // EBUSY: a v2 host has the controller in its cgroup2 hierarchy.
            r.expect_error(&attempt, &run, &[EPERM, MOUNT_DENIED, EBUSY]);
        }
    }
    drop(v);
    host.verify(&mut r);
    r.finish();
}

#[test]
fn container_escape_abstract_unix_socket() {
    use std::os::linux::net::SocketAddrExt;
    let host = HostSnapshot::take("unix");
    let mut r = Report::new("abstract unix sockets");
    let name = format!("gbx-escape-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).expect("binding on the host");
    listener.set_nonblocking(true).expect("nonblocking");
    let on_host = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    assert!(
        on_host.contains(&format!("@{name}")),
        "the host does not list its own socket"
    );
    let v = Victim::start();
    let run = v.sh(&format!("grep @{name} /proc/net/unix"));
    r.verdict(
        "grep @<host socket> /proc/net/unix",
        run.code != 0 && run.out.trim().is_empty(),
        "not listed (own network namespace)",
        &report::brief(&run.out),
    );
    let run = v.sh("grep -c @ /proc/net/unix");
    r.verdict(
        "abstract sockets visible inside",
        run.out.trim() == "0",
        "none",
        &report::brief(&run.out),
    );
    r.verdict(
        "the host socket was never connected to",
        listener.accept().is_err(),
        "no connection",
        "a connection arrived",
    );
    drop(v);
    host.verify(&mut r);
    r.finish();
}

/// The syscall prober hook. The suite runs `/probe` inside the container:
/// from the image when it has one, else the static binary named by
/// `GLASSBOX_PROBER` (copied in). The prober attempts each syscall the
/// seccomp filter must deny and prints one `name result` line per call;
/// `result` is the errno name it got (`EPERM`, `ENOSYS`, ...) or `blocked`
/// when denied, anything else (`ok`, `allowed`, a return value) when the call
/// went through. No prober is a failure: the blocked syscalls are untested.
pub const PROBER_IN_CONTAINER: &str = "/probe";
pub const PROBER_ENV: &str = "GLASSBOX_PROBER";

#[test]
fn container_escape_blocked_syscalls() {
    let host = HostSnapshot::take("syscalls");
    let mut r = Report::new("blocked syscalls");
    let v = Victim::start();
    let mut have = v.sh(&format!("[ -x {PROBER_IN_CONTAINER} ]")).code == 0;
    if !have {
        if let Some(path) = std::env::var_os(PROBER_ENV) {
            let file = std::fs::File::open(&path).expect("the prober named by GLASSBOX_PROBER");
            let mut cmd = v.env.cmd(&[
                "exec",
                "-i",
                &v.id,
                "sh",
                "-c",
                &format!("cat > {PROBER_IN_CONTAINER} && chmod 755 {PROBER_IN_CONTAINER}"),
            ]);
            cmd.stdin(file);
            have = cmd.status().is_ok_and(|s| s.success());
        }
    }
    if have {
        let run = v.sh(PROBER_IN_CONTAINER);
        let mut lines = 0;
        for line in run.out.lines() {
            let Some((name, result)) = line.trim().split_once(char::is_whitespace) else {
                continue;
            };
            let result = result.trim();
            lines += 1;
            let denied = result == "blocked"
                || (result.len() > 1
                    && result.starts_with('E')
                    && result[1..]
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
            r.verdict(name, denied, result, result);
        }
        if lines == 0 {
            r.escaped(
                "run the prober",
                format!("no result lines: {}", report::brief(&run.out)),
            );
        }
    } else {
        r.escaped(
            "probe each denied syscall",
            format!("prober missing: no {PROBER_IN_CONTAINER} in the image and {PROBER_ENV} unset"),
        );
    }
    drop(v);
    host.verify(&mut r);
    r.finish();
}

/// Needs `ip`, veth and the host's network: not in the cgroup v2 VM.
#[test]
fn escape_host_loopback_and_metadata() {
    let host = HostSnapshot::take("network");
    let mut r = Report::new("host network services");
    let services = net::HostServices::start();
    let v = Victim::start();
    let refused = [ECONNREFUSED, ENETUNREACH, ETIMEDOUT];
    for ip in services.host_ips() {
        let run = v.sh(&format!(
            "nc -w 2 {ip} {} < /dev/null",
            services.host_port()
        ));
        r.expect_error(
            &format!("connect to a host service on {ip}"),
            &run,
            &refused,
        );
    }
    let run = v.sh(&format!(
        "printf 'GET /latest/meta-data/ HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} 80",
        net::METADATA
    ));
    r.expect_error(
        "connect to the metadata service at 169.254.169.254:80",
        &run,
        &refused,
    );
    let hits = services.connections();
    r.verdict(
        "connections the host services saw from the container",
        hits == 0,
        "none",
        &format!("{hits}"),
    );
    drop(v);
    drop(services);
    host.verify(&mut r);
    r.finish();
}
