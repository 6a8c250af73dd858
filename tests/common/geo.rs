//! GeoIP: generated City databases and requests from given addresses.

use super::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::json;

pub const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
pub const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
pub const FIREFOX_MAC: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0";

/// Addresses the generated City database knows (documentation ranges).
pub const IP_LONDON: &str = "198.51.100.7";
pub const IP_ZURICH: &str = "203.0.113.9";
pub const IP_SAO_PAULO: &str = "192.0.2.33";
pub const IP_NEW_YORK: &str = "2001:db8:1::5";

/// Writes a small City database in the GeoIP2 schema (`country.iso_code`,
/// `city.names.en`, `location`) and answers its path.
pub fn city_database(dir: &Path) -> PathBuf {
    let mut w = mmdb_writer::Writer::new("GeoIP2-City");
    let entries = [
        ("198.51.100.0/24", "GB", "London", 51.5142, -0.0931),
        ("203.0.113.0/24", "CH", "Zürich", 47.3769, 8.5417),
        ("192.0.2.0/24", "BR", "São Paulo", -23.5505, -46.6333),
        ("2001:db8:1::/48", "US", "New York", 40.7128, -74.0060),
    ];
    for (net, country, city, lat, lon) in entries {
        let record = json!({
            "country": {"iso_code": country, "names": {"en": country}},
            "city": {"names": {"en": city}},
            "location": {"latitude": lat, "longitude": lon},
        });
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    let path = dir.join("city.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// The same places in the flat schema of the ip-location-db databases
/// (`country_code`, `city`, `latitude`, `longitude`), with other cities,
/// to tell the two apart.
pub fn flat_city_database(dir: &Path) -> PathBuf {
    let mut w = mmdb_writer::Writer::new("dbip-city");
    let entries = [
        ("198.51.100.0/24", "GB", "Manchester", 53.4808, -2.2426),
        ("203.0.113.0/24", "CH", "Geneva", 46.2044, 6.1432),
    ];
    for (net, country, city, lat, lon) in entries {
        let record =
            json!({"country_code": country, "city": city, "latitude": lat, "longitude": lon});
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    let path = dir.join("flat-city.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// A gateway config that believes `X-Forwarded-For` from the test client
/// (127.0.0.1) and reads `database`.
pub fn geo_config(upstream: SocketAddr, database: Option<&Path>) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(upstream);
    let db = database
        .map(|p| format!("database = \"{}\"\n", p.display()))
        .unwrap_or_default();
    cfg.extra = format!(
        "\n[geoip]\n{db}trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\nreload_s = 1\n\n[sessions]\npersist_interval_s = 1\n"
    );
    cfg
}

/// GET on the proxy as a given device from a given address.
pub async fn get_as(
    gw: &Gateway,
    path: &str,
    token: &str,
    user_agent: &str,
    ip: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .get(gw.url(path))
        .bearer_auth(token)
        .header("user-agent", user_agent)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
}
