//! What the proxy does with a sighting of an allowed request: the audit
//! entries it produced, a suspicious session (revoked at once with
//! `sessions.on_suspicious = "revoke"`), the session limit, and the rule
//! decided after the sighting (an unconfirmed new location).

use std::sync::Arc;

use pingora::prelude::*;
use pingora::proxy::Session;

use super::{Proxy, RequestCtx, X_SESSIONGATE_DECISION};
use crate::enforcement::{Decision, Refusal};
use crate::sessions::Observation;
use crate::token::VerifiedToken;

impl Proxy {
    /// Acts on `seen`; true when the request was answered (refused).
    pub(super) async fn act_on_sighting(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        token: &Arc<VerifiedToken>,
        seen: Observation,
    ) -> Result<bool> {
        for entry in [seen.new_location, seen.created].into_iter().flatten() {
            self.self_service.authority().record_later(entry);
        }
        if let Some((_, entry)) = seen.suspicious {
            let authority = self.self_service.authority();
            if self.enforcer.revokes_suspicious() {
                // This connection is not closed by its own revocation: it
                // gets the refusal.
                self.detach(ctx.conn.as_deref());
                let refusal = match authority
                    .suspicious(entry, &token.session_id, token.exp, true)
                    .await
                {
                    Ok(Some(r)) => Refusal::Revoked(crate::revocation::Revoked {
                        revoked_at_ms: r.revoked_at_ms,
                        reason: r.reason.as_str().into(),
                    }),
                    // Not durable: fail closed.
                    _ => Refusal::StoreUnavailable,
                };
                ctx.outcome = refusal.outcome();
                self.refuse(session, &refusal).await?;
                return Ok(true);
            }
            let authority = authority.clone();
            let sid = token.session_id.clone();
            tokio::spawn(async move {
                if let Err(e) = authority.suspicious(entry, &sid, None, false).await {
                    tracing::warn!(error = %e, "cannot record a suspicious session");
                }
            });
        }
        if let (true, Some(max), Some(user)) = (seen.first_seen, self.max_per_user, &token.user_id)
        {
            self.self_service.authority().limit_sessions_later(
                user.clone(),
                token.session_id.clone(),
                self.sessions.for_user(user),
                max,
            );
        }
        if let Some(verdict) = self.enforcer.after_sighting(seen.unconfirmed_new_location) {
            ctx.outcome = verdict.outcome();
            if let Some(label) = verdict.monitor_label {
                session
                    .req_header_mut()
                    .insert_header(X_SESSIONGATE_DECISION, label)?;
            }
            if let Decision::Refuse(r) = verdict.decision {
                self.refuse(session, &r).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}
