//! Terminal WebSockets: `/containers/{id}/tty` (the main terminal, or an
//! exec session's with `?exec=N`) and `/containers/{id}/exec` (a new process).
//!
//! Binary frames carry raw terminal bytes both ways; text frames carry JSON
//! control messages ([`protocol::tty`]). Two tasks per socket:
//!
//! ```text
//! supervisor socket ──output──▶ WebSocket   (one frame read, one message sent)
//! WebSocket ──input──▶ supervisor socket    (awaits: a full PTY stops our reads)
//! ```
//! The output side reads the supervisor's socket only when the previous
//! message has gone out. When the browser stops reading, the send blocks, we
//! stop reading the supervisor's socket, it fills, and the supervisor stops
//! reading the PTY: the container's writes block. Memory stays bounded (one
//! supervisor frame of at most 64 KiB of output, or a 256 KiB replay, plus
//! one read). A closed socket only closes our connection to the supervisor;
//! the container keeps running and a new socket can resume with `?since=`.

use super::{
    close, feed_timeout, flush_timeout, send_timeout, text, INTERNAL, INVALID_PAYLOAD, NORMAL,
    POLICY, UNSUPPORTED,
};
use crate::auth::{check_origin, Auth};
use crate::error::ApiError;
use crate::metrics::WsGauge;
use crate::ratelimit::{Action, ClientIp};
use crate::sessions::ContainerEntry;
use crate::state::AppState;
use crate::supervisor::{self, Incoming, Reader, Writer};
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::StreamExt;
use protocol::tty::{clamp_size, TtyClientMessage, TtyServerMessage};
use protocol::ContainerState;
use runtime::process::wire::{Reply, Request, Target};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Output frames already waiting are sent as one WebSocket message up to this
/// size (the supervisor's frames hold up to 64 KiB each already).
const COALESCE: usize = 64 * 1024;
const MAX_EXEC_ARGS: usize = 64;

/// What the socket attaches to.
pub(crate) enum Start {
    Attach {
        target: Target,
        since: u64,
    },
    Exec {
        cmd: Vec<String>,
        cols: u16,
        rows: u16,
    },
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ApiError> {
    v.parse()
        .map_err(|_| ApiError::BadRequest(format!("bad query: {key} must be a number")))
}

pub(crate) fn attach_query(q: &Option<String>) -> Result<Start, ApiError> {
    let (mut since, mut exec) = (0u64, None);
    for (k, v) in query_pairs(q) {
        match k.as_str() {
            "since" => since = number(&k, &v)?,
            "exec" => exec = Some(number::<u32>(&k, &v)?),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "bad query: unknown parameter {k:?}"
                )))
            }
        }
    }
    let target = match exec {
        Some(0) | None => Target::Main,
        Some(n) => Target::Exec(n),
    };
    Ok(Start::Attach { target, since })
}

pub(crate) fn exec_query(q: &Option<String>) -> Result<Start, ApiError> {
    let (mut cmd, mut cols, mut rows) = (Vec::new(), 80u32, 24u32);
    for (k, v) in query_pairs(q) {
        match k.as_str() {
            "cmd" if v.is_empty() || v.contains('\0') || v.len() > 4096 => {
                return Err(ApiError::BadRequest(
                    "bad query: cmd must be non-empty text".into(),
                ))
            }
            "cmd" => cmd.push(v),
            "cols" => cols = number(&k, &v)?,
            "rows" => rows = number(&k, &v)?,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "bad query: unknown parameter {k:?}"
                )))
            }
        }
    }
    if cmd.len() > MAX_EXEC_ARGS {
        return Err(ApiError::BadRequest(format!(
            "bad query: at most {MAX_EXEC_ARGS} cmd arguments"
        )));
    }
    if cmd.is_empty() {
        cmd.push("/bin/sh".into());
    }
    let (cols, rows) = clamp_size(cols, rows);
    Ok(Start::Exec { cmd, cols, rows })
}

pub async fn attach(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&headers, &state, auth.via)?;
    state.rate.check(Action::OpenSocket, ip)?;
    let entry = state.sessions.container(&auth.session.id, &id)?;
    let start = attach_query(&q)?;
    let ws = super::configure(ws, state.config.ws.max_message_bytes)?;
    Ok(upgrade(ws, state, auth, entry, start))
}

pub async fn exec(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&headers, &state, auth.via)?;
    state.rate.check(Action::OpenSocket, ip)?;
    let entry = state.sessions.container(&auth.session.id, &id)?;
    let start = exec_query(&q)?;
    let ws = super::configure(ws, state.config.ws.max_message_bytes)?;
    let info = state.blocking(move |rt| rt.inspect(&id)).await?;
    if info.state != ContainerState::Running {
        return Err(ApiError::Conflict(format!(
            "container {} is not running",
            info.id
        )));
    }
    Ok(upgrade(ws, state, auth, entry, start))
}

fn upgrade(
    ws: WebSocketUpgrade,
    state: AppState,
    auth: Auth,
    entry: Arc<ContainerEntry>,
    start: Start,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _gauge = WsGauge::tty();
        let session = auth.session.id.clone();
        relay(socket, state, auth, entry, start).await;
        tracing::debug!(session = %session, "terminal socket closed");
    })
}

async fn relay(
    socket: WebSocket,
    state: AppState,
    auth: Auth,
    entry: Arc<ContainerEntry>,
    start: Start,
) {
    let (mut ws_tx, ws_rx) = socket.split();
    let timeout = Duration::from_secs(state.config.ws.send_timeout_secs);
    let (mut sup_rx, mut sup_tx) = match supervisor::connect(&entry.socket).await {
        Ok(pair) => pair,
        Err(e) => {
            if let Start::Attach {
                target: Target::Main,
                since,
            } = start
            {
                let id = entry.id.clone();
                let kept = state.blocking(move |rt| rt.kept_output(&id, since)).await;
                if let Ok(Some((code, kept))) = kept {
                    replay_kept(&mut ws_tx, code, kept, timeout).await;
                    return;
                }
            }
            tracing::warn!(container = %entry.id, error = %e, "cannot reach the supervisor");
            let msg = TtyServerMessage::Error {
                message: "the container's terminal is not reachable (has it exited?)".into(),
            };
            let _ = send_timeout(&mut ws_tx, text(&msg), timeout).await;
            let _ = send_timeout(
                &mut ws_tx,
                close(INTERNAL, "supervisor unreachable"),
                timeout,
            )
            .await;
            return;
        }
    };
    let req = match start {
        Start::Attach { target, since } => Request::Attach {
            target,
            since: Some(since),
        },
        Start::Exec { cmd, cols, rows } => Request::Exec {
            cmd,
            env: Vec::new(),
            tty: true,
            cols,
            rows,
        },
    };
    if sup_tx.request(req).await.is_err() {
        let _ = send_timeout(
            &mut ws_tx,
            close(INTERNAL, "supervisor unreachable"),
            timeout,
        )
        .await;
        return;
    }
    let (ctrl_tx, ctrl_rx) = mpsc::channel::<Message>(2);
    let input = tokio::spawn(input_loop(
        ws_rx,
        sup_tx,
        ctrl_tx,
        Arc::clone(&state),
        auth.session.id.clone(),
    ));
    output_loop(
        &mut ws_tx,
        &mut sup_rx,
        ctrl_rx,
        auth.session.ended.clone(),
        &state,
    )
    .await;
    input.abort();
}

/// A terminal whose process has exited, as a live one ends: what it missed
/// of the output, the exit, and a normal close.
async fn replay_kept(
    ws_tx: &mut SplitSink<WebSocket, Message>,
    code: i32,
    kept: runtime::process::ring::Replay,
    timeout: Duration,
) {
    let next_seq = kept.seq + kept.data.len() as u64;
    let mut messages = vec![text(&TtyServerMessage::Attached {
        exec_id: None,
        next_seq,
    })];
    if let Some((from_seq, to_seq)) = kept.gap {
        messages.push(text(&TtyServerMessage::Gap { from_seq, to_seq }));
    }
    if !kept.data.is_empty() {
        messages.push(text(&TtyServerMessage::Seq { seq: kept.seq }));
        messages.push(Message::Binary(kept.data.into()));
    }
    messages.push(text(&TtyServerMessage::Exit { code }));
    messages.push(close(NORMAL, "process exited"));
    for m in messages {
        if !send_timeout(ws_tx, m, timeout).await {
            return;
        }
    }
}

/// Supervisor → browser, plus closes asked for by the input side.
async fn output_loop(
    ws_tx: &mut SplitSink<WebSocket, Message>,
    sup_rx: &mut Reader,
    mut ctrl_rx: mpsc::Receiver<Message>,
    mut ended: watch::Receiver<bool>,
    state: &AppState,
) {
    let timeout = Duration::from_secs(state.config.ws.send_timeout_secs);
    let mut ping = tokio::time::interval(Duration::from_secs(
        state.config.ws.ping_interval_secs.max(1),
    ));
    ping.reset();
    let mut closing = state.closing.subscribe();
    if let Some(m) = super::closing_frame({
        let c = *closing.borrow_and_update();
        c
    }) {
        let _ = send_timeout(ws_tx, m, timeout).await;
        return;
    }
    // Sequence number the next binary byte would have if the stream continues.
    let mut expected: Option<u64> = None;
    let mut held: Option<Incoming> = None;
    loop {
        let msg = if let Some(m) = held.take() {
            m
        } else {
            tokio::select! {
                // A close asked for by the input side wins over the end of the
                // supervisor connection that follows it.
                biased;
                Some(m) = ctrl_rx.recv() => {
                    let closing = matches!(m, Message::Close(_));
                    let _ = send_timeout(ws_tx, m, timeout).await;
                    if closing { return; }
                    continue;
                }
                // Cancel-safe: a frame not taken here stays in the reader.
                frame = sup_rx.next() => match frame {
                    Ok(Some(frame)) => frame,
                    Ok(None) | Err(_) => {
                        let _ = send_timeout(ws_tx, close(INTERNAL, "the container's supervisor went away"), timeout).await;
                        return;
                    }
                },
                _ = ping.tick() => {
                    if !send_timeout(ws_tx, Message::Ping(Default::default()), timeout).await { return; }
                    continue;
                }
                Ok(()) = ended.changed() => {
                    if *ended.borrow() {
                        let _ = send_timeout(ws_tx, close(POLICY, "session ended"), timeout).await;
                        return;
                    }
                    continue;
                }
                Ok(()) = closing.changed() => {
                    if let Some(m) = super::closing_frame({ let c = *closing.borrow_and_update(); c }) {
                        let _ = send_timeout(ws_tx, m, timeout).await;
                        return;
                    }
                    continue;
                }
            }
        };
        let ok = match msg {
            Incoming::Output { seq, data } => {
                // Join output that is already here: fewer, larger messages.
                let (data, next) = coalesce(sup_rx, seq, data);
                held = next;
                let mut ok = true;
                if expected != Some(seq) {
                    ok = feed_timeout(ws_tx, text(&TtyServerMessage::Seq { seq }), timeout).await;
                }
                expected = Some(seq + data.len() as u64);
                ok && send_timeout(ws_tx, Message::Binary(data), timeout).await
            }
            Incoming::Control(Reply::Attached { target, next_seq }) => {
                let exec_id = match target {
                    Target::Main => None,
                    Target::Exec(n) => Some(n),
                };
                let msg = text(&TtyServerMessage::Attached { exec_id, next_seq });
                feed_timeout(ws_tx, msg, timeout).await
                    && flush_unless_more(ws_tx, sup_rx, &mut held, timeout).await
            }
            Incoming::Control(Reply::Gap { from, to }) => {
                let msg = text(&TtyServerMessage::Gap {
                    from_seq: from,
                    to_seq: to,
                });
                feed_timeout(ws_tx, msg, timeout).await
                    && flush_unless_more(ws_tx, sup_rx, &mut held, timeout).await
            }
            Incoming::Control(Reply::Exit { code }) => {
                let _ = send_timeout(ws_tx, text(&TtyServerMessage::Exit { code }), timeout).await;
                let _ = send_timeout(ws_tx, close(NORMAL, "process exited"), timeout).await;
                return;
            }
            Incoming::Control(Reply::Error { message }) => {
                let _ =
                    send_timeout(ws_tx, text(&TtyServerMessage::Error { message }), timeout).await;
                let _ = send_timeout(ws_tx, close(INTERNAL, "terminal error"), timeout).await;
                return;
            }
            Incoming::Control(Reply::ExecStarted { .. }) => true,
        };
        if !ok {
            // The client stopped taking output: drop it so the container runs on.
            tracing::info!("terminal client too slow or gone; closing its socket");
            return;
        }
    }
}

/// After a control message, which the output that a supervisor sends with
/// it follows (an attach: what the terminal missed): hold the next frame if
/// it is already here and leave the queue for its send to flush, so that
/// both take one write to the client; else flush now. Only control
/// frames come here, one or two per attach, so the held frame never keeps
/// the loop from its other wake-ups for long.
async fn flush_unless_more(
    ws_tx: &mut SplitSink<WebSocket, Message>,
    sup_rx: &mut Reader,
    held: &mut Option<Incoming>,
    timeout: Duration,
) -> bool {
    if held.is_none() {
        // A read error or EOF shows again on the next blocking read.
        if let Ok(Some(next)) = sup_rx.try_next() {
            *held = Some(next);
            return true;
        }
    }
    flush_timeout(ws_tx, timeout).await
}

/// Output that continues `data` and is already waiting, joined up to
/// [`COALESCE`] bytes (copied only when there is something to join). Returns
/// the data and the first frame that did not fit or does not continue it.
fn coalesce(sup_rx: &mut Reader, seq: u64, data: Bytes) -> (Bytes, Option<Incoming>) {
    if data.len() >= COALESCE {
        return (data, None);
    }
    let mut joined: Option<BytesMut> = None;
    let mut len = data.len();
    let held = loop {
        if len >= COALESCE {
            break None;
        }
        // A read error or EOF shows again on the next blocking read.
        match sup_rx.try_next() {
            Ok(Some(Incoming::Output { seq: s, data: more }))
                if s == seq + len as u64 && len + more.len() <= COALESCE =>
            {
                let buf = joined.get_or_insert_with(|| {
                    let mut b = BytesMut::with_capacity(COALESCE);
                    b.extend_from_slice(&data);
                    b
                });
                buf.extend_from_slice(&more);
                len += more.len();
            }
            Ok(Some(other)) => break Some(other),
            Ok(None) | Err(_) => break None,
        }
    };
    match joined {
        Some(b) => (b.freeze(), held),
        None => (data, held),
    }
}

/// Browser → supervisor. Every frame is decoded by type; anything else closes the socket.
///
/// Resizes are rate-limited per socket (each one makes the kernel signal the
/// whole foreground process group): over the rate, the newest size waits and
/// replaces any older waiting one, so the terminal still ends at the size the
/// client last asked for.
async fn input_loop(
    mut ws_rx: SplitStream<WebSocket>,
    mut sup_tx: Writer,
    ctrl_tx: mpsc::Sender<Message>,
    state: AppState,
    session: String,
) {
    let mut touched = Instant::now();
    let resizes = state.rate.resize_limiter(&state.config.rate);
    let retry = Duration::from_secs(1) / state.config.rate.resizes_per_second.max(1);
    let mut pending: Option<(u16, u16)> = None;
    loop {
        if let Some((cols, rows)) = pending {
            if resizes.check().is_ok() {
                pending = None;
                if sup_tx
                    .request(Request::Resize { cols, rows })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let msg = tokio::select! {
            msg = ws_rx.next() => msg,
            () = tokio::time::sleep(retry), if pending.is_some() => continue,
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                if let Some(c) = super::read_error_close(&e) {
                    let _ = ctrl_tx.send(c).await;
                }
                return;
            }
            None => return,
        };
        let result = match msg {
            Message::Binary(data) => {
                if touched.elapsed() > Duration::from_secs(1) {
                    state.sessions.touch(&session);
                    touched = Instant::now();
                }
                sup_tx.input(&data).await
            }
            Message::Text(t) => match decode_control(t.as_str()) {
                Ok(TtyClientMessage::Resize { cols, rows }) => {
                    let (cols, rows) = clamp_size(cols, rows);
                    if resizes.check().is_ok() {
                        pending = None;
                        sup_tx.request(Request::Resize { cols, rows }).await
                    } else {
                        pending = Some((cols, rows));
                        Ok(())
                    }
                }
                Err(c) => {
                    let _ = ctrl_tx.send(c).await;
                    return;
                }
            },
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        };
        if result.is_err() {
            return;
        }
    }
}

/// A text frame: malformed JSON is 1007, an unknown `type` 1003.
pub fn decode_control(t: &str) -> Result<TtyClientMessage, Message> {
    let value: serde_json::Value =
        serde_json::from_str(t).map_err(|_| close(INVALID_PAYLOAD, "malformed JSON"))?;
    match value.get("type").and_then(|v| v.as_str()) {
        Some("resize") => serde_json::from_value(value)
            .map_err(|_| close(INVALID_PAYLOAD, "bad resize: cols and rows must be numbers")),
        Some(_) => Err(close(UNSUPPORTED, "unknown message type")),
        None => Err(close(INVALID_PAYLOAD, "a control message needs a \"type\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(m: Message) -> u16 {
        match m {
            Message::Close(Some(f)) => f.code,
            _ => 0,
        }
    }

    #[test]
    fn control_frames_decode_or_close_with_the_right_code() {
        assert_eq!(
            decode_control(r#"{"type":"resize","cols":100,"rows":30}"#).unwrap(),
            TtyClientMessage::Resize {
                cols: 100,
                rows: 30
            }
        );
        assert_eq!(code(decode_control("{nope").unwrap_err()), INVALID_PAYLOAD);
        assert_eq!(
            code(decode_control(r#"{"type":"reboot"}"#).unwrap_err()),
            UNSUPPORTED
        );
        assert_eq!(
            code(decode_control(r#"{"type":"resize","cols":"x"}"#).unwrap_err()),
            INVALID_PAYLOAD
        );
        assert_eq!(code(decode_control("[1,2]").unwrap_err()), INVALID_PAYLOAD);
    }

    #[test]
    fn queries_are_typed() {
        assert!(attach_query(&Some("since=12".into())).is_ok());
        assert!(attach_query(&Some("since=-1".into())).is_err());
        assert!(attach_query(&Some("bogus=1".into())).is_err());
        match exec_query(&Some("cmd=/bin/echo&cmd=hi&cols=99999".into())).unwrap() {
            Start::Exec { cmd, cols, rows } => {
                assert_eq!(cmd, vec!["/bin/echo", "hi"]);
                assert_eq!((cols, rows), (1000, 24));
            }
            Start::Attach { .. } => panic!("exec expected"),
        }
    }
}
