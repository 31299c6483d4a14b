//! Typed messages over a `SOCK_SEQPACKET` socketpair, with file descriptors
//! passed alongside (`SCM_RIGHTS`). This is how the caller, the supervisor and
//! the container's init talk while a container is being made: one datagram
//! per message, serde_json inside, both ends CLOEXEC.

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{de::DeserializeOwned, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Larger messages are refused: everything we send is small.
const MAX_MESSAGE: usize = 64 * 1024;
const MAX_FDS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("creating socketpair: {0}")]
    Create(nix::Error),
    #[error("sending message: {0}")]
    Send(nix::Error),
    #[error("receiving message: {0}")]
    Receive(nix::Error),
    #[error("peer closed the channel")]
    Closed,
    #[error("no message within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("malformed message: {0}")]
    Decode(serde_json::Error),
    #[error("encoding message: {0}")]
    Encode(serde_json::Error),
}

/// One end of a channel that sends `S` and receives `R`.
pub struct Channel<S, R> {
    fd: OwnedFd,
    _types: PhantomData<fn(S) -> R>,
}

/// Both ends of a channel: the first sends `A` and receives `B`.
pub type Pair<A, B> = (Channel<A, B>, Channel<B, A>);

/// A connected pair: `(a, b)`, where `a` sends `A` and receives `B`.
pub fn pair<A, B>() -> Result<Pair<A, B>, ChannelError>
where
    A: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
{
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(ChannelError::Create)?;
    Ok((Channel::from_fd(a), Channel::from_fd(b)))
}

/// A listening `SOCK_SEQPACKET` unix socket at `path`, whose connections
/// are channels (a warm container's claim socket).
pub fn listen(path: &std::path::Path) -> Result<OwnedFd, nix::Error> {
    use nix::sys::socket::{bind, listen, socket, Backlog, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let _ = std::fs::remove_file(path);
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(4)?)?;
    Ok(fd)
}

/// Accept one connection on a socket from [`listen`].
pub fn accept<S, R>(listener: &OwnedFd) -> Result<Channel<S, R>, nix::Error>
where
    S: Serialize,
    R: DeserializeOwned,
{
    let fd = nix::sys::socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 returned a new fd that we own.
    Ok(Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Connect to a socket from [`listen`].
pub fn connect<S, R>(path: &std::path::Path) -> Result<Channel<S, R>, nix::Error>
where
    S: Serialize,
    R: DeserializeOwned,
{
    use nix::sys::socket::{connect, socket, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(Channel::from_fd(fd))
}

impl<S: Serialize, R: DeserializeOwned> Channel<S, R> {
    pub fn from_fd(fd: OwnedFd) -> Self {
        Channel {
            fd,
            _types: PhantomData,
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub fn send(&self, msg: &S) -> Result<(), ChannelError> {
        self.send_with_fds(msg, &[])
    }

    pub fn send_with_fds(&self, msg: &S, fds: &[RawFd]) -> Result<(), ChannelError> {
        let bytes = serde_json::to_vec(msg).map_err(ChannelError::Encode)?;
        let iov = [IoSlice::new(&bytes)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(ChannelError::Send(e)),
            }
        }
    }

    /// [`Channel::recv`], giving up after `wait`: for a handshake whose peer
    /// may be stuck rather than gone (a process frozen or killed half-way
    /// through a drain), so that the waiter cannot hang for ever.
    pub fn recv_within(
        &self,
        wait: std::time::Duration,
    ) -> Result<(R, Vec<OwnedFd>), ChannelError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(ChannelError::TimedOut(wait));
            }
            // Rounded up: poll's clock is coarser than Instant's, and a
            // wait cut short would only go round again.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                // Readable, or hung up / failed: recv tells which.
                Ok(n) if n > 0 => return self.recv(),
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(ChannelError::Receive(e)),
            }
        }
    }

    /// Receive one message; `Err(Closed)` when the peer has gone (or exec'd,
    /// which closes its CLOEXEC end).
    pub fn recv(&self) -> Result<(R, Vec<OwnedFd>), ChannelError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (len, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for c in msg.cmsgs().map_err(ChannelError::Receive)? {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            // SAFETY: the kernel just installed these fds for us.
                            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                        }
                    }
                    break (msg.bytes, fds);
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(ChannelError::Receive(e)),
            }
        };
        if len == 0 {
            return Err(ChannelError::Closed);
        }
        let msg = serde_json::from_slice(&buf[..len]).map_err(ChannelError::Decode)?;
        Ok((msg, fds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    enum Ping {
        Hello(u32),
    }
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    enum Pong {
        Back(String),
    }

    #[test]
    fn messages_and_fds_cross_and_eof_is_closed() {
        let (a, b) = pair::<Ping, Pong>().unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        a.send_with_fds(&Ping::Hello(7), &[file.as_raw_fd()])
            .unwrap();
        let (msg, fds) = b.recv().unwrap();
        assert_eq!(msg, Ping::Hello(7));
        assert_eq!(fds.len(), 1);
        let flags = nix::fcntl::fcntl(&fds[0], nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(
            flags & libc::FD_CLOEXEC != 0,
            "received fds must be CLOEXEC"
        );
        b.send(&Pong::Back("x".into())).unwrap();
        assert_eq!(a.recv().unwrap().0, Pong::Back("x".into()));
        drop(b);
        assert!(matches!(a.recv(), Err(ChannelError::Closed)));
    }

    #[test]
    fn recv_within_times_out_on_a_silent_peer_and_sees_a_message_or_eof() {
        let (a, b) = pair::<Ping, Pong>().unwrap();
        let wait = std::time::Duration::from_millis(50);
        let start = std::time::Instant::now();
        assert!(matches!(
            b.recv_within(wait),
            Err(ChannelError::TimedOut(_))
        ));
        assert!(
            start.elapsed() >= wait,
            "gave up early: {:?}",
            start.elapsed()
        );
        a.send(&Ping::Hello(1)).unwrap();
        assert_eq!(b.recv_within(wait).unwrap().0, Ping::Hello(1));
        drop(a);
        assert!(matches!(b.recv_within(wait), Err(ChannelError::Closed)));
    }
}
