//! The container's root filesystem.
