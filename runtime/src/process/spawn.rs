//! Starting a container's supervisor from whatever process wants a container
//! (the `gbx` CLI, or the multi-threaded backend). We never fork here to run
//! our own code: we spawn a fresh copy of our own binary (`/proc/self/exe`),
//! which is single-threaded when it clones the container.

use super::channel::{self, Channel};
use super::messages::{Claim, Refill, SpawnReport};
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
    chan: Channel<Claim, SpawnReport>,
}

impl SupervisorHandle {
    /// Like [`wait_exit`](Self::wait_exit), but hands SIGINT, SIGTERM, SIGHUP
    /// and SIGQUIT received meanwhile to `on_signal` (a foreground `gbx run`
    /// forwards them to the container, as `docker run` does).
    pub fn wait_exit_forwarding(
        &self,
        mut on_signal: impl FnMut(nix::sys::signal::Signal),
    ) -> Result<i32, ProcessError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use nix::sys::signal::{SigSet, Signal};
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        use std::os::fd::{AsFd, BorrowedFd};
        let mut mask = SigSet::empty();
        for sig in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            mask.add(sig);
        }
        let _ = mask.thread_block();
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| ProcessError::Channel(channel::ChannelError::Receive(e)))?;
        loop {
            // SAFETY: the channel's fd lives as long as self.
            let chan_fd = unsafe { BorrowedFd::borrow_raw(self.chan.raw_fd()) };
            let mut fds = [
                PollFd::new(chan_fd, PollFlags::POLLIN),
                PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, PollTimeout::NONE);
            let (chan_ev, sig_ev) = (fds[0].revents(), fds[1].revents());
            if sig_ev.is_some_and(|e| e.contains(PollFlags::POLLIN)) {
                while let Ok(Some(info)) = sigfd.read_signal() {
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                        on_signal(sig);
                    }
                }
            }
            if chan_ev.is_some_and(|e| !e.is_empty()) {
                return self.wait_exit();
            }
        }
    }

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
    refill: Option<Refill>,
) -> Result<(SpawnReport, SupervisorHandle), ProcessError> {
    let (ours, theirs) = channel::pair::<Claim, SpawnReport>()?;
    let theirs: OwnedFd = theirs.into_fd();
    let their_fd = theirs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("glassbox-supervisor")
        .arg(SUPERVISOR_ARG)
        .arg("cold")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // A crash switch is for the process under test, not its supervisors,
    // unless it names a supervisor's step.
    crate::failpoint::pass_to_supervisor(&mut cmd);
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
    claim(ours, dir, stdio, refill)
}

/// Claim a warm container (its directory already renamed to `dir`) through
/// its claim socket.
pub fn claim_warm(
    dir: &Path,
    stdio: Stdio3,
    refill: Option<Refill>,
) -> Result<(SpawnReport, SupervisorHandle), ProcessError> {
    let chan =
        super::supervisor::connect_claim(&dir.join("claim.sock")).map_err(ProcessError::Claim)?;
    claim(chan, dir, stdio, refill)
}

fn claim(
    chan: Channel<Claim, SpawnReport>,
    dir: &Path,
    stdio: Stdio3,
    refill: Option<Refill>,
) -> Result<(SpawnReport, SupervisorHandle), ProcessError> {
    let msg = Claim {
        dir: dir.to_path_buf(),
        inherit_stdio: matches!(stdio, Stdio3::Inherit { .. }),
        refill,
    };
    match stdio {
        Stdio3::Inherit { stdin } => {
            let null = std::fs::File::open("/dev/null").map_err(ProcessError::SpawnSupervisor)?;
            let fd0 = if stdin { 0 } else { null.as_raw_fd() };
            chan.send_with_fds(&msg, &[fd0, 1, 2])?;
        }
        Stdio3::Capture => chan.send(&msg)?,
    }
    let (report, _) = chan.recv()?;
    Ok((report, SupervisorHandle { chan }))
}
