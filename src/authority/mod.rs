//! The revocation authority: the one path by which a revocation becomes
//! durable, enforced and audited, whoever asked (admin API, self-service).
//!
//! Order matters: the store first (nothing is acknowledged before it is
//! durable), then the in-memory set (so the very next request is refused),
//! then the log line. If the store fails, nothing in memory changes.

pub mod follow;

use std::sync::Arc;
use std::time::Instant;

use crate::audit::{Action, AuditEntry};
use crate::clock;
use crate::closer::ConnectionRegistry;
use crate::metrics::{Metrics, RevocationKind};
use crate::revocation::{Retention, Revocation, RevocationSet, SessionRevocation, UserCutoff};
use crate::sessions::SessionInfo;
use crate::store::{Store, StoreError};

/// The audit reason of a session revoked by `sessions.max_per_user`.
pub const SESSION_LIMIT_REASON: &str = "session_limit";
pub use follow::Readiness;

/// Who asks for a revocation, for the audit trail.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `admin`, or `user:<sub>` for self-service.
    pub name: String,
    /// Client address of the request, when known.
    pub ip: Option<String>,
}

impl Actor {
    /// The holder of the admin token (`admin`), calling from `ip`.
    pub fn admin(ip: Option<String>) -> Actor {
        Actor {
            name: "admin".into(),
            ip,
        }
    }

    /// User `sub` acting on their own sessions (`user:<sub>`), from `ip`.
    /// `sessiongate import`, a bulk revocation from a file.
    pub fn import() -> Actor {
        Actor {
            name: "import".into(),
            ip: None,
        }
    }

    /// The user `sub` acting on their own sessions (self-service).
    pub fn user(sub: &str, ip: Option<String>) -> Actor {
        Actor {
            name: format!("user:{sub}"),
            ip,
        }
    }

    /// The gateway itself (`gateway`): a session limit, a theft signal.
    pub fn gateway() -> Actor {
        Actor {
            name: "gateway".into(),
            ip: None,
        }
    }

    /// An identity provider (`idp:<iss>`, back-channel logout) or a Shared
    /// Signals transmitter (`ssf:<iss>`): `kind` is `idp` or `ssf`.
    pub fn issuer(kind: &str, iss: &str, ip: Option<String>) -> Actor {
        Actor {
            name: format!("{kind}:{iss}"),
            ip,
        }
    }
}

/// Takes and applies revocations: written to the store first, then to the
/// in-memory set and the open connections, then to the audit log.
pub struct Authority {
    store: Arc<dyn Store>,
    revocations: Arc<RevocationSet>,
    metrics: Arc<Metrics>,
    connections: Arc<ConnectionRegistry>,
    retention: Retention,
    clock: clock::Clock,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// An authority writing to `store` and `revocations`, closing
    /// connections in `connections`; `retention` sets how long each
    /// revocation is kept.
    pub fn new(
        store: Arc<dyn Store>,
        revocations: Arc<RevocationSet>,
        metrics: Arc<Metrics>,
        connections: Arc<ConnectionRegistry>,
        retention: Retention,
    ) -> Authority {
        Authority {
            store,
            revocations,
            metrics,
            connections,
            retention,
            clock: clock::Clock::system(),
        }
    }

    /// The same authority reading the time from `clock` (tests).
    pub fn with_clock(mut self, clock: clock::Clock) -> Authority {
        self.clock = clock;
        self
    }

    /// The time this authority writes into what it decides.
    pub fn clock(&self) -> &clock::Clock {
        &self.clock
    }

    /// An authority for a command that writes to the store without a
    /// running gateway (`sessiongate import`): its in-memory set, metrics
    /// and connections are its own, the rules the same.
    pub fn offline(store: Arc<dyn Store>, retention: Retention) -> Result<Authority, StoreError> {
        let metrics = Arc::new(
            Metrics::new(prometheus::Registry::new()).map_err(|e| StoreError(e.to_string()))?,
        );
        let connections = Arc::new(ConnectionRegistry::new(metrics.clone()));
        Ok(Authority::new(
            store,
            Arc::new(RevocationSet::new()),
            metrics,
            connections,
            retention,
        ))
    }

    /// The durable store revocations are written to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The in-memory revocation set requests are checked against.
    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    fn store_failed(&self, e: StoreError) -> StoreError {
        self.metrics.store_errors.inc();
        tracing::error!(error = %e, "store write failed; revocation not acknowledged");
        e
    }

    /// Revokes one session. `exp` is the expiry of the token last seen for
    /// it, when known (see [`Retention`]). Answers the revocation in force
    /// once it is durable and enforced.
    pub async fn revoke_session(
        &self,
        session_id: &str,
        exp: Option<i64>,
        reason: &str,
        actor: &Actor,
    ) -> Result<SessionRevocation, StoreError> {
        let (revocation, audit) =
            self.session_revocation(session_id, exp, reason, actor, self.clock.now_ms());
        let in_force = self
            .store
            .revoke_session(revocation, audit.clone())
            .await
            .map_err(|e| self.store_failed(e))?;
        self.revocations.apply_session(&in_force);
        self.connections.close_session(session_id, Instant::now());
        self.metrics.count_revocation(RevocationKind::Session);
        self.refresh_gauges();
        audit.log();
        Ok(in_force)
    }

    /// A session revocation and its audit entry, as every path that revokes
    /// a session writes them: one expiry rule ([`Retention`]), one audit
    /// policy (every request is audited, new or already in force).
    fn session_revocation(
        &self,
        session_id: &str,
        exp: Option<i64>,
        reason: &str,
        actor: &Actor,
        now_ms: i64,
    ) -> (SessionRevocation, AuditEntry) {
        (
            SessionRevocation {
                session_id: session_id.to_string(),
                revoked_at_ms: now_ms,
                expires_at: self.retention.session_until(now_ms.div_euclid(1000), exp),
                reason: reason.to_string(),
                actor: actor.name.clone(),
            },
            AuditEntry {
                at_ms: now_ms,
                actor: actor.name.clone(),
                actor_ip: actor.ip.clone(),
                action: Action::RevokeSession,
                target: format!("session:{session_id}"),
                reason: reason.to_string(),
            },
        )
    }

    /// Records an action that revokes nothing (a new location, a
    /// confirmation) in the audit trail, durably, and logs it.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.store
            .append_audit(entry.clone())
            .await
            .map_err(|e| self.store_failed(e))?;
        entry.log();
        Ok(())
    }

    /// Confirms a session's new location: the stored record marked
    /// confirmed unless `marked_live` (this gateway's registry holds the
    /// session and marked it; its sync writes it), then audited with
    /// `actor`. `Ok(false)`: no such session is stored.
    pub async fn confirm_location(
        &self,
        session_id: &str,
        marked_live: bool,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if !marked_live {
            let fail = |e| self.store_failed(e);
            let Some(mut stored) = self.store.session(session_id).await.map_err(fail)? else {
                return Ok(false);
            };
            stored.confirmed = true;
            self.store.save_sessions(vec![stored]).await.map_err(fail)?;
        }
        self.record(AuditEntry {
            at_ms: now_ms,
            actor: actor.name.clone(),
            actor_ip: actor.ip.clone(),
            action: Action::ConfirmLocation,
            target: format!("session:{session_id}"),
            reason: String::new(),
        })
        .await?;
        Ok(true)
    }

    /// A user's sessions as the cluster knows them: stored and live here
    /// (`live`), merged, revoked ones left out, newest `last_seen` first.
    pub async fn sessions_in_force(
        &self,
        user: &str,
        live: Vec<SessionInfo>,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let stored = self
            .store
            .user_sessions(user)
            .await
            .map_err(|e| self.store_failed(e))?;
        Ok(crate::sessions::merge(stored, live)
            .into_iter()
            .filter(|s| s.user_id.as_deref() == Some(user))
            .filter(|s| {
                self.revocations
                    .check(&s.session_id, Some(user), s.iat)
                    .is_none()
            })
            .collect())
    }

    /// `sessions.max_per_user`, once `new_session` of `user` has appeared:
    /// the sessions past `max` seen least recently (never the new one) are
    /// revoked, actor `gateway`, reason `session_limit`. Off the request
    /// path; the count is the cluster's (the store's sessions and this
    /// gateway's).
    pub fn limit_sessions_later(
        self: &Arc<Self>,
        user: String,
        new_session: String,
        live: Vec<SessionInfo>,
        max: usize,
    ) {
        let authority = self.clone();
        tokio::spawn(async move {
            let sessions = match authority.sessions_in_force(&user, live).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, user = %user, "cannot count the user's sessions");
                    return;
                }
            };
            let mut others: Vec<&SessionInfo> = sessions
                .iter()
                .filter(|s| s.session_id != new_session)
                .collect();
            // Newest first: those after the first max - 1 go.
            others.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
            let actor = Actor::gateway();
            for old in others.iter().skip(max.saturating_sub(1)) {
                if let Err(e) = authority
                    .revoke_session(&old.session_id, old.exp, SESSION_LIMIT_REASON, &actor)
                    .await
                {
                    tracing::warn!(error = %e, session = %old.session_id, "cannot revoke a session over the limit");
                }
            }
        });
    }

    /// A session just marked suspicious: the mark audited (its webhook
    /// event), and with `revoke` the session revoked, durably, before the
    /// answer (the request that marked it is refused with it).
    pub async fn suspicious(
        &self,
        entry: AuditEntry,
        session_id: &str,
        exp: Option<i64>,
        revoke: bool,
    ) -> Result<Option<SessionRevocation>, StoreError> {
        let reason = entry.reason.clone();
        self.record(entry).await?;
        if !revoke {
            return Ok(None);
        }
        self.revoke_session(session_id, exp, &reason, &Actor::gateway())
            .await
            .map(Some)
    }

    /// [`Authority::record`] off the request path: the request does not
    /// wait for the store, a failure is logged and counted.
    pub fn record_later(self: &Arc<Self>, entry: AuditEntry) {
        let authority = self.clone();
        tokio::spawn(async move {
            if let Err(e) = authority.record(entry).await {
                tracing::warn!(error = %e, "cannot write an audit entry");
            }
        });
    }

    /// Revokes many sessions at once (`sessiongate import`), in one store
    /// transaction where the store can; answers how many were new. Each is
    /// built and audited exactly as [`Authority::revoke_session`] does.
    pub async fn import_sessions(
        &self,
        session_ids: &[String],
        reason: &str,
        actor: &Actor,
    ) -> Result<usize, StoreError> {
        let now_ms = self.clock.now_ms();
        let batch: Vec<_> = session_ids
            .iter()
            .map(|id| self.session_revocation(id, None, reason, actor, now_ms))
            .collect();
        let applied: Vec<SessionRevocation> = batch.iter().map(|(r, _)| r.clone()).collect();
        let new = self
            .store
            .import_sessions(batch)
            .await
            .map_err(|e| self.store_failed(e))?;
        for r in &applied {
            if self.revocations.apply_session(r) {
                self.connections
                    .close_session(&r.session_id, Instant::now());
            }
        }
        self.metrics
            .count_revocations(RevocationKind::Session, new as u64);
        self.refresh_gauges();
        Ok(new)
    }

    /// Revokes every session of `user_id` issued before now, except
    /// `except`. The cutoff is floor(now)+1 s, so a token minted in the same
    /// second is refused too.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: &str,
        actor: &Actor,
    ) -> Result<UserCutoff, StoreError> {
        self.revoke_user_issued_before(user_id, except, None, reason, actor)
            .await
    }

    /// [`Authority::revoke_user`] for an event that happened at `at_s`
    /// (UNIX seconds; a Shared Signals `event_timestamp`): tokens issued
    /// before it are cut off, never later than now. `None`: now.
    pub async fn revoke_user_issued_before(
        &self,
        user_id: &str,
        except: Option<&str>,
        at_s: Option<i64>,
        reason: &str,
        actor: &Actor,
    ) -> Result<UserCutoff, StoreError> {
        let now_ms = self.clock.now_ms();
        let now_s = now_ms.div_euclid(1000);
        let not_before = at_s.map_or(now_s, |at| at.min(now_s)) + 1;
        let cutoff = UserCutoff {
            user_id: user_id.to_string(),
            not_before,
            except: except.map(str::to_string),
            revoked_at_ms: now_ms,
            expires_at: self.retention.cutoff_until(not_before),
            reason: reason.to_string(),
            actor: actor.name.clone(),
        };
        let audit = AuditEntry {
            at_ms: now_ms,
            actor: actor.name.clone(),
            actor_ip: actor.ip.clone(),
            action: Action::RevokeUser,
            target: format!("user:{user_id}"),
            reason: reason.to_string(),
        };
        let in_force = self
            .store
            .revoke_user(cutoff, audit.clone())
            .await
            .map_err(|e| self.store_failed(e))?;
        if self.revocations.apply_cutoff(&in_force) {
            self.close_cutoff(&in_force);
        }
        self.metrics.count_revocation(RevocationKind::User);
        self.refresh_gauges();
        audit.log();
        Ok(in_force)
    }

    fn close_cutoff(&self, c: &UserCutoff) {
        self.connections.close_user(
            &c.user_id,
            c.not_before,
            c.except.as_deref(),
            Instant::now(),
        );
    }

    /// Applies one revocation read from the store and closes the
    /// connections it ends; the gauges are left for the caller to refresh.
    pub fn apply_one(&self, r: &Revocation) -> bool {
        if !self.revocations.apply(r) {
            return false;
        }
        match r {
            Revocation::Session(s) => {
                self.connections
                    .close_session(&s.session_id, Instant::now());
            }
            Revocation::User(u) => self.close_cutoff(u),
        }
        true
    }

    /// Applies revocations read from the store's change log and closes the
    /// connections they end. Those that were new here (another process
    /// wrote them; this process's own come back already applied) count in
    /// `sessiongate_revocation_propagation_seconds`. Answers how many.
    pub fn apply_changes(&self, revocations: &[Revocation]) -> usize {
        let now = self.clock.now_ms();
        let mut changed = 0;
        for r in revocations {
            if self.apply_one(r) {
                changed += 1;
                self.metrics
                    .revocation_propagation_seconds
                    .observe((now - r.revoked_at_ms()).max(0) as f64 / 1000.0);
            }
        }
        if changed > 0 {
            self.refresh_gauges();
        }
        changed
    }

    /// Drops expired revocations from memory and from the store.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_s();
        let in_memory = self.revocations.purge_expired(now);
        self.refresh_gauges();
        let stored = self
            .store
            .purge_expired(now)
            .await
            .map_err(|e| self.store_failed(e))?;
        Ok(in_memory.max(stored))
    }

    /// Sets the revoked-sessions and user-cutoffs gauges from the in-memory set.
    pub fn refresh_gauges(&self) {
        self.metrics
            .revoked_sessions
            .set(self.revocations.revoked_sessions() as i64);
        self.metrics
            .user_cutoffs
            .set(self.revocations.user_cutoffs() as i64);
    }
}
