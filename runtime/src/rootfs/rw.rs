//! The read-write layer: a tmpfs on the host under the container's directory,
//! capped in bytes and inodes, holding the overlay's `upper/` and `work/`.
//! It lives on the host (not only in the container's mount namespace) so that
//! `gbx diff` and the glass-box view can read it, also after the container
//! exited.

use super::RootfsError;
use crate::state::ContainerDir;
use crate::userns::IdRange;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

/// Default cap of the RW layer when the caller sets none.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;
/// One inode per 16 KiB of capacity, at least 4096: enough for real use,
/// small enough that `touch` in a loop hits ENOSPC quickly.
fn inodes_for(bytes: u64) -> u64 {
    (bytes / (16 * 1024)).max(4096)
}

fn sys<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |source| RootfsError::Sys {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// Mount the RW layer and make `upper/` and `work/` in it, owned by the
/// container's root (`owner`'s base id), who writes there through the overlay.
pub fn create(
    dir: &ContainerDir,
    disk_bytes: Option<u64>,
    owner: &IdRange,
) -> Result<(), RootfsError> {
    let rw = dir.rw();
    let bytes = disk_bytes.unwrap_or(DEFAULT_DISK_BYTES);
    nix::unistd::mkdir(&rw, nix::sys::stat::Mode::from_bits_truncate(0o700))
        .or_else(|e| {
            if e == nix::Error::EEXIST {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(sys("creating", &rw))?;
    let opts = format!("size={bytes},nr_inodes={},mode=0755", inodes_for(bytes));
    mount(
        Some("glassbox-rw"),
        &rw,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(sys("mounting tmpfs on", &rw))?;
    for sub in [dir.upper(), dir.work()] {
        nix::unistd::mkdir(&sub, nix::sys::stat::Mode::from_bits_truncate(0o755))
            .map_err(sys("creating", &sub))?;
        let root = Some(nix::unistd::Uid::from_raw(owner.host_base));
        let group = Some(nix::unistd::Gid::from_raw(owner.host_base));
        nix::unistd::chown(&sub, root, group).map_err(sys("handing to the container", &sub))?;
    }
    Ok(())
}

/// Change the caps of an (empty) RW layer mounted ahead of time. The tmpfs's
/// size is a property of its superblock, so a container process that already
/// holds a copy of this mount (a warm start) sees the new caps too.
pub fn resize(dir: &ContainerDir, disk_bytes: Option<u64>) -> Result<(), RootfsError> {
    let rw = dir.rw();
    let bytes = disk_bytes.unwrap_or(DEFAULT_DISK_BYTES);
    // A warm entry's layer is mounted with the default size, which most
    // claims keep: spare them the remount (claims take turns on the state
    // lock while they resize).
    if has_size(&rw, bytes) {
        return Ok(());
    }
    let opts = format!("size={bytes},nr_inodes={}", inodes_for(bytes));
    mount(
        None::<&str>,
        &rw,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(sys("resizing tmpfs on", &rw))
}

/// Whether the tmpfs on `rw` has the size and inode count [`create`] or
/// [`resize`] gives a layer of `bytes`.
fn has_size(rw: &Path, bytes: u64) -> bool {
    let Ok(st) = nix::sys::statvfs::statvfs(rw) else {
        return false;
    };
    let page = st.fragment_size();
    page > 0 && st.blocks() == bytes.div_ceil(page) && st.files() == inodes_for(bytes)
}

/// Unmount and forget the RW layer. Idempotent.
pub fn remove(dir: &ContainerDir) -> Result<(), RootfsError> {
    let rw = dir.rw();
    match umount2(&rw, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(RootfsError::Sys {
            step: "unmounting",
            path: rw,
            source: e,
        }),
    }
}

/// Mount points at or below `dir` in our mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(prefix.as_ref()))
        .map(str::to_string)
        .collect()
}

/// True if `path` is a mount point in our mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let want = path.to_string_lossy();
    mounts_under(path).iter().any(|mp| *mp == want)
}
