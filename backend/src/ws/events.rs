//! `/api/v1/events`: the session's containers' stats at a fixed interval and
//! their lifecycle and limit events, as JSON text frames
//! ([`protocol::EventsMessage`]). The socket takes no messages from clients.
//!
//! Stats come from a `watch` channel (a slow client skips samples); events
//! from a bounded broadcast channel (a client that falls more than its
//! capacity behind skips the oldest events, it never grows a queue).

use super::{close, send_timeout, text, POLICY, UNSUPPORTED};
use crate::auth::{check_origin, Auth};
use crate::error::ApiError;
use crate::metrics::WsGauge;
use crate::ratelimit::{Action, ClientIp};
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::StreamExt;
use protocol::EventsMessage;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub async fn events(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&headers, &state, auth.via)?;
    state.rate.check(Action::OpenSocket, ip)?;
    let ws = super::configure(ws, 1024)?;
    let (stats, events) = state
        .sessions
        .subscribe(&auth.session.id)
        .ok_or(ApiError::Unauthorized("the session has ended"))?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _gauge = WsGauge::events();
        stream(socket, state, auth, stats, events).await;
    }))
}

async fn stream(
    socket: WebSocket,
    state: AppState,
    auth: Auth,
    mut stats: tokio::sync::watch::Receiver<crate::sessions::StatsSnapshot>,
    mut events: tokio::sync::broadcast::Receiver<EventsMessage>,
) {
    let (mut tx, mut rx) = socket.split();
    let timeout = Duration::from_secs(state.config.ws.send_timeout_secs);
    let mut ping = tokio::time::interval(Duration::from_secs(
        state.config.ws.ping_interval_secs.max(1),
    ));
    ping.reset();
    let mut ended = auth.session.ended.clone();
    let mut closing = state.closing.subscribe();
    if let Some(m) = super::closing_frame({
        let c = *closing.borrow_and_update();
        c
    }) {
        let _ = send_timeout(&mut tx, m, timeout).await;
        return;
    }
    loop {
        let out: Vec<Message> = tokio::select! {
            Ok(()) = stats.changed() => {
                let snapshot = stats.borrow_and_update().clone();
                snapshot
                    .iter()
                    .map(|(id, s)| text(&EventsMessage::Stats { id: id.clone(), stats: s.clone() }))
                    .collect()
            }
            ev = events.recv() => match ev {
                Ok(m) => vec![text(&m)],
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "events client fell behind");
                    continue;
                }
                Err(RecvError::Closed) => vec![close(POLICY, "session ended")],
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    vec![close(UNSUPPORTED, "the events socket takes no messages")]
                }
                Some(Err(e)) => match super::read_error_close(&e) {
                    Some(c) => vec![c],
                    None => return,
                },
            },
            _ = ping.tick() => vec![Message::Ping(Default::default())],
            Ok(()) = ended.changed() => {
                if !*ended.borrow() { continue; }
                vec![close(POLICY, "session ended")]
            }
            Ok(()) = closing.changed() => {
                match super::closing_frame({ let c = *closing.borrow_and_update(); c }) {
                    Some(m) => vec![m],
                    None => continue,
                }
            }
        };
        for m in out {
            let closing = matches!(m, Message::Close(_));
            if !send_timeout(&mut tx, m, timeout).await || closing {
                return;
            }
        }
    }
}
