//! The "where you're logged in" page: plain HTML with inline CSS, no
//! scripts, no external assets. Every action is a form; each destructive
//! one sits behind a `<details>` disclosure that says it cannot be undone,
//! so confirming works with JavaScript off and from the keyboard.

use std::fmt::Write;

use crate::clock;
use crate::sessions::{DeviceKind, SessionInfo};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "just now", "5 minutes ago", "3 days ago".
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let s = ((now_ms - then_ms) / 1000).max(0);
    let (n, unit) = match s {
        0..=59 => return "just now".to_string(),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn human_time(ms: i64) -> String {
    // RFC 3339 to the minute, readable: "2026-11-24 03:05 UTC".
    let t = clock::rfc3339_s(ms.div_euclid(1000));
    format!("{} {} UTC", &t[..10], &t[11..16])
}

const ICON_DESKTOP: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="3" y="4" width="18" height="12" rx="1.5"/><path d="M8 20h8M12 16v4"/></svg>"#;
const ICON_MOBILE: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="7" y="2.5" width="10" height="19" rx="2"/><path d="M11 18.5h2"/></svg>"#;
const ICON_TABLET: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="4.5" y="2.5" width="15" height="19" rx="2"/><path d="M11 18.5h2"/></svg>"#;
const ICON_OTHER: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="8.5"/><path d="M3.5 12h17M12 3.5c2.5 2.5 2.5 14.5 0 17M12 3.5c-2.5 2.5-2.5 14.5 0 17"/></svg>"#;

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg:#1b1f24; --muted:#57606a; --bg:#f6f8fa; --card:#fff; --line:#d0d7de; --accent:#0969da; --danger:#cf222e; --warn-bg:#fff8c5; --warn-fg:#6b4f00; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6edf3; --muted:#9da7b3; --bg:#0d1117; --card:#161b22; --line:#30363d; --accent:#4493f8; --danger:#f85149; --warn-bg:#3b2e00; --warn-fg:#f2cc60; } }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 44rem; margin: 0 auto; padding: 2rem 1rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
.lead { color: var(--muted); margin: 0 0 1.5rem; }
.notice { border-left: 4px solid var(--accent); background: var(--card); padding: .75rem 1rem; margin: 0 0 1.5rem; border-radius: 6px; }
ul.sessions { list-style: none; margin: 0; padding: 0; display: grid; gap: .75rem; }
.session { display: grid; grid-template-columns: 2.5rem 1fr; gap: .75rem 1rem; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem; }
.session.current { border-color: var(--accent); box-shadow: 0 0 0 1px var(--accent) inset; }
.session svg { width: 2.5rem; height: 2.5rem; fill: none; stroke: var(--muted); stroke-width: 1.5; stroke-linecap: round; }
.session h2 { font-size: 1.05rem; margin: 0; display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.session p { margin: .15rem 0; color: var(--muted); font-size: .95rem; }
.badge { font-size: .75rem; font-weight: 600; padding: .1rem .5rem; border-radius: 999px; background: var(--accent); color: #fff; }
.session .warning { background: var(--warn-bg); color: var(--warn-fg); border-radius: 6px; padding: .5rem .75rem; margin-top: .5rem; display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; justify-content: space-between; }
.session .warning p { color: inherit; margin: 0; }
.session .warning form { margin: 0; }
time { white-space: nowrap; }
.actions { grid-column: 2; }
details > summary { cursor: pointer; display: inline-block; list-style: none; padding: .35rem .9rem; border: 1px solid var(--line); border-radius: 6px; font-weight: 600; color: var(--danger); background: var(--card); }
details > summary::-webkit-details-marker { display: none; }
details[open] > summary { border-color: var(--danger); color: var(--danger); }
.confirm { margin-top: .6rem; padding: .75rem; border: 1px solid var(--danger); border-radius: 6px; }
.confirm p { color: var(--fg); margin: 0 0 .6rem; }
button { font: inherit; font-weight: 600; padding: .4rem 1rem; border-radius: 6px; border: 1px solid transparent; cursor: pointer; }
button.danger { background: var(--danger); color: #fff; }
button.plain { background: var(--card); color: var(--fg); border-color: var(--line); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.others { margin-top: 2rem; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: .85rem; }
"#;

/// Everything the page shows.
pub struct PageData<'a> {
    /// The signed-in user.
    pub user_id: &'a str,
    /// The session the page is viewed from (marked, and never offered a
    /// log-out of its own).
    pub current_session_id: &'a str,
    /// The CSRF token every form posts back as `csrf_token`.
    pub csrf_token: &'a str,
    /// Newest `last_seen` first; revoked sessions already left out.
    pub sessions: &'a [SessionInfo],
    /// The current time (UNIX milliseconds), for "5 minutes ago".
    pub now_ms: i64,
    /// What just happened (after a form post), shown at the top.
    pub notice: Option<Notice>,
    /// The session's sign-in is too old for the actions
    /// (`sessions.reauth_max_age_s`): the page offers to sign in again
    /// (at this link, when there is a login URL) instead of its buttons.
    pub reauth: Option<Option<&'a str>>,
}

/// The outcome of a form post, carried back to the page in `?done=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// One session was logged out (`logged_out`).
    LoggedOut,
    /// Every other session was logged out (`logged_out_others`).
    LoggedOutOthers,
    /// A new location was confirmed (`confirmed`).
    Confirmed,
}

impl Notice {
    /// The `?done=` value.
    pub fn key(self) -> &'static str {
        match self {
            Notice::LoggedOut => "logged_out",
            Notice::LoggedOutOthers => "logged_out_others",
            Notice::Confirmed => "confirmed",
        }
    }

    /// The notice named by the `done` parameter of `query`; `None` when
    /// there is no query, no `done`, or an unknown value.
    pub fn from_query(query: Option<&str>) -> Option<Notice> {
        let done = form_urlencoded::parse(query?.as_bytes())
            .find(|(k, _)| k == "done")?
            .1;
        Some(match done.as_ref() {
            "logged_out" => Notice::LoggedOut,
            "logged_out_others" => Notice::LoggedOutOthers,
            "confirmed" => Notice::Confirmed,
            _ => return None,
        })
    }

    fn text(self) -> &'static str {
        match self {
            Notice::LoggedOut => "That device was logged out. It has to sign in again.",
            Notice::LoggedOutOthers => {
                "All your other sessions were logged out. This device stays signed in."
            }
            Notice::Confirmed => "Thanks: the new location is confirmed.",
        }
    }
}

fn location(s: &SessionInfo) -> String {
    match &s.geo {
        Some(g) => match (&g.city, &g.country) {
            (Some(city), Some(country)) => format!("{city}, {country}"),
            (None, Some(country)) => country.clone(),
            (Some(city), None) => city.clone(),
            (None, None) => "Unknown location".into(),
        },
        None => "Unknown location".into(),
    }
}

fn csrf_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf_token" value="{}">"#,
        escape(token)
    )
}

/// Renders the whole page.
pub fn render(d: &PageData) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Where you're logged in</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>Where you're logged in</h1>
<p class="lead">Signed in as <strong>{user}</strong>. If you don't recognise a device or a place, log it out.</p>
"#,
        user = escape(d.user_id)
    );
    if let Some(link) = d.reauth {
        let link = match link {
            Some(l) => format!(r#" <a href="{}">Sign in again</a>"#, escape(l)),
            None => String::new(),
        };
        let _ = write!(
            h,
            r#"<div class="warning" role="note"><p><strong>Sign in again to continue.</strong> You signed in a while ago; to log devices out, confirm it is you.{link}</p></div>"#
        );
    }
    if let Some(n) = d.notice {
        let _ = write!(h, r#"<p class="notice" role="status">{}</p>"#, n.text());
    }
    h.push_str("<ul class=\"sessions\" aria-label=\"Sessions\">\n");
    for s in d.sessions {
        let current = s.session_id == d.current_session_id;
        let label = s.device.label();
        let icon = match s.device.kind {
            DeviceKind::Desktop => ICON_DESKTOP,
            DeviceKind::Mobile => ICON_MOBILE,
            DeviceKind::Tablet => ICON_TABLET,
            _ => ICON_OTHER,
        };
        let activity = if current {
            "Active now".to_string()
        } else {
            format!("Last active {}", ago(s.last_seen_ms, d.now_ms))
        };
        let sid = escape(&s.session_id);
        let path_sid = percent_encoding::utf8_percent_encode(
            &s.session_id,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let _ = write!(
            h,
            r#"<li class="session{cls}" data-session-id="{sid}">
{icon}
<div>
<h2>{label}{badge}</h2>
<p>{loc} · {ip}</p>
<p><time datetime="{last_iso}">{activity}</time> · signed in <time datetime="{first_iso}">{first}</time></p>
"#,
            cls = if current { " current" } else { "" },
            label = escape(&label),
            badge = if current {
                r#" <span class="badge">This device</span>"#
            } else {
                ""
            },
            loc = escape(&location(s)),
            ip = escape(&s.ip),
            last_iso = clock::rfc3339_ms(s.last_seen_ms),
            first_iso = clock::rfc3339_ms(s.first_seen_ms),
            first = human_time(s.first_seen_ms),
        );
        if let Some(why) = s.suspicious.as_deref() {
            let text = match why {
                "device_changed" => {
                    "This session was used from another device than the one it signed in on."
                }
                _ => "This session was used from two places too far apart to travel between.",
            };
            let _ = write!(
                h,
                r#"<div class="warning" role="note"><p><strong>Suspicious.</strong> {text} If it wasn't you, log it out.</p></div>"#
            );
        }
        if s.new_location && !s.confirmed {
            let place = match s.geo.as_ref().and_then(|g| g.country.as_ref()) {
                Some(_) => format!("None of your recent sessions came from {}.", location(s)),
                None => "It appeared in a country none of your recent sessions came from.".into(),
            };
            let _ = write!(
                h,
                r#"<div class="warning" role="note"><p><strong>New location.</strong> {place}"#,
                place = escape(&place)
            );
            if current {
                h.push_str(" If this is you, confirm it from one of your other devices.</p>");
            } else if d.reauth.is_some() {
                h.push_str(" If it wasn't you, sign in again to log it out.</p>");
            } else {
                let _ = write!(
                    h,
                    r#" If it wasn't you, log it out.</p><form method="post" action="/.sessiongate/sessions/{path_sid}/confirm">{csrf}<button class="plain" type="submit">This was me</button></form>"#,
                    csrf = csrf_field(d.csrf_token)
                );
            }
            h.push_str("</div>\n");
        }
        h.push_str("</div>\n");
        if !current && d.reauth.is_none() {
            let _ = write!(
                h,
                r#"<div class="actions">
<details>
<summary aria-label="Log out {label_attr}">Log out</summary>
<div class="confirm">
<p>Log out <strong>{label}</strong> ({loc})? This cannot be undone: that device will have to sign in again, and anything open there stops at once.</p>
<form method="post" action="/.sessiongate/sessions/{path_sid}/revoke">{csrf}<button class="danger" type="submit">Yes, log out this device</button></form>
</div>
</details>
</div>
"#,
                label_attr = escape(&label),
                label = escape(&label),
                loc = escape(&location(s)),
                csrf = csrf_field(d.csrf_token)
            );
        }
        h.push_str("</li>\n");
    }
    h.push_str("</ul>\n");
    let others = d
        .sessions
        .iter()
        .filter(|s| s.session_id != d.current_session_id)
        .count();
    if others > 0 && d.reauth.is_none() {
        let _ = write!(
            h,
            r#"<section class="others" aria-label="Log out everywhere else">
<details>
<summary>Log out all other sessions</summary>
<div class="confirm">
<p>Log out <strong>{others} other session{s}</strong>? This cannot be undone: every other device will have to sign in again. This device stays signed in.</p>
<form method="post" action="/.sessiongate/logout-others">{csrf}<button class="danger" type="submit">Yes, log out all other sessions</button></form>
</div>
</details>
</section>
"#,
            s = if others == 1 { "" } else { "s" },
            csrf = csrf_field(d.csrf_token)
        );
    }
    h.push_str(
        r#"<footer>Locations are approximate and come from the network address. Times are in UTC.</footer>
</main>
</body>
</html>
"#,
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn relative_times() {
        assert_eq!(ago(0, 30_000), "just now");
        assert_eq!(ago(0, 60_000), "1 minute ago");
        assert_eq!(ago(0, 7_200_000), "2 hours ago");
        assert_eq!(ago(0, 3 * 86_400_000), "3 days ago");
    }
}
