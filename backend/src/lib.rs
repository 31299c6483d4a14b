//! The Glassbox server: HTTP and WebSocket API over the container runtime.
//!
//! [`serve`] starts it on a listener and hands back its address and a
//! handle; `main.rs` and the integration tests both use it.

pub mod assets;
pub mod auth;
pub mod config;
pub mod error;
pub mod fuzzing;
pub mod limits;
pub mod metrics;
pub mod monitor;
pub mod ratelimit;
pub mod routes;
pub mod sessions;
pub mod state;
pub mod supervisor;
pub mod ws;

use crate::config::Config;
use crate::error::ApiError;
use crate::state::{AppState, Shared};
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use runtime::{Runtime, RuntimeOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening the state dir: {0}")]
    Runtime(#[from] runtime::ContainerError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .nest("/api", routes::api())
        .route("/healthz", get(routes::healthz));
    if state.config.metrics {
        router = router.route("/metrics", get(routes::metrics));
    }
    router
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(Arc::clone(&state))
        .fallback_service(assets::router())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .layer(TraceLayer::new_for_http())
}

/// A running server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    server: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stop serving, end every session and remove its containers.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for id in self.state.sessions.all_ids() {
            self.state.end_session(&id).await;
        }
        let runtime = self.state.runtime.clone();
        let _ = tokio::task::spawn_blocking(move || runtime.drain_pool()).await;
        if let Some(server) = self.server.take() {
            // Upgraded sockets may linger; do not wait for them long.
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                tracing::debug!("server task did not stop in time");
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
        // Dropped without `shutdown` (a failing test): remove containers synchronously.
        for id in self.state.sessions.all_ids() {
            for entry in self.state.sessions.end(&id).unwrap_or_default() {
                let _ = self.state.runtime.remove(&entry.id, true);
            }
        }
        let _ = self.state.runtime.drain_pool();
    }
}

/// Open the runtime, listen on `config.listen` (port 0: any) and serve.
pub async fn serve(config: Config) -> Result<(SocketAddr, ServerHandle), ServeError> {
    let mut opts = RuntimeOptions::new(config.state_dir.clone());
    opts.cgroup_parent = config.cgroup_parent.clone();
    opts.warm_pool = config.warm_pool;
    let remove_orphans = config.remove_orphans;
    let runtime = tokio::task::spawn_blocking(move || -> Result<Runtime, ServeError> {
        let rt = Runtime::open(opts)?;
        if remove_orphans {
            for c in rt.list()? {
                tracing::info!(container = %c.id, "removing a container left by an earlier run");
                if let Err(e) = rt.remove(&c.id, true) {
                    tracing::warn!(container = %c.id, error = %e, "could not remove it");
                }
            }
        }
        // Build the busybox image now, not during the first user's create.
        if let Err(e) = rt.images().resolve(runtime::image::BUSYBOX_IMAGE) {
            tracing::warn!(error = %e, "the busybox image is not available");
        }
        rt.refill_pool();
        Ok(rt)
    })
    .await??;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let state: AppState = Arc::new(Shared::new(config, runtime));
    let tasks = monitor::spawn_background(&state);
    let (tx, rx) = oneshot::channel::<()>();
    let service = app(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok((
        addr,
        ServerHandle {
            addr,
            state,
            shutdown: Some(tx),
            tasks,
            server: Some(server),
        },
    ))
}
