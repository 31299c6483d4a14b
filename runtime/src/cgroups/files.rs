//! Where stats files are read from: opened afresh for every read, or kept
//! open and read again with pread(2).
//!
//! Why keep them open: a sampler reading 500 containers at 4 Hz reads about
//! 24,000 cgroup files a second on v1 (12 per container). Opening a file in
//! cgroupfs walks its path and allocates a file; reading an open one again
//! regenerates its text only. Measured on the development host: about 50 µs
//! per container sample opening each file, about 10 µs with pread on open
//! fds. The price is the fds: 12 per sampled container on v1, 10 on v2.
//!
//! Limits change only when someone writes them (Glassbox never does after
//! the create), so a reader takes them from the cgroup every
//! [`LIMITS_EVERY`] reads only: a third of the files on v1. I/O bytes and
//! the memory peak are read every [`SLOW_EVERY`] (once a second at 4 Hz). Measured at 500
//! containers and 4 Hz, what dominates is not the syscalls but touching
//! thousands of distinct kernfs files per tick with cold caches, so every
//! file not read counts, and the user-space side must stay small: a file is
//! found by its static name in a short list, and its text lands in a buffer
//! kept from sample to sample.
//!
//! The event counters (OOM kills, refused forks) are read every sample only
//! while a container is near its memory or pids limit ([`near_limit`]),
//! which is where those events happen; otherwise every [`SLOW_EVERY`]
//! samples. The counters are cumulative, so a spike between two samples of
//! a container far from its limits is reported up to a second late, never
//! lost. That is two files of six per sample on an idle fleet.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use protocol::Stats;

use super::{io_err, read_opt, Cgroup, CgroupError};

/// Limit files are re-read every this many samples (10 s at 4 Hz), so a
/// limit changed under a live reader shows within that.
pub const LIMITS_EVERY: u32 = 40;

/// Counters a person reads as a trend, not a tick (I/O bytes, the memory
/// peak): re-read every this many samples (1 s at 4 Hz). On v1 the blkio
/// file walks every device of the cgroup, the dearest read of a sample.
pub const SLOW_EVERY: u32 = 4;

/// Files re-read only every [`SLOW_EVERY`] samples.
const SLOW_FILES: [&str; 4] = [
    "blkio.throttle.io_service_bytes",
    "io.stat",
    "memory.max_usage_in_bytes",
    "memory.peak",
];

/// Event counters: read every sample near a limit, else every [`SLOW_EVERY`].
const EVENT_FILES: [&str; 3] = ["memory.oom_control", "memory.events", "pids.events"];

/// Usage at or above this share of a limit (in percent) counts as near it:
/// OOM kills and refused forks are then looked for at every sample.
const NEAR_LIMIT_PERCENT: u64 = 80;

/// Whether a container's usage is near its memory or pids limit (see the
/// module notes). A container without limits is never near one.
pub(crate) fn near_limit(s: &Stats) -> bool {
    let near = |used: u64, limit: Option<u64>| {
        limit.is_some_and(|l| used.saturating_mul(100) >= l.saturating_mul(NEAR_LIMIT_PERCENT))
    };
    near(s.memory_current, s.memory_limit) || near(s.pids_current, s.pids_limit)
}

/// Files that hold limits, not counters.
const LIMIT_FILES: [&str; 6] = [
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "memory.limit_in_bytes",
    "pids.max",
    "cpu.max",
    "memory.max",
];

pub(crate) trait StatFiles {
    /// The text of the stats file `name` in `dir`; `None` when it does not
    /// exist (a controller or feature the host lacks). The text lives until
    /// the next read: parse it before reading another file.
    fn read(&mut self, dir: &Path, name: &'static str) -> Result<Option<&str>, CgroupError>;

    /// Told before the event counters are read whether the container is
    /// [`near_limit`]; a reader may then skip re-reading them.
    fn near_limit(&mut self, _near: bool) {}
}

/// Open, read, close.
#[derive(Default)]
pub(crate) struct Fresh {
    text: Option<String>,
}

impl StatFiles for Fresh {
    fn read(&mut self, dir: &Path, name: &'static str) -> Result<Option<&str>, CgroupError> {
        self.text = read_opt(&dir.join(name))?;
        Ok(self.text.as_deref())
    }
}

/// How often a file is read again.
#[derive(Clone, Copy, PartialEq)]
enum Cadence {
    EverySample,
    Slow,
    Event,
    Limit,
}

fn cadence(name: &str) -> Cadence {
    if LIMIT_FILES.contains(&name) {
        Cadence::Limit
    } else if SLOW_FILES.contains(&name) {
        Cadence::Slow
    } else if EVENT_FILES.contains(&name) {
        Cadence::Event
    } else {
        Cadence::EverySample
    }
}

/// One stats file of the cgroup, kept open.
struct Slot {
    /// The file's name, which also says its controller (names are unique
    /// across controllers), so no path is built or hashed per read.
    name: &'static str,
    cadence: Cadence,
    /// `None`: the file does not exist here (remembered, not retried).
    file: Option<File>,
    /// The last text read, kept for limit and slow files between re-reads.
    text: String,
    has_text: bool,
}

/// Files opened on first use and kept in a short list searched by name
/// (a dozen at most); limit files' text is re-read when `fresh_limits`,
/// slow counters' when `fresh_slow`. Texts land in buffers reused from
/// sample to sample: a sample allocates nothing once warm.
#[derive(Default)]
struct KeptOpen {
    slots: Vec<Slot>,
    fresh_limits: bool,
    fresh_slow: bool,
    near_limit: bool,
    buf: Vec<u8>,
}

impl StatFiles for KeptOpen {
    fn read(&mut self, dir: &Path, name: &'static str) -> Result<Option<&str>, CgroupError> {
        let index = match self
            .slots
            .iter()
            .position(|s| std::ptr::eq(s.name, name) || s.name == name)
        {
            Some(i) => i,
            None => {
                let path = dir.join(name);
                let file = match File::open(&path) {
                    Ok(f) => Some(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(io_err("open", &path)(e)),
                };
                self.slots.push(Slot {
                    name,
                    cadence: cadence(name),
                    file,
                    text: String::new(),
                    has_text: false,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        let Some(file) = &slot.file else {
            return Ok(None);
        };
        let fresh = match slot.cadence {
            Cadence::EverySample => true,
            Cadence::Slow => self.fresh_slow,
            Cadence::Event => self.fresh_slow || self.near_limit,
            Cadence::Limit => self.fresh_limits,
        };
        if fresh || !slot.has_text {
            let path = || dir.join(name);
            let len = pread_whole(file, &mut self.buf).map_err(|e| io_err("read", &path())(e))?;
            let text = std::str::from_utf8(&self.buf[..len])
                .map_err(|_| io_err("read", &path())(io::ErrorKind::InvalidData.into()))?;
            slot.text.clear();
            slot.text.push_str(text);
            slot.has_text = true;
        }
        Ok(Some(&slot.text))
    }

    fn near_limit(&mut self, near: bool) {
        self.near_limit = near;
    }
}

/// Reads an open stats file from its start into `buf` (grown as needed);
/// returns the length.
fn pread_whole(file: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        let n = file.read_at(&mut buf[len..], len as u64)?;
        len += n;
        // The stats files are single-record seq_files: a read gets the
        // whole text when it fits, so a short read is the end (and the
        // read that would return 0 is saved).
        if n == 0 || len < buf.len() {
            return Ok(len);
        }
        let grown = buf.len() * 2;
        buf.resize(grown, 0);
    }
}

/// Reads one container's stats again and again with its files kept open
/// (see the module notes for why). Same figures as [`Cgroup::stats`].
pub struct StatsReader {
    cgroup: Cgroup,
    files: KeptOpen,
    reads: u32,
}

impl StatsReader {
    pub fn new(cgroup: Cgroup) -> StatsReader {
        StatsReader {
            cgroup,
            files: KeptOpen::default(),
            reads: 0,
        }
    }

    pub fn stats(&mut self) -> Result<Stats, CgroupError> {
        self.files.fresh_limits = self.reads.is_multiple_of(LIMITS_EVERY);
        self.files.fresh_slow = self.reads.is_multiple_of(SLOW_EVERY);
        self.reads = self.reads.wrapping_add(1);
        self.cgroup.stats_from(&mut self.files)
    }

    /// Files held open now.
    pub fn open_files(&self) -> usize {
        self.files.slots.iter().filter(|s| s.file.is_some()).count()
    }
}
