//! IP address to approximate location, with maxminddb. Reads both the
//! GeoIP2/GeoLite2 schema (`country.iso_code`, `city.names.en`,
//! `location.latitude/longitude`) and the flat schema of the ip-location-db
//! databases (`country_code`, `city`, `latitude`, `longitude`).
//!
//! Without a configured file, the country database bundled under `geoip/`
//! (compiled into the binary) is used. A configured file is reloaded when it
//! changes. Lookups are cached per address (bounded); the cache is dropped
//! on reload.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use http::HeaderValue;
use maxminddb::Reader;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// The bundled IP-to-country database (ip-location-db geo-whois-asn-country,
/// CC BY 4.0 by the NRO; see geoip/README.md and geoip/ATTRIBUTION.md).
pub const BUNDLED: &[u8] = include_bytes!("../geoip/geo-whois-asn-country.mmdb");

/// Addresses whose lookups are kept; the cache is cleared when it fills.
const CACHE_CAPACITY: usize = 100_000;

/// An address's approximate location, with its header values prepared.
#[derive(Debug, Clone, PartialEq)]
pub struct Geo {
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// City name (English when the database has it); never empty.
    pub city: Option<String>,
    /// Latitude in decimal degrees.
    pub latitude: Option<f64>,
    /// Longitude in decimal degrees.
    pub longitude: Option<f64>,
    /// `X-Geo-Country` value, built once.
    pub country_header: Option<HeaderValue>,
    /// `X-Geo-City` value, built once (percent-encoded when not ASCII).
    pub city_header: Option<HeaderValue>,
}

impl Geo {
    /// A location from its parts; the country is kept only when it is an
    /// ISO 3166-1 alpha-2 code.
    pub fn from_parts(
        country: Option<String>,
        city: Option<String>,
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Geo {
        let country = country
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()));
        let city = city.filter(|c| !c.is_empty());
        let country_header = country
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok());
        // Non-ASCII bytes, controls and `%` itself are escaped, so the
        // header decodes back to the name.
        const CITY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
        let city_header = city.as_deref().and_then(|c| {
            HeaderValue::from_str(&percent_encoding::utf8_percent_encode(c, CITY).to_string()).ok()
        });
        Geo {
            country,
            city,
            latitude,
            longitude,
            country_header,
            city_header,
        }
    }

    /// True when the database knew anything about the address.
    fn is_known(&self) -> bool {
        self.country.is_some() || self.city.is_some() || self.latitude.is_some()
    }
}

/// A database record in either schema, reading only what is used.
#[derive(Default)]
struct Record {
    country: Option<String>,
    city: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a GeoIP record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Record, A::Error> {
                let mut r = Record::default();
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    match k.as_ref() {
                        "country_code" => r.country = Some(m.next_value::<String>()?),
                        "country" => {
                            let c = m.next_value::<IsoCode>()?;
                            if r.country.is_none() {
                                r.country = c.0;
                            }
                        }
                        "city" => r.city = m.next_value::<Named>()?.0,
                        "latitude" => r.latitude = Some(m.next_value::<f64>()?),
                        "longitude" => r.longitude = Some(m.next_value::<f64>()?),
                        "location" => {
                            let l = m.next_value::<Location>()?;
                            r.latitude = r.latitude.or(l.latitude);
                            r.longitude = r.longitude.or(l.longitude);
                        }
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

/// `{"iso_code": "DE", ...}`.
struct IsoCode(Option<String>);

impl<'de> Deserialize<'de> for IsoCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct C {
            iso_code: Option<String>,
        }
        Ok(IsoCode(C::deserialize(d)?.iso_code))
    }
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// A name: a plain string (flat schema) or `{"names": {"en": ..}}` (GeoIP2).
struct Named(Option<String>);

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Named;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a map of names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Named, E> {
                Ok(Named(Some(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Named, A::Error> {
                let mut name = None;
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    if k == "names" {
                        let names = m.next_value::<std::collections::BTreeMap<String, String>>()?;
                        name = names.get("en").or_else(|| names.values().next()).cloned();
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Named(name))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct GeoIpError {
    /// The database file, or `bundled database`.
    pub path: String,
    /// What went wrong reading or parsing it.
    pub message: String,
}

/// The database in use and the lookup cache.
pub struct GeoIp {
    reader: ArcSwap<Reader<Cow<'static, [u8]>>>,
    path: Option<PathBuf>,
    cache: DashMap<IpAddr, Option<Arc<Geo>>>,
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIp")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open(path: &Path) -> Result<Reader<Cow<'static, [u8]>>, GeoIpError> {
    let err = |message: String| GeoIpError {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    Reader::from_source(Cow::Owned(bytes)).map_err(|e| err(format!("not a MaxMind DB file: {e}")))
}

impl GeoIp {
    /// The configured database, or the bundled one when `path` is `None`.
    pub fn open(path: Option<&Path>) -> Result<GeoIp, GeoIpError> {
        let reader = match path {
            Some(p) => open(p)?,
            None => Reader::from_source(Cow::Borrowed(BUNDLED)).map_err(|e| GeoIpError {
                path: "bundled database".into(),
                message: e.to_string(),
            })?,
        };
        Ok(GeoIp {
            reader: ArcSwap::from_pointee(reader),
            path: path.map(Path::to_path_buf),
            cache: DashMap::new(),
        })
    }

    /// The configured file, if any (the bundled database never changes).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the configured file; on error the current database stays.
    pub fn reload(&self) -> Result<(), GeoIpError> {
        if let Some(p) = &self.path {
            let reader = open(p)?;
            self.reader.store(Arc::new(reader));
            self.cache.clear();
        }
        Ok(())
    }

    /// The location of `ip`; `None` when the database does not know it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<Geo>> {
        // ::ffff:a.b.c.d (dual-stack sockets) is looked up as a.b.c.d.
        let ip = ip.to_canonical();
        if let Some(hit) = self.cache.get(&ip) {
            return hit.clone();
        }
        let found = self.lookup_uncached(ip);
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(ip, found.clone());
        found
    }

    fn lookup_uncached(&self, ip: IpAddr) -> Option<Arc<Geo>> {
        let reader = self.reader.load();
        let record = reader.lookup(ip).ok()?.decode::<Record>().ok()??;
        let geo = Geo::from_parts(
            record.country,
            record.city,
            record.latitude,
            record.longitude,
        );
        geo.is_known().then(|| Arc::new(geo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_database_knows_countries() {
        let g = GeoIp::open(None).unwrap();
        let us = g
            .lookup("8.8.8.8".parse().unwrap())
            .expect("8.8.8.8 is known");
        assert_eq!(us.country.as_deref(), Some("US"));
        assert_eq!(us.country_header.as_ref().unwrap(), "US");
        let mapped = g
            .lookup("::ffff:8.8.8.8".parse().unwrap())
            .expect("mapped v4");
        assert_eq!(mapped.country.as_deref(), Some("US"));
        assert!(g.lookup("127.0.0.1".parse().unwrap()).is_none());
        assert!(g.lookup("10.1.2.3".parse().unwrap()).is_none());
    }

    #[test]
    fn non_ascii_city_is_percent_encoded_in_its_header() {
        let g = Geo::from_parts(Some("ch".into()), Some("Zürich".into()), None, None);
        assert_eq!(g.country.as_deref(), Some("CH"));
        assert_eq!(g.city_header.unwrap(), "Z%C3%BCrich");
        let g = Geo::from_parts(Some("XYZ".into()), Some("Paris".into()), None, None);
        assert_eq!(g.country, None, "not an ISO code");
        assert_eq!(g.city_header.unwrap(), "Paris");
    }
}
