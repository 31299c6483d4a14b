//! Browser glue: fetch with the session cookie, clock, storage, theme.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestCredentials, RequestInit, Response};

/// A failed API call: the status (0 when the server was unreachable) and
/// what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn unreachable() -> ApiError {
    ApiError {
        status: 0,
        message: crate::api::error_message(0, ""),
    }
}

/// One API call with the session cookie. Returns the status and body text.
pub async fn call(
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), ApiError> {
    call_as(method, path, body, false).await
}

/// A call; `passive` marks the page's own polling, which the server does not
/// count as the user's activity (it must not keep an abandoned tab alive).
async fn call_as(
    method: &str,
    path: &str,
    body: Option<String>,
    passive: bool,
) -> Result<(u16, String), ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().map_err(|_| unreachable())?;
    if passive {
        let _ = headers.set("x-glassbox-passive", "1");
    }
    if let Some(b) = body {
        let _ = headers.set("content-type", "application/json");
        init.set_body(&b.into());
    }
    init.set_headers(&headers);
    let window = web_sys::window().ok_or_else(unreachable)?;
    let resp = JsFuture::from(window.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|_| unreachable())?;
    let resp: Response = resp.dyn_into().map_err(|_| unreachable())?;
    let status = resp.status();
    let text = match resp.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    Ok((status, text))
}

/// A call whose 2xx answer is JSON of type `T`.
pub async fn json<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    let body = body.map(|b| serde_json::to_string(b).expect("request bodies serialize"));
    decode(path, call(method, path, body).await?)
}

/// A GET the page makes on its own (polling): not the user's activity.
pub async fn poll<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    decode(path, call_as("GET", path, None, true).await?)
}

fn decode<T: DeserializeOwned>(path: &str, (status, text): (u16, String)) -> Result<T, ApiError> {
    if !(200..300).contains(&status) {
        return Err(ApiError {
            status,
            message: crate::api::error_message(status, &text),
        });
    }
    serde_json::from_str(&text).map_err(|e| ApiError {
        status,
        message: format!("unexpected answer from {path}: {e}"),
    })
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    json::<T>("GET", path, None::<&()>).await
}

/// A call whose answer body does not matter.
pub async fn send(method: &str, path: &str) -> Result<(), ApiError> {
    let (status, text) = call(method, path, None).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(ApiError {
            status,
            message: crate::api::error_message(status, &text),
        })
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// A WebSocket URL on the page's own origin.
pub fn ws_url(path: &str) -> String {
    let loc = web_sys::window().expect("a window").location();
    crate::api::ws_url(
        &loc.protocol().unwrap_or_default(),
        &loc.host().unwrap_or_default(),
        path,
    )
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The saved theme, else the system's preference.
pub fn initial_dark() -> bool {
    if let Some(t) = storage().and_then(|s| s.get_item("glassbox-theme").ok().flatten()) {
        return t == "dark";
    }
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .map(|m| m.matches())
        .unwrap_or(false)
}

/// Apply a theme to the page and remember it.
pub fn apply_theme(dark: bool, remember: bool) {
    let name = if dark { "dark" } else { "light" };
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = el.set_attribute("data-theme", name);
    }
    if remember {
        if let Some(s) = storage() {
            let _ = s.set_item("glassbox-theme", name);
        }
    }
}
