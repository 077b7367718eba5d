//! The `[dkim]` section: which domain signs, under which selector, with which key file, and which
//! header fields the signature covers.

use std::path::PathBuf;

use serde::Deserialize;

/// The header fields signed by default (each only when the message has it). `Auto-Submitted` is
/// among them so that nobody can strip the loop guard of an acknowledgement unnoticed.
pub const DEFAULT_HEADERS: &[&str] =
    &["From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type", "Auto-Submitted"];

fn default_headers() -> Vec<String> {
    DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect()
}

/// `[dkim]`: without it outgoing mail goes unsigned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The signing domain (`d=`); for DMARC it must align with the From domain of our mail.
    pub domain: String,
    /// The selector (`s=`): the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The private key (PKCS#8 or PKCS#1 PEM, RSA or Ed25519), relative to the data dir unless
    /// absolute. Not readable by everyone (the server refuses to start otherwise).
    pub key_file: PathBuf,
    /// Header fields to sign; `From` must be among them (RFC 6376 §5.4).
    #[serde(default = "default_headers")]
    pub headers: Vec<String>,
}

impl DkimConfig {
    /// Semantic checks, as `(key inside the section, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !is_domain(&self.domain) {
            return Err(("domain".into(), "must be a domain name such as example.com".into()));
        }
        if self.selector.is_empty() || !self.selector.split('.').all(is_label) {
            return Err(("selector".into(), "must be one or more DNS labels (letters, digits, '-', '_')".into()));
        }
        if self.key_file.as_os_str().is_empty() {
            return Err(("key_file".into(), "must name the private key file".into()));
        }
        for (i, name) in self.headers.iter().enumerate() {
            // RFC 5322 field names: printable ASCII except ':'.
            if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
                return Err((format!("headers[{i}]"), format!("{name:?} is not a header field name")));
            }
            if name.eq_ignore_ascii_case("DKIM-Signature") {
                return Err((format!("headers[{i}]"), "a signature cannot sign itself".into()));
            }
        }
        if !self.headers.iter().any(|h| h.eq_ignore_ascii_case("From")) {
            return Err(("headers".into(), "must include From (RFC 6376 requires it signed)".into()));
        }
        Ok(())
    }

    /// Whether mail from `address` aligns with the signing domain under DMARC's relaxed rule, as
    /// far as this can be told without the public-suffix list: the same domain, or one below the
    /// other. (Siblings such as `a.example.com` and `b.example.com` also align; they get a
    /// warning all the same.)
    pub fn aligns_with(&self, address: &str) -> bool {
        let Some((_, from)) = address.rsplit_once('@') else { return false };
        let (from, d) = (from.trim().to_ascii_lowercase(), self.domain.trim_end_matches('.').to_ascii_lowercase());
        from == d || from.ends_with(&format!(".{d}")) || d.ends_with(&format!(".{from}"))
    }
}

fn is_label(label: &str) -> bool {
    !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_domain(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.len() <= 253 && name.contains('.') && name.split('.').all(is_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<DkimConfig, toml::de::Error> {
        toml::from_str(&format!("domain = \"example.com\"\nselector = \"s1\"\nkey_file = \"dkim.pem\"\n{extra}"))
    }

    #[test]
    fn defaults_and_checks() {
        let c = config("").unwrap();
        assert_eq!(c.headers, default_headers());
        assert!(c.validate().is_ok());
        let key = |extra: &str| config(extra).unwrap().validate().err().map(|(k, _)| k);
        assert_eq!(key("headers = [\"To\"]"), Some("headers".into()), "From must be signed");
        assert_eq!(key("headers = [\"From\", \"Bad Name\"]"), Some("headers[1]".into()));
        assert_eq!(key("headers = [\"From\", \"dkim-signature\"]"), Some("headers[1]".into()));
        let mut c = config("").unwrap();
        c.domain = "localhost".into();
        assert_eq!(c.validate().unwrap_err().0, "domain");
        c.domain = "example.com".into();
        c.selector = "a b".into();
        assert_eq!(c.validate().unwrap_err().0, "selector");
        c.selector = "2026-11.mail".into();
        assert!(c.validate().is_ok());
        assert!(config("algorithm = \"rsa\"").is_err(), "unknown keys are refused");
    }

    #[test]
    fn alignment() {
        let c = config("").unwrap();
        assert!(c.aligns_with("support@example.com"));
        assert!(c.aligns_with("support@Mail.Example.com"));
        assert!(!c.aligns_with("support@example.org"));
        assert!(!c.aligns_with("support@notexample.com"));
        assert!(!c.aligns_with("no-at-sign"));
        let sub = DkimConfig { domain: "mail.example.com".into(), ..c };
        assert!(sub.aligns_with("support@example.com"));
    }
}
