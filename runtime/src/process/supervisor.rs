//! The per-container supervisor: a re-exec of our own binary that clones the
//! container, holds its terminal, reaps it, records its exit and cleans up.
//! It detaches from whoever started it, so a container outlives the CLI or
//! the backend that asked for it (like containerd's shim).

use super::channel::{self, Channel};
use super::init::{self, InitContext};
use super::messages::{FromChild, SpawnReport, ToChild};
use super::server::{Server, Session};
use super::spawn::SPAWN_FD;
use crate::cgroups::Cgroup;
use crate::namespaces;
use crate::state::{now_ms, ContainerConfig, ContainerDir, RuntimeState};
use nix::unistd::{fork, ForkResult, Pid};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

pub type SpawnChannel = Channel<SpawnReport, ()>;

/// Run as the supervisor of the container in `dir`. Never returns.
pub fn main(dir: PathBuf) -> ! {
    // SAFETY: fd 3 was set up by the spawner (dup2 in pre_exec) and is ours alone.
    let spawn_fd = unsafe { OwnedFd::from_raw_fd(SPAWN_FD) };
    let _ = nix::fcntl::fcntl(
        &spawn_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let spawn: SpawnChannel = Channel::from_fd(spawn_fd);
    // Detach: the spawner reaps our first process right away; the second one
    // is adopted by init (or the nearest subreaper) and lives on.
    // SAFETY: freshly exec'd, single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(ForkResult::Child) => {}
        Err(e) => {
            let _ = spawn.send(&SpawnReport::Failed {
                error: format!("forking the supervisor: {e}"),
                exit_code: 125,
            });
            std::process::exit(1);
        }
    }
    let dir = ContainerDir { dir };
    match start(&dir, &spawn) {
        Ok(server) => {
            let code = server.with_spawn(spawn).run();
            std::process::exit(code)
        }
        Err((error, exit_code)) => {
            let _ = spawn.send(&SpawnReport::Failed { error, exit_code });
            std::process::exit(1)
        }
    }
}

/// Clone the container and wait until its command runs.
fn start(dir: &ContainerDir, spawn: &SpawnChannel) -> Result<Server, (String, i32)> {
    let setup_err = |e: String| (e, 125);
    let config: ContainerConfig = dir.read_config().map_err(|e| setup_err(e.to_string()))?;
    let cgroup = Cgroup::open(&config.cgroup);
    let socket = dir.socket();
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| setup_err(format!("binding {}: {e}", socket.display())))?;
    let output_pipe = if !config.tty && !is_inherited_stdio(&config) {
        Some(
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| setup_err(format!("pipe: {e}")))?,
        )
    } else {
        None
    };
    let ctx = InitContext {
        cmd: config.cmd.clone(),
        env: config.env.clone(),
        hostname: config.hostname.clone(),
        layers: config.layers.iter().map(|l| l.dir.clone()).collect(),
        upper: dir.upper(),
        work: dir.work(),
        target: dir.rootfs(),
        cgroup_procs: cgroup.procs_files(),
        mount_cgroup2: matches!(
            crate::cgroups::detect_version(),
            Ok(protocol::CgroupVersion::V2)
        ),
        tty: config.tty,
        tty_size: config.tty_size.unwrap_or((80, 24)),
        init: config.init,
        output_pipe: output_pipe.as_ref().map(|(_, w)| w.as_raw_fd()),
    };
    let _ = std::fs::create_dir(dir.rootfs());
    let (ours, theirs) =
        channel::pair::<ToChild, FromChild>().map_err(|e| setup_err(e.to_string()))?;
    let mut theirs = Some(theirs);
    let mut stack = vec![0u8; 256 * 1024];
    let cb = Box::new(move || match theirs.take() {
        Some(chan) => init::container_main(&ctx, chan),
        None => 125,
    });
    // SAFETY: we are single-threaded; the child runs on its own stack.
    let pid = unsafe {
        nix::sched::clone(
            cb,
            &mut stack,
            namespaces::container_flags(),
            Some(libc::SIGCHLD),
        )
    }
    .map_err(|e| setup_err(format!("cloning the container: {e}")))?;
    // Our copy of the child's end closes with the closure's drop in this process.
    let (out_read, out_write) = match output_pipe {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    drop(out_write);

    let mut master = None;
    loop {
        match ours.recv() {
            Ok((FromChild::PtyMaster, mut fds)) => master = fds.pop(),
            Ok((FromChild::SetupFailed(e), _)) => return Err(reap_failed(pid, e, 125)),
            Ok((FromChild::ExecFailed(e), _)) => {
                let code = exec_code(&e);
                return Err(reap_failed(pid, e, code));
            }
            Ok((FromChild::ExecPid(_), _)) => {}
            Err(_) => break, // closed on exec: the command runs
        }
    }

    let host_pid = pid.as_raw();
    let pid_str = host_pid.to_string();
    let ns = namespaces::inodes(&pid_str).unwrap_or_default();
    let ns_fds = open_ns_fds(&pid_str);
    let state = RuntimeState {
        supervisor_pid: Some(std::process::id()),
        host_pid: Some(host_pid as u32),
        host_pid_start: process_start_time(host_pid),
        running: true,
        namespaces: ns,
        ..Default::default()
    };
    dir.write_state(&state)
        .map_err(|e| setup_err(e.to_string()))?;
    let _ = spawn.send(&SpawnReport::Started {
        host_pid: host_pid as u32,
        supervisor_pid: std::process::id(),
    });
    redirect_stdio_to_null();
    let main = Session::new(pid, master.or(out_read), config.tty);
    Ok(Server::new(
        dir.clone(),
        config,
        cgroup,
        listener,
        main,
        ns_fds,
        state,
    ))
}

fn exec_code(msg: &str) -> i32 {
    if msg.contains("not found") || msg.contains("No such file") {
        127
    } else {
        126
    }
}

fn reap_failed(pid: Pid, error: String, code: i32) -> (String, i32) {
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    (error, code)
}

fn is_inherited_stdio(config: &ContainerConfig) -> bool {
    config.foreground
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

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(19)?.parse().ok()
}

fn redirect_stdio_to_null() {
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
    let mut errors = Vec::new();
    if let Err(e) = cgroup.remove() {
        errors.push(e.to_string());
    }
    if let Err(e) = crate::rootfs::rw::remove(dir) {
        errors.push(e.to_string());
    }
    if forget {
        if let Err(e) = std::fs::remove_dir_all(&dir.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!("removing {}: {e}", dir.dir.display()));
            }
        }
    }
    errors
}

pub fn finished_state(mut state: RuntimeState, code: i32, oom_killed: bool) -> RuntimeState {
    state.running = false;
    state.exit_code = Some(code);
    state.oom_killed = oom_killed;
    state.finished_at_ms = Some(now_ms());
    state
}
