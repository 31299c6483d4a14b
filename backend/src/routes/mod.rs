//! The HTTP routes: one module per resource.

pub mod containers;
pub mod images;
pub mod sessions;

use crate::error::ApiError;
use crate::state::AppState;
use crate::ws;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

/// Everything under `/api`.
pub fn api() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(sessions::create))
        .route(
            "/v1/sessions/current",
            get(sessions::current).delete(sessions::end),
        )
        .route("/v1/sessions/current/extend", post(sessions::extend))
        .route("/v1/limits", get(sessions::limits))
        .route("/v1/images", get(images::list))
        .route(
            "/v1/containers",
            get(containers::list).post(containers::create),
        )
        .route(
            "/v1/containers/{id}",
            get(containers::get).delete(containers::remove),
        )
        .route("/v1/containers/{id}/stop", post(containers::stop))
        .route("/v1/containers/{id}/restart", post(containers::restart))
        .route("/v1/containers/{id}/stats", get(containers::stats))
        .route("/v1/containers/{id}/processes", get(containers::processes))
        .route("/v1/containers/{id}/diff", get(containers::diff))
        .route("/v1/containers/{id}/tty", get(ws::tty::attach))
        .route("/v1/containers/{id}/exec", get(ws::tty::exec))
        .route("/v1/events", get(ws::events::events))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (sessions, containers) = state.sessions.counts();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::global().render(sessions, containers),
    )
}
