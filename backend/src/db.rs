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
//!
//! Group commit: the thread takes every job waiting (up to [`BATCH`]) into
//! one transaction and answers them once it is committed. A burst of 50
//! creates then writes a few WAL commits instead of 50 (an insert on its
//! own costs about three times its share of a batch of ten).

use crate::auth::TokenHash;
use rusqlite::{params, Connection, OptionalExtension};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// `PRAGMA user_version` of the schema this code writes.
pub const SCHEMA_VERSION: i64 = 1;
/// Jobs waiting for the database thread at most.
const QUEUE: usize = 256;
/// Jobs committed together at most.
const BATCH: usize = 64;

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
    /// The transaction a job ran in was not committed (shared by its batch).
    #[error("database: not committed: {0}")]
    NotCommitted(String),
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

/// Told whether the job's transaction was committed, once it is over.
type Reply = Box<dyn FnOnce(Result<(), DbError>) + Send>;
/// Statements to run inside the current batch's transaction.
type Job = Box<dyn FnOnce(&mut Connection) -> Reply + Send>;

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

/// A job that runs `f` in its batch's transaction and hands `answer` the
/// outcome once that is over: `f`'s own error, else the commit's.
fn job_answering<T: Send + 'static>(
    f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    answer: impl FnOnce(Result<T, DbError>) + Send + 'static,
) -> Job {
    Box::new(move |conn| {
        let result = f(conn);
        Box::new(move |committed: Result<(), DbError>| {
            answer(result.and_then(|v| committed.map(|()| v)))
        })
    })
}

/// Run a batch of jobs in one transaction and answer each once it is over.
/// A job whose error makes SQLite roll the whole transaction back (a full
/// disk, say) takes the jobs before it in the batch down with it: they are
/// told so, and the rest of the batch goes on in a new transaction.
fn run_batch(conn: &mut Connection, jobs: impl Iterator<Item = Job>) {
    let mut pending: Vec<Reply> = Vec::new();
    for job in jobs {
        if conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("BEGIN") {
                // Without a transaction the job's statements commit alone.
                tracing::warn!(error = %e, "database: BEGIN failed");
                job(conn)(Ok(()));
                continue;
            }
        }
        let reply = job(conn);
        if conn.is_autocommit() {
            for earlier in pending.drain(..) {
                earlier(Err(DbError::NotCommitted(
                    "rolled back by a later statement".into(),
                )));
            }
            reply(Ok(()));
            continue;
        }
        pending.push(reply);
    }
    if conn.is_autocommit() {
        return;
    }
    let committed = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
    if let Err(e) = &committed {
        tracing::error!(error = %e, jobs = pending.len(), "database: COMMIT failed");
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in pending {
        reply(committed.clone().map_err(DbError::NotCommitted));
    }
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
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(job) = rx.blocking_recv() {
                    batch.push(job);
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    run_batch(&mut conn, batch.drain(..));
                }
            })
            .map_err(|source| DbError::Io {
                what: "starting the database thread".into(),
                source,
            })?;
        Ok((Db { tx }, loaded))
    }

    /// Run `f` on the database thread and wait for its answer, which
    /// comes once its transaction is committed. `f` runs inside a shared
    /// transaction: several statements that belong together go in a
    /// savepoint.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(job_answering(f, move |result| {
                let _ = reply.send(result);
            }))
            .await
            .map_err(|_| DbError::Closed)?;
        answer.await.map_err(|_| DbError::Closed)?
    }

    pub async fn insert_session(&self, s: SessionRecord) -> Result<(), DbError> {
        self.call(move |c| {
            c.prepare_cached(
                "INSERT INTO sessions (id, token_sha256, ip, created_ms, expires_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                s.id,
                s.token.as_slice(),
                s.ip,
                s.created_ms as i64,
                s.expires_ms as i64,
                s.last_seen_ms as i64
            ])?;
            Ok(())
        })
        .await
    }

    /// Record activity without waiting; under a full queue it is skipped (a
    /// later touch carries a later time anyway).
    pub fn touch_later(&self, session: &str, last_seen_ms: u64) {
        let session = session.to_string();
        let job = job_answering(
            move |c| {
                c.prepare_cached(
                    "UPDATE sessions SET last_seen_ms = MAX(last_seen_ms, ?2) WHERE id = ?1",
                )?
                .execute(params![session, last_seen_ms as i64])?;
                Ok(())
            },
            |result| {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "recording session activity");
                }
            },
        );
        let _ = self.tx.try_send(job);
    }

    /// Forget a session; its container records go with it.
    pub async fn delete_session(&self, session: &str) -> Result<(), DbError> {
        let session = session.to_string();
        self.call(move |c| {
            let sp = c.savepoint()?;
            sp.prepare_cached("DELETE FROM containers WHERE session = ?1")?
                .execute([&session])?;
            sp.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
                .execute([&session])?;
            sp.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn insert_container(&self, r: ContainerRecord) -> Result<(), DbError> {
        let spec = serde_json::to_string(&r.spec).map_err(|e| DbError::Malformed(e.to_string()))?;
        self.call(move |c| {
            c.prepare_cached(
                "INSERT INTO containers (id, session, name, spec, memory_bytes, created_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'live')",
            )?
            .execute(params![
                r.id,
                r.session,
                r.name,
                spec,
                r.memory_bytes as i64,
                r.created_ms as i64
            ])?;
            Ok(())
        })
        .await
    }

    /// Mark a container as being removed, before its removal starts.
    pub async fn mark_removing(&self, id: &str) -> Result<(), DbError> {
        let id = id.to_string();
        self.call(move |c| {
            c.prepare_cached("UPDATE containers SET state = 'removing' WHERE id = ?1")?
                .execute([&id])?;
            Ok(())
        })
        .await
    }

    pub async fn delete_container(&self, id: &str) -> Result<(), DbError> {
        let id = id.to_string();
        self.call(move |c| {
            c.prepare_cached("DELETE FROM containers WHERE id = ?1")?
                .execute([&id])?;
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

    fn container(id: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.into(),
            session: "s1".into(),
            name: "box".into(),
            spec: protocol::api::CreateContainer {
                image: "busybox".into(),
                ..Default::default()
            },
            memory_bytes: 5,
            created_ms: 6,
            state: ContainerState::Live,
        }
    }

    /// Holds the database thread until the returned sender is dropped or
    /// sent to, so that the jobs sent meanwhile queue up into one batch.
    /// Returns once the thread runs the hold: no job sent after it can
    /// join the hold's own batch.
    async fn hold(db: &Db) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (running, started) = tokio::sync::oneshot::channel::<()>();
        let db = db.clone();
        tokio::spawn(async move {
            db.call(move |_| {
                let _ = running.send(());
                Ok(held.recv().ok())
            })
            .await
        });
        started.await.expect("the hold ran");
        release
    }

    /// A new database holding the session "s1", its directory and path.
    async fn with_session_s1() -> (tempfile::TempDir, std::path::PathBuf, Db) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glassbox.db");
        let (db, _) = Db::open(&path).unwrap();
        db.insert_session(session("s1")).await.unwrap();
        (dir, path, db)
    }

    #[tokio::test]
    async fn a_batch_answers_each_job_for_what_happened_to_it() {
        let (_dir, path, db) = with_session_s1().await;
        let release = hold(&db).await;
        // On this single-threaded runtime the tasks send in spawn order.
        let insert = |id: &str| {
            let (db, r) = (db.clone(), container(id));
            tokio::spawn(async move { db.insert_container(r).await })
        };
        let kept = insert("c1");
        let duplicate = insert("c1");
        let lost = insert("c2");
        let db2 = db.clone();
        // A statement that rolls the whole transaction back, as a full disk does.
        let rollback =
            tokio::spawn(async move { db2.call(|c| Ok(c.execute_batch("ROLLBACK")?)).await });
        let after = insert("c3");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        let kept = kept.await.unwrap();
        let duplicate = duplicate.await.unwrap();
        assert!(
            matches!(kept, Err(DbError::NotCommitted(_))),
            "rolled back with its batch: {kept:?}"
        );
        assert!(
            matches!(duplicate, Err(DbError::Sqlite(_))),
            "its own error: {duplicate:?}"
        );
        assert!(matches!(lost.await.unwrap(), Err(DbError::NotCommitted(_))));
        rollback.await.unwrap().expect("the rollback itself ran");
        after
            .await
            .unwrap()
            .expect("a new transaction after the rollback");
        drop(db);
        let (_db, loaded) = Db::open(&path).unwrap();
        let ids: Vec<_> = loaded.containers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c3"]);
    }

    #[tokio::test]
    async fn a_burst_commits_in_one_batch_and_a_bad_job_spoils_only_itself() {
        let (dir, path, db) = with_session_s1().await;
        let release = hold(&db).await;
        let mut jobs = Vec::new();
        for i in 0..50 {
            let (db, r) = (db.clone(), container(&format!("c{}", i % 49)));
            jobs.push(tokio::spawn(async move { db.insert_container(r).await }));
        }
        // WAL frames: a commit writes at least one page of its own.
        let wal = dir.path().join("glassbox.db-wal");
        let frames = || (std::fs::metadata(&wal).map_or(0, |m| m.len()).max(32) - 32) / (4096 + 24);
        let before = frames();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        let mut failed = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            if let Err(e) = job.await.unwrap() {
                failed.push((i, e.to_string()));
            }
        }
        assert_eq!(failed.len(), 1, "only the duplicate fails: {failed:?}");
        assert_eq!(failed[0].0, 49);
        assert!(failed[0].1.contains("UNIQUE"), "{failed:?}");
        let written = frames() - before;
        assert!(
            written < 20,
            "50 inserts wrote {written} WAL frames: not one commit"
        );
        drop(db);
        let (_db, loaded) = Db::open(&path).unwrap();
        assert_eq!(loaded.containers.len(), 49);
    }
}
