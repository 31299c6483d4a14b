//! The image store against a real filesystem. Needs root (ownership is kept as
//! the archives say); skips itself otherwise.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use runtime::image::{ImageError, ImageStore};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000);
    h
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar_header(tar::EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, path, data).expect("append file");
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, path, std::io::empty())
        .expect("append dir");
}

fn add_symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, path, target).expect("append symlink");
}

/// Write a raw path into a header, bypassing the tar crate's own `..` checks,
/// the way a hostile archive would.
fn add_file_raw_path(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar_header(tar::EntryType::Regular, 0o644, data.len() as u64);
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_cksum();
    b.append(&h, data).expect("append raw");
}

fn small_tar(marker: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, "etc/");
    add_file(&mut b, "etc/hello", marker.as_bytes());
    let mut h = tar_header(tar::EntryType::Regular, 0o4755, 3);
    h.set_uid(1234);
    h.set_gid(5678);
    b.append_data(&mut h, "bin/tool", &b"abc"[..])
        .expect("append");
    // A device node: skipped.
    let mut h = tar_header(tar::EntryType::Char, 0o666, 0);
    h.set_device_major(1).expect("major");
    h.set_device_minor(3).expect("minor");
    b.append_data(&mut h, "dev/null", std::io::empty())
        .expect("append dev");
    b.into_inner().expect("tar")
}

fn new_store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open store");
    (dir, store)
}

fn layer_count(root: &Path) -> usize {
    fs::read_dir(root.join("layers/sha256"))
        .expect("layers dir")
        .count()
}

#[test]
fn busybox_builds_once_and_is_usable() {
    require_root!();
    let (dir, store) = new_store();
    assert!(store.list().expect("list").is_empty());
    let image = store.resolve("busybox").expect("busybox");
    assert_eq!(image.name, "busybox");
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert!(layer.digest.starts_with("sha256:") && layer.digest.len() == 71);
    assert!(layer.size > 100_000, "busybox is big: {}", layer.size);
    let root = &layer.dir;
    let bb = fs::metadata(root.join("bin/busybox")).expect("busybox");
    assert!(bb.is_file() && bb.permissions().mode() & 0o111 != 0);
    let sh = fs::metadata(root.join("bin/sh")).expect("sh resolves");
    assert!(sh.is_file());
    assert_eq!(
        fs::read_link(root.join("bin/sh")).expect("sh is a link"),
        Path::new("/bin/busybox")
    );
    assert!(fs::symlink_metadata(root.join("bin/ls")).is_ok());
    let tmp = fs::metadata(root.join("tmp")).expect("tmp");
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    for d in [
        "proc", "sys", "dev", "root", "home", "etc", "var", "run", "usr/bin", "usr/sbin", "sbin",
    ] {
        assert!(root.join(d).is_dir(), "/{d} missing");
    }
    let passwd = fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"));
    assert!(passwd.contains("nobody"));
    assert!(fs::read_to_string(root.join("etc/profile"))
        .expect("profile")
        .contains("PS1="));
    assert!(root.join("etc/group").is_file() && root.join("etc/hosts").is_file());
    // The static shell really runs inside the layer, applets included.
    let out = std::process::Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", "ls /bin/busybox && echo ok"])
        .output()
        .expect("run chroot");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/bin/busybox\nok\n");

    // Second resolve reuses; list shows it once; `busybox:latest` is the same.
    let again = store.resolve("busybox:latest").expect("again");
    assert_eq!(again, image);
    assert_eq!(store.busybox_builds(), 1);
    let list = store.list().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].info().layers[0].digest, layer.digest);
    assert_eq!(layer_count(dir.path()), 1);

    // A second store builds the same bytes.
    let (_dir2, store2) = new_store();
    let other = store2.resolve("busybox").expect("busybox 2");
    assert_eq!(other.layers[0].digest, layer.digest);
}

#[test]
fn resolve_names_missing_images() {
    let (_dir, store) = new_store();
    let err = store.resolve("nosuch:1").expect_err("missing");
    assert!(matches!(err, ImageError::NotFound { .. }));
    assert!(err.to_string().contains("nosuch:1"), "{err}");
    assert!(matches!(
        store.resolve("../etc"),
        Err(ImageError::InvalidName { .. })
    ));
}

#[test]
fn imports_plain_and_gzip_tars_and_shares_layers() {
    require_root!();
    let (dir, store) = new_store();
    let tar = small_tar("one");
    let plain = dir.path().join("one.tar");
    fs::write(&plain, &tar).expect("write tar");
    // Named .tar but gzip inside: detection goes by magic bytes.
    let gz = dir.path().join("one-gz.tar");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&tar).expect("gzip");
    fs::write(&gz, enc.finish().expect("gzip")).expect("write gz");

    let a = store.import("app:1", &plain).expect("import tar");
    let b = store.import("app:2", &gz).expect("import tar.gz");
    assert_eq!(
        a.layers[0].digest, b.layers[0].digest,
        "digest is of the uncompressed tar"
    );
    use sha2::Digest as _;
    let expected = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar)));
    assert_eq!(a.layers[0].digest, expected);
    assert_eq!(layer_count(dir.path()), 1, "a shared layer is stored once");
    assert_eq!(a.layers[0].size, 3 + 3);

    let root = &a.layers[0].dir;
    assert_eq!(
        fs::read_to_string(root.join("etc/hello")).expect("hello"),
        "one"
    );
    let tool = fs::metadata(root.join("bin/tool")).expect("tool");
    assert_eq!((tool.uid(), tool.gid()), (1234, 5678));
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
    assert!(
        fs::symlink_metadata(root.join("dev/null")).is_err(),
        "device nodes are skipped"
    );

    let names: Vec<String> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["app:1", "app:2"]);
    // No scratch directories left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("layers"))
        .expect("layers")
        .flatten()
        .filter(|e| e.file_name() != "sha256")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn hostile_tars_do_not_escape() {
    require_root!();
    let (dir, store) = new_store();
    let outside = tempfile::tempdir().expect("outside");
    let victim = outside.path().join("victim");

    // `../evil`: the whole import is refused.
    let mut b = tar::Builder::new(Vec::new());
    add_file_raw_path(&mut b, "../evil", b"x");
    let path = dir.path().join("dotdot.tar");
    fs::write(&path, b.into_inner().expect("tar")).expect("write");
    let err = store.import("evil", &path).expect_err("dotdot");
    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    assert!(!dir.path().join("layers/evil").exists() && !dir.path().join("evil").exists());

    // A symlink to an absolute host dir, then a write through it.
    let mut b = tar::Builder::new(Vec::new());
    add_symlink(&mut b, "escape", outside.path().to_str().expect("utf8"));
    add_file(&mut b, "escape/victim", b"pwned");
    let path = dir.path().join("symlink.tar");
    fs::write(&path, b.into_inner().expect("tar")).expect("write");
    let err = store.import("evil", &path).expect_err("symlink write");
    assert!(matches!(err, ImageError::Tar { .. }), "{err}");
    assert!(!victim.exists(), "wrote through a symlink");

    // A symlink to a host file, then the same path as a regular file: the
    // link is replaced, not followed.
    fs::write(&victim, "original").expect("victim");
    let mut b = tar::Builder::new(Vec::new());
    add_symlink(&mut b, "f", victim.to_str().expect("utf8"));
    add_file(&mut b, "f", b"pwned");
    add_file_raw_path(&mut b, "/abs/file", b"made relative");
    let path = dir.path().join("replace.tar");
    fs::write(&path, b.into_inner().expect("tar")).expect("write");
    let image = store.import("ok", &path).expect("replace import");
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "original");
    let root = &image.layers[0].dir;
    assert_eq!(fs::read_to_string(root.join("f")).expect("f"), "pwned");
    assert_eq!(
        fs::read_to_string(root.join("abs/file")).expect("abs"),
        "made relative"
    );

    // A relative symlink climbing out, then a write through it.
    let mut b = tar::Builder::new(Vec::new());
    add_symlink(&mut b, "up", "../../../../../../../../..");
    add_file(&mut b, "up/tmp/glassbox-escape", b"pwned");
    let path = dir.path().join("up.tar");
    fs::write(&path, b.into_inner().expect("tar")).expect("write");
    assert!(store.import("evil", &path).is_err());
    assert!(!Path::new("/tmp/glassbox-escape").exists());

    // A hard link to a symlink that points at a host file.
    let mut b = tar::Builder::new(Vec::new());
    add_symlink(&mut b, "s", victim.to_str().expect("utf8"));
    let mut h = tar_header(tar::EntryType::Link, 0o644, 0);
    b.append_link(&mut h, "hard", "s")
        .expect("append hard link");
    let path = dir.path().join("hard.tar");
    fs::write(&path, b.into_inner().expect("tar")).expect("write");
    let err = store.import("evil", &path).expect_err("hard link out");
    assert!(err.to_string().contains("cannot unpack layer tar"), "{err}");
    assert_eq!(fs::metadata(&victim).expect("victim").nlink(), 1);

    assert!(matches!(
        store.resolve("evil"),
        Err(ImageError::NotFound { .. })
    ));
    // Failed imports leave no scratch directories.
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("layers"))
        .expect("layers")
        .flatten()
        .filter(|e| e.file_name() != "sha256")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn remove_collects_unreferenced_layers_but_keeps_in_use_ones() {
    require_root!();
    let (dir, store) = new_store();
    let mut digests = Vec::new();
    for (name, marker) in [("a", "A"), ("b", "B"), ("c", "C")] {
        let path = dir.path().join(format!("{name}.tar"));
        fs::write(&path, small_tar(marker)).expect("write");
        digests.push(
            store.import(name, &path).expect("import").layers[0]
                .digest
                .clone(),
        );
    }
    // d shares a's layer.
    let d = store
        .create_image("d", std::slice::from_ref(&digests[0]))
        .expect("create");
    assert_eq!(d.layers[0].digest, digests[0]);
    assert_eq!(layer_count(dir.path()), 3);

    let none = HashSet::new();
    store.remove("a", &none).expect("remove a");
    assert_eq!(layer_count(dir.path()), 3, "d still uses a's layer");
    store.remove("d", &none).expect("remove d");
    assert_eq!(layer_count(dir.path()), 2, "a's layer is gone");

    let in_use: HashSet<String> = [digests[1].clone()].into();
    store.remove("b", &in_use).expect("remove b");
    assert_eq!(
        layer_count(dir.path()),
        2,
        "a container still uses b's layer"
    );
    store.remove("c", &none).expect("remove c");
    assert_eq!(layer_count(dir.path()), 0);
    assert!(matches!(
        store.remove("c", &none),
        Err(ImageError::NotFound { .. })
    ));
    assert!(store.list().expect("list").is_empty());
    let err = store
        .create_image("e", &digests[..1])
        .expect_err("layer gone");
    assert!(matches!(err, ImageError::LayerMissing { .. }), "{err}");
}

/// Resolves are served from memory while an image's record says the same,
/// and see every change to it, made through this handle or another
/// (another process's store, such as `gbx`).
#[test]
fn resolve_sees_every_change_to_a_record() {
    require_root!();
    let (dir, store) = new_store();
    let other = ImageStore::open(dir.path()).expect("second handle");
    let mut layer = Vec::new();
    for marker in ["A", "B"] {
        let path = dir.path().join(format!("{marker}.tar"));
        fs::write(&path, small_tar(marker)).expect("write");
        layer.push(store.import("x", &path).expect("import").layers[0].clone());
    }
    assert_eq!(
        store.resolve("x").expect("resolve").layers,
        [layer[1].clone()]
    );

    // Replaced by the other handle: seen at once.
    other
        .create_image("x", std::slice::from_ref(&layer[0].digest))
        .expect("replace");
    assert_eq!(
        store.resolve("x").expect("resolve").layers,
        [layer[0].clone()]
    );
    other
        .create_image("x", &[layer[0].digest.clone(), layer[1].digest.clone()])
        .expect("replace");
    assert_eq!(store.resolve("x").expect("resolve").layers, layer);

    // While the record says the same, its layers' records are not read
    // again: a resolve after one of them is damaged still answers.
    let json = dir
        .path()
        .join("layers/sha256")
        .join(layer[0].digest.trim_start_matches("sha256:"))
        .join("layer.json");
    let good = fs::read(&json).expect("layer record");
    fs::write(&json, b"{").expect("damage");
    assert_eq!(store.resolve("x").expect("from memory").layers, layer);
    let err = other.resolve("x").expect_err("read from disk");
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
    fs::write(&json, good).expect("mend");

    other.remove("x", &HashSet::new()).expect("remove");
    assert!(matches!(
        store.resolve("x"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(matches!(
        store.resolve_existing("x"),
        Err(ImageError::NotFound { .. })
    ));
}

#[test]
fn concurrent_busybox_resolves_build_once() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Arc::new(dir.path().to_path_buf());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || {
                // Each thread opens its own store, as separate processes would.
                let store = ImageStore::open(&root).expect("open");
                let image = store.resolve("busybox").expect("resolve");
                (image, store.busybox_builds())
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let builds: usize = results.iter().map(|(_, n)| n).sum();
    assert_eq!(builds, 1, "busybox built once");
    for (image, _) in &results {
        assert_eq!(image, &results[0].0);
    }
    assert_eq!(layer_count(dir.path()), 1);
}
