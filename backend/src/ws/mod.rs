//! WebSockets: the terminal ([`tty`]) and the events stream ([`events`]).
//!
//! Close codes used (RFC 6455):
//! - 1000 the process exited (after an `exit` message);
//! - 1001 the server is shutting down and removing the containers;
//! - 1003 a message of a type this socket does not take;
//! - 1007 a text frame that is not valid JSON or has bad fields;
//! - 1008 the session ended (expired or deleted);
//! - 1009 a message over the size limit;
//! - 1011 the container's supervisor failed or went away;
//! - 1012 the server is restarting: the container keeps running, reconnect
//!   (with `since`, nothing is lost).

pub mod events;
pub mod tty;

use crate::error::ApiError;
use axum::extract::ws::{
    rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocketUpgrade,
};
use futures_util::{Sink, SinkExt};
use std::time::Duration;

pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const UNSUPPORTED: u16 = 1003;
pub const INVALID_PAYLOAD: u16 = 1007;
pub const POLICY: u16 = 1008;
pub const TOO_BIG: u16 = 1009;
pub const INTERNAL: u16 = 1011;
pub const SERVICE_RESTART: u16 = 1012;

/// The close frame for a stopping server, if it is stopping.
pub fn closing_frame(c: crate::state::Closing) -> Option<Message> {
    match c {
        crate::state::Closing::No => None,
        crate::state::Closing::Restart => Some(close(
            SERVICE_RESTART,
            "the server is restarting; the container keeps running, reconnect",
        )),
        crate::state::Closing::Stop => Some(close(GOING_AWAY, "the server is shutting down")),
    }
}

pub fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// What one read from a client's socket takes at most.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Apply the operator's size limits to an upgrade (or say why it is not one).
pub fn configure(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    max_message: usize,
) -> Result<WebSocketUpgrade, ApiError> {
    let ws = ws
        .map_err(|r| ApiError::BadRequest(format!("not a WebSocket upgrade: {}", r.body_text())))?;
    Ok(ws
        .max_message_size(max_message)
        .max_frame_size(max_message)
        // tungstenite zero-fills its read buffer up to this size before each
        // read: its default (128 KiB) cost more than the claim itself in a
        // burst of creates. A client sends keystrokes, resizes and pastes.
        .read_buffer_size(READ_BUFFER_BYTES)
        // Outgoing data waits in our bounded channels, not in an unbounded buffer.
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(1024 * 1024))
}

/// Why reading a client's message failed: 1009 for over the size limit.
pub fn read_error_close(e: &axum::Error) -> Option<Message> {
    let inner = std::error::Error::source(e)?;
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some(close(TOO_BIG, "message too big")),
        Some(tungstenite::Error::Utf8(_)) => {
            Some(close(INVALID_PAYLOAD, "text frame is not UTF-8"))
        }
        Some(tungstenite::Error::Protocol(_)) => Some(close(1002, "protocol error")),
        _ => None,
    }
}

/// Whether a sink operation finished, without error, within the deadline.
async fn within(
    timeout: Duration,
    op: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> bool {
    matches!(tokio::time::timeout(timeout, op).await, Ok(Ok(())))
}

/// Send within a deadline: a client that does not read is dropped, not waited for.
pub async fn send_timeout<S>(sink: &mut S, msg: Message, timeout: Duration) -> bool
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    within(timeout, sink.send(msg)).await
}

/// Queue a message without flushing, within a deadline (the queue writes
/// itself out once it is over its size; a later send flushes the rest):
/// messages that go out together then take one write, not one each.
pub async fn feed_timeout<S>(sink: &mut S, msg: Message, timeout: Duration) -> bool
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    within(timeout, sink.feed(msg)).await
}

/// Write out whatever [`feed_timeout`] queued, within a deadline.
pub async fn flush_timeout<S>(sink: &mut S, timeout: Duration) -> bool
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    within(timeout, sink.flush()).await
}

/// Send a JSON control message as a text frame.
pub fn text<T: serde::Serialize>(msg: &T) -> Message {
    // Serializing our own message types cannot fail.
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}
