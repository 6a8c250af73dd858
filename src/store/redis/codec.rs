//! How revocations, cutoffs, audit entries and stream entries are written
//! in Redis (JSON values and stream fields), and read back.

use redis::Value;

use crate::audit::AuditEntry;
use crate::revocation::{Revocation, SessionRevocation, UserCutoff};
use crate::store::StoreError;

/// A session revocation's JSON value (its id is the key).
pub(super) fn session_json(r: &SessionRevocation) -> Result<String, StoreError> {
    serde_json::to_string(r).map_err(|e| StoreError(e.to_string()))
}

/// A cutoff's JSON value (its user is the key).
pub(super) fn cutoff_json(c: &UserCutoff) -> Result<String, StoreError> {
    serde_json::to_string(c).map_err(|e| StoreError(e.to_string()))
}

pub(super) fn parse_session(sid: &str, json: &str) -> Option<SessionRevocation> {
    let mut r: SessionRevocation = serde_json::from_str(json).ok()?;
    r.session_id = sid.to_string();
    Some(r)
}

pub(super) fn parse_cutoff(user: &str, json: &str) -> Option<UserCutoff> {
    let mut c: UserCutoff = serde_json::from_str(json).ok()?;
    c.user_id = user.to_string();
    Some(c)
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

pub(super) fn audit_json(a: &AuditEntry) -> Result<String, StoreError> {
    serde_json::to_string(a).map_err(|e| StoreError(e.to_string()))
}

pub(super) fn parse_audit(json: &str) -> Option<AuditEntry> {
    serde_json::from_str(json).ok()
}
