//! The escape suite: as root inside a fresh busybox container per class, try
//! every escape and denial-of-service class of the threat model
//! (docs/testing.md lists them), check that each attempt fails the way a
//! defence makes it fail, and that the host shows nothing changed. Each class
//! prints a table (class | attempt | result) and fails if any row escaped.
//!
//! Attempts that could harm a shared host if they worked are written so that
//! success is still visible but harmless: a kernel knob is written with its
//! own current value, binfmt_misc gets an invalid rule, a release agent is
//! opened for writing but given nothing.

mod bombs;
#[path = "../common/mod.rs"]
mod common;
mod host;
mod isolation;
mod kernel;
mod net;
mod report;

use common::{wait_for, Env};
use host::{HostSnapshot, MOUNT_MARK};
use report::{
    Report, Run, EACCES, ECONNREFUSED, ENETUNREACH, ENOENT, ENOSPC, ENOSYS, ENXIO, EPERM, EROFS,
    ETIMEDOUT,
};
use std::time::Duration;

/// Limits every container of the suite runs with (the server's defaults are
/// of the same order), so a bomb that works still cannot take the host down.
const LIMITS: &[&str] = &["--pids-limit", "64", "--disk", "32m"];
const MEMORY: &str = "128m";

const ESRCH: (&str, &str) = ("ESRCH", "No such process");
const EBUSY: (&str, &str) = ("EBUSY", "Device or resource busy");
/// busybox mount's words for EPERM and EACCES alike.
const MOUNT_DENIED: (&str, &str) = ("EPERM", "permission denied (are you root?)");
/// ash's words for ENOENT when a redirection cannot create its file.
const ENOENT_SH: (&str, &str) = ("ENOENT", "nonexistent directory");

/// A container of one class, removed (with everything in it) on drop.
struct Victim {
    env: Env,
    id: String,
}

impl Victim {
    fn start() -> Victim {
        Victim::with_memory(MEMORY)
    }

    fn with_memory(memory: &str) -> Victim {
        let env = Env::new();
        let mut args: Vec<&str> = LIMITS.to_vec();
        args.extend_from_slice(&["-m", memory]);
        let id = env.detached(&args, &["sleep", "600"]);
        Victim { env, id }
    }

    /// Run a busybox shell snippet as root inside.
    fn sh(&self, snippet: &str) -> Run {
        run_of(self.env.run(&["exec", &self.id, "sh", "-c", snippet]))
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.env.cmd(&["rm", "-f", &self.id]).output();
    }
}

fn run_of((code, out, err): (i32, String, String)) -> Run {
    Run {
        code,
        out: out + &err,
    }
}
