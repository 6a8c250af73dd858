//! The claims the gateway reads from a verified payload, parsed in one
//! pass without building a JSON tree: the session and user claims, `jti`,
//! the times, `iss`/`aud` checked as they stream by, and `events` (which
//! marks a token that is no access token). A claim it reads, given twice,
//! is refused: the application might read the other copy.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// The claims the gateway reads; everything else is skipped unparsed.
#[derive(Default)]
pub(super) struct Claims {
    pub(super) session: Option<String>,
    pub(super) jti: Option<String>,
    pub(super) user: Option<String>,
    pub(super) exp: Option<i64>,
    pub(super) nbf: Option<i64>,
    pub(super) iat: Option<i64>,
    pub(super) issuer_ok: bool,
    pub(super) audience_ok: bool,
    /// An `events` claim: a logout token or a SET, not an access token.
    pub(super) events: bool,
    /// `acr`: the authentication context class (step-up routes).
    pub(super) acr: Option<String>,
    /// `amr`: the authentication methods (RFC 8176), an array of strings.
    pub(super) amr: Vec<String>,
    /// `auth_time`: when the user last authenticated (UNIX seconds).
    pub(super) auth_time: Option<i64>,
}

pub(super) struct ClaimsSeed<'a> {
    pub(super) session_claim: &'a str,
    pub(super) user_claim: &'a str,
    pub(super) issuer: Option<&'a str>,
    /// Accepted `aud` values; empty: `aud` is not checked.
    pub(super) audiences: &'a [Box<str>],
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Claims;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Claims, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut c = Claims::default();
        // A claim the gateway reads, given twice, could be read the other
        // way by the application: refused.
        let mut seen: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let read = matches!(
                key.as_ref(),
                "exp"
                    | "nbf"
                    | "iat"
                    | "iss"
                    | "aud"
                    | "jti"
                    | "events"
                    | "acr"
                    | "amr"
                    | "auth_time"
            ) || key == self.session_claim
                || key == self.user_claim;
            if read {
                if seen.contains(&key) {
                    return Err(serde::de::Error::custom("duplicate claim"));
                }
                seen.push(key.clone());
            }
            match key.as_ref() {
                "events" => {
                    map.next_value::<IgnoredAny>()?;
                    c.events = true;
                }
                "exp" => c.exp = Some(map.next_value::<NumericDate>()?.0),
                "nbf" => c.nbf = Some(map.next_value::<NumericDate>()?.0),
                "iat" => c.iat = Some(map.next_value::<NumericDate>()?.0),
                "auth_time" => c.auth_time = Some(map.next_value::<NumericDate>()?.0),
                "acr" => c.acr = map.next_value::<ClaimString>()?.0,
                "amr" => c.amr = map.next_value::<Vec<String>>()?,
                "iss" if self.issuer.is_some() => {
                    let iss = map.next_value::<std::borrow::Cow<'de, str>>()?;
                    c.issuer_ok = Some(iss.as_ref()) == self.issuer;
                }
                "aud" if !self.audiences.is_empty() => {
                    let aud = map.next_value::<Audience>()?;
                    c.audience_ok = aud
                        .0
                        .iter()
                        .any(|a| self.audiences.iter().any(|want| a.as_ref() == &**want));
                }
                k if k == self.session_claim || k == "jti" || k == self.user_claim => {
                    let v = map.next_value::<ClaimString>()?.0.filter(|s| !s.is_empty());
                    if k == self.user_claim {
                        c.user = v.clone();
                    }
                    if k == "jti" {
                        c.jti = v.clone();
                    }
                    if k == self.session_claim {
                        c.session = v;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(c)
    }
}

/// A JSON number of seconds (integer or float, RFC 7519 NumericDate).
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v.min(i64::MAX as u64) as i64))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() {
                    Ok(NumericDate(v.floor() as i64))
                } else {
                    Err(E::custom("not a finite number"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A claim that identifies something: a string, or a number taken as its text.
/// Anything else counts as absent.
struct ClaimString(Option<String>);

impl<'de> Deserialize<'de> for ClaimString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ClaimString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClaimString, E> {
                Ok(ClaimString(Some(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ClaimString, E> {
                Ok(ClaimString(Some(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ClaimString, E> {
                Ok(ClaimString(Some(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ClaimString, E> {
                Ok(ClaimString(Some(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<ClaimString, E> {
                Ok(ClaimString(None))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<ClaimString, E> {
                Ok(ClaimString(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<ClaimString, E> {
                Ok(ClaimString(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ClaimString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ClaimString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClaimString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ClaimString(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `aud`: one string or an array of strings (RFC 7519 4.1.3).
struct Audience<'a>(Vec<std::borrow::Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Audience<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany<'a> {
            #[serde(borrow)]
            One(std::borrow::Cow<'a, str>),
            #[serde(borrow)]
            Many(Vec<std::borrow::Cow<'a, str>>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => Audience(vec![s]),
            OneOrMany::Many(v) => Audience(v),
        })
    }
}
