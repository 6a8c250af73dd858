//! Turning the raw file into a validated [`Config`]: every value checked,
//! paths resolved against the file's directory, keys loaded once; an error
//! names the key ([`KeyError`]) and refuses rather than clamps.

use super::*;

pub(super) fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, KeyError> {
    value.parse().map_err(|_| {
        KeyError::new(
            key,
            format!("{value:?} is not an address of the form ip:port (for example 127.0.0.1:8080)"),
        )
    })
}

pub(super) fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

pub(super) fn validate(raw: RawConfig, file: &Path, dir: &Path) -> Result<Config, KeyError> {
    let listen = Listen::try_from(InDir {
        raw: raw.listen,
        dir,
    })?;
    if listen.proxy == listen.admin {
        return Err(KeyError::new(
            "listen.admin",
            format!("{} is also listen.proxy", listen.admin),
        ));
    }

    let admin = Admin::try_from(InDir {
        raw: raw.admin,
        dir,
    })?;
    if admin.token.is_none() && !listen.admin.ip().is_loopback() {
        return Err(KeyError::new(
            "admin.token",
            format!(
                "required because listen.admin {} is not on loopback",
                listen.admin
            ),
        ));
    }
    let idp = match raw.idp {
        Some(raw) => Some(IdpConfig::try_from(InDir { raw, dir })?),
        None => None,
    };
    let mut token = TokenConfig::try_from(InDir {
        raw: raw.token,
        dir,
    })?;
    match &idp {
        None if token.keys.is_empty() => {
            return Err(KeyError::new(
                "token.keys",
                "at least one [[token.keys]] entry is required (or an [idp] to fetch keys from)",
            ))
        }
        Some(idp) => {
            // The IdP's tokens are checked against the IdP: its issuer and
            // its client ids, unless [token] says otherwise.
            if token.issuer.is_none() {
                token.issuer = idp.issuer.clone();
            }
            if token.audiences.is_empty() {
                token.audiences = idp.audiences.clone();
            }
        }
        None => {}
    }
    Ok(Config {
        file: file.to_path_buf(),
        listen,
        upstream: Upstream::try_from(raw.upstream)?,
        token,
        idp,
        ssf: match raw.ssf {
            Some(raw) => Some(SsfConfig::try_from(InDir { raw, dir })?),
            None => None,
        },
        log_format: match raw.log.format.as_str() {
            "" => crate::logs::LogFormat::Text,
            f => crate::logs::LogFormat::parse(f).ok_or_else(|| {
                KeyError::new(
                    "log.format",
                    format!("unknown format {f:?} (expected \"text\" or \"json\")"),
                )
            })?,
        },
        webhooks: raw
            .webhooks
            .into_iter()
            .enumerate()
            .map(|raw| crate::webhooks::WebhookConfig::try_from(InDir { raw, dir }))
            .collect::<Result<_, _>>()?,
        enforcement: Enforcement::try_from(raw.enforcement)?,
        admin,
        store: StoreConfig::try_from(InDir {
            raw: raw.store,
            dir,
        })?,
        geoip: Geoip::try_from(InDir {
            raw: raw.geoip,
            dir,
        })?,
        sessions: Sessions::try_from(raw.sessions)?,
    })
}

/// A raw section with the directory its relative paths are read from.
pub(super) struct InDir<'a, T> {
    pub(super) raw: T,
    pub(super) dir: &'a Path,
}

impl TryFrom<InDir<'_, raw::RawListen>> for Listen {
    type Error = KeyError;

    fn try_from(InDir { raw, dir }: InDir<'_, raw::RawListen>) -> Result<Self, KeyError> {
        Ok(Listen {
            proxy: socket_addr("listen.proxy", &raw.proxy)?,
            admin: socket_addr("listen.admin", &raw.admin)?,
            threads: match raw.threads {
                0 => return Err(KeyError::new("listen.threads", "must be at least 1")),
                n => n,
            },
            grace_period_s: raw.grace_period_s,
            shutdown_timeout: positive_secs("listen.shutdown_timeout_s", raw.shutdown_timeout_s)?,
            pid_file: resolve(dir, &raw.pid_file),
            upgrade_socket: resolve(dir, &raw.upgrade_socket),
            tls: validate_tls("listen", &raw.tls_cert_file, &raw.tls_key_file, dir)?,
            h2c: raw.h2c,
            keepalive_timeout: (raw.keepalive_timeout_s > 0)
                .then(|| Duration::from_secs(raw.keepalive_timeout_s)),
            tls_reload: positive_secs("listen.tls_reload_s", raw.tls_reload_s)?,
            request_header_timeout: (raw.request_header_timeout_s > 0)
                .then(|| Duration::from_secs(raw.request_header_timeout_s)),
        })
    }
}

impl TryFrom<raw::RawEnforcement> for Enforcement {
    type Error = KeyError;

    fn try_from(raw: raw::RawEnforcement) -> Result<Self, KeyError> {
        let mode = match raw.mode.as_str() {
            "enforce" => Mode::Enforce,
            "monitor" => Mode::Monitor,
            other => {
                return Err(KeyError::new(
                    "enforcement.mode",
                    format!("unknown mode {other:?} (expected \"enforce\" or \"monitor\")"),
                ))
            }
        };
        for (i, p) in raw.public_paths.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(KeyError::new(
                    format!("enforcement.public_paths[{i}]"),
                    format!("{p:?} must start with \"/\""),
                ));
            }
            if p.starts_with("/.sessiongate") {
                return Err(KeyError::new(
                    format!("enforcement.public_paths[{i}]"),
                    format!("{p:?} is reserved for the gateway"),
                ));
            }
            if !crate::path::is_canonical(p.as_bytes()) || p.contains(['%', '?', '#']) {
                return Err(KeyError::new(
                    format!("enforcement.public_paths[{i}]"),
                    format!("{p:?} must be a plain canonical path prefix (no dot segments, `\\`, `;`, `%`, `?` or `#`)"),
                ));
            }
        }
        Ok(Enforcement {
            mode,
            public_paths: raw.public_paths,
            login_url: match non_empty(raw.login_url) {
                Some(u) => Some(http::HeaderValue::from_str(&u).map_err(|_| {
                    KeyError::new(
                        "enforcement.login_url",
                        format!("{u:?} is not a valid header value"),
                    )
                })?),
                None => None,
            },
            fail_closed_after: (raw.fail_closed_after_s > 0)
                .then(|| Duration::from_secs(raw.fail_closed_after_s)),
            routes: if raw.routes.len() > 64 {
                return Err(KeyError::new(
                    "enforcement.routes",
                    format!("at most 64 routes, not {}", raw.routes.len()),
                ));
            } else {
                raw.routes
            }
            .into_iter()
            .enumerate()
            .map(route)
            .collect::<Result<_, _>>()?,
        })
    }
}

/// One `[[enforcement.routes]]` entry, checked: a path prefix outside the
/// gateway's own, something to check, values usable in a challenge.
fn route((i, raw): (usize, raw::RawRoute)) -> Result<Route, KeyError> {
    let key = |k: &str| format!("enforcement.routes[{i}].{k}");
    if !raw.prefix.starts_with('/') {
        return Err(KeyError::new(
            key("prefix"),
            format!("{:?} must start with \"/\"", raw.prefix),
        ));
    }
    if crate::path::widest_reading(raw.prefix.as_bytes()).starts_with(b"/.sessiongate") {
        return Err(KeyError::new(
            key("prefix"),
            format!("{:?} is reserved for the gateway", raw.prefix),
        ));
    }
    if raw.acr_values.is_empty() && raw.amr_any.is_empty() && raw.max_age_s == 0 {
        return Err(KeyError::new(
            key("prefix"),
            "sets nothing to check (acr_values, amr_any or max_age_s)",
        ));
    }
    // Values go into a quoted challenge parameter and a query string.
    let plain = |v: &String| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    };
    if let Some(v) = raw.acr_values.iter().find(|v| !plain(v)) {
        return Err(KeyError::new(
            key("acr_values"),
            format!("{v:?} must be printable ASCII without quotes, spaces or backslashes"),
        ));
    }
    if let Some(v) = raw.amr_any.iter().find(|v| !plain(v)) {
        return Err(KeyError::new(
            key("amr_any"),
            format!("{v:?} must be printable ASCII without quotes, spaces or backslashes"),
        ));
    }
    Ok(Route {
        prefix: raw.prefix,
        acr_values: raw.acr_values,
        amr_any: raw.amr_any,
        max_age_s: match raw.max_age_s {
            0 => None,
            s => Some(positive_secs(&key("max_age_s"), s)?.as_secs()),
        },
    })
}

impl TryFrom<InDir<'_, raw::RawAdmin>> for Admin {
    type Error = KeyError;

    fn try_from(InDir { raw, dir }: InDir<'_, raw::RawAdmin>) -> Result<Self, KeyError> {
        let admin_token = match (&raw.token, &raw.token_env) {
            (t, None) => non_empty(t.clone()),
            (t, Some(_)) if !t.is_empty() => {
                return Err(KeyError::new(
                    "admin.token_env",
                    "set either admin.token or admin.token_env, not both",
                ))
            }
            (_, Some(var)) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => {
                    return Err(KeyError::new(
                        "admin.token_env",
                        format!("environment variable {var:?} is not set or empty"),
                    ))
                }
            },
        };
        Ok(Admin {
            token: admin_token,
            tls: validate_tls("admin", &raw.tls_cert_file, &raw.tls_key_file, dir)?,
        })
    }
}

impl TryFrom<InDir<'_, raw::RawStore>> for StoreConfig {
    type Error = KeyError;

    fn try_from(InDir { raw, dir }: InDir<'_, raw::RawStore>) -> Result<Self, KeyError> {
        let store = StoreConfig {
            backend: match raw.backend.as_str() {
                "embedded" => Backend::Embedded,
                "redis" => Backend::Redis,
                other => {
                    return Err(KeyError::new(
                        "store.backend",
                        format!("unknown backend {other:?} (expected \"embedded\" or \"redis\")"),
                    ))
                }
            },
            path: resolve(dir, &raw.path),
            redis_url: raw.redis_url,
            purge_interval: positive_secs("store.purge_interval_s", raw.purge_interval_s)?,
            busy_timeout: Duration::from_millis(raw.busy_timeout_ms),
            redis_prefix: raw.redis_prefix,
            redis_stream_maxlen: if raw.redis_stream_maxlen >= 100 {
                raw.redis_stream_maxlen
            } else {
                return Err(KeyError::new(
                    "store.redis_stream_maxlen",
                    format!("must be at least 100, not {}", raw.redis_stream_maxlen),
                ));
            },
            redis_ca_file: non_empty(raw.redis_ca_file).map(|p| resolve(dir, &p)),
            audit_max_entries: if raw.audit_max_entries >= 1000 {
                raw.audit_max_entries
            } else {
                return Err(KeyError::new(
                    "store.audit_max_entries",
                    format!("must be at least 1000, not {}", raw.audit_max_entries),
                ));
            },
        };
        if store.backend == Backend::Redis
            && !(store.redis_url.starts_with("redis://")
                || store.redis_url.starts_with("rediss://"))
        {
            return Err(KeyError::new(
                "store.redis_url",
                format!(
                    "{:?} must start with redis:// or rediss://",
                    store.redis_url
                ),
            ));
        }
        Ok(store)
    }
}

impl TryFrom<InDir<'_, raw::RawGeoip>> for Geoip {
    type Error = KeyError;

    fn try_from(InDir { raw, dir }: InDir<'_, raw::RawGeoip>) -> Result<Self, KeyError> {
        let mut trusted_proxies = Vec::new();
        for (i, c) in raw.trusted_proxies.iter().enumerate() {
            let net = c
                .parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    KeyError::new(
                        format!("geoip.trusted_proxies[{i}]"),
                        format!("{c:?} is not a CIDR (10.0.0.0/8) or an IP address"),
                    )
                })?;
            trusted_proxies.push(net);
        }
        Ok(Geoip {
            database: non_empty(raw.database).map(|p| resolve(dir, &p)),
            trusted_proxies,
            reload: positive_secs("geoip.reload_s", raw.reload_s)?,
        })
    }
}

impl TryFrom<raw::RawSessions> for Sessions {
    type Error = KeyError;

    fn try_from(raw: raw::RawSessions) -> Result<Self, KeyError> {
        if raw.max_tracked == 0 {
            return Err(KeyError::new("sessions.max_tracked", "must be at least 1"));
        }
        Ok(Sessions {
            idle_ttl_ms: positive_secs("sessions.idle_ttl_s", raw.idle_ttl_s)?.as_millis() as i64,
            max_tracked: raw.max_tracked,
            persist_interval: positive_secs("sessions.persist_interval_s", raw.persist_interval_s)?,
            purge_interval: positive_secs("sessions.purge_interval_s", raw.purge_interval_s)?,
            refuse_new_location: raw.refuse_new_location,
            max_per_user: (raw.max_per_user > 0).then_some(raw.max_per_user),
            max_travel_kmh: if (1.0..=100_000.0).contains(&raw.max_travel_kmh) {
                raw.max_travel_kmh
            } else {
                return Err(KeyError::new(
                    "sessions.max_travel_kmh",
                    format!("must be from 1 to 100000, not {}", raw.max_travel_kmh),
                ));
            },
            revoke_suspicious: match raw.on_suspicious.as_str() {
                "flag" => false,
                "revoke" => true,
                other => {
                    return Err(KeyError::new(
                        "sessions.on_suspicious",
                        format!("unknown value {other:?} (expected \"flag\" or \"revoke\")"),
                    ))
                }
            },
            reauth_max_age_s: match raw.reauth_max_age_s {
                0 => None,
                s => Some(positive_secs("sessions.reauth_max_age_s", s)?.as_secs()),
            },
        })
    }
}

/// `{table}.tls_cert_file` and `{table}.tls_key_file`: both or neither; they
/// must load into a server certificate, so `check-config` finds a bad pair
/// (the missing-file check names which of the two keys is wrong).
fn validate_tls(
    table: &str,
    cert: &str,
    key: &str,
    dir: &Path,
) -> Result<Option<ListenTls>, KeyError> {
    let cert_key = format!("{table}.tls_cert_file");
    let key_key = format!("{table}.tls_key_file");
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => return Err(KeyError::new(key_key, format!("required with {cert_key}"))),
        (true, false) => return Err(KeyError::new(cert_key, format!("required with {key_key}"))),
        (false, false) => {}
    }
    let tls = ListenTls {
        cert_file: resolve(dir, cert),
        key_file: resolve(dir, key),
    };
    for (k, path) in [(&cert_key, &tls.cert_file), (&key_key, &tls.key_file)] {
        if let Err(e) = std::fs::metadata(path) {
            return Err(KeyError::new(
                k.as_str(),
                format!("{}: {e}", path.display()),
            ));
        }
    }
    match crate::certificate::load(&tls) {
        Ok(_) => {}
        Err(e @ crate::certificate::LoadError::Files(_)) => {
            return Err(KeyError::new(cert_key, e.to_string()))
        }
        Err(e @ crate::certificate::LoadError::Pair(_)) => {
            return Err(KeyError::new(key_key, e.to_string()))
        }
    }
    Ok(Some(tls))
}

impl TryFrom<raw::RawUpstream> for Upstream {
    type Error = KeyError;

    fn try_from(raw: raw::RawUpstream) -> Result<Self, KeyError> {
        upstream(raw)
    }
}

fn upstream(raw: raw::RawUpstream) -> Result<Upstream, KeyError> {
    let (host, port) = raw.address.rsplit_once(':').ok_or_else(|| {
        KeyError::new(
            "upstream.address",
            format!("{:?} is not host:port", raw.address),
        )
    })?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(KeyError::new(
            "upstream.address",
            format!("{:?} is not host:port", raw.address),
        ));
    }
    let sni = if raw.sni.is_empty() {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    } else {
        raw.sni
    };
    Ok(Upstream {
        address: raw.address,
        tls: raw.tls,
        sni,
        connect_timeout: positive_ms("upstream.connect_timeout_ms", raw.connect_timeout_ms)?,
        read_timeout: (raw.read_timeout_s > 0).then(|| Duration::from_secs(raw.read_timeout_s)),
        x_forwarded: raw.x_forwarded,
    })
}

/// Longest interval a `*_s` key takes: ten years (also keeps every
/// derived millisecond count far from overflow).
pub(super) const MAX_INTERVAL_S: u64 = 10 * 365 * 24 * 3600;

/// A number of seconds from 1 to [`MAX_INTERVAL_S`]; anything else is
/// refused with the key named (never clamped).
pub(super) fn positive_secs(key: &str, value: u64) -> Result<Duration, KeyError> {
    if value == 0 || value > MAX_INTERVAL_S {
        return Err(KeyError::new(
            key,
            format!("must be from 1 to {MAX_INTERVAL_S} seconds, not {value}"),
        ));
    }
    Ok(Duration::from_secs(value))
}

/// A number of milliseconds from 1 to [`MAX_INTERVAL_S`] seconds.
fn positive_ms(key: &str, value: u64) -> Result<Duration, KeyError> {
    if value == 0 || value > MAX_INTERVAL_S * 1000 {
        return Err(KeyError::new(
            key,
            format!(
                "must be from 1 to {} milliseconds, not {value}",
                MAX_INTERVAL_S * 1000
            ),
        ));
    }
    Ok(Duration::from_millis(value))
}
