//! The audit trail as an outbox, on Redis: positions are the audit
//! stream's entry ids; cursors are keys; the lease is a key set with NX
//! (or renewed by its holder), so one gateway of a cluster delivers.

use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::audit::AuditEntry;
use crate::store::{Delivery, StoreError};

/// Takes the lease when free, renews it for its holder.
const LEAD: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

#[async_trait]
impl Delivery for RedisStore {
    async fn audit_head(&self) -> Result<String, StoreError> {
        Ok(self
            .audit_range("XREVRANGE", "+", "-", 1)
            .await?
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .unwrap_or_default())
    }

    async fn audit_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, AuditEntry)>, StoreError> {
        let from = if after.is_empty() {
            "-".to_string()
        } else {
            format!("({after}")
        };
        self.audit_range("XRANGE", &from, "+", limit).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(conn.get(self.key(&format!("cursor:{name}"))).await?)
    }

    async fn set_cursor(&self, name: &str, position: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let _: () = conn
            .set(self.key(&format!("cursor:{name}")), position)
            .await?;
        Ok(())
    }

    async fn lead(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        _now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let held: i64 = Script::new(LEAD)
            .key(self.key(&format!("lease:{name}")))
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }
}
