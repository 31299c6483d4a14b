//! Messages exchanged over [`super::channel`] while a container starts.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Container process (init, or an exec'd process being set up) → supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// In its cgroup and namespaces, waiting for [`ToChild::Go`].
    Parked,
    /// The pty master is attached to this message as an fd.
    PtyMaster,
    /// The host PID of an exec'd process (sent by the exec helper).
    ExecPid(i32),
    /// Setting up the container failed; nothing was exec'd.
    SetupFailed(String),
    /// The command could not be executed (e.g. not found).
    ExecFailed(String),
}

/// Supervisor → container process.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// Become this container. Fds ride along: the caller's stdin, stdout and
    /// stderr for [`StdioPlan::Inherit`], the pipe's write end for
    /// [`StdioPlan::Pipe`], none for [`StdioPlan::Tty`].
    Go(InitPlan),
    /// The user namespace is mapped and the process is in its cgroup: take
    /// root of the namespace and finish the early setup. The idmapped layer
    /// store rides along as an fd. With a rootfs (a warm container, built
    /// for the pool's image), build it and enter it now, before the claim.
    Mapped { rootfs: Option<RootfsSpec> },
}

/// The container's root filesystem: an overlay of the image's layers and
/// the RW layer, with /proc, /dev and /sys, entered with pivot_root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootfsSpec {
    /// Image layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the overlay is mounted (inside the container's namespace only).
    pub target: PathBuf,
    pub mount_cgroup2: bool,
}

/// What the container's process becomes, sent once the container is claimed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitPlan {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub hostname: String,
    /// The rootfs to build and enter; `None` when it was built while the
    /// container was parked (a warm start).
    pub rootfs: Option<RootfsSpec>,
    pub stdio: StdioPlan,
    pub tty_size: (u16, u16),
    /// Run Glassbox's init as PID 1 (else the command is PID 1 itself).
    pub init: bool,
    /// Configure `eth0` (already moved into the namespace by the supervisor).
    #[serde(default)]
    pub network: Option<crate::network::inside::InsidePlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdioPlan {
    /// A pty made inside the container.
    Tty,
    /// The caller's own stdio (three fds attached).
    Inherit,
    /// stdout and stderr into the supervisor's pipe (one fd attached).
    Pipe,
}

/// Caller → supervisor: this prepared container is now the one in `dir`
/// (whose `config.json` says what it is). With `inherit_stdio`, the caller's
/// stdin, stdout and stderr are attached as fds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claim {
    pub dir: PathBuf,
    pub inherit_stdio: bool,
    /// Once the container runs, start warm containers up to this pool.
    /// The supervisor does it so that the caller's start is not slowed.
    pub refill: Option<Refill>,
}

/// A warm pool to keep filled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refill {
    pub state_root: PathBuf,
    pub cgroup_parent: Option<String>,
    pub idle_secs: u64,
    pub target: usize,
    /// The pool's image layers, lowest first: entries are built for it.
    pub layers: Vec<PathBuf>,
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
