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
//! file not read counts.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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
const SLOW_FILES: [&str; 3] = [
    "blkio.throttle.io_service_bytes",
    "io.stat",
    "memory.max_usage_in_bytes",
];

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
    /// The file's text; `None` when it does not exist (a controller or
    /// feature the host lacks).
    fn read(&mut self, path: &Path) -> Result<Option<String>, CgroupError>;
}

/// Open, read, close.
pub(crate) struct Fresh;

impl StatFiles for Fresh {
    fn read(&mut self, path: &Path) -> Result<Option<String>, CgroupError> {
        read_opt(path)
    }
}

/// Files opened on first use and kept (a missing one is remembered as
/// missing); limit files' text is kept too and re-read when `fresh_limits`,
/// slow counters' when `fresh_slow`.
#[derive(Default)]
struct KeptOpen {
    files: HashMap<PathBuf, Option<File>>,
    /// Texts of limit and slow files, kept between their re-reads.
    limits: HashMap<PathBuf, Option<String>>,
    fresh_limits: bool,
    fresh_slow: bool,
    buf: Vec<u8>,
}

impl StatFiles for KeptOpen {
    fn read(&mut self, path: &Path) -> Result<Option<String>, CgroupError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let fresh = if LIMIT_FILES.contains(&name) {
            self.fresh_limits
        } else if SLOW_FILES.contains(&name) {
            self.fresh_slow
        } else {
            return self.read_file(path);
        };
        if !fresh {
            if let Some(text) = self.limits.get(path) {
                return Ok(text.clone());
            }
        }
        let text = self.read_file(path)?;
        self.limits.insert(path.to_path_buf(), text.clone());
        Ok(text)
    }
}

impl KeptOpen {
    fn read_file(&mut self, path: &Path) -> Result<Option<String>, CgroupError> {
        if !self.files.contains_key(path) {
            let file = match File::open(path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err("open", path)(e)),
            };
            self.files.insert(path.to_path_buf(), file);
        }
        let Some(Some(file)) = self.files.get(path) else {
            return Ok(None);
        };
        if self.buf.len() < 4096 {
            self.buf.resize(4096, 0);
        }
        let mut len = 0;
        loop {
            let n = file
                .read_at(&mut self.buf[len..], len as u64)
                .map_err(io_err("read", path))?;
            len += n;
            // The stats files are single-record seq_files: a read gets the
            // whole text when it fits, so a short read is the end (and the
            // read that would return 0 is saved).
            if n == 0 || len < self.buf.len() {
                break;
            }
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        String::from_utf8(self.buf[..len].to_vec())
            .map(Some)
            .map_err(|_| io_err("read", path)(io::ErrorKind::InvalidData.into()))
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
        self.files.files.values().filter(|f| f.is_some()).count()
    }
}
