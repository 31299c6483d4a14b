//! What a container's read-write (overlay upper) layer holds, as `gbx diff`
//! lists it: paths added, modified or deleted relative to the image.
//!
//! Rules, for each entry of `upper` (symlinks are never followed):
//! - a character device with rdev 0/0 is an overlay whiteout: `deleted`;
//! - anything else that exists in the image (the merged lower layers, top layer
//!   wins) is `modified`; this includes directories that were only copied up
//!   because something inside them changed (`docker diff` shows `C /etc`);
//! - anything else is `added`.
//!
//! An opaque directory (xattr `trusted.overlay.opaque` or `user.overlay.opaque`
//! = `y`) is reported like any directory (`modified` if the image has it,
//! `added` if not), and its children are checked against the image one by one.
//! What the image had below it and the container no longer sees is NOT listed
//! as deleted: that would need a walk of the lower layers, which `gbx diff`
//! does not do.
//!
//! Paths are absolute from the container's root and sorted. Names that are not
//! UTF-8 are shown lossily.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use protocol::{Change, ChangeKind};

/// The most entries [`diff`] walks before giving up.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the read-write layer {upper} has more than {limit} entries; not listing them")]
    TooManyEntries { upper: PathBuf, limit: usize },
}

/// List the changes in `upper` against `lowers` (image layer dirs, LOWEST first).
pub fn diff(upper: &Path, lowers: &[&Path]) -> Result<Vec<Change>, DiffError> {
    diff_bounded(upper, lowers, MAX_ENTRIES)
}

/// [`diff`] with an explicit entry limit.
pub fn diff_bounded(
    upper: &Path,
    lowers: &[&Path],
    limit: usize,
) -> Result<Vec<Change>, DiffError> {
    let mut changes = Vec::new();
    let mut seen = 0usize;
    // (relative path components, whether the parent exists in the image)
    let mut stack: Vec<(Vec<Vec<u8>>, bool)> = vec![(Vec::new(), true)];
    while let Some((rel, parent_below)) = stack.pop() {
        let dir = join(upper, &rel);
        let entries = fs::read_dir(&dir).map_err(|source| DiffError::Io {
            op: "read directory",
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| DiffError::Io {
                op: "read directory",
                path: dir.clone(),
                source,
            })?;
            seen += 1;
            if seen > limit {
                tracing::warn!(upper = %upper.display(), limit, "read-write layer too large to diff");
                return Err(DiffError::TooManyEntries {
                    upper: upper.to_path_buf(),
                    limit,
                });
            }
            let mut child = rel.clone();
            child.push(entry.file_name().as_bytes().to_vec());
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|source| DiffError::Io {
                op: "stat",
                path: path.clone(),
                source,
            })?;
            let ft = meta.file_type();
            let display = display_path(&child);
            if is_whiteout(&meta) {
                changes.push(Change {
                    path: display,
                    kind: ChangeKind::Deleted,
                });
                continue;
            }
            let below = parent_below && exists_below(lowers, &child);
            changes.push(Change {
                path: display,
                kind: if below {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                },
            });
            if ft.is_dir() {
                // Below an opaque dir, the image is hidden; below an added dir
                // nothing can be in the image either.
                let opaque = is_opaque(&path);
                stack.push((child, below && !opaque));
            }
        }
    }
    changes.sort();
    Ok(changes)
}

fn join(base: &Path, rel: &[Vec<u8>]) -> PathBuf {
    let mut p = base.to_path_buf();
    for c in rel {
        p.push(OsStr::from_bytes(c));
    }
    p
}

fn display_path(rel: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for c in rel {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(c));
    }
    s
}

/// An overlay whiteout: a character device 0/0.
fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether a directory carries the overlay opaque mark (`y`).
fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| lgetxattr(path, name).as_deref() == Some(b"y".as_slice()))
}

/// Read an xattr without following symlinks; `None` if absent or unreadable.
fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let cpath = CString::new(path.as_os_str().as_bytes()).ok()?;
    let cname = CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and outlive the call; the buffer
    // pointer and length describe `buf`.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.get(..n).map(<[u8]>::to_vec)
}

/// Whether `rel` exists in the merged view of `lowers` (lowest first),
/// honouring whiteouts and opaque directories in the layers, and never
/// following a symlink (a symlinked parent hides what is below it).
fn exists_below(lowers: &[&Path], rel: &[Vec<u8>]) -> bool {
    for layer in lowers.iter().rev() {
        let mut cur = layer.to_path_buf();
        let mut opaque_parent = false;
        for (i, comp) in rel.iter().enumerate() {
            cur.push(OsStr::from_bytes(comp));
            let Ok(meta) = fs::symlink_metadata(&cur) else {
                // Not in this layer: look further down, unless an opaque
                // parent in this layer hides the ones below.
                if opaque_parent {
                    return false;
                }
                break;
            };
            if is_whiteout(&meta) {
                return false;
            }
            if i + 1 == rel.len() {
                return true;
            }
            if !meta.is_dir() {
                // A file or symlink where the path needs a directory.
                return false;
            }
            if is_opaque(&cur) {
                opaque_parent = true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn whiteout(path: &Path) {
        mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).expect("mknod whiteout");
    }

    fn set_opaque(path: &Path) {
        let cpath = CString::new(path.as_os_str().as_bytes()).expect("path");
        let name = CString::new("trusted.overlay.opaque").expect("name");
        // SAFETY: NUL-terminated strings and a one-byte value that outlive the call.
        let rc =
            unsafe { libc::lsetxattr(cpath.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0, "lsetxattr: {}", io::Error::last_os_error());
    }

    fn changes(list: &[(&str, ChangeKind)]) -> Vec<Change> {
        list.iter()
            .map(|(p, k)| Change {
                path: (*p).to_string(),
                kind: *k,
            })
            .collect()
    }

    fn write(path: &Path, data: &str) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(path, data).expect("write");
    }

    #[test]
    fn classifies_a_hand_made_upper() {
        if !is_root() {
            eprintln!("skipped: needs root (mknod)");
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let (low, top, upper) = (t.path().join("l0"), t.path().join("l1"), t.path().join("u"));
        write(&low.join("etc/hosts"), "h");
        write(&low.join("etc/gone"), "g");
        write(&low.join("usr/lib/old"), "o");
        write(&low.join("srv/x"), "x");
        write(&top.join("opt/tool"), "t");
        fs::create_dir_all(&top).expect("top");
        whiteout(&top.join("srv")); // the top layer deleted /srv

        write(&upper.join("etc/hosts"), "changed");
        whiteout(&upper.join("etc/gone"));
        write(&upper.join("opt/tool"), "new");
        write(&upper.join("opt/new/deep/file"), "n");
        write(&upper.join("srv/x"), "back");
        fs::create_dir_all(upper.join("usr/lib")).expect("usr/lib");
        set_opaque(&upper.join("usr/lib"));
        write(&upper.join("usr/lib/fresh"), "f");
        std::os::unix::fs::symlink("/etc/hosts", upper.join("link")).expect("symlink");

        let got = diff(&upper, &[&low, &top]).expect("diff");
        use ChangeKind::*;
        assert_eq!(
            got,
            changes(&[
                ("/etc", Modified),
                ("/etc/gone", Deleted),
                ("/etc/hosts", Modified),
                ("/link", Added),
                ("/opt", Modified),
                ("/opt/new", Added),
                ("/opt/new/deep", Added),
                ("/opt/new/deep/file", Added),
                ("/opt/tool", Modified),
                ("/srv", Added),
                ("/srv/x", Added),
                ("/usr", Modified),
                ("/usr/lib", Modified),
                ("/usr/lib/fresh", Added),
            ])
        );
    }

    #[test]
    fn empty_upper_has_no_changes() {
        let t = tempfile::tempdir().expect("tempdir");
        assert!(diff(t.path(), &[]).expect("diff").is_empty());
    }

    #[test]
    fn symlinked_lower_parents_are_not_followed() {
        let t = tempfile::tempdir().expect("tempdir");
        let (low, upper) = (t.path().join("l"), t.path().join("u"));
        fs::create_dir_all(&low).expect("low");
        // In the image, /host points at the real root; /host/etc/passwd must
        // not count as existing in the image.
        std::os::unix::fs::symlink("/", low.join("host")).expect("symlink");
        write(&upper.join("host/etc/passwd"), "x");
        let got = diff(&upper, &[&low]).expect("diff");
        assert!(got
            .iter()
            .filter(|c| c.path != "/host")
            .all(|c| c.kind == ChangeKind::Added));
    }

    #[test]
    fn stops_at_the_entry_limit() {
        let t = tempfile::tempdir().expect("tempdir");
        for i in 0..20 {
            write(&t.path().join(format!("f{i}")), "x");
        }
        let err = diff_bounded(t.path(), &[], 10).expect_err("too many");
        assert!(matches!(err, DiffError::TooManyEntries { limit: 10, .. }));
        assert!(err.to_string().contains("more than 10 entries"), "{err}");
        assert_eq!(diff_bounded(t.path(), &[], 20).expect("ok").len(), 20);
    }
}
