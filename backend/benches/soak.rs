//! Soak: create → exec → delete, over and over, against the real server, and
//! nothing may grow. Needs root.
//!
//! Each cycle creates a busybox container, runs `echo` in it through the
//! exec WebSocket (the marker must come back and the exit code must be 0),
//! and deletes it. Mounts, container cgroup directories, the server's fds and
//! threads, host processes, supervisors and the server's RSS are printed at
//! the start, every tenth of the run and at the end. The run FAILS (exit 1)
//! if, once the warm pool is full again, mounts, cgroup directories,
//! supervisors, fds or threads are above the start, if the bytes in live heap
//! allocations (glibc `mallinfo2`) grew by more than
//! GLASSBOX_SOAK_HEAP_TOLERANCE_KIB (default 256 KiB: a leak of 26 bytes a
//! cycle over 10,000 cycles), or if RSS grew by more than
//! GLASSBOX_SOAK_RSS_TOLERANCE_KIB (default 16 MiB) once `malloc_trim`
//! handed the allocator's free memory back. The two differ on
//! purpose: RSS also holds memory the allocator keeps after it was freed
//! (arenas and tokio's pools sized for the peak concurrency, fragmentation),
//! which creeps up without anything leaking; the live heap is what a leak
//! grows. The bench runs with malloc's per-thread caches off (it re-execs
//! itself with `GLIBC_TUNABLES`), whose chunks would count as live.
//!
//! GLASSBOX_SOAK_CYCLES (default 200; the full run is 10,000),
//! GLASSBOX_SOAK_PARALLEL cycles at once (default 8: one cycle takes about
//! 2 s of mostly waiting), GLASSBOX_WARM_POOL (default 0, see `main`).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{env, Figures};
use tokio_tungstenite::tungstenite::Message;

/// One cycle; `Err` names what went wrong.
async fn cycle(s: &Server, token: &str, n: usize) -> Result<(), String> {
    let (status, c) = s
        .post(token, "/api/v1/containers", &json!({"image": "busybox"}))
        .await;
    if status != 201 {
        return Err(format!("create: {status} {c}"));
    }
    let id = c["id"].as_str().ok_or("create: no id")?.to_string();
    let result = exec_echo(s, token, &id, n).await;
    let (status, body) = s.delete(token, &format!("/api/v1/containers/{id}")).await;
    result?;
    if status != 204 {
        return Err(format!("delete: {status} {body}"));
    }
    Ok(())
}

/// Run `echo soak-N` through the exec socket; check its output and exit code.
async fn exec_echo(s: &Server, token: &str, id: &str, n: usize) -> Result<(), String> {
    let marker = format!("soak-{n}-done");
    let path = format!("/api/v1/containers/{id}/exec?cmd=/bin/echo&cmd={marker}");
    let mut ws = s
        .ws(token, &path, &[])
        .await
        .map_err(|code| format!("exec socket: {code}"))?;
    let (mut out, mut code) = (Vec::new(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while code.is_none() {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("exec: timed out".into()),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(Message::Binary(b)))) => out.extend_from_slice(&b),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == "exit" {
                    code = v["code"].as_i64();
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    // Drain to the close, so that the socket is gone before the delete.
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        match m {
            Message::Binary(b) => out.extend_from_slice(&b),
            Message::Close(_) => break,
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&out);
    if !text.contains(&marker) {
        return Err(format!("exec: marker missing from {text:?}"));
    }
    if code != Some(0) {
        return Err(format!("exec: exit code {code:?}"));
    }
    Ok(())
}

/// Wait (up to 60 s) until the warm pool holds `n` ready entries.
async fn pool_full(s: &Server, n: usize) -> bool {
    let Some(handle) = s.handle.as_ref() else {
        return false;
    };
    let rt = handle.state.runtime.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.pool_entries().len() < n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Poll (up to 30 s) until every leak-relevant figure is back at or below
/// the start; returns the last figures.
async fn settle(s: &Server, parent: &str, start: &Figures) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = Figures::now(s.state_dir(), parent);
        let back = f.mounts_total <= start.mounts_total
            && f.mounts_state <= start.mounts_state
            && f.cgroup_dirs <= start.cgroup_dirs
            && f.supervisors <= start.supervisors
            && f.fds <= start.fds
            // tokio's blocking threads retire after 10 s idle.
            && f.threads <= start.threads;
        if back || Instant::now() > deadline {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Cycles numbered `range`, `parallel` at once; prints the figures every
/// `every` cycles. Returns the failed count.
async fn run(
    s: &Server,
    token: &str,
    parent: &str,
    range: std::ops::Range<usize>,
    parallel: usize,
    every: Option<usize>,
) -> usize {
    let next = AtomicUsize::new(range.start);
    let errors = AtomicUsize::new(0);
    let workers = (0..parallel).map(|_| async {
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= range.end {
                break;
            }
            if let Err(e) = cycle(s, token, n).await {
                errors.fetch_add(1, Ordering::Relaxed);
                println!("cycle {n}: {e}");
            }
            let done = n + 1 - range.start;
            if every.is_some_and(|e| done.is_multiple_of(e)) {
                Figures::now(s.state_dir(), parent).print(&format!("after {done}"));
            }
        }
    });
    futures_util::future::join_all(workers).await;
    errors.into_inner()
}

fn main() {
    runtime::process::supervisor_entrypoint();
    support::without_malloc_thread_caches();
    support::init_logging();
    let cycles = env("GLASSBOX_SOAK_CYCLES", 200);
    let parallel = env("GLASSBOX_SOAK_PARALLEL", 8).max(1);
    // No warm pool by default: the pool starts a replacement for every
    // create, so concurrent creates grow it past its size, and the extra
    // entries expire only after minutes; the figures at the end would then
    // depend on that timing rather than on leaks. With the pool off, every
    // container of ours must be gone at the end.
    let warm_pool = env("GLASSBOX_WARM_POOL", 0);
    let rss_tolerance = env("GLASSBOX_SOAK_RSS_TOLERANCE_KIB", 16 * 1024) as u64;
    let heap_tolerance = env("GLASSBOX_SOAK_HEAP_TOLERANCE_KIB", 256) as u64;
    let parent = support::cgroup_parent("soak");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let failed = rt.block_on(async {
        let p = parent.clone();
        let mut s = Server::start(move |c| {
            c.cgroup_parent = Some(p);
            c.warm_pool = warm_pool;
            // Running shells would be claimed by these creates and refilled
            // between them: these figures are of the sandboxes themselves.
            c.shell_pool = 0;
            c.sessions.containers_per_session = parallel as u32 + 1;
            c.limits.default_memory_bytes = 64 << 20;
            c.limits.default_disk_bytes = 16 << 20;
        })
        .await;
        // No idle keep-alive connections: the server's fd count then says
        // what the server holds, not how many connections the client pools.
        s.http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        let token = s.session().await;
        println!("soak: {cycles} cycles, {parallel} at once, warm pool {warm_pool}");
        // Warm up at full concurrency (page cache, and the tokio and
        // allocator pools grow to what `parallel` cycles at once need),
        // then take the baseline with the warm pool full.
        let warm_errors = run(&s, &token, &parent, 0..parallel * 3, parallel, None).await;
        if warm_errors > 0 {
            println!("{warm_errors} warm-up cycles failed");
        }
        pool_full(&s, warm_pool).await;
        let start = Figures::now(s.state_dir(), &parent);
        start.print("start");

        let t0 = Instant::now();
        let first = parallel * 3;
        let every = (cycles / 10).max(1);
        let errors = run(
            &s,
            &token,
            &parent,
            first..first + cycles,
            parallel,
            Some(every),
        )
        .await;
        let took = t0.elapsed().as_secs_f64();
        println!(
            "{cycles} cycles in {took:.1} s ({:.1} ms per cycle, {:.1} cycles/s), {errors} failed",
            took * 1000.0 / cycles as f64,
            cycles as f64 / took
        );

        let refilled = pool_full(&s, warm_pool).await;
        let settled = settle(&s, &parent, &start).await;
        settled.print("end");
        // Hand the allocator's free memory back to the kernel: what RSS
        // keeps after this is memory still in use, not memory kept.
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        unsafe { libc::malloc_trim(0) };
        let end = Figures::now(s.state_dir(), &parent);
        end.print("end, trimmed");
        let mut bad = Vec::new();
        if errors > 0 {
            bad.push(format!("{errors} cycles failed"));
        }
        if !refilled {
            bad.push("the warm pool did not refill".to_string());
        }
        let grew = [
            ("mounts", start.mounts_total, end.mounts_total),
            (
                "mounts under the state dir",
                start.mounts_state,
                end.mounts_state,
            ),
            ("cgroup dirs", start.cgroup_dirs, end.cgroup_dirs),
            ("supervisors", start.supervisors, end.supervisors),
            ("server fds", start.fds, end.fds),
            (
                "server threads",
                start.threads as usize,
                end.threads as usize,
            ),
        ];
        for (what, a, b) in grew {
            if b > a {
                bad.push(format!("{what} grew {a} -> {b}"));
            }
        }
        let rss_growth = end.rss_kib.saturating_sub(start.rss_kib);
        println!(
            "server RSS {} -> {} KiB ({:+} KiB after malloc_trim, {:+} KiB before; tolerance \
             {rss_tolerance} KiB); threads {} -> {}; host processes {} -> {} (the host is shared: \
             not judged)",
            start.rss_kib,
            end.rss_kib,
            end.rss_kib as i64 - start.rss_kib as i64,
            settled.rss_kib as i64 - start.rss_kib as i64,
            start.threads,
            end.threads,
            start.host_procs,
            end.host_procs
        );
        if rss_growth > rss_tolerance {
            bad.push(format!("server RSS grew by {rss_growth} KiB"));
        }
        let heap_growth = end.heap_kib as i64 - start.heap_kib as i64;
        println!(
            "live heap {} -> {} KiB ({heap_growth:+} KiB, {:+.1} bytes a cycle, tolerance \
             {heap_tolerance} KiB)",
            start.heap_kib,
            end.heap_kib,
            heap_growth as f64 * 1024.0 / cycles.max(1) as f64
        );
        if heap_growth > heap_tolerance as i64 {
            bad.push(format!("the live heap grew by {heap_growth} KiB"));
        }
        s.stop().await;
        support::remove_cgroup_parent(&parent);
        for b in &bad {
            println!("SOAK FAILED: {b}");
        }
        if bad.is_empty() {
            println!("soak ok: nothing grew");
        }
        !bad.is_empty()
    });
    if failed {
        std::process::exit(1);
    }
}
