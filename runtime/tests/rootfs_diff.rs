//! `rootfs::diff` against a real overlay mount. Needs root; skips otherwise.

use std::fs;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use protocol::{Change, ChangeKind};
use runtime::rootfs::diff::diff;

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = umount2(self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn diff_of_a_real_overlay() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (mount)");
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let base = t.path();
    let (lower, upper, work, merged) = (
        base.join("lower"),
        base.join("upper"),
        base.join("work"),
        base.join("merged"),
    );
    for d in [&upper, &work, &merged] {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::create_dir_all(lower.join("etc")).expect("etc");
    fs::create_dir_all(lower.join("var/log")).expect("var/log");
    fs::create_dir_all(lower.join("opt/old")).expect("opt/old");
    fs::write(lower.join("etc/hosts"), "127.0.0.1 localhost\n").expect("hosts");
    fs::write(lower.join("etc/motd"), "hi\n").expect("motd");
    fs::write(lower.join("var/log/keep"), "k").expect("keep");
    fs::write(lower.join("opt/old/f"), "f").expect("opt/old/f");

    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .expect("mount overlay");
    {
        let _guard = Mounted(&merged);
        fs::remove_file(merged.join("etc/motd")).expect("rm motd"); // whiteout
        let mut hosts = fs::read_to_string(merged.join("etc/hosts")).expect("hosts");
        hosts.push_str("10.0.0.1 box\n");
        fs::write(merged.join("etc/hosts"), hosts).expect("append hosts"); // copy-up
        fs::write(merged.join("new.txt"), "new").expect("new"); // added
        fs::create_dir_all(merged.join("data/sub")).expect("data"); // added dirs
        fs::write(merged.join("data/sub/x"), "x").expect("x");
        fs::remove_dir_all(merged.join("opt/old")).expect("rm opt/old"); // dir whiteout
        fs::create_dir(merged.join("opt/old")).expect("recreate opt/old"); // opaque
        fs::write(merged.join("opt/old/g"), "g").expect("g");
        umount2(&merged, MntFlags::empty()).expect("umount");
    }

    let got = diff(&upper, &[&lower]).expect("diff");
    use ChangeKind::*;
    let want: Vec<Change> = [
        ("/data", Added),
        ("/data/sub", Added),
        ("/data/sub/x", Added),
        ("/etc", Modified),
        ("/etc/hosts", Modified),
        ("/etc/motd", Deleted),
        ("/new.txt", Added),
        ("/opt", Modified),
        ("/opt/old", Modified),
        ("/opt/old/g", Added),
    ]
    .iter()
    .map(|(p, k)| Change {
        path: (*p).to_string(),
        kind: *k,
    })
    .collect();
    assert_eq!(got, want);
}
