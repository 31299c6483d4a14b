//! The page: top bar, containers and events, terminal tabs, charts and the
//! glass-box panels.

use super::charts::Charts;
use super::containers::{self, ContainerList};
use super::panels::Inspector;
use super::state::{Action, AppState, Phase, Store, WARN_BEFORE_MS};
use super::terminal::{Kind, TermPane};
use super::*;
use crate::api;
use crate::feed::{decode_events_message, Incoming};
use crate::format;
use crate::net;
use protocol::api::{CreateContainer, SessionCreated, SessionInfo};
use protocol::{ContainerEvent, ContainerInfo};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, WebSocket};
use yew::prelude::*;

const DEFAULT_IMAGE: &str = "busybox";

async fn load(store: Store) {
    match net::get::<Vec<ContainerInfo>>(api::CONTAINERS).await {
        Ok(containers) => {
            let expires_at = net::get::<SessionInfo>(api::SESSION)
                .await
                .ok()
                .map(|i| api::session_deadline(&i));
            store.dispatch(Action::Loaded {
                containers,
                expires_at,
            });
        }
        Err(e) => store.dispatch(Action::NoSession {
            reachable: e.status != 0,
        }),
    }
    if let Ok(images) = net::get::<Vec<protocol::ImageInfo>>(api::IMAGES).await {
        store.dispatch(Action::Images(images.into_iter().map(|i| i.name).collect()));
    }
    if let Ok(limits) = net::get::<api::ServerLimits>(api::LIMITS).await {
        store.dispatch(Action::Limits(limits));
    }
}

async fn start(store: Store) {
    store.dispatch(Action::Starting("opening a session"));
    let session = match net::json::<SessionCreated>("POST", api::SESSIONS, None::<&()>).await {
        Ok(s) => s,
        Err(e) => {
            store.dispatch(Action::NoSession {
                reachable: e.status != 0,
            });
            store.dispatch(Action::Error(Some(format!("Could not start: {e}"))));
            return;
        }
    };
    store.dispatch(Action::Starting("creating your container"));
    let image = store
        .images
        .iter()
        .find(|i| *i == DEFAULT_IMAGE)
        .or(store.images.first())
        .cloned()
        .unwrap_or_else(|| DEFAULT_IMAGE.into());
    let req = CreateContainer {
        image,
        ..CreateContainer::default()
    };
    match net::json::<ContainerInfo>("POST", api::CONTAINERS, Some(&req)).await {
        Ok(container) => {
            // The idle deadline comes first, unless the TTL is shorter.
            let expires_at = net::get::<SessionInfo>(api::SESSION)
                .await
                .map(|i| api::session_deadline(&i))
                .unwrap_or(session.expires_at);
            store.dispatch(Action::Started {
                expires_at,
                container,
            })
        }
        Err(e) => {
            store.dispatch(Action::NoSession { reachable: true });
            store.dispatch(Action::Error(Some(format!(
                "Could not create a container: {e}"
            ))));
        }
    }
}

/// The events WebSocket, reconnecting while the session lives.
struct EventsConn {
    ws: Option<WebSocket>,
    keep: Vec<Closure<dyn FnMut(JsValue)>>,
    retry: Option<gloo_timers::callback::Timeout>,
    attempt: u32,
    closed: bool,
}

fn events_connect(conn: Rc<RefCell<EventsConn>>, store: Store) {
    if conn.borrow().closed {
        return;
    }
    let Ok(ws) = WebSocket::new(&net::ws_url(api::EVENTS)) else {
        return;
    };
    let s = store.clone();
    let c = Rc::downgrade(&conn);
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if let Some(c) = c.upgrade() {
            c.borrow_mut().attempt = 0;
        }
        s.dispatch(Action::EventsLive(true));
    });
    let s = store.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let ev: MessageEvent = ev.unchecked_into();
        let Some(text) = ev.data().as_string() else {
            return;
        };
        match decode_events_message(&text) {
            Ok(Incoming::Stats { id, stats }) => s.dispatch(Action::Stats { id, stats }),
            Ok(Incoming::Event { event, at_ms }) => {
                let lifecycle = matches!(
                    event,
                    ContainerEvent::Created { .. } | ContainerEvent::Exited { .. }
                );
                s.dispatch(Action::Event { event, at_ms });
                if lifecycle {
                    containers::refresh(s.clone());
                }
            }
            Ok(Incoming::Unknown) | Err(_) => {}
        }
    });
    let s = store.clone();
    let c = Rc::downgrade(&conn);
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        s.dispatch(Action::EventsLive(false));
        let Some(conn) = c.upgrade() else { return };
        if conn.borrow().closed {
            return;
        }
        let wait = {
            let mut b = conn.borrow_mut();
            b.attempt += 1;
            crate::term::backoff_ms(b.attempt)
        };
        let (c2, s2) = (conn.clone(), s.clone());
        conn.borrow_mut().retry = Some(gloo_timers::callback::Timeout::new(wait, move || {
            events_connect(c2, s2)
        }));
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut b = conn.borrow_mut();
    b.keep = vec![on_open, on_message, on_close];
    b.ws = Some(ws);
}

#[function_component(App)]
pub fn app() -> Html {
    let store: Store = use_reducer(|| AppState::new(net::initial_dark(), net::now_ms()));

    // First look: is there a session already (a reload)?
    {
        let store = store.clone();
        use_effect_with((), move |_| {
            net::apply_theme(store.dark, false);
            wasm_bindgen_futures::spawn_local(load(store.clone()));
            let tick = gloo_timers::callback::Interval::new(1000, move || {
                store.dispatch(Action::Tick(net::now_ms()))
            });
            move || drop(tick)
        });
    }
    // The events stream lives as long as the session.
    let live = store.phase == Phase::Live;
    {
        let store = store.clone();
        use_effect_with(live, move |live| {
            let conn = Rc::new(RefCell::new(EventsConn {
                ws: None,
                keep: Vec::new(),
                retry: None,
                attempt: 0,
                closed: false,
            }));
            if *live {
                events_connect(conn.clone(), store);
            }
            move || {
                let mut c = conn.borrow_mut();
                c.closed = true;
                c.retry = None;
                if let Some(ws) = c.ws.take() {
                    ws.set_onclose(None);
                    let _ = ws.close();
                }
                c.keep.clear();
            }
        });
    }
    // The session's deadline moves when the user types or acts; the page
    // learns it from the server now and then (a passive request: watching is
    // not activity), and when its own countdown runs out it asks before
    // saying the session ended.
    let due = live && store.time_left() == Some(0);
    {
        let store = store.clone();
        use_effect_with((live, due), move |(live, due)| {
            let check = move || {
                let store = store.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    match net::poll::<SessionInfo>(api::SESSION).await {
                        Ok(i) => {
                            let at = api::session_deadline(&i);
                            // Past due but not reaped yet: look again shortly.
                            store.dispatch(Action::Expiry(at.max(net::now_ms() + 2000)));
                        }
                        Err(e) if e.status == 401 => store.dispatch(Action::Ended(
                            "Your session ended and its containers were removed. Start a new one any time.",
                        )),
                        Err(_) => {}
                    }
                });
            };
            let mut every = None;
            if *live {
                if *due {
                    check();
                }
                every = Some(gloo_timers::callback::Interval::new(15_000, check));
            }
            move || drop(every)
        });
    }

    let toggle_theme = {
        let store = store.clone();
        Callback::from(move |_| {
            let dark = !store.dark;
            net::apply_theme(dark, true);
            store.dispatch(Action::Theme(dark));
        })
    };
    let on_start = {
        let store = store.clone();
        Callback::from(move |_| wasm_bindgen_futures::spawn_local(start(store.clone())))
    };
    let on_end = {
        let store = store.clone();
        Callback::from(move |_| {
            let store = store.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = net::send("DELETE", api::SESSION).await;
                store.dispatch(Action::Ended("Session ended; its containers were removed."));
            });
        })
    };
    let on_extend = {
        let store = store.clone();
        Callback::from(move |_| {
            let store = store.clone();
            wasm_bindgen_futures::spawn_local(async move {
                match net::json::<SessionInfo>("POST", api::SESSION_EXTEND, None::<&()>).await {
                    Ok(i) => {
                        store.dispatch(Action::Expiry(api::session_deadline(&i)));
                        store.dispatch(Action::Error(None));
                    }
                    Err(e) => store.dispatch(Action::Error(Some(format!("Could not extend: {e}")))),
                }
            });
        })
    };
    let dismiss = {
        let store = store.clone();
        Callback::from(move |_| store.dispatch(Action::Error(None)))
    };

    let timer = store.time_left().filter(|_| live).map(|left| {
        let warn = left <= WARN_BEFORE_MS;
        html! {
            <div class={classes!("timer", warn.then_some("warn"))} title="time left in this session" data-testid="session-timer">
                {icon(ICON_CLOCK)}<span class="mono">{format::countdown(left)}</span>
                <button class="btn btn-small btn-ghost" onclick={on_extend.clone()}>{"Extend"}</button>
            </div>
        }
    });
    let warning = store
        .time_left()
        .filter(|l| live && *l <= WARN_BEFORE_MS)
        .map(|left| {
            html! {
                <div class="banner warn" role="alert">
                    {format!("This session ends in {}; its containers will be removed.", format::duration_ms(left))}
                    <button class="btn btn-small" onclick={on_extend.clone()}>{"Extend session"}</button>
                </div>
            }
        });

    let selected = store.selected_info().cloned();
    let history = store
        .selected
        .as_ref()
        .and_then(|id| store.stats.get(id))
        .cloned();

    html! {
        <div class="app">
            <header class="topbar">
                <div class="brand">
                    <svg class="logo" viewBox="0 0 32 32" aria-hidden="true">
                        <rect x="3" y="3" width="26" height="26" rx="7" class="logo-glass" />
                        <rect x="9" y="9" width="14" height="14" rx="3" class="logo-core" />
                        <path d="M7 11 L11 7" class="logo-shine" />
                    </svg>
                    <span class="brand-name">{"Glassbox"}</span>
                    <span class="brand-tag">{"a container playground you can see into"}</span>
                </div>
                <div class="top-right">
                    { for timer }
                    { if live { html!{ <span class={classes!("pill", if store.events_live { "pill-good" } else { "pill-off" })} title="events and stats stream">
                        <span class="dot" />{ if store.events_live { "live" } else { "reconnecting" } }</span> } } else { html!{} } }
                    { if live { html!{ <button class="btn btn-small btn-ghost" onclick={on_end}>{"End session"}</button> } } else { html!{} } }
                    <button class="icon-btn" onclick={toggle_theme} title="Switch light / dark" aria-label="Switch light / dark theme">
                        { icon(if store.dark { ICON_SUN } else { ICON_MOON }) }
                    </button>
                </div>
            </header>
            { for warning }
            { for store.error.as_ref().map(|e| html!{
                <div class="banner bad" role="alert"><span>{e.clone()}</span>
                    <button class="icon-btn" onclick={dismiss.clone()} aria-label="Dismiss">{icon(ICON_X)}</button></div>
            }) }
            <main class="layout">
                <aside class="left">
                    { if live { html!{ <ContainerList store={store.clone()} /> } } else { html!{
                        <section class="containers card">
                            <div class="card-title"><span class="eyebrow">{"Containers"}</span></div>
                            <p class="muted small pad">{"Your containers appear here: each with its state, limits and exit code."}</p>
                        </section>
                    } } }
                    <EventsFeed store={store.clone()} />
                </aside>
                <section class="center">
                    // Every container keeps its terminals (and exec tabs) while
                    // another one is selected: only the selected card shows.
                    // The keyed cards sit alone in an element of their own: Yew
                    // diffs a keyed list inside a fragment by position, which
                    // would remount the first card when a second one arrives.
                    { if store.phase == Phase::Live { html!{ <>
                        <div class="term-stack">
                            { for store.containers.iter().map(|info| html!{
                                <Terminals key={info.id.clone()} info={info.clone()} dark={store.dark}
                                    visible={selected.as_ref().is_some_and(|s| s.id == info.id)} />
                            }) }
                        </div>
                        { if selected.is_none() { html!{ <div class="card hero"><h2>{"No container selected"}</h2><p class="muted">{"Create one with New, on the left."}</p></div> } } else { html!{} } }
                    </> } } else { hero(&store.phase, store.server_reachable, on_start) } }
                </section>
                <aside class="right">
                    <Charts history={history.clone()} />
                    <Inspector info={selected} history={history} connected={live} />
                </aside>
            </main>
        </div>
    }
}

fn hero(phase: &Phase, reachable: bool, on_start: Callback<MouseEvent>) -> Html {
    let (busy, label) = match phase {
        Phase::Starting(what) => (true, format!("{}…", capitalize(what))),
        Phase::Loading => (true, "Connecting…".to_string()),
        _ => (false, "Start a container".to_string()),
    };
    html! {
        <div class="card hero">
            <div class="hero-inner">
                <span class="eyebrow">{"Glassbox"}</span>
                <h1>{"A real Linux container, and a glass box around it."}</h1>
                <p class="lead">{"One click gives you a root shell in a container with its own namespaces, cgroup limits and copy-on-write filesystem. Beside it, the kernel's side of the story, live."}</p>
                <button class="btn btn-primary btn-large" onclick={on_start} disabled={busy} data-testid="start">
                    { if busy { html!{<span class="spinner" />} } else { icon(ICON_PLAY) } }{label}
                </button>
                { if !reachable { html!{ <p class="notice"><span class="pill pill-off"><span class="dot" />{"not connected"}</span>{" The Glassbox server is not answering. Start it with "}<code>{"scripts/run"}</code>{"."}</p> } } else { html!{} } }
                <ul class="hero-points">
                    <li><strong>{"Processes"}</strong><span>{"PID 1 in here is an ordinary PID on the host."}</span></li>
                    <li><strong>{"Cgroups"}</strong><span>{"Hit the memory or pids limit and watch the kernel say no."}</span></li>
                    <li><strong>{"Layers"}</strong><span>{"Delete /bin/sh: a whiteout lands, the image stays intact."}</span></li>
                </ul>
                <p class="muted small">{"No sign-up. The session and its containers are removed when it ends."}</p>
            </div>
        </div>
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[derive(Properties, PartialEq)]
struct TerminalsProps {
    info: ContainerInfo,
    dark: bool,
    /// The selected container's card shows; the others stay mounted, hidden.
    visible: bool,
}

/// The terminal card: the main terminal plus exec tabs.
#[function_component(Terminals)]
fn terminals(props: &TerminalsProps) -> Html {
    // serial 0 is the main terminal; exec tabs count up.
    let tabs = use_state(|| vec![0u32]);
    let active = use_state(|| 0u32);
    let next = use_mut_ref(|| 1u32);
    let status = use_state(BTreeMap::<u32, String>::new);
    let status_ref = use_mut_ref(BTreeMap::<u32, String>::new);
    let on_status = {
        let status = status.clone();
        let status_ref = status_ref.clone();
        Callback::from(move |(serial, s): (u32, String)| {
            status_ref.borrow_mut().insert(serial, s);
            status.set(status_ref.borrow().clone());
        })
    };
    let running = props.info.state == protocol::ContainerState::Running;
    let add_exec = {
        let (tabs, active, next) = (tabs.clone(), active.clone(), next.clone());
        Callback::from(move |_| {
            let n = *next.borrow();
            *next.borrow_mut() += 1;
            let mut t = (*tabs).clone();
            t.push(n);
            tabs.set(t);
            active.set(n);
        })
    };
    let strip = tabs.iter().map(|&serial| {
        let sel = *active == serial;
        let st = status.get(&serial).cloned().unwrap_or_else(|| "connecting".into());
        let dot = if st == "live" { "good" } else if st.starts_with("exited") || st == "closed" { "off" } else { "warn" };
        let pick = {
            let active = active.clone();
            Callback::from(move |_| active.set(serial))
        };
        let close = {
            let (tabs, active) = (tabs.clone(), active.clone());
            Callback::from(move |e: MouseEvent| {
                e.stop_propagation();
                let t: Vec<u32> = tabs.iter().copied().filter(|s| *s != serial).collect();
                if *active == serial {
                    active.set(0);
                }
                tabs.set(t);
            })
        };
        html! {
            <div role="tab" aria-selected={sel.to_string()} class={classes!("ttab", sel.then_some("active"))} onclick={pick} title={st.clone()} data-serial={serial.to_string()}>
                <span class={classes!("dot", dot)} />
                { if serial == 0 { html!{ <>{icon(ICON_TERM)}<span>{props.info.name.clone()}</span></> } } else { html!{ <span>{format!("exec {serial}")}</span> } } }
                { if serial != 0 { html!{ <button class="ttab-close" onclick={close} aria-label="Close tab">{"×"}</button> } } else { html!{} } }
            </div>
        }
    });
    let panes = tabs.iter().map(|&serial| {
        html! {
            <TermPane key={serial.to_string()} container_id={AttrValue::from(props.info.id.clone())}
                kind={if serial == 0 { Kind::Main } else { Kind::Exec }} {serial}
                dark={props.dark} active={props.visible && *active == serial} on_status={on_status.clone()} />
        }
    });
    let cur = status
        .get(&*active)
        .cloned()
        .unwrap_or_else(|| "connecting".into());
    html! {
        <div class={classes!("card", "term-card", (!props.visible).then_some("hidden"))} data-container={props.info.id.clone()}>
            <div class="term-bar">
                <div class="ttabs" role="tablist">{ for strip }
                    <button class="ttab add" onclick={add_exec} disabled={!running} title="A new shell that joins this container's namespaces (docker exec)" data-testid="exec">{icon(ICON_PLUS)}{"exec"}</button>
                </div>
                <span class="muted small term-hint">{cur}{" · Ctrl+Shift+C / V, right-click to copy / paste"}</span>
            </div>
            <div class="term-body">{ for panes }</div>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct FeedProps {
    store: Store,
}

#[function_component(EventsFeed)]
fn events_feed(props: &FeedProps) -> Html {
    let s = &props.store;
    let items = s.feed.iter().map(|item| {
        let ago = s.now_ms.saturating_sub(item.at_ms);
        html! {
            <li class={classes!("ev", item.severity.class())}>
                <span class="ev-dot" />
                <div>
                    <div class="ev-text">{item.text.clone()}</div>
                    <div class="muted small">{item.detail.clone()}{" · "}{format!("{} ago", format::duration_ms(ago))}</div>
                </div>
            </li>
        }
    });
    html! {
        <section class="feed card">
            <div class="card-title"><span class="eyebrow">{"Events"}</span><span class="muted small">{"limits, exits, lifecycle"}</span></div>
            { if s.feed.is_empty() { html!{ <p class="muted small pad">{ if s.phase == Phase::Live { "Quiet so far. Try a fork bomb: f(){ f|f& };f" } else { "What the kernel does to your containers, in plain words: OOM kills, refused forks, exits." } }</p> } } else { html!{} } }
            <ul class="ev-list" data-testid="events">{ for items }</ul>
        </section>
    }
}
