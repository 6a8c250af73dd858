//! Assembles a gateway process from a validated [`Config`]: the shared state,
//! the pingora services (proxy, admin) and the background services (state
//! load and follow, expiry purge, JWKS reload).
//!
//! Start-up order: the store is opened, the admin listener comes up at once
//! (`/readyz` answers 503), the state service loads every revocation into
//! memory, and only then does the proxy service start accepting traffic
//! (a pingora service dependency).

use std::sync::Arc;
use std::time::Duration;

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceWithDependents;
use prometheus::Registry;

use crate::admin::receivers::Receivers;
use crate::admin::selfservice::SelfService;
use crate::admin::AdminApp;
use crate::authority::follow::{Purge, StateSync};
use crate::authority::{Authority, Readiness};
use crate::certificate::Certificate;
use crate::closer::app::Closable;
use crate::closer::ConnectionRegistry;
use crate::config::{Backend, Config, KeyMaterial};
use crate::enforcement::Enforcer;
use crate::file_watch::FileWatch;
use crate::geoip::GeoIp;
use crate::idp::keys::{IdpKeys, KeyRefresh};
use crate::metrics::Metrics;
use crate::outbox::Deliverer;
use crate::proxy::Proxy;
use crate::revocation::RevocationSet;
use crate::sessions::sync::SessionSync;
use crate::sessions::{RegistryLimits, SessionRegistry};
use crate::store::redis::RedisSettings;
use crate::store::{Embedded, Health, RedisStore, Store};
use crate::token::KeySet;

/// Everything a gateway process shares between its services.
pub struct Gateway {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Open proxy connections and the session each carries, so a revocation
    /// can close them.
    pub connections: Arc<ConnectionRegistry>,
    /// Live sessions and their metadata (devices, locations).
    pub sessions: Arc<SessionRegistry>,
    /// Every exported metric.
    pub metrics: Arc<Metrics>,
    /// The request decision: token verification and revocation check.
    pub enforcer: Arc<Enforcer>,
    /// The one writer of revocations: store, memory, connections, audit.
    pub authority: Arc<Authority>,
    /// Set once the revocation state is loaded (`/readyz`).
    pub readiness: Arc<Readiness>,
    /// When the store last answered (`enforcement.fail_closed_after_s`).
    pub health: Arc<Health>,
    /// The IdP's keys (`[idp]`), fetched in the background.
    pub idp: Option<Arc<IdpKeys>>,
    /// The Shared Signals transmitter's keys (`[ssf]`).
    pub ssf: Option<Arc<IdpKeys>>,
}

/// pingora's own switches, passed through from our command line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessOptions {
    /// Take over the listeners of a running gateway (graceful upgrade).
    pub upgrade: bool,
    /// Detach and run in the background.
    pub daemon: bool,
}

/// The store `config` names (not connected yet for Redis).
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config.store.backend {
        Backend::Embedded => Arc::new(
            Embedded::open(&config.store.path, config.store.busy_timeout)?
                .with_audit_max(config.store.audit_max_entries),
        ),
        Backend::Redis => Arc::new(RedisStore::new(RedisSettings {
            url: config.store.redis_url.clone(),
            ca_file: config.store.redis_ca_file.clone(),
            prefix: config.store.redis_prefix.clone(),
            stream_maxlen: config.store.redis_stream_maxlen,
            audit_maxlen: config.store.audit_max_entries,
            session_ttl: Duration::from_millis(config.sessions.idle_ttl_ms as u64),
        })?),
    })
}

impl Gateway {
    /// Builds the shared state: opens the store, loads the keys.
    pub fn new(config: Config) -> anyhow::Result<Gateway> {
        let metrics = Arc::new(Metrics::new(Registry::new())?);
        let store = open_store(&config)?;
        let revocations = Arc::new(RevocationSet::new());
        let connections = Arc::new(ConnectionRegistry::new(metrics.clone()));
        let enforcer =
            Arc::new(Enforcer::new(&config, revocations.clone()).map_err(|e| {
                anyhow::anyhow!("token.keys[{}].{}: {}", e.index, e.field, e.message)
            })?);
        enforcer
            .verifier()
            .with_keys(|keys| report_skipped(keys, &metrics));
        let geoip = Arc::new(
            GeoIp::open(config.geoip.database.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: geoip.database: {e}", config.file.display()))?,
        );
        let sessions = Arc::new(SessionRegistry::new(
            geoip,
            metrics.clone(),
            RegistryLimits {
                max_tracked: config.sessions.max_tracked,
                idle_ttl_ms: config.sessions.idle_ttl_ms,
                max_travel_kmh: config.sessions.max_travel_kmh,
                record_created: config
                    .webhooks
                    .iter()
                    .any(|w| w.events.contains(&crate::webhooks::EventType::Created)),
            },
        ));
        let authority = Arc::new(Authority::new(
            store,
            revocations,
            metrics.clone(),
            connections.clone(),
            crate::revocation::Retention::new(
                config.token.max_session_lifetime_s,
                config.token.leeway_s,
            ),
        ));
        let idp = match &config.idp {
            Some(idp_config) => {
                let (enforcer, key_metrics, error_metrics) =
                    (enforcer.clone(), metrics.clone(), metrics.clone());
                Some(Arc::new(
                    IdpKeys::new(
                        idp_config.into(),
                        enforcer.verifier().key_misses(),
                        Box::new(move |keys| {
                            report_skipped(keys, &key_metrics);
                            enforcer.verifier().replace_idp_keys(keys.clone());
                        }),
                        Box::new(move || error_metrics.jwks_fetch_errors.inc()),
                    )
                    .map_err(|e| anyhow::anyhow!("{}: idp.ca_file: {e}", config.file.display()))?,
                ))
            }
            None => None,
        };
        let ssf = match &config.ssf {
            Some(ssf_config) => {
                let error_metrics = metrics.clone();
                Some(Arc::new(
                    IdpKeys::new(
                        ssf_config.into(),
                        Arc::new(tokio::sync::Notify::new()),
                        Box::new(|_| {}),
                        Box::new(move || error_metrics.jwks_fetch_errors.inc()),
                    )
                    .map_err(|e| anyhow::anyhow!("{}: ssf.ca_file: {e}", config.file.display()))?,
                ))
            }
            None => None,
        };
        Ok(Gateway {
            idp,
            ssf,
            config: Arc::new(config),
            connections,
            sessions,
            metrics,
            enforcer,
            authority,
            readiness: Arc::new(Readiness::default()),
            health: Arc::new(Health::default()),
        })
    }

    /// The pingora server with every service of the gateway, plus `extra`
    /// services (the demo's echo upstream).
    pub fn server(
        self,
        options: ProcessOptions,
        extra: Vec<Box<dyn ServiceWithDependents>>,
    ) -> anyhow::Result<Server> {
        let config = &self.config;
        let conf = ServerConf {
            pid_file: config.listen.pid_file.to_string_lossy().into_owned(),
            upgrade_sock: config.listen.upgrade_socket.to_string_lossy().into_owned(),
            threads: config.listen.threads,
            grace_period_seconds: Some(config.listen.grace_period_s),
            graceful_shutdown_timeout_seconds: Some(config.listen.shutdown_timeout.as_secs()),
            daemon: options.daemon,
            ..ServerConf::default()
        };
        for p in [&config.listen.pid_file, &config.listen.upgrade_socket] {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("cannot create {} for {}: {e}", dir.display(), p.display())
                })?;
            }
        }
        let opt = Opt {
            upgrade: options.upgrade,
            daemon: options.daemon,
            ..Opt::default()
        };
        let mut server = Server::new_with_opt_and_conf(opt, conf);
        server.bootstrap();

        let state = server.add_service(background_service(
            "state",
            StateSync {
                authority: self.authority.clone(),
                sessions: self.sessions.clone(),
                idle_ttl_ms: config.sessions.idle_ttl_ms,
                readiness: self.readiness.clone(),
                health: self.health.clone(),
                metrics: self.metrics.clone(),
            },
        ));
        server.add_service(background_service(
            "session-sync",
            SessionSync {
                sessions: self.sessions.clone(),
                store: self.authority.store().clone(),
                interval: config.sessions.persist_interval,
                idle_ttl_ms: config.sessions.idle_ttl_ms,
                purge_interval: config.sessions.purge_interval,
            },
        ));
        if let Some(path) = self.sessions.geoip().path() {
            let geoip = self.sessions.geoip().clone();
            server.add_service(background_service(
                "geoip-reload",
                FileWatch {
                    what: "GeoIP database",
                    files: vec![path.to_path_buf()],
                    interval: config.geoip.reload,
                    reload: Box::new(move || geoip.reload().map_err(|e| e.to_string())),
                },
            ));
        }
        let holder = {
            let mut id = [0u8; 8];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
            format!("{}-{}", std::process::id(), hex::encode(id))
        };
        for webhook in &config.webhooks {
            self.readiness.hold();
            server.add_service(background_service(
                "webhook",
                Deliverer {
                    config: webhook.clone(),
                    store: self.authority.store().clone(),
                    sessions: self.sessions.clone(),
                    metrics: self.metrics.clone(),
                    holder: holder.clone(),
                    readiness: self.readiness.clone(),
                },
            ));
        }
        for (name, keys) in [("idp-keys", &self.idp), ("ssf-keys", &self.ssf)] {
            if let Some(keys) = keys {
                server.add_service(background_service(name, KeyRefresh { idp: keys.clone() }));
            }
        }
        let mut receivers = Receivers::new(
            self.authority.clone(),
            self.metrics.clone(),
            config.token.leeway_s,
            &config.token.user_claim,
            config.token.issuer.as_deref(),
        );
        if let (Some(keys), Some(c)) = (&self.idp, &config.idp) {
            receivers = receivers.with_backchannel(keys.clone(), c);
        }
        if let (Some(keys), Some(c)) = (&self.ssf, &config.ssf) {
            receivers = receivers.with_signals(keys.clone(), c);
        }
        let self_service = Arc::new(
            SelfService::new(
                self.enforcer.clone(),
                self.sessions.clone(),
                self.authority.clone(),
                config.enforcement.login_url.clone(),
            )
            .with_receivers(receivers)
            .with_reauth(config.sessions.reauth_max_age_s),
        );

        let proxy = Proxy::new(
            config,
            self.enforcer.clone(),
            self.metrics.clone(),
            self.connections.clone(),
            self.sessions.clone(),
            self_service,
            self.health.clone(),
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.file.display()))?;
        let mut http = pingora::proxy::http_proxy(&server.configuration, proxy);
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = config.listen.h2c;
        // pingora keeps an idle HTTP/2 connection forever by default. With
        // keep-alive off (0), an HTTP/2 connection goes once idle briefly.
        options.h2_idle_timeout = Some(config.listen.keepalive_timeout.unwrap_or(
            Duration::from_secs(crate::config::raw::DEFAULT_H2_IDLE_WITHOUT_KEEPALIVE_S),
        ));
        http.server_options = Some(options);
        let mut proxy_service = Service::new(
            "proxy".to_string(),
            Closable::new(
                http,
                self.connections.clone(),
                config.listen.request_header_timeout,
            ),
        );
        let proxy_addr = config.listen.proxy.to_string();
        let mut certificates = Vec::new();
        match &config.listen.tls {
            Some(tls) => {
                let certificate = Certificate::open(tls.clone())
                    .map_err(|e| anyhow::anyhow!("{}: listen.tls: {e}", config.file.display()))?;
                let mut settings = tls_settings(&certificate)?;
                settings.enable_h2();
                proxy_service.add_tls_with_settings(&proxy_addr, None, settings);
                certificates.push(certificate);
            }
            None => proxy_service.add_tcp(&proxy_addr),
        }
        let proxy_handle = server.add_service(proxy_service);
        proxy_handle.add_dependency(&state);

        let admin = AdminApp::new(
            self.authority.clone(),
            self.sessions.clone(),
            self.metrics.clone(),
            self.readiness.clone(),
            config.admin.token.as_deref(),
            config.listen.admin,
        )
        .with_idp(self.idp.clone());
        // The admin listener gets the proxy listener's header deadline; its
        // connections are never closed by revocations (a registry of its own).
        let mut admin_service = Service::new(
            "admin".to_string(),
            Closable::new(
                pingora::apps::http_app::HttpServer::new_app(admin),
                Arc::new(ConnectionRegistry::new(self.metrics.clone())),
                config.listen.request_header_timeout,
            ),
        );
        admin_service.threads = Some(1);
        let admin_addr = config.listen.admin.to_string();
        match &config.admin.tls {
            Some(tls) => {
                let certificate = Certificate::open(tls.clone())
                    .map_err(|e| anyhow::anyhow!("{}: admin.tls: {e}", config.file.display()))?;
                admin_service.add_tls_with_settings(&admin_addr, None, tls_settings(&certificate)?);
                certificates.push(certificate);
            }
            None => admin_service.add_tcp(&admin_addr),
        }
        for certificate in certificates {
            let files = vec![
                certificate.files().cert_file.clone(),
                certificate.files().key_file.clone(),
            ];
            server.add_service(background_service(
                "tls-reload",
                FileWatch {
                    what: "TLS certificate",
                    files,
                    interval: config.listen.tls_reload,
                    reload: Box::new(move || certificate.reload().map_err(|e| e.to_string())),
                },
            ));
        }
        server.add_service(admin_service);

        server.add_service(background_service(
            "purge",
            Purge {
                authority: self.authority.clone(),
                interval: config.store.purge_interval,
            },
        ));

        let jwks: Vec<_> = config
            .token
            .keys
            .iter()
            .filter_map(|k| match &k.material {
                KeyMaterial::JwksFile(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        if !jwks.is_empty() {
            let (keys, enforcer) = (config.token.keys.clone(), self.enforcer.clone());
            let metrics = self.metrics.clone();
            server.add_service(background_service(
                "jwks-reload",
                FileWatch {
                    what: "JWKS keys",
                    files: jwks,
                    interval: config.token.jwks_reload,
                    reload: Box::new(move || {
                        let loaded = KeySet::load(&keys).map_err(|e| {
                            format!("token.keys[{}].{}: {}", e.index, e.field, e.message)
                        })?;
                        report_skipped(&loaded, &metrics);
                        if loaded.is_empty() {
                            tracing::warn!(
                                "the reloaded keys hold no usable key: every token is refused"
                            );
                        }
                        enforcer.verifier().replace_keys(loaded);
                        Ok(())
                    }),
                },
            ));
        }
        for service in extra {
            server.add_boxed_service(service);
        }
        Ok(server)
    }
}

/// Logs each JWKS key that was not loaded, with its `kid` and why, and
/// counts it in `sessiongate_jwks_keys_skipped_total`.
fn report_skipped(keys: &KeySet, metrics: &Metrics) {
    for k in keys.skipped() {
        tracing::warn!(kid = k.kid.as_deref().unwrap_or("-"), reason = %k.reason, "JWKS key skipped");
    }
    metrics
        .jwks_keys_skipped
        .inc_by(keys.skipped().len() as u64);
}

/// TLS settings that serve `certificate` (and whatever it is reloaded to).
fn tls_settings(
    certificate: &Arc<Certificate>,
) -> anyhow::Result<pingora::listeners::tls::TlsSettings> {
    // The paths are not read: the resolver supplies the certificate.
    let mut settings = pingora::listeners::tls::TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(certificate.clone());
    Ok(settings)
}

/// Runs a gateway until it is told to stop.
pub fn run(
    config: Config,
    options: ProcessOptions,
    extra: Vec<Box<dyn pingora::services::ServiceWithDependents>>,
) -> std::process::ExitCode {
    let file = config.file.clone();
    let gateway = match Gateway::new(config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}: cannot start: {e:#}", file.display());
            return std::process::ExitCode::from(1);
        }
    };
    match gateway.server(options, extra) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            eprintln!("cannot start: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
