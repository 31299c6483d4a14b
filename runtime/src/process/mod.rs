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
