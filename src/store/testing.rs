//! For unit tests: a store in a temp dir, and the few direct reads and writes that tests use to
//! look at or age the staff tables (expiry, lockouts, the audit log).

use super::Store;

/// A store with the default configuration in a fresh temp dir (kept while the dir lives).
pub(crate) async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::config::Settings::from_str("test.toml", crate::config::DEFAULT_CONFIG, dir.path()).unwrap();
    let store = Store::open(std::sync::Arc::new(settings)).await.unwrap();
    (dir, store)
}
