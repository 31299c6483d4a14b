//! Linux namespaces: which ones a container gets, in which order they are
//! joined, and how their identities (inodes) are read.

use nix::sched::CloneFlags;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("reading namespace {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("joining {kind} namespace of pid {pid}: {source}")]
    Join {
        kind: &'static str,
        pid: i32,
        source: nix::Error,
    },
}

/// One namespace type, by its `/proc/PID/ns/<name>` file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub flag: CloneFlags,
}

/// The order in which an `exec` joins a container's namespaces. The user
/// namespace comes first so that the others are joined with the privileges it
/// grants; the mount namespace comes last because joining it changes our root
/// and cwd, after which `/proc/PID/ns` of the host may no longer be reachable.
pub const JOIN_ORDER: &[Kind] = &[
    Kind {
        name: "user",
        flag: CloneFlags::CLONE_NEWUSER,
    },
    Kind {
        name: "ipc",
        flag: CloneFlags::CLONE_NEWIPC,
    },
    Kind {
        name: "uts",
        flag: CloneFlags::CLONE_NEWUTS,
    },
    Kind {
        name: "net",
        flag: CloneFlags::CLONE_NEWNET,
    },
    Kind {
        name: "pid",
        flag: CloneFlags::CLONE_NEWPID,
    },
    Kind {
        name: "cgroup",
        flag: CloneFlags::CLONE_NEWCGROUP,
    },
    Kind {
        name: "mnt",
        flag: CloneFlags::CLONE_NEWNS,
    },
];

/// Namespaces a container process is cloned with. The user namespace is
/// among them so that it owns all the others (mounting proc, sysfs and
/// mqueue in a user namespace needs the PID, network and IPC namespaces to
/// belong to it). The cgroup namespace comes later, from inside, once the
/// supervisor has moved the process into its cgroup.
pub fn clone_flags() -> CloneFlags {
    CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
}

/// The inode of `/proc/<pid>/ns/<kind>` (what `ls -l /proc/PID/ns` shows in brackets).
pub fn inode(pid: &str, kind: &str) -> Result<u64, NamespaceError> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
    std::fs::metadata(&path)
        .map(|m| m.ino())
        .map_err(|source| NamespaceError::Read { path, source })
}

/// Inodes of every namespace type of a process.
pub fn inodes(pid: &str) -> Result<BTreeMap<String, u64>, NamespaceError> {
    JOIN_ORDER
        .iter()
        .map(|k| Ok((k.name.to_string(), inode(pid, k.name)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespaces_are_readable_and_distinct_by_type() {
        let map = inodes("self").expect("own namespaces");
        assert_eq!(map.len(), JOIN_ORDER.len());
        // Different namespace types never share an inode.
        let mut values: Vec<u64> = map.values().copied().collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), JOIN_ORDER.len());
    }

    #[test]
    fn mount_namespace_is_joined_last() {
        assert_eq!(JOIN_ORDER.last().map(|k| k.name), Some("mnt"));
        assert_eq!(JOIN_ORDER.first().map(|k| k.name), Some("user"));
    }
}
