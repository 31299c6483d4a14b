//! Host id ranges, one per container (pool entries included), allocated
//! host-wide so that two runtimes with different state directories never
//! hand out the same range.
//!
//! The registry is a directory of small files, one per range in use, named
//! by the range's slot number and naming its owner: a state directory and a
//! container id. A range is in use while its owner's directory exists
//! (`containers/<id>` or `pool/<id>`, between which a claim renames it), so a
//! runtime that died without releasing leaks nothing for long: the next
//! allocation that meets the stale file takes the range over.

use super::{IdRange, UsernsError};
use nix::fcntl::{Flock, FlockArg};
use std::path::{Path, PathBuf};

/// Where the registry lives unless `GLASSBOX_IDRANGE_DIR` says otherwise.
pub const DEFAULT_REGISTRY: &str = "/run/glassbox/idranges";
/// The first host id given to a container. Below it are the host's own
/// users and the ranges tools like `useradd` hand out in /etc/subuid.
pub const FIRST_HOST_ID: u32 = 1_000_000;
/// Ids per container: uid 0..65535 inside, like a full Linux system.
pub const RANGE_SIZE: u32 = 65_536;
/// How many ranges there are (up to host id 1_000_000 + 4096 × 65536).
pub const SLOTS: u32 = 4096;

pub fn registry_dir() -> PathBuf {
    std::env::var_os("GLASSBOX_IDRANGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY))
}

fn io<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> UsernsError + 'a {
    move |source| UsernsError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn lock(registry: &Path) -> Result<Flock<std::fs::File>, UsernsError> {
    std::fs::create_dir_all(registry).map_err(io("creating", registry))?;
    let path = registry.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| UsernsError::Sys {
        step: "locking",
        path,
        source,
    })
}

fn owner_line(state_root: &Path, id: &str) -> String {
    format!("{}\n{id}\n", state_root.display())
}

/// Whether the owner named in a registry file still has a directory.
fn owner_alive(record: &str) -> bool {
    let mut lines = record.lines();
    let (Some(root), Some(id)) = (lines.next(), lines.next()) else {
        return false;
    };
    let root = Path::new(root);
    root.join("containers").join(id).exists() || root.join("pool").join(id).exists()
}

fn slot_range(slot: u32) -> IdRange {
    IdRange {
        host_base: FIRST_HOST_ID + slot * RANGE_SIZE,
        count: RANGE_SIZE,
    }
}

/// Take a free range for container `id` of the state directory at
/// `state_root`. The container's directory must already exist, or the range
/// would look stale to the next allocation.
pub fn allocate(state_root: &Path, id: &str) -> Result<IdRange, UsernsError> {
    let registry = registry_dir();
    let _lock = lock(&registry)?;
    let root = state_root
        .canonicalize()
        .map_err(io("resolving", state_root))?;
    for slot in 0..SLOTS {
        let path = registry.join(slot.to_string());
        let free = match std::fs::read_to_string(&path) {
            Ok(record) => !owner_alive(&record),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io("reading", &path)(e)),
        };
        if free {
            std::fs::write(&path, owner_line(&root, id)).map_err(io("writing", &path))?;
            let range = slot_range(slot);
            tracing::debug!(container = %id, host_base = range.host_base, "allocated an id range");
            return Ok(range);
        }
    }
    Err(UsernsError::Exhausted(SLOTS))
}

/// Give back whatever ranges container `id` of `state_root` holds. Called
/// when its directory goes; idempotent.
pub fn release(state_root: &Path, id: &str) {
    let registry = registry_dir();
    let Ok(_lock) = lock(&registry) else { return };
    let Ok(root) = state_root.canonicalize() else {
        return;
    };
    let want = owner_line(&root, id);
    let Ok(rd) = std::fs::read_dir(&registry) else {
        return;
    };
    for entry in rd.filter_map(|e| e.ok()) {
        let path = entry.path();
        if std::fs::read_to_string(&path).is_ok_and(|r| r == want) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether the range starting at `host_base` is allocated (for tests and
/// diagnostics).
pub fn is_allocated(host_base: u32) -> bool {
    if host_base < FIRST_HOST_ID || !(host_base - FIRST_HOST_ID).is_multiple_of(RANGE_SIZE) {
        return false;
    }
    let slot = (host_base - FIRST_HOST_ID) / RANGE_SIZE;
    std::fs::read_to_string(registry_dir().join(slot.to_string())).is_ok_and(|r| owner_alive(&r))
}

/// The state root and id of a container or pool entry directory
/// (`<root>/containers/<id>` or `<root>/pool/<id>`).
pub fn owner_of(dir: &Path) -> Option<(PathBuf, String)> {
    let id = dir.file_name()?.to_str()?.to_string();
    let root = dir.parent()?.parent()?.to_path_buf();
    Some((root, id))
}
