//! Canaries for the pure cgroup v2 suite (`scripts/cgroup-v2-vm`).
//!
//! They run everywhere; on a host that is not pure cgroup v2 the v2 checks
//! skip with a message, so they pass on the cgroup v1 CI machine too. Inside
//! the VM they prove the v2 hierarchy, the overlay module and the test
//! binary layout are what the runtime's `cgroup_*` / `v2_*` tests expect.

use std::path::Path;

fn on_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn v2_cgroup_is_unified() {
    if !on_cgroup_v2() {
        println!("skipped: not cgroup v2");
        return;
    }
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .expect("read cgroup.controllers");
    for c in ["memory", "pids", "cpu"] {
        assert!(
            controllers.split_whitespace().any(|x| x == c),
            "controller {c} missing from {controllers:?}"
        );
    }
}

#[test]
fn v2_overlayfs_is_available() {
    if !on_cgroup_v2() {
        println!("skipped: not cgroup v2");
        return;
    }
    let fs = std::fs::read_to_string("/proc/filesystems").expect("read /proc/filesystems");
    assert!(
        fs.lines().any(|l| l.trim_end().ends_with("overlay")),
        "overlay filesystem not registered:\n{fs}"
    );
}

#[test]
fn v2_gbx_binary_is_at_its_build_path() {
    // Integration tests find the CLI through this compile-time absolute path,
    // so the VM must carry it at the same place.
    let gbx = Path::new(env!("CARGO_BIN_EXE_gbx"));
    assert!(gbx.is_file(), "{} is missing", gbx.display());
}
