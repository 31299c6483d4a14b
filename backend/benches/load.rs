//! Load: many sessions at once against the real server, from a
//! tokio-tungstenite load generator in the same process. Needs root.
//!
//! `echo` mode (default): GLASSBOX_LOAD_SESSIONS sessions (default 20; the
//! full run is 200), each with a busybox shell container and its terminal
//! socket, type a unique marker every GLASSBOX_LOAD_INTERVAL_MS (default
//! 500) for GLASSBOX_LOAD_SECS (default 10; full run 30) and wait for the
//! terminal to echo it. Prints echo latency p50/p99/max, errors by kind, and
//! memory per sandbox.
//!
//! `idle` mode (GLASSBOX_LOAD_MODE=idle): GLASSBOX_LOAD_SESSIONS sandboxes
//! (default 50; the full run is 1000) with no terminal traffic: whether they
//! fit (and what failed if not), memory per sandbox, and the CPU the idle
//! fleet uses over GLASSBOX_LOAD_SECS.
//!
//! The server's limits (sessions, per-IP sessions, containers) are raised by
//! its config for the run; the warm pool is off (GLASSBOX_WARM_POOL, default
//! 0) so that every sandbox counted is a claimed one. `kernel/pid_max` is
//! raised for the run (and put back) if the fleet would not fit under it.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use support::fleet::{self, Errors, Memory, Sandbox};
use support::{env, pct_ms};
use tokio_tungstenite::tungstenite::Message;

/// Read until `needle` is in the output; clears what was read.
async fn wait_for(
    ws: &mut Ws,
    buf: &mut Vec<u8>,
    needle: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(i) = buf.windows(needle.len()).position(|w| w == needle) {
            buf.drain(..i + needle.len());
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("timeout".into()),
            Ok(None) => return Err("socket ended".into()),
            Ok(Some(Err(e))) => return Err(format!("socket error: {e}")),
            Ok(Some(Ok(Message::Binary(b)))) => buf.extend_from_slice(&b),
            Ok(Some(Ok(Message::Close(f)))) => {
                return Err(format!("closed {:?}", f.map(|f| u16::from(f.code))))
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// One session's echo loop; returns its latencies.
async fn echo(
    s: &Server,
    b: &Sandbox,
    n: usize,
    until: Instant,
    interval: Duration,
    errors: &Errors,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    let path = format!("/api/v1/containers/{}/tty", b.id);
    let mut ws = match s.ws(&b.token, &path, &[]).await {
        Ok(ws) => ws,
        Err(code) => {
            errors.add(format!("tty socket {code}"));
            return lat;
        }
    };
    let mut buf = Vec::new();
    if let Err(e) = wait_for(&mut ws, &mut buf, b"# ", Duration::from_secs(60)).await {
        errors.add(format!("prompt: {e}"));
        return lat;
    }
    // Spread the sessions over one interval so that the rate is steady.
    let offset = interval.mul_f64((n % 97) as f64 / 97.0);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        k += 1;
        // A shell comment: typed, echoed by the line editor, run as nothing.
        let marker = format!("#m{n}x{k}z");
        let t = Instant::now();
        let line = format!("{marker}\n").into_bytes();
        if let Err(e) = ws.send(Message::Binary(line.into())).await {
            errors.add(format!("send: {e}"));
            return lat;
        }
        match wait_for(
            &mut ws,
            &mut buf,
            marker.as_bytes(),
            Duration::from_secs(10),
        )
        .await
        {
            Ok(()) => lat.push(t.elapsed()),
            Err(e) => {
                errors.add(format!("echo: {e}"));
                if e != "timeout" {
                    return lat;
                }
            }
        }
    }
    let _ = ws.close(None).await;
    lat
}

fn cpu_now(s: &Server) -> (f64, f64, (u64, u64)) {
    let sups: f64 = support::supervisors(s.state_dir())
        .into_iter()
        .map(support::cpu_secs)
        .sum();
    (
        support::cpu_secs(std::process::id() as i32),
        sups,
        support::host_cpu(),
    )
}

fn print_cpu(
    label: &str,
    before: (f64, f64, (u64, u64)),
    after: (f64, f64, (u64, u64)),
    wall: f64,
) {
    let server = (after.0 - before.0) / wall * 100.0;
    let sups = (after.1 - before.1) / wall * 100.0;
    let busy = (after.2 .0 - before.2 .0) as f64;
    let total = (after.2 .1 - before.2 .1).max(1) as f64;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "{label} CPU over {wall:.0} s: this process (server + load generator) {server:.1} % of one core, \
         supervisors {sups:.1} %; whole host {:.1} % of one core (shared machine: includes other work)",
        busy / total * ncpu * 100.0
    );
}

async fn echo_mode(s: &Server, parent: &str, n: usize, secs: Duration, interval: Duration) -> bool {
    let base = Memory::now(s, parent);
    let errors = Errors::default();
    let t0 = Instant::now();
    let boxes = fleet::make(s, n, 16, n.max(10), &errors).await;
    println!(
        "{} of {n} sandboxes made in {:.1} s",
        boxes.len(),
        t0.elapsed().as_secs_f64()
    );
    // Sockets open and prompts in: sample memory half-way through the run.
    let until = Instant::now() + secs + Duration::from_secs(5);
    let cpu0 = cpu_now(s);
    let t1 = Instant::now();
    let runs = boxes
        .iter()
        .enumerate()
        .map(|(i, b)| echo(s, b, i, until, interval, &errors));
    let mem = async {
        tokio::time::sleep(secs / 2 + Duration::from_secs(5)).await;
        Memory::now(s, parent)
    };
    let (lats, mem) = futures_util::future::join(futures_util::future::join_all(runs), mem).await;
    print_cpu("echo run", cpu0, cpu_now(s), t1.elapsed().as_secs_f64());
    let mut all: Vec<Duration> = lats.into_iter().flatten().collect();
    println!(
        "echo latency over {} echoes from {} sessions: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        all.len(),
        boxes.len(),
        pct_ms(&mut all, 0.5),
        pct_ms(&mut all, 0.99),
        pct_ms(&mut all, 1.0)
    );
    errors.print("errors");
    mem.per_sandbox(&base, boxes.len());
    let ok = errors.total() == 0 && boxes.len() == n;
    fleet::remove(s, boxes, 16).await;
    ok
}

async fn idle_mode(s: &Server, parent: &str, n: usize, secs: Duration) -> bool {
    let base = Memory::now(s, parent);
    let errors = Errors::default();
    let t0 = Instant::now();
    let boxes = fleet::make(s, n, 8, 10, &errors).await;
    println!(
        "idle: {} of {n} sandboxes fit ({:.1} s to make them)",
        boxes.len(),
        t0.elapsed().as_secs_f64()
    );
    errors.print("idle: failures");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mem = Memory::now(s, parent);
    let per = mem.per_sandbox(&base, boxes.len());
    println!(
        "idle: {} sandboxes use {:.0} MiB in total ({per:.0} KiB each); host MemAvailable {} MiB",
        boxes.len(),
        per * boxes.len() as f64 / 1024.0,
        support::kib_field("/proc/meminfo", "MemAvailable") / 1024
    );
    let cpu0 = cpu_now(s);
    let t1 = Instant::now();
    tokio::time::sleep(secs).await;
    print_cpu("idle", cpu0, cpu_now(s), t1.elapsed().as_secs_f64());
    let ok = boxes.len() == n;
    fleet::remove(s, boxes, 8).await;
    ok
}

fn main() {
    runtime::process::supervisor_entrypoint();
    support::init_logging();
    let idle = std::env::var("GLASSBOX_LOAD_MODE").as_deref() == Ok("idle");
    let n = env("GLASSBOX_LOAD_SESSIONS", if idle { 50 } else { 20 });
    let secs = support::env_secs("GLASSBOX_LOAD_SECS", 10);
    let interval = Duration::from_millis(env("GLASSBOX_LOAD_INTERVAL_MS", 500) as u64);
    let warm_pool = env("GLASSBOX_WARM_POOL", 0);
    let parent = support::cgroup_parent("load");
    // About three processes per sandbox (supervisor, init, shell) and a
    // thread or two more for the server: pid_max is the limit a big fleet
    // meets first (the rest were checked at 1,000: see the README).
    let pid_max = support::Sysctl::at_least(
        "kernel/pid_max",
        support::host_pids().len() as u64 + n as u64 * 4 + 4096,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let ok = rt.block_on(async {
        let s = fleet::server(&parent, n, move |c| {
            c.warm_pool = warm_pool;
            // Running shells would be claimed by these creates and refilled
            // between them: these figures are of the sandboxes themselves.
            c.shell_pool = 0;
            c.stats_interval_ms = 250;
        })
        .await;
        println!(
            "load ({}): {n} sessions, {} s, warm pool {warm_pool}; machine: {} cores, load average {}",
            if idle { "idle" } else { "echo" },
            secs.as_secs(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        );
        let ok = if idle {
            idle_mode(&s, &parent, n, secs).await
        } else {
            echo_mode(&s, &parent, n, secs, interval).await
        };
        s.stop().await;
        support::remove_cgroup_parent(&parent);
        ok
    });
    // Put the kernel setting back before exiting (exit runs no destructors).
    drop(pid_max);
    if !ok {
        println!("LOAD FAILED: errors above");
        std::process::exit(1);
    }
}
