//! TLS for the client listeners (`wss://`, `https://`): the certificate chain and private
//! key of `[certificates]` (PEM files), served by rustls (ring), and reloadable while the
//! proxy runs (SIGHUP) without touching open connections: new handshakes get the new pair.
//!
//! Owns the loading and checking of the PEM files and the certificate resolver the shards'
//! acceptors share. Never reads a file on a shard: loading happens at start and on reload,
//! on the thread that asks for it; a handshake only takes a read lock for a pointer copy.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest PEM file read (a chain of a few certificates is a few KiB).
const MAX_PEM: u64 = 1024 * 1024;

/// The TLS acceptor a listener's connections go through.
pub type Acceptor = monoio_rustls::TlsAcceptor;

/// The certificate and key in use, and where they come from.
pub struct Certs {
    pem: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certs")
            .field("pem", &self.pem)
            .field("key", &self.key)
            .finish()
    }
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if meta.len() > MAX_PEM {
        return Err(format!(
            "{what} {}: larger than {MAX_PEM} bytes",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Reads a PEM chain and its private key (unencrypted PKCS#8, PKCS#1 or SEC1) and checks
/// that they belong together.
///
/// # Errors
/// A file cannot be read, holds no certificate or key, or the key does not match.
pub fn load_pair(
    pem: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain_pem = read_pem(pem, "certificates.cert_pem")?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificates.cert_pem {}: {e}", pem.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "certificates.cert_pem {}: no certificate found",
            pem.display()
        ));
    }
    let key_pem = read_pem(key, "certificates.cert_key")?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "certificates.cert_key {}: {e} (an unencrypted PEM private key is needed)",
            key.display()
        )
    })?;
    CertifiedKey::from_der(chain, der, provider)
        .map_err(|e| format!("certificates: {} and {}: {e}", pem.display(), key.display()))
}

impl Certs {
    /// Loads the pair once.
    ///
    /// # Errors
    /// See [`load_pair`].
    pub fn load(pem: &Path, key: &Path) -> Result<Arc<Certs>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(pem, key, &provider)?;
        Ok(Arc::new(Certs {
            pem: pem.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Reads the files again; on success new handshakes use the new pair, on failure the
    /// old one stays.
    ///
    /// # Errors
    /// See [`load_pair`].
    pub fn reload(&self) -> Result<(), String> {
        let pair = load_pair(&self.pem, &self.key, &self.provider)?;
        match self.current.write() {
            Ok(mut cur) => {
                *cur = Arc::new(pair);
                Ok(())
            }
            Err(_) => Err("certificate lock poisoned".into()),
        }
    }

    /// A rustls server configuration that takes its certificate from here, for the
    /// shards' acceptors (HTTP/1.1 only: no ALPN offered).
    ///
    /// # Errors
    /// The provider refuses the default protocol versions (it does not).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        let e = Certs::load(&pem, &key).unwrap_err();
        assert!(e.contains("certificates.cert_pem"), "{e}");
        std::fs::write(&pem, "not a pem").unwrap();
        let e = Certs::load(&pem, &key).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }
}
