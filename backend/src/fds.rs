//! The server's own file descriptors: how many it may open, and room for
//! them in its fd table from the start.

use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};

/// Raise the open-file soft limit to the hard one. The server holds about
/// 2 fds per idle container and 10–12 more per container whose stats someone
/// watches (the sampler keeps its cgroup files open): the usual soft limit of
/// 1024 would run out at about 80 watched containers. Container processes
/// get their own limits (`runtime::security`), not this one. Returns the
/// limit now in force.
pub fn raise_open_file_limit() -> RawFd {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    let mut limit = soft;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::debug!(from = soft, to = hard, "raised the open-file limit");
                limit = hard;
            }
            Err(e) => tracing::warn!(error = %e, soft, "could not raise the open-file limit"),
        }
    }
    RawFd::try_from(limit).unwrap_or(RawFd::MAX)
}

/// Fds kept per container at most: its exit watch, a terminal or two
/// (socket and supervisor connection each), and a watched container's
/// cgroup files.
const PER_CONTAINER: u32 = 16;
/// The server's own: listener, database, logs, events sockets.
const BASE: u32 = 256;

/// The fd table size for a server of at most `max_containers` containers.
pub fn wanted(max_containers: u32) -> RawFd {
    let n = max_containers
        .saturating_mul(PER_CONTAINER)
        .saturating_add(BASE);
    RawFd::try_from(n).unwrap_or(RawFd::MAX)
}

/// Make the fd table hold `n` fds now (`n` within the open-file limit).
///
/// The kernel doubles a process's fd table when an fd past its end is
/// opened, and in a process with threads each doubling waits for an RCU
/// grace period, while every other thread that opens an fd waits behind it:
/// about 10 ms on a 2-core VM. A burst of 50 creates that reached a new
/// high of open fds stalled the whole server that long, once per doubling.
/// Growing the table once at start pays it before anyone waits.
pub fn grow_fd_table(n: RawFd) {
    use nix::fcntl::{fcntl, FcntlArg};
    let null = match std::fs::File::open("/dev/null") {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "could not grow the fd table");
            return;
        }
    };
    // The lowest free fd from `highest` up: the table grows to hold it.
    match fcntl(null.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(n - 1)) {
        // SAFETY: the fd was just made by F_DUPFD and is ours alone.
        Ok(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(e) => tracing::warn!(error = %e, fds = n, "could not grow the fd table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's size, from `FDSize` in /proc/self/status.
    fn fd_table_size() -> RawFd {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize")
    }

    #[test]
    fn the_fd_table_holds_what_was_asked_for() {
        let limit = raise_open_file_limit();
        let want = wanted(200);
        assert_eq!(want, 200 * 16 + 256);
        let want = want.min(limit);
        assert!(fd_table_size() < want, "the table is small to begin with");
        grow_fd_table(want);
        assert!(fd_table_size() >= want, "{} < {want}", fd_table_size());
        assert_eq!(wanted(u32::MAX), RawFd::MAX);
    }
}
