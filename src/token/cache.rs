//! Verified-token cache: a session's second request skips signature
//! verification and claim parsing. Keyed by the 128-bit SipHash-2-4 of the
//! whole token under a random per-process key: a keyed PRF, so no one can
//! make another token land on a cached one's key (odds of n/2^128 a try).
//! Comparing hashes instead of keeping and comparing the token bytes saves
//! the cache misses of a second allocation on every request, and memory.
//! Only tokens that verified are cached; the revocation check still runs
//! on every request.
//!
//! Bounded: 64 shards, each with two generations. Inserts go to the current
//! generation; when it holds half the shard's share of the capacity, the
//! old generation is dropped and the current one becomes old. A hit in the
//! old generation moves the entry back. At most `capacity` entries are held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::VerifiedToken;
use crate::revocation::KeyBuild;

const SHARDS: usize = 64;

fn key_of(token: &[u8]) -> u128 {
    use siphasher::sip128::{Hasher128, SipHasher24};
    use std::hash::Hasher;
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    let (k0, k1) = *KEY.get_or_init(|| (rand::random(), rand::random()));
    let mut h = SipHasher24::new_with_keys(k0, k1);
    h.write(token);
    h.finish128().as_u128()
}

type Entry = Arc<VerifiedToken>;

#[derive(Default)]
struct Shard {
    current: HashMap<u128, Entry, KeyBuild>,
    old: HashMap<u128, Entry, KeyBuild>,
}

/// Tokens that verified, with their claims.
pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    generation: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &(self.generation * 2 * SHARDS))
            .finish()
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (rounded to the shard count).
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            generation: (capacity / SHARDS / 2).max(1),
        }
    }

    #[inline]
    fn locate(&self, token: &[u8]) -> (u128, &Mutex<Shard>) {
        let key = key_of(token);
        (key, &self.shards[(key as usize) % SHARDS])
    }

    /// The claims of `token`, when it verified before.
    #[inline]
    pub fn get(&self, token: &[u8]) -> Option<Arc<VerifiedToken>> {
        let (key, shard) = self.locate(token);
        let mut s = shard.lock().ok()?;
        if let Some(e) = s.current.get(&key) {
            return Some(e.clone());
        }
        let e = s.old.remove(&key)?;
        let claims = e.clone();
        Self::insert_into(&mut s, self.generation, key, e);
        Some(claims)
    }

    fn insert_into(s: &mut Shard, generation: usize, key: u128, e: Entry) {
        if s.current.len() >= generation {
            s.old = std::mem::take(&mut s.current);
        }
        s.current.insert(key, e);
    }

    /// Remembers that `token` verified with these claims.
    pub fn insert(&self, token: &[u8], claims: Arc<VerifiedToken>) {
        let (key, shard) = self.locate(token);
        if let Ok(mut s) = shard.lock() {
            Self::insert_into(&mut s, self.generation, key, claims);
        }
    }

    #[cfg(test)]
    /// Forgets everything.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            if let Ok(mut s) = s.lock() {
                s.current.clear();
                s.old.clear();
            }
        }
    }

    /// Tokens held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.current.len() + s.old.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sid: &str) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken::new(sid.to_string(), None, None, None))
    }

    #[test]
    fn hits_only_for_the_same_bytes() {
        let c = TokenCache::new(1000);
        c.insert(b"token-a", claims("a"));
        assert_eq!(c.get(b"token-a").unwrap().session_id, "a");
        assert!(c.get(b"token-b").is_none());
        c.clear();
        assert!(c.get(b"token-a").is_none());
    }

    #[test]
    fn stays_bounded() {
        let c = TokenCache::new(SHARDS * 2 * 10);
        for i in 0..100_000 {
            c.insert(format!("t{i}").as_bytes(), claims("x"));
        }
        assert!(c.len() <= SHARDS * 2 * 10, "{}", c.len());
        // Recent entries survive.
        assert!(c.get(b"t99999").is_some());
    }
}
