//! The container side of a start: everything the freshly cloned process does
//! before the user's command runs, and the small init that stays PID 1.
//!
//! This code runs in a child cloned from the single-threaded supervisor, so
//! allocating is safe here. It must never exec a host binary: the only
//! `execve` is of the user's command, resolved inside the container's root.

use super::channel::Channel;
use super::messages::{FromChild, InitPlan, RootfsSpec, StdioPlan, ToChild};
use crate::rootfs::mounts::{self, RootfsPlan};
use crate::tty;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, setsid, ForkResult, Pid};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

pub type ChildChannel = Channel<FromChild, ToChild>;

/// What the container process is born knowing. Everything else arrives in
/// [`ToChild::Go`] once the container is claimed, so that the early part can
/// be done ahead of time (warm starts).
pub struct EarlyContext {
    /// The image layer store's directory, over which the idmapped copy the
    /// supervisor sends is mounted.
    pub layer_store: PathBuf,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Entry point of the cloned container process. Returns the exit code only
/// on failure; on success it never returns (exec or init loop).
pub fn container_main(early: &EarlyContext, chan: ChildChannel) -> isize {
    // Until it is claimed, a parked container dies with its supervisor:
    // nobody else could ever claim or remove it.
    set_parent_death_signal(Some(Signal::SIGKILL));
    if let Err(e) = early_setup(early, &chan) {
        let _ = chan.send(&FromChild::SetupFailed(e));
        return 125;
    }
    if chan.send(&FromChild::Parked).is_err() {
        return 125;
    }
    // Wait to be claimed. A supervisor that goes away takes us with it.
    let (plan, fds) = match chan.recv() {
        Ok((ToChild::Go(plan), fds)) => (plan, fds),
        Ok((ToChild::Mapped { .. }, _)) | Err(_) => return 125,
    };
    // Claimed: from here on the container is someone's, and its life is
    // not tied to the supervisor's any more (as it never was to the
    // server's).
    set_parent_death_signal(None);
    let stdio = match setup(&plan, fds, &chan) {
        Ok(stdio) => stdio,
        Err(e) => {
            let _ = chan.send(&FromChild::SetupFailed(e));
            return 125;
        }
    };
    if plan.init {
        run_init(&plan, chan, stdio)
    } else {
        exec_command(&plan.cmd, &plan.env, &stdio, &chan)
    }
}

/// Once the supervisor has mapped our user namespace and moved us into the
/// container's cgroup: become the namespace's root, mount the idmapped layer
/// store, make the cgroup the root of a cgroup namespace of our own, bring
/// up loopback, and for a warm container build and enter the rootfs. This is the slow part (the cgroup move on v1 waits for
/// an RCU grace period), which is why it runs before the container is claimed.
fn early_setup(early: &EarlyContext, chan: &ChildChannel) -> Result<(), String> {
    let (store, rootfs) = match chan.recv() {
        Ok((ToChild::Mapped { rootfs }, mut fds)) if fds.len() == 1 => (fds.remove(0), rootfs),
        Ok((other, fds)) => return Err(format!("unexpected {other:?} with {} fds", fds.len())),
        Err(e) => return Err(format!("waiting for the user namespace map: {e}")),
    };
    crate::userns::become_root().map_err(|e| format!("becoming the container's root: {e}"))?;
    // Our mount namespace is a copy of the host's; nothing mounted in it may
    // propagate back.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("making / a slave mount: {e}"))?;
    crate::userns::idmap::move_mount_to(store.as_fd(), &early.layer_store)
        .map_err(|e| e.to_string())?;
    drop(store);
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| format!("unsharing the cgroup namespace: {e}"))?;
    mounts::loopback_up().map_err(|e| e.to_string())?;
    match crate::security::allow_ping_sockets() {
        // A kernel without IPv4 ping sockets: nothing to allow.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("allowing ping sockets: {e}"));
        }
        _ => {}
    }
    // Written through our own /proc/sys before the rootfs makes it read-only.
    match rootfs {
        Some(spec) => enter_rootfs(&spec),
        None => Ok(()),
    }
}

fn enter_rootfs(spec: &RootfsSpec) -> Result<(), String> {
    mounts::build_and_enter(&RootfsPlan {
        layers: &spec.layers,
        upper: &spec.upper,
        work: &spec.work,
        target: &spec.target,
        mount_cgroup2: spec.mount_cgroup2,
    })
    .map_err(|e| e.to_string())
}

fn set_parent_death_signal(signal: Option<Signal>) {
    let sig = signal.map_or(0, |s| s as libc::c_ulong);
    // SAFETY: PR_SET_PDEATHSIG takes a signal number (0: none).
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) };
}

/// Where the command's stdin, stdout and stderr come from.
pub enum Stdio {
    Tty(OwnedFd),
    /// Already in place as fds 0, 1 and 2.
    Ready,
    /// Write end of the supervisor's output pipe.
    Pipe(OwnedFd),
}

fn setup(plan: &InitPlan, mut fds: Vec<OwnedFd>, chan: &ChildChannel) -> Result<Stdio, String> {
    nix::unistd::sethostname(&plan.hostname).map_err(|e| format!("setting the hostname: {e}"))?;
    if let Some(net) = &plan.network {
        crate::network::inside::configure(net).map_err(|e| format!("configuring eth0: {e}"))?;
    }
    if let Some(spec) = &plan.rootfs {
        enter_rootfs(spec)?;
    }
    // A session of our own; with --no-init this process is the session leader
    // that gets the controlling terminal.
    setsid().map_err(|e| format!("setsid: {e}"))?;
    let stdio = match plan.stdio {
        StdioPlan::Tty => {
            let pty = tty::open_pty().map_err(|e| format!("opening the container's pty: {e}"))?;
            let (cols, rows) = plan.tty_size;
            tty::set_size(std::os::fd::AsFd::as_fd(&pty.slave), cols, rows)
                .map_err(|e| format!("sizing the pty: {e}"))?;
            chan.send_with_fds(&FromChild::PtyMaster, &[pty.master.as_raw_fd()])
                .map_err(|e| format!("handing over the pty: {e}"))?;
            Stdio::Tty(pty.slave)
        }
        StdioPlan::Inherit if fds.len() == 3 => {
            for (target, fd) in fds.iter().enumerate() {
                super::dup_onto(fd.as_raw_fd(), target as RawFd);
            }
            Stdio::Ready
        }
        StdioPlan::Pipe if fds.len() == 1 => Stdio::Pipe(fds.remove(0)),
        other => return Err(format!("stdio {other:?} came with {} fds", fds.len())),
    };
    close_stray_fds();
    Ok(stdio)
}

/// Mark every fd above stdio close-on-exec, so nothing of the host leaks into
/// the user's command (CVE-2024-21626).
pub(crate) fn close_stray_fds() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Become the user's command: wire stdio, then execve. Returns only on failure.
fn exec_command(cmd: &[String], env: &[String], stdio: &Stdio, chan: &ChildChannel) -> isize {
    match stdio {
        Stdio::Tty(slave) => {
            // Under --init this is the forked command, not yet a session leader.
            let _ = setsid();
            if let Err(e) = tty::set_controlling(slave) {
                let _ = chan.send(&FromChild::SetupFailed(format!(
                    "controlling terminal: {e}"
                )));
                return 125;
            }
            for fd in 0..3 {
                super::dup_onto(slave.as_raw_fd(), fd);
            }
        }
        Stdio::Pipe(pipe) => {
            if let Ok(null) = std::fs::File::open("/dev/null") {
                super::dup_onto(null.as_raw_fd(), 0);
            }
            super::dup_onto(pipe.as_raw_fd(), 1);
            super::dup_onto(pipe.as_raw_fd(), 2);
        }
        Stdio::Ready => {}
    }
    match exec_in_root(cmd, env) {
        Ok(never) => match never {},
        Err((code, msg)) => {
            let _ = chan.send(&FromChild::ExecFailed(msg));
            code as isize
        }
    }
}

/// Confine this process ([`crate::security::confine`]), resolve `cmd[0]` on
/// the container's PATH and execve it.
pub fn exec_in_root(
    cmd: &[String],
    env: &[String],
) -> Result<std::convert::Infallible, (i32, String)> {
    let Some(prog) = cmd.first() else {
        return Err((127, "no command given".into()));
    };
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let candidates: Vec<PathBuf> = if prog.contains('/') {
        vec![PathBuf::from(prog)]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join(prog))
            .collect()
    };
    // The one place every command in a container passes before it runs
    // (`gbx run` with or without --init, and every `gbx exec`).
    crate::security::confine().map_err(|e| (125, format!("confining the command: {e}")))?;
    let to_c =
        |s: &str| CString::new(s).map_err(|_| (127, format!("argument {s:?} contains a NUL byte")));
    let argv = cmd.iter().map(|a| to_c(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|e| to_c(e)).collect::<Result<Vec<_>, _>>()?;
    // Restore the default signal state the user's program expects.
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let mut last = nix::Error::ENOENT;
    for cand in &candidates {
        let Ok(path) = CString::new(cand.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        match nix::unistd::execve(&path, &argv, &envp) {
            Ok(never) => match never {},
            // Keep the most telling error: "permission denied" beats "not found".
            Err(e) if e != nix::Error::ENOENT || last == nix::Error::ENOENT => last = e,
            Err(_) => {}
        }
    }
    let code = if last == nix::Error::ENOENT { 127 } else { 126 };
    let what = if last == nix::Error::ENOENT && !prog.contains('/') {
        format!("exec: {prog:?}: executable file not found in $PATH")
    } else {
        format!("exec: {prog:?}: {}", last.desc())
    };
    Err((code, what))
}

/// PID 1 with `--init`: fork the command, then reap every zombie and forward
/// every signal to the command until it exits, and exit with its status.
fn run_init(plan: &InitPlan, chan: ChildChannel, stdio: Stdio) -> isize {
    let all = SigSet::all();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None);
    // SAFETY: this process is single-threaded (a clone of the single-threaded supervisor).
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            std::process::exit(exec_command(&plan.cmd, &plan.env, &stdio, &chan) as i32)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            let _ = chan.send(&FromChild::SetupFailed(format!("forking the command: {e}")));
            return 125;
        }
    };
    // From here on the supervisor learns of success when the command's copy
    // of the channel closes on exec.
    drop(chan);
    drop(stdio);
    // Init needs no stdio of its own; holding the caller's would keep its
    // pipes open.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            super::dup_onto(null.as_raw_fd(), fd);
        }
    }
    name_self_init();
    // Whatever the supervisor had open when it cloned us (its sockets, the
    // claim listener) has no business in PID 1.
    super::close_fds_from(3);
    // PID 1 runs our binary's code among the container's processes: it gets
    // the same confinement, and is made non-dumpable so nobody there can
    // open /proc/1/exe or ptrace it. Init without confinement must not run.
    if crate::security::confine_init().is_err() {
        let _ = kill(child, Signal::SIGKILL);
        return 125;
    }
    reap_and_forward(child)
}

/// Show up in `ps` as `glassbox-init`, not with the supervisor's argv (which
/// names host paths): rename the thread and overwrite the argv area in place,
/// as setproctitle does.
fn name_self_init() {
    const NAME: &[u8] = b"glassbox-init\0";
    // SAFETY: PR_SET_NAME copies a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, NAME.as_ptr() as libc::c_ulong, 0, 0, 0) };
    let Some((start, end)) = argv_area() else {
        return;
    };
    if end <= start || end - start < NAME.len() {
        return;
    }
    // SAFETY: [start, end) is this process's own argv area (from
    // /proc/self/stat); nothing reads it after std captured the arguments.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, end - start);
        std::ptr::copy_nonoverlapping(NAME.as_ptr(), start as *mut u8, NAME.len());
    }
}

/// Fields 48 and 49 of /proc/self/stat: where argv lives.
fn argv_area() -> Option<(usize, usize)> {
    let rest = super::proc_stat_after_name("self")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3.
    Some((fields.get(45)?.parse().ok()?, fields.get(46)?.parse().ok()?))
}

fn reap_and_forward(child: Pid) -> ! {
    let all = SigSet::all();
    loop {
        let sig = match all.wait() {
            Ok(sig) => sig,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                    std::process::exit(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
