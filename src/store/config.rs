//! `[storage]`: where the database and the key file are, how writes are batched and compressed.

use std::path::PathBuf;

use serde::Deserialize;

/// What [`super::Store::open`] is handed: the resolved file paths and the `[storage]` section.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub database_path: PathBuf,
    pub master_key_path: PathBuf,
    /// The data dir, whose generated TLS files the store keeps private too.
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// A SQLite file (relative to the data dir), or a PostgreSQL URL (`postgres://…`,
    /// `postgresql://…`): see [`StorageConfig::postgres_url`].
    pub database: PathBuf,
    pub master_key_file: PathBuf,
    pub max_batch: usize,
    /// Refuse new mail (451, senders retry) once the database file would exceed this many bytes,
    /// instead of filling the disk.
    pub max_database_size: Option<u64>,
    /// "lz4" (default) or "none": compress each message before encrypting it.
    pub compression: super::codec::Compression,
    /// PostgreSQL: how often each node checks whether another node committed something, the
    /// safety net under the LISTEN/NOTIFY hint (`store::listener`). Ignored on SQLite.
    #[serde(with = "humantime_serde")]
    pub change_poll: std::time::Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database: "mailroom.db".into(),
            master_key_file: "master.key".into(),
            max_batch: 256,
            max_database_size: None,
            compression: Default::default(),
            change_poll: std::time::Duration::from_secs(5),
        }
    }
}

impl StorageConfig {
    /// The PostgreSQL URL when `database` is one; `None`: a SQLite file.
    pub fn postgres_url(&self) -> Option<&str> {
        let text = self.database.to_str()?;
        ["postgres://", "postgresql://"].iter().any(|scheme| text.starts_with(scheme)).then_some(text)
    }

    /// (key within `[storage]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(url) = self.postgres_url() {
            // The reason may be shown and logged: never with the password.
            if let Err(e) = url.parse::<sqlx::postgres::PgConnectOptions>() {
                let reason = e.to_string().replace(url, &redacted_url(url));
                return Err(("database".into(), format!("not a usable PostgreSQL URL ({}): {reason}", redacted_url(url))));
            }
            if self.max_database_size.is_some() {
                return Err(("max_database_size".into(), "applies to a SQLite database only (size PostgreSQL itself)".into()));
            }
        }
        if self.change_poll < std::time::Duration::from_millis(100) {
            return Err(("change_poll".into(), "must be at least 100ms".into()));
        }
        if !(1..=1000).contains(&self.max_batch) {
            return Err(("max_batch".into(), "must be between 1 and 1000".into()));
        }
        if self.max_database_size.is_some_and(|size| size < 64 * 1024) {
            return Err(("max_database_size".into(), "must be at least 65536 bytes".into()));
        }
        Ok(())
    }
}

/// `url` with its password replaced by `***` (in the user info and a `password=` parameter), for
/// logs and error messages.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((before, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| if p.to_ascii_lowercase().starts_with("password=") { "password=***".to_string() } else { p.to_string() })
                .collect();
            format!("{before}?{}", params.join("&"))
        }
        None => path.to_string(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_told_from_a_file_and_logged_without_its_password() {
        let mut storage = StorageConfig::default();
        assert_eq!(storage.postgres_url(), None);
        storage.database = "postgres.db".into();
        assert_eq!(storage.postgres_url(), None, "a file whose name starts with postgres");
        for url in ["postgres://mr:s3cret@db.internal:5432/mailroom", "postgresql://mr:s3cret@db.internal/mailroom?sslmode=require"] {
            storage.database = url.into();
            assert_eq!(storage.postgres_url(), Some(url));
            assert!(storage.validate().is_ok());
            let shown = redacted_url(url);
            assert!(!shown.contains("s3cret") && shown.contains("mr:***@db.internal"), "{shown}");
        }
        assert_eq!(redacted_url("postgres://db/m?user=a&password=s3cret"), "postgres://db/m?user=a&password=***");
        assert_eq!(redacted_url("postgres://mr@db/m"), "postgres://mr@db/m");
        storage.max_database_size = Some(1 << 30);
        assert_eq!(storage.validate().unwrap_err().0, "max_database_size");
        storage.max_database_size = None;
        storage.database = "postgres://mr:s3cret@db:notaport/m".into();
        let (key, reason) = storage.validate().unwrap_err();
        assert_eq!(key, "database");
        assert!(!reason.contains("s3cret"), "{reason}");
    }
}
