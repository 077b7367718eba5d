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
    pub database: PathBuf,
    pub master_key_file: PathBuf,
    pub max_batch: usize,
    /// Refuse new mail (451, senders retry) once the database file would exceed this many bytes,
    /// instead of filling the disk.
    pub max_database_size: Option<u64>,
    /// "lz4" (default) or "none": compress each message before encrypting it.
    pub compression: super::codec::Compression,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database: "mailroom.db".into(),
            master_key_file: "master.key".into(),
            max_batch: 256,
            max_database_size: None,
            compression: Default::default(),
        }
    }
}

impl StorageConfig {
    /// (key within `[storage]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=1000).contains(&self.max_batch) {
            return Err(("max_batch".into(), "must be between 1 and 1000".into()));
        }
        if self.max_database_size.is_some_and(|size| size < 64 * 1024) {
            return Err(("max_database_size".into(), "must be at least 65536 bytes".into()));
        }
        Ok(())
    }
}
