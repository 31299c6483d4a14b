//! The glass-box panels: processes, namespaces, cgroup, filesystem and the
//! runtime chain, live for the selected container.

use crate::format;
use crate::glass;
use crate::history::StatsHistory;
use crate::net;
use protocol::{CgroupVersion, Change, ContainerInfo, ContainerState, ProcessEntry};
use serde::de::DeserializeOwned;
use std::rc::Rc;
use yew::prelude::*;

/// The latest answer of a polled GET.
#[derive(Clone, PartialEq)]
pub enum Poll<T> {
    Waiting,
    Ok(T),
    Failed(String),
}

/// GET `path` now and every `every_ms` while the component lives; `None`
/// stops polling.
#[hook]
pub fn use_poll<T>(path: Option<String>, every_ms: u32) -> UseStateHandle<Poll<T>>
where
    T: DeserializeOwned + Clone + PartialEq + 'static,
{
    let state = use_state(|| Poll::<T>::Waiting);
    {
        let state = state.clone();
        use_effect_with(path, move |path| {
            state.set(Poll::Waiting);
            let mut interval = None;
            if let Some(path) = path.clone() {
                let fetch = {
                    let state = state.clone();
                    move || {
                        let state = state.clone();
                        let path = path.clone();
                        wasm_bindgen_futures::spawn_local(async move {
                            match net::poll::<T>(&path).await {
                                Ok(v) => state.set(Poll::Ok(v)),
                                Err(e) => state.set(Poll::Failed(e.message)),
                            }
                        });
                    }
                };
                fetch();
                interval = Some(gloo_timers::callback::Interval::new(every_ms, fetch));
            }
            move || drop(interval)
        });
    }
    state
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Processes,
    Namespaces,
    Cgroup,
    Filesystem,
    Chain,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Processes,
        Tab::Namespaces,
        Tab::Cgroup,
        Tab::Filesystem,
        Tab::Chain,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Tab::Processes => "Processes",
            Tab::Namespaces => "Namespaces",
            Tab::Cgroup => "Cgroup",
            Tab::Filesystem => "Filesystem",
            Tab::Chain => "Chain",
        }
    }
    fn id(self) -> &'static str {
        match self {
            Tab::Processes => "processes",
            Tab::Namespaces => "namespaces",
            Tab::Cgroup => "cgroup",
            Tab::Filesystem => "filesystem",
            Tab::Chain => "chain",
        }
    }
}

#[derive(Properties, PartialEq)]
pub struct InspectorProps {
    pub info: Option<ContainerInfo>,
    pub history: Option<Rc<StatsHistory>>,
    pub connected: bool,
}

#[function_component(Inspector)]
pub fn inspector(props: &InspectorProps) -> Html {
    let tab = use_state(|| Tab::Processes);
    let tabs = Tab::ALL.iter().map(|t| {
        let t = *t;
        let sel = *tab == t;
        let onclick = {
            let tab = tab.clone();
            Callback::from(move |_| tab.set(t))
        };
        html! {
            <button role="tab" aria-selected={sel.to_string()} class={classes!("tab", sel.then_some("active"))}
                data-tab={t.id()} {onclick}>{t.label()}</button>
        }
    });
    let body = match &props.info {
        None => not_connected(*tab, props.connected),
        Some(info) => match *tab {
            Tab::Processes => html! { <ProcessesPanel info={info.clone()} /> },
            Tab::Namespaces => namespaces(info),
            Tab::Cgroup => cgroup(info, props.history.as_deref()),
            Tab::Filesystem => html! { <FilesystemPanel info={info.clone()} /> },
            Tab::Chain => html! { <ChainPanel info={info.clone()} /> },
        },
    };
    html! {
        <section class="inspector card">
            <div class="card-title">
                <span class="eyebrow">{"The glass box"}</span>
                <span class="muted small">{"what the kernel sees, live"}</span>
            </div>
            <div class="tabs" role="tablist">{ for tabs }</div>
            <div class="panel" data-panel={tab.id()}>{body}</div>
        </section>
    }
}

fn not_connected(tab: Tab, connected: bool) -> Html {
    let what = match tab {
        Tab::Processes => "Each process with its PID inside the container next to its PID on the host: PID 1 here is an ordinary process out there.",
        Tab::Namespaces => "Each namespace type with its inode inside the container and on the host: different means isolated, equal means shared.",
        Tab::Cgroup => "The container's cgroup: its path, version, and each limit file with its value and the current usage.",
        Tab::Filesystem => "The read-only image layers and the copy-on-write layer on top, with a live list of what the container changed.",
        Tab::Chain => "Glassbox's own runtime chain, from this tab to your shell, with live PIDs (Docker's is CLI → dockerd → containerd → runc → shim).",
    };
    html! {
        <div class="empty-state">
            <span class={classes!("pill", if connected { "pill-muted" } else { "pill-off" })}>
                { if connected { "no container selected" } else { "not connected" } }
            </span>
            <p>{what}</p>
        </div>
    }
}

fn failed(msg: &str) -> Html {
    html! { <div class="empty-state"><span class="pill pill-off">{"unavailable"}</span><p>{msg.to_string()}</p></div> }
}

fn loading() -> Html {
    html! { <div class="empty-state"><span class="spinner" /><p class="muted">{"reading from the kernel…"}</p></div> }
}

#[derive(Properties, PartialEq)]
pub struct InfoProps {
    pub info: ContainerInfo,
}

#[function_component(ProcessesPanel)]
fn processes_panel(props: &InfoProps) -> Html {
    let running = props.info.state == ContainerState::Running;
    let procs =
        use_poll::<Vec<ProcessEntry>>(running.then(|| crate::api::processes(&props.info.id)), 1500);
    let list: &[ProcessEntry] = match &*procs {
        Poll::Ok(v) => v,
        _ => &[],
    };
    let headline = glass::pid1_sentence(Some(&props.info), list);
    let table = match &*procs {
        _ if !running => {
            html! { <p class="muted">{"The container is not running: it has no processes."}</p> }
        }
        Poll::Waiting => loading(),
        Poll::Failed(e) => failed(e),
        Poll::Ok(_) => {
            let rows = glass::process_tree(list).into_iter().map(|(depth, p)| {
                html! {
                    <tr class={classes!((p.pid == 1).then_some("pid1"))}>
                        <td class="num strong">{p.pid}</td>
                        <td class="arrow">{"↔"}</td>
                        <td class="num host">{p.host_pid}</td>
                        <td class="num muted">{p.ppid}</td>
                        <td class="cmd" style={format!("padding-left:{}px", 8 + depth * 14)}>
                            { if depth > 0 { "└ " } else { "" } }{p.cmd.clone()}
                        </td>
                    </tr>
                }
            });
            html! {
                <table class="data">
                    <thead><tr><th>{"PID here"}</th><th></th><th>{"PID on host"}</th><th>{"PPID"}</th><th>{"command"}</th></tr></thead>
                    <tbody>{ for rows }</tbody>
                </table>
            }
        }
    };
    html! {
        <div class="processes">
            { for headline.map(|h| html! {
                <div class="headline" data-testid="pid1">
                    <span class="big">{h}</span>
                    <span class="muted small">{"the PID namespace renumbers processes; the host still sees them all"}</span>
                </div>
            }) }
            {table}
        </div>
    }
}

fn namespaces(info: &ContainerInfo) -> Html {
    let rows = glass::namespace_rows(info);
    if rows.is_empty() {
        return failed("The server did not report namespaces for this container.");
    }
    let isolated = rows.iter().filter(|r| r.isolated).count();
    let body = rows.iter().map(|r| {
        html! {
            <tr>
                <td class="strong mono">{r.kind.clone()}</td>
                <td class="num mono">{r.inode}</td>
                <td class="num mono muted">{r.host_inode}</td>
                <td>{ if r.isolated { html!{<span class="pill pill-good">{"isolated"}</span>} } else { html!{<span class="pill pill-warn">{"shared"}</span>} } }</td>
                <td class="muted small">{r.what}</td>
            </tr>
        }
    });
    html! {
        <div>
            <p class="lead">{format!("{isolated} of {} namespaces are the container's own. ", rows.len())}
                <span class="muted">{"Same inode as the host means shared with it; a different one means isolated."}</span></p>
            <table class="data">
                <thead><tr><th>{"type"}</th><th>{"inside"}</th><th>{"host"}</th><th></th><th>{"what it hides"}</th></tr></thead>
                <tbody>{ for body }</tbody>
            </table>
            <p class="small idmap" data-testid="idmap"><span class="strong">{"user: "}</span>{glass::root_mapping(info)}</p>
        </div>
    }
}

fn cgroup(info: &ContainerInfo, history: Option<&StatsHistory>) -> Html {
    let v2 = info.cgroup.version == CgroupVersion::V2;
    let s = history.and_then(|h| h.latest());
    let l = &info.limits;
    let usage = |f: &dyn Fn(&protocol::Stats) -> String| s.map(f).unwrap_or_else(|| "—".into());
    let lim_bytes = |b: Option<u64>| {
        b.map(|b| format!("{b} ({})", format::bytes(b)))
            .unwrap_or_else(|| "max".into())
    };
    let cpu_val = match (l.cpu_millis, v2) {
        (Some(m), true) => format!("{} 100000 ({})", m as u64 * 100, format::cpu_millis(m)),
        (Some(m), false) => format!("{} / 100000 ({})", m as u64 * 100, format::cpu_millis(m)),
        (None, true) => "max 100000".into(),
        (None, false) => "-1".into(),
    };
    let rows: Vec<(&str, String, String)> = vec![
        (
            if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            },
            lim_bytes(l.memory_bytes),
            usage(&|s| {
                format!(
                    "{} in use{}",
                    format::bytes(s.memory_current),
                    s.memory_peak
                        .map(|p| format!(", peak {}", format::bytes(p)))
                        .unwrap_or_default()
                )
            }),
        ),
        (
            if v2 {
                "memory.events oom_kill"
            } else {
                "memory.oom_control oom_kill"
            },
            "—".into(),
            usage(&|s| format!("{} killed", s.oom_kills)),
        ),
        (
            if v2 {
                "cpu.max"
            } else {
                "cpu.cfs_quota_us / period"
            },
            cpu_val,
            usage(&|s| {
                format!(
                    "{:.2} s used, throttled {:.2} s in {} periods",
                    s.cpu_usage_ns as f64 / 1e9,
                    s.cpu_throttled_ns as f64 / 1e9,
                    s.cpu_throttled_periods
                )
            }),
        ),
        (
            "pids.max",
            l.pids
                .map(|p| p.to_string())
                .unwrap_or_else(|| "max".into()),
            usage(&|s| format!("{} tasks (pids.current)", s.pids_current)),
        ),
        (
            "pids.events max",
            "—".into(),
            usage(&|s| format!("{} forks refused", s.pids_limit_hits)),
        ),
    ];
    let body = rows.into_iter().map(|(file, value, used)| {
        html! { <tr><td class="mono strong">{file}</td><td class="mono">{value}</td><td>{used}</td></tr> }
    });
    html! {
        <div>
            <dl class="facts">
                <dt>{"path"}</dt><dd class="mono">{info.cgroup.path.clone()}</dd>
                <dt>{"version"}</dt><dd>{ if v2 { "cgroup v2 (unified hierarchy)" } else { "cgroup v1 (one hierarchy per controller)" } }</dd>
            </dl>
            <table class="data">
                <thead><tr><th>{"limit file"}</th><th>{"value"}</th><th>{"usage now"}</th></tr></thead>
                <tbody>{ for body }</tbody>
            </table>
            <p class="muted small">{"Limits are what the container may use; the kernel enforces them: memory over the limit wakes the OOM killer, a fork over pids.max fails, CPU over its quota waits for the next period."}</p>
        </div>
    }
}

#[function_component(FilesystemPanel)]
fn filesystem_panel(props: &InfoProps) -> Html {
    let info = &props.info;
    let diff = use_poll::<Vec<Change>>(Some(crate::api::diff(&info.id)), 1500);
    let layers = info.layers.iter().rev().enumerate().map(|(i, l)| {
        let digest = l.digest.trim_start_matches("sha256:");
        html! {
            <div class="layer ro" title={l.path.clone()}>
                <span class="layer-tag">{"RO"}</span>
                <span class="mono">{format!("sha256:{}", format::short_id(digest))}</span>
                <span class="muted">{format::bytes(l.size)}</span>
                <span class="muted small">{ if i + 1 == info.layers.len() { "image base layer" } else { "image layer" } }</span>
            </div>
        }
    });
    let changes = match &*diff {
        Poll::Waiting => loading(),
        Poll::Failed(e) => failed(e),
        Poll::Ok(v) if v.is_empty() => {
            html! { <p class="muted">{"Nothing yet: the container reads everything from the image. Try "}<code>{"rm /bin/sh"}</code>{" or "}<code>{"echo hi > /tmp/x"}</code>{"."}</p> }
        }
        Poll::Ok(v) => {
            let items = glass::sorted_changes(v).into_iter().map(|c| {
                let (letter, class, what) = glass::change_label(c.kind);
                html! {
                    <li class={classes!("change", class)} title={what}>
                        <span class="change-kind">{letter}</span>
                        <span class="mono">{c.path.clone()}</span>
                        <span class="muted small">{what}</span>
                    </li>
                }
            });
            html! { <ul class="changes" data-testid="diff">{ for items }</ul> }
        }
    };
    html! {
        <div class="fs">
            <div class="layer rw" title={info.upper_dir.clone()}>
                <span class="layer-tag">{"RW"}</span>
                <span class="mono ellipsis">{info.upper_dir.clone()}</span>
                <span class="muted">{ info.limits.disk_bytes.map(|d| format!("capped at {}", format::bytes(d))).unwrap_or_else(|| "copy-on-write layer".into()) }</span>
            </div>
            { for layers }
            <h4>{"What the RW layer holds"}</h4>
            {changes}
        </div>
    }
}

#[function_component(ChainPanel)]
fn chain_panel(props: &InfoProps) -> Html {
    let running = props.info.state == ContainerState::Running;
    let procs =
        use_poll::<Vec<ProcessEntry>>(running.then(|| crate::api::processes(&props.info.id)), 3000);
    let list: &[ProcessEntry] = match &*procs {
        Poll::Ok(v) => v,
        _ => &[],
    };
    let links = glass::runtime_chain(&props.info, list);
    let n = links.len();
    let items = links.into_iter().enumerate().map(|(i, l)| {
        let inside = i >= 3;
        html! {
            <>
                <li class={classes!("link", inside.then_some("inside"))}>
                    <div class="link-main">
                        <span class="strong">{l.name}</span>
                        { for l.pid.map(|p| html!{ <span class="pill pill-mono">{p}</span> }) }
                    </div>
                    <div class="muted small">{l.role}</div>
                    <div class="docker small">{"in Docker: "}{l.docker}</div>
                </li>
                { if i + 1 < n { html!{ <li class={classes!("link-arrow", (i == 2).then_some("boundary"))}>{ if i == 2 { "clone(): new namespaces ↓" } else { "↓" } }</li> } } else { html!{} } }
            </>
        }
    });
    html! { <ol class="chain">{ for items }</ol> }
}
