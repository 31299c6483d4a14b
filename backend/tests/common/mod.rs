//! Helpers for the backend's integration tests and benchmarks: start the real
//! server in-process on a random port with a state dir of its own, and talk
//! to it with a real HTTP client and a real WebSocket client.
//!
//! The test binaries have their own `main` (`harness = false`): the
//! container supervisor is a re-exec of the running binary, so `main` must
//! call `runtime::process::supervisor_entrypoint()` before anything else,
//! which libtest's generated `main` cannot do.

#![allow(dead_code)]

use backend::config::Config;
use backend::ServerHandle;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type TestFn = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Run the tests (libtest-like output, so `scripts/test` can count them).
pub fn run_tests(tests: &[(&str, TestFn)]) {
    runtime::process::supervisor_entrypoint();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&(&str, TestFn)> = tests
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if !nix_is_root() {
        println!(
            "skipping {} tests: they need root (real containers)",
            selected.len()
        );
        println!(
            "test result: ok. 0 passed; 0 failed; {} ignored",
            selected.len()
        );
        return;
    }
    println!("\nrunning {} tests", selected.len());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut failed = Vec::new();
    let started = Instant::now();
    rt.block_on(async {
        // A few at a time: the host has two cores and real containers are made.
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(3));
        let mut handles = Vec::new();
        for (name, f) in &selected {
            let gate = gate.clone();
            let name = name.to_string();
            let fut = f();
            handles.push((
                name,
                tokio::spawn(async move {
                    let _p = gate.acquire().await;
                    let t = Instant::now();
                    let r = tokio::time::timeout(Duration::from_secs(120), fut).await;
                    (r.is_ok(), t.elapsed())
                }),
            ));
        }
        for (name, h) in handles {
            match h.await {
                Ok((true, took)) => println!("test {name} ... ok ({:.1}s)", took.as_secs_f64()),
                Ok((false, _)) => {
                    println!("test {name} ... FAILED (timed out)");
                    failed.push(name);
                }
                Err(_) => {
                    println!("test {name} ... FAILED");
                    failed.push(name);
                }
            }
        }
    });
    let passed = selected.len() - failed.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; finished in {:.1}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(101);
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A server with a state dir of its own; removes everything when done.
pub struct Server {
    pub addr: SocketAddr,
    pub handle: Option<ServerHandle>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("glassbox-test-")
            .tempdir()
            .expect("temp state dir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            state_dir: dir.path().to_path_buf(),
            stats_interval_ms: 100,
            // Tests end with nothing left running unless they ask otherwise.
            shutdown: backend::config::ShutdownMode::Stop,
            ..Config::default()
        };
        config.sessions.reap_interval_ms = 100;
        // A small pool of running shells: creates with nothing but limits
        // take one when it is ready (as in production), cold otherwise,
        // and a test's server starts without making eight of them.
        config.shell_pool = 2;
        // Every test client is 127.0.0.1: rates are lifted unless a test
        // sets them (bursts and refills both: a 10,000-cycle soak or a
        // 1,000-sandbox fleet goes far past any burst).
        config.rate = backend::config::RateLimits {
            sessions_burst: 1000,
            sessions_per_minute: 60_000,
            containers_burst: 1000,
            containers_per_minute: 60_000,
            sockets_burst: 1000,
            sockets_per_minute: 60_000,
            resize_burst: 1000,
            ..backend::config::RateLimits::default()
        };
        tweak(&mut config);
        let (addr, handle) = backend::serve(config).await.expect("server starts");
        Server {
            addr,
            handle: Some(handle),
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new session; returns its token.
    pub async fn session(&self) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/sessions"))
            .send()
            .await
            .expect("POST sessions");
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("session JSON");
        v["token"].as_str().expect("token").to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Create a busybox container; returns its info.
    pub async fn container(&self, token: &str, extra: Value) -> Value {
        let mut body = json!({"image": "busybox"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, v) = self.post(token, "/api/v1/containers", &body).await;
        assert_eq!(status, 201, "create failed: {v}");
        v
    }

    /// Open a WebSocket with a Bearer token (and optional extra headers).
    pub async fn ws(&self, token: &str, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        let mut req = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .expect("ws request");
        if !token.is_empty() {
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
            );
        }
        for (k, v) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                .expect("header name");
            req.headers_mut()
                .insert(name, HeaderValue::from_str(v).expect("header"));
        }
        // tungstenite zero-fills its read buffer (128 KiB by default) before
        // each read: in a burst of 50 creates that client work, on the
        // server's own CPUs, cost as much as a tenth of the server's. A
        // browser reads elsewhere.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(16 * 1024);
        match tokio_tungstenite::connect_async_with_config(req, Some(config), false).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("ws connect: {e}"),
        }
    }

    /// Every cgroup directory of a container, from its record in the state dir.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        let config: Value = serde_json::from_slice(
            &std::fs::read(
                self.state_dir()
                    .join("containers")
                    .join(id)
                    .join("config.json"),
            )
            .expect("config.json"),
        )
        .expect("config JSON");
        config["cgroup"]["dirs"]
            .as_object()
            .expect("cgroup dirs")
            .values()
            .map(|v| PathBuf::from(v.as_str().expect("dir")))
            .collect()
    }

    /// Host mounts under the state dir (the RW-layer tmpfs of each container).
    /// Mounts of containers (their RW layers); warm containers in the
    /// runtime's pool are not counted.
    pub fn mounts(&self) -> Vec<String> {
        runtime::rootfs::rw::mounts_under(&self.state_dir().join("containers"))
    }

    /// Shut down; afterwards nothing of ours is mounted, warm pool included.
    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
        let left = runtime::rootfs::rw::mounts_under(self.state_dir());
        assert!(left.is_empty(), "mounts left after shutdown: {left:?}");
    }
}

/// Terminal output and control messages read from a tty socket.
#[derive(Default, Debug)]
pub struct Term {
    pub output: Vec<u8>,
    pub controls: Vec<Value>,
    pub close: Option<(u16, String)>,
}

impl Term {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Read from a socket until `done` holds, the socket closes, or `timeout`.
pub async fn read_until(
    ws: &mut Ws,
    term: &mut Term,
    timeout: Duration,
    done: impl Fn(&Term) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(term) {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        match next {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return done(term),
            Ok(Some(Ok(m))) => match m {
                Message::Binary(b) => term.output.extend_from_slice(&b),
                Message::Text(t) => {
                    term.controls
                        .push(serde_json::from_str(t.as_str()).unwrap_or(Value::Null));
                }
                Message::Close(f) => {
                    term.close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return done(term);
                }
                _ => {}
            },
        }
    }
    true
}

/// Type a line into a terminal.
pub async fn type_line(ws: &mut Ws, line: &str) {
    ws.send(Message::Binary(format!("{line}\n").into_bytes().into()))
        .await
        .expect("send input");
}

/// Wait until the socket closes; returns its close code.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    let mut t = Term::default();
    read_until(ws, &mut t, Duration::from_secs(10), |t| t.close.is_some()).await;
    t.close.map(|c| c.0)
}

/// Poll until `f` holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
