//! Start-up reconciliation of the state dir: remove the containers the
//! caller no longer wants, and everything a create or remove that died
//! half-way (a crashed or `kill -9`ed server) left on the host.
//!
//! What a container can leave, and how each is found again without any
//! record but its directory `containers/<id>`:
//! - its config (`config.json`): then an ordinary forced remove;
//! - no config yet: the cgroup is derived from the id (`Cgroup::planned`),
//!   the RW layer is `<dir>/rw`;
//! - a claimed warm entry (its `pool.json` stays with it): its record
//!   names the cgroup and the supervisor;
//! - supervisors: every one has its directory on its command line, so a
//!   scan of `/proc` finds them even before they wrote their pid anywhere.

use crate::cgroups::Cgroup;
use crate::container::{ContainerError, Runtime};
use crate::pool::{self, PoolEntry};
use crate::process::supervisor::{cleanup, FORGOTTEN_PREFIX};
use crate::state::{self, ContainerDir};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

impl Runtime {
    /// Remove every container whose id `keep` refuses, completely; returns
    /// the ids removed. Containers kept are not touched.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, ContainerError> {
        let mut removed = Vec::new();
        for id in self.state_dir().container_ids()? {
            if keep(&id) {
                continue;
            }
            let dir = self.state_dir().container(&id);
            tracing::info!(container = %id, "removing a container no session owns");
            if dir.read_config().is_err() || self.remove(&id, true).is_err() {
                self.scrub(&id, &dir);
            }
            // Whatever path was taken, no supervisor of it may stay (a
            // claimed warm one still names its old `pool/<id>`).
            kill_supervisors_of(&dir.dir);
            kill_supervisors_of(&pool::entry_dir(self.state_dir(), &id));
            if dir.dir.exists() {
                self.scrub(&id, &dir);
            }
            removed.push(id);
        }
        self.remove_forgotten();
        Ok(removed)
    }

    /// Directories of removed containers that a supervisor renamed out of
    /// the listing but died before deleting (see `supervisor::Forgotten`).
    /// They hold files only: the cgroup and mounts went first.
    fn remove_forgotten(&self) {
        let containers = self.state_dir().containers();
        let Ok(rd) = std::fs::read_dir(&containers) else {
            return;
        };
        for entry in rd.filter_map(|e| e.ok()) {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(FORGOTTEN_PREFIX)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Remove a container's leftovers without trusting its records.
    fn scrub(&self, id: &str, dir: &ContainerDir) {
        kill_supervisors_of(&dir.dir);
        let pooled: Option<PoolEntry> = state::read_json(&dir.dir.join("pool.json")).ok();
        if let Some(entry) = &pooled {
            pool::kill_supervisor(entry);
        }
        let cgroup = match (&pooled, dir.read_config()) {
            (_, Ok(config)) => Some(Cgroup::open(&config.cgroup)),
            (Some(entry), _) => Some(Cgroup::open(&entry.cgroup)),
            (None, Err(_)) => Cgroup::planned(&self.cgroup_parent(), id).ok(),
        };
        let errors = match cgroup {
            Some(cg) => cleanup(dir, &cg, true),
            None => {
                let _ = crate::rootfs::rw::remove(dir);
                std::fs::remove_dir_all(&dir.dir)
                    .err()
                    .map(|e| e.to_string())
                    .into_iter()
                    .collect()
            }
        };
        for e in errors {
            tracing::warn!(container = %id, error = %e, "sweeping a half-made container");
        }
    }
}

/// Pids of the supervisors serving `dir` (their command line names it).
pub fn supervisors_of(dir: &Path) -> Vec<i32> {
    let want = dir.as_os_str().as_bytes();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|b| *b == 0).next() == Some(b"glassbox-supervisor".as_slice())
                    && c.split(|b| *b == 0).any(|arg| arg == want)
            })
        })
        .collect()
}

fn kill_supervisors_of(dir: &Path) {
    for pid in supervisors_of(dir) {
        tracing::info!(pid, dir = %dir.display(), "killing a supervisor of a removed container");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
