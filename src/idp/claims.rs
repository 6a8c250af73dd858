//! Claim shapes the receivers read the same way: `aud` as one string or an
//! array, and NumericDate seconds as an integer or a float.

use serde::Deserialize;

/// `aud`: one string or an array of them (RFC 7519 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether it names one of `accepted`.
    pub(crate) fn names_any<S: AsRef<str>>(&self, accepted: &[S]) -> bool {
        let ok = |a: &String| accepted.iter().any(|w| w.as_ref() == a);
        match self {
            Audience::One(a) => ok(a),
            Audience::Many(list) => list.iter().any(ok),
        }
    }
}

/// A JSON number of seconds (integer, or a finite float floored).
pub(crate) fn seconds(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}
