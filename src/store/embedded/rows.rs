//! The SQLite schema and how rows become domain values and back.

use rusqlite::{params, Connection, Row, Transaction};

use crate::audit::AuditEntry;
use crate::revocation::{Revocation, SessionRevocation, UserCutoff};
use crate::store::SessionRecord;
use crate::store::StoreError;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('session', 'user')),
    target     TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    not_before INTEGER,
    except_sid TEXT,
    expires_at INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    actor      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_target ON revocations (kind, target);
CREATE INDEX IF NOT EXISTS revocations_expiry ON revocations (expires_at);
CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    actor_ip TEXT,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    reason   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);
CREATE TABLE IF NOT EXISTS sessions (
    sid           TEXT PRIMARY KEY,
    user_id       TEXT,
    ip            TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    country       TEXT,
    city          TEXT,
    latitude      REAL,
    longitude     REAL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    requests      INTEGER NOT NULL,
    iat           INTEGER,
    exp           INTEGER,
    new_location  INTEGER NOT NULL DEFAULT 0,
    confirmed     INTEGER NOT NULL DEFAULT 0,
    suspicious    TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_seen ON sessions (last_seen_ms);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
";

pub(super) const SESSION_COLUMNS: &str =
    "sid, user_id, ip, user_agent, country, city, latitude, longitude, \
     first_seen_ms, last_seen_ms, requests, iat, exp, new_location, confirmed, suspicious";

/// Columns added after a store's first version: added to an older file on
/// open (an error other than "already there" is one).
pub(super) const MIGRATIONS: &[&str] = &["ALTER TABLE sessions ADD COLUMN suspicious TEXT"];

pub(super) fn row_to_session(row: &Row) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        session_id: row.get(0)?,
        user_id: row.get(1)?,
        ip: row.get(2)?,
        user_agent: row.get(3)?,
        country: row.get(4)?,
        city: row.get(5)?,
        latitude: row.get(6)?,
        longitude: row.get(7)?,
        first_seen_ms: row.get(8)?,
        last_seen_ms: row.get(9)?,
        requests: row.get::<_, i64>(10)?.max(0) as u64,
        iat: row.get(11)?,
        exp: row.get(12)?,
        new_location: row.get(13)?,
        confirmed: row.get(14)?,
        suspicious: row.get(15)?,
    })
}

pub(super) fn query_sessions(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(args, row_to_session)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

pub(super) const REVOCATION_COLUMNS: &str =
    "seq, kind, target, at_ms, not_before, except_sid, expires_at, reason, actor";

pub(super) fn insert_audit(tx: &Transaction, e: &AuditEntry) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (at_ms, actor, actor_ip, action, target, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![e.at_ms, e.actor, e.actor_ip, e.action.as_str(), e.target, e.reason],
    )?;
    Ok(())
}

pub(super) fn row_to_revocation(row: &Row) -> rusqlite::Result<(u64, Option<Revocation>)> {
    let seq: i64 = row.get(0)?;
    let kind: String = row.get(1)?;
    let target: String = row.get(2)?;
    let at_ms: i64 = row.get(3)?;
    let not_before: Option<i64> = row.get(4)?;
    let except: Option<String> = row.get(5)?;
    let expires_at: i64 = row.get(6)?;
    let reason: String = row.get(7)?;
    let actor: String = row.get(8)?;
    let r = match (kind.as_str(), not_before) {
        ("session", _) => Some(Revocation::Session(SessionRevocation {
            session_id: target,
            revoked_at_ms: at_ms,
            expires_at,
            reason,
            actor,
        })),
        ("user", Some(not_before)) => Some(Revocation::User(UserCutoff {
            user_id: target,
            not_before,
            except,
            revoked_at_ms: at_ms,
            expires_at,
            reason,
            actor,
        })),
        _ => None,
    };
    Ok((seq.max(0) as u64, r))
}

pub(super) fn query_revocations(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<(Vec<Revocation>, u64), StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    let mut last = 0;
    while let Some(row) = rows.next()? {
        let (seq, r) = row_to_revocation(row)?;
        last = last.max(seq);
        if let Some(r) = r {
            out.push(r);
        }
    }
    Ok((out, last))
}
