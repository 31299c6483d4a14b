//! Terminal output throughput through Glassbox (container PTY → supervisor →
//! backend → WebSocket client) against a plain host PTY (portable-pty) running
//! the same command with the same programs: the container's shell, `head` and
//! `base64` are the host's static busybox (the built-in image is made of
//! it), so the host side runs that busybox too. The host's coreutils need a
//! fifth of busybox's CPU for the same bytes (100 MiB through a pipe to
//! /dev/null: 0.2 s against 0.9 s), and on two cores the producer's CPU is
//! CPU the terminal path does not get: the host PTY run made that way
//! measured the tools, not the terminal. Needs root.
//!
//! GLASSBOX_BENCH_BYTES (default 100 MiB) of /dev/zero go through base64;
//! GLASSBOX_BENCH_RUNS (default 3) pairs of runs, host and Glassbox
//! interleaved (the machine is shared: one pair alone says little), then the
//! medians.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use futures_util::StreamExt;
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use serde_json::json;
use std::io::Read;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn command(bytes: usize) -> String {
    // Wait for the reader to attach, then time only the stream.
    format!("sleep 0.3; head -c {bytes} /dev/zero | base64")
}

/// (bytes, seconds from the first output byte to EOF) on a host PTY.
fn host_pty(bytes: usize) -> (u64, f64) {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    // The container's `sh -c`: Debian's static busybox runs its own applets
    // before any program on the PATH, as the image's shell does.
    let mut cmd = CommandBuilder::new(runtime::image::HOST_BUSYBOX);
    cmd.args(["sh", "-c", &command(bytes)]);
    let mut child = pty.slave.spawn_command(cmd).expect("spawn");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let mut buf = vec![0u8; 64 * 1024];
    let (mut total, mut start) = (0u64, None);
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                start.get_or_insert_with(Instant::now);
                total += n as u64;
            }
        }
    }
    let _ = child.wait();
    (
        total,
        start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0),
    )
}

/// (bytes, seconds from the first output byte to EOF, binary messages).
async fn glassbox(s: &Server, token: &str, bytes: usize) -> (u64, f64, u64) {
    let c = s
        .container(token, json!({"cmd": ["sh", "-c", command(bytes)]}))
        .await;
    let id = c["id"].as_str().expect("id").to_string();
    let mut ws = s
        .ws(token, &format!("/api/v1/containers/{id}/tty"), &[])
        .await
        .expect("tty");
    let (mut total, mut start, mut messages) = (0u64, None, 0u64);
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
        match m {
            Message::Binary(b) => {
                start.get_or_insert_with(Instant::now);
                total += b.len() as u64;
                messages += 1;
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    let secs = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    s.delete(token, &format!("/api/v1/containers/{id}")).await;
    (total, secs, messages)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    runtime::process::supervisor_entrypoint();
    support::init_logging();
    let bytes = std::env::var("GLASSBOX_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100 << 20);
    let runs = std::env::var("GLASSBOX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let s = Server::start(|_| {}).await;
        let token = s.session().await;
        let (mut hosts, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for run in 1..=runs {
            let (hb, hs) = tokio::task::spawn_blocking(move || host_pty(bytes))
                .await
                .expect("host run");
            let host = hb as f64 / hs / 1e6;
            let (gb, gs, msgs) = glassbox(&s, &token, bytes).await;
            let gbx = gb as f64 / gs / 1e6;
            println!(
                "run {run}: host PTY (portable-pty) {host:>6.1} MB/s ({hb} bytes in {hs:.2} s) | \
                 Glassbox tty WebSocket {gbx:>6.1} MB/s ({gb} bytes in {gs:.2} s, {msgs} messages, \
                 {:.0} KiB each) | ratio {:.2}x",
                gb as f64 / msgs.max(1) as f64 / 1024.0,
                gbx / host
            );
            hosts.push(host);
            ours.push(gbx);
            ratios.push(gbx / host);
        }
        println!(
            "median of {runs}: host PTY {:.1} MB/s, Glassbox {:.1} MB/s, ratio Glassbox / host PTY {:.2}x",
            median(&mut hosts),
            median(&mut ours),
            median(&mut ratios)
        );
        s.stop().await;
    });
}
