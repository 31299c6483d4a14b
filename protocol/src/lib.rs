//! Wire types shared by the Glassbox runtime, backend and frontend.
//!
//! Every message that crosses a process or network boundary is defined once,
//! here. The crate has no dependency beyond serde so that it compiles both
//! natively and to `wasm32-unknown-unknown`.

pub mod api;
pub mod container;
pub mod events;
pub mod stats;
pub mod tty;

pub use container::*;
pub use events::*;
pub use stats::*;
