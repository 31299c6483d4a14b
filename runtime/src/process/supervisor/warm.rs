//! The supervisor of a warm-pool entry (see [`crate::pool`]): it prepares
//! the container, then waits for a claim on its socket (a parked entry) or
//! starts the shell at once and serves it from the pool (a shell entry).

use super::*;

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
    // The refill a claim will ask for is forked now, while we wait, rather
    // than beside the claimed container's start-up (see `refill`).
    let parked_refill = ParkedRefill::fork(&state.root);
    if std::fs::write(dir.dir.join("ready"), b"").is_err() {
        prepared.kill();
        return 1;
    }
    match wait_for_claim(&claims, &state, &entry, args.idle) {
        Some(chan) => become_container(prepared, chan, parked_refill),
        None => {
            prepared.kill();
            // A drain removed the cgroup already; an entry whose state dir
            // was deleted under it leaves it to us.
            let _ = Cgroup::open(&entry.cgroup).remove();
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
