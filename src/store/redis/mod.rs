//! The cluster store: several gateways share one Redis.
//!
//! A revocation is one Lua script, so Redis runs it atomically: a key that
//! holds it (expiring with the revocation: see `revocation::Retention`), an entry in the
//! `revocations` stream that every gateway tails, and an entry in the
//! `audit` stream. The gateway acknowledges only after Redis answered; with
//! `appendonly yes` and `appendfsync always` Redis answers after the AOF is
//! fsynced, so nothing acknowledged is lost to `kill -9` of Redis.
//!
//! Every gateway follows the stream with a blocking `XREAD` on a connection
//! of its own, and loads the keys at start-up. When it comes back after the
//! stream was trimmed past its cursor (the oldest entry left is newer than
//! the cursor), it reloads everything from the keys.
//!
//! Keys (prefix `store.redis_prefix`, default `sessiongate:`):
//! `rev:s:<sid>`, `rev:u:<sub>` (JSON, EXAT expiry), `revocations` and
//! `audit` (streams), `sess:<sid>` (JSON, idle TTL), `usess:<sub>` (set of
//! session ids), `secret:<name>`.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncCommands, Script, Value};
use tokio::sync::{Mutex, OnceCell};

use super::SessionRecord;
use super::{AuditLog, Changes, Loaded, RevocationLog, Secrets, SessionMetadata, Sink, StoreError};
use crate::audit::AuditEntry;
use crate::revocation::{Revocation, SessionRevocation, UserCutoff};

mod codec;
mod delivery;
mod scripts;
use codec::*;
use scripts::{REVOKE_SESSION, REVOKE_USER, SAVE_SESSION};

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError(format!("redis: {e}"))
    }
}

/// Settings of the Redis store, from `[store]`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `store.redis_url`: a `redis://` or `rediss://` URL.
    pub url: String,
    /// PEM CA for `rediss://`; `None` uses the system and Mozilla roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// `store.redis_prefix`: prefix of every key.
    pub prefix: String,
    /// Approximate length the revocations stream is trimmed to.
    pub stream_maxlen: usize,
    /// Approximate length the audit stream is trimmed to.
    pub audit_maxlen: usize,
    /// How long session metadata is kept after its last write.
    pub session_ttl: Duration,
}

/// [`Store`](super::Store) on Redis.
pub struct RedisStore {
    client: redis::Client,
    settings: RedisSettings,
    commands: OnceCell<ConnectionManager>,
    /// A connection of its own for blocking `XREAD`, which would hold up
    /// every command queued behind it on a shared connection.
    follower: Mutex<Option<MultiplexedConnection>>,
    revoke_session: Script,
    revoke_user: Script,
    save_session: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `settings`; connects on first use (the gateway starts, and
    /// stays not-ready, while Redis is away).
    pub fn new(settings: RedisSettings) -> Result<RedisStore, StoreError> {
        let client = match &settings.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    StoreError(format!("store.redis_ca_file {}: {e}", path.display()))
                })?;
                redis::Client::build_with_tls(
                    settings.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            None => redis::Client::open(settings.url.as_str()),
        }
        .map_err(|e| StoreError(format!("store.redis_url: {e}")))?;
        Ok(RedisStore {
            client,
            settings,
            commands: OnceCell::new(),
            follower: Mutex::new(None),
            revoke_session: Script::new(REVOKE_SESSION),
            revoke_user: Script::new(REVOKE_USER),
            save_session: Script::new(SAVE_SESSION),
        })
    }

    /// Audit stream entries from `XRANGE`/`XREVRANGE` between `from` and
    /// `to`, at most `limit`, with their ids.
    async fn audit_range(
        &self,
        command: &str,
        from: &str,
        to: &str,
        limit: usize,
    ) -> Result<Vec<(String, AuditEntry)>, StoreError> {
        let mut conn = self.conn().await?;
        let v: Value = redis::cmd(command)
            .arg(self.key("audit"))
            .arg(from)
            .arg(to)
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let Value::Array(items) = v else {
            return Ok(Vec::new());
        };
        Ok(items
            .iter()
            .filter_map(entry_fields)
            .filter_map(|(id, f)| field(&f, "data").and_then(parse_audit).map(|a| (id, a)))
            .collect())
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{}", self.settings.prefix, rest)
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let c = self
            .commands
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(2));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(c.clone())
    }

    async fn follower_conn(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.follower.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(None);
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn drop_follower(&self) {
        *self.follower.lock().await = None;
    }

    /// Every key matching `pattern`, by SCAN.
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn().await?;
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let mut conn = self.conn().await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(1000) {
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(chunk).query_async(&mut conn).await?;
            out.extend(values);
        }
        Ok(out)
    }

    /// Id of the newest entry of a stream ("0-0" when empty).
    async fn last_id(&self, stream: &str) -> Result<String, StoreError> {
        let mut conn = self.conn().await?;
        let v: Value = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(match &v {
            Value::Array(items) => items
                .first()
                .and_then(entry_fields)
                .map(|(id, _)| id)
                .unwrap_or_else(|| "0-0".into()),
            _ => "0-0".into(),
        })
    }
}

/// True when the stream's oldest entry (`first`, from `XRANGE - + COUNT 1`)
/// is newer than `cursor`: entries after the cursor may have been trimmed.
/// Trimming keeps the newest `redis_stream_maxlen` entries, so a reader less
/// than that far behind always finds its cursor entry still there. A cursor
/// of `0-0` (the stream was empty at load) is never behind.
fn behind_trim(first: Option<&str>, cursor: &str) -> bool {
    match first {
        Some(f) if cursor != "0-0" => parse_id(f) > parse_id(cursor),
        _ => false,
    }
}

#[async_trait]
impl RevocationLog for RedisStore {
    async fn revoke_session(
        &self,
        r: SessionRevocation,
        audit: AuditEntry,
    ) -> Result<SessionRevocation, StoreError> {
        let mut conn = self.conn().await?;
        let data = session_json(&r)?;
        let audit_json = audit_json(&audit)?;
        let stored: String = self
            .revoke_session
            .key(self.key(&format!("rev:s:{}", r.session_id)))
            .key(self.key("revocations"))
            .key(self.key("audit"))
            .arg(&data)
            .arg(r.expires_at.max(r.revoked_at_ms.div_euclid(1000) + 1))
            .arg(&r.session_id)
            .arg(&audit_json)
            .arg(self.settings.stream_maxlen)
            .arg(self.settings.audit_maxlen)
            .invoke_async(&mut conn)
            .await?;
        parse_session(&r.session_id, &stored)
            .ok_or_else(|| StoreError("redis: unreadable revocation".into()))
    }

    async fn revoke_user(
        &self,
        c: UserCutoff,
        audit: AuditEntry,
    ) -> Result<UserCutoff, StoreError> {
        let mut conn = self.conn().await?;
        let data = cutoff_json(&c)?;
        let audit_json = audit_json(&audit)?;
        let stored: String = self
            .revoke_user
            .key(self.key(&format!("rev:u:{}", c.user_id)))
            .key(self.key("revocations"))
            .key(self.key("audit"))
            .arg(&data)
            .arg(c.expires_at.max(c.revoked_at_ms.div_euclid(1000) + 1))
            .arg(&c.user_id)
            .arg(&audit_json)
            .arg(self.settings.stream_maxlen)
            .arg(self.settings.audit_maxlen)
            .invoke_async(&mut conn)
            .await?;
        parse_cutoff(&c.user_id, &stored)
            .ok_or_else(|| StoreError("redis: unreadable cutoff".into()))
    }

    async fn load(&self, now_s: i64, sink: Sink) -> Result<Loaded, StoreError> {
        // The cursor first: anything written during the scan is replayed
        // from the stream (applying twice is harmless).
        let cursor = self.last_id(&self.key("revocations")).await?;
        let prefix_s = self.key("rev:s:");
        let prefix_u = self.key("rev:u:");
        let mut count = 0;
        for (prefix, is_user) in [(prefix_s, false), (prefix_u, true)] {
            let keys = self.scan(&format!("{prefix}*")).await?;
            let values = self.mget(&keys).await?;
            for (k, v) in keys.iter().zip(values) {
                let (Some(v), Some(target)) = (v, k.strip_prefix(&prefix)) else {
                    continue;
                };
                let r = if is_user {
                    parse_cutoff(target, &v).map(Revocation::User)
                } else {
                    parse_session(target, &v).map(Revocation::Session)
                };
                if let Some(r) = r.filter(|r| r.expires_at() > now_s) {
                    sink(r);
                    count += 1;
                }
            }
        }
        Ok(Loaded { count, cursor })
    }

    async fn changes_since(&self, cursor: &str, wait: Duration) -> Result<Changes, StoreError> {
        let mut conn = self.follower_conn().await?;
        let stream = self.key("revocations");
        // One round trip: the oldest entry (to detect a trimmed gap), then
        // a blocking read of what follows the cursor.
        let reply: Result<(Value, Value), redis::RedisError> = redis::pipe()
            .cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&stream)
            .arg(cursor)
            .query_async(&mut conn)
            .await;
        let (first, reply) = match reply {
            Ok(v) => v,
            Err(e) => {
                self.drop_follower().await;
                return Err(e.into());
            }
        };
        let first_id = match &first {
            Value::Array(items) => items.first().and_then(entry_fields).map(|(id, _)| id),
            _ => None,
        };
        if behind_trim(first_id.as_deref(), cursor) {
            return Ok(Changes {
                revocations: Vec::new(),
                cursor: cursor.to_string(),
                reload: true,
            });
        }
        let mut revocations = Vec::new();
        let mut last = cursor.to_string();
        // [[stream, [[id, [k, v, ...]], ...]]] (RESP2) or a map (RESP3).
        let streams: Vec<Value> = match reply {
            Value::Array(s) => s,
            Value::Map(m) => m
                .into_iter()
                .map(|(k, v)| Value::Array(vec![k, v]))
                .collect(),
            _ => Vec::new(),
        };
        for s in streams {
            let Value::Array(parts) = s else { continue };
            let Some(Value::Array(entries)) = parts.get(1) else {
                continue;
            };
            for e in entries {
                if let Some((id, fields)) = entry_fields(e) {
                    if let Some(r) = revocation_from_entry(&fields) {
                        revocations.push(r);
                    }
                    last = id;
                }
            }
        }
        Ok(Changes {
            revocations,
            cursor: last,
            reload: false,
        })
    }

    async fn recent_revocations(
        &self,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Revocation>, StoreError> {
        let mut conn = self.conn().await?;
        let v: Value = redis::cmd("XREVRANGE")
            .arg(self.key("revocations"))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        Ok(match v {
            Value::Array(items) => items
                .iter()
                .filter_map(entry_fields)
                .filter_map(|(_, f)| revocation_from_entry(&f))
                .filter(|r| r.expires_at() > now)
                .collect(),
            _ => Vec::new(),
        })
    }

    async fn purge_expired(&self, _now_s: i64) -> Result<usize, StoreError> {
        // Keys expire on their own (EXAT); the stream is trimmed by length.
        Ok(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

#[async_trait]
impl AuditLog for RedisStore {
    async fn append_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let json = audit_json(&entry)?;
        let _: String = redis::cmd("XADD")
            .arg(self.key("audit"))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.settings.audit_maxlen)
            .arg("*")
            .arg("data")
            .arg(json)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn audit(
        &self,
        limit: usize,
        since_ms: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let start = since_ms
            .map(|s| format!("{}", s.max(0)))
            .unwrap_or_else(|| "-".into());
        Ok(self
            .audit_range("XREVRANGE", "+", &start, limit)
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| since_ms.is_none_or(|s| a.at_ms >= s))
            .collect())
    }
}

#[async_trait]
impl SessionMetadata for RedisStore {
    async fn save_sessions(&self, sessions: Vec<SessionRecord>) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let ttl = self.settings.session_ttl.as_secs().max(1);
        let mut pipe = redis::pipe();
        for s in &sessions {
            let json = serde_json::to_string(s).map_err(|e| StoreError(e.to_string()))?;
            // EVALSHA in the one pipeline (the script is loaded first, below).
            pipe.cmd("EVALSHA")
                .arg(self.save_session.get_hash())
                .arg(1)
                .arg(self.key(&format!("sess:{}", s.session_id)))
                .arg(json)
                .arg(ttl)
                .ignore();
            if let Some(u) = &s.user_id {
                let set = self.key(&format!("usess:{u}"));
                pipe.cmd("SADD").arg(&set).arg(&s.session_id).ignore();
                pipe.cmd("EXPIRE").arg(&set).arg(ttl).ignore();
            }
        }
        // One round trip for the batch; the script is loaded (idempotent)
        // so that EVALSHA cannot miss it after a Redis restart.
        let _: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(SAVE_SESSION)
            .query_async(&mut conn)
            .await?;
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn load_sessions(&self, since_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let keys = self.scan(&format!("{}*", self.key("sess:"))).await?;
        let values = self.mget(&keys).await?;
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_str::<SessionRecord>(&v).ok())
            .filter(|s| s.last_seen_ms >= since_ms)
            .collect())
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let v: Option<String> = conn.get(self.key(&format!("sess:{session_id}"))).await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let set = self.key(&format!("usess:{user_id}"));
        let ids: Vec<String> = conn.smembers(&set).await?;
        let keys: Vec<String> = ids.iter().map(|s| self.key(&format!("sess:{s}"))).collect();
        let values = self.mget(&keys).await?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, v) in ids.into_iter().zip(values) {
            match v.and_then(|v| serde_json::from_str::<SessionRecord>(&v).ok()) {
                Some(r) => out.push(r),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let _: Result<(), _> = conn.srem(&set, gone).await;
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
        out.truncate(super::USER_SESSIONS_MAX);
        Ok(out)
    }

    async fn purge_sessions(&self, _before_ms: i64) -> Result<usize, StoreError> {
        // Session keys carry their own TTL.
        Ok(0)
    }
}

#[async_trait]
impl Secrets for RedisStore {
    async fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let mut conn = self.conn().await?;
        let key = self.key(&format!("secret:{name}"));
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
        let _: Value = redis::cmd("SET")
            .arg(&key)
            .arg(&fresh[..])
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let v: Vec<u8> = conn.get(&key).await?;
        v.try_into()
            .map_err(|_| StoreError(format!("redis {key}: not 32 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_behind_the_oldest_entry_must_reload() {
        assert!(behind_trim(Some("200-0"), "100-5"));
        assert!(!behind_trim(Some("100-5"), "100-5"));
        assert!(!behind_trim(Some("100-5"), "150-0"));
        assert!(!behind_trim(None, "100-0"));
        assert!(!behind_trim(Some("200-0"), "0-0"), "empty at load");
        assert!(parse_id("10-2") > parse_id("9-99"));
    }
}
