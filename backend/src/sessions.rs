//! Sessions: who owns which containers, when each session ends, and the
//! admission of new sessions and containers against the operator's caps.
//!
//! Sessions live in memory, and in the database (`db`) so that a restart
//! finds them: the store is the working copy, the database the durable one.
//! One lock guards the whole store; every critical section is short and
//! never awaits or blocks on I/O (activity reaches the database through a
//! non-blocking queue, at most once per [`PERSIST_ACTIVITY_EVERY`]).

use crate::auth::{self, TokenHash};
use crate::config::Config;
use crate::db::{Db, SessionRecord};
use crate::error::ApiError;
use protocol::{EventsMessage, Stats};
use runtime::cgroups::Cgroup;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// Events waiting for a slow events socket; beyond this it skips ahead.
const EVENT_BUFFER: usize = 256;

/// Activity is written to the database at most this often per session: a
/// crash loses at most this much of a session's idle clock.
pub const PERSIST_ACTIVITY_EVERY: Duration = Duration::from_secs(5);

/// Latest stats of each of a session's containers, replaced every tick.
pub type StatsSnapshot = Arc<Vec<(String, Stats)>>;

/// A watched session: where its stats and events go, and its containers.
pub type Watched = (
    watch::Sender<StatsSnapshot>,
    broadcast::Sender<EventsMessage>,
    Vec<Arc<ContainerEntry>>,
);

/// A container that belongs to a session.
#[derive(Debug)]
pub struct ContainerEntry {
    pub id: String,
    /// The name the user gave (the runtime's name carries a session prefix).
    pub name: String,
    pub socket: PathBuf,
    pub cgroup: Cgroup,
    pub memory_bytes: u64,
    /// What it was created from (limits resolved): a restart makes it again.
    pub spec: protocol::api::CreateContainer,
    /// OOM kills and refused forks at the last stats sample.
    pub counters: Mutex<runtime::cgroups::EventCounters>,
}

pub struct Session {
    pub id: String,
    token: TokenHash,
    pub ip: IpAddr,
    pub created_at: Instant,
    pub created_at_ms: u64,
    pub last_seen: Instant,
    /// The activity time last sent to the database.
    persisted_seen: Instant,
    pub containers: BTreeMap<String, Arc<ContainerEntry>>,
    /// Container creations admitted but not finished: (count, memory).
    pending: (u32, u64),
    pub stats: watch::Sender<StatsSnapshot>,
    pub events: broadcast::Sender<EventsMessage>,
    /// Becomes true when the session ends; open sockets close on it.
    pub ended: watch::Sender<bool>,
}

/// What a request learns about its session once authenticated.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: String,
    pub ended: watch::Receiver<bool>,
}

/// A create that was admitted: holds its slot until committed or dropped.
pub struct Reservation {
    store: Arc<SessionStore>,
    session: String,
    memory: u64,
    done: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.store.lock();
            if let Some(s) = inner.sessions.get_mut(&self.session) {
                s.pending.0 = s.pending.0.saturating_sub(1);
                s.pending.1 = s.pending.1.saturating_sub(self.memory);
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    by_token: HashMap<TokenHash, String>,
}

pub struct SessionStore {
    config: Config,
    db: Db,
    inner: Mutex<Inner>,
}

/// The `Instant` of a wall-clock time in ms (for times read back from disk).
pub fn instant_of(ms: u64) -> Instant {
    let now = Instant::now();
    let now_ms = runtime::state::now_ms();
    if ms >= now_ms {
        now + Duration::from_millis(ms - now_ms)
    } else {
        now.checked_sub(Duration::from_millis(now_ms - ms))
            .unwrap_or(now)
    }
}

pub fn unix_ms(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let wall = if at >= now {
        wall + (at - now)
    } else {
        wall.saturating_sub(now - at)
    };
    wall.as_millis() as u64
}

impl SessionStore {
    pub fn new(config: Config, db: Db) -> SessionStore {
        SessionStore {
            config,
            db,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Is a stored session past its idle timeout or hard expiry at `now_ms`?
    pub fn record_expired(&self, r: &SessionRecord, now_ms: u64) -> bool {
        let ttl = self.config.session_ttl().as_millis() as u64;
        let idle = self.config.idle_timeout().as_millis() as u64;
        now_ms >= r.expires_ms.min(r.created_ms.saturating_add(ttl))
            || now_ms.saturating_sub(r.last_seen_ms) >= idle
    }

    /// Bring back a session stored by an earlier run (its clocks continue).
    pub fn restore(&self, r: &SessionRecord) {
        let Ok(ip) = r.ip.parse::<IpAddr>() else {
            tracing::warn!(session = %r.id, ip = %r.ip, "stored session has a bad address; dropped");
            return;
        };
        let (stats, _) = watch::channel(Arc::new(Vec::new()));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (ended, _) = watch::channel(false);
        let last_seen = instant_of(r.last_seen_ms);
        let mut inner = self.lock();
        inner.by_token.insert(r.token, r.id.clone());
        inner.sessions.insert(
            r.id.clone(),
            Session {
                id: r.id.clone(),
                token: r.token,
                ip,
                created_at: instant_of(r.created_ms),
                created_at_ms: r.created_ms,
                last_seen,
                persisted_seen: last_seen,
                containers: BTreeMap::new(),
                pending: (0, 0),
                stats,
                events,
                ended,
            },
        );
    }

    /// Give a restored session back a container that outlived the restart.
    pub fn adopt(&self, session: &str, entry: ContainerEntry) -> Option<Arc<ContainerEntry>> {
        let mut inner = self.lock();
        let s = inner.sessions.get_mut(session)?;
        let entry = Arc::new(entry);
        s.containers.insert(entry.id.clone(), Arc::clone(&entry));
        Some(entry)
    }

    /// Send a session's activity to the database if it is due.
    fn persist_activity(&self, s: &mut Session) {
        if s.last_seen.duration_since(s.persisted_seen) >= PERSIST_ACTIVITY_EVERY {
            s.persisted_seen = s.last_seen;
            self.db.touch_later(&s.id, unix_ms(s.last_seen));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (no invariant
        // spans an await or a panic point), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session, if the caps allow: returns it, its secret token, its
    /// expiry and its record (for the caller to store before answering).
    pub fn create(&self, ip: IpAddr) -> Result<(String, String, Instant, SessionRecord), ApiError> {
        let limits = &self.config.sessions;
        let mut inner = self.lock();
        if inner.sessions.len() >= limits.max_total as usize {
            return Err(ApiError::OutOfCapacity {
                limit: "sessions",
                message: format!(
                    "the server has its maximum of {} sessions; try again later",
                    limits.max_total
                ),
            });
        }
        let from_ip = inner.sessions.values().filter(|s| s.ip == ip).count();
        if from_ip >= limits.max_per_ip as usize {
            return Err(ApiError::LimitExceeded {
                limit: "sessions_per_ip",
                message: format!(
                    "sessions_per_ip limit reached: {} sessions from one address at most",
                    limits.max_per_ip
                ),
            });
        }
        let token = auth::new_token().map_err(ApiError::internal)?;
        let id = auth::new_session_id().map_err(ApiError::internal)?;
        let now = Instant::now();
        let (stats, _) = watch::channel(Arc::new(Vec::new()));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (ended, _) = watch::channel(false);
        let hash = auth::hash_token(&token);
        inner.by_token.insert(hash, id.clone());
        inner.sessions.insert(
            id.clone(),
            Session {
                id: id.clone(),
                token: hash,
                ip,
                created_at: now,
                created_at_ms: unix_ms(now),
                last_seen: now,
                persisted_seen: now,
                containers: BTreeMap::new(),
                pending: (0, 0),
                stats,
                events,
                ended,
            },
        );
        let expires = now + self.config.session_ttl();
        let record = SessionRecord {
            id: id.clone(),
            token: hash,
            ip: ip.to_string(),
            created_ms: unix_ms(now),
            expires_ms: unix_ms(expires),
            last_seen_ms: unix_ms(now),
        };
        Ok((id, token, expires, record))
    }

    /// The session a token belongs to; marks it active unless `passive` (a
    /// page polling on its own is not a person using the session).
    pub fn authenticate(&self, token: &str, passive: bool) -> Option<SessionHandle> {
        let hash = auth::hash_token(token);
        let mut inner = self.lock();
        let id = inner.by_token.get(&hash)?.clone();
        let session = inner.sessions.get_mut(&id)?;
        if !auth::token_matches(&session.token, &hash) || self.expired(session, Instant::now()) {
            return None;
        }
        if !passive {
            session.last_seen = Instant::now();
            self.persist_activity(session);
        }
        Some(SessionHandle {
            id: session.id.clone(),
            ended: session.ended.subscribe(),
        })
    }

    /// Watch a session's stats and events (the sampler runs while someone does).
    pub fn subscribe(
        &self,
        session: &str,
    ) -> Option<(
        watch::Receiver<StatsSnapshot>,
        broadcast::Receiver<EventsMessage>,
    )> {
        let inner = self.lock();
        let s = inner.sessions.get(session)?;
        Some((s.stats.subscribe(), s.events.subscribe()))
    }

    /// Activity without a request (terminal input) keeps a session alive.
    pub fn touch(&self, session: &str) {
        if let Some(s) = self.lock().sessions.get_mut(session) {
            s.last_seen = Instant::now();
            self.persist_activity(s);
        }
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) >= self.config.idle_timeout()
            || now.duration_since(s.created_at) >= self.config.session_ttl()
    }

    /// (hard expiry, idle expiry) of a session.
    pub fn deadlines(&self, session: &str) -> Option<(Instant, Instant)> {
        let inner = self.lock();
        let s = inner.sessions.get(session)?;
        Some((
            s.created_at + self.config.session_ttl(),
            s.last_seen + self.config.idle_timeout(),
        ))
    }

    /// Admit one more container for `session`, or say which limit stops it.
    pub fn reserve(self: &Arc<Self>, session: &str, memory: u64) -> Result<Reservation, ApiError> {
        let mut inner = self.lock();
        let cap = &self.config.capacity;
        let (mut total, mut total_memory) = (0u64, 0u64);
        for s in inner.sessions.values() {
            total += s.containers.len() as u64 + u64::from(s.pending.0);
            total_memory +=
                s.containers.values().map(|c| c.memory_bytes).sum::<u64>() + s.pending.1;
        }
        let per_session = self.config.sessions.containers_per_session;
        let s = inner
            .sessions
            .get_mut(session)
            .ok_or(ApiError::Unauthorized("the session has ended"))?;
        if s.containers.len() as u64 + u64::from(s.pending.0) >= u64::from(per_session) {
            return Err(ApiError::LimitExceeded {
                limit: "containers_per_session",
                message: format!(
                    "containers_per_session limit reached: a session may have {per_session} containers; remove one first"
                ),
            });
        }
        if total >= u64::from(cap.max_containers) {
            return Err(ApiError::OutOfCapacity {
                limit: "max_containers",
                message: format!(
                    "the host runs its maximum of {} containers; try again later",
                    cap.max_containers
                ),
            });
        }
        if cap.memory_bytes > 0 && total_memory + memory > cap.memory_bytes {
            return Err(ApiError::OutOfCapacity {
                limit: "memory_bytes",
                message:
                    "the host's memory budget is taken; try again later or ask for less memory"
                        .into(),
            });
        }
        s.pending.0 += 1;
        s.pending.1 += memory;
        Ok(Reservation {
            store: Arc::clone(self),
            session: session.to_string(),
            memory,
            done: false,
        })
    }

    /// Record a created container. If the session ended meanwhile, hands the
    /// entry back so that the caller removes the container.
    pub fn commit(
        &self,
        mut r: Reservation,
        entry: ContainerEntry,
    ) -> Result<Arc<ContainerEntry>, Arc<ContainerEntry>> {
        let mut inner = self.lock();
        r.done = true;
        match inner.sessions.get_mut(&r.session) {
            Some(s) => {
                s.pending.0 = s.pending.0.saturating_sub(1);
                s.pending.1 = s.pending.1.saturating_sub(r.memory);
                let entry = Arc::new(entry);
                s.containers.insert(entry.id.clone(), Arc::clone(&entry));
                Ok(entry)
            }
            None => Err(Arc::new(entry)),
        }
    }

    /// Is this user name taken in the session (names are per session)?
    pub fn name_in_use(&self, session: &str, name: &str) -> bool {
        self.lock()
            .sessions
            .get(session)
            .is_some_and(|s| s.containers.values().any(|c| c.name == name))
    }

    /// The session's container `id`, or 404 whether it is someone else's or missing.
    pub fn container(&self, session: &str, id: &str) -> Result<Arc<ContainerEntry>, ApiError> {
        self.lock()
            .sessions
            .get(session)
            .and_then(|s| s.containers.get(id))
            .cloned()
            .ok_or(ApiError::ContainerNotFound)
    }

    pub fn containers(&self, session: &str) -> Vec<Arc<ContainerEntry>> {
        self.lock()
            .sessions
            .get(session)
            .map(|s| s.containers.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Take a container out of its session (before removing it).
    pub fn forget(&self, session: &str, id: &str) -> Option<Arc<ContainerEntry>> {
        self.lock()
            .sessions
            .get_mut(session)
            .and_then(|s| s.containers.remove(id))
    }

    /// End a session now: it is gone from the store, its sockets are told.
    pub fn end(&self, session: &str) -> Option<Vec<Arc<ContainerEntry>>> {
        let mut inner = self.lock();
        let s = inner.sessions.remove(session)?;
        inner.by_token.remove(&s.token);
        let _ = s.ended.send(true);
        Some(s.containers.into_values().collect())
    }

    /// End every session past its idle timeout or TTL; returns their containers.
    pub fn end_expired(&self) -> Vec<(String, Vec<Arc<ContainerEntry>>)> {
        let now = Instant::now();
        let ids: Vec<String> = {
            let inner = self.lock();
            inner
                .sessions
                .values()
                .filter(|s| self.expired(s, now))
                .map(|s| s.id.clone())
                .collect()
        };
        ids.into_iter()
            .filter_map(|id| self.end(&id).map(|c| (id, c)))
            .collect()
    }

    pub fn all_ids(&self) -> Vec<String> {
        self.lock().sessions.keys().cloned().collect()
    }

    /// (sessions, containers) for the metrics.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        let containers = inner.sessions.values().map(|s| s.containers.len()).sum();
        (inner.sessions.len(), containers)
    }

    /// Sessions someone watches on `/api/v1/events`, with their containers.
    pub fn watched(&self) -> Vec<Watched> {
        self.lock()
            .sessions
            .values()
            .filter(|s| s.stats.receiver_count() > 0 && !s.containers.is_empty())
            .map(|s| {
                (
                    s.stats.clone(),
                    s.events.clone(),
                    s.containers.values().cloned().collect(),
                )
            })
            .collect()
    }

    /// Tell a session's events sockets about something.
    pub fn publish(&self, session: &str, msg: EventsMessage) {
        if let Some(s) = self.lock().sessions.get(session) {
            // No subscriber is not an error.
            let _ = s.events.send(msg);
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.config.idle_timeout()
    }
}
