//! Prometheus text exposition, written by hand: a few counters, gauges and one
//! histogram need no metrics framework. Counters live in one process-wide
//! registry (errors are counted where no server state is at hand); gauges of
//! sessions and containers are read from the server's state at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the create-latency histogram buckets.
const CREATE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    errors: Mutex<BTreeMap<&'static str, u64>>,
    create_buckets: [AtomicU64; CREATE_BUCKETS.len()],
    create_count: AtomicU64,
    create_sum_micros: AtomicU64,
    pub containers_created: AtomicU64,
    pub containers_removed: AtomicU64,
    pub sessions_created: AtomicU64,
    pub sessions_expired: AtomicU64,
    pub ws_tty: AtomicU64,
    pub ws_events: AtomicU64,
}

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// Counts a WebSocket client while alive.
pub struct WsGauge(&'static AtomicU64);

impl WsGauge {
    pub fn tty() -> WsGauge {
        global().ws_tty.fetch_add(1, Ordering::Relaxed);
        WsGauge(&global().ws_tty)
    }

    pub fn events() -> WsGauge {
        global().ws_events.fetch_add(1, Ordering::Relaxed);
        WsGauge(&global().ws_events)
    }
}

impl Drop for WsGauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn error(&self, code: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    pub fn observe_create(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in CREATE_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.create_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.create_count.fetch_add(1, Ordering::Relaxed);
        self.create_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition text, with the state's gauges.
    pub fn render(&self, sessions: usize, containers: usize) -> String {
        let mut s = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut s,
            "glassbox_sessions",
            "Live sessions.",
            sessions as u64,
        );
        gauge(
            &mut s,
            "glassbox_containers",
            "Containers owned by live sessions.",
            containers as u64,
        );
        let _ = writeln!(s, "# HELP glassbox_ws_clients Open WebSockets by kind.");
        let _ = writeln!(s, "# TYPE glassbox_ws_clients gauge");
        let _ = writeln!(
            s,
            "glassbox_ws_clients{{kind=\"tty\"}} {}",
            get(&self.ws_tty)
        );
        let _ = writeln!(
            s,
            "glassbox_ws_clients{{kind=\"events\"}} {}",
            get(&self.ws_events)
        );
        counter(
            &mut s,
            "glassbox_containers_created_total",
            "Containers created.",
            get(&self.containers_created),
        );
        counter(
            &mut s,
            "glassbox_containers_removed_total",
            "Containers removed (by users or expiry).",
            get(&self.containers_removed),
        );
        counter(
            &mut s,
            "glassbox_sessions_created_total",
            "Sessions created.",
            get(&self.sessions_created),
        );
        counter(
            &mut s,
            "glassbox_sessions_expired_total",
            "Sessions ended by the idle timeout or the TTL.",
            get(&self.sessions_expired),
        );
        let _ = writeln!(s, "# HELP glassbox_container_create_seconds Time from the create request to a running container.");
        let _ = writeln!(s, "# TYPE glassbox_container_create_seconds histogram");
        for (i, bound) in CREATE_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "glassbox_container_create_seconds_bucket{{le=\"{bound}\"}} {}",
                get(&self.create_buckets[i])
            );
        }
        let count = get(&self.create_count);
        let _ = writeln!(
            s,
            "glassbox_container_create_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "glassbox_container_create_seconds_sum {}",
            get(&self.create_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(s, "glassbox_container_create_seconds_count {count}");
        let _ = writeln!(s, "# HELP glassbox_errors_total API errors by code.");
        let _ = writeln!(s, "# TYPE glassbox_errors_total counter");
        if let Ok(m) = self.errors.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(s, "glassbox_errors_total{{code=\"{code}\"}} {n}");
            }
        }
        s
    }
}

fn gauge(s: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

fn counter(s: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_create(Duration::from_millis(12));
        m.observe_create(Duration::from_millis(300));
        let text = m.render(1, 2);
        assert!(text.contains("glassbox_container_create_seconds_bucket{le=\"0.015\"} 1"));
        assert!(text.contains("glassbox_container_create_seconds_bucket{le=\"0.5\"} 2"));
        assert!(text.contains("glassbox_container_create_seconds_count 2"));
        assert!(text.contains("glassbox_containers 2"));
    }
}
