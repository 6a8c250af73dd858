//! A User-Agent turned into what a person recognises: browser, operating
//! system and kind of device (woothee does the parsing).

use serde::Serialize;

/// Kind of device, as the session object names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A desktop or laptop computer (`desktop`).
    Desktop,
    /// A phone (`mobile`).
    Mobile,
    /// An iPad or an Android device without `Mobile` in its User-Agent (`tablet`).
    Tablet,
    /// A crawler (`bot`).
    Bot,
    /// Anything else, or a User-Agent that was not recognised (`other`).
    Other,
}

/// A parsed User-Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Browser name (e.g. `Chrome`), when recognised.
    pub browser: Option<String>,
    /// Operating system (e.g. `Windows 10`, `iOS`, `macOS`), when recognised.
    pub os: Option<String>,
    /// Kind of device.
    pub kind: DeviceKind,
    /// The User-Agent it was parsed from.
    pub user_agent: String,
}

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_string())
}

impl Device {
    /// Parses `user_agent` (an empty one gives an unknown device).
    pub fn parse(user_agent: &str) -> Device {
        let parsed = woothee::parser::Parser::new().parse(user_agent);
        let Some(r) = parsed else {
            return Device {
                browser: None,
                os: None,
                kind: DeviceKind::Other,
                user_agent: user_agent.to_string(),
            };
        };
        let os = match r.os {
            "iPhone" | "iPad" | "iPod" => Some("iOS".to_string()),
            "Mac OSX" => Some("macOS".to_string()),
            other => known(other),
        };
        let kind = match r.category {
            "pc" => DeviceKind::Desktop,
            "crawler" => DeviceKind::Bot,
            "mobilephone" => DeviceKind::Mobile,
            "smartphone" => {
                let android_tablet = r.os == "Android" && !user_agent.contains("Mobile");
                if r.os == "iPad" || android_tablet {
                    DeviceKind::Tablet
                } else {
                    DeviceKind::Mobile
                }
            }
            _ => DeviceKind::Other,
        };
        Device {
            browser: known(r.name),
            os,
            kind,
            user_agent: user_agent.to_string(),
        }
    }

    /// "Chrome on Windows 10", for pages and confirmations.
    pub fn label(&self) -> String {
        match (&self.browser, &self.os) {
            (Some(b), Some(o)) => format!("{b} on {o}"),
            (Some(b), None) => b.clone(),
            (None, Some(o)) => o.clone(),
            (None, None) => "Unknown device".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    pub const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    pub const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    pub const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    #[test]
    fn common_devices() {
        let d = Device::parse(CHROME_WINDOWS);
        assert_eq!(d.browser.as_deref(), Some("Chrome"));
        assert_eq!(d.os.as_deref(), Some("Windows 10"));
        assert_eq!(d.kind, DeviceKind::Desktop);
        assert_eq!(d.label(), "Chrome on Windows 10");

        let d = Device::parse(SAFARI_IPHONE);
        assert_eq!(d.browser.as_deref(), Some("Safari"));
        assert_eq!(d.os.as_deref(), Some("iOS"));
        assert_eq!(d.kind, DeviceKind::Mobile);

        assert_eq!(Device::parse(SAFARI_IPAD).kind, DeviceKind::Tablet);
        assert_eq!(Device::parse(GOOGLEBOT).kind, DeviceKind::Bot);
        let d = Device::parse("curl/8.5.0");
        assert_eq!(d.kind, DeviceKind::Other);
        assert_eq!(Device::parse("").label(), "Unknown device");
    }
}
