//! Confinement of every process that runs in a container: capabilities,
//! `no_new_privs`, resource limits and a seccomp allowlist.
//!
//! [`prepare`] compiles the seccomp filter once per supervisor, before the
//! container process is cloned (for a warm container: while it is parked),
//! so the clone and every exec helper inherit the compiled program in
//! memory. [`confine`] is the last thing a process does before it execs the
//! user's command (the command of `gbx run`, every `gbx exec`);
//! [`confine_init`] is the same for PID 1 under `--init`, which keeps running
//! our own code. Both are called from a process that is single-threaded.

pub mod caps;
pub mod rlimits;
pub mod seccomp;

use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    #[error(transparent)]
    Rlimit(#[from] rlimits::RlimitError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("setting no_new_privs: {0}")]
    NoNewPrivs(nix::Error),
}

static FILTERS: OnceLock<Result<seccomp::Filters, String>> = OnceLock::new();

/// Compile the seccomp filters (once per process). Call before cloning or
/// forking the processes that will [`confine`] themselves.
pub fn prepare() -> Result<(), SecurityError> {
    filters().map(|_| ())
}

fn filters() -> Result<&'static seccomp::Filters, SecurityError> {
    FILTERS
        .get_or_init(|| seccomp::Filters::compile().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| SecurityError::Seccomp(seccomp::SeccompError::Compile(e.clone())))
}

/// Confine the calling process before it execs the user's command: limits,
/// capabilities, `no_new_privs`, then seccomp (last, so that the steps before
/// it may use calls the filter denies).
pub fn confine() -> Result<(), SecurityError> {
    let filters = filters()?;
    rlimits::apply()?;
    caps::drop_to_container_set()?;
    set_no_new_privs()?;
    filters.apply()?;
    Ok(())
}

/// Confine PID 1 (`glassbox-init`): the same as any process in the container.
/// Its memory is a copy of our binary, so it is also made non-dumpable: with
/// no `CAP_SYS_PTRACE` left in the container, nobody there can open
/// `/proc/1/exe`, `/proc/1/mem` or `/proc/1/root`, or ptrace it.
pub fn confine_init() -> Result<(), SecurityError> {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    confine()
}

/// Let every group in the container's network namespace open ICMP echo
/// sockets (`SOCK_DGRAM`, `IPPROTO_ICMP`), so `ping` works without the
/// `NET_RAW` capability we drop, as Docker does. Call from a process in the
/// container's network namespace: net sysctls belong to the opener's.
///
/// The range is read in the writer's user namespace, so it must name groups
/// that namespace maps: 0 up to the last one in `/proc/self/gid_map`.
pub fn allow_ping_sockets() -> std::io::Result<()> {
    let map = std::fs::read_to_string("/proc/self/gid_map")?;
    let range = ping_range(&map);
    std::fs::write(
        "/proc/sys/net/ipv4/ping_group_range",
        format!("{} {}", range.0, range.1),
    )
}

/// The groups to allow, from a gid map's first line (`inside outside count`);
/// the kernel takes at most 2^31 - 1.
fn ping_range(gid_map: &str) -> (u32, u32) {
    let count = gid_map
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|c| c.parse::<u64>().ok())
        .unwrap_or(1);
    (0, count.saturating_sub(1).min(i32::MAX as u64) as u32)
}

fn set_no_new_privs() -> Result<(), SecurityError> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r != 0 {
        return Err(SecurityError::NoNewPrivs(nix::Error::last()));
    }
    Ok(())
}

#[cfg(test)]
mod ping_tests {
    use super::ping_range;

    #[test]
    fn ping_range_covers_the_mapped_groups_only() {
        assert_eq!(ping_range("         0    1000000      65536\n"), (0, 65535));
        assert_eq!(
            ping_range("         0          0 4294967295\n"),
            (0, 2147483647)
        );
        assert_eq!(ping_range(""), (0, 0));
    }
}
