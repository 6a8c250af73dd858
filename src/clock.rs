//! Wall-clock time in the units the gateway stores (UNIX seconds and
//! milliseconds) and the one format it speaks (RFC 3339, UTC).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Current UNIX time in seconds.
pub fn now_s() -> i64 {
    now_ms().div_euclid(1000)
}

/// The time as the authority reads it: the system clock in a gateway, a
/// set one in tests. Stores never read the time themselves: it comes with
/// what they are asked (a revocation's `revoked_at_ms`, a `now_s`).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock ([`now_ms`]).
    pub fn system() -> Clock {
        Clock(Arc::new(now_ms))
    }

    /// A clock that answers what `f` says (UNIX milliseconds).
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// UNIX milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }

    /// UNIX seconds.
    pub fn now_s(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Current UNIX time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// The last millisecond RFC 3339 can write: 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

/// A UNIX time in milliseconds as a `SystemTime`, clamped to what RFC 3339
/// can write (0000 and years past 9999 cannot be): formatting never fails,
/// whatever a token or the store holds.
fn system_time_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.clamp(0, MAX_MS) as u64)
}

/// RFC 3339 with milliseconds, e.g. `2026-11-24T02:50:33.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(system_time_ms(ms)).to_string()
}

/// RFC 3339 to the second, e.g. `2026-11-24T02:50:33Z`.
pub fn rfc3339_s(s: i64) -> String {
    humantime::format_rfc3339_seconds(system_time_ms(s.saturating_mul(1000))).to_string()
}

/// Parses an RFC 3339 time into UNIX milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    Some(d.as_millis().min(i64::MAX as u128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339_s(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339_ms(1_800_000_000_123), "2027-01-15T08:00:00.123Z");
        assert_eq!(
            parse_rfc3339_ms("2027-01-15T08:00:00.123Z"),
            Some(1_800_000_000_123)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn any_time_formats() {
        assert_eq!(rfc3339_s(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_s(1_800_000_000_000), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_s(i64::MIN), "1970-01-01T00:00:00Z");
    }
}
