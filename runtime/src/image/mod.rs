//! The image store: images as ordered lists of read-only layers.
//! (Being written; see the interface in the developers' notes.)

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image i/o on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
