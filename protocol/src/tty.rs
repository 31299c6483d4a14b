//! Control messages on a terminal WebSocket. Raw terminal bytes travel in
//! binary frames; these JSON messages travel in text frames.

use serde::{Deserialize, Serialize};

/// Terminal sizes outside these bounds are clamped, never rejected.
pub const MAX_COLS: u16 = 1000;
pub const MAX_ROWS: u16 = 500;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TtyClientMessage {
    Resize { cols: u32, rows: u32 },
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TtyServerMessage {
    /// First message on every terminal socket: which terminal this is (`exec_id` is
    /// `None` for the container's main terminal) and the sequence number just past
    /// the output the supervisor held when the client attached.
    Attached { exec_id: Option<u32>, next_seq: u64 },
    /// The next binary frame starts at output byte `seq`. Sent before the first
    /// binary frame and whenever the stream does not simply continue. A client
    /// that reconnects passes `?since=` its position (last `seq` + bytes since).
    Seq { seq: u64 },
    /// The process behind this terminal exited.
    Exit { code: i32 },
    /// Output was lost because the replay buffer overflowed.
    Gap { from_seq: u64, to_seq: u64 },
    /// Something went wrong on the server side; the socket closes after it.
    Error { message: String },
}

/// Clamp a requested size into `1..=MAX_COLS` × `1..=MAX_ROWS`.
pub fn clamp_size(cols: u32, rows: u32) -> (u16, u16) {
    let cols = cols.clamp(1, MAX_COLS as u32) as u16;
    let rows = rows.clamp(1, MAX_ROWS as u32) as u16;
    (cols, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_are_clamped() {
        assert_eq!(clamp_size(0, 0), (1, 1));
        assert_eq!(clamp_size(u32::MAX, 99_999), (MAX_COLS, MAX_ROWS));
        assert_eq!(clamp_size(80, 24), (80, 24));
    }

    #[test]
    fn resize_decodes_and_unknown_types_fail() {
        let m: TtyClientMessage =
            serde_json::from_str(r#"{"type":"resize","cols":80,"rows":24}"#).unwrap();
        assert_eq!(m, TtyClientMessage::Resize { cols: 80, rows: 24 });
        assert!(serde_json::from_str::<TtyClientMessage>(r#"{"type":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<TtyClientMessage>(
            r#"{"type":"resize","cols":-1,"rows":2}"#
        )
        .is_err());
    }
}
