//! The per-container supervisor: a re-exec of our own binary that clones the
//! container, holds its terminal, reaps it, records its exit and cleans up.
//! It detaches from whoever started it, so a container outlives the CLI or
//! the backend that asked for it (like containerd's shim).

use super::channel::{self, Channel};
use super::init::{self, EarlyContext};
use super::messages::{Claim, FromChild, InitPlan, RootfsSpec, SpawnReport, StdioPlan, ToChild};
use super::server::{Server, Session};
use super::spawn::SPAWN_FD;
use crate::cgroups::Cgroup;
use crate::namespaces;
use crate::network::{self, inside::InsidePlan};
use crate::pool::{self, WarmArgs};
use crate::state::{now_ms, ContainerConfig, ContainerDir, RuntimeState, StateDir};
use crate::userns::{self, idmap, ranges, IdRange};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

mod refill;
mod warm;

pub use refill::{OwedRefill, ParkedRefill};
pub use warm::connect_claim;

pub type SpawnChannel = Channel<SpawnReport, Claim>;

/// How long the supervisor waits for a handshake message (the container
/// process parked, a claimer's claim) before it gives up and cleans up. The
/// peer answers in milliseconds when healthy; a peer that was frozen or
/// stopped half-way (a drain racing a park) must not leave a supervisor
/// blocked for ever.
const HANDSHAKE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Run as a supervisor. `args` follow the supervisor marker:
/// `cold <container dir>` (spawned for one container, channel on fd 3) or
/// `warm <entry dir> <idle secs>` (a pool entry, see [`warm`]). Never returns.
pub fn main(args: Vec<OsString>) -> ! {
    let mode = args.first().and_then(|m| m.to_str()).unwrap_or("");
    // Whatever our spawner inherited without CLOEXEC (a build tool's
    // jobserver pipe, a shell's fds) is not ours to hold for the container's
    // lifetime; a cold supervisor keeps its channel, fd 3.
    super::close_fds_from(if mode == "cold" { SPAWN_FD + 1 } else { 3 });
    let code = match (mode, &args[1.min(args.len())..]) {
        ("cold", [dir]) => run_cold(PathBuf::from(dir)),
        ("warm", rest) => match WarmArgs::parse(rest) {
            Some(w) => warm::run_warm(w),
            None => 2,
        },
        _ => 2,
    };
    std::process::exit(code)
}

/// Fork once and let the first process exit: the spawner reaps it at once,
/// and we are adopted by init (or the nearest subreaper) and live on.
fn detach() -> bool {
    // SAFETY: freshly exec'd, single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(ForkResult::Child) => true,
        Err(_) => false,
    }
}

fn run_cold(dir: PathBuf) -> i32 {
    // SAFETY: fd 3 was set up by the spawner (dup2 in pre_exec) and is ours alone.
    let spawn_fd = unsafe { OwnedFd::from_raw_fd(SPAWN_FD) };
    let _ = nix::fcntl::fcntl(
        &spawn_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let spawn: SpawnChannel = Channel::from_fd(spawn_fd);
    if !detach() {
        let _ = spawn.send(&SpawnReport::Failed {
            error: "forking the supervisor failed".into(),
            exit_code: 125,
        });
        return 1;
    }
    let dir = ContainerDir { dir };
    let prepared = match dir
        .read_config()
        .map_err(|e| e.to_string())
        .and_then(|config| Prepared::new(&dir, Cgroup::open(&config.cgroup), &config.id_map, None))
    {
        Ok(p) => p,
        Err(error) => {
            let _ = spawn.send(&SpawnReport::Failed {
                error,
                exit_code: 125,
            });
            return 1;
        }
    };
    become_container(prepared, spawn, None)
}

/// A container process cloned into fresh namespaces and its cgroup, parked
/// before its rootfs until [`become_container`] says what it is.
struct Prepared {
    pid: Pid,
    chan: Channel<ToChild, FromChild>,
    cgroup: Cgroup,
    listener: UnixListener,
    /// Namespace inodes of the container process.
    ns: std::collections::BTreeMap<String, u64>,
    /// Its namespaces, held open for `exec`.
    ns_fds: Vec<(namespaces::Kind, OwnedFd)>,
    /// The image layers whose rootfs the process has built and entered while
    /// parked (a warm container); `None`: it builds it when told to go.
    rootfs_layers: Option<Vec<PathBuf>>,
}

/// The rootfs of the container in `dir` from the image `layers`.
fn rootfs_spec(dir: &ContainerDir, layers: Vec<PathBuf>) -> RootfsSpec {
    RootfsSpec {
        layers,
        upper: dir.upper(),
        work: dir.work(),
        target: dir.rootfs(),
        mount_cgroup2: matches!(
            crate::cgroups::detect_version(),
            Ok(protocol::CgroupVersion::V2)
        ),
    }
}

impl Prepared {
    fn new(
        dir: &ContainerDir,
        cgroup: Cgroup,
        id_map: &IdRange,
        rootfs: Option<RootfsSpec>,
    ) -> Result<Prepared, String> {
        // The attach socket exists before the claim, so it moves with the directory.
        let socket = dir.socket();
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .map_err(|e| format!("binding {}: {e}", socket.display()))?;
        let layer_store = ranges::owner_of(&dir.dir)
            .map(|(root, _)| crate::image::ImageStore::layers_root(&root))
            .ok_or_else(|| format!("{} is not in a state directory", dir.dir.display()))?;
        // Compiled here, once per supervisor: a warm container pays for it
        // while parked, and the container process and every exec helper
        // inherit the compiled filter.
        crate::security::prepare().map_err(|e| e.to_string())?;
        let early = EarlyContext {
            layer_store: layer_store.clone(),
        };
        let (ours, theirs) = channel::pair::<ToChild, FromChild>().map_err(|e| e.to_string())?;
        let mut theirs = Some(theirs);
        let ours_fd = ours.raw_fd();
        let mut stack = vec![0u8; 256 * 1024];
        let cb = Box::new(move || {
            // The clone copied our end of the channel too. Without closing
            // it, the child waiting for its orders would never see the
            // channel close if we died (killed by a drain before the
            // claim): it would wait for ever, holding both ends.
            // SAFETY: ours_fd is this process's copy of our end, used by
            // nothing here.
            unsafe { libc::close(ours_fd) };
            match theirs.take() {
                Some(chan) => init::container_main(&early, chan),
                None => 125,
            }
        });
        // SAFETY: we are single-threaded; the child runs on its own stack.
        // Our copy of the child's channel end is dropped with the closure.
        let pid = unsafe {
            nix::sched::clone(
                cb,
                &mut stack,
                namespaces::clone_flags(),
                Some(libc::SIGCHLD),
            )
        }
        .map_err(|e| format!("cloning the container: {e}"))?;
        // The container process exists, outside its cgroup as yet: a drain
        // that kills us now cannot reach it through the cgroup.
        crate::failpoint::hit("supervisor.cloned");
        let prepared = Prepared {
            pid,
            chan: ours,
            cgroup,
            listener,
            ns: Default::default(),
            ns_fds: Vec::new(),
            rootfs_layers: rootfs.as_ref().map(|r| r.layers.clone()),
        };
        if let Err(e) = prepared.map_and_place(id_map, &layer_store, rootfs) {
            prepared.kill();
            return Err(e);
        }
        prepared.parked()
    }

    /// What only host root can do for the new container process: map its
    /// user namespace, move it into its cgroup (cgroupfs files belong to host
    /// root, which the container's root is not), and idmap the layer store
    /// for it. Then let it go on.
    fn map_and_place(
        &self,
        id_map: &IdRange,
        layer_store: &Path,
        rootfs: Option<RootfsSpec>,
    ) -> Result<(), String> {
        userns::write_maps(self.pid, id_map).map_err(|e| e.to_string())?;
        let pid = self.pid.as_raw().to_string();
        for procs in self.cgroup.procs_files() {
            std::fs::write(&procs, &pid)
                .map_err(|e| format!("moving the container into {}: {e}", procs.display()))?;
        }
        let ns_path = format!("/proc/{pid}/ns/user");
        let userns =
            std::fs::File::open(&ns_path).map_err(|e| format!("opening {ns_path}: {e}"))?;
        let store =
            idmap::idmapped_clone(layer_store, userns.as_fd()).map_err(|e| e.to_string())?;
        self.chan
            .send_with_fds(&ToChild::Mapped { rootfs }, &[store.as_raw_fd()])
            .map_err(|e| format!("releasing the container process: {e}"))
    }

    /// Wait until the container process is in its cgroup and namespaces, then
    /// read what they are: none of this changes any more, so it is done
    /// before a claim, not during one.
    fn parked(mut self) -> Result<Prepared, String> {
        let failure = match self.chan.recv_within(HANDSHAKE_WAIT) {
            Ok((FromChild::Parked, _)) => None,
            Ok((FromChild::SetupFailed(e), _)) => Some(e),
            Ok((other, _)) => Some(format!("unexpected {other:?} from the container process")),
            Err(e) => Some(format!("the container process died while starting: {e}")),
        };
        if let Some(e) = failure {
            self.kill();
            return Err(e);
        }
        let pid = self.pid.as_raw().to_string();
        self.ns = namespaces::inodes(&pid).unwrap_or_default();
        self.ns_fds = open_ns_fds(&pid);
        Ok(self)
    }

    fn kill(self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }

    /// The server of the container, once its command runs: `output` is the
    /// terminal's master or the output pipe.
    fn into_server(
        self,
        dir: ContainerDir,
        config: ContainerConfig,
        output: Option<OwnedFd>,
        state: RuntimeState,
    ) -> Server {
        redirect_stdio_to_null();
        let main = Session::new(self.pid, output, config.tty);
        Server::new(
            dir,
            config,
            self.cgroup,
            self.listener,
            main,
            self.ns_fds,
            state,
        )
    }
}

/// Receive the claim, send the container process its plan, wait until the
/// command runs, report, then serve until the container exits.
fn become_container(
    mut prepared: Prepared,
    spawn: SpawnChannel,
    parked_refill: Option<ParkedRefill>,
) -> i32 {
    match claim_and_start(&mut prepared, &spawn) {
        Ok((dir, config, output, state, refill)) => {
            let _ = spawn.send(&SpawnReport::Started {
                host_pid: state.host_pid.unwrap_or(0),
                supervisor_pid: std::process::id(),
            });
            // A cold supervisor forks its refill child only now: forking
            // takes a few hundred microseconds that the report need not
            // wait for. Without a refill to do, a parked child goes.
            let refill = refill.and_then(|r| OwedRefill::new(r, parked_refill));
            prepared
                .into_server(dir, config, output, state)
                .with_spawn(spawn)
                .with_refill(refill)
                .run()
        }
        Err((error, exit_code)) => {
            let _ = spawn.send(&SpawnReport::Failed { error, exit_code });
            prepared.kill();
            1
        }
    }
}

type Started = (
    ContainerDir,
    ContainerConfig,
    Option<OwnedFd>,
    RuntimeState,
    Option<super::messages::Refill>,
);

fn claim_and_start(
    prepared: &mut Prepared,
    spawn: &SpawnChannel,
) -> Result<Started, (String, i32)> {
    let setup_err = |e: String| (e, 125);
    let (claim, stdio_fds) = spawn
        .recv_within(HANDSHAKE_WAIT)
        .map_err(|e| setup_err(format!("waiting for the claim: {e}")))?;
    let dir = ContainerDir { dir: claim.dir };
    let config: ContainerConfig = dir.read_config().map_err(|e| setup_err(e.to_string()))?;
    let _ = std::fs::remove_file(dir.dir.join("claim.sock"));
    let layers: Vec<PathBuf> = config.layers.iter().map(|l| l.dir.clone()).collect();
    let rootfs = match &prepared.rootfs_layers {
        None => {
            let _ = std::fs::create_dir(dir.rootfs());
            Some(rootfs_spec(&dir, layers))
        }
        Some(built) if *built == layers => None,
        // A claimer takes only entries built for its image; this one was not.
        Some(_) => {
            return Err(setup_err(
                "the warm container was prepared for another image".into(),
            ))
        }
    };
    let (stdio, fds, output_read): (StdioPlan, Vec<OwnedFd>, Option<OwnedFd>) = if config.tty {
        (StdioPlan::Tty, Vec::new(), None)
    } else if claim.inherit_stdio {
        (StdioPlan::Inherit, stdio_fds, None)
    } else {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| setup_err(format!("pipe: {e}")))?;
        (StdioPlan::Pipe, vec![w], Some(r))
    };
    let plan = init_plan(&config, rootfs, stdio);
    // The veth goes into the container's namespace before the container is
    // told to go, so that eth0 is there when it configures it.
    if let Some(net) = &config.network {
        network::host::attach(net, prepared.pid.as_raw())
            .map_err(|e| setup_err(format!("attaching the network: {e}")))?;
    }
    let master = start_command(prepared, plan, fds)?;
    let state = running_state(prepared);
    dir.write_state(&state)
        .map_err(|e| setup_err(e.to_string()))?;
    Ok((dir, config, master.or(output_read), state, claim.refill))
}

fn init_plan(config: &ContainerConfig, rootfs: Option<RootfsSpec>, stdio: StdioPlan) -> InitPlan {
    InitPlan {
        cmd: config.cmd.clone(),
        env: config.env.clone(),
        hostname: config.hostname.clone(),
        rootfs,
        stdio,
        tty_size: config.tty_size.unwrap_or((80, 24)),
        init: config.init,
        network: config.network.as_ref().map(|n| InsidePlan {
            address: n.address,
            prefix: n.prefix,
            gateway: n.gateway,
        }),
    }
}

/// Tell the parked container process to become the container (`fds` ride
/// along, see [`ToChild::Go`]) and wait until its command runs. Returns the
/// terminal's master with a tty; an error with the exit code to report.
fn start_command(
    prepared: &mut Prepared,
    plan: InitPlan,
    fds: Vec<OwnedFd>,
) -> Result<Option<OwnedFd>, (String, i32)> {
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    prepared
        .chan
        .send_with_fds(&ToChild::Go(plan), &raw)
        .map_err(|e| (format!("starting the container: {e}"), 125))?;
    drop(fds);
    let mut master = None;
    loop {
        match prepared.chan.recv_within(HANDSHAKE_WAIT) {
            Ok((FromChild::PtyMaster, mut fds)) => master = fds.pop(),
            Ok((FromChild::SetupFailed(e), _)) => return Err((e, 125)),
            Ok((FromChild::ExecFailed(e), _)) => {
                let code = exec_code(&e);
                return Err((e, code));
            }
            Ok((FromChild::ExecPid(_), _)) | Ok((FromChild::Parked, _)) => {}
            Err(channel::ChannelError::TimedOut(wait)) => {
                return Err((
                    format!("the container process did not start within {wait:?}"),
                    125,
                ))
            }
            Err(_) => return Ok(master), // closed on exec: the command runs
        }
    }
}

/// The state of a container whose command has just started.
fn running_state(prepared: &Prepared) -> RuntimeState {
    let host_pid = prepared.pid.as_raw();
    RuntimeState {
        supervisor_pid: Some(std::process::id()),
        supervisor_start: process_start_time(std::process::id() as i32),
        host_pid: Some(host_pid as u32),
        host_pid_start: process_start_time(host_pid),
        running: true,
        namespaces: prepared.ns.clone(),
        ..Default::default()
    }
}

fn exec_code(msg: &str) -> i32 {
    if msg.contains("not found") || msg.contains("No such file") {
        127
    } else {
        126
    }
}

/// Open the container's namespaces once, so `exec` can join them later even
/// if PID 1's PID were reused.
fn open_ns_fds(pid: &str) -> Vec<(namespaces::Kind, OwnedFd)> {
    let own = namespaces::inodes("self").unwrap_or_default();
    let theirs = namespaces::inodes(pid).unwrap_or_default();
    namespaces::JOIN_ORDER
        .iter()
        .filter(|k| own.get(k.name) != theirs.get(k.name))
        .filter_map(|k| {
            let f = std::fs::File::open(format!("/proc/{pid}/ns/{}", k.name)).ok()?;
            Some((*k, OwnedFd::from(f)))
        })
        .collect()
}

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot; `None`
/// for a process that is gone or has exited (a zombie).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let after_comm = super::proc_stat_after_name(&pid.to_string())?;
    let mut fields = after_comm.split(' ');
    // A zombie has exited: it only waits for its parent to reap it, which
    // for an orphaned supervisor is the host's init, in its own time (more
    // than a second on some hosts). Whoever asks wants to know whether the
    // process still runs.
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

pub(super) fn redirect_stdio_to_null() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = super::dup_onto(null.as_raw_fd(), fd);
        }
    }
}

/// Clean up what a container leaves on the host: processes, cgroup, RW layer,
/// and (if `forget`) its directory. Idempotent; used by the supervisor for
/// auto-remove and by `rm`.
pub fn cleanup(dir: &ContainerDir, cgroup: &Cgroup, forget: bool) -> Vec<String> {
    let mut errors = free_host(dir, cgroup);
    if forget {
        errors.extend(Forgotten::take(dir).finish());
    }
    errors
}

/// What a container holds on the host beyond files: its network, cgroup
/// (and with it, processes) and RW layer.
pub fn free_host(dir: &ContainerDir, cgroup: &Cgroup) -> Vec<String> {
    let mut errors = Vec::new();
    // Before the directory (and with it the record) can go.
    if let Some(net) = dir.read_config().ok().and_then(|c| c.network) {
        if let Err(e) = network::host::detach(&net) {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = cgroup.remove() {
        errors.push(e.to_string());
    }
    if let Err(e) = crate::rootfs::rw::remove(dir) {
        errors.push(e.to_string());
    }
    errors
}

/// What a [`Forgotten`] directory's name starts with: no id does.
pub const FORGOTTEN_PREFIX: &str = ".gone.";

/// A container's directory, taken out of the listing at once (renamed to
/// a name no id has) and deleted later. Deleting files frees their blocks,
/// which a filesystem mounted with `discard` trims before each call
/// returns (a millisecond or more for a directory): the supervisor of a
/// `--rm` container reports the exit first.
pub struct Forgotten {
    path: std::path::PathBuf,
    owner: Option<(std::path::PathBuf, String)>,
}

impl Forgotten {
    pub fn take(dir: &ContainerDir) -> Forgotten {
        let owner = ranges::owner_of(&dir.dir);
        let gone = dir
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| dir.dir.with_file_name(format!("{FORGOTTEN_PREFIX}{n}")));
        let path = match gone {
            Some(gone) if std::fs::rename(&dir.dir, &gone).is_ok() => gone,
            _ => dir.dir.clone(),
        };
        Forgotten { path, owner }
    }

    pub fn finish(self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!("removing {}: {e}", self.path.display()));
            }
        }
        // Last, once the container's processes went with its cgroup: a range
        // whose directory is gone is free anyway (see userns::ranges).
        if let Some((root, id)) = self.owner {
            ranges::release(&root, &id);
        }
        errors
    }
}

pub fn finished_state(mut state: RuntimeState, code: i32, oom_killed: bool) -> RuntimeState {
    state.running = false;
    state.exit_code = Some(code);
    state.oom_killed = oom_killed;
    state.finished_at_ms = Some(now_ms());
    state
}
