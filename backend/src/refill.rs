//! When the warm pool is refilled. A claim does not refill at once (see
//! `RuntimeOptions::refill_on_claim`): in a burst of creates, the entries
//! being made would compete for the CPU and the state lock with the very
//! creates they are made for. The server refills when creates pause, a few
//! entries per tick, and never once it has begun to stop (the pool is
//! drained then, and an entry made after the drain would outlive us).

use crate::state::AppState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the refiller looks at the pool.
const TICK: Duration = Duration::from_millis(100);
/// Creates pause when none began for this long.
const QUIET: Duration = Duration::from_millis(200);
/// Entries started per tick at most: a refill of the whole pool spreads
/// over a second or so instead of starting every supervisor at once.
const PER_TICK: usize = 4;

#[derive(Default)]
pub struct PoolRefill {
    last_create_ms: AtomicU64,
    /// Held while entries are made; true once the server stops.
    stopped: Mutex<bool>,
}

impl PoolRefill {
    /// A create begins: hold refills back.
    pub fn note_create(&self) {
        self.last_create_ms
            .store(runtime::state::now_ms(), Ordering::Relaxed);
    }

    fn quiet(&self) -> bool {
        self.since_last_create() >= QUIET
    }

    fn since_last_create(&self) -> Duration {
        let last = self.last_create_ms.load(Ordering::Relaxed);
        Duration::from_millis(runtime::state::now_ms().saturating_sub(last))
    }

    /// Wait until no create has begun for `quiet`, or for `at_most`:
    /// for work that a burst of creates should not have to share the CPU
    /// with, but that must not wait for ever under a steady stream of them.
    pub async fn creates_pause(&self, quiet: Duration, at_most: Duration) {
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            let since = self.since_last_create();
            if since >= quiet {
                return;
            }
            let wake = tokio::time::Instant::now() + (quiet - since);
            if wake >= deadline {
                tokio::time::sleep_until(deadline).await;
                return;
            }
            tokio::time::sleep_until(wake).await;
        }
    }

    /// No refill starts after this returns, and none is under way.
    pub fn stop(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        *stopped = true;
    }

    /// Start up to `at_most` entries unless the server has stopped, and
    /// no more once creates resume.
    fn refill(&self, rt: &runtime::Runtime, at_most: usize) {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if !*stopped {
            rt.refill_pool_by(at_most, &|| self.quiet());
        }
    }
}

pub async fn refiller(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if !state.pool_refill.quiet() || !state.runtime.pool_short() {
            continue;
        }
        let (refill, rt) = (Arc::clone(&state.pool_refill), Arc::clone(&state.runtime));
        let job = tokio::task::spawn_blocking(move || refill.refill(&rt, PER_TICK));
        if let Err(e) = job.await {
            tracing::error!(error = %e, "refilling the warm pool failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    async fn pause(refill: &PoolRefill, quiet: Duration, at_most: Duration) -> Duration {
        let t = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(10),
            refill.creates_pause(quiet, at_most),
        )
        .await
        .expect("the wait ends");
        t.elapsed()
    }

    #[tokio::test]
    async fn work_waits_for_creates_to_pause_but_not_for_ever() {
        let (ms, s) = (Duration::from_millis, Duration::from_secs);
        let refill = Arc::new(PoolRefill::default());
        // No create yet: nothing to wait for.
        assert!(pause(&refill, ms(100), s(5)).await < s(1));
        // A create just began: wait until none has for the quiet time.
        refill.note_create();
        assert!(pause(&refill, ms(100), s(5)).await >= ms(95));
        // Creates keep beginning: wait only as long as allowed.
        let stream = {
            let refill = Arc::clone(&refill);
            tokio::spawn(async move {
                loop {
                    refill.note_create();
                    tokio::time::sleep(ms(10)).await;
                }
            })
        };
        refill.note_create();
        let waited = pause(&refill, s(2), ms(300)).await;
        stream.abort();
        assert!(waited >= ms(300) && waited < s(2), "{waited:?}");
    }
}
