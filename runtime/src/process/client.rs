//! A blocking client of the supervisor's socket, for the CLI: attach the
//! user's terminal to a container's terminal (or an exec session) and relay
//! bytes both ways until the process exits.

use super::wire::{self, Frame, Reply, Request, Target};
use crate::tty;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to the container's supervisor at {path}: {source}")]
    Connect {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the supervisor: {0}")]
    Io(#[from] std::io::Error),
    #[error("the supervisor sent a bad frame: {0}")]
    Wire(#[from] wire::WireError),
    #[error("{0}")]
    Remote(String),
    #[error("the supervisor closed the connection before the process exited")]
    Closed,
}

pub struct Client {
    stream: UnixStream,
    rbuf: Vec<u8>,
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
        Ok(Client {
            stream,
            rbuf: Vec::new(),
        })
    }

    /// Give up on a blocking read after `timeout` (None: wait forever).
    pub fn set_read_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), ClientError> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }

    pub fn send(&mut self, req: Request) -> Result<(), ClientError> {
        let mut out = Vec::new();
        wire::encode(&Frame::Control(req), &mut out);
        self.stream.write_all(&out)?;
        Ok(())
    }

    pub fn send_input(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let mut out = Vec::new();
        wire::encode::<Request>(&Frame::Input(data.to_vec()), &mut out);
        self.stream.write_all(&out)?;
        Ok(())
    }

    /// Read the next frame (blocking).
    pub fn next_frame(&mut self) -> Result<Frame<Reply>, ClientError> {
        loop {
            if let Some(f) = self.try_frame()? {
                return Ok(f);
            }
            self.fill()?;
        }
    }

    fn try_frame(&mut self) -> Result<Option<Frame<Reply>>, ClientError> {
        match wire::decode::<Reply>(&self.rbuf)? {
            Some((f, used)) => {
                self.rbuf.drain(..used);
                Ok(Some(f))
            }
            None => Ok(None),
        }
    }

    fn fill(&mut self) -> Result<(), ClientError> {
        let mut buf = [0u8; 64 * 1024];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.rbuf.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// Relay the user's stdin/stdout to the attached process until it exits;
    /// returns its exit code. With `raw_tty`, window size changes follow.
    pub fn relay(&mut self, forward_stdin: bool, raw_tty: bool) -> Result<i32, ClientError> {
        let stdin = std::io::stdin();
        let mut stdout = std::io::stdout();
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGWINCH);
        let _ = mask.thread_block();
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(std::io::Error::from)?;
        if raw_tty {
            self.send_size()?;
        }
        let mut stdin_open = forward_stdin;
        loop {
            while let Some(frame) = self.try_frame()? {
                match frame {
                    Frame::Output { data, .. } => {
                        stdout.write_all(&data)?;
                        stdout.flush()?;
                    }
                    Frame::Control(Reply::Exit { code }) => return Ok(code),
                    Frame::Control(Reply::Error { message }) => {
                        return Err(ClientError::Remote(message))
                    }
                    Frame::Control(_) | Frame::Input(_) => {}
                }
            }
            // SAFETY: fd 0 stays open for the life of the process.
            let stdin_fd = unsafe { BorrowedFd::borrow_raw(stdin.as_raw_fd()) };
            let mut fds = vec![
                PollFd::new(self.stream.as_fd(), PollFlags::POLLIN),
                PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            ];
            if stdin_open {
                fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(ClientError::Io(e.into())),
            }
            let ev: Vec<PollFlags> = fds
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            if ev[0].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                self.fill()?;
            }
            if ev[1].contains(PollFlags::POLLIN) {
                while sigfd.read_signal().ok().flatten().is_some() {}
                if raw_tty {
                    self.send_size()?;
                }
            }
            if stdin_open && ev[2].intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
                let mut buf = [0u8; 16 * 1024];
                match nix::unistd::read(stdin_fd, &mut buf) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        self.send(Request::CloseStdin)?;
                    }
                    Ok(n) => self.send_input(&buf[..n])?,
                }
            }
        }
    }

    fn send_size(&mut self) -> Result<(), ClientError> {
        if let Some((cols, rows)) = tty::get_size(0) {
            self.send(Request::Resize { cols, rows })?;
        }
        Ok(())
    }
}

/// Attach to the main terminal of a container, replaying from the start.
pub fn attach_main(socket: &Path, raw_tty: bool) -> Result<i32, ClientError> {
    let mut c = Client::connect(socket)?;
    c.send(Request::Attach {
        target: Target::Main,
        since: Some(0),
    })?;
    c.relay(true, raw_tty)
}

/// Run a command in a container and relay its terminal.
pub fn exec(
    socket: &Path,
    cmd: Vec<String>,
    env: Vec<String>,
    tty_mode: bool,
    interactive: bool,
) -> Result<i32, ClientError> {
    let mut c = Client::connect(socket)?;
    let (cols, rows) = tty::get_size(0).unwrap_or((80, 24));
    c.send(Request::Exec {
        cmd,
        env,
        tty: tty_mode,
        cols,
        rows,
    })?;
    c.relay(interactive && tty_mode, tty_mode)
}
