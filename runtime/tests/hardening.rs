//! The confinement of every process in a container (capabilities,
//! no_new_privs, seccomp, rlimits, fds, device access, masked paths, PID 1's
//! binary), checked from inside real containers through the real `gbx`.
//! Named `container_*`, so `scripts/cgroup-v2-vm` runs them on cgroup v2 too.

mod common;

use common::Env;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The status lines and limits every confined process must show.
const STATUS_SCRIPT: &str =
    "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; \
     echo core $(ulimit -c); echo nofile $(ulimit -n); ls -l /proc/self/fd";

fn fields(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once([':', ' '])?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

fn assert_confined(what: &str, out: &str) {
    let f = fields(out);
    let mask = format!("{:016x}", runtime::security::caps::kept_mask());
    for set in ["CapPrm", "CapEff", "CapBnd", "CapInh"] {
        assert_eq!(f.get(set), Some(&mask), "{what}: {set}\n{out}");
    }
    assert_eq!(
        f.get("CapAmb").map(String::as_str),
        Some("0000000000000000"),
        "{what}\n{out}"
    );
    assert_eq!(
        f.get("NoNewPrivs").map(String::as_str),
        Some("1"),
        "{what}\n{out}"
    );
    assert_eq!(
        f.get("Seccomp").map(String::as_str),
        Some("2"),
        "{what}\n{out}"
    );
    assert_eq!(
        f.get("core").map(String::as_str),
        Some("0"),
        "{what}\n{out}"
    );
    assert_eq!(
        f.get("nofile").map(String::as_str),
        Some("1024"),
        "{what}\n{out}"
    );
    // `ls`'s own fds: stdio (a pty or pipes) and the directory it reads,
    // nothing of the host.
    let fds: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .filter_map(|(l, target)| Some((l.split_whitespace().last()?, target)))
        .collect();
    assert!(fds.len() >= 3, "{what}: no fd listing\n{out}");
    for (fd, target) in fds {
        let stdio = ["0", "1", "2"].contains(&fd);
        let own_dir = target.starts_with("/proc/") && target.ends_with("/fd");
        assert!(
            stdio || own_dir,
            "{what}: fd {fd} -> {target} leaked in\n{out}"
        );
    }
}

#[test]
fn container_every_process_is_confined_run_init_no_init_and_exec() {
    let env = Env::new();
    // The 9 capabilities kept, and none of those the issue names.
    let mask = runtime::security::caps::kept_mask();
    assert_eq!(mask.count_ones(), 9);
    for cap in [13u32, 27, 21, 19, 16, 31, 29, 8] {
        // NET_RAW, MKNOD, SYS_ADMIN, SYS_PTRACE, SYS_MODULE, SETFCAP, AUDIT_WRITE, SETPCAP
        assert_eq!(mask & (1 << cap), 0, "capability {cap} is kept");
    }
    let out = env.ok(&["run", "--rm", "busybox", "sh", "-c", STATUS_SCRIPT]);
    assert_confined("run (init)", &out);
    let out = env.ok(&[
        "run",
        "--rm",
        "--no-init",
        "busybox",
        "sh",
        "-c",
        STATUS_SCRIPT,
    ]);
    assert_confined("run --no-init", &out);

    let id = env.detached(&[], &["sleep", "60"]);
    let out = env.ok(&["exec", &id, "sh", "-c", STATUS_SCRIPT]);
    assert_confined("exec", &out);
    // PID 1 (glassbox-init, our own code) is confined as well.
    let out = env.ok(&["exec", &id, "cat", "/proc/1/status"]);
    let f = fields(&out);
    assert_eq!(
        f.get("Name").map(String::as_str),
        Some("glassbox-init"),
        "{out}"
    );
    assert_eq!(
        f.get("CapBnd"),
        Some(&format!("{mask:016x}")),
        "PID 1\n{out}"
    );
    assert_eq!(
        f.get("CapEff"),
        Some(&format!("{mask:016x}")),
        "PID 1\n{out}"
    );
    assert_eq!(
        f.get("NoNewPrivs").map(String::as_str),
        Some("1"),
        "PID 1\n{out}"
    );
    assert_eq!(
        f.get("Seccomp").map(String::as_str),
        Some("2"),
        "PID 1\n{out}"
    );
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

/// `sh -c SCRIPT` in the container; every line of `SCRIPT`'s output.
fn sh(env: &Env, id: &str, script: &str) -> String {
    let (_, out, err) = env.run(&["exec", id, "sh", "-c", script]);
    format!("{out}{err}")
}

#[test]
fn container_cannot_mount_mknod_unshare_or_reach_pid1s_binary() {
    let env = Env::new();
    let id = env.detached(&[], &["sleep", "60"]);
    for (what, script) in [
        ("mount", "mount -t tmpfs t /mnt"),
        ("mknod", "mknod /tmp/sda b 8 0"),
        ("unshare", "unshare -m true"),
        ("unshare -U", "unshare -U true"),
        ("setns", "nsenter -t 1 -m true"),
        ("/dev/mem", "head -c1 /dev/mem"),
        ("sysrq", "echo h > /proc/sysrq-trigger"),
        ("/proc/sys", "echo 1 > /proc/sys/kernel/core_uses_pid"),
        ("/sys", "touch /sys/kernel/x"),
        ("PID 1's exe", "readlink /proc/1/exe"),
        ("PID 1's exe", "head -c1 /proc/1/exe"),
        ("PID 1's root", "ls /proc/1/root/"),
        ("PID 1's fds", "readlink /proc/1/fd/0"),
        ("PID 1's cwd", "ls /proc/1/cwd/"),
        ("PID 1's memory", "head -c1 /proc/1/mem"),
    ] {
        let (code, out, err) = env.run(&["exec", &id, "sh", "-c", script]);
        assert_ne!(code, 0, "{what} ({script}) succeeded: {out}{err}");
    }
    // Without NET_RAW, ping works through ICMP echo sockets, for every group
    // the container's user namespace maps (0..65535).
    let range = sh(&env, &id, "cat /proc/sys/net/ipv4/ping_group_range");
    assert_eq!(range.split_whitespace().collect::<Vec<_>>(), ["0", "65535"]);
    // PID 1 holds nothing but stdio (its fd numbers are visible, not what they are).
    // From inside, /proc/1/fd cannot even be listed (PID 1 is not dumpable
    // and nobody holds CAP_SYS_PTRACE); the host sees what it holds.
    let (code, out, err) = env.run(&["exec", &id, "ls", "/proc/1/fd"]);
    assert!(
        code != 0 && (out + &err).contains("Permission denied"),
        "/proc/1/fd listed from inside"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", &id])).expect("inspect JSON");
    let pid1 = inspect["host_pid"].as_u64().expect("host_pid");
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid1}/fd"))
        .expect("PID 1's fds on the host")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    // Masked files (those this kernel has) read as empty.
    let masked: Vec<&str> = runtime::rootfs::mounts::MASKED_PATHS
        .iter()
        .copied()
        .filter(|p| p.starts_with("/proc/") && Path::new(p).is_file())
        .collect();
    assert!(!masked.is_empty(), "no masked file exists on this kernel");
    for p in masked {
        let out = sh(&env, &id, &format!("wc -c < {p}"));
        assert_eq!(out.trim(), "0", "{p} is not masked: {out}");
    }
    // /proc is nosuid,nodev,noexec; /proc/sys and /sys are read-only.
    let mounts = sh(&env, &id, "cat /proc/self/mountinfo");
    let opts = |target: &str| -> String {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .and_then(|l| l.split(' ').nth(5))
            .unwrap_or("")
            .to_string()
    };
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(
            opts("/proc").split(',').any(|x| x == o),
            "/proc lacks {o}: {}",
            opts("/proc")
        );
    }
    for ro in ["/proc/sys", "/sys"] {
        assert!(
            opts(ro).split(',').any(|x| x == "ro"),
            "{ro} is not read-only: {}",
            opts(ro)
        );
    }
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

/// Make a character device node at `path` from the host side.
fn host_mknod(path: &Path, major: u64, minor: u64) {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    mknod(
        path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

#[test]
fn container_devices_cgroup_blocks_nodes_outside_the_allowlist() {
    let env = Env::new();
    let id = env.detached(&[], &["sleep", "60"]);
    // Device nodes put into the container's RW layer from the host cannot
    // be opened at all, allowed or not: the overlay was mounted inside the
    // container's user namespace, and the kernel makes such mounts nodev.
    let upper: PathBuf = env.path().join("containers").join(&id).join("rw/upper");
    host_mknod(&upper.join("allowed-null"), 1, 3);
    host_mknod(&upper.join("denied-kmsg"), 1, 11);
    let out = sh(&env, &id, "ls /allowed-null /denied-kmsg");
    assert_eq!(out.lines().count(), 2, "nodes not visible: {out}");
    for node in ["/allowed-null", "/denied-kmsg"] {
        let (code, out, err) = env.run(&["exec", &id, "sh", "-c", &format!(": < {node}")]);
        assert_ne!(code, 0, "{node} opened: {out}{err}");
    }
    // The device filter itself: a host process (root, every capability)
    // moved into the container's cgroup may open only the allowed devices.
    let dirs = env.cgroup_dirs(&id);
    let dir = dirs
        .iter()
        .find(|d| d.join("devices.list").exists())
        .or_else(|| dirs.first())
        .expect("a cgroup dir");
    let in_cgroup = |dev: &str| {
        let script = format!("echo $$ > {}/cgroup.procs && : < {dev}", dir.display());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        in_cgroup("/dev/null"),
        (Some(0), String::new()),
        "c 1:3 must open"
    );
    for dev in ["/dev/kmsg", "/dev/console"] {
        let (code, err) = in_cgroup(dev);
        assert_ne!(code, Some(0), "{dev} opened in the container's cgroup");
        assert!(err.contains("not permitted"), "{dev}: {err}");
    }
    // On v1 the kernel's own list says the same.
    let devices = env
        .cgroup_dirs(&id)
        .into_iter()
        .map(|d| d.join("devices.list"))
        .find(|f| f.exists());
    if let Some(list) = devices {
        let text = std::fs::read_to_string(&list).expect("devices.list");
        let mut got: Vec<&str> = text.lines().collect();
        got.sort_unstable();
        let mut want: Vec<String> = runtime::cgroups::devices::ALLOWED
            .iter()
            .map(|r| r.v1_line())
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

/// `name -> (result, errno name)` from the prober's lines.
fn probe_results(out: &str) -> BTreeMap<String, (String, String)> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_string();
            let res = w.next()?.to_string();
            let detail = w.next().unwrap_or("").to_string();
            Some((name, (res, detail)))
        })
        .collect()
}

fn assert_probes(what: &str, expected: &BTreeMap<String, (String, String)>, out: &str) {
    let got = probe_results(out);
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: not every probe ran\n{out}"
    );
    for (name, (expect, _)) in expected {
        let (res, detail) = got
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}\n{out}"));
        match expect.as_str() {
            "deny" => assert_eq!(
                (res.as_str(), detail.as_str()),
                ("err", "EPERM"),
                "{what}: {name}"
            ),
            "enosys" => assert_eq!(
                (res.as_str(), detail.as_str()),
                ("err", "ENOSYS"),
                "{what}: {name}"
            ),
            "allow" => assert_eq!(res, "ok", "{what}: {name} {detail}"),
            other => panic!("unknown expectation {other}"),
        }
    }
}

#[test]
fn container_seccomp_denies_every_listed_syscall() {
    let env = Env::new();
    env.import_probe_image();
    let list = std::process::Command::new(env!("GLASSBOX_PROBE"))
        .arg("--list")
        .output()
        .expect("probe --list");
    let expected = probe_results(&String::from_utf8_lossy(&list.stdout));
    assert!(expected.len() >= 30, "{expected:?}");
    let out = env.ok(&["run", "--rm", "probe", "/probe"]);
    assert_probes("run", &expected, &out);
    let out = env.ok(&["run", "--rm", "--no-init", "probe", "/probe"]);
    assert_probes("run --no-init", &expected, &out);
    let id = env
        .ok(&["run", "-d", "probe", "sh", "-c", "sleep 60"])
        .trim()
        .to_string();
    let out = env.ok(&["exec", &id, "/probe"]);
    assert_probes("exec", &expected, &out);
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}
