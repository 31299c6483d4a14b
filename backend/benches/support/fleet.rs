//! Many sandboxes at once: one session with one busybox shell container
//! each, made a few at a time, with failures counted by kind instead of
//! panicking (how far a host gets is one of the figures).

use crate::common::Server;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The real server, in this process, sized for a fleet of `n` sandboxes
/// (sessions, per-address sessions and containers with room to spare) with
/// its containers under the cgroup `parent`; `tweak` sets the rest.
pub async fn server(
    parent: &str,
    n: usize,
    tweak: impl FnOnce(&mut backend::config::Config) + Send + 'static,
) -> Server {
    let parent = parent.to_string();
    Server::start(move |c| {
        c.cgroup_parent = Some(parent);
        c.sessions.max_total = n as u32 + 10;
        c.sessions.max_per_ip = n as u32 + 10;
        c.capacity.max_containers = n as u32 + 10;
        tweak(c);
    })
    .await
}

pub struct Sandbox {
    pub token: String,
    pub id: String,
}

/// Failures by kind ("create 503 out_of_capacity", "tty timeout", ...).
#[derive(Default)]
pub struct Errors(Mutex<BTreeMap<String, usize>>);

impl Errors {
    pub fn add(&self, kind: impl Into<String>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(kind.into()).or_default() += 1;
    }

    pub fn total(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    pub fn print(&self, label: &str) {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_empty() {
            println!("{label}: 0 errors");
        }
        for (k, n) in m.iter() {
            println!("{label}: {n} x {k}");
        }
    }
}

fn kind(what: &str, status: u16, body: &Value) -> String {
    let code = body["error"]["code"].as_str().unwrap_or("");
    let limit = body["error"]["limit"].as_str().unwrap_or("");
    format!("{what} {status} {code} {limit}")
        .trim_end()
        .to_string()
}

/// A session and a container in it.
pub async fn sandbox(s: &Server) -> Result<Sandbox, String> {
    let r = s
        .http
        .post(s.url("/api/v1/sessions"))
        .send()
        .await
        .map_err(|e| format!("session request: {e}"))?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if status != 201 {
        return Err(kind("session", status, &v));
    }
    let token = v["token"].as_str().unwrap_or("").to_string();
    let (status, c) = s
        .post(&token, "/api/v1/containers", &json!({"image": "busybox"}))
        .await;
    if status != 201 {
        return Err(kind("create", status, &c));
    }
    let id = c["id"].as_str().unwrap_or("").to_string();
    Ok(Sandbox { token, id })
}

/// Make up to `n` sandboxes, `parallel` at once; stops starting new ones
/// after `max_errors` failures. Prints progress every `every`.
pub async fn make(
    s: &Server,
    n: usize,
    parallel: usize,
    max_errors: usize,
    errors: &Errors,
) -> Vec<Sandbox> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let made = Mutex::new(Vec::with_capacity(n));
    let every = (n / 10).max(1);
    let t0 = std::time::Instant::now();
    let workers = (0..parallel.max(1)).map(|_| async {
        while !stop.load(Ordering::Relaxed) {
            if next.fetch_add(1, Ordering::Relaxed) >= n {
                break;
            }
            match sandbox(s).await {
                Ok(b) => {
                    let mut m = made.lock().unwrap_or_else(|p| p.into_inner());
                    m.push(b);
                    if m.len().is_multiple_of(every) {
                        println!(
                            "  {} sandboxes up ({:.1} s)",
                            m.len(),
                            t0.elapsed().as_secs_f64()
                        );
                    }
                }
                Err(e) => {
                    errors.add(e);
                    if errors.total() >= max_errors {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    made.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Delete every sandbox's container and end its session.
pub async fn remove(s: &Server, sandboxes: Vec<Sandbox>, parallel: usize) {
    let queue = Mutex::new(sandboxes);
    let workers = (0..parallel.max(1)).map(|_| async {
        loop {
            let Some(b) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                break;
            };
            s.delete(&b.token, &format!("/api/v1/containers/{}", b.id))
                .await;
            s.delete(&b.token, "/api/v1/sessions/current").await;
        }
    });
    futures_util::future::join_all(workers).await;
}

/// Memory of the server, its supervisors and its containers, KiB.
pub struct Memory {
    pub server_rss: u64,
    pub supervisors: usize,
    pub sup_pss: u64,
    pub sup_rss: u64,
    pub charged: u64,
}

impl Memory {
    pub fn now(s: &Server, parent: &str) -> Memory {
        let sups = super::supervisors(s.state_dir());
        let (mut pss, mut rss) = (0, 0);
        for p in &sups {
            let (a, b) = super::pss_rss_kib(*p);
            pss += a;
            rss += b;
        }
        Memory {
            server_rss: super::kib_field("/proc/self/status", "VmRSS"),
            supervisors: sups.len(),
            sup_pss: pss,
            sup_rss: rss,
            charged: super::charged_memory(parent) / 1024,
        }
    }

    /// Print the per-sandbox cost of `n` sandboxes over `base` (taken with
    /// none up); returns KiB per sandbox (server RSS delta + supervisor PSS
    /// + charged).
    pub fn per_sandbox(&self, base: &Memory, n: usize) -> f64 {
        let n = n.max(1) as f64;
        let server = self.server_rss.saturating_sub(base.server_rss) as f64;
        let sup_pss = self.sup_pss.saturating_sub(base.sup_pss) as f64;
        let sup_rss = self.sup_rss.saturating_sub(base.sup_rss) as f64;
        let charged = self.charged.saturating_sub(base.charged) as f64;
        let total = server + sup_pss + charged;
        println!(
            "memory per sandbox: {:.0} KiB = server RSS delta {:.0} + supervisor PSS {:.0} \
             (RSS {:.0}) + charged to the container cgroup {:.0}  [{} supervisors; totals: \
             server RSS {} KiB, supervisors PSS {} KiB, charged {} KiB]",
            total / n,
            server / n,
            sup_pss / n,
            sup_rss / n,
            charged / n,
            self.supervisors,
            self.server_rss,
            self.sup_pss,
            self.charged
        );
        total / n
    }
}
