//! Start-up reconciliation: make the runtime's containers and the
//! database's records agree again after a restart or a crash.
//!
//! - A stored session still within its idle timeout and TTL is restored
//!   (its clocks continue from the stored times); an expired one is deleted.
//! - A container is adopted when its record is `live`, its session was
//!   restored and the runtime still has it: it goes back to its session and
//!   its exit watch resumes (the sampler picks it up by itself).
//! - Everything else is removed completely: records of containers that are
//!   gone or were being removed, and runtime containers without a live
//!   record (a create that died before its record was written, a delete that
//!   died half-way, a container whose session expired while we were down).
//! - The warm pool is drained and refilled: its entries are cheap, and a
//!   crash may have left one half-made.

use crate::db::{ContainerState, Loaded};
use crate::monitor;
use crate::sessions::ContainerEntry;
use crate::state::AppState;
use runtime::cgroups::Cgroup;
use std::collections::HashSet;
use std::sync::Arc;

/// What the reconciliation did (logged, and checked by tests).
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub sessions_restored: usize,
    pub sessions_expired: usize,
    pub containers_adopted: Vec<String>,
    pub containers_removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Runtime(#[from] runtime::ContainerError),
    #[error("reconciling: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub async fn run(state: &AppState, loaded: Loaded) -> Result<Report, ReconcileError> {
    let mut report = Report::default();
    let now = runtime::state::now_ms();
    let mut live = HashSet::new();
    for s in &loaded.sessions {
        if state.sessions.record_expired(s, now) {
            tracing::info!(session = %s.id, "a stored session expired while the server was down");
            state.db.delete_session(&s.id).await?;
            report.sessions_expired += 1;
        } else {
            state.sessions.restore(s);
            live.insert(s.id.clone());
            report.sessions_restored += 1;
        }
    }

    let rt = Arc::clone(&state.runtime);
    let records = loaded.containers;
    let candidates: Vec<_> = records
        .iter()
        .filter(|r| r.state == ContainerState::Live && live.contains(&r.session))
        .cloned()
        .collect();
    // The runtime's view of each candidate: its config, if it still exists.
    let configs = tokio::task::spawn_blocking(move || {
        candidates
            .into_iter()
            .filter_map(|r| {
                let config = rt.state_dir().container(&r.id).read_config().ok()?;
                Some((r, config))
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let adopted: HashSet<String> = configs.iter().map(|(r, _)| r.id.clone()).collect();
    for r in &records {
        if !adopted.contains(&r.id) {
            tracing::info!(container = %r.id, session = %r.session, "dropping the record of a container that is not adopted");
            state.db.delete_container(&r.id).await?;
        }
    }

    let rt = Arc::clone(&state.runtime);
    let keep = adopted.clone();
    let dropped: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
    let orphans = state.config.remove_orphans;
    report.containers_removed = tokio::task::spawn_blocking(move || {
        // Without `remove_orphans`, containers the server never recorded
        // (made with `gbx` in the same state dir) are left alone; half-made
        // ones (no config yet) and dropped records are still cleaned.
        let removed = rt.sweep(|id| {
            keep.contains(id)
                || (!orphans
                    && !dropped.contains(id)
                    && rt.state_dir().container(id).read_config().is_ok())
        });
        if let Err(e) = rt.drain_pool() {
            tracing::warn!(error = %e, "draining the warm pool left by an earlier run");
        }
        removed
    })
    .await??;

    for (r, config) in configs {
        let entry = ContainerEntry {
            socket: state.runtime.state_dir().container(&r.id).socket(),
            cgroup: Cgroup::open(&config.cgroup),
            id: r.id.clone(),
            name: r.name,
            memory_bytes: r.memory_bytes,
            spec: r.spec,
            counters: Default::default(),
        };
        if let Some(entry) = state.sessions.adopt(&r.session, entry) {
            tracing::info!(container = %r.id, session = %r.session, "adopted a container that outlived the restart");
            monitor::watch_exit(state, r.session, entry);
            report.containers_adopted.push(r.id);
        }
    }
    tracing::info!(
        sessions = report.sessions_restored,
        expired = report.sessions_expired,
        adopted = report.containers_adopted.len(),
        removed = report.containers_removed.len(),
        "reconciled with the state of the earlier run"
    );
    Ok(report)
}
