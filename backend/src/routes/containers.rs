//! `/api/v1/containers`: create, list, inspect, stop, restart, remove, and
//! the live views.
//! Every path with an id first checks that the container is the session's
//! own; someone else's container is a 404, exactly like a missing one.

use crate::auth::Auth;
use crate::db::{self, ContainerRecord};
use crate::error::{ApiError, ApiJson};
use crate::monitor;
use crate::ratelimit::{Action, ClientIp};
use crate::sessions::ContainerEntry;
use crate::state::AppState;
use crate::{limits, metrics};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::api::CreateContainer;
use protocol::NetworkMode;
use protocol::{
    Change, ContainerEvent, ContainerInfo, ContainerState, EventsMessage, ProcessEntry, Stats,
};
use runtime::cgroups::Cgroup;
use runtime::CreateOptions;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_NAME: usize = 40;
const MAX_ARGS: usize = 64;
const MAX_ENV: usize = 64;
const MAX_STRING: usize = 4096;

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(format!("bad field: {msg}"))
}

fn valid_name(s: &str) -> bool {
    s.len() <= MAX_NAME && runtime::state::is_valid_name(s)
}

fn valid_env_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && k.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn plain(s: &str) -> bool {
    s.len() <= MAX_STRING && !s.contains('\0')
}

/// Check the body's fields (names, command, environment; limits are [`limits::resolve`]'s).
pub(crate) fn validate(req: &CreateContainer) -> Result<(), ApiError> {
    if req.image.is_empty() || req.image.len() > 128 {
        return Err(bad("image must be 1 to 128 characters".into()));
    }
    if let Some(n) = &req.name {
        if !valid_name(n) {
            return Err(bad(format!(
                "name {n:?}: use letters, digits, '-', '_' or '.', at most {MAX_NAME}, starting with a letter or digit"
            )));
        }
    }
    if let Some(h) = &req.hostname {
        if !valid_name(h) {
            return Err(bad(format!("hostname {h:?} is not a valid hostname")));
        }
    }
    if let Some(cmd) = &req.cmd {
        if cmd.is_empty()
            || cmd.len() > MAX_ARGS
            || !cmd.iter().all(|a| plain(a))
            || cmd[0].is_empty()
        {
            return Err(bad(format!(
                "cmd must have 1 to {MAX_ARGS} arguments without NUL bytes, a non-empty program first"
            )));
        }
    }
    if let Some(env) = &req.env {
        if env.len() > MAX_ENV {
            return Err(bad(format!("env has more than {MAX_ENV} entries")));
        }
        for (k, v) in env {
            if !valid_env_key(k) || !plain(v) {
                return Err(bad(format!("env entry {k:?} is not a valid variable")));
            }
        }
    }
    Ok(())
}

/// The API's view: the user's name, not the runtime's session-prefixed one.
fn present(mut info: ContainerInfo, entry: &ContainerEntry) -> ContainerInfo {
    info.name = entry.name.clone();
    info
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<CreateContainer>,
) -> Result<Response, ApiError> {
    state.rate.check(Action::CreateContainer, ip)?;
    validate(&req)?;
    let info = create_in(&state, &auth.session.id, req).await?;
    Ok((StatusCode::CREATED, ApiJson(info)).into_response())
}

/// Make a container for `session` from a checked request: limits resolved
/// against the operator's, admitted against the caps, recorded, announced.
async fn create_in(
    state: &AppState,
    session: &str,
    mut req: CreateContainer,
) -> Result<ContainerInfo, ApiError> {
    let started = Instant::now();
    let network = req.network.unwrap_or_default();
    if network == NetworkMode::Egress && !state.config.network.egress {
        return Err(ApiError::Forbidden(
            "network egress is not enabled on this server".into(),
        ));
    }
    let limits = limits::resolve(req.limits, &state.config.limits)?;
    // What a restart makes again: the request with every limit filled in.
    req.limits = Some(limits);
    let session = session.to_string();
    if let Some(n) = &req.name {
        if state.sessions.name_in_use(&session, n) {
            return Err(ApiError::Conflict(format!("the name {n:?} is in use")));
        }
    }
    let reservation = state
        .sessions
        .reserve(&session, limits.memory_bytes.unwrap_or(0))?;
    state.pool_refill.note_create();
    // Runtime names are global; the session prefix keeps sessions' names apart.
    let runtime_name = req.name.as_ref().map(|n| format!("{}-{n}", &session[..8]));
    let opts = CreateOptions {
        image: req.image.clone(),
        name: runtime_name,
        hostname: req.hostname.clone().or_else(|| req.name.clone()),
        cmd: req.cmd.clone().unwrap_or_default(),
        env: req
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        limits,
        init: req.init.unwrap_or(true),
        tty: true,
        tty_size: None,
        interactive: true,
        foreground: false,
        auto_remove: false,
        network,
    };
    let (info, cgroup) = make_container(state, opts).await?;
    runtime::failpoint::hit("create.runtime_done");
    let entry = ContainerEntry {
        id: info.id.clone(),
        name: req.name.clone().unwrap_or_else(|| info.name.clone()),
        socket: state.runtime.state_dir().container(&info.id).socket(),
        cgroup,
        memory_bytes: limits.memory_bytes.unwrap_or(0),
        spec: req,
        counters: Default::default(),
    };
    // Recorded before anyone hears of it: a restart adopts exactly the
    // containers with a record, and removes the rest.
    let record = ContainerRecord {
        id: entry.id.clone(),
        session: session.clone(),
        name: entry.name.clone(),
        spec: entry.spec.clone(),
        memory_bytes: entry.memory_bytes,
        created_ms: info.created_at_ms,
        state: db::ContainerState::Live,
    };
    if let Err(e) = state.db.insert_container(record).await {
        tracing::error!(container = %entry.id, error = %e, "recording a container failed; removing it");
        let id = entry.id.clone();
        let _ = state.blocking(move |rt| rt.remove(&id, true)).await;
        return Err(e.into());
    }
    runtime::failpoint::hit("create.recorded");
    let entry = match state.sessions.commit(reservation, entry) {
        Ok(e) => e,
        Err(orphan) => {
            // The session ended while the container was being made.
            state.remove_containers(&session, vec![orphan]).await;
            return Err(ApiError::Unauthorized("the session has ended"));
        }
    };
    let m = metrics::global();
    m.observe_create(started.elapsed());
    m.containers_created.fetch_add(1, Ordering::Relaxed);
    tracing::info!(session = %session, container = %entry.id, took_ms = started.elapsed().as_millis() as u64, "container created");
    state.sessions.publish(
        &session,
        EventsMessage::Event {
            event: ContainerEvent::Created {
                id: entry.id.clone(),
            },
            at_ms: runtime::state::now_ms(),
        },
    );
    monitor::watch_exit(state, session, Arc::clone(&entry));
    Ok(present(info, &entry))
}

/// The runtime's part of a create. A create that a running shell of the
/// pool serves takes its turn at the claim gate, in arrival order; a burst
/// of them then answers its first creates first, instead of all near the
/// end (50 at once on 2 cores: prompt p50 about 20 ms instead of 35-40).
/// The rest (cold starts, parked entries, or no running shell left) run
/// side by side, up to `parallel_creates`. Each gate covers only this part:
/// a create's record and response need not wait for the ones behind it.
async fn make_container(
    state: &AppState,
    opts: CreateOptions,
) -> Result<(ContainerInfo, Cgroup), ApiError> {
    let made = |started: runtime::container::Started| {
        // The exit is learnt from the supervisor's socket, not this handle.
        drop(started.supervisor);
        (started.info, Cgroup::open(&started.cgroup))
    };
    if state.runtime.wants_running_shell(&opts) {
        let _turn = state
            .claim_gate
            .acquire()
            .await
            .map_err(ApiError::internal)?;
        let shell_opts = opts.clone();
        let claimed = state
            .blocking(move |rt| rt.claim_running_shell(&shell_opts))
            .await?;
        if let Some(started) = claimed {
            return Ok(made(started));
        }
    }
    let _permit = state
        .create_gate
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    state
        .blocking(move |rt| rt.create_without_running_shell(opts).map(made))
        .await
}

/// How long a stopped container's processes get between SIGTERM and SIGKILL.
/// An interactive shell ignores SIGTERM, so this is short: the user asked.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Stop a container: SIGTERM to PID 1, SIGKILL after [`STOP_GRACE`]; wait
/// until it has exited. Stopping an exited container changes nothing.
fn stop_blocking(rt: &runtime::Runtime, id: &str) -> Result<(), ApiError> {
    use nix::sys::signal::Signal;
    let running = |rt: &runtime::Runtime| -> Result<bool, ApiError> {
        Ok(rt.inspect(id)?.state == ContainerState::Running)
    };
    let wait = |rt: &runtime::Runtime, d: Duration| -> Result<bool, ApiError> {
        let deadline = Instant::now() + d;
        while running(rt)? {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(true)
    };
    for (signal, grace) in [
        (Signal::SIGTERM, STOP_GRACE),
        (Signal::SIGKILL, Duration::from_secs(5)),
    ] {
        match rt.kill(id, signal) {
            Ok(()) => {}
            Err(runtime::ContainerError::NotRunning(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if wait(rt, grace)? {
            return Ok(());
        }
    }
    Err(ApiError::Internal(format!(
        "container {id} did not stop after SIGKILL"
    )))
}

/// `POST /api/v1/containers/{id}/stop` → `200 ContainerInfo` (exited).
pub async fn stop(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<ApiJson<ContainerInfo>, ApiError> {
    let entry = state.sessions.container(&auth.session.id, &id)?;
    let info = state
        .blocking(move |rt| {
            stop_blocking(rt, &id)?;
            Ok::<_, ApiError>(rt.inspect(&id)?)
        })
        .await?;
    tracing::info!(session = %auth.session.id, container = %entry.id, "container stopped");
    Ok(ApiJson(present(info, &entry)))
}

/// `POST /api/v1/containers/{id}/restart` → `200 ContainerInfo` of a fresh
/// container made from the same request (image, name, command, environment,
/// limits) in the same session: the old one is stopped and removed, the new
/// one has a new id and an empty RW layer.
pub async fn restart(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<ApiJson<ContainerInfo>, ApiError> {
    state.rate.check(Action::CreateContainer, ip)?;
    let session = auth.session.id.clone();
    let old = state
        .sessions
        .forget(&session, &id)
        .ok_or(ApiError::ContainerNotFound)?;
    let spec = old.spec.clone();
    {
        let stop_id = id.clone();
        // Stop gently first (the shell gets its SIGTERM), then remove.
        if let Err(e) = state.blocking(move |rt| stop_blocking(rt, &stop_id)).await {
            tracing::warn!(container = %id, error = %e, "stopping before a restart failed; removing anyway");
        }
    }
    state.remove_containers(&session, vec![old]).await;
    let info = create_in(&state, &session, spec).await?;
    tracing::info!(session = %session, old = %id, new = %info.id, "container restarted");
    Ok(ApiJson(info))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<ApiJson<Vec<ContainerInfo>>, ApiError> {
    let entries = state.sessions.containers(&auth.session.id);
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    let infos = state
        .blocking(move |rt| {
            Ok::<_, ApiError>(
                ids.iter()
                    .filter_map(|id| rt.inspect(id).ok())
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    let mut out: Vec<ContainerInfo> = infos
        .into_iter()
        .filter_map(|info| {
            let entry = entries.iter().find(|e| e.id == info.id)?;
            Some(present(info, entry))
        })
        .collect();
    out.sort_by_key(|c| c.created_at_ms);
    Ok(ApiJson(out))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<ApiJson<ContainerInfo>, ApiError> {
    let entry = state.sessions.container(&auth.session.id, &id)?;
    let info = state.blocking(move |rt| rt.inspect(&id)).await?;
    Ok(ApiJson(present(info, &entry)))
}

pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let entry = state
        .sessions
        .forget(&auth.session.id, &id)
        .ok_or(ApiError::ContainerNotFound)?;
    // Nothing is on disk yet: a crash here leaves the container to adopt.
    runtime::failpoint::hit("delete.requested");
    state.remove_containers(&auth.session.id, vec![entry]).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stats(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<ApiJson<Stats>, ApiError> {
    let entry = state.sessions.container(&auth.session.id, &id)?;
    let stats = state
        .blocking(move |_| entry.cgroup.stats().map_err(ApiError::internal))
        .await?;
    Ok(ApiJson(stats))
}

pub async fn processes(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<ApiJson<Vec<ProcessEntry>>, ApiError> {
    state.sessions.container(&auth.session.id, &id)?;
    Ok(ApiJson(state.blocking(move |rt| rt.processes(&id)).await?))
}

pub async fn diff(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<ApiJson<Vec<Change>>, ApiError> {
    state.sessions.container(&auth.session.id, &id)?;
    Ok(ApiJson(state.blocking(move |rt| rt.diff(&id)).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked() {
        let ok = CreateContainer {
            image: "busybox".into(),
            ..Default::default()
        };
        assert!(validate(&ok).is_ok());
        let mut bad_name = ok.clone();
        bad_name.name = Some("../etc".into());
        assert!(validate(&bad_name).is_err());
        let mut bad_cmd = ok.clone();
        bad_cmd.cmd = Some(vec!["a\0b".into()]);
        assert!(validate(&bad_cmd).is_err());
        let mut bad_env = ok;
        bad_env.env = Some([("1X".to_string(), "y".to_string())].into());
        assert!(validate(&bad_env).is_err());
    }
}
