//! The server's own records, in SQLite at `<state-dir>/glassbox.db`: the
//! sessions (token as its SHA-256), the containers each owns, and the state
//! of each container record. They outlive the process, so a restarted or
//! crashed server finds its sessions and adopts their containers.
//!
//! One dedicated thread owns the connection; async code sends it jobs over a
//! bounded channel (a full queue makes writers wait, it never grows) and
//! awaits the answer where the order matters: a session is on disk before
//! its token is handed out, a container's record before its create answers.
//! WAL with `synchronous = NORMAL`: a committed transaction survives the
//! process being killed (only an OS crash may lose the last ones).

use crate::auth::TokenHash;
use rusqlite::{params, Connection, OptionalExtension};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// `PRAGMA user_version` of the schema this code writes.
pub const SCHEMA_VERSION: i64 = 1;
/// Jobs waiting for the database thread at most.
const QUEUE: usize = 256;

const SCHEMA_V1: &str = "
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_sha256  BLOB NOT NULL UNIQUE,
    ip            TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
);
CREATE TABLE containers (
    id            TEXT PRIMARY KEY,
    session       TEXT NOT NULL,
    name          TEXT NOT NULL,
    spec          TEXT NOT NULL,
    memory_bytes  INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('live', 'removing'))
);
CREATE INDEX containers_by_session ON containers (session);
";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this server's {SCHEMA_VERSION}")]
    NewerSchema { found: i64 },
    #[error("a stored record is malformed: {0}")]
    Malformed(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the database thread has stopped")]
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub token: TokenHash,
    pub ip: String,
    pub created_ms: u64,
    /// The hard expiry (created + TTL at creation).
    pub expires_ms: u64,
    /// Last activity, moved by requests, terminal input and "extend".
    pub last_seen_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Made and handed to its session.
    Live,
    /// Its removal has begun: a restart finishes it, never adopts it.
    Removing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    pub session: String,
    pub name: String,
    /// The create request, limits resolved (what a restart makes again).
    pub spec: protocol::api::CreateContainer,
    pub memory_bytes: u64,
    pub created_ms: u64,
    pub state: ContainerState,
}

/// Everything stored, read once at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sessions: Vec<SessionRecord>,
    pub containers: Vec<ContainerRecord>,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the database thread; cheap to clone.
#[derive(Clone)]
pub struct Db {
    tx: mpsc::Sender<Job>,
}

fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::NewerSchema { found: version });
    }
    if version < 1 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_V1)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
    }
    Ok(())
}

fn load(conn: &Connection) -> Result<Loaded, DbError> {
    let mut out = Loaded::default();
    let mut q = conn.prepare(
        "SELECT id, token_sha256, ip, created_ms, expires_ms, last_seen_ms FROM sessions",
    )?;
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (id, token, ip, created, expires, seen) = row?;
        let token: TokenHash = token
            .try_into()
            .map_err(|_| DbError::Malformed(format!("session {id}: token hash length")))?;
        out.sessions.push(SessionRecord {
            id,
            token,
            ip,
            created_ms: created as u64,
            expires_ms: expires as u64,
            last_seen_ms: seen as u64,
        });
    }
    let mut q = conn.prepare(
        "SELECT id, session, name, spec, memory_bytes, created_ms, state FROM containers",
    )?;
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
        ))
    })?;
    for row in rows {
        let (id, session, name, spec, memory, created, state) = row?;
        let spec = serde_json::from_str(&spec)
            .map_err(|e| DbError::Malformed(format!("container {id}: spec: {e}")))?;
        let state = match state.as_str() {
            "live" => ContainerState::Live,
            _ => ContainerState::Removing,
        };
        out.containers.push(ContainerRecord {
            id,
            session,
            name,
            spec,
            memory_bytes: memory as u64,
            created_ms: created as u64,
            state,
        });
    }
    Ok(out)
}

impl Db {
    /// Open (or make) the database, bring its schema up to date, read what
    /// it holds, and start its thread. Blocking: call it off the executor.
    pub fn open(path: &Path) -> Result<(Db, Loaded), DbError> {
        let mut conn = Connection::open(path)?;
        // Token hashes and client addresses: the server's eyes only. SQLite
        // gives its -wal and -shm files the mode of the database file.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| DbError::Io {
                what: format!("restricting {}", path.display()),
                source,
            },
        )?;
        migrate(&mut conn)?;
        let loaded = load(&conn)?;
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("glassbox-db".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(|source| DbError::Io {
                what: "starting the database thread".into(),
                source,
            })?;
        Ok((Db { tx }, loaded))
    }

    /// Run `f` on the database thread and wait for its answer.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            }))
            .await
            .map_err(|_| DbError::Closed)?;
        answer.await.map_err(|_| DbError::Closed)?
    }

    pub async fn insert_session(&self, s: SessionRecord) -> Result<(), DbError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO sessions (id, token_sha256, ip, created_ms, expires_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.id,
                    s.token.as_slice(),
                    s.ip,
                    s.created_ms as i64,
                    s.expires_ms as i64,
                    s.last_seen_ms as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Record activity without waiting; under a full queue it is skipped (a
    /// later touch carries a later time anyway).
    pub fn touch_later(&self, session: &str, last_seen_ms: u64) {
        let session = session.to_string();
        let job: Job = Box::new(move |c| {
            if let Err(e) = c.execute(
                "UPDATE sessions SET last_seen_ms = MAX(last_seen_ms, ?2) WHERE id = ?1",
                params![session, last_seen_ms as i64],
            ) {
                tracing::warn!(error = %e, "recording session activity");
            }
        });
        let _ = self.tx.try_send(job);
    }

    /// Forget a session; its container records go with it.
    pub async fn delete_session(&self, session: &str) -> Result<(), DbError> {
        let session = session.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM containers WHERE session = ?1", [&session])?;
            tx.execute("DELETE FROM sessions WHERE id = ?1", [&session])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn insert_container(&self, r: ContainerRecord) -> Result<(), DbError> {
        let spec = serde_json::to_string(&r.spec).map_err(|e| DbError::Malformed(e.to_string()))?;
        self.call(move |c| {
            c.execute(
                "INSERT INTO containers (id, session, name, spec, memory_bytes, created_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'live')",
                params![
                    r.id,
                    r.session,
                    r.name,
                    spec,
                    r.memory_bytes as i64,
                    r.created_ms as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Mark a container as being removed, before its removal starts.
    pub async fn mark_removing(&self, id: &str) -> Result<(), DbError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute(
                "UPDATE containers SET state = 'removing' WHERE id = ?1",
                [&id],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn delete_container(&self, id: &str) -> Result<(), DbError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute("DELETE FROM containers WHERE id = ?1", [&id])?;
            Ok(())
        })
        .await
    }

    /// Is the session stored? (For tests and the reconciler's checks.)
    pub async fn has_session(&self, id: &str) -> Result<bool, DbError> {
        let id = id.to_string();
        self.call(move |c| {
            Ok(
                c.query_row("SELECT 1 FROM sessions WHERE id = ?1", [&id], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            token: [id.as_bytes()[1]; 32],
            ip: "127.0.0.1".into(),
            created_ms: 1,
            expires_ms: 2,
            last_seen_ms: 3,
        }
    }

    #[tokio::test]
    async fn records_survive_a_reopen_and_the_schema_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glassbox.db");
        let (db, loaded) = Db::open(&path).unwrap();
        assert!(loaded.sessions.is_empty());
        db.insert_session(session("s1")).await.unwrap();
        db.insert_session(session("s2")).await.unwrap();
        let spec = protocol::api::CreateContainer {
            image: "busybox".into(),
            ..Default::default()
        };
        for (id, s) in [("c1", "s1"), ("c2", "s2")] {
            db.insert_container(ContainerRecord {
                id: id.into(),
                session: s.into(),
                name: "box".into(),
                spec: spec.clone(),
                memory_bytes: 5,
                created_ms: 6,
                state: ContainerState::Live,
            })
            .await
            .unwrap();
        }
        db.mark_removing("c2").await.unwrap();
        db.touch_later("s1", 99);
        db.delete_session("s2").await.unwrap();
        assert!(db.has_session("s1").await.unwrap());
        drop(db);
        let (_db, loaded) = Db::open(&path).unwrap();
        assert_eq!(loaded.sessions.len(), 1);
        assert_eq!(loaded.sessions[0].last_seen_ms, 99, "the touch was applied");
        assert_eq!(loaded.sessions[0].token, [b'1'; 32]);
        assert_eq!(loaded.containers.len(), 1, "s2's container went with it");
        assert_eq!(loaded.containers[0].spec, spec);
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only root reads the database");
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        assert!(matches!(Db::open(&path), Err(DbError::NewerSchema { .. })));
    }
}
