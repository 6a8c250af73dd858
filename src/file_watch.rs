//! Reloading what lives in files (GeoIP database, JWKS, certificates) when
//! they change, without a restart: one background service per set of files.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// What a changed set of files reloads: the GeoIP database, the JWKS keys,
/// a listener's certificate.
pub type Reload = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Reloads something when one of its files changes (modification time or
/// size). A change that does not load keeps what is in use, is logged once,
/// and is tried again at the file's next change.
pub struct FileWatch {
    /// What is reloaded, for the log.
    pub what: &'static str,
    /// The files whose change triggers a reload.
    pub files: Vec<PathBuf>,
    /// How often the files are looked at.
    pub interval: Duration,
    /// Loads the new version and puts it in use, or says why not.
    pub reload: Reload,
}

fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

#[async_trait]
impl BackgroundService for FileWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut seen = stamps(&self.files);
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let now = stamps(&self.files);
            if now == seen {
                continue;
            }
            seen = now;
            match (self.reload)() {
                Ok(()) => tracing::info!(what = self.what, files = ?self.files, "reloaded"),
                Err(e) => tracing::error!(
                    what = self.what,
                    files = ?self.files,
                    error = %e,
                    "changed but cannot be loaded; keeping the previous one"
                ),
            }
        }
    }
}
