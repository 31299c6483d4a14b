//! Glassbox survives its own restarts and crashes: the real `glassbox`
//! binary (a child process) on a state dir, killed with SIGKILL in the
//! middle of a terminal session or at every step of a create and a delete
//! (`GLASSBOX_CRASH_AT`), stopped with SIGTERM in both shutdown modes, and
//! started again on the same state dir and port. After each restart a
//! container is either adopted (running, its shell answers) or gone, and
//! nothing of a gone one is left: no directory, mount, cgroup or supervisor.

mod common;

use common::{run_tests, TestFn, Ws};
use futures_util::{SinkExt, StreamExt};
use runtime::cgroups::{Cgroup, CgroupParent};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(15);

/// Where a crash at a step leaves the container after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Adopted,
    Gone,
}

macro_rules! crash {
    ($f:ident, $step:literal, $outcome:ident) => {
        (concat!($step), || Box::pin($f($step, Outcome::$outcome)))
    };
    (shell $step:literal, $outcome:ident) => {
        (concat!($step, " (a running shell entry)"), || {
            Box::pin(crash_create_in(true, $step, Outcome::$outcome))
        })
    };
}

fn main() {
    let tests: &[(&str, TestFn)] = &[
        (
            "kill9_mid_session_keeps_processes_and_replays_output_once",
            || Box::pin(kill9_mid_session()),
        ),
        ("sigterm_keeps_containers_or_stops_them", || {
            Box::pin(sigterm_modes())
        }),
        (
            "a_session_that_expires_while_down_is_removed_at_start",
            || Box::pin(expired_while_down()),
        ),
        crash!(crash_create, "create.state_dir_made", Gone),
        crash!(crash_create, "create.cgroup_made", Gone),
        crash!(crash_create, "create.config_written", Gone),
        crash!(crash_create, "create.rw_mounted", Gone),
        crash!(crash_create, "create.claimed", Gone),
        crash!(crash_create, "create.started", Gone),
        crash!(crash_create, "create.runtime_done", Gone),
        crash!(crash_create, "create.recorded", Adopted),
        crash!(shell "create.claimed", Gone),
        crash!(shell "create.config_written", Gone),
        crash!(shell "create.rw_mounted", Gone),
        crash!(shell "create.started", Gone),
        crash!(shell "create.recorded", Adopted),
        crash!(crash_delete, "delete.requested", Adopted),
        crash!(crash_delete, "delete.marked", Gone),
        crash!(crash_delete, "delete.killed", Gone),
        crash!(crash_delete, "delete.unmounted", Gone),
        crash!(crash_delete, "delete.cgroup_removed", Gone),
        crash!(crash_delete, "delete.record_deleted", Gone),
    ];
    run_tests(tests);
}

/// A `glassbox` process on a state dir.
struct Proc {
    child: tokio::process::Child,
    addr: SocketAddr,
    http: reqwest::Client,
}

/// The state dir of one test; dropping it (also on a failed assert) kills
/// the server and removes every container and warm entry left in it.
struct Dir {
    dir: tempfile::TempDir,
    pids: std::sync::Mutex<Vec<u32>>,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::Builder::new()
                .prefix("glassbox-restart-")
                .tempdir()
                .expect("state dir"),
            pids: Default::default(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Start the server (port 0: any); `env` adds settings such as a crash switch.
    /// `pool`: (parked, shell) warm entries to keep.
    async fn launch(&self, port: u16, pool: (usize, usize), env: &[(&str, &str)]) -> Proc {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_glassbox"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(self.path())
            .args(["--warm-pool", &pool.0.to_string()])
            .args(["--shell-pool", &pool.1.to_string()])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn glassbox");
        self.pids
            .lock()
            .unwrap()
            .push(child.id().expect("server pid"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let mut tx = Some(tx);
            // Keep draining: the server logs here too.
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("Glassbox is listening on http://") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim_end_matches('/').to_string());
                    }
                }
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("the server starts in time")
            .expect("the server printed its address");
        Proc {
            child,
            addr: addr.parse().expect("address"),
            http: reqwest::Client::new(),
        }
    }

    /// Pids of supervisors serving anything in this state dir.
    fn supervisors(&self) -> Vec<(i32, String)> {
        let want = self.path().to_string_lossy().into_owned();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.first().map(String::as_str) == Some("glassbox-supervisor")
                && args.iter().any(|a| a.starts_with(&want))
            {
                out.push((pid, args.join(" ")));
            }
        }
        out
    }

    fn container_dirs(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.path().join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| runtime::state::is_valid_id(n))
            .collect();
        ids.sort();
        ids
    }

    /// Assert that only the containers in `alive` have anything on the host.
    fn assert_only(&self, alive: &[String], also_gone: &[String]) {
        assert_eq!(
            self.container_dirs(),
            alive.to_vec(),
            "container directories"
        );
        let mounts = runtime::rootfs::rw::mounts_under(self.path());
        let expected: Vec<String> = alive
            .iter()
            .map(|id| {
                self.path()
                    .join("containers")
                    .join(id)
                    .join("rw")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(mounts, expected, "mounts under the state dir");
        for id in also_gone {
            if let Ok(cg) = Cgroup::planned(&CgroupParent(None), id) {
                let left: Vec<PathBuf> = cg.dirs().into_iter().filter(|d| d.exists()).collect();
                assert!(left.is_empty(), "cgroup dirs of {id} left: {left:?}");
            }
        }
        let sups = self.supervisors();
        assert!(
            sups.iter()
                .all(|(_, args)| alive.iter().any(|id| args.contains(id.as_str()))),
            "supervisors of removed containers or pool entries: {sups:?}"
        );
        assert_eq!(sups.len(), alive.len(), "one supervisor per container");
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Ok(rt) = runtime::Runtime::open(runtime::RuntimeOptions::new(self.path())) {
            let _ = rt.sweep(|_| false);
            let _ = rt.drain_pool();
        }
    }
}

impl Proc {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn session(&self) -> String {
        let v: Value = self
            .http
            .post(self.url("/api/v1/sessions"))
            .send()
            .await
            .expect("POST sessions")
            .json()
            .await
            .expect("session JSON");
        v["token"].as_str().expect("token").to_string()
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// A request that may kill the server: `None` if the connection died.
    async fn send(&self, method: reqwest::Method, token: &str, path: &str) -> Option<u16> {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if path == "/api/v1/containers" {
            req = req.json(&json!({"image": "busybox"}));
        }
        req.send().await.ok().map(|r| r.status().as_u16())
    }

    async fn create(&self, token: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/containers"))
            .bearer_auth(token)
            .json(&json!({"image": "busybox"}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("info");
        v["id"].as_str().expect("id").to_string()
    }

    async fn tty(&self, token: &str, id: &str, since: u64) -> Tty {
        let mut req = format!(
            "ws://{}/api/v1/containers/{id}/tty?since={since}",
            self.addr
        )
        .into_client_request()
        .expect("ws request");
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("tty upgrade");
        Tty {
            ws,
            pos: since,
            out: Vec::new(),
            close: None,
        }
    }

    async fn wait_exit(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.child.wait())
            .await
            .is_ok()
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }
}

/// A terminal socket that tracks its position in the output stream.
struct Tty {
    ws: Ws,
    pos: u64,
    out: Vec<u8>,
    close: Option<u16>,
}

impl Tty {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    async fn line(&mut self, line: &str) {
        self.ws
            .send(Message::Binary(format!("{line}\n").into_bytes().into()))
            .await
            .expect("send input");
    }

    /// Read until `done` holds on the output, the socket closes, or timeout.
    async fn read_until(&mut self, timeout: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.text()) {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) | Ok(None) | Ok(Some(Err(_))) => return done(&self.text()),
                Ok(Some(Ok(m))) => match m {
                    Message::Binary(b) => {
                        self.pos += b.len() as u64;
                        self.out.extend_from_slice(&b);
                    }
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        if v["type"] == "seq" {
                            self.pos = v["seq"].as_u64().expect("seq");
                        }
                        assert_ne!(v["type"], "gap", "no output may be lost: {v}");
                    }
                    Message::Close(f) => {
                        self.close = f.map(|f| u16::from(f.code));
                        return done(&self.text());
                    }
                    _ => {}
                },
            }
        }
        true
    }
}

/// The host pid of the process in `id` whose command contains `needle`.
async fn host_pid(p: &Proc, token: &str, id: &str, needle: &str) -> Option<u64> {
    let (_, procs) = p
        .get(token, &format!("/api/v1/containers/{id}/processes"))
        .await;
    procs
        .as_array()?
        .iter()
        .find(|e| e["cmd"].as_str().is_some_and(|c| c.contains(needle)))
        .and_then(|e| e["host_pid"].as_u64())
}

async fn shell_answers(p: &Proc, token: &str, id: &str) -> String {
    let mut tty = p.tty(token, id, 0).await;
    tty.line("echo shell-$((40+2)) $$").await;
    assert!(
        tty.read_until(T, |t| t.contains("shell-42 ")).await,
        "the adopted shell does not answer: {:?}",
        tty.text()
    );
    let text = tty.text();
    let at = text.rfind("shell-42 ").expect("answer") + "shell-42 ".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

async fn kill9_mid_session() {
    let dir = Dir::new();
    let mut p = dir.launch(0, (0, 0), &[]).await;
    let port = p.addr.port();
    let token = p.session().await;
    let id = p.create(&token).await;
    let mut tty = p.tty(&token, &id, 0).await;
    tty.line("sleep 1000 &").await;
    tty.line("echo before-$((1+1))").await;
    assert!(tty.read_until(T, |t| t.contains("before-2")).await);
    let sleep_pid = host_pid(&p, &token, &id, "sleep 1000")
        .await
        .expect("the sleep runs");
    let (_, info) = p.get(&token, &format!("/api/v1/containers/{id}")).await;
    let supervisor = info["supervisor_pid"].clone();
    // Output the shell makes while the server is down.
    tty.line("sleep 2; echo while-$((3*3))-down").await;
    // Everything echoed so far has arrived once the echo of the typed line has.
    assert!(tty.read_until(T, |t| t.contains("3*3")).await);
    let seen = tty.pos;
    p.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(p.wait_exit(T).await, "the server dies");
    drop(tty);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let p = dir.launch(port, (0, 0), &[]).await;
    assert_eq!(p.addr.port(), port, "same port");
    let (status, _) = p.get(&token, "/api/v1/sessions/current").await;
    assert_eq!(status, 200, "the session token still works");
    let (_, info) = p.get(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(info["state"], "running", "{info}");
    assert_eq!(info["supervisor_pid"], supervisor, "the same supervisor");
    assert_eq!(
        host_pid(&p, &token, &id, "sleep 1000").await,
        Some(sleep_pid),
        "the sleep started before the crash still runs, same pid"
    );
    let mut tty = p.tty(&token, &id, seen).await;
    tty.line("echo after-$((2+2))").await;
    assert!(tty.read_until(T, |t| t.contains("after-4")).await);
    let text = tty.text();
    assert_eq!(
        text.matches("while-9-down").count(),
        1,
        "the output made while down arrives exactly once: {text:?}"
    );
    assert!(
        !text.contains("before-2"),
        "nothing seen before is sent again: {text:?}"
    );
    dir.assert_only(std::slice::from_ref(&id), &[]);
}

async fn sigterm_modes() {
    let dir = Dir::new();
    let mut p = dir.launch(0, (1, 0), &[]).await;
    let port = p.addr.port();
    let token = p.session().await;
    let id = p.create(&token).await;
    let shell = shell_answers(&p, &token, &id).await;
    let mut tty = p.tty(&token, &id, 0).await;
    p.signal(nix::sys::signal::Signal::SIGTERM);
    tty.read_until(T, |_| false).await;
    assert_eq!(tty.close, Some(1012), "live restore closes with 1012");
    assert!(p.wait_exit(T).await, "SIGTERM stops the server");
    assert_eq!(
        dir.supervisors().len(),
        1,
        "the container's supervisor stays, the warm pool is drained"
    );

    let mut p = dir
        .launch(port, (0, 0), &[("GLASSBOX_SHUTDOWN", "stop")])
        .await;
    assert_eq!(
        shell_answers(&p, &token, &id).await,
        shell,
        "the same shell after the restart"
    );
    let mut tty = p.tty(&token, &id, 0).await;
    p.signal(nix::sys::signal::Signal::SIGTERM);
    tty.read_until(T, |_| false).await;
    assert_eq!(tty.close, Some(1001), "stopping closes with 1001");
    assert!(p.wait_exit(T).await, "SIGTERM stops the server");
    dir.assert_only(&[], std::slice::from_ref(&id));

    let p = dir.launch(port, (0, 0), &[]).await;
    let (status, _) = p.get(&token, "/api/v1/sessions/current").await;
    assert_eq!(status, 401, "a stopped server ended its sessions");
}

/// After a restart: the container is adopted (its shell answers) or gone,
/// and nothing else is left.
async fn check_outcome(dir: &Dir, p: &Proc, token: &str, before: &[String], want: Outcome) {
    let (status, list) = p.get(token, "/api/v1/containers").await;
    assert_eq!(status, 200, "the session survived: {list}");
    let ids: Vec<String> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    match want {
        Outcome::Adopted => {
            assert_eq!(ids.len(), 1, "adopted: {list}");
            assert_eq!(list[0]["state"], "running");
            shell_answers(p, token, &ids[0]).await;
        }
        Outcome::Gone => assert!(ids.is_empty(), "gone: {list}"),
    }
    let gone: Vec<String> = before
        .iter()
        .filter(|i| !ids.contains(i))
        .cloned()
        .collect();
    dir.assert_only(&ids, &gone);
}

async fn crash_create(step: &'static str, want: Outcome) {
    crash_create_in(false, step, want).await
}

/// Crash at `step` of a create: a cold one, a parked warm one (at
/// `create.claimed`), or with `shell`, one that claims a running shell
/// entry (it has its RW layer and supervisor from the start).
async fn crash_create_in(shell: bool, step: &'static str, want: Outcome) {
    let dir = Dir::new();
    let warm = usize::from(step == "create.claimed" && !shell);
    let pool = (warm, usize::from(shell));
    let mut p = dir.launch(0, pool, &[("GLASSBOX_CRASH_AT", step)]).await;
    let port = p.addr.port();
    let token = p.session().await;
    if pool != (0, 0) {
        let ready = common::eventually(T, || {
            runtime::pool::entries(&runtime::state::StateDir::open(dir.path()).expect("state"))
                .iter()
                .any(|e| {
                    runtime::pool::entry_dir(
                        &runtime::state::StateDir::open(dir.path()).expect("state"),
                        &e.id,
                    )
                    .join("ready")
                    .exists()
                })
        })
        .await;
        assert!(ready, "a warm entry gets ready");
    }
    let answer = p
        .send(reqwest::Method::POST, &token, "/api/v1/containers")
        .await;
    assert_eq!(answer, None, "the server dies at {step}");
    assert!(p.wait_exit(T).await, "the server dies at {step}");
    let before = dir.container_dirs();
    assert_eq!(before.len(), 1, "the create got as far as its directory");
    // The crash really left something for the restart to clean.
    let cgroup = Cgroup::planned(&CgroupParent(None), &before[0]).expect("planned cgroup");
    let has_cgroup = cgroup.dirs().iter().any(|d| d.exists());
    assert_eq!(
        has_cgroup,
        step != "create.state_dir_made",
        "cgroup left by a crash at {step}"
    );
    let mounted = !runtime::rootfs::rw::mounts_under(dir.path()).is_empty();
    let mounted_from = [
        "create.state_dir_made",
        "create.cgroup_made",
        "create.config_written",
    ];
    assert_eq!(
        mounted,
        shell || !mounted_from.contains(&step),
        "RW layer at {step}"
    );
    let supervised = !dir.supervisors().is_empty();
    assert_eq!(
        supervised,
        shell
            || [
                "create.claimed",
                "create.started",
                "create.runtime_done",
                "create.recorded"
            ]
            .contains(&step),
        "supervisor at {step}"
    );
    let p = dir.launch(port, (0, 0), &[]).await;
    check_outcome(&dir, &p, &token, &before, want).await;
}

async fn crash_delete(step: &'static str, want: Outcome) {
    let dir = Dir::new();
    let mut p = dir.launch(0, (0, 0), &[]).await;
    let port = p.addr.port();
    let token = p.session().await;
    let id = p.create(&token).await;
    p.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(p.wait_exit(T).await);
    let mut p = dir
        .launch(port, (0, 0), &[("GLASSBOX_CRASH_AT", step)])
        .await;
    let answer = p
        .send(
            reqwest::Method::DELETE,
            &token,
            &format!("/api/v1/containers/{id}"),
        )
        .await;
    assert_eq!(answer, None, "the server dies at {step}");
    assert!(p.wait_exit(T).await, "the server dies at {step}");
    let p = dir.launch(port, (0, 0), &[]).await;
    check_outcome(&dir, &p, &token, &[id], want).await;
}

async fn expired_while_down() {
    let dir = Dir::new();
    let idle = [("GLASSBOX_IDLE_TIMEOUT", "3")];
    let mut p = dir.launch(0, (0, 0), &idle).await;
    let port = p.addr.port();
    let token = p.session().await;
    let id = p.create(&token).await;
    p.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(p.wait_exit(T).await);
    assert_eq!(
        dir.container_dirs(),
        vec![id.clone()],
        "it outlives the server"
    );
    // The idle clock runs on while the server is down.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let p = dir.launch(port, (0, 0), &idle).await;
    let (status, _) = p.get(&token, "/api/v1/sessions/current").await;
    assert_eq!(status, 401, "the session expired while the server was down");
    dir.assert_only(&[], std::slice::from_ref(&id));
}
