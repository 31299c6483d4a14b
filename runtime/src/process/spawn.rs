//! Starting a container's supervisor from whatever process wants a container
//! (the `gbx` CLI, or the multi-threaded backend). We never fork here to run
//! our own code: we spawn a fresh copy of our own binary (`/proc/self/exe`),
//! which is single-threaded when it clones the container.

use super::channel::{self, Channel};
use super::messages::SpawnReport;
use super::ProcessError;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// argv[1] that turns any binary linking this crate into a supervisor.
pub const SUPERVISOR_ARG: &str = "__glassbox-supervisor";
/// The fd on which a supervisor finds its channel to the spawner.
pub const SPAWN_FD: i32 = 3;

/// Standard streams of a container without a terminal.
pub enum Stdio3 {
    /// The container's stdin/stdout/stderr are the caller's own (a foreground `gbx run`).
    Inherit { stdin: bool },
    /// Output is captured by the supervisor for attach and logs.
    Capture,
}

/// The spawner's end: the report of the start, then the exit code.
pub struct SupervisorHandle {
    chan: Channel<(), SpawnReport>,
}

impl SupervisorHandle {
    /// Block until the container has exited (and, with auto-remove, is gone).
    pub fn wait_exit(&self) -> Result<i32, ProcessError> {
        loop {
            match self.chan.recv() {
                Ok((SpawnReport::Exited { code }, _)) => return Ok(code),
                Ok(_) => continue,
                Err(e) => return Err(ProcessError::Channel(e)),
            }
        }
    }
}

/// Spawn the supervisor for the container in `dir` and wait until the
/// container's command runs (or failed to).
pub fn spawn_supervisor(
    dir: &Path,
    stdio: Stdio3,
) -> Result<(SpawnReport, SupervisorHandle), ProcessError> {
    let (ours, theirs) = channel::pair::<(), SpawnReport>()?;
    let theirs: OwnedFd = theirs.into_fd();
    let their_fd = theirs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("glassbox-supervisor").arg(SUPERVISOR_ARG).arg(dir);
    match stdio {
        Stdio3::Inherit { stdin } => {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            cmd.stdin(if stdin { Stdio::inherit() } else { Stdio::null() });
        }
        Stdio3::Capture => {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    // SAFETY: only async-signal-safe calls (dup2, setsid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(their_fd, SPAWN_FD) < 0 || libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(ProcessError::SpawnSupervisor)?;
    drop(theirs);
    // The supervisor forks once and its first process exits at once, so this
    // wait is short and leaves no zombie behind.
    let _ = child.wait();
    let (report, _) = ours.recv()?;
    Ok((report, SupervisorHandle { chan: ours }))
}
