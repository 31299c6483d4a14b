//! The Glassbox page, embedded in the binary: `backend/build.rs` builds the
//! frontend to wasm into `$OUT_DIR/dist`, and this module serves it as the
//! router's fallback. `/` (and any unknown path without a file extension)
//! gets `index.html`; precompressed `.gz` copies go to browsers that accept
//! gzip. Files named by content (wasm-bindgen's snippets) are cached for a
//! year; the rest is revalidated with an ETag.
//!
//! `GLASSBOX_FRONTEND_DIR=DIR` serves the page from DIR on disk instead (the
//! dev loop with `trunk watch`).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rust_embed::RustEmbed;
use std::borrow::Cow;

#[derive(RustEmbed)]
#[folder = "$OUT_DIR/dist"]
struct Dist;

/// Serves the embedded page. Use as the API router's fallback.
pub fn router() -> Router<()> {
    Router::new().fallback(serve)
}

async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
    }
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") {
        return api_not_found();
    }
    let path = if path.is_empty() { "index.html" } else { path };
    let gzip_ok = accepts_gzip(&headers);
    match find(path, gzip_ok) {
        Some(f) => respond(path, f, &headers, method == Method::HEAD),
        // A client-side route: the page itself. A missing file: 404.
        None if !path.rsplit('/').next().unwrap_or("").contains('.') => {
            match find("index.html", gzip_ok) {
                Some(f) => respond("index.html", f, &headers, method == Method::HEAD),
                None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
            }
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

fn api_not_found() -> Response {
    let body = r#"{"error":{"code":"not_found","message":"no such API endpoint"}}"#;
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

struct Found {
    data: Cow<'static, [u8]>,
    gzipped: bool,
    etag: String,
}

fn find(path: &str, gzip_ok: bool) -> Option<Found> {
    if let Ok(dir) = std::env::var("GLASSBOX_FRONTEND_DIR") {
        if path.split('/').any(|c| c == "..") {
            return None;
        }
        let data = std::fs::read(std::path::Path::new(&dir).join(path)).ok()?;
        let etag = format!("\"{:x}-{}\"", data.len(), fnv(&data));
        return Some(Found {
            data: Cow::Owned(data),
            gzipped: false,
            etag,
        });
    }
    let plain = Dist::get(path)?;
    let etag = format!("\"{}\"", hex(&plain.metadata.sha256_hash()[..12]));
    if gzip_ok {
        if let Some(gz) = Dist::get(&format!("{path}.gz")) {
            return Some(Found {
                data: gz.data,
                gzipped: true,
                etag,
            });
        }
    }
    Some(Found {
        data: plain.data,
        gzipped: false,
        etag,
    })
}

fn respond(path: &str, f: Found, req: &HeaderMap, head: bool) -> Response {
    let immutable = path.starts_with("snippets/");
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let not_modified = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == f.etag));
    let mut b = Response::builder()
        .header(header::CONTENT_TYPE, content_type(path))
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, &f.etag)
        .header(header::VARY, "accept-encoding")
        .header("x-content-type-options", "nosniff");
    if path == "index.html" {
        b = b.header("referrer-policy", "same-origin");
    }
    if not_modified {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response");
    }
    if f.gzipped {
        b = b.header(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    b = b.header(header::CONTENT_LENGTH, f.data.len());
    let body = if head {
        Body::empty()
    } else {
        Body::from(f.data.into_owned())
    };
    b.status(StatusCode::OK).body(body).expect("valid response")
}

fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|e| {
                let mut parts = e.trim().split(';');
                let name = parts.next().unwrap_or("").trim();
                let q0 = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        == Some(0.0)
                });
                (name == "gzip" || name == "*") && !q0
            })
        })
    })
}

/// Content types for what the page is made of.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "map" => "application/json",
        _ => "application/octet-stream",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    async fn get(path: &str, gzip: bool) -> Response {
        get_with(path, gzip, None).await
    }

    async fn get_with(path: &str, gzip: bool, etag: Option<HeaderValue>) -> Response {
        let mut h = HeaderMap::new();
        if gzip {
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip, deflate, br"),
            );
        }
        if let Some(e) = etag {
            h.insert(header::IF_NONE_MATCH, e);
        }
        serve(Method::GET, path.parse().unwrap(), h).await
    }

    #[tokio::test]
    async fn index_for_root_and_client_routes() {
        for p in ["/", "/index.html", "/some/page"] {
            let r = get(p, false).await;
            assert_eq!(r.status(), StatusCode::OK, "{p}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        }
        assert_eq!(
            get("/missing.js", false).await.status(),
            StatusCode::NOT_FOUND
        );
        let api = get("/api/v1/nothing", false).await;
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(api.headers()[header::CONTENT_TYPE], "application/json");
        let post = serve(Method::POST, "/".parse().unwrap(), HeaderMap::new()).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn wasm_is_served_gzipped_with_its_type() {
        if Dist::get("frontend_bg.wasm").is_none() {
            return; // built with GLASSBOX_SKIP_FRONTEND
        }
        let r = get("/frontend_bg.wasm", true).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = r.headers()[header::ETAG].clone();
        let again = get_with("/frontend_bg.wasm", true, Some(etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let plain = get("/frontend_bg.wasm", false).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let js = get("/frontend.js", true).await;
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert_eq!(
            content_type("snippets/x/xterm.mjs"),
            "text/javascript; charset=utf-8"
        );
    }
}
