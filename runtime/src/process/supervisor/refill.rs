//! The pool refill a claimed supervisor owes: a warm container was taken,
//! so another is made in its place.
//!
//! Making an entry (cgroups, records, a new supervisor that mounts and
//! clones) takes a few milliseconds of CPU and the kernel's mount and cgroup
//! locks. Done during the claimed container's start-up, it competes with it
//! on a small host: a `gbx run --rm busybox true` took 1.0–1.4 ms longer.
//! So the refill child is forked ahead and parked: by a warm supervisor
//! while it waits in the pool, by a cold one once its container runs. It is
//! told what to refill when the container's command exits or
//! [`REFILL_AFTER`] after the claim, whichever comes first.

use crate::pool;
use crate::process::messages::Refill;
use crate::state::{StateDir, StateLock, StateLockFile};
use nix::unistd::{fork, ForkResult, Pid};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a refill waits for the claimed container's start-up: its
/// command has run and a shell has printed its prompt by then.
pub const REFILL_AFTER: Duration = Duration::from_millis(20);

/// In the parked child: the state lock's open file and the release pipe.
const LOCK_FD: RawFd = 3;
const GO_FD: RawFd = 4;

/// A refill child, forked and waiting to be released.
pub struct ParkedRefill {
    child: Pid,
    state_root: PathBuf,
    /// The refill goes down it; closing it unused lets the child go.
    go: File,
    /// The state lock's open file, shared with the child.
    lock: Option<StateLockFile>,
}

impl ParkedRefill {
    /// Fork a refill child for the state dir at `state_root` and park it.
    /// `None` if it could not be forked.
    pub fn fork(state_root: &Path) -> Option<ParkedRefill> {
        let state = StateDir {
            root: state_root.to_path_buf(),
        };
        let lock = state.lock_file().ok();
        let (wait, go) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        // SAFETY: the supervisor is single-threaded, so the child may allocate
        // and run ordinary code; it leaves with _exit, running no destructor of
        // the state it shares with us.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(go);
                let lock = lock.map(OwnedFd::from);
                let kept = keep_only(lock.as_ref().map(AsRawFd::as_raw_fd), wait.as_raw_fd());
                std::mem::forget((lock, wait));
                if kept {
                    park_then_refill(&state);
                }
                unsafe { libc::_exit(0) }
            }
            Ok(ForkResult::Parent { child }) => Some(ParkedRefill {
                child,
                state_root: state.root,
                go: File::from(go),
                lock,
            }),
            Err(_) => None,
        }
    }

    /// Let the child refill the pool as `refill` says. Before an exit is
    /// reported, the state lock must be held for the refill, so that whoever
    /// learns of the exit and then drains the pool (`gbx run --rm`
    /// returning, then a test tearing its state dir down) queues on the lock
    /// and finds the pool complete, not an entry still being made. The lock
    /// is taken here, on the open file the child shares, and stays the
    /// child's once ours is closed. Returns the child to wait for before
    /// reporting an exit: one that has to take the lock itself, because
    /// somebody else held it.
    pub fn release(mut self, refill: &Refill) -> Option<Pid> {
        let held = (refill.state_root == self.state_root)
            .then(|| self.lock.as_ref().and_then(StateLockFile::try_lock))
            .flatten();
        let sent = serde_json::to_vec(refill)
            .ok()
            .is_some_and(|msg| self.go.write_all(&msg).is_ok());
        match held {
            Some(lock) => {
                lock.hand_over();
                None
            }
            None => sent.then_some(self.child),
        }
    }
}

/// The refill a claim owes, with its parked child: released when it is
/// [`OwedRefill::due`] or when the container exits, whichever comes first.
pub struct OwedRefill {
    parked: ParkedRefill,
    refill: Refill,
    pub due: Instant,
}

impl OwedRefill {
    /// What `refill` asks, done by `parked`, or by a child forked now if
    /// there is none (a cold supervisor's case). `None` if no child could
    /// be forked: the pool is refilled here, at once, then.
    pub fn new(refill: Refill, parked: Option<ParkedRefill>) -> Option<OwedRefill> {
        let Some(parked) = parked.or_else(|| ParkedRefill::fork(&refill.state_root)) else {
            let state = StateDir {
                root: refill.state_root.clone(),
            };
            refill_pool(&refill, &state, None);
            return None;
        };
        Some(OwedRefill {
            parked,
            refill,
            due: Instant::now() + REFILL_AFTER,
        })
    }

    /// See [`ParkedRefill::release`].
    pub fn release(self) -> Option<Pid> {
        self.parked.release(&self.refill)
    }
}

/// In the child: put the lock's file on [`LOCK_FD`] and the release pipe on
/// [`GO_FD`], close every other fd and point stdio at /dev/null. The
/// terminal, the caller's channel and stdio, and the sockets are none of the
/// refill's business, and the release pipe must see its end of file when
/// the supervisor dies.
fn keep_only(lock: Option<RawFd>, wait: RawFd) -> bool {
    // Out of the way first: either may sit on the other's target.
    // SAFETY: fcntl on integers; a bad fd is an error, not UB.
    let high = |fd: RawFd| unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64) };
    let wait = high(wait);
    let lock = lock.map(high);
    super::redirect_stdio_to_null();
    // SAFETY: dup3 onto fds that are ours to replace (everything else is
    // closed next); both stay close-on-exec, as the supervisors we start
    // must not hold them.
    let placed = wait >= 0
        && unsafe { libc::dup3(wait, GO_FD, libc::O_CLOEXEC) } >= 0
        && match lock {
            Some(fd) => fd >= 0 && unsafe { libc::dup3(fd, LOCK_FD, libc::O_CLOEXEC) } >= 0,
            None => true,
        };
    if lock.is_none() {
        // SAFETY: closing an fd number nothing of ours uses.
        unsafe { libc::close(LOCK_FD) };
    }
    crate::process::close_fds_from(GO_FD + 1);
    placed
}

/// The most a refill message may be: a few paths.
const REFILL_MSG_MAX: u64 = 1 << 20;

/// In the child: wait to be told what to refill (the supervisor's end
/// closing without a word means nothing), then take the lock and refill.
fn park_then_refill(state: &StateDir) {
    // SAFETY: GO_FD is ours (see keep_only).
    let go = File::from(unsafe { OwnedFd::from_raw_fd(GO_FD) });
    let mut msg = Vec::new();
    let _ = go.take(REFILL_MSG_MAX).read_to_end(&mut msg);
    let Ok(refill) = serde_json::from_slice::<Refill>(&msg) else {
        return;
    };
    let ours = refill.state_root == state.root;
    // SAFETY: LOCK_FD, if open, is the lock's file, owned by nothing else.
    let lock = (unsafe { libc::fcntl(LOCK_FD, libc::F_GETFD) } >= 0)
        .then(|| unsafe { OwnedFd::from_raw_fd(LOCK_FD) })
        .filter(|_| ours)
        .and_then(StateLock::wait_inherited);
    let state = StateDir {
        root: refill.state_root.clone(),
    };
    refill_pool(&refill, &state, lock.as_ref());
}

/// Start warm containers up to the pool's target.
fn refill_pool(r: &Refill, state: &StateDir, lock: Option<&StateLock>) {
    let refill = pool::Refill {
        cgroup_parent: r.cgroup_parent.as_deref(),
        idle: Duration::from_secs(r.idle_secs),
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
