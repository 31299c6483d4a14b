//! Messages exchanged over [`super::channel`] while a container starts.

use serde::{Deserialize, Serialize};

/// Container process (init, or an exec'd process being set up) → supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// The pty master is attached to this message as an fd.
    PtyMaster,
    /// The host PID of an exec'd process (sent by the exec helper).
    ExecPid(i32),
    /// Setting up the container failed; nothing was exec'd.
    SetupFailed(String),
    /// The command could not be executed (e.g. not found).
    ExecFailed(String),
}

/// Supervisor → container process. Nothing needs saying yet; the type keeps
/// the channel typed in both directions (user-namespace id mapping will
/// answer here).
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    Continue,
}

/// Supervisor → whoever spawned it: the outcome of starting the container.
#[derive(Debug, Serialize, Deserialize)]
pub enum SpawnReport {
    Started {
        host_pid: u32,
        supervisor_pid: u32,
    },
    /// `exit_code` is what `docker run` would exit with (125 setup, 126/127 exec).
    Failed {
        error: String,
        exit_code: i32,
    },
    /// The container's main process exited (sent after auto-remove, if any).
    Exited {
        code: i32,
    },
}
