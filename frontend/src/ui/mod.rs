//! The Yew components of the page.

pub mod app;
pub mod charts;
pub mod containers;
pub mod panels;
pub mod state;
pub mod terminal;

use yew::prelude::*;

/// A small inline icon from a path in a 24×24 box (stroke style).
pub fn icon(d: &'static str) -> Html {
    html! {
        <svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d={d} /></svg>
    }
}

pub const ICON_PLAY: &str = "M7 4.5v15l12-7.5z";
pub const ICON_PLUS: &str = "M12 5v14M5 12h14";
pub const ICON_STOP: &str = "M7 7h10v10H7z";
pub const ICON_RESTART: &str = "M4 12a8 8 0 1 0 2.3-5.7M4 4v5h5";
pub const ICON_TRASH: &str = "M5 7h14M10 11v6M14 11v6M6 7l1 12h10l1-12M9 7V4h6v3";
pub const ICON_SUN: &str = "M12 4V2M12 22v-2M4 12H2M22 12h-2M6.3 6.3 4.9 4.9M19.1 19.1l-1.4-1.4M6.3 17.7l-1.4 1.4M19.1 4.9l-1.4 1.4M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z";
pub const ICON_MOON: &str = "M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z";
pub const ICON_CLOCK: &str = "M12 7v5l3 2M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z";
pub const ICON_X: &str = "M6 6l12 12M18 6 6 18";
pub const ICON_TERM: &str = "M4 6l5 5-5 5M11 18h9";
