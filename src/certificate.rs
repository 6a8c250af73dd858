//! The server certificate of a TLS listener (proxy or admin), served to
//! every handshake from memory and swapped by [`Certificate::reload`] (the
//! gateway calls it when the files change), so a rotated certificate takes
//! effect without a restart. Files that cannot be loaded keep the previous
//! certificate.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

/// Certificate chain and key files of a TLS listener (proxy or admin),
/// checked at load time.
#[derive(Debug, Clone)]
pub struct ListenTls {
    /// PEM certificate chain.
    pub cert_file: std::path::PathBuf,
    /// PEM private key.
    pub key_file: std::path::PathBuf,
}

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

/// One listener's certificate: what handshakes get, and its files.
pub struct Certificate {
    files: ListenTls,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_file", &self.files.cert_file)
            .finish()
    }
}

impl Certificate {
    /// Loads `files` into a certificate to serve; refuses them as [`load`] does.
    pub fn open(files: ListenTls) -> Result<Arc<Certificate>, LoadError> {
        let key = load(&files)?;
        Ok(Arc::new(Certificate {
            files,
            current: ArcSwap::from_pointee(key),
        }))
    }

    /// The certificate and key files this certificate is (re)loaded from.
    pub fn files(&self) -> &ListenTls {
        &self.files
    }

    /// Loads the files again; on error the current certificate stays.
    pub fn reload(&self) -> Result<(), LoadError> {
        self.current.store(Arc::new(load(&self.files)?));
        Ok(())
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
