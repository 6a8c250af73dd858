//! Signs that a session is used by someone else: the same session seen
//! with another device than the one it was first seen with, or moving
//! between two sightings faster than anyone travels.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::device::Device;
use crate::geoip::Geo;

/// Country centres (src/sessions/country_centroids.csv: countryinfo's
/// `latlng`, MIT licence), for impossible travel when the GeoIP database
/// has no coordinates.
const CENTROIDS: &str = include_str!("country_centroids.csv");

/// The centre of the country `iso` (ISO 3166-1 alpha-2), when known.
pub fn country_centroid(iso: &str) -> Option<(f64, f64)> {
    static TABLE: OnceLock<HashMap<String, (f64, f64)>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            CENTROIDS
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let mut f = l.split(',');
                    let (iso, lat, lon) = (f.next()?, f.next()?, f.next()?);
                    Some((iso.to_string(), (lat.parse().ok()?, lon.parse().ok()?)))
                })
                .collect()
        })
        .get(&iso.to_ascii_uppercase())
        .copied()
}

/// Where a sighting was: the database's coordinates, else the centre of
/// its country.
pub fn place(geo: Option<&Geo>) -> Option<(f64, f64)> {
    let g = geo?;
    match (g.latitude, g.longitude) {
        (Some(lat), Some(lon)) => Some((lat, lon)),
        _ => country_centroid(g.country.as_deref()?),
    }
}

/// Shortest move that counts as travel: GeoIP places one network
/// kilometres apart from one lookup to the next, and a phone moving
/// between cell networks jumps that far in a second.
pub const MIN_TRAVEL_KM: f64 = 300.0;

/// Why a session is marked suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspicion {
    /// Seen with another browser family, OS or kind of device than first.
    DeviceChanged,
    /// Moved between two sightings faster than `sessions.max_travel_kmh`.
    ImpossibleTravel,
}

impl Suspicion {
    /// Its name in the session object, the audit reason and the metric.
    pub fn name(self) -> &'static str {
        match self {
            Suspicion::DeviceChanged => "device_changed",
            Suspicion::ImpossibleTravel => "impossible_travel",
        }
    }

    /// The suspicion named `s` (as stored).
    pub fn parse(s: &str) -> Option<Suspicion> {
        [Suspicion::DeviceChanged, Suspicion::ImpossibleTravel]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// The device a session was first seen with against the one now: another
/// browser family, OS or kind (a browser's version changing is not).
pub fn device_changed(first: &Device, now: &Device) -> bool {
    first.browser != now.browser || first.os != now.os || first.kind != now.kind
}

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// Whether going from `from` (coordinates, UNIX ms) to `to` needs more
/// than `max_kmh`: at least [`MIN_TRAVEL_KM`] apart, and faster.
pub fn impossible_travel(from: ((f64, f64), i64), to: ((f64, f64), i64), max_kmh: f64) -> bool {
    let km = distance_km(from.0, to.0);
    if km < MIN_TRAVEL_KM {
        return false;
    }
    let hours = ((to.1 - from.1).max(1) as f64) / 3_600_000.0;
    km / hours > max_kmh
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZURICH: (f64, f64) = (47.3769, 8.5417);
    const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
    const GENEVA: (f64, f64) = (46.2044, 6.1432);

    #[test]
    fn zurich_to_new_york_in_a_minute_is_impossible() {
        let d = distance_km(ZURICH, NEW_YORK);
        assert!((6300.0..6350.0).contains(&d), "{d}");
        assert!(impossible_travel((ZURICH, 0), (NEW_YORK, 60_000), 1000.0));
        // Ten hours later, a flight.
        assert!(!impossible_travel(
            (ZURICH, 0),
            (NEW_YORK, 36_000_000),
            1000.0
        ));
        // Nearby cities, however fast: GeoIP noise, not travel.
        assert!(!impossible_travel((ZURICH, 0), (GENEVA, 1_000), 1000.0));
    }

    #[test]
    fn every_country_has_a_centre() {
        assert_eq!(country_centroid("ch"), Some((47.0, 8.0)));
        assert!(country_centroid("US").is_some() && country_centroid("BR").is_some());
        assert_eq!(country_centroid("XX"), None);
        // Switzerland to the United States a minute apart, by centres.
        let (ch, us) = (
            country_centroid("CH").unwrap(),
            country_centroid("US").unwrap(),
        );
        assert!(impossible_travel((ch, 0), (us, 60_000), 1000.0));
    }

    #[test]
    fn a_device_is_its_browser_os_and_kind_not_its_version() {
        let chrome_124 = Device::parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36");
        let chrome_125 = Device::parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36");
        let firefox = Device::parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
        );
        let script = Device::parse("python-requests/2.31");
        assert!(!device_changed(&chrome_124, &chrome_125));
        assert!(device_changed(&chrome_124, &firefox));
        assert!(device_changed(&chrome_124, &script));
    }
}
