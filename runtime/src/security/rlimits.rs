//! Resource limits every container process starts with. Memory, CPU and
//! process counts are the cgroup's business; these are the per-process ones
//! a cgroup does not cover.

use nix::sys::resource::{setrlimit, Resource};

#[derive(Debug, thiserror::Error)]
#[error("setting {name} to {soft}/{hard}: {source}")]
pub struct RlimitError {
    name: &'static str,
    soft: u64,
    hard: u64,
    source: nix::Error,
}

/// (resource, name, soft, hard). Without `CAP_SYS_RESOURCE` (dropped) the
/// container cannot raise a hard limit again.
pub const LIMITS: &[(Resource, &str, u64, u64)] = &[
    // No core dumps: a dump of a process in the container would be written
    // by the host's core_pattern handler, which may run on the host.
    (Resource::RLIMIT_CORE, "RLIMIT_CORE", 0, 0),
    // Enough for shells and small servers; bounds the kernel memory a
    // process can pin in open files.
    (Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE", 1024, 4096),
    // Locked memory is not charged like page cache; keep it small.
    (
        Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MEMLOCK",
        64 * 1024,
        64 * 1024,
    ),
    // Queued signals and POSIX message queues are kernel memory per user,
    // and every container is uid 0.
    (Resource::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING", 1024, 1024),
    (
        Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_MSGQUEUE",
        819_200,
        819_200,
    ),
];

pub fn apply() -> Result<(), RlimitError> {
    for &(res, name, soft, hard) in LIMITS {
        setrlimit(res, soft, hard).map_err(|source| RlimitError {
            name,
            soft,
            hard,
            source,
        })?;
    }
    Ok(())
}
