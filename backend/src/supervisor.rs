//! An async client of a container supervisor's socket (see
//! `runtime::process::wire`): typed frames over a tokio `UnixStream`.
//! The read buffer holds at most one frame plus one read, so a supervisor
//! cannot make it grow without bound.

use runtime::process::wire::{self, Frame, Reply, Request, WireError};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("the container's supervisor is not reachable: {0}")]
    Connect(std::io::Error),
    #[error("talking to the supervisor: {0}")]
    Io(#[from] std::io::Error),
    #[error("the supervisor sent a bad frame: {0}")]
    Wire(#[from] WireError),
}

pub struct Reader {
    half: OwnedReadHalf,
    buf: Vec<u8>,
    /// Start of the undecoded bytes in `buf` (compacted before each read).
    pos: usize,
}

pub struct Writer {
    half: OwnedWriteHalf,
    out: Vec<u8>,
}

pub async fn connect(socket: &Path) -> Result<(Reader, Writer), SupervisorError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(SupervisorError::Connect)?;
    let (r, w) = stream.into_split();
    Ok((
        Reader {
            half: r,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
        },
        Writer {
            half: w,
            out: Vec::new(),
        },
    ))
}

impl Reader {
    /// The next frame; `None` when the supervisor closed the socket.
    pub async fn next(&mut self) -> Result<Option<Frame<Reply>>, SupervisorError> {
        loop {
            if let Some((frame, used)) = wire::decode::<Reply>(&self.buf[self.pos..])? {
                self.pos += used;
                return Ok(Some(frame));
            }
            // Move the partial frame to the front once, not after every frame.
            self.buf.drain(..self.pos);
            self.pos = 0;
            let start = self.buf.len();
            self.buf.resize(start + READ_CHUNK, 0);
            let n = self.half.read(&mut self.buf[start..]).await;
            self.buf.truncate(start + n.as_ref().copied().unwrap_or(0));
            match n? {
                0 => return Ok(None),
                _ => continue,
            }
        }
    }
}

impl Writer {
    pub async fn request(&mut self, req: Request) -> Result<(), SupervisorError> {
        self.send(&Frame::Control(req)).await
    }

    pub async fn input(&mut self, data: Vec<u8>) -> Result<(), SupervisorError> {
        self.send(&Frame::Input(data)).await
    }

    async fn send(&mut self, frame: &Frame<Request>) -> Result<(), SupervisorError> {
        self.out.clear();
        wire::encode(frame, &mut self.out);
        self.half.write_all(&self.out).await?;
        Ok(())
    }
}
