//! A fixed-size ring buffer of stats, and the rates the charts draw from it.

use protocol::Stats;
use std::collections::VecDeque;

/// A ring buffer that keeps the newest `cap` items.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Ring {
            items: VecDeque::with_capacity(cap),
            cap,
        }
    }

    /// Add an item, dropping the oldest when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// One point of the charts, derived from two consecutive snapshots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp_ms: u64,
    /// CPU used, in percent of one core (200 = two full cores).
    pub cpu_pct: f64,
    /// Share of the interval during which the cgroup was throttled, in percent.
    pub throttled_pct: f64,
    /// The CPU limit in percent of one core.
    pub cpu_limit_pct: Option<f64>,
    pub memory: u64,
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub pids_limit: Option<u64>,
}

/// How many samples the charts keep: a minute at the stream's 4 Hz.
pub const HISTORY: usize = 240;

/// A container's stats over time: the raw last snapshot plus derived samples.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsHistory {
    prev: Option<Stats>,
    samples: Ring<Sample>,
}

impl Default for StatsHistory {
    fn default() -> Self {
        Self::new(HISTORY)
    }
}

impl StatsHistory {
    pub fn new(cap: usize) -> Self {
        StatsHistory {
            prev: None,
            samples: Ring::new(cap),
        }
    }

    /// Feed one snapshot. The first one only sets the baseline for rates;
    /// a snapshot older than or as old as the previous one is ignored, and a
    /// counter that went backwards (a restarted container) starts afresh.
    pub fn push(&mut self, s: Stats) {
        let Some(prev) = self.prev.take() else {
            self.prev = Some(s);
            return;
        };
        if s.timestamp_ms <= prev.timestamp_ms {
            self.prev = Some(prev);
            return;
        }
        if s.cpu_usage_ns < prev.cpu_usage_ns || s.cpu_throttled_ns < prev.cpu_throttled_ns {
            self.prev = Some(s);
            return;
        }
        let dt_ns = (s.timestamp_ms - prev.timestamp_ms) as f64 * 1e6;
        let cpu_pct = (s.cpu_usage_ns - prev.cpu_usage_ns) as f64 / dt_ns * 100.0;
        let throttled_pct =
            ((s.cpu_throttled_ns - prev.cpu_throttled_ns) as f64 / dt_ns * 100.0).min(100.0);
        self.samples.push(Sample {
            timestamp_ms: s.timestamp_ms,
            cpu_pct,
            throttled_pct,
            cpu_limit_pct: s.cpu_limit_millis.map(|m| m as f64 / 10.0),
            memory: s.memory_current,
            memory_limit: s.memory_limit,
            pids: s.pids_current,
            pids_limit: s.pids_limit,
        });
        self.prev = Some(s);
    }

    pub fn samples(&self) -> &Ring<Sample> {
        &self.samples
    }

    pub fn latest(&self) -> Option<&Stats> {
        self.prev.as_ref()
    }

    pub fn last_sample(&self) -> Option<&Sample> {
        self.samples.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn snap(t: u64, cpu_ns: u64, thr_ns: u64, mem: u64) -> Stats {
        Stats {
            timestamp_ms: t,
            cpu_usage_ns: cpu_ns,
            cpu_throttled_ns: thr_ns,
            cpu_limit_millis: Some(500),
            memory_current: mem,
            memory_limit: Some(64 << 20),
            pids_current: 3,
            pids_limit: Some(64),
            ..Stats::default()
        }
    }

    #[test]
    fn ring_keeps_the_newest() {
        let mut r = Ring::new(3);
        assert!(r.is_empty());
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.capacity(), 3);
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.last(), Some(&4));
        r.clear();
        assert!(r.is_empty());
        assert_eq!(Ring::<u8>::new(0).capacity(), 1);
    }

    #[test]
    fn rates_come_from_deltas() {
        let mut h = StatsHistory::new(10);
        h.push(snap(1_000, 0, 0, 1 << 20));
        assert!(
            h.samples().is_empty(),
            "the first snapshot is only a baseline"
        );
        // 250 ms later: 125 ms of CPU (50% of a core), throttled for 50 ms (20%).
        h.push(snap(1_250, 125_000_000, 50_000_000, 2 << 20));
        let s = *h.last_sample().unwrap();
        assert!((s.cpu_pct - 50.0).abs() < 1e-9);
        assert!((s.throttled_pct - 20.0).abs() < 1e-9);
        assert_eq!(s.cpu_limit_pct, Some(50.0));
        assert_eq!(s.memory, 2 << 20);
        assert_eq!(s.memory_limit, Some(64 << 20));
        assert_eq!((s.pids, s.pids_limit), (3, Some(64)));
    }

    #[test]
    fn stale_and_reset_snapshots() {
        let mut h = StatsHistory::new(10);
        h.push(snap(1_000, 100, 0, 0));
        h.push(snap(1_000, 200, 0, 0));
        h.push(snap(900, 300, 0, 0));
        assert!(h.samples().is_empty(), "no time passed: nothing to derive");
        h.push(snap(2_000, 50, 0, 0));
        assert!(
            h.samples().is_empty(),
            "a counter going backwards restarts the baseline"
        );
        h.push(snap(3_000, 1_000_000_050, 0, 0));
        assert!((h.last_sample().unwrap().cpu_pct - 100.0).abs() < 1e-9);
        assert_eq!(h.latest().unwrap().timestamp_ms, 3_000);
    }

    #[test]
    fn history_is_bounded() {
        let mut h = StatsHistory::new(4);
        for i in 0..100u64 {
            h.push(snap(i * 250, i * 1_000_000, 0, i));
        }
        assert_eq!(h.samples().len(), 4);
        assert_eq!(h.samples().iter().next().unwrap().memory, 96);
    }
}
