//! API create → first byte (and first prompt) on the tty socket, at 1 and at
//! N concurrent creates. Prints p50/p99. Needs root.
//!
//! GLASSBOX_BENCH_ITERS (default 30) sequential runs; GLASSBOX_BENCH_CONCURRENCY
//! (default 50) creates at once, GLASSBOX_BENCH_ROUNDS (default 2) times.
//! GLASSBOX_SHELL_POOL and GLASSBOX_WARM_POOL set the server's pool of
//! running shells and of parked entries (default: the server's defaults);
//! each run and each round starts once the pool is full and ready again.
//!
//! Each user creates over an HTTP/1.1 connection of its own, opened before
//! the clock starts, as a browser that has loaded the page holds one: a
//! bare hyper client connection, not the tests' shared reqwest client,
//! whose pool, redirect and retry layers were a tenth of the host's CPU
//! in a burst, on the machine the server is measured on.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One user: a session's token and an open HTTP/1.1 connection.
struct User {
    token: String,
    http: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl User {
    async fn connect(s: &Server, token: &str) -> User {
        let tcp = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let (http, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        User {
            token: token.to_string(),
            http,
        }
    }

    /// `POST /api/v1/containers` for busybox; the new container's id.
    async fn create(&mut self, s: &Server) -> String {
        let req = hyper::Request::post("/api/v1/containers")
            .header("host", s.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"image":"busybox"}"#)))
            .expect("request");
        self.http.ready().await.expect("connection ready");
        let resp = self.http.send_request(req).await.expect("create sent");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            status,
            201,
            "create failed: {}",
            String::from_utf8_lossy(&body)
        );
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        v["id"].as_str().expect("id").to_string()
    }
}

/// (create → its response, create → first output byte, create → prompt
/// "# "), one container, and its terminal, still open.
async fn one(s: &Server, user: &mut User) -> (Duration, Duration, Duration, String, Ws) {
    let t0 = Instant::now();
    let id = user.create(s).await;
    let created = t0.elapsed();
    let token = user.token.as_str();
    let mut ws = s
        .ws(token, &format!("/api/v1/containers/{id}/tty"), &[])
        .await
        .expect("tty");
    let mut first = None;
    let mut seen = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Binary(b) = m {
            first.get_or_insert_with(|| t0.elapsed());
            seen.extend_from_slice(&b);
            if seen.windows(2).any(|w| w == b"# ") {
                break;
            }
        }
    }
    let prompt = t0.elapsed();
    (created, first.unwrap_or(prompt), prompt, id, ws)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

#[derive(Default)]
struct Times {
    created: Vec<Duration>,
    first: Vec<Duration>,
    prompt: Vec<Duration>,
}

impl Times {
    fn push(&mut self, (created, first, prompt): (Duration, Duration, Duration)) {
        self.created.push(created);
        self.first.push(first);
        self.prompt.push(prompt);
    }
}

fn report(label: &str, t: &mut Times) {
    println!(
        "{label:<28} n={:<4} first byte p50 {:>6.1} ms  p99 {:>6.1} ms | prompt p50 {:>6.1} ms  p99 {:>6.1} ms",
        t.first.len(),
        pct(&mut t.first, 0.5),
        pct(&mut t.first, 0.99),
        pct(&mut t.prompt, 0.5),
        pct(&mut t.prompt, 0.99)
    );
    println!(
        "{:<28}        (of which the create's response: p50 {:>6.1} ms  p99 {:>6.1} ms)",
        "",
        pct(&mut t.created, 0.5),
        pct(&mut t.created, 0.99),
    );
}

/// Wait (up to 60 s) until the runtime's warm pool is full and every entry ready.
async fn pool_full(s: &Server) {
    let Some(handle) = s.handle.as_ref() else {
        return;
    };
    let rt = handle.state.runtime.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let unready = |rt: &runtime::Runtime| {
        rt.pool_short() || rt.pool_entries().iter().any(|e| !rt.pool_entry_ready(e))
    };
    while unready(&rt) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    runtime::process::supervisor_entrypoint();
    support::init_logging();
    let iters = env("GLASSBOX_BENCH_ITERS", 30);
    let conc = env("GLASSBOX_BENCH_CONCURRENCY", 50);
    let rounds = env("GLASSBOX_BENCH_ROUNDS", 2);
    let defaults = backend::config::Config::default();
    let warm_pool = env("GLASSBOX_WARM_POOL", defaults.warm_pool);
    let shell_pool = env("GLASSBOX_SHELL_POOL", defaults.shell_pool);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let s = Server::start(|c| {
            c.sessions.containers_per_session = 1000;
            c.capacity.max_containers = 1000;
            c.limits.default_memory_bytes = 64 << 20;
            c.limits.default_disk_bytes = 16 << 20;
            c.warm_pool = warm_pool;
            c.shell_pool = shell_pool;
        })
        .await;
        let s = Arc::new(s);
        println!("pool: {shell_pool} running shells, {warm_pool} parked");
        let token = s.session().await;
        let mut user = User::connect(&s, &token).await;
        // Warm up (image, page cache).
        for _ in 0..3 {
            let (_, _, _, id, _) = one(&s, &mut user).await;
            s.delete(&token, &format!("/api/v1/containers/{id}")).await;
        }
        let mut times = Times::default();
        for _ in 0..iters {
            pool_full(&s).await;
            let (c, f, p, id, _) = one(&s, &mut user).await;
            times.push((c, f, p));
            s.delete(&token, &format!("/api/v1/containers/{id}")).await;
        }
        report("1 at a time", &mut times);
        let mut times = Times::default();
        let mut cpu_ms = 0.0;
        for _ in 0..rounds {
            pool_full(&s).await;
            let mut users = Vec::with_capacity(conc);
            for _ in 0..conc {
                users.push(User::connect(&s, &token).await);
            }
            support::quiet_host(Duration::from_secs(30)).await;
            let (busy0, _) = support::host_cpu();
            // Each create is a task of its own, as each browser's is.
            let runs = users.into_iter().map(|mut user| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { (one(&s, &mut user).await, user) })
            });
            let results = futures_util::future::join_all(runs).await;
            let results = results.into_iter().map(|r| r.expect("a create task"));
            let (busy1, _) = support::host_cpu();
            cpu_ms += (busy1 - busy0) as f64 * 1000.0 / support::clock_ticks();
            // The terminals and the users' HTTP connections close after the
            // round, as 50 users keep the page and the terminal they opened:
            // closing each at its prompt would add a teardown (both ends of
            // its sockets, the supervisor's detach) to the burst that no
            // user's create makes.
            for ((c, f, p, id, _terminal), _user) in results {
                times.push((c, f, p));
                s.delete(&token, &format!("/api/v1/containers/{id}")).await;
            }
        }
        report(&format!("{conc} concurrent"), &mut times);
        println!(
            "{:<28} host CPU per create {:.2} ms (all processes, the client included)",
            "",
            cpu_ms / (rounds * conc).max(1) as f64
        );
        match Arc::try_unwrap(s) {
            Ok(s) => s.stop().await,
            Err(_) => panic!("a create task still holds the server"),
        }
    });
}
