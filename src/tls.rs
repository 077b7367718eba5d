//! TLS for STARTTLS (and later IMAPS/HTTPS): rustls with the aws-lc-rs provider, TLS 1.2 and 1.3
//! only. Without a configured certificate, a self-signed one is generated into DATA_DIR/certs on
//! first start and reused afterwards, so the fingerprint stays stable across restarts.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[tls]`: the certificate and key; both or neither (then one is generated).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// (key within `[tls]`, reason) when only one of the two is given.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(("key".into(), "tls.cert and tls.key must be given together".into())),
            (None, Some(_)) => Err(("cert".into(), "tls.cert and tls.key must be given together".into())),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the certificate and key come from: the config (relative paths are within the data
/// dir), or the generated pair in the data dir.
pub fn cert_paths(tls: &TlsConfig, data_dir: &Path) -> (PathBuf, PathBuf, bool) {
    let resolve = |path: &Path| if path.is_absolute() { path.to_path_buf() } else { data_dir.join(path) };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => (resolve(cert), resolve(key), false),
        _ => (data_dir.join("certs/cert.pem"), data_dir.join("certs/key.pem"), true),
    }
}

/// The rustls server configuration; `hostname` names a generated certificate.
pub fn server_config(tls: &TlsConfig, data_dir: &Path, hostname: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path, generated) = cert_paths(tls, data_dir);
    if generated && !(cert_path.exists() && key_path.exists()) {
        generate(hostname, &cert_path, &key_path)?;
        tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    }
    let file_err = |path: &Path, reason: String| TlsError::File { path: path.to_path_buf(), reason };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(&cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(&cert_path, "contains no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn generate(hostname: &str, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let dir = cert_path.parent().expect("cert path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| TlsError::File { path: dir.to_path_buf(), reason: e.to_string() })?;
    let write = |path: &Path, pem: &str, mode: u32| -> Result<(), TlsError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(|e| TlsError::File { path: path.to_path_buf(), reason: e.to_string() })?;
        f.write_all(pem.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| TlsError::File { path: path.to_path_buf(), reason: e.to_string() })
    };
    write(key_path, &certified.signing_key.serialize_pem(), 0o600)?;
    write(cert_path, &certified.cert.pem(), 0o644)
}
