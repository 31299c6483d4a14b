//! The Glassbox server: HTTP and WebSocket API over the container runtime.
//!
//! [`serve`] starts it on a listener and hands back its address and a
//! handle; `main.rs` and the integration tests both use it.

pub mod assets;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
mod fds;
pub mod fuzzing;
pub mod limits;
pub mod metrics;
pub mod monitor;
pub mod ratelimit;
pub mod reconcile;
pub mod refill;
pub mod routes;
pub mod sessions;
pub mod state;
pub mod supervisor;
pub mod ws;

use crate::config::{Config, ShutdownMode};
use crate::error::ApiError;
use crate::state::{AppState, Closing, Shared};
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
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("opening the database: {0}")]
    Db(#[from] db::DbError),
    #[error("reconciling with the earlier run: {0}")]
    Reconcile(#[from] reconcile::ReconcileError),
}

/// How long a stopping server waits for in-flight requests and for its
/// WebSockets to send their close frames.
const DRAIN: Duration = Duration::from_secs(5);

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
    /// What the start-up reconciliation did.
    pub reconciled: reconcile::Report,
    shutdown: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    server: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stop: accept no more connections, close every WebSocket with 1012
    /// (restart: reconnect) or 1001 (going away), let in-flight requests
    /// finish for a moment, then either leave the containers running for
    /// the next start (`shutdown = "keep"`) or remove them (`"stop"`).
    pub async fn shutdown(mut self) {
        let mode = self.state.config.shutdown;
        self.state.closing.send_replace(match mode {
            ShutdownMode::Keep => Closing::Restart,
            ShutdownMode::Stop => Closing::Stop,
        });
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let deadline = tokio::time::Instant::now() + DRAIN;
        if let Some(server) = self.server.take() {
            if tokio::time::timeout_at(deadline, server).await.is_err() {
                tracing::warn!("requests still running at shutdown; leaving them");
            }
        }
        // Upgraded sockets are not the server's to wait for: each holds a
        // receiver of `closing` until it has sent its close frame.
        while self.state.closing.receiver_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if mode == ShutdownMode::Stop {
            for id in self.state.sessions.all_ids() {
                self.state.end_session(&id).await;
            }
        } else {
            tracing::info!(
                containers = self.state.sessions.counts().1,
                "leaving containers running for the next start"
            );
        }
        let (runtime, refill) = (self.state.runtime.clone(), self.state.pool_refill.clone());
        let _ = tokio::task::spawn_blocking(move || {
            refill.stop();
            runtime.drain_pool()
        })
        .await;
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
        // Dropped without `shutdown` (a failing test): remove containers
        // synchronously, unless they are meant to outlive us.
        if self.state.config.shutdown == ShutdownMode::Keep {
            return;
        }
        for id in self.state.sessions.all_ids() {
            for entry in self.state.sessions.end(&id).unwrap_or_default() {
                let _ = self.state.runtime.remove(&entry.id, true);
            }
        }
        self.state.pool_refill.stop();
        let _ = self.state.runtime.drain_pool();
    }
}

/// Open the runtime, listen on `config.listen` (port 0: any) and serve.
pub async fn serve(config: Config) -> Result<(SocketAddr, ServerHandle), ServeError> {
    let fd_limit = fds::raise_open_file_limit();
    fds::grow_fd_table(fds::wanted(config.capacity.max_containers).min(fd_limit));
    let mut opts = RuntimeOptions::new(config.state_dir.clone());
    opts.cgroup_parent = config.cgroup_parent.clone();
    opts.warm_pool = config.warm_pool;
    opts.shell_pool = config.shell_pool;
    // A create that asks for no limit gets these: its claim sets none.
    opts.shell_limits = limits::defaults(&config.limits);
    // The server refills in the pauses between creates (`monitor`).
    opts.refill_on_claim = false;
    opts.egress = config.network.egress_options()?;
    let db_path = config.state_dir.join("glassbox.db");
    let (runtime, db, loaded) = tokio::task::spawn_blocking(move || -> Result<_, ServeError> {
        let rt = Runtime::open(opts)?;
        let (db, loaded) = db::Db::open(&db_path)?;
        Ok((rt, db, loaded))
    })
    .await??;
    let state: AppState = Arc::new(Shared::new(config.clone(), runtime, db));
    // Before listening: no request sees a half-reconciled server.
    let reconciled = reconcile::run(&state, loaded).await?;
    let rt = Arc::clone(&state.runtime);
    tokio::task::spawn_blocking(move || {
        // Build the busybox image now, not during the first user's create.
        if let Err(e) = rt.images().resolve(runtime::image::BUSYBOX_IMAGE) {
            tracing::warn!(error = %e, "the busybox image is not available");
        }
        rt.refill_pool();
    })
    .await?;
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
    // A terminal sends many small frames: without TCP_NODELAY, Nagle holds
    // a keystroke's echo back until the previous frame is acknowledged (up
    // to the peer's 40 ms delayed ACK).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on an accepted connection");
        }
    });
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
            reconciled,
            shutdown: Some(tx),
            tasks,
            server: Some(server),
        },
    ))
}
