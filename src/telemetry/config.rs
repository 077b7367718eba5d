//! `[metrics]`: the metrics and health listener, its bearer token, the free-disk minimum.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served (e.g. "127.0.0.1:9325"). Unset: no
    /// metrics listener, and nothing is recorded.
    pub listen: Option<SocketAddr>,
    /// A file (relative to the data dir) holding the token a scraper must send as
    /// `Authorization: Bearer …` for `/metrics`. The health endpoints need none.
    pub bearer_token_file: Option<PathBuf>,
    /// The token itself, in the config (prefer `bearer_token_file`, which can be kept private).
    pub bearer_token: Option<String>,
    /// `/readyz` answers 503 when the data dir's filesystem has fewer bytes free than this.
    pub min_free_disk: Option<u64>,
    /// Concurrent connections to the metrics listener (scrapers and probes).
    pub max_connections: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: None, bearer_token_file: None, bearer_token: None, min_free_disk: None, max_connections: 64 }
    }
}

impl MetricsConfig {
    /// Checks the section and reads the token (from its file, resolved against `data_dir`);
    /// or (key within `[metrics]`, reason).
    pub fn token(&self, data_dir: &Path) -> Result<Option<Zeroizing<String>>, (String, String)> {
        if self.max_connections == 0 {
            return Err(("max_connections".into(), "must be at least 1".into()));
        }
        let token = match (&self.bearer_token, &self.bearer_token_file) {
            (Some(_), Some(_)) => {
                return Err(("bearer_token".into(), "set either bearer_token or bearer_token_file, not both".into()));
            }
            (Some(token), None) => Some(("bearer_token", Zeroizing::new(token.clone()))),
            (None, Some(file)) => {
                let path = if file.is_absolute() { file.clone() } else { data_dir.join(file) };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ("bearer_token_file".to_string(), format!("cannot read {}: {e}", path.display())))?;
                Some(("bearer_token_file", Zeroizing::new(text.trim().to_string())))
            }
            (None, None) => None,
        };
        let Some((key, token)) = token else { return Ok(None) };
        // RFC 6750's b64token: what may follow "Bearer " in a header, at least 16 characters.
        let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
        if token.len() < 16 || !token.bytes().all(b64token) {
            return Err((key.into(), "the token must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / =".into()));
        }
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_one_place_and_must_be_usable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.token"), "s3cret-token-0123456789\n").unwrap();
        let from_file = MetricsConfig { bearer_token_file: Some("metrics.token".into()), ..MetricsConfig::default() };
        assert_eq!(from_file.token(dir.path()).unwrap().as_deref().map(String::as_str), Some("s3cret-token-0123456789"));
        let both = MetricsConfig { bearer_token: Some("x".repeat(20)), ..from_file.clone() };
        assert_eq!(both.token(dir.path()).unwrap_err().0, "bearer_token");
        let missing = MetricsConfig { bearer_token_file: Some("nope".into()), ..MetricsConfig::default() };
        let (key, reason) = missing.token(dir.path()).unwrap_err();
        assert_eq!(key, "bearer_token_file");
        assert!(reason.contains("nope"), "{reason}");
        let short = MetricsConfig { bearer_token: Some("short".into()), ..MetricsConfig::default() };
        assert_eq!(short.token(dir.path()).unwrap_err().0, "bearer_token");
        let spaced = MetricsConfig { bearer_token: Some("has a space in it, see".into()), ..MetricsConfig::default() };
        assert_eq!(spaced.token(dir.path()).unwrap_err().0, "bearer_token");
        assert!(MetricsConfig::default().token(dir.path()).unwrap().is_none());
    }
}
