//! The Lua scripts Redis runs atomically: each revocation with its stream
//! and audit entries, and the session merge. Each applies a rule decided
//! above the stores (the conformance suite holds them to it).

/// First revocation of a session wins; the audit entry is written either way.
pub(super) const REVOKE_SESSION: &str = r#"
local existing = redis.call('GET', KEYS[1])
if not existing then
  redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'kind', 'session', 'target', ARGV[3], 'data', ARGV[1])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'data', ARGV[4])
return existing or ARGV[1]
"#;

/// A later cutoff replaces an earlier one, never the reverse: the rule of
/// `UserCutoff::supersedes`.
pub(super) const REVOKE_USER: &str = r#"
local existing = redis.call('GET', KEYS[1])
local keep = false
if existing then
  local cur = cjson.decode(existing)
  local new = cjson.decode(ARGV[1])
  local cn, nn = cur.not_before, new.not_before
  local ca, na = cur.revoked_at_ms, new.revoked_at_ms
  if cn > nn or (cn == nn and ca > na) or (cn == nn and ca == na and cur.except == new.except) then
    keep = true
  end
end
if not keep then
  redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'kind', 'user', 'target', ARGV[3], 'data', ARGV[1])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'data', ARGV[4])
if keep then return existing end
return ARGV[1]
"#;

/// Writes one session's metadata merged with what another gateway wrote:
/// the rule of `SessionRecord::merged` (first seen earliest, last seen
/// latest, the larger count, sticky flags, the rest from the later
/// sighting). KEYS[1] the session key; ARGV[1] the record (JSON), ARGV[2]
/// its time to live in seconds.
pub(super) const SAVE_SESSION: &str = r#"
local new = cjson.decode(ARGV[1])
local existing = redis.call('GET', KEYS[1])
if existing then
  local old = cjson.decode(existing)
  local first = math.min(old.first_seen_ms, new.first_seen_ms)
  local requests = math.max(old.requests, new.requests)
  local new_location = old.new_location or new.new_location
  local confirmed = old.confirmed or new.confirmed
  -- absent when not suspicious (never JSON null): the first mark sticks
  local suspicious = old.suspicious or new.suspicious
  if old.last_seen_ms > new.last_seen_ms then
    new = old
  end
  new.first_seen_ms = first
  new.requests = requests
  new.new_location = new_location
  new.confirmed = confirmed
  new.suspicious = suspicious
  redis.call('SET', KEYS[1], cjson.encode(new), 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"#;
