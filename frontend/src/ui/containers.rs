//! The session's containers: list, actions, and the create form.

use super::state::{Action, Store};
use super::{icon, ICON_PLUS, ICON_RESTART, ICON_STOP, ICON_TRASH};
use crate::api::{self, CreateForm};
use crate::format;
use crate::net;
use protocol::{ContainerInfo, ContainerState};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Re-read the container list into the store.
pub fn refresh(store: Store) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(list) = net::poll::<Vec<ContainerInfo>>(api::CONTAINERS).await {
            store.dispatch(Action::Containers(list));
        }
    });
}

/// What a container button does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    /// `POST …/stop` → the container, exited.
    Stop,
    /// `POST …/restart` → a fresh container (new id) in place of this one.
    Restart,
    /// `DELETE …`.
    Delete,
}

fn act(store: Store, what: Act, id: String, busy: UseStateHandle<Option<String>>) {
    busy.set(Some(id.clone()));
    wasm_bindgen_futures::spawn_local(async move {
        let result = match what {
            Act::Stop => net::json::<ContainerInfo>("POST", &api::action(&id, "stop"), None::<&()>)
                .await
                .map(|info| store.dispatch(Action::Container(info))),
            Act::Restart => {
                store.dispatch(Action::Restarting(Some(id.clone())));
                let r =
                    net::json::<ContainerInfo>("POST", &api::action(&id, "restart"), None::<&()>)
                        .await;
                if r.is_err() {
                    store.dispatch(Action::Restarting(None));
                }
                r.map(|info| store.dispatch(Action::Replaced { old: id, info }))
            }
            Act::Delete => net::send("DELETE", &api::container(&id)).await,
        };
        busy.set(None);
        match result {
            Ok(()) => refresh(store),
            Err(e) => store.dispatch(Action::Error(Some(e.message))),
        }
    });
}

#[derive(Properties, PartialEq)]
pub struct ListProps {
    pub store: Store,
}

fn state_badge(c: &ContainerInfo) -> Html {
    match c.state {
        ContainerState::Running => {
            html! { <span class="pill pill-good"><span class="dot" />{"running"}</span> }
        }
        ContainerState::Created => html! { <span class="pill pill-muted">{"created"}</span> },
        ContainerState::Exited => {
            let code = c.exit_code.map(|c| format!(" ({c})")).unwrap_or_default();
            let cls = if c.exit_code == Some(0) {
                "pill-muted"
            } else {
                "pill-bad"
            };
            html! { <span class={classes!("pill", cls)}>{format!("exited{code}")}{ if c.oom_killed { " · OOM" } else { "" } }</span> }
        }
    }
}

#[function_component(ContainerList)]
pub fn container_list(props: &ListProps) -> Html {
    let store = props.store.clone();
    let creating = use_state(|| false);
    // The container an action is running on (stop waits for the exit).
    let busy = use_state(|| None::<String>);
    let items = store.containers.iter().map(|c| {
        let selected = store.selected.as_deref() == Some(c.id.as_str());
        let id = c.id.clone();
        let select = {
            let store = store.clone();
            let id = id.clone();
            Callback::from(move |_| store.dispatch(Action::Select(id.clone())))
        };
        let running = c.state == ContainerState::Running;
        let working = busy.as_deref() == Some(c.id.as_str());
        let button = |label: &'static str, ic: &'static str, what: Act, danger: bool| {
            let store = store.clone();
            let id = id.clone();
            let any_busy = busy.is_some();
            let busy = busy.clone();
            let onclick = Callback::from(move |e: MouseEvent| {
                e.stop_propagation();
                act(store.clone(), what, id.clone(), busy.clone());
            });
            let testid = match what {
                Act::Stop => "stop",
                Act::Restart => "restart",
                Act::Delete => "delete",
            };
            html! { <button class={classes!("icon-btn", danger.then_some("danger"))} title={label} aria-label={label}
                disabled={any_busy} data-testid={testid} {onclick}>{icon(ic)}</button> }
        };
        let l = &c.limits;
        let limits = [
            l.memory_bytes.map(format::bytes),
            l.cpu_millis.map(format::cpu_millis),
            l.pids.map(|p| format!("{p} pids")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
        html! {
            <li class={classes!("ctr", selected.then_some("selected"))} onclick={select} data-id={c.id.clone()}>
                <div class="ctr-top">
                    <span class="ctr-name">{c.name.clone()}</span>
                    {state_badge(c)}
                </div>
                <div class="ctr-meta muted small">
                    <span class="mono">{format::short_id(&c.id).to_string()}</span>{" · "}{c.image.clone()}
                    { if limits.is_empty() { html!{} } else { html!{ <>{" · "}{limits}</> } } }
                </div>
                <div class="ctr-actions">
                    { if working { html!{ <span class="spinner" /> } } else { html!{} } }
                    { if running { button("Stop", ICON_STOP, Act::Stop, false) } else { html!{} } }
                    { button(if running { "Restart" } else { "Start again (a fresh container)" }, ICON_RESTART, Act::Restart, false) }
                    { button("Delete", ICON_TRASH, Act::Delete, true) }
                </div>
            </li>
        }
    });
    let toggle = {
        let creating = creating.clone();
        Callback::from(move |_| creating.set(!*creating))
    };
    html! {
        <section class="containers card">
            <div class="card-title">
                <span class="eyebrow">{"Containers"}</span>
                <button class="btn btn-small" onclick={toggle} data-testid="new-container">{icon(ICON_PLUS)}{"New"}</button>
            </div>
            { if *creating { html!{ <CreateFormView store={store.clone()} on_done={ let c = creating.clone(); Callback::from(move |_| c.set(false)) } /> } } else { html!{} } }
            <ul class="ctr-list">{ for items }</ul>
            { if store.containers.is_empty() { html!{ <p class="muted small pad">{"No containers in this session."}</p> } } else { html!{} } }
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct CreateProps {
    pub store: Store,
    pub on_done: Callback<()>,
}

#[function_component(CreateFormView)]
fn create_form(props: &CreateProps) -> Html {
    let store = props.store.clone();
    let image = store
        .images
        .first()
        .cloned()
        .unwrap_or_else(|| "busybox".into());
    let form = use_state(|| CreateForm::from_defaults(&image, &store.limits.defaults));
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let field = |label: &'static str,
                 value: String,
                 placeholder: String,
                 set: fn(&mut CreateForm, String)| {
        let form = form.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            let v = e.target_unchecked_into::<HtmlInputElement>().value();
            let mut f = (*form).clone();
            set(&mut f, v);
            form.set(f);
        });
        html! {
            <label class="field"><span>{label}</span><input {value} {placeholder} {oninput} /></label>
        }
    };
    let max = store.limits.maxima;
    let hint = |m: Option<String>| {
        m.map(|m| format!("max {m}"))
            .unwrap_or_else(|| "server default".into())
    };
    let images: Vec<String> = if store.images.is_empty() {
        vec!["busybox".into()]
    } else {
        store.images.clone()
    };
    let on_image = {
        let form = form.clone();
        Callback::from(move |e: Event| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            let mut f = (*form).clone();
            f.image = v;
            form.set(f);
        })
    };
    let on_egress = {
        let form = form.clone();
        Callback::from(move |e: Event| {
            let mut f = (*form).clone();
            f.egress = e.target_unchecked_into::<HtmlInputElement>().checked();
            form.set(f);
        })
    };
    let submit = {
        let form = form.clone();
        let error = error.clone();
        let busy = busy.clone();
        let store = store.clone();
        let done = props.on_done.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let req = match form.to_request(&store.limits.maxima) {
                Ok(r) => r,
                Err(msg) => return error.set(Some(msg)),
            };
            error.set(None);
            busy.set(true);
            let (error, busy, store, done) =
                (error.clone(), busy.clone(), store.clone(), done.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match net::json::<ContainerInfo>("POST", api::CONTAINERS, Some(&req)).await {
                    Ok(info) => {
                        store.dispatch(Action::Container(info));
                        done.emit(());
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        })
    };
    html! {
        <form class="create" onsubmit={submit}>
            <label class="field"><span>{"image"}</span>
                <select onchange={on_image}>
                    { for images.iter().map(|i| html!{ <option value={i.clone()} selected={*i == form.image}>{i.clone()}</option> }) }
                </select>
            </label>
            {field("name", form.name.clone(), "optional".into(), |f, v| f.name = v)}
            <div class="field-row">
                {field("memory", form.memory.clone(), hint(max.memory_bytes.map(format::bytes)), |f, v| f.memory = v)}
                {field("CPUs", form.cpu.clone(), hint(max.cpu_millis.map(format::cpu_millis)), |f, v| f.cpu = v)}
            </div>
            <div class="field-row">
                {field("pids", form.pids.clone(), hint(max.pids.map(|p| p.to_string())), |f, v| f.pids = v)}
                {field("disk", form.disk.clone(), hint(max.disk_bytes.map(format::bytes)), |f, v| f.disk = v)}
            </div>
            { if store.limits.egress { html!{
                <label class="check"><input type="checkbox" checked={form.egress} onchange={on_egress} />
                    <span>{"internet access"}<small class="muted">{" NAT; the host, private ranges and cloud metadata stay out of reach"}</small></span></label>
            } } else { html!{} } }
            { for error.as_ref().map(|e| html!{ <p class="form-error">{e.clone()}</p> }) }
            <button class="btn btn-primary" type="submit" disabled={*busy}>{ if *busy { "Creating…" } else { "Create container" } }</button>
        </form>
    }
}
