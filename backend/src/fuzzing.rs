//! Every decoder of client input, callable without a server: the fuzz
//! targets in `fuzz/` drive these. Each is a thin wrapper over the code the
//! handlers run, never a copy of it.
//!
//! What a client can send:
//! - the terminal socket's text frames ([`tty_control`]; binary frames are
//!   raw keystrokes, passed through unparsed);
//! - the events socket's frames: it takes none, any text or binary frame
//!   closes it with 1003 without being parsed;
//! - the JSON body of `POST /api/v1/containers` ([`create_container`]); the
//!   other POSTs (sessions, extend, stop, restart) read no body;
//! - the terminal sockets' query strings ([`attach_query`], [`exec_query`]);
//! - `Authorization`, `Cookie`, `Origin`, `Host` ([`credentials`],
//!   [`origin_allowed`]) and `X-Forwarded-For` ([`client_ip`]).

use crate::config::ContainerLimits;
use crate::error::ApiError;
use crate::ws::tty::Start;
use axum::extract::ws::Message;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use protocol::api::CreateContainer;
use protocol::tty::TtyClientMessage;
use protocol::Limits;
use runtime::process::wire::Target;
use std::net::IpAddr;

pub use crate::auth::origin_allowed;
pub use crate::limits::resolve as resolve_limits;

/// A terminal text frame: the message, or the close code it earns.
pub fn tty_control(text: &str) -> Result<TtyClientMessage, u16> {
    crate::ws::tty::decode_control(text).map_err(|m| match m {
        Message::Close(Some(frame)) => frame.code,
        _ => 0,
    })
}

/// `GET …/tty?…`: (exec session, 0 for the main terminal; replay offset).
pub fn attach_query(query: Option<String>) -> Result<(u32, u64), ApiError> {
    match crate::ws::tty::attach_query(&query)? {
        Start::Attach { target, since } => Ok((
            match target {
                Target::Main => 0,
                Target::Exec(n) => n,
            },
            since,
        )),
        Start::Exec { .. } => Err(ApiError::internal("attach decoded as exec")),
    }
}

/// `GET …/exec?…`: (command, cols, rows).
pub fn exec_query(query: Option<String>) -> Result<(Vec<String>, u16, u16), ApiError> {
    match crate::ws::tty::exec_query(&query)? {
        Start::Exec { cmd, cols, rows } => Ok((cmd, cols, rows)),
        Start::Attach { .. } => Err(ApiError::internal("exec decoded as attach")),
    }
}

/// `POST /api/v1/containers`: the body as the handler decodes and checks it,
/// with its limits resolved against the operator's.
pub fn create_container(
    body: &[u8],
    operator: &ContainerLimits,
) -> Result<(CreateContainer, Limits), ApiError> {
    let req: CreateContainer =
        serde_json::from_slice(body).map_err(|e| ApiError::BadJson(e.to_string()))?;
    crate::routes::containers::validate(&req)?;
    let limits = crate::limits::resolve(req.limits, operator)?;
    Ok((req, limits))
}

/// Headers as a client sends them (invalid names or values are dropped, as
/// the HTTP parser would refuse them).
pub fn headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::from_bytes(v)) {
            map.append(k, v);
        }
    }
    map
}

/// The token a request carries: (from `Authorization: Bearer`, from the cookie).
pub fn credentials(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    (crate::auth::bearer(headers), crate::auth::cookie(headers))
}

/// The client's address for the per-IP caps and rate limits.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    crate::ratelimit::from_headers(peer, headers, trusted)
}
