//! The command line (README, "Command line"). Exit codes: 0 success, 1 when the
//! admin API refused or failed (or the gateway could not start), 2 on usage
//! or configuration errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::gateway::ProcessOptions;

/// The `sessiongate` command line.
#[derive(Debug, Parser)]
#[command(
    name = "sessiongate",
    version,
    about = "Session revocation at the gateway"
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// One `sessiongate` subcommand and its arguments.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Take over the listeners of a running gateway (graceful upgrade:
        /// start the new binary with --upgrade, then send SIGQUIT to the old one).
        #[arg(long, short)]
        upgrade: bool,
        /// Detach and run in the background (writes listen.pid_file).
        #[arg(long, short)]
        daemon: bool,
        /// Log lines as `text` or `json` (default: `log.format`, else text).
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Validate a configuration file: exit 0, or exit 2 naming file, line and key.
    CheckConfig {
        /// Configuration file to validate.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Mint a token with the configuration's first HMAC key (tests, demos).
    Token {
        /// Configuration file whose first HMAC key signs the token.
        #[arg(long, short)]
        config: PathBuf,
        /// User id, written to the configured user claim (token.user_claim).
        #[arg(long)]
        sub: String,
        /// Session id, written to the configured session claim (token.session_claim).
        #[arg(long)]
        sid: String,
        /// Lifetime, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Issued-at (UNIX seconds); default now.
        #[arg(long)]
        iat: Option<i64>,
    },
    /// Run everything locally: gateway :8080, echo upstream :3000, admin :9090.
    Demo {
        /// Where the demo keeps its config and data.
        #[arg(long, default_value = "sessiongate-demo")]
        dir: PathBuf,
    },
    /// Run only the built-in echo upstream (what config/sessiongate.toml expects).
    Echo {
        /// Address (ip:port) the echo upstream listens on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
    },
    /// Revoke a session, or every session of a user (admin client).
    Revoke {
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
        /// Session id to revoke.
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        session: Option<String>,
        /// User id whose sessions are all revoked.
        #[arg(long)]
        user: Option<String>,
        /// With --user: the session to keep.
        #[arg(long, requires = "user")]
        except: Option<String>,
        /// Reason recorded in the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke every session id listed in a file (one per line), straight into
    /// the configured store; a running gateway applies them from the store.
    Import {
        /// Configuration file naming the store to write to.
        #[arg(long, short)]
        config: PathBuf,
        /// File of session ids, one per line ("-" for standard input).
        #[arg(long)]
        sessions: PathBuf,
        /// Reason recorded for every revocation and audit entry.
        #[arg(long, default_value = "imported")]
        reason: String,
    },
    /// List a user's sessions as a table (admin client).
    Sessions {
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
        /// User id whose sessions are listed.
        #[arg(long)]
        user: String,
    },
}

/// How an admin client reaches the admin API: base URL, token, trusted CA.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API base URL, e.g. http://127.0.0.1:9090
    #[arg(long)]
    pub admin: String,
    /// Admin token (or SESSIONGATE_ADMIN_TOKEN).
    #[arg(long, env = "SESSIONGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// PEM CA certificate to trust for an https:// admin API signed by a
    /// private CA (or SESSIONGATE_ADMIN_CA_FILE); public CAs need nothing.
    #[arg(long, env = "SESSIONGATE_ADMIN_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

fn init_logging() {
    crate::logs::init(crate::logs::LogFormat::Text);
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            upgrade,
            daemon,
            log_format,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            crate::logs::init(
                log_format
                    .as_deref()
                    .and_then(crate::logs::LogFormat::parse)
                    .unwrap_or(config.log_format),
            );
            crate::gateway::run(config, ProcessOptions { upgrade, daemon }, Vec::new())
        }
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(e),
        },
        Command::Token {
            config,
            sub,
            sid,
            ttl,
            iat,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            let iat = iat.unwrap_or_else(crate::clock::now_s);
            match crate::token::mint::mint(&config.token, &sub, &sid, iat, ttl) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", config.file.display());
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo { dir } => {
            init_logging();
            crate::demo::run(&dir)
        }
        Command::Echo { listen } => {
            init_logging();
            let mut server = pingora::server::Server::new_with_opt_and_conf(
                None,
                pingora::server::configuration::ServerConf::default(),
            );
            server.add_service(crate::echo::service(&listen));
            eprintln!("echo upstream on http://{listen}/");
            server.run_forever()
        }
        Command::Revoke {
            admin,
            session,
            user,
            except,
            reason,
        } => {
            let mut query = Vec::new();
            if let Some(r) = &reason {
                query.push(("reason", r.as_str()));
            }
            let path = match (&session, &user) {
                (Some(s), _) => format!("/v1/sessions/{}", encode_segment(s)),
                (None, Some(u)) => {
                    if let Some(e) = &except {
                        query.push(("except", e.as_str()));
                    }
                    format!("/v1/users/{}/sessions", encode_segment(u))
                }
                (None, None) => unreachable!("clap requires --session or --user"),
            };
            admin_call(&admin, reqwest::Method::DELETE, &path, &query, |v| {
                serde_json::to_string_pretty(v).unwrap_or_default()
            })
        }
        Command::Import {
            config,
            sessions,
            reason,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            import(&config, &sessions, &reason)
        }
        Command::Sessions { admin, user } => {
            let path = format!("/v1/users/{}/sessions", encode_segment(&user));
            admin_call(&admin, reqwest::Method::GET, &path, &[], sessions_table)
        }
    }
}

/// The sessions of `GET /v1/users/{sub}/sessions` as an aligned table.
fn sessions_table(v: &serde_json::Value) -> String {
    let text = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_string();
    let mut rows = vec![[
        "SESSION".to_string(),
        "DEVICE".to_string(),
        "LOCATION".to_string(),
        "IP".to_string(),
        "FIRST SEEN".to_string(),
        "LAST SEEN".to_string(),
        "REQUESTS".to_string(),
        "STATUS".to_string(),
    ]];
    for s in v["sessions"].as_array().into_iter().flatten() {
        let device = match (s["device"]["browser"].as_str(), s["device"]["os"].as_str()) {
            (Some(b), Some(o)) => format!("{b} on {o}"),
            (Some(x), None) | (None, Some(x)) => x.to_string(),
            (None, None) => "unknown".into(),
        };
        let location = match (s["geo"]["city"].as_str(), s["geo"]["country"].as_str()) {
            (Some(city), Some(c)) => format!("{city}, {c}"),
            (None, Some(c)) => c.to_string(),
            _ => "-".into(),
        };
        let status = if s["revoked"].as_bool() == Some(true) {
            "revoked".to_string()
        } else if s["new_location"].as_bool() == Some(true) {
            "active, new location".to_string()
        } else {
            "active".to_string()
        };
        rows.push([
            text(&s["session_id"]),
            device,
            location,
            text(&s["ip"]),
            text(&s["first_seen"]),
            text(&s["last_seen"]),
            s["requests"].to_string(),
            status,
        ]);
    }
    if rows.len() == 1 {
        return "no sessions".into();
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `sessiongate import`: bulk revocation into the store.
fn import(config: &Config, file: &std::path::Path, reason: &str) -> ExitCode {
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    // A progress bar on a terminal (indicatif draws nothing otherwise); the
    // final count is printed either way.
    let progress = indicatif::ProgressBar::new_spinner().with_message("reading session ids");
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}: {human_pos} ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut ids = Vec::new();
    for (n, line) in progress.wrap_iter(reader.lines()).enumerate() {
        let Ok(line) = line else {
            eprintln!("{}:{}: not UTF-8", file.display(), n + 1);
            return ExitCode::from(2);
        };
        let id = line.trim();
        if id.is_empty() || id.starts_with('#') {
            continue;
        }
        if id.len() > crate::admin::MAX_ID_BYTES || id.chars().any(char::is_control) {
            eprintln!("{}:{}: not a session id", file.display(), n + 1);
            return ExitCode::from(2);
        }
        ids.push(id.to_string());
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let store = match crate::gateway::open_store(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e:#}", config.file.display());
            return ExitCode::from(1);
        }
    };
    let retention = crate::revocation::Retention::new(
        config.token.max_session_lifetime_s,
        config.token.leeway_s,
    );
    let authority = match crate::authority::Authority::offline(store, retention) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let total = ids.len();
    progress.set_message(format!("revoking {total} sessions in one transaction"));
    progress.enable_steady_tick(Duration::from_millis(100));
    let actor = crate::authority::Actor::import();
    let imported = runtime.block_on(authority.import_sessions(&ids, reason, &actor));
    progress.finish_and_clear();
    match imported {
        Ok(new) => {
            println!(
                "{new} revoked ({} already were), of {total} listed",
                total - new
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn config_error(e: crate::config::ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An error with its causes, for messages ("error sending request" alone
/// hides an untrusted certificate or a refused connection).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Calls the admin API; prints the answer (formatted by `show`) on success,
/// the API's error on failure.
fn admin_call(
    admin: &AdminArgs,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    show: impl FnOnce(&serde_json::Value) -> String,
) -> ExitCode {
    let base = admin.admin.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        eprintln!("--admin: {base:?} must be a URL such as http://127.0.0.1:9090");
        return ExitCode::from(2);
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(path) = &admin.ca_file {
        let cas = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
            .and_then(|cas| match cas.is_empty() {
                true => Err("no PEM certificate in it".to_string()),
                false => Ok(cas),
            });
        match cas {
            Ok(cas) => {
                for ca in cas {
                    builder = builder.add_root_certificate(ca);
                }
            }
            Err(e) => {
                eprintln!("--ca-file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start an HTTP client: {e}");
            return ExitCode::from(1);
        }
    };
    let url = format!("{base}{path}");
    let result = runtime.block_on(async {
        let resp = client
            .request(method, &url)
            .query(query)
            .bearer_auth(&admin.token)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
        Ok::<_, String>((status, text))
    });
    match result {
        Ok((status, text)) if status.is_success() => {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => println!("{}", show(&v)),
                Err(_) => println!("{text}"),
            }
            ExitCode::SUCCESS
        }
        Ok((status, text)) => {
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .map(|v| {
                    let code = v["error"].as_str().unwrap_or("error").to_string();
                    match v["error_description"].as_str() {
                        Some(m) => format!("{code}: {m}"),
                        None => code,
                    }
                })
                .unwrap_or(text);
            eprintln!("admin API answered {status}: {detail}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The single-threaded runtime a command runs its I/O on; exit 1 when it
/// cannot start.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start: {e}");
            ExitCode::from(1)
        })
}
