//! Pseudo-terminals: made inside the container (on its own devpts instance, so
//! `tty` prints a path that exists there), sized, and put in raw mode on the
//! user's side.

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::termios::{self, SetArg, Termios};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        source: nix::Error,
    },
}

fn sys(step: &'static str) -> impl FnOnce(nix::Error) -> TtyError {
    move |source| TtyError::Sys { step, source }
}

/// A terminal pair: the master stays with the supervisor, the slave becomes
/// the controlling terminal of the container's process.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a new pty through `/dev/ptmx` of the current mount namespace. Call it
/// after `pivot_root`, so the pair belongs to the container's devpts.
pub fn open_pty() -> Result<Pty, TtyError> {
    let master: PtyMaster = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("opening /dev/ptmx"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = ptsname_r(&master).map_err(sys("ptsname"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("opening the pty slave"))?;
    // SAFETY: PtyMaster owns a valid fd; into_raw_fd hands that ownership over.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    Ok(Pty { master, slave })
}

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);

/// Set the window size; the kernel sends SIGWINCH to the terminal's foreground group.
pub fn set_size(fd: BorrowedFd<'_>, cols: u16, rows: u16) -> Result<(), TtyError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: the fd is valid for the borrow and ws is a valid winsize.
    unsafe { tiocswinsz(fd.as_raw_fd(), &ws) }
        .map(drop)
        .map_err(sys("TIOCSWINSZ"))
}

/// The window size of a terminal, as (cols, rows).
pub fn get_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into ws.
    match unsafe { tiocgwinsz(fd, &mut ws) } {
        Ok(_) if ws.ws_col > 0 && ws.ws_row > 0 => Some((ws.ws_col, ws.ws_row)),
        _ => None,
    }
}

/// Puts the user's terminal in raw mode and restores it on drop.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    pub fn enable(fd: BorrowedFd<'_>) -> Result<RawMode, TtyError> {
        let saved = termios::tcgetattr(fd).map_err(sys("tcgetattr"))?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).map_err(sys("tcsetattr"))?;
        Ok(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd was valid at enable() and belongs to the caller's
        // terminal, which outlives this guard.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Make `fd` the controlling terminal of the calling process, which must be a
/// session leader (after `setsid`).
pub fn set_controlling(fd: impl AsFd) -> Result<(), TtyError> {
    // SAFETY: TIOCSCTTY takes an int argument; 0 means "do not steal".
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSCTTY, 0) };
    if rc == -1 {
        return Err(TtyError::Sys {
            step: "TIOCSCTTY",
            source: nix::Error::last(),
        });
    }
    Ok(())
}
