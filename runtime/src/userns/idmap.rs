//! Idmapped mounts of the image layer store.
//!
//! The supervisor (host root) clones the layer store's mount and attaches
//! the container's user namespace to it; the container process moves that
//! detached mount over the store's path in its own mount namespace, before
//! it is claimed. Overlay lower directories under that path then show host
//! root's files as the container's root's, in any range, with no copy.

use super::UsernsError;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(path: &Path) -> Result<CString, UsernsError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| UsernsError::Sys {
        step: "using",
        path: path.to_path_buf(),
        source: nix::Error::EINVAL,
    })
}

fn last_err(step: &'static str, path: &Path) -> UsernsError {
    UsernsError::Sys {
        step,
        path: path.to_path_buf(),
        source: nix::Error::last(),
    }
}

/// A detached copy of the mount at `path` that maps ids through `userns`.
pub fn idmapped_clone(path: &Path, userns: BorrowedFd<'_>) -> Result<OwnedFd, UsernsError> {
    let c = cpath(path)?;
    // SAFETY: open_tree with a valid C string; returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_err("cloning the mount of", path));
    }
    // SAFETY: open_tree returned a fresh fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr reads `attr` (of the size we pass) and the empty path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        let source = nix::Error::last();
        // EINVAL here means the filesystem cannot be idmapped.
        return Err(if source == nix::Error::EINVAL {
            UsernsError::IdmapUnsupported {
                path: path.to_path_buf(),
                source,
            }
        } else {
            UsernsError::Sys {
                step: "idmapping the mount of",
                path: path.to_path_buf(),
                source,
            }
        });
    }
    Ok(tree)
}

/// Attach a detached mount at `target` in our mount namespace.
pub fn move_mount_to(tree: BorrowedFd<'_>, target: &Path) -> Result<(), UsernsError> {
    let c = cpath(target)?;
    // SAFETY: move_mount with a valid fd and C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(last_err("mounting the idmapped layer store on", target));
    }
    Ok(())
}
