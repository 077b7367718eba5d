//! Master key rotation in the database: which master key version wraps how many data keys, and
//! re-wrapping them under the current version in short write transactions (a running server
//! keeps taking mail between them). `mailroom keys rotate` (src/cli/keys.rs) drives it and
//! retires the old versions from the key file only after [`Store::retire_keys`] has found, under
//! the write lock, that no row still needs them.

use super::audit::{self, AuditEntry};
use super::crypto::{CryptoError, aad};
use super::engine::{Conn, on_conn};
use super::{Store, StoreError, now_millis};

/// What binds a table's wrapped data key to its row (the associated data of the wrap).
#[derive(Clone, Copy)]
enum Binding {
    /// `aad("dek", uid)` with the row's `uid` column (every sealed row made by `KeyRing::new_row`).
    Dek,
    /// `aad("reset-code", id)`: an approved password reset's sealed code (src/access/resets.rs).
    ResetCode,
}

/// A row whose data key crypto-shredding destroyed (`store::purge`) says `key_id = 0`: nothing is
/// left to re-wrap, and no key version is needed for it (the queries below leave such rows out).
///
/// Every column pair that holds a wrapped data key (table and column names are these constants:
/// the dynamic SQL below is made only from them, never from input). A new one belongs here, or rotation leaves
/// its rows under a version that retirement then refuses to remove (tests/key_rotation.rs reads
/// everything with the new key only).
struct Wrapped {
    table: &'static str,
    id: &'static str,
    key_id: &'static str,
    wrapped_key: &'static str,
    binding: Binding,
}

const WRAPPED: &[Wrapped] = &[
    Wrapped { table: "messages", id: "id", key_id: "key_id", wrapped_key: "wrapped_key", binding: Binding::Dek },
    Wrapped { table: "customers", id: "id", key_id: "key_id", wrapped_key: "wrapped_key", binding: Binding::Dek },
    Wrapped { table: "outbox", id: "id", key_id: "key_id", wrapped_key: "wrapped_key", binding: Binding::Dek },
    Wrapped { table: "case_entries", id: "id", key_id: "key_id", wrapped_key: "wrapped_key", binding: Binding::Dek },
    Wrapped { table: "cases", id: "id", key_id: "key_id", wrapped_key: "wrapped_key", binding: Binding::Dek },
    Wrapped { table: "user_totp", id: "user_id", key_id: "key_id", wrapped_key: "wrapped_key", binding: Binding::Dek },
    Wrapped { table: "access_changes", id: "id", key_id: "code_key_id", wrapped_key: "code_wrapped_key", binding: Binding::ResetCode },
];

/// How many data keys one master key version wraps in one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyCount {
    pub table: &'static str,
    pub key_id: u32,
    pub rows: u64,
}

/// Rows some old version still wraps: retirement is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} data keys are still wrapped by master key versions other than {keep} ({}): nothing was retired; \
     run `mailroom keys rotate` again once every server wraps with version {keep} (it notices the new key file by itself)",
    left.iter().map(|c| c.rows).sum::<u64>(),
    left.iter().map(|c| format!("{} v{}: {}", c.table, c.key_id, c.rows)).collect::<Vec<_>>().join(", ")
)]
pub struct StillWrapped {
    pub keep: u32,
    pub left: Vec<KeyCount>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error(transparent)]
    StillWrapped(#[from] StillWrapped),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Data keys per table and master key version (tables without any are left out).
    pub async fn key_counts(&self) -> Result<Vec<KeyCount>, StoreError> {
        let mut conn = self.db.begin_read().await?;
        counts_in(&mut conn, None).await
    }

    /// Re-wraps up to `limit` data keys that a version other than the current one wraps, in one
    /// write transaction (all of them or none). Returns how many; 0 when none is left.
    pub async fn rewrap_batch(&self, limit: u32) -> Result<u64, StoreError> {
        let current = i64::from(self.keys.current_id());
        let mut tx = self.db.begin_write().await?;
        let mut left = i64::from(limit);
        let mut done = 0;
        for w in WRAPPED {
            if left == 0 {
                break;
            }
            // A reset code is bound to its row id, every other sealed row to its `uid`.
            let uid = match w.binding {
                Binding::Dek => "uid, ",
                Binding::ResetCode => "",
            };
            let sql = format!(
                "SELECT {id}, {uid}{k}, {wk} FROM {t} WHERE {k} IS NOT NULL AND {k} <> 0 AND {k} <> $1 ORDER BY {id} LIMIT $2",
                id = w.id,
                k = w.key_id,
                wk = w.wrapped_key,
                t = w.table
            );
            let query = sqlx::AssertSqlSafe(sql);
            let rows: Vec<(i64, Vec<u8>, i64, Vec<u8>)> = match w.binding {
                Binding::Dek => {
                    on_conn!(&mut tx, conn => sqlx::query_as(query).bind(current).bind(left).fetch_all(conn).await?)
                }
                Binding::ResetCode => {
                    let rows: Vec<(i64, i64, Vec<u8>)> =
                        on_conn!(&mut tx, conn => sqlx::query_as(query).bind(current).bind(left).fetch_all(conn).await?);
                    rows.into_iter().map(|(id, k, wk)| (id, Vec::new(), k, wk)).collect()
                }
            };
            let update = format!(
                "UPDATE {t} SET {k} = $1, {wk} = $2 WHERE {id} = $3 AND {k} = $4",
                t = w.table,
                k = w.key_id,
                wk = w.wrapped_key,
                id = w.id
            );
            for (id, uid, key_id, wrapped) in rows {
                let binding = match w.binding {
                    Binding::Dek => aad("dek", &uid),
                    Binding::ResetCode => aad("reset-code", &id.to_be_bytes()),
                };
                let old = u32::try_from(key_id).map_err(|_| CryptoError::Format)?;
                let (new_id, rewrapped) = self.keys.rewrap(old, &wrapped, &binding)?;
                if i64::from(new_id) != current {
                    // The key file changed under us: leave this batch to the next run.
                    return Err(CryptoError::KeyFile {
                        path: self.keys.path().to_path_buf(),
                        reason: format!("changed during the rotation (current version {new_id}, was {current})"),
                    }
                    .into());
                }
                on_conn!(&mut tx, conn => sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(i64::from(new_id))
                    .bind(&rewrapped)
                    .bind(id)
                    .bind(key_id)
                    .execute(conn)
                    .await
                    .map(|_| ())?);
                done += 1;
                left -= 1;
            }
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Under the write lock: if no data key is wrapped by a version other than `keep`, appends
    /// `entry` to the audit chain and runs `retire` (which removes the other versions from the
    /// key file) before the commit, so that no write of this database slips in between the check
    /// and the removal. Refused (nothing done) while any row still needs another version.
    pub async fn retire_keys<T>(
        &self,
        keep: u32,
        entry: AuditEntry,
        retire: impl FnOnce() -> Result<T, CryptoError>,
    ) -> Result<T, RetireError> {
        let mut tx = self.db.begin_write().await.map_err(StoreError::from)?;
        let left = counts_in(&mut tx, Some(keep)).await?;
        if !left.is_empty() {
            return Err(StillWrapped { keep, left }.into());
        }
        audit::append(&self.keys, &mut tx, &[entry]).await.map_err(StoreError::from)?;
        let out = retire().map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(out)
    }
}

/// Data keys per table and version; with `other_than`, only those of the other versions.
async fn counts_in(conn: &mut Conn, other_than: Option<u32>) -> Result<Vec<KeyCount>, StoreError> {
    let mut out = Vec::new();
    for w in WRAPPED {
        let sql = format!(
            "SELECT {k}, COUNT(*) FROM {t} WHERE {k} IS NOT NULL AND {k} <> 0 AND {k} <> $1 GROUP BY {k} ORDER BY {k}",
            k = w.key_id,
            t = w.table
        );
        // Versions start at 1, so -1 excludes none.
        let other_than = other_than.map_or(-1, i64::from);
        let rows: Vec<(i64, i64)> =
            on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(other_than).fetch_all(c).await?);
        out.extend(rows.into_iter().map(|(key_id, rows)| KeyCount { table: w.table, key_id: key_id as u32, rows: rows as u64 }));
    }
    Ok(out)
}

/// The audit entry of a rotation step (`keys.rotate`, `keys.retire`): versions and counts only.
pub fn audit_entry(actor: &str, action: &str, detail: String) -> AuditEntry {
    AuditEntry { at: now_millis(), actor: actor.into(), action: action.into(), object: Some("master.key".into()), detail: Some(detail) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::crypto::{DataKey, KeyRing};
    use crate::store::directory::{Customer, parse_csv};
    use crate::store::engine::on_db;
    use crate::store::testing;

    /// A table that gains a wrapped data key must be listed in `WRAPPED`, or rotation would leave
    /// its rows behind (and retirement refuse for ever).
    #[tokio::test]
    async fn every_wrapped_key_column_of_the_schema_is_rotated() {
        let (_dir, store) = testing::store().await;
        let mut found: Vec<(String, String)> = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND p.name LIKE '%wrapped_key'",
        )
        .fetch_all(pool)
        .await
        .unwrap());
        found.sort();
        let mut listed: Vec<(String, String)> = WRAPPED.iter().map(|w| (w.table.to_string(), w.wrapped_key.to_string())).collect();
        listed.sort();
        assert_eq!(found, listed);
    }

    #[tokio::test]
    async fn rewrap_covers_reset_codes_and_retirement_waits_for_the_last_row() {
        let (dir, store) = testing::store().await;
        let path = dir.path().join("master.key");
        // An approved reset's sealed code, as access::resets seals it (the change id as AAD).
        let binding = aad("reset-code", &7i64.to_be_bytes());
        let key = DataKey::generate().unwrap();
        let (key_id, wrapped) = store.keys.wrap(&key, &binding).unwrap();
        let sealed = key.seal(&binding, b"the-code").unwrap();
        on_db!(store.db(), pool => sqlx::query(
            "INSERT INTO access_changes (id, kind, role, requester_id, requester, requested_at, status, code_key_id, code_wrapped_key, code_ct)
             VALUES (7, 'user.reset', 'staff', 1, 'olga', 0, 'approved', $1, $2, $3)",
        )
        .bind(i64::from(key_id))
        .bind(&wrapped)
        .bind(&sealed)
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
        let customers: Vec<Customer> = parse_csv("address_or_domain,name,tier,tags\nana@customer.example,Ana,vip,\n").unwrap();
        store.import_customers(&customers, "test").await.unwrap();

        assert_eq!(KeyRing::add_version(&path).unwrap(), 2);
        assert!(store.keys.reload().unwrap());
        let entry = || audit_entry("test", "keys.retire", "keep=2".into());
        match store.retire_keys(2, entry(), || KeyRing::retire_all_but(&path, 2)).await {
            Err(RetireError::StillWrapped(still)) => assert_eq!(
                still.left,
                vec![KeyCount { table: "customers", key_id: 1, rows: 1 }, KeyCount { table: "access_changes", key_id: 1, rows: 1 }]
            ),
            other => panic!("retired with rows left: {:?}", other.map(|_| ())),
        }
        assert_eq!(store.keys.versions().len(), 2, "nothing removed");
        assert!(testing::audit_details(&store, "keys.retire").await.is_empty(), "a refusal is not a retirement");

        assert_eq!(store.rewrap_batch(1).await.unwrap(), 1, "one per batch");
        assert_eq!(store.rewrap_batch(10).await.unwrap(), 1);
        assert_eq!(store.rewrap_batch(10).await.unwrap(), 0, "nothing left");
        assert_eq!(store.retire_keys(2, entry(), || KeyRing::retire_all_but(&path, 2)).await.unwrap(), vec![1]);
        assert_eq!(testing::audit_details(&store, "keys.retire").await, vec!["keep=2"]);
        assert!(store.key_counts().await.unwrap().iter().all(|c| c.key_id == 2));

        // With the new key file alone: the code and the directory open.
        let ring = KeyRing::load(&path).unwrap();
        assert_eq!(ring.versions().iter().map(|v| v.id).collect::<Vec<_>>(), vec![2]);
        let (k, w, ct): (i64, Vec<u8>, Vec<u8>) = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT code_key_id, code_wrapped_key, code_ct FROM access_changes WHERE id = 7"
        )
        .fetch_one(pool)
        .await
        .unwrap());
        assert_eq!(ring.unwrap(k as u32, &w, &binding).unwrap().open(&binding, &ct).unwrap(), b"the-code");
        assert_eq!(store.export_customers("test").await.unwrap().len(), 1);
    }
}
