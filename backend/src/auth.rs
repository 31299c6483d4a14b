//! Session tokens and who may talk to us.
//!
//! A token is 256 bits from the kernel's CSPRNG, unrelated to the session id.
//! The store keys sessions by the token's SHA-256 and compares that hash in
//! constant time. Browsers carry the token in an HttpOnly, SameSite=Strict
//! cookie; other clients send `Authorization: Bearer TOKEN`.
//!
//! Cross-site use is refused: WebSocket upgrades and cookie-authenticated
//! writes must come from an allowed `Origin` (the page's own by default), and
//! a cookie-authenticated upgrade without any `Origin` is refused too.

use crate::error::ApiError;
use crate::sessions::SessionHandle;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "glassbox_session";

pub type TokenHash = [u8; 32];

pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Session ids are public (they appear in logs and answers); 128 random bits.
pub fn new_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

pub fn token_matches(stored: &TokenHash, given: &TokenHash) -> bool {
    stored.ct_eq(given).into()
}

/// `Set-Cookie` value carrying the token.
pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

pub fn clear_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}

/// How the request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// An authenticated request. Extracting it answers 401 without a valid
/// token, and 403 for a cookie-carrying write from a foreign origin.
pub struct Auth {
    pub session: SessionHandle,
    pub via: Via,
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// A request with this header does not count as activity: the page's own
/// polling (processes, diff, session timer) must not keep an abandoned tab's
/// session alive until its hard TTL.
pub const PASSIVE: &str = "x-glassbox-passive";

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, via) = match (bearer(&parts.headers), cookie(&parts.headers)) {
            (Some(t), _) => (t, Via::Bearer),
            (None, Some(t)) => (t, Via::Cookie),
            (None, None) => {
                return Err(ApiError::Unauthorized(
                    "no session: create one with POST /api/v1/sessions and send its token",
                ))
            }
        };
        if token.is_empty() || token.len() > 128 {
            return Err(ApiError::Unauthorized("invalid or expired session token"));
        }
        let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via == Via::Cookie && writes && parts.headers.contains_key(header::ORIGIN) {
            check_origin(&parts.headers, state, via)?;
        }
        let session = state
            .sessions
            .authenticate(token, parts.headers.contains_key(PASSIVE))
            .ok_or(ApiError::Unauthorized("invalid or expired session token"))?;
        Ok(Auth { session, via })
    }
}

/// The `Origin` check of WebSocket upgrades (and cookie writes): the origin
/// must be in the allowlist, or, with no list, match the request's `Host`.
pub fn check_origin(headers: &HeaderMap, state: &AppState, via: Via) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return match via {
            // A script on another site cannot omit Origin; a browser always sends it.
            Via::Cookie => Err(ApiError::Forbidden(
                "a cookie-authenticated WebSocket needs an Origin header".into(),
            )),
            Via::Bearer => Ok(()),
        };
    };
    let origin = origin
        .to_str()
        .map_err(|_| ApiError::Forbidden("origin not allowed".into()))?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let ok = origin_allowed(origin, host, &state.config.allowed_origins);
    if ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "origin {origin:?} is not allowed"
        )))
    }
}

/// Whether `origin` may talk to us: one of `allowed`, or with no list, the
/// request's own `host` (either scheme).
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        let without_scheme = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((without_scheme, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
    } else {
        allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(token_matches(&hash_token(&a), &hash_token(&a)));
        assert!(!token_matches(&hash_token(&a), &hash_token(&b)));
    }

    #[test]
    fn bearer_and_cookie_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        h.insert(header::COOKIE, "x=1; glassbox_session=def".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        assert_eq!(cookie(&h), Some("def"));
    }
}
