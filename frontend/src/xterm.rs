//! xterm.js 6, bound by hand: only what the page uses. The ES modules come
//! from npm (`frontend/node_modules`); wasm-bindgen copies them next to the
//! generated JS, so nothing third-party is committed.

use js_sys::{Function, Object};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/node_modules/@xterm/xterm/lib/xterm.mjs")]
extern "C" {
    pub type Terminal;

    #[wasm_bindgen(constructor)]
    pub fn new(options: &JsValue) -> Terminal;
    #[wasm_bindgen(method)]
    pub fn open(this: &Terminal, parent: &web_sys::HtmlElement);
    /// `data` is a string or a `Uint8Array`; `callback` runs once xterm has parsed it.
    #[wasm_bindgen(method)]
    pub fn write(this: &Terminal, data: &JsValue, callback: &Function);
    #[wasm_bindgen(method)]
    pub fn paste(this: &Terminal, data: &str);
    #[wasm_bindgen(method)]
    pub fn focus(this: &Terminal);
    #[wasm_bindgen(method)]
    pub fn reset(this: &Terminal);
    #[wasm_bindgen(method)]
    pub fn dispose(this: &Terminal);
    #[wasm_bindgen(method, getter)]
    pub fn cols(this: &Terminal) -> u32;
    #[wasm_bindgen(method, getter)]
    pub fn rows(this: &Terminal) -> u32;
    #[wasm_bindgen(method, getter)]
    pub fn options(this: &Terminal) -> Object;
    #[wasm_bindgen(method, js_name = getSelection)]
    pub fn get_selection(this: &Terminal) -> String;
    #[wasm_bindgen(method, js_name = hasSelection)]
    pub fn has_selection(this: &Terminal) -> bool;
    /// Typed input: a string to send to the process.
    #[wasm_bindgen(method, js_name = onData)]
    pub fn on_data(this: &Terminal, f: &Function) -> JsValue;
    /// The grid changed size: `{cols, rows}`.
    #[wasm_bindgen(method, js_name = onResize)]
    pub fn on_resize(this: &Terminal, f: &Function) -> JsValue;
    /// Return false from `f(KeyboardEvent)` to keep xterm from handling a key.
    #[wasm_bindgen(method, js_name = attachCustomKeyEventHandler)]
    pub fn attach_custom_key_event_handler(this: &Terminal, f: &Function);
    #[wasm_bindgen(method, js_name = loadAddon)]
    pub fn load_addon(this: &Terminal, addon: &JsValue);
}

#[wasm_bindgen(module = "/node_modules/@xterm/addon-fit/lib/addon-fit.mjs")]
extern "C" {
    /// Sizes the terminal's grid to its element.
    #[wasm_bindgen(js_name = FitAddon)]
    pub type Fit;

    #[wasm_bindgen(constructor, js_class = "FitAddon")]
    pub fn new() -> Fit;
    #[wasm_bindgen(method, js_class = "FitAddon")]
    pub fn fit(this: &Fit);
}

/// The two colour schemes, matching the page's themes.
pub fn theme(dark: bool) -> JsValue {
    let pairs: &[(&str, &str)] = if dark {
        &[
            ("background", "#0d1117"),
            ("foreground", "#d8dee9"),
            ("cursor", "#7dd3fc"),
            ("cursorAccent", "#0d1117"),
            ("selectionBackground", "#264f78"),
            ("black", "#1b2130"),
            ("red", "#f87171"),
            ("green", "#4ade80"),
            ("yellow", "#facc15"),
            ("blue", "#60a5fa"),
            ("magenta", "#c084fc"),
            ("cyan", "#22d3ee"),
            ("white", "#d8dee9"),
            ("brightBlack", "#5b6477"),
            ("brightRed", "#fca5a5"),
            ("brightGreen", "#86efac"),
            ("brightYellow", "#fde68a"),
            ("brightBlue", "#93c5fd"),
            ("brightMagenta", "#d8b4fe"),
            ("brightCyan", "#67e8f9"),
            ("brightWhite", "#f8fafc"),
        ]
    } else {
        &[
            ("background", "#fbfcfe"),
            ("foreground", "#1f2937"),
            ("cursor", "#0369a1"),
            ("cursorAccent", "#fbfcfe"),
            ("selectionBackground", "#bfdbfe"),
            ("black", "#1f2937"),
            ("red", "#dc2626"),
            ("green", "#15803d"),
            ("yellow", "#a16207"),
            ("blue", "#1d4ed8"),
            ("magenta", "#9333ea"),
            ("cyan", "#0e7490"),
            ("white", "#d1d5db"),
            ("brightBlack", "#6b7280"),
            ("brightRed", "#ef4444"),
            ("brightGreen", "#16a34a"),
            ("brightYellow", "#ca8a04"),
            ("brightBlue", "#2563eb"),
            ("brightMagenta", "#a855f7"),
            ("brightCyan", "#0891b2"),
            ("brightWhite", "#111827"),
        ]
    };
    let o = Object::new();
    for (k, v) in pairs {
        let _ = js_sys::Reflect::set(&o, &(*k).into(), &(*v).into());
    }
    o.into()
}

/// Options for a new terminal.
pub fn options(dark: bool) -> JsValue {
    let o = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&o, &k.into(), &v);
    };
    set("cursorBlink", true.into());
    set("fontSize", 14.into());
    set(
        "fontFamily",
        "'JetBrains Mono', 'Fira Code', 'DejaVu Sans Mono', Menlo, Consolas, monospace".into(),
    );
    set("scrollback", 5000.into());
    set("allowProposedApi", false.into());
    set("theme", theme(dark));
    o.into()
}

/// Switch a live terminal's colours.
pub fn set_theme(term: &Terminal, dark: bool) {
    let _ = js_sys::Reflect::set(&term.options(), &"theme".into(), &theme(dark));
}
