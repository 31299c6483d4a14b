//! The runtime's error, rolled up from each module's own error type.

use crate::cgroups::CgroupError;
use crate::image::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
