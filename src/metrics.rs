//! Every metric the gateway exports, in one place. Names carry the
//! `sessiongate_` prefix; labels come only from small fixed sets. Handles for
//! each label value are resolved once here, so the hot path never looks a
//! label up.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::enforcement::Outcome;

/// Counter: requests on the proxy listener, labelled `decision` by their [`Outcome`].
pub const REQUESTS_TOTAL: &str = "sessiongate_requests_total";
/// Histogram: gateway-side decision time per request (token and revocation check), in seconds.
pub const REQUEST_DURATION_SECONDS: &str = "sessiongate_request_duration_seconds";
/// Gauge: revoked sessions held in memory.
pub const REVOKED_SESSIONS: &str = "sessiongate_revoked_sessions";
/// Gauge: per-user cutoffs held in memory.
pub const USER_CUTOFFS: &str = "sessiongate_user_cutoffs";
/// Counter: requests that failed to reach or be answered by the upstream.
pub const UPSTREAM_ERRORS_TOTAL: &str = "sessiongate_upstream_errors_total";
/// Counter: store operations that failed (writes, loads, change-log reads, readiness pings).
pub const STORE_ERRORS_TOTAL: &str = "sessiongate_store_errors_total";
/// Counter: revocations acknowledged by this gateway, labelled `kind` (`session` or `user`).
pub const REVOCATIONS_TOTAL: &str = "sessiongate_revocations_total";
/// Counter: admin API requests, labelled `class` by status (`2xx` for 200-399, `4xx`, `5xx`).
pub const ADMIN_REQUESTS_TOTAL: &str = "sessiongate_admin_requests_total";
/// Counter: connections (HTTP/2: streams) closed because their session was
/// revoked, labelled `reason` by [`CloseReason`].
pub const CONNECTIONS_CLOSED_TOTAL: &str = "sessiongate_connections_closed_total";
/// Gauge: open downstream connections (HTTP/2: streams) carrying a session,
/// labelled `kind` by [`Kind`].
pub const OPEN_CONNECTIONS: &str = "sessiongate_open_connections";
/// Histogram: time from a revocation being applied here to its connection being closed, in seconds.
pub const REVOCATION_CLOSE_SECONDS: &str = "sessiongate_revocation_close_seconds";
/// Gauge: sessions in the in-memory session registry.
pub const TRACKED_SESSIONS: &str = "sessiongate_tracked_sessions";
/// Counter: sessions seen from a country none of the user's recent sessions came from.
pub const NEW_LOCATIONS_TOTAL: &str = "sessiongate_new_locations_total";
/// Histogram: time from a revocation being taken (by any gateway) to its
/// application here, in seconds, for revocations read from the store's
/// change log.
pub const REVOCATION_PROPAGATION_SECONDS: &str = "sessiongate_revocation_propagation_seconds";
/// Counter: client connections closed for not completing a request header
/// within `listen.request_header_timeout_s`.
pub const HEADER_TIMEOUTS_TOTAL: &str = "sessiongate_request_header_timeouts_total";
/// Counter: JWKS keys left unused because the gateway cannot use them safely.
pub const JWKS_KEYS_SKIPPED_TOTAL: &str = "sessiongate_jwks_keys_skipped_total";
/// Counter: failed fetches of the IdP's discovery document or JWKS.
pub const JWKS_FETCH_ERRORS_TOTAL: &str = "sessiongate_jwks_fetch_errors_total";
/// Gauge: seconds since the IdP's keys in use were fetched.
pub const JWKS_AGE_SECONDS: &str = "sessiongate_jwks_age_seconds";
/// Counter: logout tokens and security events received, by `receiver`
/// (`backchannel_logout`, `ssf`) and `result` (`revoked`, `unmatched`,
/// `acknowledged`, `refused`).
pub const IDP_EVENTS_TOTAL: &str = "sessiongate_idp_events_total";
/// Counter: webhook delivery attempts by `result` (`delivered`, `failed`,
/// `dropped` after 24 h of failures).
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "sessiongate_webhook_deliveries_total";
/// Gauge: audit entries waiting to be looked at by a webhook (at most one
/// batch of 100 counted).
pub const WEBHOOK_QUEUE: &str = "sessiongate_webhook_queue";
/// Counter: sessions marked suspicious, by `kind` (`device_changed`,
/// `impossible_travel`).
pub const SUSPICIOUS_SESSIONS_TOTAL: &str = "sessiongate_suspicious_sessions_total";

/// Revocation-to-close buckets: the target is p99 under 20 ms.
const CLOSE_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
];

/// Decision-time buckets: the target is p99 under 50 µs.
const DECISION_BUCKETS: &[f64] = &[
    0.000_002, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005,
    0.01,
];

/// What a connection is carrying, for the open-connections gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain HTTP requests and responses (`http`).
    Http = 0,
    /// A server-sent event stream response (`sse`).
    Sse = 1,
    /// An upgraded WebSocket connection (`websocket`).
    Websocket = 2,
}

impl Kind {
    /// Every label, in index order.
    pub const ALL: [Kind; 3] = [Kind::Http, Kind::Sse, Kind::Websocket];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Sse => "sse",
            Kind::Websocket => "websocket",
        }
    }
}

/// Why a connection was closed, for `sessiongate_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The connection's session was revoked (`session_revoked`).
    SessionRevoked = 0,
    /// A cutoff for the connection's user ended it (`user_revoked`).
    UserRevoked = 1,
}

impl CloseReason {
    /// Every label, in index order.
    pub const ALL: [CloseReason; 2] = [CloseReason::SessionRevoked, CloseReason::UserRevoked];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::SessionRevoked => "session_revoked",
            CloseReason::UserRevoked => "user_revoked",
        }
    }
}

/// Kinds of revocation counted by [`REVOCATIONS_TOTAL`].
#[derive(Debug, Clone, Copy)]
pub enum RevocationKind {
    /// One session revoked (`session`).
    Session,
    /// A per-user cutoff (`user`).
    User,
}

/// Every metric the gateway exports, registered on one Prometheus registry.
pub struct Metrics {
    registry: Registry,
    requests: Vec<IntCounter>,
    /// [`REQUEST_DURATION_SECONDS`].
    pub request_duration: Histogram,
    /// [`REVOKED_SESSIONS`].
    pub revoked_sessions: IntGauge,
    /// [`USER_CUTOFFS`].
    pub user_cutoffs: IntGauge,
    /// [`UPSTREAM_ERRORS_TOTAL`].
    pub upstream_errors: IntCounter,
    /// [`STORE_ERRORS_TOTAL`].
    pub store_errors: IntCounter,
    revocations: [IntCounter; 2],
    admin_ok: IntCounter,
    admin_client_error: IntCounter,
    admin_server_error: IntCounter,
    open_connections: Vec<IntGauge>,
    connections_closed: Vec<IntCounter>,
    /// [`REVOCATION_CLOSE_SECONDS`].
    pub revocation_close_seconds: Histogram,
    /// [`TRACKED_SESSIONS`].
    pub tracked_sessions: IntGauge,
    /// [`NEW_LOCATIONS_TOTAL`].
    pub new_locations: IntCounter,
    /// [`REVOCATION_PROPAGATION_SECONDS`].
    pub revocation_propagation_seconds: Histogram,
    /// [`HEADER_TIMEOUTS_TOTAL`].
    pub header_timeouts: IntCounter,
    /// [`JWKS_KEYS_SKIPPED_TOTAL`].
    pub jwks_keys_skipped: IntCounter,
    /// [`JWKS_FETCH_ERRORS_TOTAL`].
    pub jwks_fetch_errors: IntCounter,
    /// [`JWKS_AGE_SECONDS`] (set before each scrape).
    pub jwks_age_seconds: IntGauge,
    /// [`IDP_EVENTS_TOTAL`].
    pub idp_events: IntCounterVec,
    /// [`WEBHOOK_DELIVERIES_TOTAL`].
    pub webhook_deliveries: IntCounterVec,
    /// [`WEBHOOK_QUEUE`].
    pub webhook_queue: IntGauge,
    /// [`SUSPICIOUS_SESSIONS_TOTAL`].
    pub suspicious_sessions: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates and registers every metric on `registry`.
    pub fn new(registry: Registry) -> prometheus::Result<Metrics> {
        let requests_vec = IntCounterVec::new(
            Opts::new(
                REQUESTS_TOTAL,
                "Requests on the proxy listener by decision.",
            ),
            &["decision"],
        )?;
        registry.register(Box::new(requests_vec.clone()))?;
        let requests = Outcome::ALL
            .iter()
            .map(|o| requests_vec.with_label_values(&[o.label()]))
            .collect();

        let request_duration = Histogram::with_opts(
            HistogramOpts::new(
                REQUEST_DURATION_SECONDS,
                "Gateway-side decision time per request (token, revocation check).",
            )
            .buckets(DECISION_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(request_duration.clone()))?;

        let revoked_sessions = IntGauge::new(REVOKED_SESSIONS, "Revoked sessions held in memory.")?;
        registry.register(Box::new(revoked_sessions.clone()))?;
        let user_cutoffs = IntGauge::new(USER_CUTOFFS, "Per-user cutoffs held in memory.")?;
        registry.register(Box::new(user_cutoffs.clone()))?;

        let upstream_errors = IntCounter::new(
            UPSTREAM_ERRORS_TOTAL,
            "Requests that failed to reach or be answered by the upstream.",
        )?;
        registry.register(Box::new(upstream_errors.clone()))?;
        let store_errors = IntCounter::new(STORE_ERRORS_TOTAL, "Store operations that failed.")?;
        registry.register(Box::new(store_errors.clone()))?;

        let revocations_vec = IntCounterVec::new(
            Opts::new(
                REVOCATIONS_TOTAL,
                "Revocations acknowledged by this gateway.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(revocations_vec.clone()))?;
        let revocations = [
            revocations_vec.with_label_values(&["session"]),
            revocations_vec.with_label_values(&["user"]),
        ];

        let admin_vec = IntCounterVec::new(
            Opts::new(ADMIN_REQUESTS_TOTAL, "Admin API requests by status class."),
            &["class"],
        )?;
        registry.register(Box::new(admin_vec.clone()))?;

        let open_vec = IntGaugeVec::new(
            Opts::new(
                OPEN_CONNECTIONS,
                "Open downstream connections (HTTP/2: streams) carrying a session, by kind.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(open_vec.clone()))?;
        let open_connections = Kind::ALL
            .iter()
            .map(|k| open_vec.with_label_values(&[k.label()]))
            .collect();
        let closed_vec = IntCounterVec::new(
            Opts::new(
                CONNECTIONS_CLOSED_TOTAL,
                "Connections closed because their session was revoked, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(closed_vec.clone()))?;
        let connections_closed = CloseReason::ALL
            .iter()
            .map(|r| closed_vec.with_label_values(&[r.label()]))
            .collect();
        let revocation_close_seconds = Histogram::with_opts(
            HistogramOpts::new(
                REVOCATION_CLOSE_SECONDS,
                "Time from a revocation being applied here to its connection being closed.",
            )
            .buckets(CLOSE_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(revocation_close_seconds.clone()))?;

        let tracked_sessions = IntGauge::new(
            TRACKED_SESSIONS,
            "Sessions in the in-memory session registry.",
        )?;
        registry.register(Box::new(tracked_sessions.clone()))?;
        let new_locations = IntCounter::new(
            NEW_LOCATIONS_TOTAL,
            "Sessions seen from a country none of the user's recent sessions came from.",
        )?;
        registry.register(Box::new(new_locations.clone()))?;

        let revocation_propagation_seconds = Histogram::with_opts(
            HistogramOpts::new(
                REVOCATION_PROPAGATION_SECONDS,
                "Time from a revocation being taken (by any gateway) to its application here, \
                 for revocations read from the store's change log.",
            )
            .buckets(CLOSE_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(revocation_propagation_seconds.clone()))?;
        let header_timeouts = IntCounter::new(
            HEADER_TIMEOUTS_TOTAL,
            "Client connections closed for not sending a request header within \
             listen.request_header_timeout_s.",
        )?;
        registry.register(Box::new(header_timeouts.clone()))?;
        let jwks_keys_skipped = IntCounter::new(
            JWKS_KEYS_SKIPPED_TOTAL,
            "JWKS keys not used because the gateway cannot use them safely (each is logged with its kid and why).",
        )?;
        registry.register(Box::new(jwks_keys_skipped.clone()))?;
        let jwks_fetch_errors = IntCounter::new(
            JWKS_FETCH_ERRORS_TOTAL,
            "Failed fetches of the IdP's discovery document or JWKS (the keys in use are kept).",
        )?;
        registry.register(Box::new(jwks_fetch_errors.clone()))?;
        let jwks_age_seconds = IntGauge::new(
            JWKS_AGE_SECONDS,
            "Seconds since the IdP's keys in use were fetched (from the IdP or, at start-up, the cache's age).",
        )?;
        registry.register(Box::new(jwks_age_seconds.clone()))?;
        let idp_events = IntCounterVec::new(
            Opts::new(
                IDP_EVENTS_TOTAL,
                "Logout tokens and security events received, by receiver and result.",
            ),
            &["receiver", "result"],
        )?;
        registry.register(Box::new(idp_events.clone()))?;
        for receiver in ["backchannel_logout", "ssf"] {
            for result in ["revoked", "unmatched", "acknowledged", "refused"] {
                idp_events.with_label_values(&[receiver, result]);
            }
        }
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                WEBHOOK_DELIVERIES_TOTAL,
                "Webhook delivery attempts by result (delivered, failed, dropped).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        for result in ["delivered", "failed", "dropped"] {
            webhook_deliveries.with_label_values(&[result]);
        }
        let webhook_queue = IntGauge::new(
            WEBHOOK_QUEUE,
            "Audit entries waiting for webhook delivery (one batch of at most 100 counted).",
        )?;
        registry.register(Box::new(webhook_queue.clone()))?;
        let suspicious_sessions = IntCounterVec::new(
            Opts::new(
                SUSPICIOUS_SESSIONS_TOTAL,
                "Sessions marked suspicious, by kind (device_changed, impossible_travel).",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(suspicious_sessions.clone()))?;
        for kind in ["device_changed", "impossible_travel"] {
            suspicious_sessions.with_label_values(&[kind]);
        }

        Ok(Metrics {
            suspicious_sessions,
            webhook_deliveries,
            webhook_queue,
            jwks_fetch_errors,
            jwks_age_seconds,
            idp_events,
            header_timeouts,
            jwks_keys_skipped,
            revocation_propagation_seconds,
            tracked_sessions,
            new_locations,
            open_connections,
            connections_closed,
            revocation_close_seconds,
            requests,
            request_duration,
            revoked_sessions,
            user_cutoffs,
            upstream_errors,
            store_errors,
            revocations,
            admin_ok: admin_vec.with_label_values(&["2xx"]),
            admin_client_error: admin_vec.with_label_values(&["4xx"]),
            admin_server_error: admin_vec.with_label_values(&["5xx"]),
            registry,
        })
    }

    /// Counts one proxy request under its decision.
    #[inline]
    pub fn count_request(&self, outcome: Outcome) {
        self.requests[outcome as usize].inc();
    }

    /// The open-connections gauge of one kind.
    pub fn open_connections(&self, kind: Kind) -> &IntGauge {
        &self.open_connections[kind as usize]
    }

    /// Counts one connection closed by a revocation under `reason`.
    pub fn count_closed(&self, reason: CloseReason) {
        self.connections_closed[reason as usize].inc();
    }

    /// Counts one acknowledged revocation of `kind`.
    pub fn count_revocation(&self, kind: RevocationKind) {
        self.count_revocations(kind, 1);
    }

    /// Counts `n` revocations of `kind` at once (an import).
    pub fn count_revocations(&self, kind: RevocationKind, n: u64) {
        self.revocations[kind as usize].inc_by(n);
    }

    /// Counts one admin API response by its status class: 200-399 as `2xx`,
    /// 400-499 as `4xx`, anything else as `5xx`.
    pub fn count_admin(&self, status: u16) {
        match status {
            200..=399 => self.admin_ok.inc(),
            400..=499 => self.admin_client_error.inc(),
            _ => self.admin_server_error.inc(),
        }
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
