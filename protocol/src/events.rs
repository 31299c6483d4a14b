//! Lifecycle and limit events, and the `/api/v1/events` stream.

use crate::stats::Stats;
use serde::{Deserialize, Serialize};

/// Something that happened to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContainerEvent {
    Created {
        id: String,
    },
    Exited {
        id: String,
        code: i32,
    },
    /// The OOM killer killed a process: `count` is the cgroup's running total.
    OomKill {
        id: String,
        count: u64,
        limit_bytes: Option<u64>,
    },
    /// A fork was refused by the pids limit: `count` is the running total.
    PidsLimit {
        id: String,
        count: u64,
        limit: Option<u64>,
    },
    Removed {
        id: String,
    },
}

impl ContainerEvent {
    pub fn container_id(&self) -> &str {
        match self {
            ContainerEvent::Created { id }
            | ContainerEvent::Exited { id, .. }
            | ContainerEvent::OomKill { id, .. }
            | ContainerEvent::PidsLimit { id, .. }
            | ContainerEvent::Removed { id } => id,
        }
    }
}

/// A message on the events WebSocket, server to client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventsMessage {
    Stats { id: String, stats: Stats },
    Event { event: ContainerEvent, at_ms: u64 },
}
