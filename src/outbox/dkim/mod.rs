//! DKIM signing of everything the outbox sends (mail-auth's signer, relaxed/relaxed,
//! rsa-sha256 or ed25519-sha256).
//!
//! Where: the worker signs each message just before submitting it, the one place every kind of
//! outgoing mail passes (acknowledgements, replies, and whatever is added later). The sealed
//! outbox row keeps the unsigned message, so every attempt — a retry after a temporary failure
//! or after a crash — sends the same bytes under a fresh signature (`t=` of that attempt) made
//! with the key in force at that moment; a signature never outlives a key rotation in the queue.
//!
//! * [`config`]: the `[dkim]` section; [`key`]: reading and generating keys; [`dns`]: the TXT
//!   record that publishes the public key.

pub mod config;
pub mod dns;
pub mod key;

use std::fmt;
use std::path::Path;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};

pub use config::DkimConfig;
use dns::DnsRecord;
use key::PrivateKey;

enum Inner {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The configured signer: loaded once at start, shared by the worker. Its `Debug` shows the
/// domain and selector, never the key.
pub struct Signer {
    inner: Inner,
    domain: String,
    selector: String,
    record: DnsRecord,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("domain", &self.domain).field("selector", &self.selector).finish_non_exhaustive()
    }
}

/// Why a message was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The message has none of the header fields to sign (not even From): it never will.
    #[error("none of the header fields to sign is present")]
    Unsignable,
    #[error("signing failed: {0}")]
    Failed(String),
}

impl Signer {
    /// Loads the key at `key_path` (the config's `key_file`, resolved); the error names the file.
    pub fn load(config: &DkimConfig, key_path: &Path) -> Result<Signer, String> {
        let loaded = key::load(key_path)?;
        let record = DnsRecord::new(&config.selector, &config.domain, loaded.kind, &loaded.public_key);
        let domain = config.domain.trim_end_matches('.').to_string();
        let inner = match loaded.key {
            PrivateKey::Rsa(k) => Inner::Rsa(
                DkimSigner::from_key(k)
                    .domain(&domain)
                    .selector(&config.selector)
                    .headers(&config.headers)
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed),
            ),
            PrivateKey::Ed25519(k) => Inner::Ed25519(
                DkimSigner::from_key(k)
                    .domain(&domain)
                    .selector(&config.selector)
                    .headers(&config.headers)
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed),
            ),
        };
        Ok(Signer { inner, domain, selector: config.selector.clone(), record })
    }

    /// `message` (CRLF line ends, as it goes on the wire) with a `DKIM-Signature` field in front.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature = match &self.inner {
            Inner::Rsa(s) => s.sign(message),
            Inner::Ed25519(s) => s.sign(message),
        }
        .map_err(|e| match e {
            mail_auth::Error::NoHeadersFound => SignError::Unsignable,
            other => SignError::Failed(other.to_string()),
        })?;
        let header = signature.to_header();
        let mut signed = Vec::with_capacity(header.len() + message.len());
        signed.extend_from_slice(header.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }

    /// The TXT record that must be published for receivers to verify.
    pub fn record(&self) -> &DnsRecord {
        &self.record
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }
}
