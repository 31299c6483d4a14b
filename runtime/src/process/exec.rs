//! `exec`: a new process inside a running container, with a terminal of its
//! own. The supervisor forks a helper that joins the container's cgroup and
//! namespaces (in [`crate::namespaces::JOIN_ORDER`]); since joining a PID
//! namespace only applies to children, the helper then clones the real
//! process with `CLONE_PARENT`, so that the supervisor is its parent and
//! learns its exit status.

use super::channel::{self, Channel};
use super::init::exec_in_root;
use super::messages::{FromChild, ToChild};
use crate::namespaces::Kind;
use crate::tty;
use nix::sched::CloneFlags;
use nix::unistd::{fork, setsid, ForkResult, Pid};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub tty: bool,
    pub cols: u16,
    pub rows: u16,
}

/// Start the process; returns its host PID and its terminal master (or output pipe).
pub fn spawn(
    req: &ExecRequest,
    container_env: &[String],
    ns_fds: &[(Kind, OwnedFd)],
    cgroup_procs: &[PathBuf],
) -> Result<(Pid, Option<OwnedFd>), String> {
    if req.cmd.is_empty() {
        return Err("exec needs a command".into());
    }
    let mut env: Vec<String> = container_env.to_vec();
    for e in &req.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    let (ours, theirs) = channel::pair::<ToChild, FromChild>().map_err(|e| e.to_string())?;
    let pipe = if req.tty {
        None
    } else {
        Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?)
    };
    // SAFETY: the supervisor is single-threaded.
    let helper = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(ours);
            let code = helper_main(
                req,
                &env,
                ns_fds,
                cgroup_procs,
                pipe.as_ref().map(|(_, w)| w.as_raw_fd()),
                theirs,
            );
            // SAFETY: leave without running the supervisor's exit handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Err(format!("forking the exec helper: {e}")),
    };
    drop(theirs);
    let output_read = pipe.map(|(r, w)| {
        drop(w);
        r
    });
    let mut master = None;
    let mut pid = None;
    let mut failure = None;
    loop {
        match ours.recv() {
            Ok((FromChild::PtyMaster, mut fds)) => master = fds.pop(),
            Ok((FromChild::ExecPid(p), _)) => pid = Some(Pid::from_raw(p)),
            Ok((FromChild::Parked, _)) => {}
            Ok((FromChild::SetupFailed(e), _)) | Ok((FromChild::ExecFailed(e), _)) => {
                failure = Some(e)
            }
            Err(_) => break,
        }
    }
    let _ = nix::sys::wait::waitpid(helper, None);
    if let Some(e) = failure {
        if let Some(p) = pid {
            let _ = nix::sys::wait::waitpid(p, None);
        }
        return Err(e);
    }
    let pid = pid.ok_or("the exec helper died before starting the process")?;
    Ok((pid, if req.tty { master } else { output_read }))
}

fn helper_main(
    req: &ExecRequest,
    env: &[String],
    ns_fds: &[(Kind, OwnedFd)],
    cgroup_procs: &[PathBuf],
    pipe_write: Option<i32>,
    chan: Channel<FromChild, ToChild>,
) -> i32 {
    let fail = |chan: &Channel<FromChild, ToChild>, msg: String| {
        let _ = chan.send(&FromChild::SetupFailed(msg));
        125
    };
    for procs in cgroup_procs {
        if let Err(e) = std::fs::write(procs, b"0") {
            return fail(&chan, format!("joining cgroup {}: {e}", procs.display()));
        }
    }
    for (kind, fd) in ns_fds {
        if let Err(e) = nix::sched::setns(fd, kind.flag) {
            return fail(&chan, format!("joining the {} namespace: {e}", kind.name));
        }
    }
    // Joining the user namespace left us with host root's ids, which it does
    // not map; take its root's, so that what we create belongs to the container.
    if let Err(e) = crate::userns::become_root() {
        return fail(&chan, format!("becoming the container's root: {e}"));
    }
    // Joining the mount namespace moved our root into the container; the
    // cwd must follow, and be checked to have (CVE-2024-21626).
    if let Err(e) = crate::rootfs::mounts::enter_root_dir() {
        return fail(&chan, e.to_string());
    }
    // Nothing in the container may inspect us through /proc before we exec.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let slave = if req.tty {
        let pty = match tty::open_pty() {
            Ok(p) => p,
            Err(e) => return fail(&chan, format!("opening a pty in the container: {e}")),
        };
        let (cols, rows) = protocol::tty::clamp_size(req.cols.into(), req.rows.into());
        let _ = tty::set_size(std::os::fd::AsFd::as_fd(&pty.slave), cols, rows);
        if let Err(e) = chan.send_with_fds(&FromChild::PtyMaster, &[pty.master.as_raw_fd()]) {
            return fail(&chan, e.to_string());
        }
        Some(pty.slave)
    } else {
        None
    };
    let mut stack = vec![0u8; 128 * 1024];
    let cb = Box::new(|| -> isize {
        let _ = setsid();
        if let Some(slave) = &slave {
            if tty::set_controlling(slave).is_err() {
                return 125;
            }
            for fd in 0..3 {
                let _ = super::dup_onto(slave.as_raw_fd(), fd);
            }
        } else if let Some(w) = pipe_write {
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = super::dup_onto(null.as_raw_fd(), 0);
            }
            let _ = super::dup_onto(w, 1);
            let _ = super::dup_onto(w, 2);
        }
        super::init::close_stray_fds();
        match exec_in_root(&req.cmd, env) {
            Ok(never) => match never {},
            Err((code, msg)) => {
                let _ = chan.send(&FromChild::ExecFailed(msg));
                code as isize
            }
        }
    });
    // SAFETY: single-threaded; the child runs on its own stack. CLONE_PARENT
    // makes the supervisor its parent.
    match unsafe {
        nix::sched::clone(
            cb,
            &mut stack,
            CloneFlags::CLONE_PARENT,
            Some(libc::SIGCHLD),
        )
    } {
        Ok(pid) => {
            // This helper is outside the PID namespace, so it sees the host PID.
            let _ = chan.send(&FromChild::ExecPid(pid.as_raw()));
            0
        }
        Err(e) => fail(&chan, format!("cloning the exec'd process: {e}")),
    }
}
