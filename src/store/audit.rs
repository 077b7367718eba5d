//! The audit trail: append-only rows, each chained to the previous one by an HMAC-SHA-256 under a
//! key from the key file (not in the database), so an edited, inserted or deleted row is detected
//! by `mailroom audit verify`, and the chain cannot be recomputed with database access alone.
//! Details never contain customer content or addresses.

use super::crypto::KeyRing;
use rusqlite::OptionalExtension;
use sqlx::QueryBuilder;

use super::engine::{Conn, on_conn, on_db};

/// The hash of the (empty) chain's predecessor.
pub const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object: Option<String>,
    pub detail: Option<String>,
}

/// HMAC over the previous hash and every field, each length-prefixed so no two different
/// entries can serialise to the same bytes.
pub fn chain_hash(keys: &KeyRing, prev: &[u8], e: &AuditEntry) -> Vec<u8> {
    let mut material = Vec::with_capacity(128);
    material.extend_from_slice(prev);
    material.extend_from_slice(&e.at.to_be_bytes());
    for field in [Some(e.actor.as_str()), Some(e.action.as_str()), e.object.as_deref(), e.detail.as_deref()] {
        match field {
            Some(s) => {
                material.push(1);
                material.extend_from_slice(&(s.len() as u64).to_be_bytes());
                material.extend_from_slice(s.as_bytes());
            }
            None => material.push(0),
        }
    }
    keys.mac("audit-chain", &[&material])
}

/// Appends entries inside the caller's write transaction (which serialises all appenders, the
/// server's writer and admin commands alike, so the chain never forks).
///
/// Ids are given here, each one more than the last, not left to the database: a PostgreSQL
/// identity loses values to rolled-back transactions and to crash recovery, and `verify` reads
/// a gap as removed entries. (SQLite would give the same ids.)
pub async fn append(keys: &KeyRing, conn: &mut Conn, entries: &[AuditEntry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    on_conn!(conn, c => {
        let last: Option<(i64, Vec<u8>)> = sqlx::query_as("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetch_optional(&mut *c).await?;
        let (mut id, mut prev) = last.unwrap_or_else(|| (0, GENESIS.to_vec()));
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            let hash = chain_hash(keys, &prev, e);
            id += 1;
            rows.push((id, e, std::mem::replace(&mut prev, hash.clone()), hash));
        }
        // Stay well below SQLite's bound-parameter limit.
        for chunk in rows.chunks(500) {
            let mut q = QueryBuilder::new("INSERT INTO audit (id, at, actor, action, object, detail, prev_hash, hash) ");
            q.push_values(chunk, |mut b, (id, e, prev, hash)| {
                b.push_bind(*id)
                    .push_bind(e.at)
                    .push_bind(&e.actor)
                    .push_bind(&e.action)
                    .push_bind(&e.object)
                    .push_bind(&e.detail)
                    .push_bind(prev)
                    .push_bind(hash);
            });
            q.build().execute(&mut *c).await?;
        }
    });
    Ok(())
}

/// One entry as shown to a security officer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: Option<String>,
    pub detail: Option<String>,
}

/// One row of `SELECT id, at, actor, action, object, detail FROM audit`.
type ListedRow = (i64, i64, String, String, Option<String>, Option<String>);

fn listed((id, at, actor, action, object, detail): ListedRow) -> ListedEntry {
    ListedEntry { id, at: super::millis_to_rfc3339(at), actor, action, object, detail }
}

/// Entries after `after` (by id), oldest first, optionally only one action and/or actor.
pub async fn list(
    store: &super::Store,
    after: i64,
    limit: i64,
    action: Option<&str>,
    actor: Option<&str>,
) -> Result<Vec<ListedEntry>, super::StoreError> {
    let rows: Vec<ListedRow> = on_db!(store.db(), pool => sqlx::query_as(
        "SELECT id, at, actor, action, object, detail FROM audit
         WHERE id > $1 AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor = $3) ORDER BY id LIMIT $4",
    )
    .bind(after)
    .bind(action)
    .bind(actor)
    .bind(limit.clamp(0, 100_000))
    .fetch_all(pool)
    .await?);
    Ok(rows.into_iter().map(listed).collect())
}

/// What the officer's audit page asks for: newest first, entries before `before` (by id),
/// optionally one action, one actor and a time range (`from` inclusive, `to` exclusive, ms).
#[derive(Debug, Default, Clone)]
pub struct NewestFilter<'a> {
    pub before: Option<i64>,
    pub action: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// One page of the log, newest first (the officer's audit page).
pub async fn list_newest(store: &super::Store, filter: &NewestFilter<'_>, limit: i64) -> Result<Vec<ListedEntry>, super::StoreError> {
    let rows: Vec<ListedRow> = on_db!(store.db(), pool => sqlx::query_as(
        "SELECT id, at, actor, action, object, detail FROM audit
         WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor = $3)
           AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5)
         ORDER BY id DESC LIMIT $6",
    )
    .bind(filter.before)
    .bind(filter.action)
    .bind(filter.actor)
    .bind(filter.from)
    .bind(filter.to)
    .bind(limit.clamp(0, 100_000))
    .fetch_all(pool)
    .await?);
    Ok(rows.into_iter().map(listed).collect())
}

/// The outcome of checking the whole chain.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every entry links to its predecessor and hashes to what is stored. `head` is the last
    /// hash: write it down elsewhere, since only an outside copy reveals a truncated tail.
    Intact { entries: u64, head: Vec<u8> },
    /// The first entry that does not fit, and why.
    Broken { id: i64, reason: String },
}

/// One row of `SELECT id, at, actor, action, object, detail, prev_hash, hash FROM audit`.
type StoredRow = (i64, i64, String, String, Option<String>, Option<String>, Vec<u8>, Vec<u8>);

/// Re-computes the chain from the first entry to the last, a page at a time (the log grows by
/// at least one entry per message).
pub async fn verify(keys: &KeyRing, conn: &mut Conn) -> Result<ChainCheck, sqlx::Error> {
    verify_noting(keys, conn, |_, _| {}).await
}

/// [`verify`], handing `note` the id and stored hash of every entry checked so far (so that
/// `audit_anchor` compares its anchors in the same pass, without a query per anchor).
pub async fn verify_noting(keys: &KeyRing, conn: &mut Conn, mut note: impl FnMut(i64, &[u8])) -> Result<ChainCheck, sqlx::Error> {
    const PAGE: i64 = 10_000;
    let mut prev = GENESIS.to_vec();
    let mut last_id: Option<i64> = None;
    let mut entries = 0u64;
    loop {
        let rows: Vec<StoredRow> = on_conn!(&mut *conn, c => {
            sqlx::query_as("SELECT id, at, actor, action, object, detail, prev_hash, hash FROM audit WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(last_id.unwrap_or(i64::MIN))
                .bind(PAGE)
                .fetch_all(c)
                .await?
        });
        if rows.is_empty() {
            return Ok(ChainCheck::Intact { entries, head: prev });
        }
        for (id, at, actor, action, object, detail, stored_prev, stored_hash) in rows {
            let entry = AuditEntry { at, actor, action, object, detail };
            let expected_id = last_id.map_or(1, |last| last + 1);
            if id != expected_id {
                return Ok(ChainCheck::Broken { id, reason: format!("entries {expected_id} to {} are missing", id - 1) });
            }
            if stored_prev != prev {
                return Ok(ChainCheck::Broken {
                    id,
                    reason: "does not link to the entry before it (an entry was removed or altered)".into(),
                });
            }
            let hash = chain_hash(keys, &prev, &entry);
            if hash != stored_hash {
                return Ok(ChainCheck::Broken { id, reason: "its content does not match its hash (the entry was altered)".into() });
            }
            note(id, &hash);
            prev = hash;
            last_id = Some(id);
            entries += 1;
        }
    }
}

/// Whether the newest entry's MAC verifies under `keys` (true for an empty log): checked at
/// start, so that a node given another key file than the one this database was written with stops
/// before it seals mail no other node can read and chains entries `verify` would call forged.
pub async fn head_verifies(keys: &KeyRing, conn: &mut Conn) -> Result<bool, sqlx::Error> {
    let newest: Option<StoredRow> = on_conn!(conn, c => {
        sqlx::query_as("SELECT id, at, actor, action, object, detail, prev_hash, hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_optional(c)
            .await?
    });
    Ok(newest.is_none_or(|(_, at, actor, action, object, detail, prev, hash)| {
        chain_hash(keys, &prev, &AuditEntry { at, actor, action, object, detail }) == hash
    }))
}

/// The same append for the writer thread's synchronous connection.
pub fn append_sync(keys: &KeyRing, tx: &rusqlite::Transaction, entries: &[AuditEntry]) -> rusqlite::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let last: Option<Vec<u8>> =
        tx.prepare_cached("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")?.query_row([], |r| r.get(0)).optional()?;
    let mut prev = last.unwrap_or_else(|| GENESIS.to_vec());
    let mut insert =
        tx.prepare_cached("INSERT INTO audit (at, actor, action, object, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)")?;
    for e in entries {
        let hash = chain_hash(keys, &prev, e);
        insert.execute(rusqlite::params![e.at, e.actor, e.action, e.object, e.detail, prev, hash])?;
        prev = hash;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store;

    fn entry(at: i64, actor: &str, action: &str) -> AuditEntry {
        AuditEntry { at, actor: actor.into(), action: action.into(), object: None, detail: Some(format!("at={at}")) }
    }

    #[tokio::test]
    async fn a_rolled_back_append_leaves_no_gap_and_the_listings_filter() {
        let (_dir, store) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        tx.audit(&[entry(10, "user:olga", "user.add"), entry(20, "user:bert", "role.grant")]).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin_write().await.unwrap();
        tx.audit(&[entry(25, "user:olga", "user.lock")]).await.unwrap();
        drop(tx); // rolled back: its id is given again
        let mut tx = store.begin_write().await.unwrap();
        tx.audit(&[entry(30, "user:olga", "user.remove")]).await.unwrap();
        tx.commit().await.unwrap();

        let mut conn = store.db().begin_read().await.unwrap();
        assert!(matches!(verify(&store.keys, &mut conn).await.unwrap(), ChainCheck::Intact { entries: 3, .. }));
        let all = list(&store, 0, 10, None, None).await.unwrap();
        assert_eq!(
            all.iter().map(|e| (e.id, e.action.as_str())).collect::<Vec<_>>(),
            [(1, "user.add"), (2, "role.grant"), (3, "user.remove")]
        );
        assert_eq!((all[0].at.as_str(), all[0].detail.as_deref()), ("1970-01-01T00:00:00.010Z", Some("at=10")));
        let olga = list(&store, 1, 10, None, Some("user:olga")).await.unwrap();
        assert_eq!(olga.iter().map(|e| e.id).collect::<Vec<_>>(), [3], "after 1, olga's only");
        let newest = |filter: NewestFilter<'static>| {
            let store = &store;
            async move { list_newest(store, &filter, 10).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>() }
        };
        assert_eq!(newest(NewestFilter::default()).await, [3, 2, 1]);
        assert_eq!(newest(NewestFilter { before: Some(3), ..Default::default() }).await, [2, 1]);
        assert_eq!(newest(NewestFilter { action: Some("role.grant"), ..Default::default() }).await, [2]);
        assert_eq!(newest(NewestFilter { from: Some(20), to: Some(30), ..Default::default() }).await, [2], "from inclusive, to exclusive");
    }

    #[test]
    fn any_field_change_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::load_or_create(&dir.path().join("k")).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other_keys = KeyRing::load_or_create(&other_dir.path().join("k")).unwrap();
        let e = AuditEntry { at: 1, actor: "smtp".into(), action: "message.registered".into(), object: Some("MR-1".into()), detail: None };
        let h = chain_hash(&keys, &GENESIS, &e);
        assert_ne!(chain_hash(&other_keys, &GENESIS, &e), h, "another key gives another chain");
        let mut variants = vec![];
        let mut v = e.clone();
        v.at = 2;
        variants.push(v);
        let mut v = e.clone();
        v.actor = "smtpx".into();
        variants.push(v);
        let mut v = e.clone();
        v.object = None;
        variants.push(v);
        let mut v = e.clone();
        v.detail = Some(String::new());
        variants.push(v);
        for v in variants {
            assert_ne!(chain_hash(&keys, &GENESIS, &v), h);
        }
        assert_ne!(chain_hash(&keys, &[1u8; 32], &e), h);
    }
}
