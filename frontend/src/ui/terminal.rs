//! One terminal pane: xterm.js on a WebSocket, with flow control, resizes,
//! copy/paste and (for the main terminal) reconnection with replay.

use crate::term::{self, Control, Flow, ReplayCursor, Write};
use crate::xterm::{self, Fit, Terminal};
use js_sys::{Function, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, KeyboardEvent, MessageEvent, MouseEvent, WebSocket};
use yew::prelude::*;

impl term::Chunk for Uint8Array {
    fn byte_len(&self) -> usize {
        self.length() as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The container's own terminal: reconnects and replays.
    Main,
    /// A new process joining the container (`exec`).
    Exec,
}

#[derive(Properties, PartialEq)]
pub struct TermProps {
    pub container_id: AttrValue,
    pub kind: Kind,
    /// For exec tabs: a number that makes each tab its own process.
    #[prop_or_default]
    pub serial: u32,
    pub dark: bool,
    pub active: bool,
    /// Connection status for the tab strip: "live", "connecting", ….
    pub on_status: Callback<(u32, String)>,
}

/// Everything a live terminal holds; shared by its JS callbacks.
struct Ctx {
    term: Terminal,
    fit: Fit,
    kind: Kind,
    container_id: String,
    ws: Option<WebSocket>,
    flow: Flow<Uint8Array>,
    cursor: ReplayCursor,
    /// For an exec tab: its session on the server, once attached.
    exec_id: Option<u32>,
    exited: bool,
    disposed: bool,
    attempt: u32,
    status: Callback<(u32, String)>,
    serial: u32,
    /// Closures that must live as long as the terminal.
    keep: Vec<Box<dyn std::any::Any>>,
    ws_keep: Vec<Closure<dyn FnMut(JsValue)>>,
    retry: Option<gloo_timers::callback::Timeout>,
    observer: Option<web_sys::ResizeObserver>,
}

type Shared = Rc<RefCell<Ctx>>;

fn set_status(ctx: &Shared, s: &str) {
    let (cb, serial) = {
        let c = ctx.borrow();
        (c.status.clone(), c.serial)
    };
    cb.emit((serial, s.to_string()));
}

/// Hand output to xterm, each write with a callback that feeds flow control.
///
/// No borrow of the context is held while xterm runs: right after user input
/// xterm parses a write synchronously and calls its callback at once, which
/// borrows the context mutably.
fn write_all(ctx: &Shared, items: Vec<Write<Uint8Array>>) {
    for item in items {
        let term = {
            let c = ctx.borrow();
            if c.disposed {
                return;
            }
            JsValue::from(&c.term).unchecked_into::<Terminal>()
        };
        match item {
            Write::Data(chunk) => {
                let n = chunk.length() as usize;
                let weak = Rc::downgrade(ctx);
                let done = Closure::once_into_js(move || {
                    if let Some(ctx) = weak.upgrade() {
                        let next = ctx.borrow_mut().flow.written(n);
                        write_all(&ctx, next);
                    }
                });
                term.write(&chunk, done.unchecked_ref());
            }
            Write::Notice(text) => {
                term.write(&JsValue::from_str(&text), &Function::new_no_args(""));
            }
        }
    }
}

fn send_size(ctx: &Shared) {
    let c = ctx.borrow();
    if let Some(ws) =
        c.ws.as_ref()
            .filter(|ws| ws.ready_state() == WebSocket::OPEN)
    {
        let _ = ws.send_with_str(&term::resize_message(c.term.cols(), c.term.rows()));
    }
}

fn connect(ctx: &Shared) {
    let (url, kind) = {
        let c = ctx.borrow();
        if c.disposed {
            return;
        }
        let path = match (c.kind, c.exec_id) {
            (Kind::Main, _) => crate::api::tty(&c.container_id, c.cursor.since()),
            // A dropped exec socket re-attaches to the same process.
            (Kind::Exec, Some(n)) => crate::api::exec_tty(&c.container_id, n, c.cursor.since()),
            (Kind::Exec, None) => crate::api::exec(&c.container_id, "/bin/sh"),
        };
        (crate::net::ws_url(&path), c.kind)
    };
    set_status(ctx, "connecting");
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            schedule_retry(ctx);
            return;
        }
    };
    ws.set_binary_type(BinaryType::Arraybuffer);

    let weak = Rc::downgrade(ctx);
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if let Some(ctx) = weak.upgrade() {
            ctx.borrow_mut().attempt = 0;
            set_status(&ctx, "live");
            // The xterm grid may have been fitted before the socket opened.
            ctx.borrow().fit.fit();
            send_size(&ctx);
        }
    });
    let weak = Rc::downgrade(ctx);
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Some(ctx) = weak.upgrade() else { return };
        let ev: MessageEvent = ev.unchecked_into();
        let data = ev.data();
        if let Some(text) = data.as_string() {
            match term::parse_control(&text) {
                Control::Exit { code } => {
                    ctx.borrow_mut().exited = true;
                    let msg =
                        format!("\r\n\x1b[0m\x1b[2m[process exited with code {code}]\x1b[0m\r\n");
                    ctx.borrow()
                        .term
                        .write(&msg.into(), &Function::new_no_args(""));
                    set_status(&ctx, &format!("exited {code}"));
                }
                Control::Gap { from_seq, to_seq } => {
                    ctx.borrow_mut().cursor.on_gap(to_seq);
                    let msg = term::gap_notice(from_seq, to_seq);
                    ctx.borrow()
                        .term
                        .write(&msg.into(), &Function::new_no_args(""));
                }
                Control::Seq { seq } => ctx.borrow_mut().cursor.on_seq(seq),
                Control::Attached { exec_id } => {
                    if exec_id.is_some() {
                        ctx.borrow_mut().exec_id = exec_id;
                    }
                }
                Control::Error { message } => {
                    let msg = format!("\r\n\x1b[0m\x1b[31m[glassbox: {message}]\x1b[0m\r\n");
                    ctx.borrow()
                        .term
                        .write(&msg.into(), &Function::new_no_args(""));
                }
                Control::Unknown => {}
            }
            return;
        }
        let bytes = Uint8Array::new(&data);
        let items = {
            let mut c = ctx.borrow_mut();
            c.cursor.on_bytes(bytes.length() as usize);
            c.flow.incoming(bytes)
        };
        write_all(&ctx, items);
    });
    let weak = Rc::downgrade(ctx);
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Some(ctx) = weak.upgrade() else { return };
        let ev: CloseEvent = ev.unchecked_into();
        let (disposed, exited, exec_id) = {
            let mut c = ctx.borrow_mut();
            c.ws = None;
            (c.disposed, c.exited, c.exec_id)
        };
        if disposed || exited {
            return;
        }
        // 1008: the session ended; 1000 without an exit: the server closed it.
        let final_close = matches!(ev.code(), 1000 | 1008);
        match kind {
            Kind::Main if !final_close => schedule_retry(&ctx),
            // An exec tab that was attached re-attaches to its process.
            Kind::Exec if exec_id.is_some() && !final_close && ev.code() != 1011 => {
                schedule_retry(&ctx)
            }
            _ => {
                let why = ev.reason();
                let what = if kind == Kind::Main {
                    "terminal"
                } else {
                    "exec session"
                };
                let msg = if why.is_empty() {
                    format!("\r\n\x1b[2m[{what} closed]\x1b[0m\r\n")
                } else {
                    format!("\r\n\x1b[2m[{what} closed: {why}]\x1b[0m\r\n")
                };
                ctx.borrow()
                    .term
                    .write(&msg.into(), &Function::new_no_args(""));
                set_status(&ctx, "closed");
            }
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut c = ctx.borrow_mut();
    c.ws_keep = vec![on_open, on_message, on_close];
    c.ws = Some(ws);
}

fn schedule_retry(ctx: &Shared) {
    let attempt = {
        let mut c = ctx.borrow_mut();
        c.attempt += 1;
        c.attempt - 1
    };
    let wait = term::backoff_ms(attempt);
    set_status(
        ctx,
        &format!("reconnecting in {:.1}s", wait as f64 / 1000.0),
    );
    let weak = Rc::downgrade(ctx);
    let t = gloo_timers::callback::Timeout::new(wait, move || {
        if let Some(ctx) = weak.upgrade() {
            connect(&ctx);
        }
    });
    ctx.borrow_mut().retry = Some(t);
}

fn clipboard() -> Option<web_sys::Clipboard> {
    Some(web_sys::window()?.navigator().clipboard())
}

fn copy_selection(term: &Terminal) {
    let text = term.get_selection();
    if !text.is_empty() {
        if let Some(cb) = clipboard() {
            let _ = cb.write_text(&text);
        }
    }
}

fn paste_into(ctx: &Shared) {
    let Some(cb) = clipboard() else { return };
    let weak = Rc::downgrade(ctx);
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(v) = wasm_bindgen_futures::JsFuture::from(cb.read_text()).await {
            if let (Some(ctx), Some(text)) = (weak.upgrade(), v.as_string()) {
                ctx.borrow().term.paste(&text);
            }
        }
    });
}

fn mount(host: &web_sys::HtmlElement, props: &TermProps) -> Shared {
    let term = Terminal::new(&xterm::options(props.dark));
    let fit = Fit::new();
    term.load_addon(&fit);
    term.open(host);
    let ctx: Shared = Rc::new(RefCell::new(Ctx {
        term,
        fit,
        kind: props.kind,
        container_id: props.container_id.to_string(),
        ws: None,
        flow: Flow::default(),
        cursor: ReplayCursor::default(),
        exec_id: None,
        exited: false,
        disposed: false,
        attempt: 0,
        status: props.on_status.clone(),
        serial: props.serial,
        keep: Vec::new(),
        ws_keep: Vec::new(),
        retry: None,
        observer: None,
    }));

    // Typed input goes out as binary frames: bytes, never a control message.
    let weak = Rc::downgrade(&ctx);
    let on_data = Closure::<dyn FnMut(JsValue)>::new(move |d: JsValue| {
        let (Some(ctx), Some(s)) = (weak.upgrade(), d.as_string()) else {
            return;
        };
        let c = ctx.borrow();
        if let Some(ws) =
            c.ws.as_ref()
                .filter(|ws| ws.ready_state() == WebSocket::OPEN)
        {
            let _ = ws.send_with_u8_array(s.as_bytes());
        }
    });
    let weak = Rc::downgrade(&ctx);
    let on_resize = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if let Some(ctx) = weak.upgrade() {
            send_size(&ctx);
        }
    });
    // Ctrl+Shift+C / Ctrl+Shift+V; plain Ctrl+C stays the shell's interrupt.
    let weak = Rc::downgrade(&ctx);
    let on_key = Closure::<dyn FnMut(KeyboardEvent) -> bool>::new(move |ev: KeyboardEvent| {
        let Some(ctx) = weak.upgrade() else {
            return true;
        };
        let (k, c, s, m) = (ev.key(), ev.ctrl_key(), ev.shift_key(), ev.meta_key());
        let copy = term::is_copy_shortcut(&k, c, s, m);
        let paste = term::is_paste_shortcut(&k, c, s, m);
        if !(copy || paste) {
            return true;
        }
        if ev.type_() == "keydown" {
            ev.prevent_default();
            if copy {
                copy_selection(&ctx.borrow().term);
            } else {
                paste_into(&ctx);
            }
        }
        false
    });
    // Right click: copy the selection if there is one, otherwise paste.
    let weak = Rc::downgrade(&ctx);
    let on_context = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Some(ctx) = weak.upgrade() else { return };
        let ev: MouseEvent = ev.unchecked_into();
        ev.prevent_default();
        let has = ctx.borrow().term.has_selection();
        if has {
            copy_selection(&ctx.borrow().term);
        } else {
            paste_into(&ctx);
        }
    });
    let weak = Rc::downgrade(&ctx);
    let on_box = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if let Some(ctx) = weak.upgrade() {
            let c = ctx.borrow();
            if !c.disposed {
                c.fit.fit();
            }
        }
    });
    {
        let c = ctx.borrow();
        c.term.on_data(on_data.as_ref().unchecked_ref());
        c.term.on_resize(on_resize.as_ref().unchecked_ref());
        c.term
            .attach_custom_key_event_handler(on_key.as_ref().unchecked_ref());
        let _ = host
            .add_event_listener_with_callback("contextmenu", on_context.as_ref().unchecked_ref());
    }
    let observer = web_sys::ResizeObserver::new(on_box.as_ref().unchecked_ref()).ok();
    if let Some(o) = &observer {
        o.observe(host);
    }
    {
        let mut c = ctx.borrow_mut();
        c.observer = observer;
        c.keep = vec![
            Box::new(on_data),
            Box::new(on_resize),
            Box::new(on_context),
            Box::new(on_box),
            Box::new(on_key),
        ];
    }
    // Not under the borrow above: fitting resizes the terminal, whose
    // on_resize callback borrows the context again.
    ctx.borrow().fit.fit();
    connect(&ctx);
    ctx
}

fn unmount(ctx: &Shared) {
    let mut c = ctx.borrow_mut();
    c.disposed = true;
    c.retry = None;
    if let Some(o) = c.observer.take() {
        o.disconnect();
    }
    if let Some(ws) = c.ws.take() {
        ws.set_onclose(None);
        ws.set_onmessage(None);
        let _ = ws.close();
    }
    c.flow.clear();
    drop(c);
    // Disposing may call back into the page (e.g. a last resize).
    ctx.borrow().term.dispose();
}

#[function_component(TermPane)]
pub fn term_pane(props: &TermProps) -> Html {
    let host = use_node_ref();
    let ctx = use_mut_ref(|| None::<Shared>);

    {
        let host = host.clone();
        let ctx = ctx.clone();
        let props_key = (props.container_id.clone(), props.kind, props.serial);
        let p = TermProps {
            container_id: props.container_id.clone(),
            kind: props.kind,
            serial: props.serial,
            dark: props.dark,
            active: props.active,
            on_status: props.on_status.clone(),
        };
        use_effect_with(props_key, move |_| {
            if let Some(el) = host.cast::<web_sys::HtmlElement>() {
                *ctx.borrow_mut() = Some(mount(&el, &p));
            }
            move || {
                if let Some(c) = ctx.borrow_mut().take() {
                    unmount(&c);
                }
            }
        });
    }
    {
        let ctx = ctx.clone();
        use_effect_with(props.dark, move |dark| {
            if let Some(c) = ctx.borrow().as_ref() {
                xterm::set_theme(&c.borrow().term, *dark);
            }
        });
    }
    {
        let ctx = ctx.clone();
        use_effect_with(props.active, move |active| {
            if *active {
                if let Some(c) = ctx.borrow().as_ref() {
                    let c = c.borrow();
                    c.fit.fit();
                    c.term.focus();
                }
            }
        });
    }
    let class = classes!("term-host", (!props.active).then_some("hidden"));
    html! { <div class={class} ref={host} data-kind={if props.kind == Kind::Main { "main" } else { "exec" }} /> }
}
