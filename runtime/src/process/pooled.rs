//! A shell entry's server while its container waits in the warm pool (see
//! [`crate::pool`]): the container already runs, and is claimed by renaming
//! its directory from `pool/<id>` to `containers/<id>`. The supervisor
//! learns of the claim by looking, about once a second, and from then on
//! records the container's exit in its new directory. Unclaimed after the
//! idle timeout, or if its shell exits first, the entry removes itself.

use crate::pool::{self, PoolEntry};
use crate::state::{ContainerDir, StateDir};
use std::time::{Duration, Instant};

/// How often a pooled server looks whether it was claimed.
pub const CLAIM_CHECK: Duration = Duration::from_secs(1);

pub struct Pooled {
    state: StateDir,
    entry: PoolEntry,
    deadline: Instant,
}

/// Where a pooled container stands.
pub enum Standing {
    /// Still in the pool.
    Waiting,
    /// Claimed: this is its directory now.
    Claimed(ContainerDir),
    /// Neither in the pool nor claimed: drained, or removed as idle.
    Gone,
}

impl Pooled {
    pub fn new(state: StateDir, entry: PoolEntry, idle: Duration) -> Pooled {
        Pooled {
            state,
            entry,
            deadline: Instant::now() + idle,
        }
    }

    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// Whether the entry was claimed; an entry idle for too long removes
    /// itself here (its container is killed with its cgroup).
    pub fn standing(&self) -> Standing {
        if pool::entry_dir(&self.state, &self.entry.id).exists() {
            if Instant::now() < self.deadline || !self.remove_unclaimed() {
                return Standing::Waiting;
            }
            return Standing::Gone;
        }
        let claimed = self.state.container(&self.entry.id);
        if claimed.dir.exists() {
            Standing::Claimed(claimed)
        } else {
            Standing::Gone
        }
    }

    /// Remove the entry unless a claim took it first (both hold the state
    /// lock). True if it was removed.
    pub fn remove_unclaimed(&self) -> bool {
        let Ok(_lock) = self.state.lock() else {
            return false;
        };
        if !pool::entry_dir(&self.state, &self.entry.id).exists() {
            return false;
        }
        pool::discard_self(&self.state, &self.entry);
        true
    }
}
