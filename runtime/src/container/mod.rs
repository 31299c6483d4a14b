//! Containers: create, list, inspect, kill, remove, and the live views
//! (stats, processes, RW-layer diff). This is the API the CLI and the backend
//! use; it never forks itself (see [`crate::process::spawn`]).

use crate::cgroups::{Cgroup, CgroupError, CgroupParent, CgroupRecord};
use crate::failpoint;
use crate::image::{Image, ImageError, ImageStore};
use crate::network::{self, EgressOptions, NetworkError, NetworkMode, NetworkRecord};
use crate::pool;
use crate::process::messages::{Refill, SpawnReport};
use crate::process::ring::{Replay, Ring};
use crate::process::spawn::{claim_warm, spawn_supervisor, Stdio3, SupervisorHandle};
use crate::process::supervisor::{cleanup, process_start_time};
use crate::process::ProcessError;
use crate::rootfs::{self, RootfsError};
use crate::state::{self, ContainerConfig, ContainerDir, LayerRef, StateDir, StateError};
use crate::userns::{ranges, IdRange, UsernsError};
use protocol::{
    Change, ContainerInfo, ContainerState, LayerInfo, Limits, NamespaceInfo, ProcessEntry, Stats,
};
use std::collections::{BTreeMap, HashSet};

mod warm;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("{0:?} matches more than one container; give more of the id")]
    Ambiguous(String),
    #[error("the name {0:?} is already in use")]
    NameInUse(String),
    #[error("invalid container name {0:?}: use letters, digits, '-', '_' or '.', at most 63")]
    InvalidName(String),
    #[error("invalid hostname {0:?}")]
    InvalidHostname(String),
    #[error("container {0} is running: stop it first or remove it with force")]
    Running(String),
    #[error("{what} exceeds {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("image {image:?} is used by container {container}")]
    ImageInUse { image: String, container: String },
    #[error("starting the container failed: {message}")]
    StartFailed { message: String, exit_code: i32 },
    #[error("reading the RW layer: {0}")]
    Diff(#[from] crate::rootfs::diff::DiffError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Userns(#[from] UsernsError),
}

type Result<T> = std::result::Result<T, ContainerError>;

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub state_dir: PathBuf,
    /// Cgroup parent of containers, relative to each hierarchy's root; None: our own cgroup.
    pub cgroup_parent: Option<String>,
    /// How many warm containers to keep ready (0: every start is cold).
    pub warm_pool: usize,
    /// How long a warm container waits to be claimed before it removes itself.
    pub warm_idle: std::time::Duration,
    /// The image warm containers are prepared for (their rootfs is built
    /// ahead); containers of other images start cold.
    pub warm_image: String,
    /// How many containers of the warm image to keep running its shell on a
    /// terminal already, for creates that ask for nothing but limits (see
    /// [`pool`]). Other creates take a parked entry (`warm_pool`).
    pub shell_pool: usize,
    /// The limits shell entries are made with (cgroup and RW layer): a
    /// claim that asks for these sets none, which is most of its work. A
    /// server passes its default limits.
    pub shell_limits: Limits,
    /// Whether a claim refills the pool at once (from the claimed
    /// container's supervisor). A long-lived caller turns it off and calls
    /// [`Runtime::refill_pool_by`] when creates pause, so that a burst of
    /// creates does not queue behind the entries being made for it.
    pub refill_on_claim: bool,
    /// Egress networking, which the operator enables; None: containers that
    /// ask for it are refused.
    pub egress: Option<EgressOptions>,
}

impl RuntimeOptions {
    /// Options with the defaults: no cgroup parent of our own, no warm pool.
    pub fn new(state_dir: impl Into<PathBuf>) -> RuntimeOptions {
        RuntimeOptions {
            state_dir: state_dir.into(),
            cgroup_parent: None,
            warm_pool: 0,
            warm_idle: pool::DEFAULT_IDLE,
            warm_image: crate::image::BUSYBOX_IMAGE.to_string(),
            shell_pool: 0,
            shell_limits: Limits::default(),
            refill_on_claim: true,
            egress: None,
        }
    }
}

/// Bytes of command and environment a container may be given.
pub const MAX_CMD_ENV_BYTES: usize = 32 * 1024;

/// What `gbx run` / `POST /containers` ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    pub hostname: Option<String>,
    /// Empty: the image's shell.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub limits: Limits,
    pub init: bool,
    pub tty: bool,
    /// Initial terminal size (cols, rows); 80×24 when unset.
    pub tty_size: Option<(u16, u16)>,
    /// Keep stdin open (`-i`).
    pub interactive: bool,
    /// The caller's own stdio becomes the container's (foreground, no tty).
    pub foreground: bool,
    pub auto_remove: bool,
    pub network: NetworkMode,
}

pub struct Runtime {
    state: StateDir,
    images: ImageStore,
    cgroup_parent: Option<String>,
    warm_pool: usize,
    warm_idle: std::time::Duration,
    warm_image: String,
    shell_pool: usize,
    shell_limits: Limits,
    refill_on_claim: bool,
    egress: Option<EgressOptions>,
    /// Our own namespaces' inodes, which `inspect` shows beside the
    /// container's: read once, they do not change.
    host_namespaces: BTreeMap<String, u64>,
    /// What the last take listed of the pool (see [`pool::Listing`]).
    pool_listing: pool::Listing,
}

/// A created container and the handle to learn its exit.
pub struct Started {
    pub info: ContainerInfo,
    /// `None` for a container taken from the pool running already: its exit
    /// is learnt from its supervisor's socket.
    pub supervisor: Option<SupervisorHandle>,
    /// Its cgroup, as recorded in its config (for a stats reader).
    pub cgroup: CgroupRecord,
}

impl Runtime {
    pub fn open(opts: RuntimeOptions) -> Result<Runtime> {
        let state = StateDir::open(&opts.state_dir)?;
        let images = ImageStore::open(&opts.state_dir)?;
        Ok(Runtime {
            state,
            images,
            cgroup_parent: opts.cgroup_parent,
            warm_pool: opts.warm_pool,
            warm_idle: opts.warm_idle,
            warm_image: opts.warm_image,
            shell_pool: opts.shell_pool,
            shell_limits: opts.shell_limits,
            refill_on_claim: opts.refill_on_claim,
            egress: opts.egress,
            host_namespaces: crate::namespaces::inodes("self").unwrap_or_default(),
            pool_listing: pool::Listing::default(),
        })
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    pub fn cgroup_parent(&self) -> CgroupParent {
        CgroupParent(self.cgroup_parent.clone())
    }

    /// Create and start a container; returns once its command runs.
    pub fn create(&self, opts: CreateOptions) -> Result<Started> {
        self.create_with(opts, true)
    }

    /// [`Runtime::create`] for a caller whose [`Runtime::claim_running_shell`]
    /// found no running shell just now: the pool is not looked at again.
    pub fn create_without_running_shell(&self, opts: CreateOptions) -> Result<Started> {
        self.create_with(opts, false)
    }

    fn create_with(&self, opts: CreateOptions, try_running_shell: bool) -> Result<Started> {
        let size: usize = opts.cmd.iter().chain(&opts.env).map(|s| s.len() + 1).sum();
        if size > MAX_CMD_ENV_BYTES {
            return Err(ContainerError::TooLarge {
                what: "command and environment",
                limit: MAX_CMD_ENV_BYTES,
            });
        }
        if let Some(n) = opts.name.as_ref().filter(|n| !state::is_valid_name(n)) {
            return Err(ContainerError::InvalidName(n.clone()));
        }
        if let Some(h) = opts.hostname.as_ref().filter(|h| !state::is_valid_name(h)) {
            return Err(ContainerError::InvalidHostname(h.clone()));
        }
        let egress = match (opts.network, &self.egress) {
            (NetworkMode::None, _) => None,
            (NetworkMode::Egress, Some(egress)) => Some(egress),
            (NetworkMode::Egress, None) => return Err(NetworkError::EgressDisabled.into()),
        };
        if try_running_shell {
            if let Some(started) = self.claim_running_shell(&opts)? {
                return Ok(started);
            }
        }
        let image = self.images.resolve(&opts.image)?;
        let (dir, warm, config) = {
            let _lock = self.state.lock()?;
            if let Some(name) = &opts.name {
                if self.find_by_name(name)?.is_some() {
                    return Err(ContainerError::NameInUse(name.clone()));
                }
            }
            let layers = image.layer_dirs();
            let warm = (self.warm_pool > 0)
                .then(|| pool::take(&self.state, &layers, false, &self.pool_listing))
                .flatten();
            if warm.is_some() {
                failpoint::hit("create.claimed");
            }
            let (id, mut pooled) = match &warm {
                Some(entry) => (entry.id.clone(), Some(Cgroup::open(&entry.cgroup))),
                None => (state::new_id(), None),
            };
            let dir = self.state.container(&id);
            let made = (|| -> Result<ContainerConfig> {
                let (cgroup, id_map) = if let (Some(cgroup), Some(entry)) = (pooled.take(), &warm) {
                    // Its `pool.json` stays until the container is removed:
                    // unlinking a file frees its block, which a filesystem
                    // mounted with `discard` trims before the call returns.
                    cgroup.set_limits(&opts.limits)?;
                    (cgroup, entry.id_map)
                } else {
                    std::fs::create_dir(&dir.dir).map_err(|source| StateError::Io {
                        what: "creating",
                        path: dir.dir.clone(),
                        source,
                    })?;
                    // From here on the directory is the record a restart
                    // finds: `Runtime::sweep` derives the cgroup from the id.
                    failpoint::hit("create.state_dir_made");
                    // Taken once the directory exists: see userns::ranges.
                    let id_map = ranges::allocate(&self.state.root, &id)?;
                    let parent = CgroupParent(self.cgroup_parent.clone());
                    let cgroup = Cgroup::create(&parent, &id, &opts.limits)?;
                    failpoint::hit("create.cgroup_made");
                    (cgroup, id_map)
                };
                let network = match egress {
                    Some(egress) => {
                        network::host::ensure(egress)?;
                        Some(network::allocate(&self.state, egress, &id)?)
                    }
                    None => None,
                };
                let config = container_config(&id, &opts, &image, cgroup.record(), id_map, network);
                state::write_json_atomic(&dir.config(), &config)?;
                failpoint::hit("create.config_written");
                if warm.is_some() {
                    rootfs::rw::resize(&dir, opts.limits.disk_bytes)?;
                } else {
                    rootfs::rw::create(&dir, opts.limits.disk_bytes, &id_map)?;
                }
                failpoint::hit("create.rw_mounted");
                Ok(config)
            })();
            match made {
                Ok(config) => (dir, warm, config),
                Err(e) => {
                    if let Some(entry) = &warm {
                        pool::kill_supervisor(entry);
                        let _ = Cgroup::open(&entry.cgroup).remove();
                    }
                    self.discard(&dir);
                    return Err(e);
                }
            }
        };
        let stdio = if opts.foreground && !opts.tty {
            Stdio3::Inherit {
                stdin: opts.interactive,
            }
        } else {
            Stdio3::Capture
        };
        let refill = self
            .warm_layers(Some(&image))
            .filter(|_| self.refill_on_claim)
            .map(|layers| Refill {
                state_root: self.state.root.clone(),
                cgroup_parent: self.cgroup_parent.clone(),
                idle_secs: self.warm_idle.as_secs(),
                target: self.warm_pool,
                layers,
            });
        let started = match &warm {
            Some(_) => claim_warm(&dir.dir, stdio, refill),
            None => spawn_supervisor(&dir.dir, stdio, refill),
        };
        let id = id_of(&dir);
        let result = match started {
            Ok((SpawnReport::Started { .. }, supervisor)) => {
                failpoint::hit("create.started");
                tracing::info!(container = %id, warm = warm.is_some(), "container started");
                // With auto-remove, a quick command may already be gone: use what we wrote.
                Ok(Started {
                    info: self.info(&dir, &config),
                    supervisor: Some(supervisor),
                    cgroup: config.cgroup.clone(),
                })
            }
            Ok((SpawnReport::Failed { error, exit_code }, _)) => {
                self.discard(&dir);
                Err(ContainerError::StartFailed {
                    message: error,
                    exit_code,
                })
            }
            Ok((SpawnReport::Exited { code }, _)) => {
                self.discard(&dir);
                Err(ContainerError::StartFailed {
                    message: "the supervisor reported an exit before a start".into(),
                    exit_code: code,
                })
            }
            Err(e) => {
                if let Some(entry) = &warm {
                    pool::kill_supervisor(entry);
                }
                self.discard(&dir);
                Err(e.into())
            }
        };
        result
    }

    /// Remove everything a half-made container left.
    fn discard(&self, dir: &ContainerDir) {
        let cgroup = dir.read_config().ok().map(|c| Cgroup::open(&c.cgroup));
        if let Some(cgroup) = cgroup {
            for e in cleanup(dir, &cgroup, true) {
                tracing::warn!(dir = %dir.dir.display(), error = %e, "cleanup after a failed create");
            }
        } else {
            let _ = rootfs::rw::remove(dir);
            let _ = std::fs::remove_dir_all(&dir.dir);
        }
    }

    fn find_by_name(&self, name: &str) -> Result<Option<String>> {
        for id in self.state.container_ids()? {
            if let Ok(c) = self.state.container(&id).read_config() {
                if c.name == name {
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }

    /// The id of a container given by id, unique id prefix, or name.
    pub fn resolve(&self, id_or_name: &str) -> Result<String> {
        let ids = self.state.container_ids()?;
        if ids.iter().any(|i| i == id_or_name) {
            return Ok(id_or_name.to_string());
        }
        if let Some(id) = self.find_by_name(id_or_name)? {
            return Ok(id);
        }
        let matches: Vec<&String> = if id_or_name.is_empty() {
            Vec::new()
        } else {
            ids.iter().filter(|i| i.starts_with(id_or_name)).collect()
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ContainerError::NotFound(id_or_name.to_string())),
            _ => Err(ContainerError::Ambiguous(id_or_name.to_string())),
        }
    }

    fn load(&self, id_or_name: &str) -> Result<(ContainerDir, ContainerConfig)> {
        let id = self.resolve(id_or_name)?;
        let dir = self.state.container(&id);
        let config = dir
            .read_config()
            .map_err(|_| ContainerError::NotFound(id_or_name.to_string()))?;
        Ok((dir, config))
    }

    pub fn inspect(&self, id_or_name: &str) -> Result<ContainerInfo> {
        let (dir, config) = self.load(id_or_name)?;
        Ok(self.info(&dir, &config))
    }

    /// An exited container's exit code, recorded with the main terminal's
    /// output kept at the exit, from `since` on (a gap if part of it had
    /// already left the replay ring). None while the container runs, or if
    /// nothing was kept.
    pub fn kept_output(&self, id_or_name: &str, since: u64) -> Result<Option<(i32, Replay)>> {
        let (dir, _) = self.load(id_or_name)?;
        let state = dir.read_state()?;
        let Some(start) = state.output_seq else {
            return Ok(None);
        };
        let data = std::fs::read(dir.output()).map_err(|source| StateError::Io {
            what: "reading",
            path: dir.output(),
            source,
        })?;
        let code = state.exit_code.unwrap_or(-1);
        Ok(Some((code, Ring::kept(start, data).since(since))))
    }

    pub fn list(&self) -> Result<Vec<ContainerInfo>> {
        let mut out = Vec::new();
        for id in self.state.container_ids()? {
            let dir = self.state.container(&id);
            if let Ok(config) = dir.read_config() {
                out.push(self.info(&dir, &config));
            }
        }
        out.sort_by_key(|c| c.created_at_ms);
        Ok(out)
    }

    fn info(&self, dir: &ContainerDir, config: &ContainerConfig) -> ContainerInfo {
        self.info_knowing(dir, config, false)
    }

    /// [`Self::info`], told whether the container's supervisor was just
    /// seen alive (a claim checks it under the state lock): then its
    /// processes need not be looked up again, each a read of
    /// `/proc/PID/stat`, which is slow.
    pub(super) fn info_knowing(
        &self,
        dir: &ContainerDir,
        config: &ContainerConfig,
        supervisor_seen_alive: bool,
    ) -> ContainerInfo {
        let st = dir.read_state().unwrap_or_default();
        // Running until the supervisor has recorded the exit.
        let alive = st.running
            && (supervisor_seen_alive
                || pid_alive(st.host_pid, st.host_pid_start)
                || pid_alive(st.supervisor_pid, st.supervisor_start));
        let state = if alive {
            ContainerState::Running
        } else if st.host_pid.is_none() && st.exit_code.is_none() {
            ContainerState::Created
        } else {
            ContainerState::Exited
        };
        let host_ns = &self.host_namespaces;
        let namespaces = st
            .namespaces
            .iter()
            .map(|(k, v)| {
                let host_inode = host_ns.get(k).copied().unwrap_or(0);
                (
                    k.clone(),
                    NamespaceInfo {
                        inode: *v,
                        host_inode,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        ContainerInfo {
            id: config.id.clone(),
            name: config.name.clone(),
            image: config.image.clone(),
            cmd: config.cmd.clone(),
            hostname: config.hostname.clone(),
            state,
            exit_code: st.exit_code,
            oom_killed: st.oom_killed,
            host_pid: if alive { st.host_pid } else { None },
            namespaces,
            cgroup: Cgroup::open(&config.cgroup).info(),
            limits: config.limits,
            layers: config
                .layers
                .iter()
                .map(|l| LayerInfo {
                    digest: l.digest.clone(),
                    size: l.size,
                    path: l.dir.display().to_string(),
                })
                .collect(),
            upper_dir: dir.upper().display().to_string(),
            init: config.init,
            tty: config.tty,
            created_at_ms: config.created_at_ms,
            finished_at_ms: st.finished_at_ms,
            supervisor_pid: if alive { st.supervisor_pid } else { None },
            network: NetworkRecord::info(config.network.as_ref()),
            id_map: Some(config.id_map.info()),
        }
    }

    /// Send a signal to PID 1 of a running container.
    pub fn kill(&self, id_or_name: &str, signal: nix::sys::signal::Signal) -> Result<()> {
        let (dir, config) = self.load(id_or_name)?;
        let st = dir.read_state()?;
        if !(st.running && pid_alive(st.host_pid, st.host_pid_start)) {
            return Err(ContainerError::NotRunning(config.id));
        }
        if let Some(pid) = st.host_pid {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        }
        Ok(())
    }

    /// Remove a container and everything it had on the host. A running one
    /// needs `force` and is killed first.
    pub fn remove(&self, id_or_name: &str, force: bool) -> Result<()> {
        let (dir, config) = self.load(id_or_name)?;
        let st = dir.read_state()?;
        let alive = st.running && pid_alive(st.host_pid, st.host_pid_start);
        if alive && !force {
            return Err(ContainerError::Running(config.id));
        }
        let cgroup = Cgroup::open(&config.cgroup);
        if alive {
            if let Some(pid) = st.host_pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        // Let the supervisor see the exit and leave; it must not write into a
        // directory we are deleting.
        if let Some(sup) = st.supervisor_pid {
            let deadline = Instant::now() + Duration::from_secs(3);
            let ours = || pid_alive(Some(sup), st.supervisor_start);
            while ours() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if ours() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(sup as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        failpoint::hit("delete.killed");
        let mut errors = Vec::new();
        if let Err(e) = rootfs::rw::remove(&dir) {
            errors.push(e.to_string());
        }
        failpoint::hit("delete.unmounted");
        if let Err(e) = cgroup.remove() {
            errors.push(e.to_string());
        }
        failpoint::hit("delete.cgroup_removed");
        // The directory last (its absence is what says "removed"); cleanup
        // is idempotent, so the two steps above are not repeated for real.
        errors.extend(cleanup(&dir, &cgroup, true));
        if let Some(first) = errors.into_iter().next() {
            tracing::warn!(container = %config.id, error = %first, "remove left something behind");
        }
        tracing::info!(container = %config.id, "container removed");
        Ok(())
    }

    pub fn stats(&self, id_or_name: &str) -> Result<Stats> {
        let (_, config) = self.load(id_or_name)?;
        Ok(Cgroup::open(&config.cgroup).stats()?)
    }

    /// Each process of the container: its PID inside and on the host.
    pub fn processes(&self, id_or_name: &str) -> Result<Vec<ProcessEntry>> {
        let (_, config) = self.load(id_or_name)?;
        let pids = Cgroup::open(&config.cgroup).pids()?;
        let mut host_to_ns = BTreeMap::new();
        let mut rows = Vec::new();
        for host_pid in pids {
            let Some((ns_pid, host_ppid)) = ns_pid_and_ppid(host_pid) else {
                continue;
            };
            host_to_ns.insert(host_pid, ns_pid);
            rows.push((host_pid, ns_pid, host_ppid, cmdline(host_pid)));
        }
        let mut out: Vec<ProcessEntry> = rows
            .into_iter()
            .map(|(host_pid, pid, host_ppid, cmd)| ProcessEntry {
                pid,
                host_pid: host_pid as u32,
                ppid: host_to_ns.get(&host_ppid).copied().unwrap_or(0),
                cmd,
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        Ok(out)
    }

    /// What the container's RW layer holds.
    pub fn diff(&self, id_or_name: &str) -> Result<Vec<Change>> {
        let (dir, config) = self.load(id_or_name)?;
        let lowers: Vec<PathBuf> = config.layers.iter().map(|l| l.dir.clone()).collect();
        let lowers: Vec<&std::path::Path> = lowers.iter().map(|p| p.as_path()).collect();
        Ok(rootfs::diff::diff(&dir.upper(), &lowers)?)
    }

    /// Remove an image unless a container uses it.
    pub fn remove_image(&self, name: &str) -> Result<()> {
        let image = self.images.resolve_existing(name)?;
        let mut in_use = HashSet::new();
        for c in self.list_configs()? {
            if c.image == image.name {
                return Err(ContainerError::ImageInUse {
                    image: image.name,
                    container: c.id,
                });
            }
            in_use.extend(c.layers.iter().map(|l| l.digest.clone()));
        }
        Ok(self.images.remove(&image.name, &in_use)?)
    }

    fn list_configs(&self) -> Result<Vec<ContainerConfig>> {
        Ok(self
            .state
            .container_ids()?
            .into_iter()
            .filter_map(|id| self.state.container(&id).read_config().ok())
            .collect())
    }

    /// Watch a container's OOM kills, refused forks and exit.
    pub fn events(&self, id_or_name: &str) -> Result<crate::events::EventMonitor> {
        let (dir, config) = self.load(id_or_name)?;
        Ok(crate::events::EventMonitor::new(
            config.id,
            Cgroup::open(&config.cgroup),
            &dir.socket(),
            config.limits,
        ))
    }

    /// The supervisor's socket, for attaching to terminals.
    pub fn socket_path(&self, id_or_name: &str) -> Result<PathBuf> {
        let (dir, _) = self.load(id_or_name)?;
        Ok(dir.socket())
    }
}

/// The config of a container `id` made for `opts` from `image`.
fn container_config(
    id: &str,
    opts: &CreateOptions,
    image: &Image,
    cgroup: CgroupRecord,
    id_map: IdRange,
    network: Option<NetworkRecord>,
) -> ContainerConfig {
    let name = opts.name.clone().unwrap_or_else(|| id[..12].to_string());
    ContainerConfig {
        id: id.to_string(),
        hostname: opts.hostname.clone().unwrap_or_else(|| name.clone()),
        env: container_env(
            &opts.env,
            opts.hostname.as_deref().unwrap_or(&name),
            opts.tty,
        ),
        name,
        image: image.name.clone(),
        layers: image
            .layers
            .iter()
            .map(|l| LayerRef {
                digest: l.digest.clone(),
                size: l.size,
                dir: l.dir.clone(),
            })
            .collect(),
        cmd: if opts.cmd.is_empty() {
            vec!["/bin/sh".into()]
        } else {
            opts.cmd.clone()
        },
        limits: opts.limits,
        init: opts.init,
        tty: opts.tty,
        tty_size: opts.tty_size,
        interactive: opts.interactive,
        foreground: opts.foreground,
        auto_remove: opts.auto_remove,
        cgroup,
        id_map,
        created_at_ms: state::now_ms(),
        network,
    }
}

/// The environment every container starts with, then the user's entries.
fn container_env(user: &[String], hostname: &str, tty: bool) -> Vec<String> {
    let mut env = vec![
        format!("PATH={}", crate::process::init::DEFAULT_PATH),
        "HOME=/root".to_string(),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm-256color".into());
    }
    for e in user {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    env
}

fn id_of(dir: &ContainerDir) -> String {
    dir.dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn pid_alive(pid: Option<u32>, start: Option<u64>) -> bool {
    match pid {
        Some(pid) => {
            process_start_time(pid as i32).is_some_and(|s| start.is_none_or(|want| want == s))
        }
        None => false,
    }
}

/// PID inside the innermost namespace (last NSpid entry) and the host PPid.
fn ns_pid_and_ppid(host_pid: i32) -> Option<(u32, i32)> {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    let mut ns_pid = None;
    let mut ppid = None;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("NSpid:") {
            ns_pid = v.split_whitespace().last().and_then(|p| p.parse().ok());
        } else if let Some(v) = line.strip_prefix("PPid:") {
            ppid = v.trim().parse().ok();
        }
    }
    Some((ns_pid?, ppid.unwrap_or(0)))
}

fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let s: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if s.is_empty() {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| format!("[{}]", c.trim()))
            .unwrap_or_default()
    } else {
        s.join(" ")
    }
}
