//! The audit trail as an outbox, on SQLite: positions are the audit rows'
//! ids; cursors and leases live in `meta`.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::Embedded;
use crate::audit::{Action, AuditEntry};
use crate::store::{Delivery, StoreError};

fn position(p: &str) -> Result<i64, StoreError> {
    if p.is_empty() {
        return Ok(0);
    }
    p.parse()
        .map_err(|_| StoreError(format!("not an audit position of this store: {p:?}")))
}

#[async_trait]
impl Delivery for Embedded {
    async fn audit_head(&self) -> Result<String, StoreError> {
        self.with_reader(|conn| {
            let id: Option<i64> = conn.query_row("SELECT MAX(id) FROM audit", [], |r| r.get(0))?;
            Ok(id.map(|i| i.to_string()).unwrap_or_default())
        })
        .await
    }

    async fn audit_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, AuditEntry)>, StoreError> {
        let after = position(after)?;
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, at_ms, actor, actor_ip, action, target, reason FROM audit
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(4)?,
                    AuditEntry {
                        at_ms: row.get(1)?,
                        actor: row.get(2)?,
                        actor_ip: row.get(3)?,
                        action: Action::RevokeSession,
                        target: row.get(5)?,
                        reason: row.get(6)?,
                    },
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, action, mut entry) = row?;
                // An action this version does not know is passed over (its
                // position still counts).
                let Some(a) = Action::parse(&action) else {
                    continue;
                };
                entry.action = a;
                out.push((id.to_string(), entry));
            }
            Ok(out)
        })
        .await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let key = format!("cursor:{name}");
        self.with_reader(move |conn| {
            let v: Option<Vec<u8>> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned()))
        })
        .await
    }

    async fn set_cursor(&self, name: &str, position: &str) -> Result<(), StoreError> {
        let (key, value) = (format!("cursor:{name}"), position.as_bytes().to_vec());
        self.with_writer(move |conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
        .await
    }

    async fn lead(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = format!("lease:{name}");
        let holder = holder.to_string();
        let until = now_ms.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current: Option<Vec<u8>> = tx
                .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .optional()?;
            let free = match current.as_deref().map(String::from_utf8_lossy) {
                None => true,
                Some(v) => {
                    let (who, expiry) = v.rsplit_once('|').unwrap_or(("", "0"));
                    who == holder || expiry.parse::<i64>().unwrap_or(0) <= now_ms
                }
            };
            if free {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, format!("{holder}|{until}").into_bytes()],
                )?;
            }
            tx.commit()?;
            Ok(free)
        })
        .await
    }
}
