//! Signs that a session is used by someone else: the same session seen
//! with another device than the one it was first seen with, or moving
//! between two sightings faster than anyone travels.

use super::device::Device;

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
