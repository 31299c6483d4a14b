//! The Glassbox container engine.
//!
//! A library with no HTTP in it. It makes containers out of Linux primitives:
//! namespaces ([`namespaces`]), cgroups v1 and v2 ([`cgroups`]), an overlay
//! root filesystem over read-only image layers ([`image`], [`rootfs`]), a PTY
//! ([`tty`]) and a small init as PID 1 ([`process`]); every process in a
//! container is confined ([`security`]). Each container is owned
//! by a per-container supervisor process that outlives whoever started it.
//!
//! Any binary that uses this crate must call [`process::supervisor_entrypoint`]
//! first thing in `main`: the supervisor is a re-exec of that same binary.

pub mod cgroups;
pub mod container;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod image;
pub mod kmsg;
pub mod namespaces;
pub mod network;
pub mod pool;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod state;
pub mod sweep;
pub mod tty;
pub mod userns;

pub use container::{ContainerError, CreateOptions, Runtime, RuntimeOptions, Started};
pub use error::{Error, Result};
