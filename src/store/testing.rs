//! For unit tests: a store in a temp dir, and the few direct reads and writes that tests use to
//! look at or age the staff tables (expiry, lockouts, the audit log).

use super::engine::on_db;
use super::{Store, StoreOptions};

/// The default files (as deploy/mailroom.toml names them) and `[storage]` in `dir`.
pub(crate) fn options(dir: &std::path::Path) -> StoreOptions {
    StoreOptions {
        database_path: dir.join("mailroom.db"),
        master_key_path: dir.join("master.key"),
        data_dir: dir.to_path_buf(),
        storage: Default::default(),
    }
}

/// A store with the default configuration in a fresh temp dir (kept while the dir lives).
pub(crate) async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    (dir, store)
}

/// (action, detail) of every audit entry, oldest first.
pub(crate) async fn audit_log(store: &Store) -> Vec<(String, Option<String>)> {
    on_db!(store.db(), pool => sqlx::query_as("SELECT action, detail FROM audit ORDER BY id").fetch_all(pool).await.unwrap())
}

/// The details ("" for none) of the audit entries with `action`, oldest first.
pub(crate) async fn audit_details(store: &Store, action: &str) -> Vec<String> {
    on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT COALESCE(detail, '') FROM audit WHERE action = $1 ORDER BY id").bind(action).fetch_all(pool).await.unwrap()
    })
}

pub(crate) async fn counter(store: &Store, name: &str) -> i64 {
    on_db!(store.db(), pool => sqlx::query_scalar("SELECT value FROM counters WHERE name = $1").bind(name).fetch_one(pool).await.unwrap())
}

/// Runs one statement that changes rows (the helpers below that age or tamper with them).
async fn change(store: &Store, statement: &'static str) {
    on_db!(store.db(), pool => sqlx::query(statement).execute(pool).await.map(|_| ()).unwrap());
}

/// Every session's lifetime ends now.
pub(crate) async fn expire_sessions(store: &Store) {
    change(store, "UPDATE sessions SET expires_at = 0").await;
}

/// Every session was last seen `ms` earlier than recorded.
pub(crate) async fn age_sessions(store: &Store, ms: i64) {
    on_db!(store.db(), pool => {
        sqlx::query("UPDATE sessions SET last_seen_at = last_seen_at - $1").bind(ms).execute(pool).await.map(|_| ()).unwrap()
    });
}

/// What the database holds of every session token.
pub(crate) async fn session_token_hashes(store: &Store) -> Vec<Vec<u8>> {
    on_db!(store.db(), pool => sqlx::query_scalar("SELECT token_hash FROM sessions").fetch_all(pool).await.unwrap())
}

/// An officer's lock on every user.
pub(crate) async fn lock_every_user(store: &Store) {
    change(store, "UPDATE users SET locked = 1").await;
}

/// A user's (failed_logins, locked_until).
pub(crate) async fn login_state(store: &Store, name: &str) -> (i64, Option<i64>) {
    on_db!(store.db(), pool => {
        sqlx::query_as("SELECT failed_logins, locked_until FROM users WHERE name = $1").bind(name).fetch_one(pool).await.unwrap()
    })
}

/// Sets a user's lockout end, and its failure count when `failed_logins` is given.
pub(crate) async fn set_login_state(store: &Store, name: &str, failed_logins: Option<i64>, locked_until: i64) {
    on_db!(store.db(), pool => {
        sqlx::query("UPDATE users SET failed_logins = COALESCE($1, failed_logins), locked_until = $2 WHERE name = $3")
            .bind(failed_logins)
            .bind(locked_until)
            .bind(name)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap()
    });
}

/// The pending enrolment code of user `name` (of every user when None) expired long ago.
pub(crate) async fn expire_enrolment(store: &Store, name: Option<&str>) {
    on_db!(store.db(), pool => {
        sqlx::query("UPDATE users SET enrolment_expires_at = 1 WHERE $1 IS NULL OR name = $1")
            .bind(name)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap()
    });
}

/// Tampering: change `to` gets the sealed code of change `from`.
pub(crate) async fn copy_sealed_code(store: &Store, from: i64, to: i64) {
    on_db!(store.db(), pool => {
        sqlx::query(
            "UPDATE access_changes SET (code_key_id, code_wrapped_key, code_ct) =
                 (SELECT code_key_id, code_wrapped_key, code_ct FROM access_changes WHERE id = $1) WHERE id = $2",
        )
        .bind(from)
        .bind(to)
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap()
    });
}

/// The sealed code kept in change `id`'s row, if any.
pub(crate) async fn sealed_code_ciphertext(store: &Store, id: i64) -> Option<Vec<u8>> {
    on_db!(store.db(), pool => sqlx::query_scalar("SELECT code_ct FROM access_changes WHERE id = $1").bind(id).fetch_one(pool).await.unwrap())
}
