//! An async client of a container supervisor's socket (see
//! `runtime::process::wire`): typed frames over a tokio `UnixStream`.
//!
//! Terminal output is the hot path: it is read into one buffer and each
//! output frame's bytes are split off it without a copy, ready to become a
//! WebSocket message. The buffer holds at most one frame plus one read, so a
//! supervisor cannot make it grow without bound.

use axum::body::Bytes;
use bytes::{Buf, BytesMut};
use runtime::process::wire::{self, Frame, Reply, Request, WireError};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// What a terminal's connection reads at once: output comes in bursts.
const TERMINAL_CHUNK: usize = 64 * 1024;
/// What a connection for control replies only (an exit watch) reads at
/// once: one such connection stays open per container, and a reply is a
/// few bytes (a bigger frame still gets its room, see `decode`).
const CONTROL_CHUNK: usize = 256;
/// Frame header: 4-byte length, 1-byte kind; output frames add an 8-byte seq.
const HEADER: usize = 5;
const SEQ: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("the container's supervisor is not reachable: {0}")]
    Connect(std::io::Error),
    #[error("talking to the supervisor: {0}")]
    Io(#[from] std::io::Error),
    #[error("the supervisor sent a bad frame: {0}")]
    Wire(#[from] WireError),
}

/// What a supervisor sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Terminal output; `seq` is the sequence number of its first byte.
    Output {
        seq: u64,
        data: Bytes,
    },
    Control(Reply),
}

pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    /// Room kept free for the next read.
    chunk: usize,
}

pub struct Writer {
    half: OwnedWriteHalf,
    out: Vec<u8>,
}

/// A connection for a terminal: attach, input, resize, output.
pub async fn connect(socket: &Path) -> Result<(Reader, Writer), SupervisorError> {
    connect_with(socket, TERMINAL_CHUNK).await
}

/// A connection for control replies only, such as an exit watch.
pub async fn connect_control(socket: &Path) -> Result<(Reader, Writer), SupervisorError> {
    connect_with(socket, CONTROL_CHUNK).await
}

async fn connect_with(socket: &Path, chunk: usize) -> Result<(Reader, Writer), SupervisorError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(SupervisorError::Connect)?;
    let (r, w) = stream.into_split();
    Ok((
        Reader {
            half: r,
            buf: BytesMut::with_capacity(chunk),
            chunk,
        },
        Writer {
            half: w,
            out: Vec::new(),
        },
    ))
}

impl Reader {
    /// The next frame; `None` when the supervisor closed the socket.
    /// Cancel-safe: a frame is either returned or stays buffered.
    pub async fn next(&mut self) -> Result<Option<Incoming>, SupervisorError> {
        loop {
            if let Some(frame) = self.decode()? {
                return Ok(Some(frame));
            }
            self.make_room();
            if self.half.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// A frame that is already here, without waiting: from the buffer or
    /// from what one non-blocking read gets. `None` if nothing is ready.
    pub fn try_next(&mut self) -> Result<Option<Incoming>, SupervisorError> {
        if let Some(frame) = self.decode()? {
            return Ok(Some(frame));
        }
        self.make_room();
        match self.half.try_read_buf(&mut self.buf) {
            Ok(0) => Ok(None),
            Ok(_) => self.decode(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn make_room(&mut self) {
        if self.buf.capacity() - self.buf.len() < self.chunk / 4 {
            self.buf.reserve(self.chunk);
        }
    }

    /// One whole frame from the front of the buffer, if there is one.
    fn decode(&mut self) -> Result<Option<Incoming>, SupervisorError> {
        loop {
            if self.buf.len() < HEADER {
                return Ok(None);
            }
            let len =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if len == 0 {
                return Err(WireError::UnknownKind(0).into());
            }
            if len > wire::MAX_FRAME {
                return Err(WireError::TooLarge(len).into());
            }
            let total = 4 + len;
            if self.buf.len() < total {
                // Room for the rest of this frame (bounded by MAX_FRAME).
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            if self.buf[4] == wire::KIND_OUTPUT {
                if len < 1 + SEQ {
                    return Err(WireError::ShortOutput.into());
                }
                let mut frame = self.buf.split_to(total);
                frame.advance(HEADER);
                let seq = frame.get_u64();
                return Ok(Some(Incoming::Output {
                    seq,
                    data: frame.freeze(),
                }));
            }
            let decoded = wire::decode::<Reply>(&self.buf[..total])?;
            self.buf.advance(total);
            match decoded {
                Some((Frame::Control(reply), _)) => return Ok(Some(Incoming::Control(reply))),
                // Supervisors send no input; ignore it as before.
                Some((Frame::Input(_), _)) | Some((Frame::Output { .. }, _)) | None => continue,
            }
        }
    }
}

impl Writer {
    pub async fn request(&mut self, req: Request) -> Result<(), SupervisorError> {
        self.send(&Frame::Control(req)).await
    }

    pub async fn input(&mut self, data: &[u8]) -> Result<(), SupervisorError> {
        self.out.clear();
        self.out
            .extend_from_slice(&((data.len() + 1) as u32).to_be_bytes());
        self.out.push(wire::KIND_INPUT);
        self.out.extend_from_slice(data);
        self.half.write_all(&self.out).await?;
        Ok(())
    }

    async fn send(&mut self, frame: &Frame<Request>) -> Result<(), SupervisorError> {
        self.out.clear();
        wire::encode(frame, &mut self.out);
        self.half.write_all(&self.out).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader, its socket's write half (kept open) and the peer.
    fn pair() -> (Reader, OwnedWriteHalf, tokio::net::UnixStream) {
        pair_reading(TERMINAL_CHUNK)
    }

    fn pair_reading(chunk: usize) -> (Reader, OwnedWriteHalf, tokio::net::UnixStream) {
        let (a, b) = tokio::net::UnixStream::pair().expect("socketpair");
        let (r, w) = a.into_split();
        let reader = Reader {
            half: r,
            buf: BytesMut::with_capacity(chunk),
            chunk,
        };
        (reader, w, b)
    }

    /// A control connection reads little at a time, but a frame far bigger
    /// than that still arrives whole.
    #[tokio::test]
    async fn a_small_reader_takes_a_big_frame_whole() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut bytes = Vec::new();
        wire::encode(&Frame::Control(Reply::Exit { code: 3 }), &mut bytes);
        wire::encode_output(1, &big, &mut bytes);
        wire::encode(&Frame::Control(Reply::Exit { code: 4 }), &mut bytes);
        let (mut reader, _w, mut peer) = pair_reading(CONTROL_CHUNK);
        let writer = tokio::spawn(async move {
            peer.write_all(&bytes).await.unwrap();
        });
        let mut got = Vec::new();
        while let Some(f) = reader.next().await.unwrap() {
            got.push(f);
            if got.len() == 3 {
                break;
            }
        }
        writer.await.unwrap();
        assert_eq!(
            got,
            vec![
                Incoming::Control(Reply::Exit { code: 3 }),
                Incoming::Output {
                    seq: 1,
                    data: Bytes::from(big)
                },
                Incoming::Control(Reply::Exit { code: 4 }),
            ]
        );
        assert!(reader.buf.capacity() < 2 * wire::MAX_FRAME);
    }

    #[tokio::test]
    async fn frames_split_anywhere_decode_whole_and_in_order() {
        let mut bytes = Vec::new();
        wire::encode_output(7, b"hello", &mut bytes);
        wire::encode(&Frame::Control(Reply::Gap { from: 1, to: 2 }), &mut bytes);
        wire::encode_output(12, &[0, 255, 10], &mut bytes);
        let (mut reader, _w, mut peer) = pair();
        for b in &bytes {
            peer.write_all(std::slice::from_ref(b)).await.unwrap();
            peer.flush().await.unwrap();
        }
        drop(peer);
        let mut got = Vec::new();
        while let Some(f) = reader.next().await.unwrap() {
            got.push(f);
        }
        assert_eq!(
            got,
            vec![
                Incoming::Output {
                    seq: 7,
                    data: Bytes::from_static(b"hello")
                },
                Incoming::Control(Reply::Gap { from: 1, to: 2 }),
                Incoming::Output {
                    seq: 12,
                    data: Bytes::from_static(&[0, 255, 10])
                },
            ]
        );
    }

    #[tokio::test]
    async fn hostile_frames_are_errors() {
        let huge = ((wire::MAX_FRAME + 1) as u32).to_be_bytes();
        for bad in [
            vec![0u8, 0, 0, 0, 3],
            vec![huge[0], huge[1], huge[2], huge[3], wire::KIND_OUTPUT],
            vec![0, 0, 0, 3, wire::KIND_OUTPUT, 0, 0],
            vec![0, 0, 0, 3, wire::KIND_CONTROL, b'{', b'x'],
        ] {
            let (mut reader, _w, mut peer) = pair();
            peer.write_all(&bad).await.unwrap();
            drop(peer);
            assert!(reader.next().await.is_err(), "{bad:?}");
        }
    }
}
