//! Live events of one container: OOM kills and refused forks (from the
//! cgroup's counters, woken by the cgroup's notifications where the kernel
//! gives them) and the exit of its main process (from the supervisor).

use crate::cgroups::{Cgroup, CgroupWatch, EventCounters};
use crate::process::client::Client;
use crate::process::wire::{Frame, Reply, Request};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use protocol::ContainerEvent;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Counters are re-read at least this often: not every kernel notifies
/// every counter (cgroup v1 never notifies `pids.events`).
const POLL_INTERVAL: Duration = Duration::from_millis(200);

pub struct EventMonitor {
    id: String,
    cgroup: Cgroup,
    watch: Option<CgroupWatch>,
    exit: Option<Client>,
    last: EventCounters,
    memory_limit: Option<u64>,
    pids_limit: Option<u64>,
    exited: bool,
}

impl EventMonitor {
    /// Start watching; counters already non-zero are not reported again.
    pub fn new(
        id: String,
        cgroup: Cgroup,
        socket: &std::path::Path,
        limits: protocol::Limits,
    ) -> EventMonitor {
        let watch = cgroup.watch().ok();
        let last = cgroup.event_counters().unwrap_or_default();
        let exit = Client::connect(socket)
            .ok()
            .and_then(|mut c| c.send(Request::Watch).ok().map(|_| c));
        let exited = exit.is_none();
        EventMonitor {
            id,
            cgroup,
            watch,
            exit,
            last,
            memory_limit: limits.memory_bytes,
            pids_limit: limits.pids.map(u64::from),
            exited,
        }
    }

    /// True once the container's main process has exited (or was already gone).
    pub fn exited(&self) -> bool {
        self.exited
    }

    /// Wait up to `timeout` and return what happened meanwhile (possibly nothing).
    pub fn next(&mut self, timeout: Duration) -> Vec<ContainerEvent> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(POLL_INTERVAL);
            let mut exit_readable = false;
            {
                let mut fds = Vec::new();
                if let Some(w) = &self.watch {
                    fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
                }
                if let Some(c) = &self.exit {
                    fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
                }
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                let _ = poll(&mut fds, PollTimeout::from(ms));
                if self.exit.is_some() {
                    exit_readable = fds
                        .last()
                        .and_then(|f| f.revents())
                        .is_some_and(|r| !r.is_empty());
                }
            }
            if let Some(w) = &mut self.watch {
                w.drain();
            }
            self.diff_counters(&mut events);
            if exit_readable {
                self.read_exit(&mut events);
            }
            if !events.is_empty() || Instant::now() >= deadline {
                return events;
            }
        }
    }

    fn diff_counters(&mut self, events: &mut Vec<ContainerEvent>) {
        let Ok(now) = self.cgroup.event_counters() else {
            return;
        };
        events.extend(limit_events(
            &self.id,
            self.last,
            now,
            self.memory_limit,
            self.pids_limit,
        ));
        self.last = now;
    }

    fn read_exit(&mut self, events: &mut Vec<ContainerEvent>) {
        let Some(client) = &mut self.exit else { return };
        let _ = client.set_read_timeout(Some(Duration::from_millis(100)));
        match client.next_frame() {
            Ok(Frame::Control(Reply::Exit { code })) => {
                // OOM kills that ended the container come before its exit.
                self.diff_counters(events);
                events.push(ContainerEvent::Exited {
                    id: self.id.clone(),
                    code,
                });
                self.exit = None;
                self.exited = true;
            }
            Ok(_) => {}
            Err(_) => {
                self.exit = None;
                self.exited = true;
            }
        }
    }
}

/// The limit events between two readings of a cgroup's counters: an OOM
/// kill and/or a refused fork, each with the running total and its limit.
pub fn limit_events(
    id: &str,
    before: EventCounters,
    now: EventCounters,
    memory_limit: Option<u64>,
    pids_limit: Option<u64>,
) -> Vec<ContainerEvent> {
    let mut events = Vec::new();
    if now.oom_kills > before.oom_kills {
        events.push(ContainerEvent::OomKill {
            id: id.to_string(),
            count: now.oom_kills,
            limit_bytes: memory_limit,
        });
    }
    if now.pids_limit_hits > before.pids_limit_hits {
        events.push(ContainerEvent::PidsLimit {
            id: id.to_string(),
            count: now.pids_limit_hits,
            limit: pids_limit,
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_increases_are_events() {
        let c = |oom_kills, pids_limit_hits| EventCounters {
            oom_kills,
            pids_limit_hits,
        };
        assert!(limit_events("x", c(1, 2), c(1, 2), None, None).is_empty());
        let ev = limit_events("x", c(0, 2), c(1, 5), Some(64 << 20), Some(32));
        assert_eq!(
            ev,
            vec![
                ContainerEvent::OomKill {
                    id: "x".into(),
                    count: 1,
                    limit_bytes: Some(64 << 20)
                },
                ContainerEvent::PidsLimit {
                    id: "x".into(),
                    count: 5,
                    limit: Some(32)
                },
            ]
        );
    }
}
