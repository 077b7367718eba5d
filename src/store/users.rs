//! Staff accounts: the `users` rows (password hash, officer's lock, login counters) and their
//! role memberships (`user_roles`). Times are unix milliseconds.

use std::collections::HashMap;

use super::cases::ACTIVE;
use super::cases::counters::{self, Deltas, Key};
use super::engine::{on_conn, on_db};
use super::tx::Tx;
use super::{Store, StoreError};

/// Counts one login attempt for user `$1` before its password is checked, as a failure until a
/// success resets the count. One statement, so concurrent logins (on this node or another one
/// sharing the database) each see the attempts before them. `$2` now, `$3` max_failures, `$4` the
/// end of a lockout starting now (all unix ms).
///
/// * While a lockout lasts, the attempt is marked `$3 + 1`: refused unchecked.
/// * An ended lockout starts the count over at 1.
/// * The attempt that reaches `$3` starts the lockout at once, before its own check, so attempts
///   arriving meanwhile are refused; if it succeeds, the success lifts the lockout again.
///
/// Returns the reserved attempt in `failed_logins` (granted when ≤ `$3`).
const RESERVE_USER: &str = "UPDATE users SET
    failed_logins = CASE
        WHEN locked_until > $2 THEN $3 + 1
        WHEN locked_until IS NOT NULL THEN 1
        ELSE failed_logins + 1 END,
    locked_until = CASE
        WHEN locked_until > $2 THEN locked_until
        WHEN (CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_logins + 1 END) >= $3 THEN $4
        ELSE NULL END
WHERE name = $1
RETURNING id, password_hash, locked, failed_logins, locked_until";

/// A user's login attempt, reserved by [`reserve_login`].
#[derive(Debug)]
pub struct Reservation {
    pub id: i64,
    pub hash: String,
    /// Locked by an officer (checked only after the password).
    pub locked: bool,
    /// The n-th attempt in a row; over `max_failures`: refused while locked out.
    pub attempt: i64,
    pub locked_until: Option<i64>,
}

/// Reserves one login attempt for `name` (see [`RESERVE_USER`]); None when no such user.
/// `lockout_end` is when a lockout starting now would end.
pub async fn reserve_login(
    store: &Store,
    name: &str,
    now: i64,
    max_failures: i64,
    lockout_end: i64,
) -> Result<Option<Reservation>, StoreError> {
    let row: Option<(i64, String, i64, i64, Option<i64>)> = on_db!(store.db(), pool => {
        let row = sqlx::query_as(RESERVE_USER).bind(name).bind(now).bind(max_failures).bind(lockout_end).fetch_optional(pool).await?;
        if row.is_none() {
            // A reservation commits a write; an unknown name must cost the same, or the answer's
            // timing would tell which names exist. Counting it does (a row rewritten unchanged
            // would not: SQLite skips writing identical content).
            sqlx::query(
                "INSERT INTO counters (name, value) VALUES ('login.unknown-user', 1) \
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
            )
            .execute(pool)
            .await?;
        }
        row
    });
    Ok(row.map(|(id, hash, locked, attempt, locked_until)| Reservation { id, hash, locked: locked != 0, attempt, locked_until }))
}

/// A user as a principal is built from: name, roles, and (queue, permission) grants as stored.
pub struct Standing {
    pub name: String,
    pub roles: Vec<String>,
    pub grants: Vec<(String, String)>,
}

/// The user's standing, or None when removed, locked by an officer, or reset (a pending
/// enrolment code: no session survives that).
pub async fn standing(store: &Store, user_id: i64) -> Result<Option<Standing>, StoreError> {
    on_db!(store.db(), pool => {
        let Some(name) = sqlx::query_scalar("SELECT name FROM users WHERE id = $1 AND locked = 0 AND enrolment_mac IS NULL")
            .bind(user_id)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let roles = sqlx::query_scalar("SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role").bind(user_id).fetch_all(pool).await?;
        let grants =
            sqlx::query_as("SELECT g.queue, g.permission FROM user_roles u JOIN role_grants g ON g.role = u.role WHERE u.user_id = $1")
                .bind(user_id)
                .fetch_all(pool)
                .await?;
        Ok(Some(Standing { name, roles, grants }))
    })
}

/// A user as listed for officers (no secrets).
pub struct Listed {
    pub name: String,
    pub roles: Vec<String>,
    pub locked: bool,
    pub locked_until: Option<i64>,
    pub failed_logins: i64,
    pub created_at: i64,
    pub password_changed_at: i64,
    pub enrolment_pending: bool,
    pub enrolment_expires_at: Option<i64>,
    /// Where notifications are mailed (None: the web list only).
    pub email: Option<String>,
}

/// One `users` row as [`list`] reads it, in `Listed`'s order without the roles.
/// `enrolment_mac IS NOT NULL` is decoded as bool: an integer in SQLite, a boolean in PostgreSQL.
type ListedRow = (i64, String, i64, Option<i64>, i64, i64, i64, bool, Option<i64>, Option<String>);

/// Every user, by name, with his roles by name.
pub async fn list(store: &Store) -> Result<Vec<Listed>, StoreError> {
    let (users, memberships): (Vec<ListedRow>, Vec<(i64, String)>) = on_db!(store.db(), pool => {
        let users = sqlx::query_as(
            "SELECT id, name, locked, locked_until, failed_logins, created_at, password_changed_at,
                    enrolment_mac IS NOT NULL, enrolment_expires_at, email
             FROM users ORDER BY name",
        )
        .fetch_all(pool)
        .await?;
        (users, sqlx::query_as("SELECT user_id, role FROM user_roles ORDER BY role").fetch_all(pool).await?)
    });
    let mut roles: HashMap<i64, Vec<String>> = HashMap::new();
    for (user_id, role) in memberships {
        roles.entry(user_id).or_default().push(role);
    }
    Ok(users
        .into_iter()
        .map(|(id, name, locked, locked_until, failed_logins, created_at, password_changed_at, pending, enrolment_expires_at, email)| {
            Listed {
                name,
                roles: roles.remove(&id).unwrap_or_default(),
                locked: locked != 0,
                locked_until,
                failed_logins,
                created_at,
                password_changed_at,
                enrolment_pending: pending,
                enrolment_expires_at,
                email,
            }
        })
        .collect())
}

/// Replaces a user's password hash directly, nothing else (the fuzzing harness's cheap hash).
pub async fn replace_hash(store: &Store, name: &str, hash: &str) -> Result<(), StoreError> {
    on_db!(store.db(), pool => {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2").bind(hash).bind(name).execute(pool).await.map(|_| ())?
    });
    Ok(())
}

impl Tx {
    pub async fn user_id(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(on_conn!(self.engine(), c => sqlx::query_scalar("SELECT id FROM users WHERE name = $1").bind(name).fetch_optional(c).await?))
    }

    /// A new user; None when the name is taken.
    pub async fn insert_user(&mut self, name: &str, password_hash: &str, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(on_conn!(self.engine(), c => sqlx::query_scalar(
            "INSERT INTO users (name, password_hash, created_at, password_changed_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now)
        .bind(now)
        .fetch_optional(c)
        .await?))
    }

    /// Adds a membership (nothing when it exists).
    pub async fn add_membership(&mut self, user_id: i64, role: &str) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(user_id)
            .bind(role)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    pub async fn remove_membership(&mut self, user_id: i64, role: &str) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role = $2")
            .bind(user_id)
            .bind(role)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    pub async fn is_member(&mut self, user_id: i64, role: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = on_conn!(self.engine(), c => sqlx::query_scalar("SELECT user_id FROM user_roles WHERE user_id = $1 AND role = $2")
            .bind(user_id)
            .bind(role)
            .fetch_optional(c)
            .await?);
        Ok(found.is_some())
    }

    /// A successful login: the counters start over and a lockout is lifted.
    pub async fn login_succeeded(&mut self, user_id: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Until when the user is locked out after failed logins, if ever.
    pub async fn locked_until(&mut self, user_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(
            on_conn!(self.engine(), c => sqlx::query_scalar("SELECT locked_until FROM users WHERE id = $1").bind(user_id).fetch_one(c).await?),
        )
    }

    /// A password set on the host: counters, lockout, issuer and any pending code cleared.
    pub async fn set_password(&mut self, user_id: i64, password_hash: &str, now: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2, failed_logins = 0, locked_until = NULL, password_issuer = NULL,
                    enrolment_mac = NULL, enrolment_expires_at = NULL, enrolment_issuer = NULL WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .execute(c)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Sets (or clears, with None) the address a user's notifications are mailed to.
    pub async fn set_email(&mut self, user_id: i64, email: Option<&str>) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(user_id)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// An officer's lock (no login until unlocked).
    pub async fn lock_user(&mut self, user_id: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("UPDATE users SET locked = 1 WHERE id = $1").bind(user_id).execute(c).await.map(|_| ())?);
        Ok(())
    }

    /// Lifts an officer's lock and a lockout after failed logins.
    pub async fn unlock_user(&mut self, user_id: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("UPDATE users SET locked = 0, failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Removes a user with its sessions, roles and reading state; its cases become unassigned.
    pub async fn remove_user(&mut self, user_id: i64) -> Result<(), StoreError> {
        // Its active cases move to the unassigned counters (same transaction).
        let unassigned: Vec<(String, String)> = on_conn!(self.engine(), c => {
            sqlx::query_as("UPDATE cases SET assignee = NULL WHERE assignee = $1 RETURNING queue, status").bind(user_id).fetch_all(c).await?
        });
        let mut deltas = Deltas::default();
        for (queue, status) in unassigned.into_iter().filter(|(_, status)| ACTIVE.contains(&status.as_str())) {
            deltas.add_key(Key::Count { queue: queue.clone(), status: status.clone(), unassigned: 0 }, -1);
            deltas.add_key(Key::Count { queue, status, unassigned: 1 }, 1);
        }
        counters::apply(self.engine(), &deltas).await?;
        on_conn!(self.engine(), c => {
            for statement in [
                "DELETE FROM sessions WHERE user_id = $1",
                "DELETE FROM user_roles WHERE user_id = $1",
                "DELETE FROM mailbox_flags WHERE user_id = $1",
                "DELETE FROM mailbox_seen_through WHERE user_id = $1",
                "DELETE FROM notifications WHERE user_id = $1",
                "DELETE FROM users WHERE id = $1",
            ] {
                sqlx::query(statement).bind(user_id).execute(&mut *c).await?;
            }
        });
        Ok(())
    }

    /// Who issued the enrolment code with which the user set his password (None: set on the host).
    pub async fn password_issuer(&mut self, user_id: i64) -> Result<Option<String>, StoreError> {
        let issuer: Option<Option<String>> = on_conn!(self.engine(), c => {
            sqlx::query_scalar("SELECT password_issuer FROM users WHERE id = $1").bind(user_id).fetch_optional(c).await?
        });
        Ok(issuer.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::store;

    #[tokio::test]
    async fn memberships_are_idempotent_and_reservations_count() {
        let (_dir, store) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        assert!(tx.insert_role("support-agent", "", 1).await.unwrap());
        let id = tx.insert_user("anna", "hash", 1).await.unwrap().unwrap();
        assert!(tx.insert_user("anna", "other", 2).await.unwrap().is_none(), "the name is taken");
        tx.add_membership(id, "support-agent").await.unwrap();
        tx.add_membership(id, "support-agent").await.unwrap();
        assert!(tx.is_member(id, "support-agent").await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(super::standing(&store, id).await.unwrap().unwrap().roles, ["support-agent"]);
        let mut tx = store.begin_write().await.unwrap();
        assert!(tx.insert_role("auditors", "", 1).await.unwrap());
        tx.add_membership(id, "auditors").await.unwrap();
        let bert = tx.insert_user("bert", "hash", 3).await.unwrap().unwrap();
        tx.issue_code(bert, &crate::store::enrolment::Issue { unusable_hash: "x", mac: b"mac", expires_at: 9, issuer: "cli:root" }, 4)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let listed = super::list(&store).await.unwrap();
        let shown: Vec<_> =
            listed.iter().map(|u| (u.name.as_str(), u.roles.join(","), u.enrolment_pending, u.enrolment_expires_at)).collect();
        assert_eq!(shown, [("anna", "auditors,support-agent".to_string(), false, None), ("bert", String::new(), true, Some(9))]);
        assert!(super::standing(&store, bert).await.unwrap().is_none(), "a pending code: no standing");

        let reserve = |now| super::reserve_login(&store, "anna", now, 2, now + 1000);
        let attempts = [reserve(10).await.unwrap().unwrap(), reserve(10).await.unwrap().unwrap(), reserve(10).await.unwrap().unwrap()];
        assert_eq!(attempts.iter().map(|r| r.attempt).collect::<Vec<_>>(), [1, 2, 3], "the third is refused while locked out");
        assert_eq!(attempts[1].locked_until, Some(1010), "the second started the lockout");
        assert_eq!(reserve(2000).await.unwrap().unwrap().attempt, 1, "an ended lockout starts over");
        assert!(super::reserve_login(&store, "nobody", 10, 2, 1010).await.unwrap().is_none());
    }
}
