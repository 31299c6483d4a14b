//! The kernel's surface from inside: /proc and /sys knobs, mounts and new
//! namespaces, modules, raw and packet sockets, devices, the cgroup v1
//! release agent, and the syscalls seccomp must deny.

use super::*;

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

/// The syscall prober: `glassbox-probe` (runtime/probe), built static by the
/// runtime's build script and imported with busybox as the image `probe`.
/// `--list` prints `<name> deny|enosys|allow` (what the confinement must
/// give), and a plain run makes each call raw and prints `<name> ok <ret>`
/// or `<name> err <ERRNO> <n>`. A call that must be denied counts as blocked
/// only with exactly EPERM (ENOSYS for `enosys`): any other error means the
/// call reached the kernel.
pub const PROBER_IN_CONTAINER: &str = "/probe";

#[test]
fn container_escape_blocked_syscalls() {
    let host = HostSnapshot::take("syscalls");
    let mut r = Report::new("blocked syscalls");
    let env = crate::common::Env::new();
    env.import_probe_image();
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(crate::LIMITS);
    args.extend_from_slice(&["-m", crate::MEMORY, "probe", "sh", "-c", "sleep 600"]);
    let id = env.ok(&args).trim().to_string();
    let v = crate::Victim { env, id };
    let have = v.sh(&format!("[ -x {PROBER_IN_CONTAINER} ]")).code == 0;
    if have {
        let list = v.sh(&format!("{PROBER_IN_CONTAINER} --list"));
        let expected: std::collections::HashMap<&str, &str> = list
            .out
            .lines()
            .filter_map(|l| l.trim().split_once(char::is_whitespace))
            .map(|(n, e)| (n, e.trim()))
            .collect();
        let run = v.sh(PROBER_IN_CONTAINER);
        let mut lines = 0;
        for line in run.out.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let errno = if kind == "err" { words.next() } else { None };
            let want = match expected.get(name) {
                Some(&"deny") => "EPERM",
                Some(&"enosys") => "ENOSYS",
                // Calls the confinement must allow are the prober's controls.
                Some(_) => continue,
                None => {
                    r.escaped(name, format!("not in the prober's list: {line}"));
                    continue;
                }
            };
            lines += 1;
            let got = errno.unwrap_or("went through");
            r.verdict(name, errno == Some(want), got, got);
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
            format!("prober missing: no {PROBER_IN_CONTAINER} in the image"),
        );
    }
    drop(v);
    host.verify(&mut r);
    r.finish();
}
