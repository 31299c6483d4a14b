//! Crash switches for the crash-consistency tests.
//!
//! `GLASSBOX_CRASH_AT=<step>` (read once, at the first check) makes the
//! process SIGKILL itself when it reaches that step: exactly what a `kill -9`
//! or an OOM kill of the server does at the worst moment, with no
//! destructor, no unwinding and no flush. The steps are named in the code
//! that crosses them (`hit("create.cgroup_made")`). Unset, a check is one
//! load of an initialised `OnceLock`.
//!
//! A plain environment switch rather than the `fail` crate: the tests must
//! kill a real server process (not panic a task that tokio would catch),
//! and a switch that needs no cargo feature tests the very binary that
//! operators run.

use std::sync::OnceLock;

pub const ENV: &str = "GLASSBOX_CRASH_AT";

/// Steps named with this prefix are a supervisor's: the switch is passed on
/// to the supervisors a process spawns (and to nobody else's steps).
pub const SUPERVISOR_STEP: &str = "supervisor.";

/// Take the switch off `cmd` (a supervisor about to be spawned) unless it
/// names a supervisor's step.
pub fn pass_to_supervisor(cmd: &mut std::process::Command) {
    if !armed().is_some_and(|s| s.starts_with(SUPERVISOR_STEP)) {
        cmd.env_remove(ENV);
    }
}

fn armed() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Die here if the crash switch names `step`.
pub fn hit(step: &str) {
    if armed() == Some(step) {
        tracing::warn!(step, "crash switch: killing this process");
        // SIGKILL cannot be caught: nothing runs after this.
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
        // Unreachable in practice; never continue past an armed step.
        std::process::abort();
    }
}
