//! What every handler shares, and the few operations several of them need.

use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;
use crate::metrics;
use crate::ratelimit::RateLimits;
use crate::sessions::{ContainerEntry, SessionStore};
use protocol::{ContainerEvent, EventsMessage};
use runtime::Runtime;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// Why open WebSockets are being closed by the server as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    No,
    /// Stopping with containers left running: clients should reconnect.
    Restart,
    /// Stopping and removing the containers.
    Stop,
}

pub type AppState = Arc<Shared>;

pub struct Shared {
    pub config: Config,
    pub runtime: Arc<Runtime>,
    pub sessions: Arc<SessionStore>,
    pub db: Db,
    /// Set once when the server stops; every socket closes on it.
    pub closing: watch::Sender<Closing>,
    /// Bounds the container creations running at once.
    pub create_gate: Semaphore,
    /// Claims of running shells from the warm pool take turns, first come
    /// first served: they take turns on the runtime's state lock anyway,
    /// which does not keep their order (see `routes::containers::create`).
    pub claim_gate: Semaphore,
    /// How fast each client may create sessions, containers and sockets.
    pub rate: RateLimits,
    /// When the warm pool is refilled.
    pub pool_refill: Arc<crate::refill::PoolRefill>,
}

impl Shared {
    pub fn new(config: Config, runtime: Runtime, db: Db) -> Shared {
        Shared {
            sessions: Arc::new(SessionStore::new(config.clone(), db.clone())),
            db,
            closing: watch::channel(Closing::No).0,
            create_gate: Semaphore::new(config.capacity.parallel_creates as usize),
            claim_gate: Semaphore::new(1),
            rate: RateLimits::new(&config.rate),
            pool_refill: Default::default(),
            runtime: Arc::new(runtime),
            config,
        }
    }

    /// Run a blocking runtime call off the async threads.
    pub async fn blocking<T, E>(
        &self,
        f: impl FnOnce(&Runtime) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let rt = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || f(&rt))
            .await
            .map_err(ApiError::internal)?
            .map_err(Into::into)
    }

    /// Kill and remove containers that already left their session, and tell
    /// the session's events sockets (if it still has any). Each record is
    /// marked first, so that a crash half-way makes a restart finish the
    /// removal rather than adopt what is left.
    pub async fn remove_containers(&self, session: &str, entries: Vec<Arc<ContainerEntry>>) {
        for entry in entries {
            let id = entry.id.clone();
            if let Err(e) = self.db.mark_removing(&id).await {
                tracing::error!(container = %id, error = %e, "marking a container as being removed");
            }
            runtime::failpoint::hit("delete.marked");
            let result = self.blocking(move |rt| rt.remove(&id, true)).await;
            match result {
                Ok(()) | Err(ApiError::ContainerNotFound) => {
                    if let Err(e) = self.db.delete_container(&entry.id).await {
                        tracing::error!(container = %entry.id, error = %e, "deleting a container record");
                    }
                    runtime::failpoint::hit("delete.record_deleted");
                    metrics::global()
                        .containers_removed
                        .fetch_add(1, Ordering::Relaxed);
                    self.sessions.publish(
                        session,
                        EventsMessage::Event {
                            event: ContainerEvent::Removed {
                                id: entry.id.clone(),
                            },
                            at_ms: runtime::state::now_ms(),
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(container = %entry.id, session, error = %e, "removing a container failed")
                }
            }
        }
    }

    /// End a session and remove its containers.
    pub async fn end_session(&self, session: &str) {
        if let Some(entries) = self.sessions.end(session) {
            // Without its session record, a restart removes what is left.
            if let Err(e) = self.db.delete_session(session).await {
                tracing::error!(session, error = %e, "deleting a session record");
            }
            self.remove_containers(session, entries).await;
        }
    }
}
