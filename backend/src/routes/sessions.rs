//! `/api/v1/sessions`: start a session, look at it, extend it, end it; and
//! `/api/v1/limits`, the operator's limits.

use crate::auth::{self, Auth};
use crate::error::{ApiError, ApiJson};
use crate::limits;
use crate::metrics;
use crate::ratelimit::{Action, ClientIp};
use crate::sessions::unix_ms;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::api::{ServerLimits, SessionCreated, SessionInfo};
use std::sync::atomic::Ordering;

pub async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
) -> Result<Response, ApiError> {
    state.rate.check(Action::CreateSession, ip)?;
    let (session_id, token, expires, record) = state.sessions.create(ip)?;
    // On disk before the token leaves: a restart must know every token out there.
    if let Err(e) = state.db.insert_session(record).await {
        state.sessions.end(&session_id);
        return Err(e.into());
    }
    metrics::global()
        .sessions_created
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(session = %session_id, %ip, "session created");
    let cookie = auth::session_cookie(
        &token,
        state.config.sessions.ttl_secs,
        state.config.secure_cookie,
    );
    let body = SessionCreated {
        session_id,
        token,
        expires_at: unix_ms(expires),
    };
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        ApiJson(body),
    )
        .into_response())
}

pub async fn current(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<ApiJson<SessionInfo>, ApiError> {
    info(&state, &auth.session.id).map(ApiJson)
}

/// `POST /api/v1/sessions/current/extend`: the user is here. Pushes the idle
/// deadline to now + `idle_timeout_secs` (never past the hard TTL, which no
/// request moves) and answers like `GET /api/v1/sessions/current`.
pub async fn extend(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<ApiJson<SessionInfo>, ApiError> {
    // A passive request is not activity, but pressing "extend" is.
    state.sessions.touch(&auth.session.id);
    info(&state, &auth.session.id).map(ApiJson)
}

/// `GET /api/v1/limits`: the operator's defaults and maxima (no session needed).
pub async fn limits(State(state): State<AppState>) -> ApiJson<ServerLimits> {
    ApiJson(ServerLimits {
        defaults: limits::defaults(&state.config.limits),
        maxima: limits::maxima(&state.config.limits),
        containers_per_session: state.config.sessions.containers_per_session,
        egress: state.config.network.egress,
    })
}

fn info(state: &AppState, session: &str) -> Result<SessionInfo, ApiError> {
    let (hard, idle) = state
        .sessions
        .deadlines(session)
        .ok_or(ApiError::Unauthorized("the session has ended"))?;
    Ok(SessionInfo {
        session_id: session.to_string(),
        expires_at: unix_ms(hard),
        idle_expires_at: unix_ms(idle.min(hard)),
        idle_timeout_secs: state.config.sessions.idle_timeout_secs,
        max_containers: state.config.sessions.containers_per_session,
        default_limits: limits::defaults(&state.config.limits),
        max_limits: limits::maxima(&state.config.limits),
    })
}

pub async fn end(State(state): State<AppState>, auth: Auth) -> Response {
    tracing::info!(session = %auth.session.id, "session ended by its user");
    state.end_session(&auth.session.id).await;
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            auth::clear_cookie(state.config.secure_cookie),
        )],
    )
        .into_response()
}
