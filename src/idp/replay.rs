//! The `jti`s of logout tokens and SETs already acted on, each kept until
//! the token it came from can no longer be valid: the same token sent
//! twice is refused the second time.

use dashmap::DashMap;

/// Most `jti`s held; past it, expired ones are dropped, and a full cache of
/// live ones refuses new tokens (fail closed) until some expire.
pub const REPLAY_CACHE_MAX: usize = 100_000;

/// Seen `jti`s (per issuer) and until when they matter (UNIX seconds).
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: DashMap<(String, String), i64>,
}

/// Why a `jti` cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Seen before: the token is a replay.
    Seen,
    /// The cache is full of live entries.
    Full,
}

impl ReplayCache {
    /// Takes `jti` of `issuer` until `until` (UNIX seconds) unless it is
    /// held already. A failed action gives it back ([`ReplayCache::release`]),
    /// so the sender may try again.
    pub fn take(&self, issuer: &str, jti: &str, until: i64, now: i64) -> Result<(), Replay> {
        if self.seen.len() >= REPLAY_CACHE_MAX {
            self.seen.retain(|_, until| *until > now);
            if self.seen.len() >= REPLAY_CACHE_MAX {
                return Err(Replay::Full);
            }
        }
        match self.seen.entry((issuer.to_string(), jti.to_string())) {
            dashmap::Entry::Occupied(mut e) => {
                if *e.get() > now {
                    return Err(Replay::Seen);
                }
                e.insert(until);
                Ok(())
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(until);
                Ok(())
            }
        }
    }

    /// Gives back a `jti` whose action failed.
    pub fn release(&self, issuer: &str, jti: &str) {
        self.seen.remove(&(issuer.to_string(), jti.to_string()));
    }

    /// `jti`s held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_taken_once_until_it_expires() {
        let c = ReplayCache::default();
        assert_eq!(c.take("i", "a", 100, 10), Ok(()));
        assert_eq!(c.take("i", "a", 100, 50), Err(Replay::Seen));
        assert_eq!(c.take("other", "a", 100, 50), Ok(()));
        assert_eq!(c.take("i", "a", 200, 100), Ok(()));
        c.release("i", "a");
        assert_eq!(c.take("i", "a", 300, 150), Ok(()));
    }
}
