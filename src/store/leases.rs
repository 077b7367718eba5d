//! Leases for singleton jobs: work that must not run on two nodes at once (purging expired
//! sessions, and sweeps to come). One row per job in `leases`; a holder takes it with one
//! conditional upsert (free, expired or already its own → its own until now + ttl) and renews it
//! the same way while it runs. On SQLite (one node) it always succeeds, through the same code.
//!
//! No sequencer lock: the upsert touches one `leases` row, no counter or audit entry, and both
//! engines serialise concurrent upserts of one key themselves (SQLite's write lock; PostgreSQL's
//! unique index and row lock, where `ON CONFLICT DO UPDATE … WHERE` re-checks the condition on
//! the newest row version), so exactly one of two contenders for a free lease gets it.

use super::engine::on_db;
use super::{Store, StoreError};

/// Takes or renews lease `name` for `holder` until `now + ttl_ms` (unix ms), unless another
/// holder's lease is still running at `now`. True when `holder` holds it now.
pub async fn acquire(store: &Store, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool, StoreError> {
    let taken = on_db!(store.db(), pool => sqlx::query(
        "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE leases.holder = excluded.holder OR leases.until <= $4",
    )
    .bind(name)
    .bind(holder)
    .bind(now.saturating_add(ttl_ms))
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected());
    Ok(taken == 1)
}

/// Gives lease `name` up if `holder` has it (a clean stop: another node need not wait for it to
/// expire).
pub async fn release(store: &Store, name: &str, holder: &str) -> Result<(), StoreError> {
    on_db!(store.db(), pool => sqlx::query("UPDATE leases SET until = 0 WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Who holds lease `name` and until when (unix ms), if anyone ever took it.
pub async fn holder(store: &Store, name: &str) -> Result<Option<(String, i64)>, StoreError> {
    Ok(on_db!(store.db(), pool => sqlx::query_as("SELECT holder, until FROM leases WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_an_expired_lease_is_taken_over() {
        let (_dir, store) = crate::store::testing::store().await;
        assert!(acquire(&store, "purge", "a", 1_000, 500).await.unwrap(), "a free lease is taken");
        assert!(!acquire(&store, "purge", "b", 1_200, 500).await.unwrap(), "a running lease is not");
        assert_eq!(holder(&store, "purge").await.unwrap(), Some(("a".into(), 1_500)));
        assert!(acquire(&store, "purge", "a", 1_400, 500).await.unwrap(), "its holder renews it");
        assert!(!acquire(&store, "purge", "b", 1_600, 500).await.unwrap(), "renewed: still a's");
        assert!(acquire(&store, "purge", "b", 1_900, 500).await.unwrap(), "expired: b takes it over");
        assert_eq!(holder(&store, "purge").await.unwrap(), Some(("b".into(), 2_400)));
        assert!(!acquire(&store, "purge", "a", 2_000, 500).await.unwrap(), "a lost it");
        assert!(acquire(&store, "other", "a", 2_000, 500).await.unwrap(), "leases are per name");
        release(&store, "purge", "a").await.unwrap();
        assert!(!acquire(&store, "purge", "a", 2_000, 500).await.unwrap(), "only the holder releases");
        release(&store, "purge", "b").await.unwrap();
        assert!(acquire(&store, "purge", "a", 2_000, 500).await.unwrap(), "released: free at once");
    }
}
