//! The supervisor of a warm-pool entry (see [`crate::pool`]): it prepares
//! the container, then waits for a claim on its socket (a parked entry) or
//! starts the shell at once and serves it from the pool (a shell entry).
//! Also the refill a claimed supervisor starts alongside its container.

use super::*;
use crate::state::StateLock;
use std::os::fd::RawFd;

/// A warm container's supervisor. Its entry (directory, cgroup, `pool.json`)
/// was made by whoever spawned it, under the state lock, so that a drain
/// always knows everything an entry holds.
pub(super) fn run_warm(args: WarmArgs) -> i32 {
    let dir = ContainerDir {
        dir: args.entry.clone(),
    };
    let Some(state) = args
        .entry
        .parent()
        .and_then(|p| p.parent())
        .map(|root| StateDir {
            root: root.to_path_buf(),
        })
    else {
        return 1;
    };
    let entry: pool::PoolEntry = match crate::state::read_json(&dir.dir.join("pool.json")) {
        Ok(e) => e,
        Err(_) => return 1,
    };
    let cgroup = Cgroup::open(&entry.cgroup);
    // Whatever fails, the entry stays for take() or drain() to remove; we
    // only undo what they cannot see: our container process.
    // The RW layer is mounted before the clone so that the container's mount
    // namespace has it; the claim only resizes it.
    if crate::rootfs::rw::create(&dir, entry.limits.disk_bytes, &entry.id_map).is_err() {
        return 1;
    }
    // A shell entry's config was written with the entry: it starts now and
    // is claimed by renaming alone, without a claim socket.
    let shell = pool::shell_config(&dir.dir);
    let claims = match shell {
        Some(_) => None,
        None => match channel::listen(&dir.dir.join("claim.sock")) {
            Ok(l) => Some(l),
            Err(_) => return 1,
        },
    };
    // The rootfs of the pool's image is built now, while parked: a claim
    // for that image (the only one it takes) has nothing left to mount.
    if std::fs::create_dir(dir.rootfs()).is_err() {
        return 1;
    }
    let rootfs = rootfs_spec(&dir, entry.layers.clone());
    let Ok(prepared) = Prepared::new(&dir, cgroup, &entry.id_map, Some(rootfs)) else {
        return 1;
    };
    let (Some(claims), None) = (claims, &shell) else {
        return match shell {
            Some(config) => run_shell_entry(prepared, dir, config, state, entry, args.idle),
            None => 1,
        };
    };
    if std::fs::write(dir.dir.join("ready"), b"").is_err() {
        prepared.kill();
        return 1;
    }
    match wait_for_claim(&claims, &state, &entry, args.idle) {
        Some(chan) => become_container(prepared, chan),
        None => {
            prepared.kill();
            1
        }
    }
}

/// A shell entry: start its container now, then serve it as any other
/// while it waits in the pool. The claimer renames the directory and sets
/// the limits; the server notices the rename (see [`Server::pooled`]).
fn run_shell_entry(
    mut prepared: Prepared,
    dir: ContainerDir,
    config: ContainerConfig,
    state: StateDir,
    entry: pool::PoolEntry,
    idle: std::time::Duration,
) -> i32 {
    let plan = init_plan(&config, None, StdioPlan::Tty);
    let master = match start_command(&mut prepared, plan, Vec::new()) {
        Ok(m) => m,
        Err((error, _)) => {
            tracing::warn!(entry = %entry.id, %error, "a shell entry did not start");
            prepared.kill();
            return 1;
        }
    };
    let running = running_state(&prepared);
    if dir.write_state(&running).is_err() || std::fs::write(dir.dir.join("ready"), b"").is_err() {
        prepared.kill();
        return 1;
    }
    prepared
        .into_server(dir, config, master, running)
        .pooled(state, entry, idle)
        .run()
}

/// Wait for a claimer. Every second, and after `idle`, check that we are
/// still wanted: an entry that was drained or whose state dir went away
/// ends here, and an idle one removes itself, unless a claim is already
/// under way (the directory was renamed to `containers/<id>`).
fn wait_for_claim(
    listener: &OwnedFd,
    state: &StateDir,
    entry: &pool::PoolEntry,
    idle: std::time::Duration,
) -> Option<SpawnChannel> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = std::time::Instant::now() + idle;
    let pooled = pool::entry_dir(state, &entry.id);
    let claimed = state.container(&entry.id).dir;
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(1000u16));
        if fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            if let Ok(chan) = channel::accept(listener) {
                return Some(chan);
            }
        }
        if !pooled.exists() {
            // Claimed (a connection is coming) or removed.
            return if claimed.exists() {
                accept_within(listener, std::time::Duration::from_secs(10))
            } else {
                None
            };
        }
        if std::time::Instant::now() >= deadline {
            let _lock = state.lock().ok()?;
            if pooled.exists() {
                pool::discard_self(state, entry);
                return None;
            }
        }
    }
}

fn accept_within(listener: &OwnedFd, wait: std::time::Duration) -> Option<SpawnChannel> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(wait.as_millis() as i32).unwrap_or(PollTimeout::NONE);
    poll(&mut fds, ms).ok().filter(|n| *n > 0)?;
    channel::accept(listener).ok()
}

/// Connect to a warm container's claim socket.
pub fn connect_claim(path: &std::path::Path) -> Result<Channel<Claim, SpawnReport>, nix::Error> {
    channel::connect(path)
}

/// Refill the pool from a child process, alongside the container: making
/// an entry (cgroups, records, a new supervisor) takes a few milliseconds,
/// and a command as short as `true` has exited by then, so doing it first
/// would delay the container by that much. The supervisors it starts
/// outlive it and are adopted by init.
///
/// The child is handed the state lock, taken here before the fork (see
/// [`StateLock::hand_over`]) and held until the pool is full again. So the
/// exit need not wait for the refill: whoever learns of it and then drains
/// the pool (`gbx run --rm` returning and a test tearing its state dir
/// down) queues on that lock and finds the pool complete, not an entry
/// still being made. Returns the child to wait for before reporting the
/// exit: only one that has to take the lock itself, because somebody else
/// held it at the claim.
pub(super) fn start_refill(r: &Refill) -> Option<Pid> {
    let state = StateDir {
        root: r.state_root.clone(),
    };
    let lock = state.try_lock().ok().flatten();
    // SAFETY: the supervisor is single-threaded, so the child may allocate
    // and run ordinary code; it leaves with _exit, running no destructor of
    // the state it shares with us.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // None of our fds (the terminal, the caller's channel, the
            // sockets) is the refill's business: hold no copy of them, but
            // for the lock, which moves to fd 3 (still close-on-exec: the
            // supervisors we start must not hold it).
            let lock = lock.and_then(|l| keep_as_fd3(l.into_raw_fd()));
            crate::process::close_fds_from(if lock.is_some() { 4 } else { 3 });
            let lock = lock.and_then(StateLock::inherited);
            refill_pool(r, &state, lock.as_ref());
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => match lock {
            Some(lock) => {
                lock.hand_over();
                None
            }
            None => Some(child),
        },
        // No child: refill here rather than not at all.
        Err(_) => {
            refill_pool(r, &state, lock.as_ref());
            None
        }
    }
}

/// Put the open file of `fd` on fd 3, close-on-exec.
fn keep_as_fd3(fd: RawFd) -> Option<OwnedFd> {
    const LOCK_FD: RawFd = 3;
    if fd != LOCK_FD {
        // SAFETY: dup3 on integers; fd 3 is ours to replace (everything
        // from it up is closed next).
        if unsafe { libc::dup3(fd, LOCK_FD, libc::O_CLOEXEC) } < 0 {
            return None;
        }
    }
    // SAFETY: fd 3 is now this open file, owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(LOCK_FD) })
}

/// Start warm containers up to the pool's target.
fn refill_pool(r: &Refill, state: &StateDir, lock: Option<&StateLock>) {
    let refill = pool::Refill {
        cgroup_parent: r.cgroup_parent.as_deref(),
        idle: std::time::Duration::from_secs(r.idle_secs),
        layers: &r.layers,
        target: r.target,
        at_most: r.target,
        shell: None,
        limits: protocol::Limits::default(),
        keep_going: &|| true,
    };
    // Dropping a Child neither kills nor waits for it.
    drop(match lock {
        Some(lock) => pool::spawn_holding(state, &refill, lock),
        None => pool::spawn(state, &refill),
    });
}
