//! `mailroom backup verify FILE`: the file is a sound SQLite database, a mailroom store at this
//! version's schema, every sealed value in it opens with the key file, the audit chain holds, and
//! the registration numbers are gap-free and each explained by its audit entry. Read-only: the
//! file is opened immutable, nothing is written beside it.

use std::path::Path;

use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;

use super::BackupError;
use crate::store::audit::{self, ChainCheck};
use crate::store::crypto::{CryptoError, KeyRing, aad};
use crate::store::engine::Conn;
use crate::store::{MIGRATOR, codec, record, sqlite};

/// Rows decrypted per query: a page of messages is at most this many messages in memory.
const PAGE: i64 = 64;

/// What a verified backup holds (counts, numbers and hashes: no customer data).
#[derive(Debug, Clone)]
pub struct VerifySummary {
    pub schema_version: i64,
    pub messages: u64,
    /// Registrations purged by retention or erasure (tombstones: numbered, nothing to open).
    pub purged: u64,
    /// (counter year, last sequence number) of each numbering: every number 1..=last is present.
    pub numbering: Vec<(i64, i64)>,
    pub cases: u64,
    pub tagged_cases: u64,
    pub case_entries: u64,
    pub outbox: u64,
    pub customers: u64,
    pub reset_codes: u64,
    pub audit_entries: u64,
    pub audit_head: Vec<u8>,
}

/// Verifies the backup `file` with the key file `key_file`; the first problem found is the error.
pub async fn verify(file: &Path, key_file: &Path) -> Result<VerifySummary, BackupError> {
    let invalid = |reason: String| BackupError::Invalid { file: file.display().to_string(), reason };
    if !file.is_file() {
        return Err(BackupError::Refused(format!("no backup file at {}", file.display())));
    }
    // The key file first: a missing or unreadable one is the operator's to fix, not the backup's.
    let keys = KeyRing::load(key_file).map_err(crate::store::StoreError::from)?;
    super::file::check_header(file).map_err(invalid)?;
    let pool = open(file).await.map_err(|e| invalid(format!("does not open as a database: {e}")))?;
    let result = check(&pool, &keys, key_file).await;
    pool.close().await;
    result.map_err(|e| match e {
        Problem::Invalid(reason) => invalid(reason),
        Problem::Db(e) => invalid(format!("cannot be read: {e}")),
    })
}

/// What `mailroom backup` reports of the file it just wrote: messages, the newest registration
/// number, audit entries.
pub(super) async fn contents(file: &Path) -> Result<(i64, Option<String>, i64), BackupError> {
    let pool = open(file).await?;
    let row: Result<(i64, Option<String>, i64), sqlx::Error> = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM messages), (SELECT number FROM messages ORDER BY id DESC LIMIT 1), (SELECT COUNT(*) FROM audit)",
    )
    .fetch_one(&pool)
    .await;
    pool.close().await;
    Ok(row?)
}

async fn open(file: &Path) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new().max_connections(1).connect_with(sqlite::backup_read_options(file)).await
}

enum Problem {
    Invalid(String),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Problem {
        Problem::Db(e)
    }
}

fn problem(reason: impl Into<String>) -> Problem {
    Problem::Invalid(reason.into())
}

async fn check(pool: &SqlitePool, keys: &KeyRing, key_file: &Path) -> Result<VerifySummary, Problem> {
    let damaged = sqlite::integrity_problems(pool).await.map_err(|e| problem(format!("damaged: {e}")))?;
    if !damaged.is_empty() {
        return Err(problem(format!("damaged (SQLite's integrity check): {}", damaged.join("; "))));
    }
    let schema_version = schema(pool).await?;

    let mut conn = Conn::SqliteRead(pool.acquire().await?);
    if !audit::head_verifies(keys, &mut conn).await? {
        return Err(problem(format!(
            "the key file {} does not open it: the newest audit entry's MAC does not verify under it (the key is not in \
             the backup: give the key file of the data dir the backup was made from)",
            key_file.display()
        )));
    }
    let (audit_entries, audit_head) = match audit::verify(keys, &mut conn).await? {
        ChainCheck::Intact { entries, head } => (entries, head),
        ChainCheck::Broken { id, reason } => return Err(problem(format!("audit chain broken at entry {id}: {reason}"))),
    };
    drop(conn);

    let (messages, purged) = messages(pool, keys).await?;
    let tagged_cases = case_tags(pool, keys).await?;
    let case_entries = sealed_rows(pool, keys, &CASE_ENTRIES).await?;
    let outbox = sealed_rows(pool, keys, &OUTBOX).await?;
    let customers = sealed_rows(pool, keys, &CUSTOMERS).await?;
    let reset_codes = reset_codes(pool, keys).await?;
    let numbering = numbering(pool).await?;
    let cases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases").fetch_one(pool).await?;
    Ok(VerifySummary {
        schema_version,
        messages,
        purged,
        numbering,
        cases: cases as u64,
        tagged_cases,
        case_entries,
        outbox,
        customers,
        reset_codes,
        audit_entries,
        audit_head,
    })
}

/// The migrations applied to the file must be exactly this version's (same versions, same
/// checksums): then every table and sealed column checked below is where this code expects it.
async fn schema(pool: &SqlitePool) -> Result<i64, Problem> {
    let applied: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(|_| problem("not a mailroom store (it has no migration table)"))?;
    let known: Vec<(i64, &[u8])> =
        MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()).map(|m| (m.version, m.checksum.as_ref())).collect();
    let newest_known = known.last().map_or(0, |(v, _)| *v);
    let newest = applied.last().map_or(0, |(v, _)| *v);
    if let Some((version, _)) = applied.iter().find(|(v, c)| !known.iter().any(|(kv, kc)| kv == v && *kc == c.as_slice())) {
        return Err(problem(if *version > newest_known {
            format!("schema version {newest} is newer than this mailroom's ({newest_known}): verify it with the version that made it")
        } else {
            format!("migration {version} in it is not this mailroom's (not a mailroom store, or a modified one)")
        }));
    }
    if applied.len() != known.len() {
        return Err(problem(format!(
            "schema version {newest} is older than this mailroom's ({newest_known}): verify and restore it with the version \
             that made it (a server of this version migrates it when it starts on the restored store)"
        )));
    }
    Ok(newest)
}

/// Every message: its data key unwraps, and its trace header, extracted record and raw bytes
/// open (and decompress); a message without its raw bytes is a failure too. A tombstone
/// (`store::purge`) is valid when it holds nothing left to open. (opened, tombstones)
async fn messages(pool: &SqlitePool, keys: &KeyRing) -> Result<(u64, u64), Problem> {
    type Row = (i64, String, Vec<u8>, i64, Vec<u8>, Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<i64>);
    let mut last = 0i64;
    let (mut count, mut purged) = (0u64, 0u64);
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT m.id, m.number, m.uid, m.key_id, m.wrapped_key, m.trace_ct, m.fields_ct, b.raw_ct, m.purged_at
             FROM messages m LEFT JOIN message_blobs b ON b.message_id = m.id WHERE m.id > $1 ORDER BY m.id LIMIT $2",
        )
        .bind(last)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let Some((id, ..)) = rows.last() else { return Ok((count, purged)) };
        last = *id;
        for (_, number, uid, key_id, wrapped_key, trace_ct, fields_ct, raw_ct, purged_at) in rows {
            if purged_at.is_some() {
                if key_id != 0 || !wrapped_key.is_empty() || !trace_ct.is_empty() || !fields_ct.is_empty() || raw_ct.is_some() {
                    return Err(problem(format!("message {number} is marked purged but still holds sealed data")));
                }
                purged += 1;
                continue;
            }
            let fail = |what: &str, e: &dyn std::fmt::Display| problem(format!("message {number}: {what}: {e}"));
            let key = unwrap(keys, key_id, &wrapped_key, &uid).map_err(|e| fail("its data key does not unwrap", &e))?;
            key.open(&aad("trace", &uid), &trace_ct).map_err(|e| fail("its trace header does not open", &e))?;
            let fields =
                zeroize::Zeroizing::new(key.open(&aad("fields", &uid), &fields_ct).map_err(|e| fail("its record does not open", &e))?);
            serde_json::from_slice::<record::Record>(&fields).map_err(|e| fail("its record is not a stored record", &e))?;
            let raw_ct = raw_ct.ok_or_else(|| problem(format!("message {number}: its raw bytes are missing")))?;
            let packed = key.open(&aad("raw", &uid), &raw_ct).map_err(|e| fail("its raw bytes do not open", &e))?;
            drop(zeroize::Zeroizing::new(codec::unpack(packed).map_err(|e| fail("its raw bytes do not decompress", &e))?));
            count += 1;
        }
    }
}

/// A table whose rows each carry `uid, key_id, wrapped_key` and one sealed column (rows whose
/// key was shredded, key_id 0, are skipped: nothing is left to open).
struct Sealed {
    /// What a row is, for the error ("outbox row 12").
    what: &'static str,
    /// The sealed column's kind in the associated data.
    kind: &'static str,
    /// `id, uid, key_id, wrapped_key, sealed` of the rows with id > $1, by id, at most $2.
    sql: &'static str,
}

const CASE_ENTRIES: Sealed = Sealed {
    what: "case entry",
    kind: "entry",
    sql: "SELECT id, uid, key_id, wrapped_key, body_ct FROM case_entries WHERE id > $1 AND key_id <> 0 ORDER BY id LIMIT $2",
};
const OUTBOX: Sealed = Sealed {
    what: "outbox row",
    kind: "outbox",
    sql: "SELECT id, uid, key_id, wrapped_key, mail_ct FROM outbox WHERE id > $1 AND key_id <> 0 ORDER BY id LIMIT $2",
};
const CUSTOMERS: Sealed = Sealed {
    what: "directory entry",
    kind: "customer",
    sql: "SELECT id, uid, key_id, wrapped_key, entry_ct FROM customers WHERE id > $1 ORDER BY id LIMIT $2",
};

/// Opens every sealed value of one table; how many there were.
async fn sealed_rows(pool: &SqlitePool, keys: &KeyRing, table: &Sealed) -> Result<u64, Problem> {
    type Row = (i64, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>, Vec<u8>);
    let mut last = 0i64;
    let mut count = 0u64;
    loop {
        let rows: Vec<Row> = sqlx::query_as(table.sql).bind(last).bind(PAGE).fetch_all(pool).await?;
        let Some((id, ..)) = rows.last() else { return Ok(count) };
        last = *id;
        for (id, uid, key_id, wrapped_key, sealed) in rows {
            let fail = |e: &dyn std::fmt::Display| problem(format!("{} {id}: does not open: {e}", table.what));
            let (Some(uid), Some(key_id), Some(wrapped_key)) = (uid, key_id, wrapped_key) else {
                return Err(fail(&"sealed, but its row has no data key"));
            };
            let key = unwrap(keys, key_id, &wrapped_key, &uid).map_err(|e| fail(&e))?;
            drop(zeroize::Zeroizing::new(key.open(&aad(table.kind, &uid), &sealed).map_err(|e| fail(&e))?));
            count += 1;
        }
    }
}

/// Every case's sealed tags open, and the tags' blind index (`case_tags`, what the listings
/// filter by) says of each case exactly what its sealed tags say (no case without sealed tags
/// has index rows): how many cases have tags.
async fn case_tags(pool: &SqlitePool, keys: &KeyRing) -> Result<u64, Problem> {
    use std::collections::{BTreeMap, BTreeSet};
    type Row = (i64, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>, Vec<u8>);
    let stray: Option<i64> = sqlx::query_scalar(
        "SELECT t.case_id FROM case_tags t JOIN cases c ON c.id = t.case_id WHERE c.tags_ct IS NULL ORDER BY t.case_id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if let Some(case) = stray {
        return Err(problem(format!("case {case} has tag index rows but no sealed tags")));
    }
    let (mut last, mut count) = (0i64, 0u64);
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, uid, key_id, wrapped_key, tags_ct FROM cases WHERE tags_ct IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(last)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let (Some((first, ..)), Some((end, ..))) = (rows.first(), rows.last()) else { return Ok(count) };
        let mut indexed: BTreeMap<i64, BTreeSet<Vec<u8>>> = BTreeMap::new();
        let index_rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT case_id, tag_idx FROM case_tags WHERE case_id >= $1 AND case_id <= $2")
                .bind(*first)
                .bind(*end)
                .fetch_all(pool)
                .await?;
        for (case, idx) in index_rows {
            indexed.entry(case).or_default().insert(idx);
        }
        last = *end;
        for (id, uid, key_id, wrapped_key, sealed) in rows {
            let fail = |e: &dyn std::fmt::Display| problem(format!("tags of case {id}: does not open: {e}"));
            let (Some(uid), Some(key_id), Some(wrapped_key)) = (uid, key_id, wrapped_key) else {
                return Err(fail(&"sealed, but its row has no data key"));
            };
            let key = unwrap(keys, key_id, &wrapped_key, &uid).map_err(|e| fail(&e))?;
            let plain = zeroize::Zeroizing::new(key.open(&aad("case-tags", &uid), &sealed).map_err(|e| fail(&e))?);
            let tags: Vec<String> = serde_json::from_slice(&plain).map_err(|e| fail(&e))?;
            let expected: BTreeSet<Vec<u8>> = tags.iter().map(|t| keys.tag_index(t)).collect();
            if indexed.remove(&id).unwrap_or_default() != expected {
                return Err(problem(format!("case {id}: its tag index does not match its sealed tags")));
            }
            count += 1;
        }
    }
}

/// The sealed enrolment codes of approved password resets waiting for their requester (sealed
/// with the change id as associated data, see `access::resets`).
async fn reset_codes(pool: &SqlitePool, keys: &KeyRing) -> Result<u64, Problem> {
    type Row = (i64, Option<i64>, Option<Vec<u8>>, Vec<u8>);
    let rows: Vec<Row> =
        sqlx::query_as("SELECT id, code_key_id, code_wrapped_key, code_ct FROM access_changes WHERE code_ct IS NOT NULL ORDER BY id")
            .fetch_all(pool)
            .await?;
    for (id, key_id, wrapped_key, sealed) in &rows {
        let fail = |e: &dyn std::fmt::Display| problem(format!("the sealed code of access change {id} does not open: {e}"));
        let (Some(key_id), Some(wrapped_key)) = (key_id, wrapped_key) else { return Err(fail(&"it has no data key")) };
        let aad = aad("reset-code", &id.to_be_bytes());
        let key =
            keys.unwrap(u32::try_from(*key_id).map_err(|_| fail(&"key id out of range"))?, wrapped_key, &aad).map_err(|e| fail(&e))?;
        drop(zeroize::Zeroizing::new(key.open(&aad, sealed).map_err(|e| fail(&e))?));
    }
    Ok(rows.len() as u64)
}

fn unwrap(keys: &KeyRing, key_id: i64, wrapped_key: &[u8], uid: &[u8]) -> Result<crate::store::crypto::DataKey, CryptoError> {
    keys.unwrap(u32::try_from(key_id).map_err(|_| CryptoError::Format)?, wrapped_key, &aad("dek", uid))
}

/// Each numbering (counter year) holds exactly the numbers 1..=its counter, every message is
/// under a counter, the message counter is ahead of every message id, and every number has its
/// `message.registered` audit entry.
async fn numbering(pool: &SqlitePool) -> Result<Vec<(i64, i64)>, Problem> {
    /// year, counter, messages, lowest and highest sequence number
    type Year = (i64, i64, i64, Option<i64>, Option<i64>);
    let years: Vec<Year> = sqlx::query_as(
        "SELECT r.year, r.last_seq, COUNT(m.id), MIN(m.reg_seq), MAX(m.reg_seq)
         FROM reg_counters r LEFT JOIN messages m ON m.reg_year = r.year GROUP BY r.year, r.last_seq ORDER BY r.year",
    )
    .fetch_all(pool)
    .await?;
    for (year, last_seq, count, min, max) in &years {
        let whole = *count == *last_seq && (*count == 0 || (*min == Some(1) && *max == Some(*last_seq)));
        if !whole {
            return Err(problem(format!(
                "numbering of year {year} is not gap-free: the counter is at {last_seq}, but {count} messages are stored \
                 (sequence numbers {} to {})",
                min.unwrap_or(0),
                max.unwrap_or(0)
            )));
        }
    }
    let stray: Option<String> =
        sqlx::query_scalar("SELECT number FROM messages WHERE reg_year NOT IN (SELECT year FROM reg_counters) ORDER BY id LIMIT 1")
            .fetch_optional(pool)
            .await?;
    if let Some(number) = stray {
        return Err(problem(format!("message {number} is outside every numbering (no counter for its year)")));
    }
    let (counter, max_id): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT (SELECT value FROM counters WHERE name = 'message'), (SELECT MAX(id) FROM messages)")
            .fetch_one(pool)
            .await?;
    if counter.unwrap_or(0) < max_id.unwrap_or(0) {
        return Err(problem(format!(
            "the message counter ({}) is behind the newest message id ({})",
            counter.unwrap_or(0),
            max_id.unwrap_or(0)
        )));
    }
    let unexplained: Option<String> = sqlx::query_scalar(
        "SELECT number FROM messages WHERE number NOT IN
           (SELECT object FROM audit WHERE action = 'message.registered' AND object IS NOT NULL) ORDER BY id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if let Some(number) = unexplained {
        return Err(problem(format!("message {number} has no message.registered entry in the audit log")));
    }
    Ok(years.into_iter().map(|(year, last_seq, ..)| (year, last_seq)).collect())
}
