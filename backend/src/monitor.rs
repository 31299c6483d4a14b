//! Background work: the stats sampler that feeds `/api/v1/events`, the
//! per-container exit watcher, the reaper of expired sessions and the warm
//! pool's refiller.
//!
//! The sampler reads each watched container's cgroup once per tick, however
//! many sockets watch it, and publishes the snapshot through a `watch`
//! channel (latest value wins: a slow socket skips samples, never queues
//! them). OOM kills and refused forks are the increases of the cgroup's
//! counters between two samples.

use crate::metrics;
use crate::sessions::{ContainerEntry, Watched};
use crate::state::AppState;
use crate::supervisor;
use protocol::{ContainerEvent, ContainerState, EventsMessage};
use runtime::cgroups::{EventCounters, StatsReader};
use runtime::events::limit_events;
use runtime::process::wire::{Reply, Request};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub fn spawn_background(state: &AppState) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(sampler(Arc::clone(state))),
        tokio::spawn(reaper(Arc::clone(state))),
        tokio::spawn(rate_pruner(Arc::clone(state))),
        tokio::spawn(crate::refill::refiller(Arc::clone(state))),
    ]
}

/// Keeps the rate limiters' per-address state to the addresses seen lately.
async fn rate_pruner(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let kept = state.rate.prune();
        tracing::trace!(kept, "rate limiter state pruned");
    }
}

async fn sampler(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.stats_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Watched containers' stats files stay open between ticks (see
    // `runtime::cgroups::StatsReader`); a container nobody watches any more
    // drops its reader, and its fds, at the next tick.
    let mut readers = Readers::new();
    loop {
        tick.tick().await;
        let watched = state.sessions.watched();
        if watched.is_empty() {
            readers.clear();
            continue;
        }
        // One blocking job per tick reads every watched cgroup.
        let job = tokio::task::spawn_blocking(move || {
            sample(watched, &mut readers);
            readers
        });
        readers = match job.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "stats sampling failed");
                Readers::new()
            }
        };
    }
}

type Readers = HashMap<String, StatsReader>;

fn sample(watched: Vec<Watched>, readers: &mut Readers) {
    let now = runtime::state::now_ms();
    let mut seen = HashSet::new();
    for (stats_tx, events_tx, entries) in watched {
        let mut snapshot = Vec::with_capacity(entries.len());
        for entry in entries {
            seen.insert(entry.id.clone());
            let reader = readers
                .entry(entry.id.clone())
                .or_insert_with(|| StatsReader::new(entry.cgroup.clone()));
            // A container being removed has no cgroup any more: skip it.
            let Ok(stats) = reader.stats() else {
                readers.remove(&entry.id);
                continue;
            };
            let now_counters = EventCounters {
                oom_kills: stats.oom_kills,
                pids_limit_hits: stats.pids_limit_hits,
            };
            let before = std::mem::replace(
                &mut *entry.counters.lock().unwrap_or_else(|p| p.into_inner()),
                now_counters,
            );
            for event in limit_events(
                &entry.id,
                before,
                now_counters,
                stats.memory_limit,
                stats.pids_limit,
            ) {
                let _ = events_tx.send(EventsMessage::Event { event, at_ms: now });
            }
            snapshot.push((entry.id.clone(), stats));
        }
        stats_tx.send_replace(Arc::new(snapshot));
    }
    readers.retain(|id, _| seen.contains(id));
}

/// An exit watch connects once no create has begun for this long...
const EXIT_WATCH_QUIET: Duration = Duration::from_millis(100);
/// ...or this long after its container was made, whichever comes first.
const EXIT_WATCH_AT_MOST: Duration = Duration::from_secs(1);

/// Learn when a container's main process exits (the supervisor's `Watch`)
/// and tell the session.
///
/// The watch connects once creates pause: in a burst of creates, each
/// watch's connection and its supervisor's accept (3-5 % of the burst's
/// CPU on two cores) would share the CPU with the creates still waiting
/// for their terminal. An exit before the watch connects is not lost: the
/// supervisor records it, and the fallback below reads it.
pub fn watch_exit(state: &AppState, session: String, entry: Arc<ContainerEntry>) {
    let state = Arc::clone(state);
    tokio::spawn(async move {
        state
            .pool_refill
            .creates_pause(EXIT_WATCH_QUIET, EXIT_WATCH_AT_MOST)
            .await;
        let told = match wait_exit(&entry).await {
            Ok(code) => code,
            Err(e) => {
                tracing::debug!(container = %entry.id, error = %e, "exit watch ended without an exit");
                None
            }
        };
        // A supervisor tells only the watchers it has: one whose command was
        // over before we connected (or while we did) has gone without a
        // word. What it recorded says how the container ended, unless the
        // container is being removed (its session has let go of it), which
        // also ends the supervisor.
        let code = match told {
            Some(code) => code,
            None if state.sessions.container(&session, &entry.id).is_err() => return,
            None => match recorded_exit(&state, &entry.id).await {
                Some(code) => code,
                None => return,
            },
        };
        tracing::info!(container = %entry.id, session = %session, code, "container exited");
        state.sessions.publish(
            &session,
            EventsMessage::Event {
                event: ContainerEvent::Exited {
                    id: entry.id.clone(),
                    code,
                },
                at_ms: runtime::state::now_ms(),
            },
        );
    });
}

async fn wait_exit(entry: &ContainerEntry) -> Result<Option<i32>, supervisor::SupervisorError> {
    // One connection per container, for its exit. (A supervisor keeps a
    // finished container around only while its spawner still holds the
    // spawn channel, for a foreground `gbx run -t` about to attach; the
    // server drops that handle as soon as the create returns.)
    let (mut reader, mut writer) = supervisor::connect_control(&entry.socket).await?;
    writer.request(Request::Watch).await?;
    while let Some(frame) = reader.next().await? {
        if let supervisor::Incoming::Control(Reply::Exit { code }) = frame {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// The exit code a gone supervisor recorded (-1 if it died before it could):
/// None while the container still runs, or once it has been removed.
async fn recorded_exit(state: &AppState, id: &str) -> Option<i32> {
    let id = id.to_string();
    let info = state.blocking(move |rt| rt.inspect(&id)).await.ok()?;
    (info.state == ContainerState::Exited).then(|| info.exit_code.unwrap_or(-1))
}

async fn reaper(state: AppState) {
    let every = Duration::from_millis(state.config.sessions.reap_interval_ms.max(50));
    loop {
        tokio::time::sleep(every).await;
        for (session, containers) in state.sessions.end_expired() {
            tracing::info!(session = %session, containers = containers.len(), "session expired");
            metrics::global()
                .sessions_expired
                .fetch_add(1, Ordering::Relaxed);
            // Without its record, a crash before the removal ends still
            // removes what is left at the next start.
            if let Err(e) = state.db.delete_session(&session).await {
                tracing::error!(session = %session, error = %e, "deleting an expired session's record");
            }
            state.remove_containers(&session, containers).await;
        }
    }
}
