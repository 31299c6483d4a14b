//! User namespaces: root in a container is an unprivileged id range on the
//! host, image files still belong to root inside, and each container has a
//! range of its own, given back on removal. Run as root.

mod common;

use common::{wait_for, Env};
use runtime::userns::ranges;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// The container's id map as inspect reports it: (host base, size).
fn id_map(env: &Env, id: &str) -> (u32, u32) {
    let info = env.inspect(id);
    let map = &info["id_map"];
    assert_eq!(map["container_id"], 0, "{info}");
    let base = map["host_id"].as_u64().expect("host_id") as u32;
    let size = map["size"].as_u64().expect("size") as u32;
    (base, size)
}

/// `Uid:` or `Gid:` of /proc/PID/status: real, effective, saved, fs.
fn status_ids(pid: u64, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .expect("field")
        .split_whitespace()
        .map(|v| v.parse().expect("id"))
        .collect()
}

/// Who holds the registry slot of a range, if anyone.
fn registry_record(base: u32) -> Option<String> {
    let slot = (base - ranges::FIRST_HOST_ID) / ranges::RANGE_SIZE;
    std::fs::read_to_string(ranges::registry_dir().join(slot.to_string())).ok()
}

#[test]
fn container_userns_root_inside_is_an_unprivileged_range_outside() {
    let env = Env::new();
    let id = env.detached(&[], &["sleep", "60"]);
    let (base, size) = id_map(&env, &id);
    assert!(base >= ranges::FIRST_HOST_ID, "host base {base} is too low");
    assert_eq!(size, 65_536);
    // Inside: root, with the map inspect reported.
    assert_eq!(env.ok(&["exec", &id, "id", "-u"]).trim(), "0");
    assert_eq!(env.ok(&["exec", &id, "id", "-g"]).trim(), "0");
    let map = env.ok(&["exec", &id, "cat", "/proc/self/uid_map"]);
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields, ["0", &base.to_string(), "65536"], "{map}");
    let gmap = env.ok(&["exec", &id, "cat", "/proc/self/gid_map"]);
    assert_eq!(gmap.split_whitespace().collect::<Vec<_>>(), fields);
    // Outside: PID 1 and an exec'd process run as the range's base id.
    let info = env.inspect(&id);
    let host_pid = info["host_pid"].as_u64().expect("host pid");
    assert_eq!(status_ids(host_pid, "Uid:"), [base; 4]);
    assert_eq!(status_ids(host_pid, "Gid:"), [base; 4]);
    let top = env.ok(&["top", &id]);
    let sleepers: Vec<u64> = top
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert!(!sleepers.is_empty(), "{top}");
    for pid in sleepers {
        assert_eq!(status_ids(pid, "Uid:"), [base; 4], "host pid {pid}");
    }
    // The user namespace is the container's own, and inspect names it.
    let ns = &info["namespaces"]["user"];
    assert_ne!(ns["inode"], ns["host_inode"], "{info}");
    let link = std::fs::read_link(format!("/proc/{host_pid}/ns/user")).expect("ns link");
    assert_eq!(link.to_string_lossy(), format!("user:[{}]", ns["inode"]));
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

#[test]
fn container_userns_image_files_are_roots_inside_and_new_files_the_ranges_outside() {
    let env = Env::new();
    let id = env.detached(&[], &["sh", "-c", "echo hi > /created; sleep 60"]);
    let (base, _) = id_map(&env, &id);
    // Image files keep working: owned by root inside, though root on the
    // host owns them on disk.
    let owners = env.ok(&["exec", &id, "stat", "-c", "%u:%g", "/bin/busybox", "/etc"]);
    assert_eq!(
        owners.lines().collect::<Vec<_>>(),
        ["0:0", "0:0"],
        "{owners}"
    );
    let layer = env.inspect(&id)["layers"][0]["path"]
        .as_str()
        .expect("layer path")
        .to_string();
    let on_disk = std::fs::metadata(format!("{layer}/bin/busybox")).expect("layer file");
    assert_eq!((on_disk.uid(), on_disk.gid()), (0, 0));
    // What the container writes lands in the RW layer as the range's base id.
    let upper = env.path().join("containers").join(&id).join("rw/upper");
    let created = wait_for("/created", Duration::from_secs(5), || {
        std::fs::metadata(upper.join("created")).ok()
    });
    assert_eq!((created.uid(), created.gid()), (base, base));
    // A copy-up of an image file too.
    env.ok(&["exec", &id, "touch", "/etc/passwd"]);
    let copied = std::fs::metadata(upper.join("etc/passwd")).expect("copied up");
    assert_eq!((copied.uid(), copied.gid()), (base, base));
    // ... and the diff still reads it.
    let diff = env.ok(&["diff", &id]);
    assert!(diff.contains("A /created"), "{diff}");
    assert!(diff.contains("C /etc/passwd"), "{diff}");
    env.ok(&["rm", "-f", &id]);
    env.assert_clean();
}

#[test]
fn container_userns_root_cannot_change_host_roots_files() {
    let env = Env::new();
    // /dev/null is the host's own node, owned by host root: the container's
    // root may use it but not change it.
    let (code, _, err) = env.run(&["run", "--rm", "busybox", "chmod", "600", "/dev/null"]);
    assert_ne!(code, 0, "chmod of the host's /dev/null succeeded");
    assert!(err.contains("Operation not permitted"), "{err}");
    let null = std::fs::metadata("/dev/null").expect("/dev/null");
    assert_eq!(null.mode() & 0o777, 0o666);
    // Host-wide kernel settings belong to host root: even with /proc/sys
    // made writable again, writing one is refused.
    let (code, out, err) = env.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mount -o remount,rw /proc/sys 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches && echo wrote",
    ]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(!out.contains("wrote"), "{out}");
    // The device nodes work.
    let out = env.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["4", "4"],
        "{out}"
    );
    env.assert_clean();
}

#[test]
fn container_userns_ranges_are_per_container_and_released_on_removal() {
    let env = Env::new();
    let a = env.detached(&[], &["sleep", "60"]);
    let b = env.detached(&[], &["sleep", "60"]);
    let (base_a, size) = id_map(&env, &a);
    let (base_b, _) = id_map(&env, &b);
    assert!(
        base_a.abs_diff(base_b) >= size,
        "ranges overlap: {base_a} and {base_b}"
    );
    for (id, base) in [(&a, base_a), (&b, base_b)] {
        let record = registry_record(base).expect("registered");
        assert!(record.contains(id.as_str()), "{record}");
        assert!(ranges::is_allocated(base));
    }
    // The warm container waiting in the pool has a range of its own too.
    let warm = wait_for("a warm container", Duration::from_secs(10), || {
        let pool = env.path().join("pool");
        std::fs::read_dir(pool)
            .ok()?
            .filter_map(|e| e.ok())
            .find_map(|e| {
                let entry: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(e.path().join("pool.json")).ok()?)
                        .ok()?;
                entry["id_map"]["host_base"].as_u64()
            })
    }) as u32;
    assert!(
        warm != base_a && warm != base_b,
        "warm entry shares a range"
    );
    env.ok(&["rm", "-f", &a]);
    // Released: the slot no longer names the removed container (another
    // test may already have taken it).
    let record = registry_record(base_a).unwrap_or_default();
    assert!(!record.contains(a.as_str()), "{record}");
    assert!(registry_record(base_b).is_some_and(|r| r.contains(b.as_str())));
    env.ok(&["rm", "-f", &b]);
    let record = registry_record(base_b).unwrap_or_default();
    assert!(!record.contains(b.as_str()), "{record}");
    env.ok(&["pool", "drain"]);
    let record = registry_record(warm).unwrap_or_default();
    assert!(
        !record.contains(env.path().to_str().expect("utf-8 path")),
        "{record}"
    );
    env.assert_clean();
}
