//! Terminal output throughput through Glassbox (container PTY → supervisor →
//! backend → WebSocket client) against a plain host PTY (portable-pty) running
//! the same command. Needs root.
//!
//! GLASSBOX_BENCH_BYTES (default 100 MiB) of /dev/zero go through base64.

#[path = "../tests/common/mod.rs"]
mod common;

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
    let mut cmd = CommandBuilder::new("/bin/sh");
    cmd.args(["-c", &command(bytes)]);
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

async fn glassbox(s: &Server, token: &str, bytes: usize) -> (u64, f64) {
    let c = s
        .container(token, json!({"cmd": ["sh", "-c", command(bytes)]}))
        .await;
    let id = c["id"].as_str().expect("id").to_string();
    let mut ws = s
        .ws(token, &format!("/api/v1/containers/{id}/tty"), &[])
        .await
        .expect("tty");
    let (mut total, mut start) = (0u64, None);
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
        match m {
            Message::Binary(b) => {
                start.get_or_insert_with(Instant::now);
                total += b.len() as u64;
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    let secs = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    s.delete(token, &format!("/api/v1/containers/{id}")).await;
    (total, secs)
}

fn main() {
    runtime::process::supervisor_entrypoint();
    let bytes = std::env::var("GLASSBOX_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100 << 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let (hb, hs) = host_pty(bytes);
    let host = hb as f64 / hs / 1e6;
    println!(
        "host PTY (portable-pty)      {:>8.1} MB/s  ({hb} bytes in {hs:.2} s)",
        host
    );
    rt.block_on(async {
        let s = Server::start(|_| {}).await;
        let token = s.session().await;
        let (gb, gs) = glassbox(&s, &token, bytes).await;
        let ours = gb as f64 / gs / 1e6;
        println!(
            "Glassbox tty WebSocket       {:>8.1} MB/s  ({gb} bytes in {gs:.2} s)",
            ours
        );
        println!("ratio Glassbox / host PTY    {:>8.2}x", ours / host);
        s.stop().await;
    });
}
