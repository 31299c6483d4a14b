//! The state directory: where images, layers and containers live on disk.
//!
//! ```text
//! <root>/images/<name>.json          image records (see `image`)
//! <root>/layers/sha256/<hex>/rootfs  unpacked read-only layers
//! <root>/containers/<id>/config.json what was asked for (written once, before anything is made)
//! <root>/containers/<id>/state.json  what the supervisor observed (pid, exit code, …)
//! <root>/containers/<id>/rw/         tmpfs holding upper/ and work/ of the overlay
//! <root>/containers/<id>/rootfs/     mount point of the overlay (inside the container only)
//! <root>/containers/<id>/supervisor.sock
//! ```

use crate::cgroups::CgroupRecord;
use protocol::Limits;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/glassbox";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt record {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One image layer as a container uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub digest: String,
    pub size: u64,
    pub dir: PathBuf,
}

/// What a container was asked to be. Written once, before any resource is made,
/// so that a crashed create can always be cleaned up from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub name: String,
    pub image: String,
    pub layers: Vec<LayerRef>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub hostname: String,
    pub limits: Limits,
    pub init: bool,
    pub tty: bool,
    /// Initial terminal size (cols, rows), set before the command starts.
    #[serde(default)]
    pub tty_size: Option<(u16, u16)>,
    /// Keep stdin open for the container's command (`-i`).
    pub interactive: bool,
    /// The caller's own stdio is the container's (a foreground run without a terminal).
    pub foreground: bool,
    pub auto_remove: bool,
    pub cgroup: CgroupRecord,
    /// The host ids the container's root and users are (see [`crate::userns`]).
    pub id_map: crate::userns::IdRange,
    pub created_at_ms: u64,
    /// Egress (`None`: loopback only). Recorded before anything is made, so
    /// that removal can always take the veth and the address back.
    #[serde(default)]
    pub network: Option<crate::network::NetworkRecord>,
}

/// What the supervisor observed. Rewritten atomically on every change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub supervisor_pid: Option<u32>,
    /// Start time of the supervisor, to tell it from a recycled PID.
    #[serde(default)]
    pub supervisor_start: Option<u64>,
    /// PID 1 of the container, as the host sees it.
    pub host_pid: Option<u32>,
    /// Start time of PID 1 (field 22 of /proc/PID/stat), to tell it from a recycled PID.
    pub host_pid_start: Option<u64>,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    pub finished_at_ms: Option<u64>,
    /// Namespace inodes of PID 1, read once it started.
    pub namespaces: std::collections::BTreeMap<String, u64>,
    /// Sequence number of the first byte of [`ContainerDir::output`] (see
    /// `process::ring`), once the exit has been recorded with its output.
    #[serde(default)]
    pub output_seq: Option<u64>,
}

/// Paths of one container's directory.
#[derive(Debug, Clone)]
pub struct ContainerDir {
    pub dir: PathBuf,
}

impl ContainerDir {
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn rw(&self) -> PathBuf {
        self.dir.join("rw")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("rw/upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("rw/work")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("supervisor.sock")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
    /// The main terminal's last output (what the replay ring held), kept at
    /// the exit for a client that attaches after it.
    pub fn output(&self) -> PathBuf {
        self.dir.join("output.log")
    }

    pub fn read_config(&self) -> Result<ContainerConfig, StateError> {
        read_json(&self.config())
    }
    pub fn read_state(&self) -> Result<RuntimeState, StateError> {
        // Read, not stat'ed first: a missing file is the same answer.
        match read_json(&self.state()) {
            Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(RuntimeState::default())
            }
            read => read,
        }
    }
    pub fn write_state(&self, state: &RuntimeState) -> Result<(), StateError> {
        write_json_atomic(&self.state(), state)
    }
}

/// Add search (but not read) permission for everyone to `dir`.
fn allow_traversal(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dir).map_err(io("reading", dir))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o011 != 0o011 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011))
            .map_err(io("opening up", dir))?;
    }
    Ok(())
}

/// The root of the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn open(root: &Path) -> Result<Self, StateError> {
        for sub in ["containers", "images", "layers"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(io("creating", &p))?;
        }
        // A container's root is an unprivileged host user that must reach
        // its overlay's layers and RW layer by path while it mounts them.
        // Let it through the directories on the way, without listing them.
        for dir in [
            root.to_path_buf(),
            root.join("containers"),
            root.join("layers"),
        ] {
            allow_traversal(&dir)?;
        }
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn container(&self, id: &str) -> ContainerDir {
        ContainerDir {
            dir: self.containers().join(id),
        }
    }

    /// Ids of every container directory (including half-made ones).
    pub fn container_ids(&self) -> Result<Vec<String>, StateError> {
        let dir = self.containers();
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io("listing", &dir))? {
            let entry = entry.map_err(io("listing", &dir))?;
            if let Some(name) = entry.file_name().to_str() {
                if is_valid_id(name) {
                    ids.push(name.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// An exclusive lock over container names and ids, held while one is created or removed.
    pub fn lock(&self) -> Result<StateLock, StateError> {
        let StateLockFile(file) = self.lock_file()?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(StateLock)
            .map_err(|(_, e)| StateError::Io {
                what: "locking",
                path: self.containers().join(".lock"),
                source: e.into(),
            })
    }

    /// The lock's file, open but not locked (see [`StateLockFile`]).
    pub fn lock_file(&self) -> Result<StateLockFile, StateError> {
        let path = self.containers().join(".lock");
        File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map(StateLockFile)
            .map_err(io("opening lock", &path))
    }
}

/// The state lock's file, open but not locked: a process forked while it is
/// open shares the open file, and with it any lock taken on it later, by
/// either process (a flock belongs to the open file).
pub struct StateLockFile(File);

impl StateLockFile {
    /// The lock if nobody else holds it, taken on this open file.
    pub fn try_lock(&self) -> Option<StateLock> {
        let file = self.0.try_clone().ok()?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .ok()
            .map(StateLock)
    }
}

impl From<StateLockFile> for std::os::fd::OwnedFd {
    fn from(f: StateLockFile) -> Self {
        f.0.into()
    }
}

/// Held lock; released on drop.
pub struct StateLock(nix::fcntl::Flock<File>);

impl StateLock {
    /// Our fd, which the caller now owns, without unlocking: dropping the
    /// Flock would unlock the open file, and with it every copy of the fd a
    /// forked child holds.
    pub fn into_raw_fd(self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        std::mem::forget(self);
        fd
    }

    /// Close our fd without unlocking. A flock belongs to the open file, not
    /// to the process: a child forked while we held it keeps it, through its
    /// copy of the fd, until that copy is closed (at the latest, when the
    /// child exits).
    pub fn hand_over(self) {
        // SAFETY: the fd is ours alone (see into_raw_fd).
        unsafe { libc::close(self.into_raw_fd()) };
    }

    /// The lock on an inherited open file (see [`StateLockFile`]), waiting
    /// for it if somebody else holds it; at once if this open file holds it
    /// already. `None` if locking fails.
    pub fn wait_inherited(fd: std::os::fd::OwnedFd) -> Option<StateLock> {
        nix::fcntl::Flock::lock(File::from(fd), nix::fcntl::FlockArg::LockExclusive)
            .ok()
            .map(StateLock)
    }
}

/// The file [`write_json_atomic`] writes before renaming it to `path`.
/// Making it ahead (empty) spares that write the allocation of a new inode.
pub fn atomic_tmp(path: &Path) -> PathBuf {
    path.with_extension("json.tmp")
}

/// A container's config, in its directory.
pub const CONFIG_FILE: &str = "config.json";

/// Container ids are 16 lowercase hex digits (64 random bits).
pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    // getrandom only fails if the kernel has no entropy source at all.
    if getrandom::fill(&mut bytes).is_err() {
        let t = now_ms() ^ u64::from(std::process::id()) << 32;
        bytes = t.to_le_bytes();
    }
    hex::encode(bytes)
}

pub fn is_valid_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Names: what a user types after `--name`; also used as the default hostname.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StateError> {
    let bytes = std::fs::read(path).map_err(io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Write JSON to a temp file, fsync-free (tmpfs-friendly), then rename over the target.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let tmp = atomic_tmp(path);
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    // Not File::create: truncating a file makes ext4 write it out when it
    // is closed, which an empty temporary file made ahead (see
    // `atomic_tmp`) does not need. A leftover one is emptied first.
    let mut f = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&tmp)
        .map_err(io("writing", &tmp))?;
    if f.metadata().map_err(io("reading", &tmp))?.len() != 0 {
        f.set_len(0).map_err(io("writing", &tmp))?;
    }
    f.write_all(&bytes).map_err(io("writing", &tmp))?;
    let _ = f.as_raw_fd();
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("renaming", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let a = new_id();
        let b = new_id();
        assert!(is_valid_id(&a), "{a}");
        assert_ne!(a, b);
        assert!(!is_valid_id("../../etc"));
        assert!(!is_valid_id("ABCDEF0123456789"));
    }

    #[test]
    fn names_reject_paths_and_junk() {
        assert!(is_valid_name("web-1"));
        assert!(!is_valid_name("../x"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(64)));
    }

    #[test]
    fn state_round_trips_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ContainerDir {
            dir: tmp.path().to_path_buf(),
        };
        assert_eq!(dir.read_state().unwrap(), RuntimeState::default());
        let s = RuntimeState {
            host_pid: Some(42),
            exit_code: Some(3),
            ..Default::default()
        };
        dir.write_state(&s).unwrap();
        assert_eq!(dir.read_state().unwrap(), s);
        assert!(!dir.dir.join("state.json.tmp").exists());
    }
}
