//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a committed transaction survives `kill -9` and power loss. Several
//! gateway processes may share the file (graceful upgrade); each follows the
//! `revocations` table by its monotonic `seq`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SessionRecord;
use super::{
    AuditLog, Changes, Loaded, RevocationLog, Secrets, SessionMetadata, Sink, StoreError,
    USER_SESSIONS_MAX,
};
use crate::audit::{Action, AuditEntry};
use crate::revocation::{Revocation, SessionRevocation, UserCutoff};

mod delivery;
mod rows;
use rows::*;

/// How often a process looks for revocations written by another process
/// sharing the file.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// SQLite-backed [`Store`](super::Store).
pub struct Embedded {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    /// The audit trail keeps the newest this many entries.
    audit_max: usize,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.path)
            .finish()
    }
}

fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(busy_timeout)?;
    // WAL lets readers (and the other process of a graceful upgrade) work
    // while one writer commits; FULL syncs the WAL at every commit.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError(format!(
            "{}: cannot switch to WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl Embedded {
    /// Opens (creating when absent) the store at `path`. A write waits at
    /// most `busy_timeout` for another process's write lock.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Embedded, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let writer = open_connection(path, busy_timeout)?;
        writer.execute_batch(SCHEMA)?;
        for m in rows::MIGRATIONS {
            if let Err(e) = writer.execute_batch(m) {
                if !e.to_string().contains("duplicate column") {
                    return Err(e.into());
                }
            }
        }
        let reader = open_connection(path, busy_timeout)?;
        Ok(Embedded {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            audit_max: super::DEFAULT_AUDIT_MAX_ENTRIES,
        })
    }

    /// Keeps the newest `max` audit entries from the next purge on
    /// (`store.audit_max_entries`).
    pub fn with_audit_max(mut self, max: usize) -> Embedded {
        self.audit_max = max;
        self
    }

    /// The SQLite file (`store.path`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError("writer connection poisoned".into()))?;
            f(&mut guard)
        })
        .await?
    }

    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError("reader connection poisoned".into()))?;
            f(&mut guard)
        })
        .await?
    }
}

#[async_trait]
impl RevocationLog for Embedded {
    async fn revoke_session(
        &self,
        r: SessionRevocation,
        audit: AuditEntry,
    ) -> Result<SessionRevocation, StoreError> {
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existing = tx
                .query_row(
                    "SELECT at_ms, expires_at, reason, actor FROM revocations
                     WHERE kind = 'session' AND target = ?1 AND expires_at > ?2
                     ORDER BY seq LIMIT 1",
                    params![r.session_id, r.revoked_at_ms.div_euclid(1000)],
                    |row| {
                        Ok(SessionRevocation {
                            session_id: r.session_id.clone(),
                            revoked_at_ms: row.get(0)?,
                            expires_at: row.get(1)?,
                            reason: row.get(2)?,
                            actor: row.get(3)?,
                        })
                    },
                )
                .optional()?;
            let in_force =
                match existing {
                    Some(e) => e,
                    None => {
                        tx.execute(
                        "INSERT INTO revocations (kind, target, at_ms, expires_at, reason, actor)
                         VALUES ('session', ?1, ?2, ?3, ?4, ?5)",
                        params![r.session_id, r.revoked_at_ms, r.expires_at, r.reason, r.actor],
                    )?;
                        r
                    }
                };
            insert_audit(&tx, &audit)?;
            tx.commit()?;
            Ok(in_force)
        })
        .await
    }

    async fn revoke_user(
        &self,
        c: UserCutoff,
        audit: AuditEntry,
    ) -> Result<UserCutoff, StoreError> {
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // The cutoff in force: the latest by the one rule, among those
            // not expired.
            let current = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {REVOCATION_COLUMNS} FROM revocations
                     WHERE kind = 'user' AND target = ?1 AND expires_at > ?2 ORDER BY seq"
                ))?;
                let rows = stmt.query_map(params![c.user_id, c.revoked_at_ms.div_euclid(1000)], row_to_revocation)?;
                let mut best: Option<UserCutoff> = None;
                for row in rows {
                    if let (_, Some(Revocation::User(u))) = row? {
                        if best.as_ref().is_none_or(|b| u.supersedes(b)) {
                            best = Some(u);
                        }
                    }
                }
                best
            };
            // Every request is audited; only a cutoff that wins is written,
            // and it replaces the user's earlier rows (as Redis keeps one
            // key), so a user has at most one cutoff row.
            insert_audit(&tx, &audit)?;
            let in_force = match current {
                Some(cur) if !c.supersedes(&cur) => cur,
                _ => {
                    tx.execute(
                        "DELETE FROM revocations WHERE kind = 'user' AND target = ?1",
                        params![c.user_id],
                    )?;
                    tx.execute(
                        "INSERT INTO revocations (kind, target, at_ms, not_before, except_sid, expires_at, reason, actor)
                         VALUES ('user', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![c.user_id, c.revoked_at_ms, c.not_before, c.except, c.expires_at, c.reason, c.actor],
                    )?;
                    c
                }
            };
            tx.commit()?;
            Ok(in_force)
        })
        .await
    }

    async fn load(&self, now_s: i64, sink: Sink) -> Result<Loaded, StoreError> {
        self.with_reader(move |conn| {
            // One read transaction: the rows and the cursor are one snapshot.
            let tx = conn.transaction()?;
            let mut count = 0;
            {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE expires_at > ?1 ORDER BY seq"
                ))?;
                let mut rows = stmt.query(params![now_s])?;
                while let Some(row) = rows.next()? {
                    if let (_, Some(r)) = row_to_revocation(row)? {
                        sink(r);
                        count += 1;
                    }
                }
            }
            let cursor: i64 =
                tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM revocations", [], |r| r.get(0))?;
            tx.commit()?;
            Ok(Loaded {
                count,
                cursor: cursor.max(0).to_string(),
            })
        })
        .await
    }

    async fn changes_since(&self, cursor: &str, wait: Duration) -> Result<Changes, StoreError> {
        let cursor: u64 = cursor.parse().unwrap_or(0);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changes = self
                .with_reader(move |conn| {
                    let (revocations, last) = query_revocations(
                        conn,
                        &format!(
                            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE seq > ?1 ORDER BY seq"
                        ),
                        params![cursor as i64],
                    )?;
                    Ok(Changes {
                        revocations,
                        cursor: last.max(cursor).to_string(),
                        reload: false,
                    })
                })
                .await?;
            // SQLite cannot block on new rows: poll every POLL_INTERVAL.
            let now = tokio::time::Instant::now();
            if !changes.revocations.is_empty() || now >= deadline {
                return Ok(changes);
            }
            tokio::time::sleep_until((now + POLL_INTERVAL).min(deadline)).await;
        }
    }

    async fn recent_revocations(
        &self,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Revocation>, StoreError> {
        self.with_reader(move |conn| {
            let (list, _) = query_revocations(
                conn,
                &format!(
                    "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE expires_at > ?1
                     ORDER BY seq DESC LIMIT ?2"
                ),
                params![now, limit as i64],
            )?;
            Ok(list)
        })
        .await
    }

    async fn import_sessions(
        &self,
        revocations: Vec<(SessionRevocation, AuditEntry)>,
    ) -> Result<usize, StoreError> {
        self.with_writer(move |conn| {
            // One transaction: all of them or none.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut new = 0;
            {
                let mut exists = tx.prepare_cached(
                    "SELECT 1 FROM revocations WHERE kind = 'session' AND target = ?1 AND expires_at > ?2",
                )?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO revocations (kind, target, at_ms, expires_at, reason, actor)
                     VALUES ('session', ?1, ?2, ?3, ?4, ?5)",
                )?;
                for (r, a) in &revocations {
                    // Every request is audited, new or already in force (as
                    // `revoke_session` does); the first revocation wins.
                    insert_audit(&tx, a)?;
                    let now_s = r.revoked_at_ms.div_euclid(1000);
                    if exists.exists(params![r.session_id, now_s])? {
                        continue;
                    }
                    insert.execute(params![r.session_id, r.revoked_at_ms, r.expires_at, r.reason, r.actor])?;
                    new += 1;
                }
            }
            tx.commit()?;
            Ok(new)
        })
        .await
    }

    async fn purge_expired(&self, now_s: i64) -> Result<usize, StoreError> {
        let audit_max = self.audit_max;
        self.with_writer(move |conn| {
            let n = conn.execute(
                "DELETE FROM revocations WHERE expires_at <= ?1",
                params![now_s],
            )?;
            conn.execute(
                "DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?1",
                params![audit_max as i64],
            )?;
            Ok(n)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_reader(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AuditLog for Embedded {
    async fn append_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            insert_audit(&tx, &entry)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn audit(
        &self,
        limit: usize,
        since_ms: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at_ms, actor, actor_ip, action, target, reason FROM audit
                 WHERE at_ms >= ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows =
                stmt.query_map(params![since_ms.unwrap_or(i64::MIN), limit as i64], |row| {
                    let action: String = row.get(3)?;
                    Ok((
                        AuditEntry {
                            at_ms: row.get(0)?,
                            actor: row.get(1)?,
                            actor_ip: row.get(2)?,
                            action: Action::RevokeSession,
                            target: row.get(4)?,
                            reason: row.get(5)?,
                        },
                        action,
                    ))
                })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut entry, action) = row?;
                match Action::parse(&action) {
                    Some(a) => entry.action = a,
                    None => continue,
                }
                out.push(entry);
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl SessionMetadata for Embedded {
    async fn save_sessions(&self, sessions: Vec<SessionRecord>) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                     ON CONFLICT (sid) DO UPDATE SET
                        user_id = {newer}excluded.user_id ELSE sessions.user_id END,
                        ip = {newer}excluded.ip ELSE sessions.ip END,
                        user_agent = {newer}excluded.user_agent ELSE sessions.user_agent END,
                        country = {newer}excluded.country ELSE sessions.country END,
                        city = {newer}excluded.city ELSE sessions.city END,
                        latitude = {newer}excluded.latitude ELSE sessions.latitude END,
                        longitude = {newer}excluded.longitude ELSE sessions.longitude END,
                        iat = {newer}excluded.iat ELSE sessions.iat END,
                        exp = {newer}excluded.exp ELSE sessions.exp END,
                        first_seen_ms = MIN(sessions.first_seen_ms, excluded.first_seen_ms),
                        last_seen_ms = MAX(sessions.last_seen_ms, excluded.last_seen_ms),
                        requests = MAX(sessions.requests, excluded.requests),
                        new_location = MAX(sessions.new_location, excluded.new_location),
                        confirmed = MAX(sessions.confirmed, excluded.confirmed),
                        suspicious = COALESCE(sessions.suspicious, excluded.suspicious)",
                    newer = "CASE WHEN excluded.last_seen_ms >= sessions.last_seen_ms THEN "
                ))?;
                for s in &sessions {
                    stmt.execute(params![
                        s.session_id,
                        s.user_id,
                        s.ip,
                        s.user_agent,
                        s.country,
                        s.city,
                        s.latitude,
                        s.longitude,
                        s.first_seen_ms,
                        s.last_seen_ms,
                        s.requests.min(i64::MAX as u64) as i64,
                        s.iat,
                        s.exp,
                        s.new_location,
                        s.confirmed,
                        s.suspicious
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn load_sessions(&self, since_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        self.with_reader(move |conn| {
            query_sessions(
                conn,
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE last_seen_ms >= ?1"),
                params![since_ms],
            )
        })
        .await
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sid = session_id.to_string();
        self.with_reader(move |conn| {
            Ok(query_sessions(
                conn,
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = ?1"),
                params![sid],
            )?
            .pop())
        })
        .await
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let user = user_id.to_string();
        self.with_reader(move |conn| {
            query_sessions(
                conn,
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 ORDER BY last_seen_ms DESC LIMIT {USER_SESSIONS_MAX}"
                ),
                params![user],
            )
        })
        .await
    }

    async fn purge_sessions(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.with_writer(move |conn| {
            Ok(conn.execute(
                "DELETE FROM sessions WHERE last_seen_ms < ?1",
                params![before_ms],
            )?)
        })
        .await
    }
}

#[async_trait]
impl Secrets for Embedded {
    async fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let key = format!("secret:{name}");
        self.with_writer(move |conn| {
            let mut fresh = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, fresh.to_vec()],
            )?;
            let value: Vec<u8> =
                conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })?;
            value
                .try_into()
                .map_err(|_| StoreError(format!("meta {key}: not 32 bytes")))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
