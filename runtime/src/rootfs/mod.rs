//! The container's root filesystem.
pub mod diff;
