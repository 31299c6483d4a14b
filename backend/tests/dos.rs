//! Denial of service, measured: session A runs a fork bomb, a memory bomb, a
//! disk fill and an inode fill in its container (one at a time, each a few
//! seconds), while session B's terminal echoes a marker every ~20 ms. Prints
//! B's echo round trip (p50, p99, max) for a quiet baseline and during each
//! bomb: figures, not timed asserts. Asserts what must hold: every echo comes
//! back within 5 s, /healthz answers throughout, the bomb really hit its
//! limit, the server survives, and the host saw no global OOM kill.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    run_tests(&[("dos_bombs_keep_other_sessions_responsive", || {
        Box::pin(dos_bombs_keep_other_sessions_responsive())
    })]);
}

/// How long each bomb runs while B is measured.
fn bomb_secs() -> u64 {
    std::env::var("GLASSBOX_DOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

/// An echo that takes longer than this is a failure, not a figure.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
const ECHO_EVERY: Duration = Duration::from_millis(20);

struct Bomb {
    name: &'static str,
    /// Typed into A's shell; runs until the container is deleted.
    line: &'static str,
    /// Proof, from A's stats or terminal, that the bomb reached its limit.
    hit: fn(&Value, &str) -> bool,
}

const BOMBS: &[Bomb] = &[
    Bomb {
        name: "fork bomb",
        line: "f() { f | f & }; f",
        hit: |stats, _| stats["pids_limit_hits"].as_u64().unwrap_or(0) > 0,
    },
    Bomb {
        name: "memory bomb",
        line: "while :; do tail /dev/zero; done",
        hit: |stats, _| stats["oom_kills"].as_u64().unwrap_or(0) > 0,
    },
    Bomb {
        name: "disk fill",
        line: "while :; do dd if=/dev/zero of=/fill bs=1M; rm -f /fill; done",
        hit: |_, out| out.contains("No space left on device"),
    },
    Bomb {
        name: "inode fill",
        line:
            "while :; do mkdir -p /f && cd /f && seq 1 100000 | xargs touch; cd /; rm -rf /f; done",
        hit: |_, out| out.contains("No space left on device"),
    },
];

/// Round trips of B's echo, in ms.
#[derive(Default)]
struct Figures(Vec<f64>);

impl Figures {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<12} echoes {:>4}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            self.0.len(),
            self.pct(0.5),
            self.pct(0.99),
            self.pct(1.0)
        )
    }
}

/// Type markers into B's shell for `secs` and time each until its echo
/// arrives. A marker is a shell comment, so the shell runs nothing.
async fn measure_echo(ws: &mut Ws, secs: u64, tag: &str) -> Figures {
    let mut figures = Figures::default();
    let mut seen = String::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u32;
    while Instant::now() < end {
        n += 1;
        let marker = format!("#{tag}{n}z");
        let sent = Instant::now();
        ws.send(Message::Binary(format!("{marker}\r").into_bytes().into()))
            .await
            .expect("B's socket takes input");
        let deadline = tokio::time::Instant::now() + ECHO_TIMEOUT;
        loop {
            if seen.contains(&marker) {
                break;
            }
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("B's socket ended during {tag}: {other:?}"),
                Err(_) => panic!("B's echo of {marker} took over {ECHO_TIMEOUT:?} during {tag}"),
            }
        }
        figures.0.push(sent.elapsed().as_secs_f64() * 1000.0);
        // Keep only the tail: markers are unique, and the buffer stays small.
        if seen.len() > 4096 {
            let cut = boundary(&seen, seen.len() - 256);
            seen = seen.split_off(cut);
        }
        tokio::time::sleep(ECHO_EVERY).await;
    }
    figures
}

/// /healthz keeps answering while `stop` is unset; returns the slowest answer (ms).
async fn watch_health(s: Arc<String>, stop: Arc<std::sync::atomic::AtomicBool>) -> f64 {
    let http = reqwest::Client::new();
    let mut slowest: f64 = 0.0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        let r = tokio::time::timeout(ECHO_TIMEOUT, http.get(s.as_str()).send()).await;
        let ok = matches!(&r, Ok(Ok(resp)) if resp.status() == 200);
        assert!(ok, "/healthz did not answer: {r:?}");
        slowest = slowest.max(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    slowest
}

async fn dos_bombs_keep_other_sessions_responsive() {
    let since = runtime::kmsg::uptime_secs();
    let s = Server::start(|_| {}).await;
    let limits =
        json!({"limits": {"memory_bytes": 128u64 << 20, "pids": 64, "disk_bytes": 64u64 << 20}});
    let b_token = s.session().await;
    let b = s.container(&b_token, json!({})).await;
    let b_id = b["id"].as_str().expect("id").to_string();
    let mut b_ws = s
        .ws(&b_token, &format!("/api/v1/containers/{b_id}/tty"), &[])
        .await
        .expect("B's terminal");
    let a_token = s.session().await;
    let secs = bomb_secs();
    let mut lines = vec![measure_echo(&mut b_ws, secs.min(3), "quiet")
        .await
        .line("no bomb")];

    for bomb in BOMBS {
        let a = s.container(&a_token, limits.clone()).await;
        let a_id = a["id"].as_str().expect("id").to_string();
        let mut a_ws = s
            .ws(&a_token, &format!("/api/v1/containers/{a_id}/tty"), &[])
            .await
            .expect("A's terminal");
        // A's output is read all along, so A's container is never held up by
        // a socket nobody reads.
        a_ws.send(Message::Binary(
            format!("{}\r", bomb.line).into_bytes().into(),
        ))
        .await
        .expect("typing the bomb");
        let a_out = Arc::new(Mutex::new(String::new()));
        let reader = {
            let a_out = a_out.clone();
            tokio::spawn(async move {
                while let Some(Ok(m)) = a_ws.next().await {
                    if let Message::Binary(b) = m {
                        let mut o = a_out.lock().expect("A's output");
                        o.push_str(&String::from_utf8_lossy(&b));
                        if o.len() > 1 << 16 {
                            let cut = boundary(&o, o.len() - 4096);
                            let keep = o.split_off(cut);
                            *o = keep;
                        }
                    }
                }
            })
        };
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let health = tokio::spawn(watch_health(Arc::new(s.url("/healthz")), stop.clone()));
        let figures =
            measure_echo(&mut b_ws, secs, bomb.name.split(' ').next().unwrap_or("b")).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let slowest_health = health.await.expect("/healthz answered throughout");
        let (status, stats) = s
            .get(&a_token, &format!("/api/v1/containers/{a_id}/stats"))
            .await;
        assert_eq!(status, 200, "A's stats: {stats}");
        let out = a_out.lock().expect("A's output").clone();
        assert!(
            (bomb.hit)(&stats, &out),
            "the {} never reached its limit: stats {stats}, output {:?}",
            bomb.name,
            &out[out.len().saturating_sub(400)..]
        );
        let (status, v) = s
            .delete(&a_token, &format!("/api/v1/containers/{a_id}"))
            .await;
        assert!(
            status == 200 || status == 204,
            "deleting A's container: {status} {v}"
        );
        reader.abort();
        lines.push(format!(
            "{}  /healthz max {slowest_health:.1} ms",
            figures.line(bomb.name)
        ));
    }
    // The server is alive and B's container was never touched.
    let (status, info) = s.get(&b_token, &format!("/api/v1/containers/{b_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(info["state"], "running", "B's container: {info}");
    let ooms = runtime::kmsg::global_oom_kills_since(since)
        .unwrap_or_else(|e| vec![format!("reading the kernel log: {e}")]);
    assert!(ooms.is_empty(), "global OOM kills on the host: {ooms:?}");
    println!(
        "\nB's terminal echo during A's bombs ({secs} s each, a marker every {ECHO_EVERY:?}):"
    );
    for l in &lines {
        println!("  {l}");
    }
    drop(b_ws);
    s.stop().await;
}

/// The first char boundary at or after `at` (terminal output is cut by bytes).
fn boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at += 1;
    }
    at
}
