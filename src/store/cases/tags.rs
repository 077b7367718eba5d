//! A case's tags, sealed under the case's own data key (made with its first tag), and found by
//! a keyed blind index per tag (`case_tags`), never by their text.

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::{CaseKey, SealedTags};
use crate::store::crypto::{KeyRing, aad};
use crate::store::engine::{Conn, on_conn, on_db};
use crate::store::{Store, StoreError, sqlite};

/// Seals `tags` under the case's key, making one (a fresh data key and uid) for its first tag.
pub fn seal_tags(keys: &KeyRing, key: Option<&CaseKey>, tags: &[String]) -> Result<SealedTags, StoreError> {
    let (key, data_key) = match key {
        Some(k) => (k.clone(), keys.unwrap(k.key_id as u32, &k.wrapped_key, &aad("dek", &k.uid))?),
        None => {
            let row = keys.new_row()?;
            (CaseKey { uid: row.uid.to_vec(), key_id: row.key_id as i64, wrapped_key: row.wrapped_key }, row.key)
        }
    };
    let tags_ct = if tags.is_empty() {
        None
    } else {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(tags).expect("strings always serialise"));
        Some(data_key.seal(&aad("case-tags", &key.uid), &plain)?)
    };
    let mut index: Vec<Vec<u8>> = tags.iter().map(|t| keys.tag_index(t)).collect();
    index.sort();
    index.dedup();
    Ok(SealedTags { key, tags_ct, index })
}

impl Store {
    /// The tags of a case from its sealed column (empty when it has none).
    pub(super) fn open_tags(&self, case_id: i64, key: Option<&CaseKey>, tags_ct: Option<&[u8]>) -> Result<Vec<String>, StoreError> {
        let (Some(key), Some(ct)) = (key, tags_ct) else {
            return match tags_ct {
                Some(_) => Err(StoreError::BatchFailed(format!("case {case_id} has sealed tags but no key"))),
                None => Ok(Vec::new()),
            };
        };
        let plain = zeroize::Zeroizing::new(self.row_key(&key.uid, key.key_id, &key.wrapped_key)?.open(&aad("case-tags", &key.uid), ct)?);
        serde_json::from_slice(&plain).map_err(|e| StoreError::BatchFailed(format!("stored tags of case {case_id} unreadable: {e}")))
    }

    /// The tags of several cases (for the operators' `message list`).
    pub async fn case_tags_many(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        type Columns = (i64, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>);
        let rows: Vec<Columns> = on_db!(self.db(), pool => {
            let mut b = QueryBuilder::new("SELECT id, uid, key_id, wrapped_key, tags_ct FROM cases WHERE id IN (");
            let mut list = b.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            b.push(")");
            b.build_query_as().fetch_all(pool).await?
        });
        let mut out = HashMap::new();
        for (id, uid, key_id, wrapped_key, tags_ct) in rows {
            let key = CaseKey::from_columns(uid, key_id, wrapped_key);
            out.insert(id, self.open_tags(id, key.as_ref(), tags_ct.as_deref())?);
        }
        Ok(out)
    }

    /// Seals the clear tags that migration 0006 found (written before tags were sealed), in
    /// batches, and wipes their clear text: on SQLite, `secure_delete` zeroes the old row
    /// contents in the pages, and the WAL that held them is truncated. Cheap once done (the list
    /// is empty).
    pub async fn seal_clear_tags(&self) -> Result<u64, StoreError> {
        let pending: i64 = on_db!(self.db(), pool => sqlx::query_scalar("SELECT COUNT(*) FROM cases_clear_tags").fetch_one(pool).await?);
        if pending == 0 {
            return Ok(0);
        }
        let mut sealed = 0u64;
        loop {
            let mut tx = self.db().begin_write().await?;
            sqlite::secure_delete(&mut tx, true).await?;
            let batch = self.seal_clear_batch(&mut tx).await?;
            tx.commit().await?;
            if batch == 0 {
                break;
            }
            sealed += batch;
        }
        if !sqlite::truncate_wal(self.db()).await? {
            tracing::warn!("the WAL could not be truncated after sealing clear tags (a reader held it); the next checkpoint restarts it");
        }
        Ok(sealed)
    }

    /// Seals the clear tags of up to 500 cases in `tx`; how many.
    async fn seal_clear_batch(&self, tx: &mut Conn) -> Result<u64, StoreError> {
        type Columns = (i64, String, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>);
        let rows: Vec<Columns> = on_conn!(&mut *tx, c => sqlx::query_as(
            "SELECT c.id, c.tags, c.tags_ct, c.uid, c.key_id, c.wrapped_key FROM cases_clear_tags p JOIN cases c ON c.id = p.case_id
             ORDER BY p.case_id LIMIT 500",
        )
        .fetch_all(c)
        .await?);
        for (id, clear, tags_ct, uid, key_id, wrapped_key) in &rows {
            let clear: Vec<String> = serde_json::from_str(clear).unwrap_or_default();
            let key = CaseKey::from_columns(uid.clone(), *key_id, wrapped_key.clone());
            // Tags sealed since the migration come first, then the old clear ones.
            let mut tags = self.open_tags(*id, key.as_ref(), tags_ct.as_deref())?;
            for tag in clear {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            write_tags(tx, &self.keys, *id, key.as_ref(), &tags).await?;
            on_conn!(&mut *tx, c => {
                sqlx::query("UPDATE cases SET tags = '[]' WHERE id = $1").bind(id).execute(&mut *c).await?;
                sqlx::query("DELETE FROM cases_clear_tags WHERE case_id = $1").bind(id).execute(&mut *c).await?;
            });
        }
        Ok(rows.len() as u64)
    }
}

/// Stores a case's tags sealed (making its key with the first tag) and their blind indexes.
pub(super) async fn write_tags(
    tx: &mut Conn,
    keys: &KeyRing,
    case_id: i64,
    key: Option<&CaseKey>,
    tags: &[String],
) -> Result<CaseKey, StoreError> {
    let sealed = seal_tags(keys, key, tags)?;
    on_conn!(tx, c => {
        sqlx::query("UPDATE cases SET uid = $1, key_id = $2, wrapped_key = $3, tags_ct = $4 WHERE id = $5")
            .bind(&sealed.key.uid)
            .bind(sealed.key.key_id)
            .bind(&sealed.key.wrapped_key)
            .bind(&sealed.tags_ct)
            .bind(case_id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM case_tags WHERE case_id = $1").bind(case_id).execute(&mut *c).await?;
        for idx in &sealed.index {
            sqlx::query("INSERT INTO case_tags (case_id, tag_idx) VALUES ($1, $2)").bind(case_id).bind(idx).execute(&mut *c).await?;
        }
    });
    Ok(sealed.key)
}
