//! The supervisor's socket protocol: how clients (the `gbx` CLI, the backend)
//! attach to a container's terminal, start `exec` sessions, resize, and learn
//! exit codes.
//!
//! A stream socket carries frames: a 4-byte big-endian length, then a 1-byte
//! kind, then the payload. Control frames hold JSON; data frames hold raw
//! bytes, so terminal output is binary-safe. Output frames carry the sequence
//! number (byte offset) of their first byte so that a client which reconnects
//! can ask for exactly what it missed.

use serde::{Deserialize, Serialize};

/// Frames larger than this are a protocol error.
pub const MAX_FRAME: usize = 1 << 20;
const HEADER: usize = 5;

pub const KIND_CONTROL: u8 = 1;
pub const KIND_INPUT: u8 = 2;
pub const KIND_OUTPUT: u8 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("malformed control message: {0}")]
    BadControl(String),
    #[error("output frame shorter than its sequence number")]
    ShortOutput,
}

/// Which process's terminal a connection talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The container's main process (PID 1's child, or PID 1 with `--no-init`).
    Main,
    /// An `exec` session, by its id.
    Exec(u32),
}

/// Client → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Stream output of `target` from sequence number `since` (None: only new output).
    Attach {
        target: Target,
        since: Option<u64>,
    },
    /// Start a process in the container with a terminal of its own and attach to it.
    Exec {
        cmd: Vec<String>,
        env: Vec<String>,
        tty: bool,
        cols: u16,
        rows: u16,
    },
    Resize {
        cols: u16,
        rows: u16,
    },
    /// Send a signal to the attached target (for `Main`: to PID 1).
    Signal {
        signal: i32,
    },
    /// Close the attached process's stdin (non-tty sessions).
    CloseStdin,
    /// Only wait for the container's exit; no output.
    Watch,
}

/// Supervisor → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    Attached {
        target: Target,
        next_seq: u64,
    },
    ExecStarted {
        exec_id: u32,
        host_pid: u32,
    },
    /// Output in [from, to) was dropped from the replay ring before the client asked for it.
    Gap {
        from: u64,
        to: u64,
    },
    Exit {
        code: i32,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<C> {
    Control(C),
    Input(Vec<u8>),
    Output { seq: u64, data: Vec<u8> },
}

/// Append one encoded frame to `out`.
pub fn encode<C: Serialize>(frame: &Frame<C>, out: &mut Vec<u8>) {
    match frame {
        Frame::Control(c) => {
            // Serializing our own enums cannot fail.
            let json = serde_json::to_vec(c).unwrap_or_default();
            header(out, KIND_CONTROL, json.len());
            out.extend_from_slice(&json);
        }
        Frame::Input(data) => {
            header(out, KIND_INPUT, data.len());
            out.extend_from_slice(data);
        }
        Frame::Output { seq, data } => encode_output(*seq, data, out),
    }
}

/// Output frames are the hot path: encode without an intermediate Vec.
pub fn encode_output(seq: u64, data: &[u8], out: &mut Vec<u8>) {
    header(out, KIND_OUTPUT, 8 + data.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(data);
}

fn header(out: &mut Vec<u8>, kind: u8, payload: usize) {
    out.extend_from_slice(&((payload + 1) as u32).to_be_bytes());
    out.push(kind);
}

/// Decode one frame from the front of `buf`. Returns the frame and how many
/// bytes it used, `Ok(None)` if `buf` does not yet hold a whole frame.
pub fn decode<C: for<'de> Deserialize<'de>>(
    buf: &[u8],
) -> Result<Option<(Frame<C>, usize)>, WireError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(WireError::UnknownKind(0));
    }
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let kind = buf[4];
    let payload = &buf[HEADER..4 + len];
    let frame = match kind {
        KIND_CONTROL => Frame::Control(
            serde_json::from_slice(payload).map_err(|e| WireError::BadControl(e.to_string()))?,
        ),
        KIND_INPUT => Frame::Input(payload.to_vec()),
        KIND_OUTPUT => {
            if payload.len() < 8 {
                return Err(WireError::ShortOutput);
            }
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&payload[..8]);
            Frame::Output {
                seq: u64::from_be_bytes(seq),
                data: payload[8..].to_vec(),
            }
        }
        other => return Err(WireError::UnknownKind(other)),
    };
    Ok(Some((frame, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let frames: Vec<Frame<Request>> = vec![
            Frame::Control(Request::Resize { cols: 80, rows: 24 }),
            Frame::Input(vec![0, 255, 10, 13]),
            Frame::Output {
                seq: 1 << 40,
                data: b"\x1b[31mred".to_vec(),
            },
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            encode(f, &mut bytes);
        }
        // Feed the stream one byte at a time: partial frames must wait, not fail.
        let mut decoded = Vec::new();
        let mut pending = Vec::new();
        for b in bytes {
            pending.push(b);
            while let Some((f, used)) = decode::<Request>(&pending).unwrap() {
                decoded.push(f);
                pending.drain(..used);
            }
        }
        assert_eq!(decoded, frames);
        assert!(pending.is_empty());
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        let huge = ((MAX_FRAME + 2) as u32).to_be_bytes();
        assert_eq!(
            decode::<Request>(&[huge[0], huge[1], huge[2], huge[3], 1]),
            Err(WireError::TooLarge(MAX_FRAME + 2))
        );
        assert_eq!(
            decode::<Request>(&[0, 0, 0, 1, 9]),
            Err(WireError::UnknownKind(9))
        );
        assert_eq!(
            decode::<Request>(&[0, 0, 0, 3, 3, 0, 0]),
            Err(WireError::ShortOutput)
        );
        assert!(matches!(
            decode::<Request>(&[0, 0, 0, 3, 1, b'{', b'x']),
            Err(WireError::BadControl(_))
        ));
        assert_eq!(
            decode::<Request>(&[0, 0, 0, 0, 0]),
            Err(WireError::UnknownKind(0))
        );
    }
}
