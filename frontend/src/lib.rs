//! The Glassbox playground page.
//!
//! The logic lives in plain modules that know nothing of the browser
//! (`format`, `history`, `feed`, `term`, `chart`, `glass`, `api`) and are
//! tested natively and in headless Chromium. The browser glue (`xterm`,
//! `net`) and the Yew components (`ui`) sit on top.

pub mod api;
pub mod chart;
pub mod feed;
pub mod format;
pub mod glass;
pub mod history;
pub mod net;
pub mod term;
pub mod ui;
pub mod xterm;

#[cfg(test)]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Entry point: render the app into `<body>`.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    let root = gloo_utils_root();
    yew::Renderer::<ui::app::App>::with_root(root).render();
}

#[cfg(all(target_arch = "wasm32", not(test)))]
fn gloo_utils_root() -> web_sys::Element {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .expect("a document");
    doc.get_element_by_id("app")
        .or_else(|| doc.body().map(Into::into))
        .expect("a <body>")
}
