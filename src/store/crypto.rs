//! Envelope encryption of customer data at rest.
//!
//! Every message gets a fresh random 256-bit data key. Its parts (raw bytes, extracted fields, our
//! trace header) are sealed with AES-256-GCM under that key, with the message's row identity as
//! associated data, so a ciphertext copied into another row fails to open. The data key is itself
//! sealed ("wrapped") by a master key that lives in a file outside the database; rotating the
//! master key re-wraps data keys only (`mailroom keys rotate`, src/store/rotation.rs). Look-ups
//! by address or Message-ID use a keyed blind index (HMAC-SHA-256), never the clear text.
//!
//! Everything comes from aws-lc-rs, the same provider rustls uses, so there is one crypto library
//! to audit and patch.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// First byte of every ciphertext we write, so the layout can evolve.
const FORMAT_V1: u8 = 1;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("decryption failed: ciphertext or its associated data was altered (authentication tag mismatch)")]
    Authentication,
    #[error("ciphertext is truncated or has an unknown format")]
    Format,
    #[error("master key {0} is not in the key file")]
    UnknownKey(u32),
    #[error("master key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("random number generator failed")]
    Random,
}

/// A per-message data key. Wiped from memory when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Result<DataKey, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(DataKey(key))
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with(self.0.as_ref(), aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(self.0.as_ref(), aad, ciphertext)
    }
}

fn seal_with(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Format)?;
    // Sealed in place in the output (format, nonce, ciphertext, tag): the plaintext is copied
    // once, which for a message body is most of the cost besides the cipher itself.
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.push(FORMAT_V1);
    out.extend_from_slice(&[0u8; NONCE_LEN]);
    out.extend_from_slice(plaintext);
    match key.seal_in_place_separate_tag(Aad::from(aad), &mut out[1 + NONCE_LEN..]) {
        Ok((nonce, tag)) => {
            out[1..1 + NONCE_LEN].copy_from_slice(nonce.as_ref());
            out.extend_from_slice(tag.as_ref());
            Ok(out)
        }
        Err(_) => {
            // Nothing was sealed: the copy is still clear text.
            out.zeroize();
            Err(CryptoError::Random)
        }
    }
}

fn open_with(key: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if ciphertext.len() < 1 + NONCE_LEN + TAG_LEN || ciphertext[0] != FORMAT_V1 {
        return Err(CryptoError::Format);
    }
    let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Format)?;
    let nonce = Nonce::try_assume_unique_for_key(&ciphertext[1..1 + NONCE_LEN]).map_err(|_| CryptoError::Format)?;
    let mut body = ciphertext[1 + NONCE_LEN..].to_vec();
    let len = key.open_in_place(nonce, Aad::from(aad), &mut body).map_err(|_| CryptoError::Authentication)?.len();
    body.truncate(len);
    Ok(body)
}

/// Associated data for each kind of sealed value, bound to the row identity (`uid`).
pub fn aad(kind: &str, uid: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(kind.len() + 24 + uid.len());
    aad.extend_from_slice(b"mailroom/");
    aad.extend_from_slice(kind.as_bytes());
    aad.push(0);
    aad.extend_from_slice(uid);
    aad
}

/// The master keys (current and older versions) and the blind-index key, as read from the key
/// file. Swappable: a running server takes over a rotated file (see [`KeyRing::refresh`]) while
/// every handle keeps pointing at the same `KeyRing`.
pub struct KeyRing {
    path: PathBuf,
    ring: ArcSwap<Ring>,
    /// The key file as it was when `ring` was read: a different one means the file was replaced.
    stamp: Mutex<Option<FileStamp>>,
    /// When `refresh` last looked at the file (ms since `opened`): it looks at most every
    /// [`REFRESH_EVERY`], not at every wrap (a `stat` per message was 1.5% of the ingest CPU).
    refreshed_ms: AtomicU64,
    opened: Instant,
}

/// How soon a running process wraps with a version added to its key file. A row wrapped meanwhile
/// under the previous version is what `keys rotate` already expects of a process that kept the
/// old file: it re-wraps it and retires the old version only once no row uses it.
const REFRESH_EVERY: Duration = Duration::from_millis(200);

/// One reading of the key file.
struct Ring {
    current: u32,
    masters: BTreeMap<u32, Zeroizing<[u8; 32]>>,
    created: BTreeMap<u32, String>,
    /// Kept to refuse a reloaded file with another index key (every index would stop matching).
    index_bytes: Zeroizing<[u8; 32]>,
    index_key: hmac::Key,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp_of(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })
}

/// A master key version as the key file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersion {
    pub id: u32,
    pub created: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// HMAC key for blind indexes (never rotated with the master keys: the index would change).
    index_key: String,
    keys: Vec<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileEntry {
    id: u32,
    created: String,
    key: String,
}

impl KeyRing {
    /// Loads the key file, creating it (mode 0600, never overwriting) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<KeyRing, CryptoError> {
        if !path.exists() {
            Self::create(path)?;
        }
        Self::load(path)
    }

    pub fn load(path: &Path) -> Result<KeyRing, CryptoError> {
        let stamp = stamp_of(path);
        let ring = Ring::read(path)?;
        Ok(KeyRing {
            path: path.to_path_buf(),
            ring: ArcSwap::from_pointee(ring),
            stamp: Mutex::new(stamp),
            refreshed_ms: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }

    /// Reads the key file again and puts it in force; on any error (or another index key) the
    /// keys in force stay. Returns whether the master key versions changed.
    pub fn reload(&self) -> Result<bool, CryptoError> {
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(&mut stamp)
    }

    fn reload_locked(&self, stamp: &mut Option<FileStamp>) -> Result<bool, CryptoError> {
        // The stamp before the read: a file replaced during it is read again next time.
        *stamp = stamp_of(&self.path);
        let fresh = Ring::read(&self.path)?;
        let old = self.ring.load();
        if fresh.index_bytes.as_slice() != old.index_bytes.as_slice() {
            return Err(CryptoError::KeyFile {
                path: self.path.clone(),
                reason: "its index_key differs from the one in use: the blind-index key cannot be rotated; keys not reloaded".into(),
            });
        }
        let changed = fresh.created != old.created || fresh.masters != old.masters;
        if changed {
            self.ring.store(Arc::new(fresh));
        }
        Ok(changed)
    }

    /// Takes over the key file if it was replaced since it was read (`keys rotate` adds or
    /// retires versions by replacing it): one `stat` before a wrap, at most every
    /// [`REFRESH_EVERY`], so new data keys are wrapped by the newest version soon after the file
    /// has it.
    pub fn refresh(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        let last = self.refreshed_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < REFRESH_EVERY.as_millis() as u64 {
            return;
        }
        self.refreshed_ms.store(now.max(1), Ordering::Relaxed);
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if stamp_of(&self.path) == *stamp {
            return;
        }
        match self.reload_locked(&mut stamp) {
            Ok(true) => tracing::info!(key_file = %self.path.display(), current = self.current_id(), "master key file reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!("{e}"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master key versions in force, oldest first.
    pub fn versions(&self) -> Vec<KeyVersion> {
        self.ring.load().created.iter().map(|(id, created)| KeyVersion { id: *id, created: created.clone() }).collect()
    }

    fn create(path: &Path) -> Result<(), CryptoError> {
        let fail = |reason: String| CryptoError::KeyFile { path: path.to_path_buf(), reason };
        let index = DataKey::generate()?;
        let master = DataKey::generate()?;
        let file = KeyFile {
            index_key: B64.encode(index.0.as_ref()),
            keys: vec![KeyFileEntry { id: 1, created: chrono::Utc::now().to_rfc3339(), key: B64.encode(master.0.as_ref()) }],
        };
        write_key_file(path, &file).map_err(|e| fail(format!("cannot create: {e}")))
    }

    /// Adds a new master key version that wraps all new data keys from now on.
    pub fn add_version(path: &Path) -> Result<u32, CryptoError> {
        let ring = Ring::read(path)?;
        let mut file = read_key_file(path)?;
        let id = ring.current + 1;
        let master = DataKey::generate()?;
        file.keys.push(KeyFileEntry { id, created: chrono::Utc::now().to_rfc3339(), key: B64.encode(master.0.as_ref()) });
        replace_key_file(path, &file)?;
        Ok(id)
    }

    /// Removes every master key version but `keep` from the key file (atomically). The caller
    /// has made sure that no row is wrapped by them any more. Returns the removed versions.
    pub fn retire_all_but(path: &Path, keep: u32) -> Result<Vec<u32>, CryptoError> {
        let mut file = read_key_file(path)?;
        if !file.keys.iter().any(|k| k.id == keep) {
            return Err(CryptoError::KeyFile { path: path.to_path_buf(), reason: format!("has no master key {keep} to keep") });
        }
        let removed: Vec<u32> = file.keys.iter().map(|k| k.id).filter(|id| *id != keep).collect();
        if removed.is_empty() {
            return Ok(removed);
        }
        file.keys.retain(|k| k.id == keep);
        replace_key_file(path, &file)?;
        Ok(removed)
    }

    pub fn current_id(&self) -> u32 {
        self.ring.load().current
    }

    /// Wraps a data key under the current master key; `aad` binds it to its row.
    pub fn wrap(&self, data_key: &DataKey, aad: &[u8]) -> Result<(u32, Vec<u8>), CryptoError> {
        self.refresh();
        let ring = self.ring.load();
        let master = &ring.masters[&ring.current];
        Ok((ring.current, seal_with(master.as_ref(), &wrap_aad(ring.current, aad), data_key.0.as_ref())?))
    }

    /// Unwraps a data key. A version this ring does not hold makes it read the key file again
    /// first: another process (`keys rotate`) may have re-wrapped the row under a newer one.
    pub fn unwrap(&self, key_id: u32, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, CryptoError> {
        match self.ring.load().unwrap(key_id, wrapped, aad) {
            Err(CryptoError::UnknownKey(_)) => {
                if let Err(e) = self.reload() {
                    tracing::error!("{e}");
                }
                self.ring.load().unwrap(key_id, wrapped, aad)
            }
            other => other,
        }
    }

    /// Re-wraps a wrapped data key under the current master key (key rotation); the data key
    /// itself, and so everything sealed with it, stays.
    pub fn rewrap(&self, key_id: u32, wrapped: &[u8], aad: &[u8]) -> Result<(u32, Vec<u8>), CryptoError> {
        let key = self.unwrap(key_id, wrapped, aad)?;
        self.wrap(&key, aad)
    }

    /// A full HMAC-SHA-256 under the index key, domain-separated by `kind`: for the audit chain,
    /// so that rewriting it takes the key file as well as write access to the database.
    pub fn mac(&self, kind: &str, parts: &[&[u8]]) -> Vec<u8> {
        let ring = self.ring.load();
        let mut ctx = hmac::Context::with_key(&ring.index_key);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        for part in parts {
            ctx.update(part);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// A keyed, deterministic 16-byte token for equality look-ups without clear text.
    /// `kind` separates domains so an address and a Message-ID never collide.
    pub fn blind_index(&self, kind: &str, value: &[u8]) -> Vec<u8> {
        let ring = self.ring.load();
        let mut ctx = hmac::Context::with_key(&ring.index_key);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        ctx.sign().as_ref()[..16].to_vec()
    }

    /// The keyed blind index of an address, normalised: a message's sender and an outbox row's
    /// recipient share it, so "one acknowledgement per sender per window" can compare them.
    pub fn address_index(&self, address: &str) -> Vec<u8> {
        self.blind_index("address", normalize_address(address).as_bytes())
    }

    /// The one way to start a new sealed row: a new uid, a new data key wrapped under the current
    /// master key.
    pub fn new_row(&self) -> Result<RowKey, CryptoError> {
        self.row_key(new_uid()?)
    }

    /// A new data key for a row whose uid the caller made (e.g. with [`uid_at`]).
    pub fn row_key(&self, uid: [u8; 16]) -> Result<RowKey, CryptoError> {
        let key = DataKey::generate()?;
        let (key_id, wrapped_key) = self.wrap(&key, &aad("dek", &uid))?;
        Ok(RowKey { uid, key_id, wrapped_key, key })
    }

    /// The blind index of a case tag: listings filter by it, the tag's text stays sealed. Exact
    /// (case-sensitive) like the tags themselves.
    pub fn tag_index(&self, tag: &str) -> Vec<u8> {
        self.blind_index("case-tag", tag.as_bytes())
    }
}

impl Ring {
    fn read(path: &Path) -> Result<Ring, CryptoError> {
        let fail = |reason: String| CryptoError::KeyFile { path: path.to_path_buf(), reason };
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(fail(format!("is accessible by group or others (mode {mode:o}); run chmod 600")));
        }
        let file = read_key_file(path)?;
        let decode = |what: &str, b64: &str| -> Result<Zeroizing<[u8; 32]>, CryptoError> {
            let bytes = Zeroizing::new(B64.decode(b64).map_err(|_| fail(format!("{what} is not base64")))?);
            let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| fail(format!("{what} must be 32 bytes")))?;
            Ok(Zeroizing::new(array))
        };
        let index_bytes = decode("index_key", &file.index_key)?;
        let mut masters = BTreeMap::new();
        let mut created = BTreeMap::new();
        for entry in &file.keys {
            if masters.insert(entry.id, decode(&format!("key {}", entry.id), &entry.key)?).is_some() {
                return Err(fail(format!("lists master key {} twice", entry.id)));
            }
            created.insert(entry.id, entry.created.clone());
        }
        let current = *masters.keys().next_back().ok_or_else(|| fail("contains no master key".into()))?;
        let index_key = hmac::Key::new(hmac::HMAC_SHA256, index_bytes.as_ref());
        Ok(Ring { current, masters, created, index_bytes, index_key })
    }

    fn unwrap(&self, key_id: u32, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, CryptoError> {
        let master = self.masters.get(&key_id).ok_or(CryptoError::UnknownKey(key_id))?;
        let plain = Zeroizing::new(open_with(master.as_ref(), &wrap_aad(key_id, aad), wrapped)?);
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| CryptoError::Format)?;
        Ok(DataKey(Zeroizing::new(key)))
    }
}

fn read_key_file(path: &Path) -> Result<KeyFile, CryptoError> {
    let fail = |reason: String| CryptoError::KeyFile { path: path.to_path_buf(), reason };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?);
    toml::from_str(&text).map_err(|e| fail(format!("malformed: {}", e.message())))
}

/// Replaces the key file atomically: a new file beside it (0600, synced), renamed over it, the
/// directory synced. A crash leaves either the old or the new file, never a mix.
fn replace_key_file(path: &Path, file: &KeyFile) -> Result<(), CryptoError> {
    let fail = |reason: String| CryptoError::KeyFile { path: path.to_path_buf(), reason };
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    write_key_file(&tmp, file).map_err(|e| fail(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(format!("cannot replace: {e}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail(format!("cannot sync its directory: {e}")))?;
    }
    Ok(())
}

/// A fresh row identity: time-ordered prefix (keeps the uid indexes append-mostly), random rest.
pub fn new_uid() -> Result<[u8; 16], CryptoError> {
    uid_at(chrono::Utc::now())
}

/// A row identity whose time-ordered prefix is `at` (a message uses its reception time).
pub fn uid_at(at: chrono::DateTime<chrono::Utc>) -> Result<[u8; 16], CryptoError> {
    let mut uid = [0u8; 16];
    uid[..8].copy_from_slice(&at.timestamp_micros().to_be_bytes());
    aws_lc_rs::rand::fill(&mut uid[8..]).map_err(|_| CryptoError::Random)?;
    Ok(uid)
}

/// The identity and key of a new sealed row: its uid, a new data key, and that key wrapped
/// under the current master key (bound to the uid). Store `uid`, `key_id` and `wrapped_key`
/// with the row; seal its values with [`RowKey::seal`].
pub struct RowKey {
    pub uid: [u8; 16],
    pub key_id: u32,
    pub wrapped_key: Vec<u8>,
    pub key: DataKey,
}

impl RowKey {
    /// Seals one value of this row; `kind` names the column (it is part of the associated data).
    pub fn seal(&self, kind: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key.seal(&aad(kind, &self.uid), plaintext)
    }
}

/// Lower-cases an address (local parts are case-sensitive in theory, but every real mail system
/// treats them case-insensitively, and so do look-ups here). Addresses are compared through
/// blind indexes, so the normalisation belongs with them.
pub fn normalize_address(address: &str) -> String {
    address.trim().to_lowercase()
}

fn wrap_aad(key_id: u32, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(aad.len() + 8);
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(aad);
    out
}

fn write_key_file(path: &Path, file: &KeyFile) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = Zeroizing::new(toml::to_string(file).map_err(std::io::Error::other)?);
    // create_new: never clobber an existing key, which would make every stored message unreadable.
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(b"# mailroom master key file: wraps every message's data key.\n# Losing it loses all stored mail; back it up separately from the database. Mode must stay 0600.\n")?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (tempfile::TempDir, KeyRing) {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(&dir.path().join("master.key")).unwrap();
        (dir, ring)
    }

    #[test]
    fn seal_open_round_trip_and_key_wrapping() {
        let (_dir, ring) = ring();
        let dk = DataKey::generate().unwrap();
        let ct = dk.seal(&aad("raw", b"uid-1"), b"hello customer").unwrap();
        assert!(!ct.windows(5).any(|w| w == b"hello"));
        let (id, wrapped) = ring.wrap(&dk, &aad("dek", b"uid-1")).unwrap();
        let dk2 = ring.unwrap(id, &wrapped, &aad("dek", b"uid-1")).unwrap();
        assert_eq!(dk2.open(&aad("raw", b"uid-1"), &ct).unwrap(), b"hello customer");
    }

    #[test]
    fn a_new_row_key_opens_with_its_uid_only() {
        let (_dir, ring) = ring();
        let row = ring.new_row().unwrap();
        let other = ring.new_row().unwrap();
        assert_ne!(row.uid, other.uid);
        let ct = row.seal("entry", b"note").unwrap();
        let key = ring.unwrap(row.key_id, &row.wrapped_key, &aad("dek", &row.uid)).unwrap();
        assert_eq!(key.open(&aad("entry", &row.uid), &ct).unwrap(), b"note");
        assert!(ring.unwrap(row.key_id, &row.wrapped_key, &aad("dek", &other.uid)).is_err());
        assert_eq!(ring.address_index(" Jane@Customer.Example "), ring.blind_index("address", b"jane@customer.example"));
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let dk = DataKey::generate().unwrap();
        let ct = dk.seal(&aad("raw", b"u"), b"payload").unwrap();
        for i in 1..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(matches!(dk.open(&aad("raw", b"u"), &bad), Err(CryptoError::Authentication)), "byte {i}");
        }
        assert!(matches!(dk.open(&aad("raw", b"u"), &ct[..10]), Err(CryptoError::Format)));
    }

    #[test]
    fn ciphertext_moved_to_another_row_fails() {
        let (_dir, ring) = ring();
        let dk = DataKey::generate().unwrap();
        let ct = dk.seal(&aad("raw", b"row-a"), b"payload").unwrap();
        assert!(matches!(dk.open(&aad("raw", b"row-b"), &ct), Err(CryptoError::Authentication)));
        assert!(matches!(dk.open(&aad("fields", b"row-a"), &ct), Err(CryptoError::Authentication)));
        let (id, wrapped) = ring.wrap(&dk, &aad("dek", b"row-a")).unwrap();
        assert!(matches!(ring.unwrap(id, &wrapped, &aad("dek", b"row-b")), Err(CryptoError::Authentication)));
    }

    #[test]
    fn wrong_master_key_fails() {
        let (_d1, ring1) = ring();
        let (_d2, ring2) = ring();
        let dk = DataKey::generate().unwrap();
        let (id, wrapped) = ring1.wrap(&dk, b"x").unwrap();
        assert!(matches!(ring2.unwrap(id, &wrapped, b"x"), Err(CryptoError::Authentication)));
        assert!(matches!(ring1.unwrap(id + 1, &wrapped, b"x"), Err(CryptoError::UnknownKey(_))));
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ring = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(ring.blind_index("addr", b"a@b"), again.blind_index("addr", b"a@b"));
        assert!(KeyRing::create(&path).is_err(), "an existing key file must never be replaced");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyRing::load(&path), Err(CryptoError::KeyFile { .. })));
    }

    #[test]
    fn rotation_keeps_old_keys_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ring = KeyRing::load_or_create(&path).unwrap();
        let dk = DataKey::generate().unwrap();
        let (old_id, wrapped) = ring.wrap(&dk, b"row").unwrap();
        let new_id = KeyRing::add_version(&path).unwrap();
        assert_eq!(new_id, old_id + 1);
        let ring = KeyRing::load(&path).unwrap();
        assert_eq!(ring.current_id(), new_id);
        assert!(ring.unwrap(old_id, &wrapped, b"row").is_ok());
        assert_eq!(ring.blind_index("addr", b"a"), KeyRing::load(&path).unwrap().blind_index("addr", b"a"));
    }

    #[test]
    fn blind_index_is_keyed_and_domain_separated() {
        let (_d1, r1) = ring();
        let (_d2, r2) = ring();
        assert_eq!(r1.blind_index("addr", b"x@y"), r1.blind_index("addr", b"x@y"));
        assert_ne!(r1.blind_index("addr", b"x@y"), r2.blind_index("addr", b"x@y"));
        assert_ne!(r1.blind_index("addr", b"x@y"), r1.blind_index("msgid", b"x@y"));
        assert_eq!(r1.tag_index("vip"), r1.tag_index("vip"));
        assert_ne!(r1.tag_index("vip"), r2.tag_index("vip"), "keyed: another key file, another index");
        assert_ne!(r1.tag_index("vip"), r1.tag_index("VIP"));
        assert_ne!(r1.tag_index("x@y"), r1.blind_index("addr", b"x@y"), "separate from the address index");
    }
    #[test]
    fn a_running_ring_takes_over_a_new_version_and_the_old_file_cannot_open_rewrapped_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let running = KeyRing::load_or_create(&path).unwrap();
        let old_file = dir.path().join("old.key");
        std::fs::copy(&path, &old_file).unwrap();
        let row = running.new_row().unwrap();
        assert_eq!(row.key_id, 1);
        let binding = aad("dek", &row.uid);

        // Another process (keys rotate) adds version 2 and re-wraps the row under it.
        assert_eq!(KeyRing::add_version(&path).unwrap(), 2);
        let rotate = KeyRing::load(&path).unwrap();
        let (id, rewrapped) = rotate.rewrap(row.key_id, &row.wrapped_key, &binding).unwrap();
        assert_eq!(id, 2);
        assert_eq!(KeyRing::retire_all_but(&path, 2).unwrap(), vec![1]);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!path.with_extension("new").exists());

        // The running ring meets version 2 on unwrap and reads the file again.
        let key = running.unwrap(id, &rewrapped, &binding).unwrap();
        let sealed = row.seal("raw", b"body").unwrap();
        assert_eq!(key.open(&aad("raw", &row.uid), &sealed).unwrap(), b"body");
        // ... and wraps new data keys under it (it noticed the replaced file).
        assert_eq!(running.new_row().unwrap().key_id, 2);
        assert_eq!(running.versions().iter().map(|v| v.id).collect::<Vec<_>>(), vec![2]);
        assert!(matches!(running.unwrap(1, &row.wrapped_key, &binding), Err(CryptoError::UnknownKey(1))));

        // Only the old key file: the re-wrapped key does not open, not even claimed as version 1.
        let old = KeyRing::load(&old_file).unwrap();
        assert!(matches!(old.unwrap(2, &rewrapped, &binding), Err(CryptoError::UnknownKey(2))));
        assert!(matches!(old.unwrap(1, &rewrapped, &binding), Err(CryptoError::Authentication)));
        // Tampered: any flipped byte of the re-wrapped key fails.
        for i in 1..rewrapped.len() {
            let mut bad = rewrapped.clone();
            bad[i] ^= 0x80;
            assert!(matches!(rotate.unwrap(2, &bad, &binding), Err(CryptoError::Authentication)), "byte {i}");
        }
        // Bound to its version: claimed as another version it fails too.
        assert!(rotate.unwrap(1, &rewrapped, &binding).is_err());
    }

    #[test]
    fn a_reloaded_file_with_another_index_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ring = KeyRing::load_or_create(&path).unwrap();
        let index = ring.address_index("a@b");
        std::fs::remove_file(&path).unwrap();
        KeyRing::create(&path).unwrap();
        assert!(matches!(ring.reload(), Err(CryptoError::KeyFile { .. })));
        ring.refresh();
        assert_eq!(ring.address_index("a@b"), index, "the keys in force stay");
        assert!(KeyRing::retire_all_but(&path, 7).is_err(), "never removes the version to keep");
    }
}
