//! The API end to end: the real server on a random port, real containers (as
//! root), a real HTTP client and a real WebSocket client.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        fn main() {
            run_tests(&[$((stringify!($name), || Box::pin($name()))),*]);
        }
    };
}

tests!(
    terminal_echo_resize_exec_and_replay,
    oom_kill_and_lifecycle_events,
    delete_removes_cgroups_and_mounts,
    sessions_cannot_see_each_other,
    bad_http_input_gets_clear_errors,
    bad_websocket_input_closes_with_a_code,
    slow_reader_stalls_only_its_container,
    capacity_full_is_503,
    idle_sessions_expire_and_lose_their_containers,
    stop_restart_and_limits,
    extend_pushes_the_idle_deadline_only,
    egress_is_refused_unless_the_operator_enabled_it,
    session_creation_is_rate_limited_per_client,
    forwarded_for_from_an_untrusted_peer_is_ignored,
    container_creation_and_sockets_are_rate_limited,
    a_resize_flood_is_held_and_the_last_size_wins,
    running_shells_are_claimed_with_default_or_asked_limits,
    a_short_command_s_exit_is_an_event,
);

const T: Duration = Duration::from_secs(15);

fn controls_of(term: &Term, kind: &str) -> Vec<Value> {
    term.controls
        .iter()
        .filter(|c| c["type"] == kind)
        .cloned()
        .collect()
}

/// The session's events socket.
async fn events(s: &Server, token: &str) -> Ws {
    s.ws(token, "/api/v1/events", &[])
        .await
        .expect("events upgrade")
}

/// The first event of this kind about this container, if one came.
fn event_of(t: &Term, kind: &str, id: &str) -> Option<Value> {
    t.controls
        .iter()
        .find(|m| m["kind"] == "event" && m["event"]["type"] == kind && m["event"]["id"] == id)
        .cloned()
}

async fn terminal_echo_resize_exec_and_replay() {
    let s = Server::start(|_| {}).await;
    let token = s.session().await;
    let c = s.container(&token, json!({"name": "box"})).await;
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["name"], "box");
    assert_eq!(c["state"], "running");

    let mut ws = s
        .ws(&token, &format!("/api/v1/containers/{id}/tty"), &[])
        .await
        .expect("tty upgrade");
    let mut term = Term::default();
    type_line(&mut ws, "echo $((6*7))").await;
    assert!(
        read_until(&mut ws, &mut term, T, |t| t.text().contains("\n42")).await,
        "no 42 in {:?}",
        term.text()
    );
    assert_eq!(controls_of(&term, "attached").len(), 1);
    assert_eq!(controls_of(&term, "seq")[0]["seq"], 0);

    ws.send(Message::Text(
        r#"{"type":"resize","cols":123,"rows":45}"#.into(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    type_line(&mut ws, "stty size").await;
    assert!(
        read_until(&mut ws, &mut term, T, |t| t.text().contains("45 123")).await,
        "stty size did not follow: {:?}",
        term.text()
    );
    // Absurd sizes are clamped, not refused.
    ws.send(Message::Text(
        r#"{"type":"resize","cols":4000000000,"rows":99999}"#.into(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    type_line(&mut ws, "stty size").await;
    assert!(
        read_until(&mut ws, &mut term, T, |t| t.text().contains("500 1000")).await,
        "absurd resize not clamped: {:?}",
        term.text()
    );

    // Reconnect with replay: everything after `since` comes back, exactly.
    let seen = term.output.len() as u64;
    drop(ws);
    let mut ws = s
        .ws(&token, &format!("/api/v1/containers/{id}/tty?since=5"), &[])
        .await
        .unwrap();
    let mut again = Term::default();
    read_until(&mut ws, &mut again, T, |t| {
        t.output.len() as u64 >= seen - 5
    })
    .await;
    assert_eq!(controls_of(&again, "seq")[0]["seq"], 5);
    // (The shell may have printed more after the first socket stopped reading.)
    assert!(again.output.starts_with(&term.output[5..seen as usize]));
    type_line(&mut ws, "echo still-$((1+1))").await;
    assert!(read_until(&mut ws, &mut again, T, |t| t.text().contains("still-2")).await);

    // exec joins the container's PID namespace.
    let (status, info) = s.get(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(status, 200);
    let pid_ns = info["namespaces"]["pid"]["inode"].as_u64().unwrap();
    assert_ne!(
        pid_ns,
        info["namespaces"]["pid"]["host_inode"].as_u64().unwrap()
    );
    let mut ex = s
        .ws(
            &token,
            &format!("/api/v1/containers/{id}/exec?cmd=/bin/readlink&cmd=/proc/self/ns/pid"),
            &[],
        )
        .await
        .expect("exec upgrade");
    let mut out = Term::default();
    read_until(&mut ex, &mut out, T, |t| t.close.is_some()).await;
    assert!(
        out.text().contains(&format!("pid:[{pid_ns}]")),
        "exec saw {:?}, want pid:[{pid_ns}]",
        out.text()
    );
    assert_eq!(controls_of(&out, "exit")[0]["code"], 0);
    assert_eq!(out.close.as_ref().map(|c| c.0), Some(1000));

    // The processes view shows the exec'd process is gone and the shell is there.
    let (status, procs) = s
        .get(&token, &format!("/api/v1/containers/{id}/processes"))
        .await;
    assert_eq!(status, 200);
    assert!(procs
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["cmd"].as_str().unwrap_or("").contains("sh")));
    // A closed socket does not kill the container.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, info) = s.get(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(info["state"], "running");
    s.stop().await;
}

async fn oom_kill_and_lifecycle_events() {
    let s = Server::start(|_| {}).await;
    let token = s.session().await;
    let mut ev = events(&s, &token).await;
    let c = s
        .container(
            &token,
            json!({"cmd": ["tail", "/dev/zero"], "limits": {"memory_bytes": 32 * 1024 * 1024}}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let mut t = Term::default();
    let has = |t: &Term, kind: &str| event_of(t, kind, &id).is_some();
    assert!(
        read_until(&mut ev, &mut t, Duration::from_secs(30), |t| {
            has(t, "oom_kill")
                && has(t, "exited")
                && t.controls
                    .iter()
                    .any(|m| m["kind"] == "stats" && m["id"] == id)
        })
        .await,
        "no oom_kill/exited event: {:?}",
        t.controls
            .iter()
            .filter(|m| m["kind"] == "event")
            .collect::<Vec<_>>()
    );
    assert!(has(&t, "created"));
    let stats = t
        .controls
        .iter()
        .find(|m| m["kind"] == "stats" && m["id"] == id)
        .expect("a stats message");
    assert_eq!(stats["stats"]["memory_limit"], 32 * 1024 * 1024);
    let (_, info) = s.get(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(info["state"], "exited");
    assert_eq!(info["oom_killed"], true);
    let (status, _) = s.delete(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(status, 204);
    assert!(read_until(&mut ev, &mut t, T, |t| has(t, "removed")).await);
    s.stop().await;
}

async fn delete_removes_cgroups_and_mounts() {
    let s = Server::start(|_| {}).await;
    let token = s.session().await;
    let c = s.container(&token, json!({})).await;
    let id = c["id"].as_str().unwrap().to_string();
    let dirs = s.cgroup_dirs(&id);
    assert!(!dirs.is_empty() && dirs.iter().all(|d| d.exists()));
    assert!(!s.mounts().is_empty(), "the RW layer should be mounted");
    let (status, _) = s.delete(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(status, 204);
    let leftover: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(leftover.is_empty(), "cgroup dirs left: {leftover:?}");
    assert!(s.mounts().is_empty(), "mounts left: {:?}", s.mounts());
    assert!(!s.state_dir().join("containers").join(&id).exists());
    let (status, body) = s.get(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    s.stop().await;
}

async fn sessions_cannot_see_each_other() {
    let s = Server::start(|_| {}).await;
    let (a, b) = (s.session().await, s.session().await);
    let c = s.container(&a, json!({"name": "mine"})).await;
    let id = c["id"].as_str().unwrap().to_string();
    // The same name in another session is fine: names are per session.
    s.container(&b, json!({"name": "mine"})).await;
    let (_, list) = s.get(&b, "/api/v1/containers").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_ne!(list[0]["id"], id.as_str());
    for path in ["", "/stats", "/processes", "/diff"] {
        let (status, body) = s.get(&b, &format!("/api/v1/containers/{id}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    // A prefix or the name of A's container does not reach it either.
    assert_eq!(
        s.get(&b, &format!("/api/v1/containers/{}", &id[..6]))
            .await
            .0,
        404
    );
    assert_eq!(
        s.get(&a, &format!("/api/v1/containers/{}", &id[..6]))
            .await
            .0,
        404
    );
    assert_eq!(
        s.ws(&b, &format!("/api/v1/containers/{id}/tty"), &[])
            .await
            .err(),
        Some(404)
    );
    assert_eq!(
        s.ws(&b, &format!("/api/v1/containers/{id}/exec"), &[])
            .await
            .err(),
        Some(404)
    );
    assert_eq!(
        s.delete(&b, &format!("/api/v1/containers/{id}")).await.0,
        404
    );
    let (status, info) = s.get(&a, &format!("/api/v1/containers/{id}")).await;
    assert_eq!((status, info["state"].as_str()), (200, Some("running")));
    // Ending session A removes its containers, not B's.
    assert_eq!(s.delete(&a, "/api/v1/sessions/current").await.0, 204);
    assert_eq!(s.get(&a, "/api/v1/containers").await.0, 401);
    assert!(!s.state_dir().join("containers").join(&id).exists());
    assert_eq!(
        s.get(&b, "/api/v1/containers")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

async fn bad_http_input_gets_clear_errors() {
    let s = Server::start(|c| c.sessions.containers_per_session = 1).await;
    let token = s.session().await;
    let create = s.url("/api/v1/containers");
    let raw = |body: &'static str| {
        s.http
            .post(&create)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
    };
    let check = |status: u16, want: u16, v: &Value, code: &str| {
        assert_eq!(status, want, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };
    let r = raw(r#"{"image": "busybox""#).send().await.unwrap();
    check(
        r.status().as_u16(),
        400,
        &r.json().await.unwrap(),
        "malformed_json",
    );
    let r = raw(r#"{"image": "busybox", "privileged": true}"#)
        .send()
        .await
        .unwrap();
    check(
        r.status().as_u16(),
        400,
        &r.json().await.unwrap(),
        "bad_request",
    );
    let r = raw(r#"{"image": 7}"#).send().await.unwrap();
    check(
        r.status().as_u16(),
        400,
        &r.json().await.unwrap(),
        "bad_request",
    );
    let r = raw(r#"{"image": "busybox", "limits": {"cpus": 2}}"#)
        .send()
        .await
        .unwrap();
    check(
        r.status().as_u16(),
        400,
        &r.json().await.unwrap(),
        "bad_request",
    );
    let (st, v) = s
        .post(
            &token,
            "/api/v1/containers",
            &json!({"image": "nosuchimage"}),
        )
        .await;
    check(st, 400, &v, "bad_request");
    let (st, v) = s
        .post(
            &token,
            "/api/v1/containers",
            &json!({"image": "busybox", "name": "../x"}),
        )
        .await;
    check(st, 400, &v, "bad_request");
    let (st, v) = s
        .post(
            &token,
            "/api/v1/containers",
            &json!({"image": "busybox", "limits": {"memory_bytes": 1u64 << 40}}),
        )
        .await;
    check(st, 422, &v, "limit_exceeded");
    assert_eq!(v["error"]["limit"], "memory_bytes");
    let (st, v) = s
        .post(
            &token,
            "/api/v1/containers",
            &json!({"image": "busybox", "limits": {"pids": 1000000}}),
        )
        .await;
    check(st, 422, &v, "limit_exceeded");
    assert_eq!(v["error"]["limit"], "pids");
    // Too big: 413, as JSON.
    let big = format!(r#"{{"image":"busybox","name":"{}"}}"#, "a".repeat(100_000));
    let r = s
        .http
        .post(&create)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    check(
        r.status().as_u16(),
        413,
        &r.json().await.unwrap(),
        "too_large",
    );
    let r = s
        .http
        .post(&create)
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    check(
        r.status().as_u16(),
        415,
        &r.json().await.unwrap(),
        "unsupported_media_type",
    );
    // No token, a wrong token.
    let r = s
        .http
        .get(s.url("/api/v1/containers"))
        .send()
        .await
        .unwrap();
    check(
        r.status().as_u16(),
        401,
        &r.json().await.unwrap(),
        "unauthorized",
    );
    let (st, v) = s.get(&"0".repeat(64), "/api/v1/containers").await;
    check(st, 401, &v, "unauthorized");
    assert_eq!(s.ws("", "/api/v1/events", &[]).await.err(), Some(401));
    // Conflicts: the per-session cap names its limit; a name in use is 409.
    let c = s.container(&token, json!({"name": "one"})).await;
    let (st, v) = s
        .post(&token, "/api/v1/containers", &json!({"image": "busybox"}))
        .await;
    check(st, 422, &v, "limit_exceeded");
    assert_eq!(v["error"]["limit"], "containers_per_session");
    let token2 = s.session().await;
    s.container(&token2, json!({"name": "one"})).await;
    let (st, v) = s
        .post(
            &token2,
            "/api/v1/containers",
            &json!({"image": "busybox", "name": "one"}),
        )
        .await;
    assert!(st == 409 || st == 422, "{st} {v}");
    // Nothing changed for the first session.
    let (_, list) = s.get(&token, "/api/v1/containers").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], c["id"]);
    // Origins: a foreign Origin is 403; a cookie without any Origin is 403.
    let id = c["id"].as_str().unwrap();
    let path = format!("/api/v1/containers/{id}/tty");
    assert_eq!(
        s.ws(&token, &path, &[("origin", "http://evil.example")])
            .await
            .err(),
        Some(403)
    );
    let cookie = format!("glassbox_session={token}");
    assert_eq!(
        s.ws("", &path, &[("cookie", &cookie)]).await.err(),
        Some(403)
    );
    let same = format!("http://{}", s.addr);
    assert!(s
        .ws("", &path, &[("cookie", &cookie), ("origin", &same)])
        .await
        .is_ok());
    assert!(s.ws(&token, &path, &[("origin", &same)]).await.is_ok());
    let r = s
        .http
        .get(s.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    check(
        r.status().as_u16(),
        404,
        &r.json().await.unwrap(),
        "not_found",
    );
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("glassbox_errors_total{code=\"limit_exceeded\"}"));
    assert!(metrics.contains("glassbox_container_create_seconds_count"));
    s.stop().await;
}

async fn bad_websocket_input_closes_with_a_code() {
    let s = Server::start(|c| c.ws.max_message_bytes = 4096).await;
    let token = s.session().await;
    let c = s.container(&token, json!({})).await;
    let path = format!("/api/v1/containers/{}/tty", c["id"].as_str().unwrap());
    let cases: [(Message, u16); 4] = [
        (Message::Binary(vec![b'x'; 10_000].into()), 1009),
        (Message::Text(r#"{"type":"reboot"}"#.into()), 1003),
        (Message::Text("{not json".into()), 1007),
        (
            Message::Text(r#"{"type":"resize","cols":-5,"rows":2}"#.into()),
            1007,
        ),
    ];
    for (msg, want) in cases {
        let mut ws = s.ws(&token, &path, &[]).await.unwrap();
        ws.send(msg).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(want));
    }
    let mut ev = s.ws(&token, "/api/v1/events", &[]).await.unwrap();
    ev.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(close_code(&mut ev).await, Some(1003));
    // An input flood neither stalls the server nor kills the container.
    let mut ws = s.ws(&token, &path, &[]).await.unwrap();
    let flood = tokio::spawn(async move {
        let chunk = vec![b'#'; 4000];
        for _ in 0..500 {
            if ws
                .send(Message::Binary(chunk.clone().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        ws
    });
    let t0 = std::time::Instant::now();
    for _ in 0..5 {
        let r = s.http.get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "server slow under a flood"
    );
    let _ws = flood.await.unwrap();
    let (_, info) = s
        .get(
            &token,
            &format!("/api/v1/containers/{}", c["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(info["state"], "running");
    s.stop().await;
}

async fn slow_reader_stalls_only_its_container() {
    let s = Server::start(|c| c.ws.send_timeout_secs = 30).await;
    let token = s.session().await;
    let c = s
        .container(
            &token,
            json!({"cmd": ["sh", "-c", "sleep 1; while true; do cat /bin/busybox; done | base64"]}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    // Attach and never read.
    let _ws = s
        .ws(&token, &format!("/api/v1/containers/{id}/tty"), &[])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = |v: &Value| v["cpu_usage_ns"].as_u64().unwrap();
    let (_, a) = s
        .get(&token, &format!("/api/v1/containers/{id}/stats"))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, b) = s
        .get(&token, &format!("/api/v1/containers/{id}/stats"))
        .await;
    let busy_ms = (cpu(&b) - cpu(&a)) / 1_000_000;
    assert!(
        busy_ms < 100,
        "the container kept writing ({busy_ms} ms CPU in 1 s) while its client did not read"
    );
    // Another container is not affected.
    let other = s.container(&token, json!({})).await;
    let mut ws2 = s
        .ws(
            &token,
            &format!("/api/v1/containers/{}/tty", other["id"].as_str().unwrap()),
            &[],
        )
        .await
        .unwrap();
    let mut t = Term::default();
    type_line(&mut ws2, "echo fine-$((2*2))").await;
    assert!(read_until(&mut ws2, &mut t, T, |t| t.text().contains("fine-4")).await);
    s.stop().await;
}

async fn capacity_full_is_503() {
    let s = Server::start(|c| {
        c.capacity.max_containers = 1;
        c.sessions.max_total = 2;
    })
    .await;
    let (a, b) = (s.session().await, s.session().await);
    s.container(&a, json!({})).await;
    let (st, v) = s
        .post(&b, "/api/v1/containers", &json!({"image": "busybox"}))
        .await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "out_of_capacity");
    assert_eq!(v["error"]["limit"], "max_containers");
    let r = s.http.post(s.url("/api/v1/sessions")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "out_of_capacity");
    s.stop().await;
}

async fn idle_sessions_expire_and_lose_their_containers() {
    let s = Server::start(|c| c.sessions.idle_timeout_secs = 1).await;
    let token = s.session().await;
    let c = s.container(&token, json!({})).await;
    let id = c["id"].as_str().unwrap().to_string();
    let dirs = s.cgroup_dirs(&id);
    let gone = eventually(Duration::from_secs(10), || {
        !s.state_dir().join("containers").join(&id).exists()
    })
    .await;
    assert!(gone, "the idle session's container is still there");
    assert!(dirs.iter().all(|d| !d.exists()));
    assert!(s.mounts().is_empty());
    assert_eq!(s.get(&token, "/api/v1/containers").await.0, 401);
    s.stop().await;
}

async fn stop_restart_and_limits() {
    let s = Server::start(|c| c.limits.max_pids = 500).await;
    // The operator's limits need no session: the create form shows them.
    let r = s.http.get(s.url("/api/v1/limits")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let l: Value = r.json().await.unwrap();
    assert_eq!(l["maxima"]["pids"], 500);
    assert_eq!(l["defaults"]["pids"], 256);
    assert_eq!(l["containers_per_session"], 5);
    assert!(l["defaults"]["memory_bytes"].as_u64().unwrap() > 0);

    let token = s.session().await;
    let c = s
        .container(
            &token,
            json!({"name": "web", "env": {"GREETING": "hi"}, "limits": {"pids": 64}}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/containers/{id}");

    // Stop: the interactive shell ignores SIGTERM, so this is the SIGKILL path.
    let t0 = std::time::Instant::now();
    let (status, info) = s.post(&token, &format!("{path}/stop"), &json!({})).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["state"], "exited");
    assert_eq!(info["name"], "web");
    assert!(t0.elapsed() < Duration::from_secs(8));
    // Stopping again changes nothing; exec into it is a conflict.
    let (status, again) = s.post(&token, &format!("{path}/stop"), &json!({})).await;
    assert_eq!((status, &again["state"]), (200, &json!("exited")));
    assert_eq!(
        s.ws(&token, &format!("{path}/exec"), &[]).await.err(),
        Some(409)
    );
    // The stopped container stays listed (with its exit) until deleted.
    let (_, list) = s.get(&token, "/api/v1/containers").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["state"], "exited");

    // Restart: a fresh container from the same request, same name and limits.
    let dirs = s.cgroup_dirs(&id);
    let (status, fresh) = s.post(&token, &format!("{path}/restart"), &json!({})).await;
    assert_eq!(status, 200, "{fresh}");
    let new_id = fresh["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(fresh["name"], "web");
    assert_eq!(fresh["hostname"], "web");
    assert_eq!(fresh["state"], "running");
    assert_eq!(fresh["limits"]["pids"], 64);
    assert_eq!(s.get(&token, &path).await.0, 404, "the old id is gone");
    assert!(dirs.iter().all(|d| !d.exists()), "the old cgroup is gone");
    let (_, list) = s.get(&token, "/api/v1/containers").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], new_id.as_str());
    // The environment came along: the new shell sees it.
    let mut ws = s
        .ws(&token, &format!("/api/v1/containers/{new_id}/tty"), &[])
        .await
        .expect("tty upgrade");
    let mut term = Term::default();
    type_line(&mut ws, "echo $GREETING-$((1+1))").await;
    assert!(
        read_until(&mut ws, &mut term, T, |t| t.text().contains("hi-2")).await,
        "{:?}",
        term.text()
    );
    // A running container restarts too.
    let (status, third) = s
        .post(
            &token,
            &format!("/api/v1/containers/{new_id}/restart"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["state"], "running");

    // Someone else's container: 404 for both.
    let other = s.session().await;
    let p = format!("/api/v1/containers/{}", third["id"].as_str().unwrap());
    assert_eq!(
        s.post(&other, &format!("{p}/stop"), &json!({})).await.0,
        404
    );
    assert_eq!(
        s.post(&other, &format!("{p}/restart"), &json!({})).await.0,
        404
    );
    assert_eq!(s.get(&token, &p).await.1["state"], "running");
    s.stop().await;
}

async fn extend_pushes_the_idle_deadline_only() {
    let s = Server::start(|c| {
        c.sessions.idle_timeout_secs = 60;
        c.sessions.ttl_secs = 120;
    })
    .await;
    let token = s.session().await;
    let passive = |path: &str| {
        s.http
            .get(s.url(path))
            .bearer_auth(&token)
            .header("x-glassbox-passive", "1")
    };
    let info: Value = passive("/api/v1/sessions/current")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (hard, idle) = (
        info["expires_at"].as_u64().unwrap(),
        info["idle_expires_at"].as_u64().unwrap(),
    );
    assert!(idle <= hard);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The page's polling does not count as activity.
    let again: Value = passive("/api/v1/sessions/current")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let idle_again = again["idle_expires_at"].as_u64().unwrap();
    assert!(idle_again.abs_diff(idle) < 50, "{idle} vs {idle_again}");
    // Extending does, even when the page marks its requests passive.
    let r = s
        .http
        .post(s.url("/api/v1/sessions/current/extend"))
        .bearer_auth(&token)
        .header("x-glassbox-passive", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ext: Value = r.json().await.unwrap();
    let idle_ext = ext["idle_expires_at"].as_u64().unwrap();
    assert!(idle_ext >= idle + 1000, "{idle} → {idle_ext}");
    assert!(
        ext["expires_at"].as_u64().unwrap().abs_diff(hard) < 50,
        "the hard TTL never moves"
    );
    assert!(idle_ext <= hard);
    assert_eq!(ext["idle_timeout_secs"], 60);
    s.stop().await;

    // Near the end of its TTL, extending cannot go past it.
    let s = Server::start(|c| {
        c.sessions.idle_timeout_secs = 60;
        c.sessions.ttl_secs = 2;
    })
    .await;
    let token = s.session().await;
    let (status, ext) = s
        .post(&token, "/api/v1/sessions/current/extend", &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ext["idle_expires_at"], ext["expires_at"]);
    assert_eq!(
        s.get(&"x".repeat(64), "/api/v1/sessions/current").await.0,
        401
    );
    s.stop().await;
}

async fn egress_is_refused_unless_the_operator_enabled_it() {
    let s = Server::start(|_| {}).await;
    let token = s.session().await;
    let (st, v) = s
        .post(
            &token,
            "/api/v1/containers",
            &json!({"image": "busybox", "network": "egress"}),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("egress"),
        "{v}"
    );
    let (st, v) = s
        .post(
            &token,
            "/api/v1/containers",
            &json!({"image": "busybox", "network": "wifi"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (_, list) = s.get(&token, "/api/v1/containers").await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    // Asking for none, or nothing, is a container with loopback only.
    let c = s.container(&token, json!({"network": "none"})).await;
    assert_eq!(c["network"]["mode"], "none", "{c}");
    assert!(c["network"].get("address").is_none(), "{c}");
    s.stop().await;

    // Enabled: the container gets eth0 on the bridge, and loses it on delete.
    let pid = std::process::id() % 100_000;
    let egress = runtime::network::EgressOptions::new(
        &format!("gbxa{pid}"),
        &format!("10.86.{}.0/24", 1 + pid % 250),
        &format!("glassbox_a{pid}"),
    )
    .expect("egress options");
    let _teardown = EgressTeardown::new(egress.clone());
    let s = Server::start(|c| {
        c.network.egress = true;
        c.network.bridge = egress.bridge.clone();
        c.network.subnet = format!("{}/{}", egress.subnet, egress.prefix);
        c.network.table = egress.table.clone();
    })
    .await;
    let token = s.session().await;
    let c = s.container(&token, json!({"network": "egress"})).await;
    assert_eq!(c["network"]["mode"], "egress", "{c}");
    assert_eq!(c["network"]["gateway"], egress.gateway().to_string(), "{c}");
    let veth = c["network"]["veth"].as_str().expect("veth").to_string();
    let link = std::path::Path::new("/sys/class/net").join(&veth);
    assert!(link.exists(), "{c}");
    let id = c["id"].as_str().expect("id");
    let (st, _) = s.delete(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(st, 204);
    assert!(!link.exists(), "{veth} left after delete");
    s.stop().await;
}

/// Removes a test's egress bridge and tables, and puts forwarding back.
struct EgressTeardown {
    opts: runtime::network::EgressOptions,
    forward: String,
}

impl EgressTeardown {
    fn new(opts: runtime::network::EgressOptions) -> Self {
        let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
        EgressTeardown { opts, forward }
    }
}

impl Drop for EgressTeardown {
    fn drop(&mut self) {
        let _ = runtime::network::host::teardown(&self.opts);
        if !self.forward.trim().is_empty() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", self.forward.trim());
        }
    }
}

/// `POST /api/v1/sessions`, optionally as a trusted proxy forwarding `xff`.
async fn create_session(s: &Server, xff: Option<&str>) -> reqwest::Response {
    let mut req = s.http.post(s.url("/api/v1/sessions"));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.expect("POST sessions")
}

async fn assert_rate_limited(r: reqwest::Response, limit: &str) -> u64 {
    assert_eq!(r.status(), 429);
    let wait: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    let v: Value = r.json().await.expect("a JSON body");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    assert_eq!(v["error"]["limit"], limit, "{v}");
    wait
}

async fn session_creation_is_rate_limited_per_client() {
    let s = Server::start(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.rate.sessions_burst = 3;
        c.rate.sessions_per_minute = 60;
    })
    .await;
    let client = "203.0.113.7";
    // As a browser behind the proxy sends it: a made-up address on the left.
    let xff = format!("6.6.6.6, {client}");
    for _ in 0..3 {
        assert_eq!(create_session(&s, Some(&xff)).await.status(), 201);
    }
    let wait =
        assert_rate_limited(create_session(&s, Some(&xff)).await, "sessions_per_minute").await;
    assert!(
        (1..=2).contains(&wait),
        "one session a second refills: {wait}"
    );
    // The made-up address is not the key, and other clients are unaffected.
    assert_eq!(create_session(&s, Some("6.6.6.6")).await.status(), 201);
    assert_eq!(create_session(&s, Some("198.51.100.1")).await.status(), 201);
    assert_eq!(
        create_session(&s, None).await.status(),
        201,
        "the proxy itself"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        create_session(&s, Some(&xff)).await.status(),
        201,
        "refilled"
    );
    assert_eq!(create_session(&s, Some(&xff)).await.status(), 429, "by one");
    s.stop().await;
}

async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let s = Server::start(|c| {
        c.trusted_proxies = vec!["192.0.2.1".parse().unwrap()];
        c.rate.sessions_burst = 2;
        c.rate.sessions_per_minute = 1;
    })
    .await;
    assert_eq!(create_session(&s, Some("1.1.1.1")).await.status(), 201);
    assert_eq!(create_session(&s, Some("2.2.2.2")).await.status(), 201);
    // All three came from 127.0.0.1, whatever they claimed.
    let wait = assert_rate_limited(
        create_session(&s, Some("3.3.3.3")).await,
        "sessions_per_minute",
    )
    .await;
    assert!((25..=60).contains(&wait), "{wait}");
    s.stop().await;
}

async fn container_creation_and_sockets_are_rate_limited() {
    let s = Server::start(|c| {
        c.rate.containers_burst = 1;
        c.rate.containers_per_minute = 1;
        c.rate.sockets_burst = 2;
        c.rate.sockets_per_minute = 1;
    })
    .await;
    let token = s.session().await;
    let v = s.container(&token, json!({})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let r = s
        .http
        .post(s.url("/api/v1/containers"))
        .bearer_auth(&token)
        .json(&json!({"image": "busybox"}))
        .send()
        .await
        .unwrap();
    assert_rate_limited(r, "containers_per_minute").await;
    // A restart makes a container too.
    let r = s
        .http
        .post(s.url(&format!("/api/v1/containers/{id}/restart")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_rate_limited(r, "containers_per_minute").await;
    // A second session from the same address shares the address's budget.
    let other = s.session().await;
    let (st, v) = s
        .post(&other, "/api/v1/containers", &json!({"image": "busybox"}))
        .await;
    assert_eq!((st, &v["error"]["code"]), (429, &json!("rate_limited")));

    let _events = s
        .ws(&token, "/api/v1/events", &[])
        .await
        .expect("1st socket");
    let _tty = s
        .ws(&token, &format!("/api/v1/containers/{id}/tty"), &[])
        .await
        .expect("2nd socket");
    assert_eq!(s.ws(&token, "/api/v1/events", &[]).await.err(), Some(429));
    assert_eq!(
        s.ws(&token, &format!("/api/v1/containers/{id}/exec"), &[])
            .await
            .err(),
        Some(429)
    );
    s.stop().await;
}

async fn a_resize_flood_is_held_and_the_last_size_wins() {
    let s = Server::start(|c| {
        c.rate.resize_burst = 2;
        c.rate.resizes_per_second = 4;
    })
    .await;
    let token = s.session().await;
    let id = s.container(&token, json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ws = s
        .ws(&token, &format!("/api/v1/containers/{id}/tty"), &[])
        .await
        .expect("tty upgrade");
    let mut term = Term::default();
    for i in 0..40u32 {
        let resize = json!({"type": "resize", "cols": 100 + i, "rows": 30});
        ws.send(Message::Text(resize.to_string().into()))
            .await
            .unwrap();
    }
    // The burst went through at once, the rest waited; the newest (139) is
    // applied within one refill (250 ms), and the socket is still open.
    tokio::time::sleep(Duration::from_millis(600)).await;
    type_line(&mut ws, "stty size").await;
    assert!(
        read_until(&mut ws, &mut term, T, |t| t.text().contains("30 139")).await,
        "the last size did not win: {:?}",
        term.text()
    );
    s.stop().await;
}

/// Wait until the runtime's pool holds a ready running shell.
async fn ready_shell_entry(s: &Server) {
    let rt = &s.handle.as_ref().expect("a server of ours").state.runtime;
    let ready = || {
        rt.pool_entries()
            .iter()
            .any(|e| rt.pool_entry_ready(e) && rt.pool_entry_runs_shell(e))
    };
    let deadline = std::time::Instant::now() + T;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "no running shell in the pool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Running shells are made with the server's default limits: a create that
/// asks for none has nothing to set, one that asks for others gets them.
async fn running_shells_are_claimed_with_default_or_asked_limits() {
    let s = Server::start(|_| {}).await;
    let token = s.session().await;
    const MIB: u64 = 1024 * 1024;
    for (asked, memory, pids, disk_kib) in [
        (json!({}), 256 * MIB, 256, 256 * 1024),
        (
            json!({"limits": {"memory_bytes": 64 * MIB, "pids": 40, "disk_bytes": 32 * MIB}}),
            64 * MIB,
            40,
            32 * 1024,
        ),
    ] {
        ready_shell_entry(&s).await;
        let c = s.container(&token, asked.clone()).await;
        let id = c["id"].as_str().unwrap().to_string();
        let claimed = s.state_dir().join("containers").join(&id);
        assert!(
            claimed.join("shell.json").exists(),
            "{asked}: the create did not take a running shell"
        );
        let (_, stats) = s
            .get(&token, &format!("/api/v1/containers/{id}/stats"))
            .await;
        assert_eq!(stats["memory_limit"], memory, "{asked}: {stats}");
        assert_eq!(stats["pids_limit"], pids, "{asked}: {stats}");
        let mut ws = s
            .ws(&token, &format!("/api/v1/containers/{id}/tty"), &[])
            .await
            .expect("tty upgrade");
        let mut term = Term::default();
        type_line(&mut ws, "df -k / | tail -n 1").await;
        let size = format!(" {disk_kib} ");
        assert!(
            read_until(&mut ws, &mut term, T, |t| t.text().contains(&size)).await,
            "{asked}: the RW layer is not {disk_kib} KiB: {:?}",
            term.text()
        );
        let (status, _) = s.delete(&token, &format!("/api/v1/containers/{id}")).await;
        assert_eq!(status, 204);
    }
    s.stop().await;
}

/// A command that is over before the create has answered still has its
/// exit told on the events socket, with its code; and its terminal, opened
/// after the exit, shows what it printed and how it ended.
async fn a_short_command_s_exit_is_an_event() {
    let s = Server::start(|_| {}).await;
    let token = s.session().await;
    let mut ev = events(&s, &token).await;
    let mut t = Term::default();
    let mut exited = async |cmd: Value| -> (String, Value) {
        let c = s.container(&token, json!({ "cmd": cmd })).await;
        let id = c["id"].as_str().unwrap().to_string();
        let came = read_until(&mut ev, &mut t, T, |t| event_of(t, "exited", &id).is_some()).await;
        assert!(came, "{cmd}: no exited event for {id}");
        let event = event_of(&t, "exited", &id).unwrap_or_default();
        (id, event["event"]["code"].clone())
    };
    for (cmd, code) in [(json!(["true"]), 0), (json!(["sh", "-c", "exit 3"]), 3)] {
        for _ in 0..5 {
            let (id, got) = exited(cmd.clone()).await;
            assert_eq!(got, code, "{cmd}");
            let (status, _) = s.delete(&token, &format!("/api/v1/containers/{id}")).await;
            assert_eq!(status, 204);
        }
    }
    // Output kept at the exit: the whole of it, then again from `since`.
    let (id, code) = exited(json!([
        "sh",
        "-c",
        "echo first-$((6*7)); echo second-line; exit 5"
    ]))
    .await;
    assert_eq!(code, 5);
    let tty = format!("/api/v1/containers/{id}/tty");
    let after_exit = async |path: &str| {
        let mut ws = s.ws(&token, path, &[]).await.expect("tty upgrade");
        let mut term = Term::default();
        read_until(&mut ws, &mut term, T, |t| t.close.is_some()).await;
        assert_eq!(
            controls_of(&term, "exit"),
            vec![json!({"type": "exit", "code": 5})]
        );
        assert_eq!(term.close.as_ref().map(|c| c.0), Some(1000));
        term.text()
    };
    let text = after_exit(&tty).await;
    assert!(
        text.contains("first-42") && text.contains("second-line"),
        "output after the exit: {text:?}"
    );
    let second = text.find("second-line").unwrap_or(0);
    let again = after_exit(&format!("{tty}?since={second}")).await;
    assert!(
        again.starts_with("second-line") && !again.contains("first-42"),
        "output since {second}: {again:?}"
    );
    let (status, _) = s.delete(&token, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(status, 204);
    s.stop().await;
}
