//! The page served at `/` until the playground UI is embedded here.

use axum::response::Html;
use axum::Router;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Glassbox</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>Glassbox</h1>
<p>The playground UI is being built. The server is up: see <a href="/healthz">/healthz</a>.</p>
</body></html>
"#;

pub fn router() -> Router<()> {
    Router::new().fallback(|| async { Html(PAGE) })
}
