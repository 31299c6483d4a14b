//! The supervisor's event loop: one `poll(2)` over the container's terminal,
//! the client socket, SIGCHLD and the clients. Single-threaded on purpose:
//! the supervisor forks for `exec`, which is only safe without threads.

use super::exec::{self, ExecRequest};
use super::messages::SpawnReport;
use super::pooled::{self, Pooled, Standing};
use super::ring::Ring;
use super::supervisor::{finished_state, free_host, Forgotten, OwedRefill, SpawnChannel};
use super::wire::{self, Frame, Reply, Request, Target};
use crate::cgroups::Cgroup;
use crate::namespaces::Kind;
use crate::state::{ContainerConfig, ContainerDir, RuntimeState};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Replay buffer per terminal.
const RING_BYTES: usize = 256 * 1024;
/// A client with this much unsent output pauses the terminal it watches:
/// the container's writes then block instead of our memory growing.
const CLIENT_HIGH_WATER: usize = 256 * 1024;
/// The longest an idle supervisor sleeps in `poll` (a safety net: every
/// wake-up it needs comes from an fd, a signal or a batch that is due).
const IDLE_WAIT: Duration = Duration::from_secs(30);
/// Once the main process is done: how often to look again whether the
/// caller has attached to collect it.
const DONE_WAIT: Duration = Duration::from_millis(250);

/// Input waiting for the terminal, per session; beyond it we stop reading clients.
const INPUT_LIMIT: usize = 64 * 1024;
const MAX_CLIENTS: usize = 64;
/// Output sent to clients as one frame at most. A PTY hands out at most
/// 4 KiB per read; streaming output is gathered into batches of up to this
/// size, so clients (the backend) get fewer, larger frames and wake up less.
const BATCH: usize = 64 * 1024;
/// What one read of a PTY master returns at most (the line discipline's buffer).
const PTY_READ: usize = 4096;
/// How long streaming output may wait to fill a batch. Small bursts (what a
/// person types and most replies to it) are sent at once.
const BATCH_DELAY: Duration = Duration::from_millis(3);

/// One process with a terminal (or output pipe): the main one or an exec.
pub struct Session {
    pid: Pid,
    /// PTY master or output pipe; None once it reached EOF.
    output: Option<OwnedFd>,
    tty: bool,
    ring: Ring,
    exit_code: Option<i32>,
    pending_input: Vec<u8>,
    /// Output read but not yet sent (nor in the ring): `batch[..batch_len]`.
    batch: Vec<u8>,
    batch_len: usize,
    /// When the pending batch must go out.
    batch_due: Option<Instant>,
}

impl Session {
    pub fn new(pid: Pid, output: Option<OwnedFd>, tty: bool) -> Session {
        if let Some(fd) = &output {
            set_nonblocking(fd.as_fd());
        }
        Session {
            pid,
            output,
            tty,
            ring: Ring::new(RING_BYTES),
            exit_code: None,
            pending_input: Vec::new(),
            batch: Vec::new(),
            batch_len: 0,
            batch_due: None,
        }
    }

    fn done(&self) -> bool {
        self.exit_code.is_some() && self.output.is_none()
    }
}

/// Bytes waiting for a client's socket. Written from `pos` on; the sent
/// prefix is dropped only when it is at least half the buffer, so partial
/// writes do not move the rest every time.
#[derive(Default)]
struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The buffer to append encoded frames to.
    fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

struct Client {
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: OutBuf,
    target: Option<Target>,
    watch: bool,
    /// Drop after flushing.
    closing: bool,
}

pub struct Server {
    dir: ContainerDir,
    config: ContainerConfig,
    cgroup: Cgroup,
    listener: UnixListener,
    sessions: BTreeMap<u32, Session>,
    next_exec: u32,
    clients: Vec<Client>,
    ns_fds: Vec<(Kind, OwnedFd)>,
    state: RuntimeState,
    spawn: Option<SpawnChannel>,
    main_attached: bool,
    /// The pool refill this claim owes, until it is due.
    owed_refill: Option<OwedRefill>,
    /// The released refill child, if the exit report has to wait for it,
    /// until it is reaped.
    refill: Option<Pid>,
    /// A shell entry's container, until it is claimed.
    pooled: Option<Pooled>,
}

fn key(t: &Target) -> u32 {
    match t {
        Target::Main => 0,
        Target::Exec(id) => *id,
    }
}

/// Write what a client is owed, as far as its socket takes it without
/// blocking. False if the client is gone.
fn write_pending(c: &mut Client) -> bool {
    while !c.wbuf.is_empty() {
        match c.stream.write(c.wbuf.pending()) {
            Ok(0) => return false,
            Ok(n) => c.wbuf.consume(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(bits) = fcntl(fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(bits) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

/// How long an exit report waits for the pool refill (see [`Server::with_refill`]).
const REFILL_WAIT: Duration = Duration::from_secs(5);

impl Server {
    pub fn new(
        dir: ContainerDir,
        config: ContainerConfig,
        cgroup: Cgroup,
        listener: UnixListener,
        main: Session,
        ns_fds: Vec<(Kind, OwnedFd)>,
        state: RuntimeState,
    ) -> Server {
        let _ = listener.set_nonblocking(true);
        let mut sessions = BTreeMap::new();
        sessions.insert(0, main);
        Server {
            dir,
            config,
            cgroup,
            listener,
            sessions,
            next_exec: 1,
            clients: Vec::new(),
            ns_fds,
            state,
            spawn: None,
            main_attached: false,
            owed_refill: None,
            refill: None,
            pooled: None,
        }
    }

    /// Serve a shell entry's container, which waits in the warm pool to be
    /// claimed (see [`pooled`]).
    pub fn pooled(
        mut self,
        state: crate::state::StateDir,
        entry: crate::pool::PoolEntry,
        idle: Duration,
    ) -> Server {
        self.pooled = Some(Pooled::new(state, entry, idle));
        self
    }

    /// Follow a pooled container to its claim. False once it is gone from
    /// the pool unclaimed: there is nothing left to serve.
    fn follow_claim(&mut self) -> bool {
        let Some(p) = &self.pooled else {
            return true;
        };
        match p.standing() {
            Standing::Waiting => true,
            Standing::Claimed(dir) => {
                tracing::debug!(container = %p.id(), "claimed from the warm pool");
                self.dir = dir;
                self.pooled = None;
                true
            }
            Standing::Gone => false,
        }
    }

    /// The pool refill this claim owes: released when it is due or when
    /// the container exits, whichever comes first.
    pub fn with_refill(mut self, refill: Option<OwedRefill>) -> Server {
        self.owed_refill = refill;
        self
    }

    /// Release the owed refill (see [`super::supervisor::ParkedRefill::release`]).
    fn release_refill(&mut self) {
        if let Some(owed) = self.owed_refill.take() {
            self.refill = owed.release();
        }
    }

    /// Keep the spawner's channel, to send it the exit code.
    pub fn with_spawn(mut self, spawn: SpawnChannel) -> Server {
        self.spawn = Some(spawn);
        self
    }

    /// Serve until the container's main process has exited and its output is drained.
    pub fn run(mut self) -> i32 {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        let _ = mask.thread_block();
        // SAFETY: ignoring SIGPIPE only changes how writes to closed sockets fail.
        unsafe {
            let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
        }
        let Ok(sigfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        else {
            return 1;
        };
        // A child may have exited before the signalfd existed.
        self.reap();
        let mut main_done_at: Option<Instant> = None;
        loop {
            // Idle, the loop sleeps until something happens: a thousand idle
            // containers must not cost a thousand wake-ups four times a
            // second. The long cap is only a safety net.
            let mut max_wait = IDLE_WAIT;
            if let Some(due) = self.owed_refill.as_ref().map(|r| r.due) {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.release_refill();
                } else {
                    max_wait = max_wait.min(left);
                }
            }
            if self.pooled.is_some() {
                if !self.follow_claim() {
                    return 1;
                }
                max_wait = max_wait.min(pooled::CLAIM_CHECK);
            }
            if self.sessions.get(&0).is_some_and(Session::done) {
                // Exited in the pool: nobody has it, nobody needs its exit.
                if self.pooled.as_ref().is_some_and(Pooled::remove_unclaimed) {
                    return 1;
                }
                if !self.follow_claim() {
                    return 1;
                }
                max_wait = DONE_WAIT;
                let since = *main_done_at.get_or_insert_with(Instant::now);
                // A foreground caller that has not attached yet gets a moment to do so.
                let waiting_for_caller = self.config.tty
                    && !self.main_attached
                    && self.caller_listening()
                    && since.elapsed() < Duration::from_secs(5);
                if !waiting_for_caller {
                    return self.finish();
                }
            }
            self.poll_once(&sigfd, max_wait);
        }
    }

    /// Whether whoever started the container still holds its end of the
    /// spawn channel (a foreground `gbx run -t` about to attach does; a
    /// server that dropped its handle does not).
    fn caller_listening(&self) -> bool {
        let Some(spawn) = &self.spawn else {
            return false;
        };
        // SAFETY: the channel's fd lives as long as self.spawn.
        let fd = unsafe { BorrowedFd::borrow_raw(spawn.raw_fd()) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => !fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
            Err(_) => false,
        }
    }

    fn poll_once(&mut self, sigfd: &SignalFd, max_wait: Duration) {
        let paused: Vec<u32> = self
            .clients
            .iter()
            .filter(|c| c.wbuf.len() > CLIENT_HIGH_WATER)
            .filter_map(|c| c.target.as_ref().map(key))
            .collect();
        let mut fds: Vec<PollFd> = Vec::new();
        fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        let mut session_slots = Vec::new();
        for (id, s) in &self.sessions {
            if let Some(fd) = &s.output {
                let mut ev = PollFlags::empty();
                if !paused.contains(id) {
                    ev |= PollFlags::POLLIN;
                }
                if s.tty && !s.pending_input.is_empty() {
                    ev |= PollFlags::POLLOUT;
                }
                session_slots.push(*id);
                fds.push(PollFd::new(fd.as_fd(), ev));
            }
        }
        let first_client = fds.len();
        for c in &self.clients {
            let target_full = c
                .target
                .as_ref()
                .and_then(|t| self.sessions.get(&key(t)))
                .is_some_and(|s| s.pending_input.len() >= INPUT_LIMIT);
            let mut ev = PollFlags::empty();
            if !target_full && !c.closing {
                ev |= PollFlags::POLLIN;
            }
            if !c.wbuf.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.stream.as_fd(), ev));
        }
        // Wake up in time to send a batch that is due.
        let now = Instant::now();
        let wait = self
            .sessions
            .values()
            .filter_map(|s| s.batch_due)
            .map(|due| due.saturating_duration_since(now))
            .fold(max_wait, Duration::min);
        let timeout = PollTimeout::try_from(wait.as_millis().max(1) as i32)
            .unwrap_or(PollTimeout::from(250u16));
        if poll(&mut fds, timeout).is_err() {
            return;
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if revents[0].contains(PollFlags::POLLIN) {
            while sigfd.read_signal().ok().flatten().is_some() {}
            self.reap();
        }
        if revents[1].contains(PollFlags::POLLIN) {
            self.accept();
        }
        for (i, id) in session_slots.iter().enumerate() {
            let ev = revents[2 + i];
            if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                self.read_output(*id);
            }
            if ev.contains(PollFlags::POLLOUT) {
                self.flush_input(*id);
            }
        }
        self.flush_due_batches();
        let n = self
            .clients
            .len()
            .min(revents.len().saturating_sub(first_client));
        for i in (0..n).rev() {
            let ev = revents[first_client + i];
            let mut keep = true;
            if ev.contains(PollFlags::POLLOUT) {
                keep &= self.write_client(i);
            }
            if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) && keep {
                keep &= self.read_client(i);
            }
            if !keep || (self.clients[i].closing && self.clients[i].wbuf.is_empty()) {
                self.clients.swap_remove(i);
            }
        }
    }

    /// Wait (a few seconds at most) for the refill child to finish.
    fn wait_for_refill(&mut self) {
        let Some(pid) = self.refill.take() else {
            return;
        };
        let deadline = Instant::now() + REFILL_WAIT;
        while Instant::now() < deadline {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(1)),
                // Exited, or already reaped by the loop.
                _ => return,
            }
        }
        tracing::warn!(container = %self.config.id, %pid, "the pool refill is still running");
    }

    fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if self.refill == Some(pid) {
                self.refill = None;
                continue;
            }
            let Some((id, session)) = self.sessions.iter_mut().find(|(_, s)| s.pid == pid) else {
                continue;
            };
            session.exit_code = Some(code);
            let id = *id;
            if id != 0 {
                // Drain what the exec'd process left, then tell its clients.
                self.read_output(id);
                self.flush_batch(id);
                self.broadcast_exit(id, code);
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.clients.len() >= MAX_CLIENTS {
                continue;
            }
            let _ = stream.set_nonblocking(true);
            self.clients.push(Client {
                stream,
                rbuf: Vec::new(),
                wbuf: OutBuf::default(),
                target: None,
                watch: false,
                closing: false,
            });
        }
    }

    /// Read what a session's terminal has (several PTY reads, up to a batch,
    /// and no more than the fullest attached client can take before its
    /// high-water mark). A small burst is sent at once; streaming output
    /// waits until the batch is full or [`BATCH_DELAY`] has passed.
    fn read_output(&mut self, id: u32) {
        let fullest = self
            .clients
            .iter()
            .filter(|c| c.target.as_ref().map(key) == Some(id))
            .map(|c| c.wbuf.len())
            .max()
            .unwrap_or(0);
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.batch.is_empty() {
            session.batch = vec![0u8; BATCH];
        }
        let was_pending = session.batch_len > 0;
        // At least one PTY read's worth, so that EOF and errors are still
        // noticed while a client is paused.
        let room = CLIENT_HIGH_WATER
            .saturating_sub(fullest)
            .max(PTY_READ)
            .min(BATCH - session.batch_len);
        let limit = session.batch_len + room;
        let mut read = 0;
        while session.batch_len < limit {
            let Some(fd) = &session.output else { break };
            match nix::unistd::read(fd.as_fd(), &mut session.batch[session.batch_len..limit]) {
                Ok(0) | Err(nix::Error::EIO) => session.output = None,
                Ok(n) => {
                    session.batch_len += n;
                    read += n;
                    continue;
                }
                Err(nix::Error::EAGAIN) => {}
                Err(nix::Error::EINTR) => continue,
                Err(_) => session.output = None,
            }
            break;
        }
        if session.batch_len == 0 {
            return;
        }
        let now = Instant::now();
        let send_now = session.output.is_none()
            || session.batch_len + PTY_READ > BATCH
            || (!was_pending && read < PTY_READ)
            || session.batch_due.is_some_and(|due| due <= now);
        if send_now {
            self.flush_batch(id);
        } else if session.batch_due.is_none() {
            session.batch_due = Some(now + BATCH_DELAY);
        }
    }

    /// Send a session's pending output to its clients as one frame (writing
    /// to their sockets at once rather than a poll round later), and keep it
    /// in the replay ring.
    fn flush_batch(&mut self, id: u32) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        session.batch_due = None;
        if session.batch_len == 0 {
            return;
        }
        let data = &session.batch[..session.batch_len];
        let seq = session.ring.next_seq();
        session.ring.push(data);
        for c in self.clients.iter_mut() {
            if c.target.as_ref().map(key) == Some(id) {
                wire::encode_output(seq, data, c.wbuf.tail());
                // Errors surface in the next poll round (POLLERR/POLLHUP).
                let _ = write_pending(c);
            }
        }
        session.batch_len = 0;
    }

    fn flush_due_batches(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.batch_due.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.flush_batch(id);
        }
    }

    fn flush_input(&mut self, id: u32) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(fd) = &session.output else {
            session.pending_input.clear();
            return;
        };
        match nix::unistd::write(fd, &session.pending_input) {
            Ok(n) => {
                session.pending_input.drain(..n);
            }
            Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
            Err(_) => session.pending_input.clear(),
        }
    }

    fn write_client(&mut self, i: usize) -> bool {
        write_pending(&mut self.clients[i])
    }

    fn read_client(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let n = match self.clients[i].stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        self.clients[i].rbuf.extend_from_slice(&buf[..n]);
        loop {
            let decoded = wire::decode::<Request>(&self.clients[i].rbuf);
            match decoded {
                Ok(Some((frame, used))) => {
                    self.clients[i].rbuf.drain(..used);
                    self.handle(i, frame);
                }
                Ok(None) => return true,
                Err(e) => {
                    self.reply(
                        i,
                        Reply::Error {
                            message: e.to_string(),
                        },
                    );
                    self.clients[i].closing = true;
                    self.clients[i].rbuf.clear();
                    return true;
                }
            }
        }
    }

    fn reply(&mut self, i: usize, reply: Reply) {
        wire::encode(&Frame::Control(reply), self.clients[i].wbuf.tail());
    }

    fn handle(&mut self, i: usize, frame: Frame<Request>) {
        match frame {
            Frame::Input(data) => {
                let target = self.clients[i].target.as_ref().map(key);
                if let Some(s) = target.and_then(|t| self.sessions.get_mut(&t)) {
                    if s.tty && s.exit_code.is_none() {
                        s.pending_input.extend_from_slice(&data);
                        let id = target.unwrap_or(0);
                        self.flush_input(id);
                    }
                }
            }
            Frame::Output { .. } => self.reply(
                i,
                Reply::Error {
                    message: "clients do not send output".into(),
                },
            ),
            Frame::Control(req) => self.handle_request(i, req),
        }
    }

    fn handle_request(&mut self, i: usize, req: Request) {
        match req {
            Request::Attach { target, since } => self.attach(i, target, since),
            Request::Watch => {
                self.clients[i].watch = true;
                if let Some(code) = self.sessions.get(&0).and_then(|s| s.exit_code) {
                    self.reply(i, Reply::Exit { code });
                }
            }
            Request::Resize { cols, rows } => {
                let (cols, rows) = protocol::tty::clamp_size(cols.into(), rows.into());
                let target = self.clients[i].target.as_ref().map(key);
                if let Some(fd) = target
                    .and_then(|t| self.sessions.get(&t))
                    .filter(|s| s.tty)
                    .and_then(|s| s.output.as_ref())
                {
                    let _ = crate::tty::set_size(fd.as_fd(), cols, rows);
                }
            }
            Request::Signal { signal } => {
                let target = self.clients[i].target.as_ref().map(key).unwrap_or(0);
                let result = Signal::try_from(signal)
                    .map_err(|e| e.to_string())
                    .and_then(|sig| {
                        let s = self
                            .sessions
                            .get(&target)
                            .filter(|s| s.exit_code.is_none())
                            .ok_or("process has exited")?;
                        nix::sys::signal::kill(s.pid, sig).map_err(|e| e.to_string())
                    });
                if let Err(message) = result {
                    self.reply(i, Reply::Error { message });
                }
            }
            Request::CloseStdin => {}
            Request::Exec {
                cmd,
                env,
                tty,
                cols,
                rows,
            } => self.exec(
                i,
                ExecRequest {
                    cmd,
                    env,
                    tty,
                    cols,
                    rows,
                },
            ),
        }
    }

    fn attach(&mut self, i: usize, target: Target, since: Option<u64>) {
        let id = key(&target);
        let Some(session) = self.sessions.get(&id) else {
            self.reply(
                i,
                Reply::Error {
                    message: format!("no such terminal: {target:?}"),
                },
            );
            return;
        };
        let replay = session.ring.since(since.unwrap_or(u64::MAX));
        let exit = session.exit_code.filter(|_| session.output.is_none());
        if id == 0 {
            self.main_attached = true;
        }
        self.reply(
            i,
            Reply::Attached {
                target: target.clone(),
                next_seq: session.ring.next_seq(),
            },
        );
        if let Some((from, to)) = replay.gap {
            self.reply(i, Reply::Gap { from, to });
        }
        if !replay.data.is_empty() {
            wire::encode_output(replay.seq, &replay.data, self.clients[i].wbuf.tail());
        }
        self.clients[i].target = Some(target);
        if let Some(code) = exit {
            self.reply(i, Reply::Exit { code });
        }
    }

    fn exec(&mut self, i: usize, req: ExecRequest) {
        if self.sessions.get(&0).is_some_and(|s| s.exit_code.is_some()) {
            self.reply(
                i,
                Reply::Error {
                    message: "container is not running".into(),
                },
            );
            return;
        }
        let procs = self.cgroup.procs_files();
        match exec::spawn(&req, &self.config.env, &self.ns_fds, &procs) {
            Ok((pid, output)) => {
                let id = self.next_exec;
                self.next_exec += 1;
                self.sessions.insert(id, Session::new(pid, output, req.tty));
                self.reply(
                    i,
                    Reply::ExecStarted {
                        exec_id: id,
                        host_pid: pid.as_raw() as u32,
                    },
                );
                self.attach(i, Target::Exec(id), Some(0));
            }
            Err(message) => self.reply(i, Reply::Error { message }),
        }
    }

    fn broadcast_exit(&mut self, id: u32, code: i32) {
        for c in self.clients.iter_mut() {
            if c.target.as_ref().map(key) == Some(id) || (id == 0 && c.watch) {
                wire::encode(&Frame::Control(Reply::Exit { code }), c.wbuf.tail());
            }
        }
    }

    fn warn_left_behind(&self, errors: Vec<String>) {
        for e in errors {
            tracing::warn!(container = %self.config.id, error = %e, "auto-remove left something behind");
        }
    }

    /// Write what the main terminal's replay ring holds to the container's
    /// directory, so that a client attaching after the exit still sees how
    /// the command ended. Returns the sequence number of its first byte.
    fn keep_output(&self) -> Option<u64> {
        let (start, data) = self.sessions.get(&0)?.ring.contents();
        let path = self.dir.output();
        match std::fs::write(&path, data) {
            Ok(()) => Some(start),
            Err(e) => {
                tracing::warn!(container = %self.config.id, path = %path.display(), error = %e, "could not keep the output");
                None
            }
        }
    }

    /// The main process is gone: record it, clean up if asked, tell everyone, flush, exit.
    fn finish(mut self) -> i32 {
        let ids: Vec<u32> = self.sessions.keys().copied().collect();
        for id in ids {
            self.flush_batch(id);
        }
        let code = self
            .sessions
            .get(&0)
            .and_then(|s| s.exit_code)
            .unwrap_or(-1);
        let oom = self
            .cgroup
            .event_counters()
            .map(|c| c.oom_kills > 0)
            .unwrap_or(false);
        self.state = finished_state(self.state.clone(), code, oom);
        let mut forgotten = None;
        if self.config.auto_remove {
            // The host is free and the container unlisted before the exit is
            // reported; its files go after (see `Forgotten`).
            let errors = free_host(&self.dir, &self.cgroup);
            self.warn_left_behind(errors);
            forgotten = Some(Forgotten::take(&self.dir));
        } else {
            self.state.output_seq = self.keep_output();
            if let Err(e) = self.dir.write_state(&self.state) {
                tracing::warn!(container = %self.config.id, error = %e, "could not record the exit");
            }
        }
        self.broadcast_exit(0, code);
        self.release_refill();
        self.wait_for_refill();
        if let Some(spawn) = self.spawn.take() {
            let _ = spawn.send(&SpawnReport::Exited { code });
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for c in self.clients.iter_mut() {
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.set_write_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ));
            let _ = c.stream.write_all(c.wbuf.pending());
        }
        if let Some(forgotten) = forgotten {
            let errors = forgotten.finish();
            self.warn_left_behind(errors);
        }
        0
    }
}
