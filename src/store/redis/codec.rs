//! How revocations, cutoffs, audit entries and stream entries are written
//! in Redis (JSON values and stream fields), and read back.

use redis::Value;
use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;
use crate::revocation::{Revocation, SessionRevocation, UserCutoff};
use crate::store::StoreError;

#[derive(Serialize, Deserialize)]
pub(super) struct StoredSession {
    pub(super) revoked_at_ms: i64,
    pub(super) expires_at: i64,
    pub(super) reason: String,
    pub(super) actor: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredCutoff {
    pub(super) not_before: i64,
    pub(super) except: Option<String>,
    pub(super) revoked_at_ms: i64,
    pub(super) expires_at: i64,
    pub(super) reason: String,
    pub(super) actor: String,
}

pub(super) fn session_key_of(r: &SessionRevocation) -> StoredSession {
    StoredSession {
        revoked_at_ms: r.revoked_at_ms,
        expires_at: r.expires_at,
        reason: r.reason.clone(),
        actor: r.actor.clone(),
    }
}

pub(super) fn parse_session(sid: &str, json: &str) -> Option<SessionRevocation> {
    let s: StoredSession = serde_json::from_str(json).ok()?;
    Some(SessionRevocation {
        session_id: sid.to_string(),
        revoked_at_ms: s.revoked_at_ms,
        expires_at: s.expires_at,
        reason: s.reason,
        actor: s.actor,
    })
}

pub(super) fn parse_cutoff(user: &str, json: &str) -> Option<UserCutoff> {
    let c: StoredCutoff = serde_json::from_str(json).ok()?;
    Some(UserCutoff {
        user_id: user.to_string(),
        not_before: c.not_before,
        except: c.except,
        revoked_at_ms: c.revoked_at_ms,
        expires_at: c.expires_at,
        reason: c.reason,
        actor: c.actor,
    })
}

/// `ms-seq` stream ids compare as pairs of integers.
pub(super) fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Fields of one stream entry.
pub(super) fn entry_fields(v: &Value) -> Option<(String, Vec<(String, String)>)> {
    let Value::Array(parts) = v else { return None };
    let id = redis::from_redis_value_ref::<String>(parts.first()?).ok()?;
    let Value::Array(kv) = parts.get(1)? else {
        return None;
    };
    let mut fields = Vec::new();
    for pair in kv.chunks(2) {
        if let [k, v] = pair {
            fields.push((
                redis::from_redis_value_ref::<String>(k).ok()?,
                redis::from_redis_value_ref::<String>(v).ok()?,
            ));
        }
    }
    Some((id, fields))
}

pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn revocation_from_entry(fields: &[(String, String)]) -> Option<Revocation> {
    let target = field(fields, "target")?;
    let data = field(fields, "data")?;
    match field(fields, "kind")? {
        "session" => parse_session(target, data).map(Revocation::Session),
        "user" => parse_cutoff(target, data).map(Revocation::User),
        _ => None,
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredAudit {
    pub(super) at_ms: i64,
    pub(super) actor: String,
    pub(super) actor_ip: Option<String>,
    pub(super) action: crate::audit::Action,
    pub(super) target: String,
    pub(super) reason: String,
}

pub(super) fn audit_json(a: &AuditEntry) -> Result<String, StoreError> {
    serde_json::to_string(&StoredAudit {
        at_ms: a.at_ms,
        actor: a.actor.clone(),
        actor_ip: a.actor_ip.clone(),
        action: a.action,
        target: a.target.clone(),
        reason: a.reason.clone(),
    })
    .map_err(|e| StoreError(e.to_string()))
}
