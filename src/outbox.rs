//! Webhook events delivered from the audit trail (the outbox). The
//! delivery loop of one webhook: it holds the store's lease (one
//! gateway of a cluster delivers), reads the audit trail after its durable
//! cursor, POSTs each event it subscribes to, and moves the cursor only
//! once the receiver answered 2xx (at least once). A failed delivery is
//! retried with backoff, 1 s doubling to 1 h, until the event is 24 h old;
//! then it is dropped and counted. Events go in order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use serde_json::{json, Value};

use crate::audit::AuditEntry;
use crate::clock;
use crate::idp::keys::http_client;
use crate::metrics::Metrics;
use crate::sessions::Device;
use crate::store::SessionRecord;
use crate::store::{Store, StoreError};
use crate::webhooks::{event_id, signature, EventType, WebhookConfig};

/// First retry after a failed delivery.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between retries.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Age past which an undelivered event is dropped.
const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;
/// How long the lease lasts unless renewed.
const LEASE: Duration = Duration::from_secs(10);
/// How often the trail is read when there is nothing to send.
const POLL: Duration = Duration::from_millis(250);
/// Entries read at once.
const BATCH: usize = 100;
/// Time one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers one webhook's events.
pub struct Deliverer {
    /// The webhook.
    pub config: WebhookConfig,
    /// The trail, the cursor, the lease and session metadata.
    pub store: Arc<dyn Store>,
    /// Sessions in memory (fresher than the store's metadata).
    pub sessions: Arc<crate::sessions::SessionRegistry>,
    /// `sessiongate_webhook_deliveries_total`, `sessiongate_webhook_queue`.
    pub metrics: Arc<Metrics>,
    /// This process, as the lease's holder.
    pub holder: String,
    /// Held (by the gateway, before start) until the cursor exists:
    /// `/readyz` waits for it, so no event of a ready gateway goes unsent.
    pub readiness: Arc<crate::authority::Readiness>,
}

enum Sent {
    Delivered,
    Dropped,
    /// Shutdown, or the lease went to another gateway.
    Stopped,
}

impl Deliverer {
    fn name(&self) -> String {
        // The URL names the webhook so that editing the list does not hand
        // one webhook's cursor to another.
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.config.url.as_bytes());
        format!("webhook:{}", hex::encode(&d.as_ref()[..8]))
    }

    async fn lead(&self) -> bool {
        match self
            .store
            .lead(&self.name(), &self.holder, LEASE, clock::now_ms())
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(webhook = %self.config.url, error = %e, "cannot take the delivery lease");
                false
            }
        }
    }

    /// The cursor, set at the trail's head the first time (a new webhook
    /// gets events from now on, not the whole history).
    async fn start_cursor(&self) -> Result<String, StoreError> {
        if let Some(c) = self.store.cursor(&self.name()).await? {
            return Ok(c);
        }
        let head = self.store.audit_head().await?;
        self.store.set_cursor(&self.name(), &head).await?;
        Ok(head)
    }

    async fn post(&self, client: &reqwest::Client, id: &str, payload: &[u8]) -> Result<(), String> {
        let t = clock::now_ms().div_euclid(1000);
        let resp = client
            .post(&self.config.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("X-Sessiongate-Event-Id", id)
            .header(
                "X-Sessiongate-Signature",
                signature(&self.config.secret, t, payload),
            )
            .body(payload.to_vec())
            .timeout(POST_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", resp.status()))
        }
    }

    /// Sends one event until it is delivered, too old, or this gateway
    /// stops delivering.
    async fn send(
        &self,
        client: &reqwest::Client,
        id: &str,
        at_ms: i64,
        payload: &[u8],
        shutdown: &mut ShutdownWatch,
    ) -> Sent {
        let mut retry = FIRST_RETRY;
        loop {
            match self.post(client, id, payload).await {
                Ok(()) => {
                    self.count("delivered");
                    return Sent::Delivered;
                }
                Err(e) => {
                    self.count("failed");
                    tracing::warn!(webhook = %self.config.url, event = id, error = %e, retry_in = ?retry, "webhook not delivered");
                }
            }
            if clock::now_ms() - at_ms > GIVE_UP_AFTER_MS {
                self.count("dropped");
                tracing::error!(webhook = %self.config.url, event = id, "webhook event dropped after 24 h of failures");
                return Sent::Dropped;
            }
            // Wait, keeping the lease: at most a third of it at a time.
            let until = tokio::time::Instant::now() + retry;
            while tokio::time::Instant::now() < until {
                let step = (until - tokio::time::Instant::now()).min(LEASE / 3);
                tokio::select! {
                    _ = shutdown.changed() => return Sent::Stopped,
                    _ = tokio::time::sleep(step) => {}
                }
                if !self.lead().await {
                    return Sent::Stopped;
                }
            }
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    fn count(&self, result: &str) {
        self.metrics
            .webhook_deliveries
            .with_label_values(&[result])
            .inc();
    }

    /// One pass: the entries after the cursor, each sent or passed over,
    /// the cursor moved after each. False when delivery should pause.
    async fn pass(
        &self,
        client: &reqwest::Client,
        cursor: &mut String,
        shutdown: &mut ShutdownWatch,
    ) -> Result<bool, StoreError> {
        let batch = self.store.audit_after(cursor, BATCH).await?;
        self.metrics.webhook_queue.set(batch.len() as i64);
        if batch.is_empty() {
            return Ok(false);
        }
        for (position, entry) in batch {
            if let Some(kind) =
                EventType::of(entry.action).filter(|k| self.config.events.contains(k))
            {
                let session = match entry.target.strip_prefix("session:") {
                    Some(sid) => match self.sessions.get(sid) {
                        Some(live) => Some(live.record),
                        None => self.store.session(sid).await.ok().flatten(),
                    },
                    None => None,
                };
                let id = event_id(&position, &entry, kind);
                let payload = body(&id, kind, &entry, session.as_ref()).to_string();
                match self
                    .send(client, &id, entry.at_ms, payload.as_bytes(), shutdown)
                    .await
                {
                    Sent::Delivered | Sent::Dropped => {}
                    Sent::Stopped => return Ok(false),
                }
            }
            self.store.set_cursor(&self.name(), &position).await?;
            *cursor = position;
        }
        Ok(true)
    }
}

#[async_trait]
impl BackgroundService for Deliverer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let client = match http_client(self.config.ca_file.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(webhook = %self.config.url, error = %e, "webhook disabled");
                return;
            }
        };
        // The cursor first, on every gateway (the first one puts it at the
        // trail's head); then `/readyz` may say ready.
        loop {
            match self.start_cursor().await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(webhook = %self.config.url, error = %e, "cannot read the delivery cursor");
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(FIRST_RETRY) => {}
                    }
                }
            }
        }
        self.readiness.release();
        let mut cursor: Option<String> = None;
        loop {
            let busy = if self.lead().await {
                match &mut cursor {
                    None => match self.start_cursor().await {
                        Ok(c) => {
                            cursor = Some(c);
                            true
                        }
                        Err(e) => {
                            tracing::warn!(webhook = %self.config.url, error = %e, "cannot read the delivery cursor");
                            false
                        }
                    },
                    Some(c) => match self.pass(&client, c, &mut shutdown).await {
                        Ok(more) => more,
                        Err(e) => {
                            tracing::warn!(webhook = %self.config.url, error = %e, "cannot read the audit trail");
                            false
                        }
                    },
                }
            } else {
                // Another gateway delivers; re-read the cursor when this
                // one takes over.
                cursor = None;
                false
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// The JSON body of an event: `id`, `type`, `time`, `session_id`,
/// `user_id`, `actor`, `reason`, `ip`, `geo`, `device` (absent values
/// `null`). `session`: the session's stored metadata, when known.
pub fn body(
    id: &str,
    kind: EventType,
    entry: &AuditEntry,
    session: Option<&SessionRecord>,
) -> Value {
    let (session_id, mut user_id) = match entry.target.split_once(':') {
        Some(("session", sid)) => (Some(sid.to_string()), None),
        Some(("user", uid)) => (None, Some(uid.to_string())),
        _ => (None, None),
    };
    if user_id.is_none() {
        user_id = session.and_then(|s| s.user_id.clone());
    }
    let geo = session
        .filter(|s| s.country.is_some() || s.city.is_some() || s.latitude.is_some())
        .map(|s| json!({"country": s.country, "city": s.city, "latitude": s.latitude, "longitude": s.longitude}));
    let device = session.map(|s| {
        let d = Device::parse(&s.user_agent);
        json!({"browser": d.browser, "os": d.os, "kind": d.kind, "user_agent": d.user_agent})
    });
    json!({
        "id": id,
        "type": kind.name(),
        "time": clock::rfc3339_ms(entry.at_ms),
        "session_id": session_id,
        "user_id": user_id,
        "actor": entry.actor,
        "reason": (!entry.reason.is_empty()).then_some(&entry.reason),
        "ip": session.map(|s| s.ip.clone()).or_else(|| entry.actor_ip.clone()),
        "geo": geo,
        "device": device,
    })
}
