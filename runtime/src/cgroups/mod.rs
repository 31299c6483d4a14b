//! Cgroups v1 and v2: create, limit, stats, events, remove.
//! (Being written; see the interface in the developers' notes.)

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup i/o on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
