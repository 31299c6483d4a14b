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
    allocate_in(&registry_dir(), state_root, id)
}

fn allocate_in(registry: &Path, state_root: &Path, id: &str) -> Result<IdRange, UsernsError> {
    let _lock = lock(registry)?;
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
    release_in(&registry_dir(), state_root, id)
}

fn release_in(registry: &Path, state_root: &Path, id: &str) {
    let Ok(_lock) = lock(registry) else { return };
    let Ok(root) = state_root.canonicalize() else {
        return;
    };
    let want = owner_line(&root, id);
    let Ok(rd) = std::fs::read_dir(registry) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(root: &Path, kind: &str, id: &str) {
        std::fs::create_dir_all(root.join(kind).join(id)).expect("owner dir");
    }

    #[test]
    fn ranges_are_distinct_released_and_stale_ones_reused() {
        let registry = tempfile::tempdir().expect("registry");
        let state = tempfile::tempdir().expect("state");
        let (reg, root) = (registry.path(), state.path());
        owner(root, "containers", "a");
        owner(root, "pool", "b");
        let a = allocate_in(reg, root, "a").expect("a");
        let b = allocate_in(reg, root, "b").expect("b");
        assert_eq!(a.host_base, FIRST_HOST_ID);
        assert_eq!(b.host_base, FIRST_HOST_ID + RANGE_SIZE);
        assert!(!a.contains(b.host_base) && !b.contains(a.host_base));
        // A pool entry claimed (renamed to containers/) keeps its range.
        std::fs::rename(root.join("pool/b"), root.join("containers/b")).expect("claim");
        owner(root, "containers", "c");
        let c = allocate_in(reg, root, "c").expect("c");
        assert_eq!(c.host_base, FIRST_HOST_ID + 2 * RANGE_SIZE);
        // Released: the next allocation takes the lowest free range.
        release_in(reg, root, "a");
        assert!(!reg.join("0").exists());
        owner(root, "containers", "d");
        assert_eq!(allocate_in(reg, root, "d").expect("d"), a);
        // An owner that vanished without releasing (a crash) leaves a stale
        // record that the next allocation takes over.
        std::fs::remove_dir(root.join("containers/c")).expect("crash");
        owner(root, "containers", "e");
        assert_eq!(allocate_in(reg, root, "e").expect("e"), c);
        // Releasing what one does not own touches nothing.
        release_in(reg, root, "nobody");
        assert_eq!(std::fs::read_dir(reg).expect("registry").count(), 4);
    }

    #[test]
    fn owner_of_splits_container_and_pool_dirs() {
        let (root, id) = owner_of(Path::new("/var/lib/glassbox/pool/abc")).expect("owner");
        assert_eq!(
            (root.as_path(), id.as_str()),
            (Path::new("/var/lib/glassbox"), "abc")
        );
    }
}
