//! User namespaces: root in a container is an unprivileged id range on the
//! host.
//!
//! Every container gets its own range of 65536 host ids ([`ranges`]), mapped
//! to ids 0..65535 inside a new user namespace that owns all the container's
//! other namespaces. Image layers stay owned by host root on disk and are
//! seen through an idmapped mount of the layer store ([`idmap`]), so that
//! they read as owned by root inside every container, whatever its range,
//! with no copy and no chown at import.

pub mod idmap;
pub mod ranges;

use nix::unistd::{Gid, Pid, Uid};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{step} {path}: {source}")]
    Sys {
        step: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("cannot idmap the layer store {path} ({source}): it must be on a filesystem that supports idmapped mounts (ext4, xfs, btrfs; tmpfs from Linux 6.3)")]
    IdmapUnsupported { path: PathBuf, source: nix::Error },
    #[error("all {0} host id ranges are in use")]
    Exhausted(u32),
}

/// Ids `0..count` inside the container are `host_base..host_base+count` on
/// the host, for both uids and gids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub host_base: u32,
    pub count: u32,
}

impl IdRange {
    /// The line `/proc/PID/uid_map` and `gid_map` take.
    fn map_line(&self) -> String {
        format!("0 {} {}\n", self.host_base, self.count)
    }

    /// Whether a host id belongs to this range.
    pub fn contains(&self, host_id: u32) -> bool {
        host_id >= self.host_base && host_id - self.host_base < self.count
    }

    pub fn info(&self) -> protocol::IdMapping {
        protocol::IdMapping {
            container_id: 0,
            host_id: self.host_base,
            size: self.count,
        }
    }
}

/// Map the user namespace of `pid` (a child we just cloned, waiting for
/// this) onto `range`. Only a process privileged over the parent namespace
/// may write a map of more than its own id, so the supervisor does this.
pub fn write_maps(pid: Pid, range: &IdRange) -> Result<(), UsernsError> {
    let line = range.map_line();
    for file in ["uid_map", "gid_map"] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        // The kernel wants the whole map in one write(2), which fs::write
        // does for a buffer this small.
        std::fs::write(&path, line.as_bytes()).map_err(|source| UsernsError::Io {
            step: "writing",
            path,
            source,
        })?;
    }
    Ok(())
}

/// In a user namespace we just entered (by clone or setns), take uid and gid
/// 0 of that namespace, and no supplementary groups. Until then our ids are
/// the host's root ids, which the namespace does not map: files would be
/// created as "nobody" and a host-root-owned file would still count as ours.
pub fn become_root() -> Result<(), nix::Error> {
    nix::unistd::setgroups(&[])?;
    let (g, u) = (Gid::from_raw(0), Uid::from_raw(0));
    nix::unistd::setresgid(g, g, g)?;
    nix::unistd::setresuid(u, u, u)
}
