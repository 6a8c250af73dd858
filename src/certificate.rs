//! The server certificate of a TLS listener (proxy or admin), served to
//! every handshake from memory and reloaded when its files change, so a
//! rotated certificate takes effect without a restart. Files that cannot be
//! loaded keep the previous certificate.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

use crate::config::ListenTls;

/// Why a certificate and key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// A file is missing or holds no PEM certificate / private key.
    Files(String),
    /// The key cannot be used, or is not the certificate's key.
    Pair(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Files(m) | LoadError::Pair(m) => f.write_str(m),
        }
    }
}

/// Loads and checks a certificate chain and its private key.
pub fn load(files: &ListenTls) -> Result<CertifiedKey, LoadError> {
    let (cert_file, key_file) = (
        files.cert_file.to_string_lossy(),
        files.key_file.to_string_lossy(),
    );
    let (certs, key) = match pingora::tls::load_certs_and_key_files(&cert_file, &key_file) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            return Err(LoadError::Files(format!(
                "{cert_file} and {key_file}: need a PEM certificate and a PEM private key"
            )))
        }
        Err(e) => return Err(LoadError::Files(e.to_string())),
    };
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| LoadError::Pair("no TLS crypto provider".into()))?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| LoadError::Pair(format!("{key_file}: {e}")))
}

type Stamp = Option<(SystemTime, u64)>;

fn stamps(files: &ListenTls) -> [Stamp; 2] {
    [&files.cert_file, &files.key_file].map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
}

/// One listener's certificate: what handshakes get, and its files.
pub struct Certificate {
    files: ListenTls,
    current: ArcSwap<CertifiedKey>,
    seen: Mutex<[Stamp; 2]>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_file", &self.files.cert_file)
            .finish()
    }
}

impl Certificate {
    pub fn open(files: ListenTls) -> Result<Arc<Certificate>, LoadError> {
        let seen = stamps(&files);
        let key = load(&files)?;
        Ok(Arc::new(Certificate {
            files,
            current: ArcSwap::from_pointee(key),
            seen: Mutex::new(seen),
        }))
    }

    pub fn files(&self) -> &ListenTls {
        &self.files
    }

    /// Loads the files again if either changed since the last load (or
    /// failed attempt): `Ok(true)` when a new certificate is now served.
    /// A pair that fails to load keeps the current certificate and is tried
    /// again after its next change.
    pub fn reload_if_changed(&self) -> Result<bool, LoadError> {
        let now = stamps(&self.files);
        {
            let Ok(mut seen) = self.seen.lock() else {
                return Ok(false);
            };
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let key = load(&self.files)?;
        self.current.store(Arc::new(key));
        Ok(true)
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
