//! Stats at scale: what sampling every container's cgroup at 4 Hz costs.
//! Needs root.
//!
//! GLASSBOX_STATS_CONTAINERS sandboxes (default 50; the full run is 500),
//! each a session with a busybox shell, on the real server. Then, each for
//! GLASSBOX_STATS_SECS (default 5; full run 30):
//! 1. the sampler alone, as the server runs it (one `StatsReader::stats` per
//!    container per tick, 4 Hz, files kept open) on a thread of its own,
//!    timed with that thread's CPU clock: % of one core and the cost per
//!    container sample; and the same opening every file each time
//!    (`Cgroup::stats`), for comparison;
//! 2. the whole process idle with no events subscriber (the server samples
//!    nothing then), and with one events socket per session (the server
//!    samples, serializes and sends every container's stats at 4 Hz and the
//!    load generator in the same process reads them): the difference is the
//!    end-to-end cost of the stats stream, an upper bound on the server's.
//!
//! FAILS (exit 1) if the sampler alone is at or above 5 % of one core.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use futures_util::StreamExt;
use runtime::cgroups::{Cgroup, CgroupRecord, StatsReader};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::env;
use support::fleet::{self, Errors, Sandbox};
use tokio_tungstenite::tungstenite::Message;

const TICK: Duration = Duration::from_millis(250);
const TARGET_PERCENT: f64 = 5.0;

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(u) = getrusage(UsageWho::RUSAGE_THREAD) else {
        return Duration::ZERO;
    };
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(us(u.user_time()) + us(u.system_time()))
}

fn cgroup_of(s: &Server, id: &str) -> Option<Cgroup> {
    let path = s
        .state_dir()
        .join("containers")
        .join(id)
        .join("config.json");
    let config: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let record: CgroupRecord = serde_json::from_value(config["cgroup"].clone()).ok()?;
    Some(Cgroup::open(&record))
}

/// Sample every container at 4 Hz for `secs` on this thread, as the
/// server's sampler does, with files kept open (`StatsReader`, what the
/// server uses) or opened for every read (`Cgroup::stats`); prints the cost
/// and returns it in % of one core, and the failed samples.
fn sample_alone(label: &str, cgroups: &[Cgroup], kept_open: bool, secs: Duration) -> (f64, u64) {
    let mut readers: Vec<StatsReader> = cgroups.iter().cloned().map(StatsReader::new).collect();
    let (mut ticks, mut samples, mut failed) = (0u64, 0u64, 0u64);
    let cpu0 = thread_cpu();
    let end = Instant::now() + secs;
    let mut next = Instant::now();
    while Instant::now() < end {
        for (c, r) in cgroups.iter().zip(readers.iter_mut()) {
            let got = if kept_open { r.stats() } else { c.stats() };
            match got {
                Ok(s) => {
                    std::hint::black_box(s);
                    samples += 1;
                }
                Err(_) => failed += 1,
            }
        }
        ticks += 1;
        next += TICK;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let cpu = (thread_cpu() - cpu0).as_secs_f64();
    let pct = cpu / secs.as_secs_f64() * 100.0;
    let fds: usize = readers.iter().map(StatsReader::open_files).sum();
    println!(
        "{label}: {pct:.2} % of one core ({ticks} ticks, {samples} container samples, {failed} \
         failed; {:.1} us per container sample, {:.2} ms per tick; {fds} files held open)",
        cpu * 1e6 / samples.max(1) as f64,
        cpu * 1e3 / ticks.max(1) as f64
    );
    (pct, failed)
}

fn process_cpu() -> f64 {
    support::cpu_secs(std::process::id() as i32)
}

/// CPU of this whole process over `secs`, in % of one core.
async fn process_percent(secs: Duration) -> f64 {
    let (c0, t0) = (process_cpu(), Instant::now());
    tokio::time::sleep(secs).await;
    (process_cpu() - c0) / t0.elapsed().as_secs_f64() * 100.0
}

/// Hold an events socket per sandbox for `secs`, counting stats messages.
async fn subscribed_percent(s: &Server, boxes: &[Sandbox], secs: Duration) -> (f64, u64, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::new();
    for b in boxes {
        if let Ok(ws) = s.ws(&b.token, "/api/v1/events", &[]).await {
            sockets.push(ws);
        }
    }
    let opened = sockets.len();
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let (stop, count) = (stop.clone(), count.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            if t.as_str().starts_with(r#"{"kind":"stats""#) {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(Some(Ok(_))) | Err(_) => {}
                        Ok(None) | Ok(Some(Err(_))) => break,
                    }
                }
                let _ = ws.close(None).await;
            })
        })
        .collect();
    // Let every socket get its first snapshot, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c0 = count.load(Ordering::Relaxed);
    let pct = process_percent(secs).await;
    let got = count.load(Ordering::Relaxed) - c0;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    (pct, got, opened)
}

fn main() {
    runtime::process::supervisor_entrypoint();
    support::init_logging();
    let n = env("GLASSBOX_STATS_CONTAINERS", 50);
    let secs = support::env_secs("GLASSBOX_STATS_SECS", 5);
    let parent = support::cgroup_parent("stats");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let ok = rt.block_on(async {
        let s = fleet::server(&parent, n, |c| {
            c.warm_pool = 0;
            // Running shells would be claimed by these creates and refilled
            // between them: these figures are of the sandboxes themselves.
            c.shell_pool = 0;
            c.stats_interval_ms = TICK.as_millis() as u64;
        })
        .await;
        println!(
            "stats_scale: {n} containers, 4 Hz, {} s per phase; load average {}",
            secs.as_secs(),
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        );
        let errors = Errors::default();
        let boxes = fleet::make(&s, n, 16, 10, &errors).await;
        errors.print("setup");
        let cgroups: Vec<Cgroup> = boxes.iter().filter_map(|b| cgroup_of(&s, &b.id)).collect();
        println!("{} sandboxes up, {} cgroups to sample", boxes.len(), cgroups.len());

        let sample = |label: &'static str, kept_open: bool| {
            let cgroups = cgroups.clone();
            tokio::task::spawn_blocking(move || sample_alone(label, &cgroups, kept_open, secs))
        };
        let (fresh, _) = sample("sampler, files opened per read", false)
            .await
            .expect("sampler thread");
        let (pct, failed) = sample("sampler as the server runs it (files kept open)", true)
            .await
            .expect("sampler thread");
        println!(
            "sampling {n} containers at 4 Hz: {pct:.2} % of one core (target < {TARGET_PERCENT} %; \
             {fresh:.2} % opening every file); at this cost per sample, 500 containers would take \
             {:.1} %",
            pct * 500.0 / n.max(1) as f64
        );

        let idle = process_percent(secs).await;
        let (subscribed, msgs, opened) = subscribed_percent(&s, &boxes, secs).await;
        println!(
            "whole process: {idle:.1} % of one core with no subscriber, {subscribed:.1} % with {opened} \
             events sockets ({msgs} stats messages, {:.0}/s): the stats stream end to end costs \
             {:.1} % (server + the load generator's reading; shared machine, noisy)",
            msgs as f64 / secs.as_secs_f64(),
            subscribed - idle
        );
        fleet::remove(&s, boxes, 16).await;
        s.stop().await;
        support::remove_cgroup_parent(&parent);
        let complete = errors.total() == 0 && failed == 0 && cgroups.len() == n;
        if pct >= TARGET_PERCENT {
            println!("STATS FAILED: sampling costs {pct:.2} % of one core (target < {TARGET_PERCENT} %)");
        }
        if !complete {
            println!("STATS FAILED: not every container was made and sampled");
        }
        pct < TARGET_PERCENT && complete
    });
    if !ok {
        std::process::exit(1);
    }
}
