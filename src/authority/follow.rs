//! The background services that keep this process's revocation state in
//! step with the store: [`StateSync`] loads it at start-up and follows the
//! change log (revocations other processes write), [`Purge`] drops
//! revocations past their expiry; [`Readiness`] says when the state is
//! loaded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;

use super::Authority;
use crate::clock;
use crate::metrics::Metrics;
use crate::sessions::SessionRegistry;
use crate::store::Health;

/// How long one read of the store's change log waits for revocations
/// written by another process (Redis blocks; SQLite polls every 50 ms).
pub const FOLLOW_WAIT: Duration = Duration::from_secs(1);
/// Longest pause between attempts to reach an unreachable store.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Pause between attempts to load the store at start-up.
const LOAD_RETRY: Duration = Duration::from_millis(500);

/// Whether the gateway has loaded its revocation state.
#[derive(Debug, Default)]
pub struct Readiness {
    loaded: AtomicBool,
    /// Services still starting that `/readyz` waits for (a webhook's
    /// cursor: events before it would not be sent).
    starting: std::sync::atomic::AtomicUsize,
}

impl Readiness {
    /// One more service `/readyz` waits for.
    pub fn hold(&self) {
        self.starting.fetch_add(1, Ordering::AcqRel);
    }

    /// That service has started.
    pub fn release(&self) {
        self.starting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Marks the revocation state loaded: `/readyz` may answer 200.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// The revocation state has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire) && self.starting.load(Ordering::Acquire) == 0
    }
}

/// Loads the store into memory (the proxy waits for this), then follows the
/// store's change log for revocations written by other processes.
pub struct StateSync {
    /// Applies what is read.
    pub authority: Arc<Authority>,
    /// Filled with the stored session metadata at start-up.
    pub sessions: Arc<SessionRegistry>,
    /// Sessions idle longer than this are not loaded.
    pub idle_ttl_ms: i64,
    /// Set once the revocation state is loaded.
    pub readiness: Arc<Readiness>,
    /// Told each time the store answers.
    pub health: Arc<Health>,
    /// Store errors are counted here.
    pub metrics: Arc<Metrics>,
}

impl StateSync {
    /// Loads every revocation in force; answers the change-log cursor.
    async fn load_all(&self, shutdown: &mut ShutdownWatch) -> Option<String> {
        let store = self.authority.store().clone();
        let started = std::time::Instant::now();
        let mut backoff = LOAD_RETRY;
        loop {
            let authority = self.authority.clone();
            let sink: crate::store::Sink = Arc::new(move |r| {
                authority.apply_one(&r);
            });
            match store.load(clock::now_s(), sink).await {
                Ok(loaded) => {
                    self.authority.refresh_gauges();
                    self.health.contact(clock::now_ms());
                    tracing::info!(
                        revocations = loaded.count,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "revocation state loaded"
                    );
                    return Some(loaded.cursor);
                }
                Err(e) => {
                    self.metrics.store_errors.inc();
                    tracing::error!(error = %e, "cannot load revocations; retrying");
                    tokio::select! {
                        _ = shutdown.changed() => return None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for StateSync {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let store = self.authority.store().clone();
        let Some(mut cursor) = self.load_all(&mut shutdown).await else {
            return;
        };
        // Session metadata is for pages and new-location checks, not for
        // enforcement: a failure here is logged, not fatal.
        match store
            .load_sessions(clock::now_ms() - self.idle_ttl_ms)
            .await
        {
            Ok(records) => {
                let n = records.len();
                self.sessions.load(records);
                tracing::info!(sessions = n, "session registry loaded");
            }
            Err(e) => tracing::warn!(error = %e, "cannot load session metadata"),
        }
        self.readiness.set_loaded();
        ready.notify_ready();

        let mut backoff = Duration::from_millis(50);
        let mut failing = false;
        loop {
            let read = tokio::select! {
                _ = shutdown.changed() => return,
                read = store.changes_since(&cursor, FOLLOW_WAIT) => read,
            };
            match read {
                Ok(changes) if changes.reload => {
                    tracing::warn!(
                        "the change log was trimmed past this gateway's position; reloading"
                    );
                    match self.load_all(&mut shutdown).await {
                        Some(c) => cursor = c,
                        None => return,
                    }
                }
                Ok(changes) => {
                    self.health.contact(clock::now_ms());
                    if failing {
                        tracing::info!("store reachable again; following the change log");
                        failing = false;
                        backoff = Duration::from_millis(50);
                    }
                    self.authority.apply_changes(&changes.revocations);
                    cursor = changes.cursor;
                }
                Err(e) => {
                    self.metrics.store_errors.inc();
                    if !failing {
                        tracing::error!(error = %e, "cannot read the store's change log; enforcing from memory");
                        failing = true;
                    }
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Drops expired revocations from memory and from the store.
pub struct Purge {
    /// Drops them from memory and the store.
    pub authority: Arc<Authority>,
    /// `store.purge_interval_s`.
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for Purge {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            match self.authority.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired revocations purged"),
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
        }
    }
}
