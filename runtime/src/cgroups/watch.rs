//! Readiness for "OOM kills or pids-limit hits may have changed".
//!
//! One epoll fd gathers the sources:
//! - v2: inotify (`IN_MODIFY`) on `memory.events` and `pids.events`; the kernel notifies on every
//!   change of these files.
//! - v1: an eventfd registered through `cgroup.event_control` on `memory.oom_control` (signalled
//!   on OOM in the cgroup, and when the cgroup is removed). `pids.events` is watched with inotify
//!   as well, but the kernel does not notify it on v1 (checked on 6.18: `pids_event()` only
//!   notifies the v2 files), so [`CgroupWatch::covers_pids`] is false on v1.
//!
//! Readiness only says "look again": the caller reads [`super::Cgroup::event_counters`] and compares.
//! When a source is missing ([`CgroupWatch::covers_oom`] / [`CgroupWatch::covers_pids`] false,
//! e.g. a kernel without the v1 memory event interface), the caller must also poll
//! `event_counters()` on a timer.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::{io_err, CgroupError};

pub struct CgroupWatch {
    epoll: Epoll,
    inotify: Inotify,
    eventfd: Option<EventFd>,
    covers_oom: bool,
    covers_pids: bool,
}

fn nix_err(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> CgroupError {
    let f = io_err(op, path);
    move |e| f(e.into())
}

impl CgroupWatch {
    fn new() -> Result<Self, CgroupError> {
        let here = Path::new("<watch>");
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(nix_err("epoll_create", here))?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(nix_err("inotify_init", here))?;
        epoll
            .add(inotify.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))
            .map_err(nix_err("epoll_ctl", here))?;
        Ok(CgroupWatch {
            epoll,
            inotify,
            eventfd: None,
            covers_oom: false,
            covers_pids: false,
        })
    }

    /// inotify on `file`; false (and a debug log) when the file does not exist.
    fn watch_file(&mut self, file: &Path) -> Result<bool, CgroupError> {
        match self.inotify.add_watch(file, AddWatchFlags::IN_MODIFY) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => {
                tracing::debug!(file = %file.display(), "not watchable: file missing");
                Ok(false)
            }
            Err(e) => Err(nix_err("inotify_add_watch", file)(e)),
        }
    }

    pub(crate) fn v2(dir: &Path) -> Result<Self, CgroupError> {
        let mut w = Self::new()?;
        w.covers_oom = w.watch_file(&dir.join("memory.events"))?;
        w.covers_pids = w.watch_file(&dir.join("pids.events"))?;
        Ok(w)
    }

    pub(crate) fn v1(memory: Option<&Path>, pids: Option<&Path>) -> Result<Self, CgroupError> {
        let mut w = Self::new()?;
        if let Some(dir) = memory {
            w.covers_oom = w.register_oom_eventfd(dir)?;
        }
        if let Some(dir) = pids {
            // Harmless where the kernel does notify; never claimed as coverage (see module docs).
            w.watch_file(&dir.join("pids.events"))?;
        }
        Ok(w)
    }

    /// `echo "<eventfd> <fd of memory.oom_control>" > cgroup.event_control`.
    fn register_oom_eventfd(&mut self, dir: &Path) -> Result<bool, CgroupError> {
        let oom = dir.join("memory.oom_control");
        let ctl = dir.join("cgroup.event_control");
        if !oom.exists() || !ctl.exists() {
            tracing::debug!(dir = %dir.display(), "no v1 memory event interface");
            return Ok(false);
        }
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(nix_err("eventfd", &ctl))?;
        let oom_file = File::open(&oom).map_err(io_err("open", &oom))?;
        let line = format!("{} {}", efd.as_raw_fd(), oom_file.as_raw_fd());
        let mut ctl_file = File::options()
            .write(true)
            .open(&ctl)
            .map_err(io_err("open", &ctl))?;
        ctl_file
            .write_all(line.as_bytes())
            .map_err(io_err("write", &ctl))?;
        self.epoll
            .add(efd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))
            .map_err(nix_err("epoll_ctl", &ctl))?;
        self.eventfd = Some(efd);
        Ok(true)
    }

    /// Whether OOM kills make this fd readable (else poll `event_counters()` on a timer).
    pub fn covers_oom(&self) -> bool {
        self.covers_oom
    }

    /// Whether pids-limit hits make this fd readable (else poll `event_counters()` on a timer).
    pub fn covers_pids(&self) -> bool {
        self.covers_pids
    }

    /// Consumes pending readiness so the fd blocks again until the next change.
    pub fn drain(&mut self) {
        while let Ok(ev) = self.inotify.read_events() {
            if ev.is_empty() {
                break;
            }
        }
        if let Some(efd) = &self.eventfd {
            while efd.read().is_ok() {}
        }
    }

    /// Waits up to `timeout` for readiness; true if ready. Does not drain.
    pub fn wait(&self, timeout: Duration) -> Result<bool, CgroupError> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut events = [EpollEvent::empty(); 2];
        match self.epoll.wait(&mut events, ms) {
            Ok(n) => Ok(n > 0),
            Err(Errno::EINTR) => Ok(false),
            Err(e) => Err(nix_err("epoll_wait", Path::new("<watch>"))(e)),
        }
    }
}

impl AsFd for CgroupWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }
}
