//! Writing session metadata to the store: changed sessions in batches, and
//! sessions idle past `sessions.idle_ttl_s` forgotten.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::SessionRegistry;
use crate::clock;
use crate::store::Store;

/// Writes changed session metadata to the store in batches, and forgets
/// sessions idle longer than `sessions.idle_ttl_s`.
pub struct SessionSync {
    /// Where the changed sessions come from.
    pub sessions: Arc<SessionRegistry>,
    /// Where they are written.
    pub store: Arc<dyn Store>,
    /// `sessions.persist_interval_s`.
    pub interval: Duration,
    /// `sessions.idle_ttl_s`, in milliseconds.
    pub idle_ttl_ms: i64,
    /// `sessions.purge_interval_s`.
    pub purge_interval: Duration,
}

impl SessionSync {
    async fn flush(&self) {
        let dirty = self.sessions.take_dirty();
        if dirty.is_empty() {
            return;
        }
        if let Err(e) = self.store.save_sessions(dirty.clone()).await {
            tracing::warn!(error = %e, sessions = dirty.len(), "cannot persist session metadata; will retry");
            self.sessions.retry_dirty(&dirty);
        }
    }
}

#[async_trait]
impl BackgroundService for SessionSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    self.flush().await;
                    return;
                }
                _ = tick.tick() => {}
            }
            self.flush().await;
            if last_purge.elapsed() >= self.purge_interval {
                last_purge = std::time::Instant::now();
                let now = clock::now_ms();
                self.sessions.purge(now);
                if let Err(e) = self.store.purge_sessions(now - self.idle_ttl_ms).await {
                    tracing::warn!(error = %e, "cannot purge idle sessions from the store");
                }
            }
        }
    }
}
