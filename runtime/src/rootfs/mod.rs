//! The container's root filesystem: a size-capped tmpfs for the read-write
//! layer on the host ([`rw`]), and inside the container's mount namespace an
//! overlay of the image layers, a fresh /proc, a minimal /dev, a read-only
//! /sys, and `pivot_root` into it ([`mounts`]).

pub mod diff;
pub mod mounts;
pub mod rw;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{step} {path}: {source}")]
    Sys {
        step: &'static str,
        path: std::path::PathBuf,
        source: nix::Error,
    },
    #[error("{path} is a symlink or not a directory inside the image; refusing to mount over it")]
    UnsafeTarget { path: std::path::PathBuf },
    #[error("path {0} cannot be used in overlay options (contains ',' or ':')")]
    BadLayerPath(std::path::PathBuf),
    #[error("the working directory {0} is outside the container's root")]
    CwdOutsideRoot(std::path::PathBuf),
}
