//! Processes: how a container's processes come to be and who watches them.
//!
//! ```text
//! caller (gbx / backend) ──spawn /proc/self/exe──▶ supervisor (single-threaded, detached)
//!                                                   │ clone(NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET|NEWCGROUP)
//!                                                   ▼
//!                                                 PID 1: init (reaps, forwards signals)
//!                                                   │ fork + execve (inside the container's root)
//!                                                   ▼
//!                                                 the user's command
//! ```
//! The caller and the supervisor speak typed messages over a socketpair
//! ([`channel`], [`messages`]) while the container starts; afterwards clients
//! attach over the supervisor's unix socket ([`wire`]).

pub mod channel;
pub mod client;
pub mod exec;
pub mod init;
pub mod messages;
pub mod pooled;
pub mod ring;
pub mod server;
pub mod spawn;
pub mod supervisor;
pub mod wire;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error("starting the supervisor: {0}")]
    SpawnSupervisor(std::io::Error),
    #[error("claiming a warm container: {0}")]
    Claim(nix::Error),
}

/// Call first thing in `main` of every binary that uses this crate: if this
/// process was started as a container supervisor, it becomes one and never
/// returns. Otherwise it returns at once.
pub fn supervisor_entrypoint() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(spawn::SUPERVISOR_ARG)) {
        supervisor::main(args.collect())
    }
}

/// /proc/PID/stat (`pid` may be `self`) in one read: the kernel makes the whole text again for
/// every read(2), and `read_to_string`'s small first reads cost five of them.
pub(crate) fn read_proc_stat(pid: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = vec![0u8; 1024];
    let mut len = file.read(&mut buf).ok()?;
    // The text is a few hundred bytes; a longer one is read to its end.
    if len == buf.len() {
        buf.truncate(len);
        file.read_to_end(&mut buf).ok()?;
        len = buf.len();
    }
    buf.truncate(len);
    Some(buf)
}

/// The fields of /proc/PID/stat after the process's name (from field 3,
/// the state, on). The name may be any bytes; what follows it is ASCII.
pub(crate) fn proc_stat_after_name(pid: &str) -> Option<String> {
    let stat = read_proc_stat(pid)?;
    let rest = stat.get(stat.iter().rposition(|b| *b == b')')? + 2..)?;
    String::from_utf8(rest.to_vec()).ok()
}

/// Close every fd from `first` up (close_range(2)).
pub(crate) fn close_fds_from(first: std::os::fd::RawFd) {
    // SAFETY: close_range on integers closes only fds; callers own every
    // fd in the range (or nothing in this process uses them any more).
    unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
}

/// `dup2(src, dst)`, leaving `dst` without CLOEXEC (so it survives exec).
pub(crate) fn dup_onto(src: std::os::fd::RawFd, dst: std::os::fd::RawFd) -> bool {
    // SAFETY: dup2 on integers; a bad fd is an error, not UB.
    unsafe { libc::dup2(src, dst) >= 0 }
}

#[cfg(test)]
mod tests {
    use super::supervisor::process_start_time;
    use std::process::Command;

    #[test]
    fn start_time_is_read_whatever_the_process_calls_itself() {
        // A process may name itself anything, parentheses and bytes that
        // are not UTF-8 included: it must not pass for gone. Only a process
        // itself may rename itself, so this one does, for a moment.
        let pid = std::process::id() as i32;
        let before = process_start_time(pid).expect("a running process has a start time");
        let name = std::fs::read("/proc/self/comm").expect("comm");
        std::fs::write("/proc/self/comm", b"\xff) (x \xfe").expect("rename");
        let stat = super::read_proc_stat("self");
        let renamed = process_start_time(pid);
        std::fs::write("/proc/self/comm", name.trim_ascii_end()).expect("rename back");
        let stat = stat.expect("stat");
        assert!(stat.windows(2).any(|w| w == b"\xff)"), "renamed: {stat:?}");
        assert_eq!(renamed, Some(before));

        let mut child = Command::new("sleep").arg("5").spawn().expect("sleep");
        let child_pid = child.id() as i32;
        assert!(process_start_time(child_pid).is_some_and(|t| t >= before));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            process_start_time(child_pid),
            None,
            "a reaped process has none"
        );
    }
}
