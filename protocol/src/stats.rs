//! One snapshot of a container's cgroup counters.

use serde::{Deserialize, Serialize};

/// Cgroup counters of one container at one instant. Fields that the host's
/// controllers do not provide are `None`, never a made-up zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Unix time in milliseconds when the counters were read.
    pub timestamp_ms: u64,
    /// Total CPU time used, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Time the cgroup was throttled by its CPU limit, in nanoseconds.
    pub cpu_throttled_ns: u64,
    /// Number of CFS periods in which the cgroup was throttled.
    pub cpu_throttled_periods: u64,
    /// CPU bandwidth limit in thousandths of a CPU.
    pub cpu_limit_millis: Option<u32>,
    pub memory_current: u64,
    pub memory_peak: Option<u64>,
    pub memory_limit: Option<u64>,
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
    /// Processes killed by the OOM killer inside this cgroup.
    pub oom_kills: u64,
    /// Forks refused because the pids limit was reached.
    pub pids_limit_hits: u64,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
}
