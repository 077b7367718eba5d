//! Roles and what they may do on which queue (`roles`, `role_grants`). Permissions are stored by
//! name ("read", "act", …); `access` owns their meaning.

use super::engine::{on_conn, on_db};
use super::tx::Tx;
use super::{Store, StoreError};

/// Every role with its grants and members, as listed for officers.
pub struct Listed {
    /// (name, description), by name.
    pub roles: Vec<(String, String)>,
    /// (role, queue, permission).
    pub grants: Vec<(String, String, String)>,
    /// (role, user name), by user name.
    pub members: Vec<(String, String)>,
}

pub async fn list(store: &Store) -> Result<Listed, StoreError> {
    Ok(on_db!(store.db(), pool => Listed {
        roles: sqlx::query_as("SELECT name, description FROM roles ORDER BY name").fetch_all(pool).await?,
        grants: sqlx::query_as("SELECT role, queue, permission FROM role_grants").fetch_all(pool).await?,
        members: sqlx::query_as("SELECT ur.role, u.name FROM user_roles ur JOIN users u ON u.id = ur.user_id ORDER BY u.name")
            .fetch_all(pool)
            .await?,
    }))
}

impl Tx {
    pub async fn role_exists(&mut self, role: &str) -> Result<bool, StoreError> {
        let found: Option<String> =
            on_conn!(self.engine(), c => sqlx::query_scalar("SELECT name FROM roles WHERE name = $1").bind(role).fetch_optional(c).await?);
        Ok(found.is_some())
    }

    /// A new role; false when the name is taken.
    pub async fn insert_role(&mut self, name: &str, description: &str, now: i64) -> Result<bool, StoreError> {
        let inserted = on_conn!(self.engine(), c => sqlx::query(
            "INSERT INTO roles (name, description, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(inserted > 0)
    }

    /// Grants one permission (nothing when granted already).
    pub async fn add_grant(&mut self, role: &str, queue: &str, permission: &str) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("INSERT INTO role_grants (role, queue, permission) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(role)
            .bind(queue)
            .bind(permission)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Revokes one permission, or every permission on the queue when `permission` is None.
    pub async fn remove_grant(&mut self, role: &str, queue: &str, permission: Option<&str>) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("DELETE FROM role_grants WHERE role = $1 AND queue = $2 AND ($3 IS NULL OR permission = $3)")
            .bind(role)
            .bind(queue)
            .bind(permission)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Queues on which a role has any grant.
    pub async fn role_queues(&mut self, role: &str) -> Result<Vec<String>, StoreError> {
        Ok(on_conn!(self.engine(), c => {
            sqlx::query_scalar("SELECT DISTINCT queue FROM role_grants WHERE role = $1").bind(role).fetch_all(c).await?
        }))
    }

    /// Queues (or "*") on which an account has `read`, through any of its roles.
    pub async fn readable_queues(&mut self, user_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_conn!(self.engine(), c => sqlx::query_scalar(
            "SELECT DISTINCT g.queue FROM role_grants g JOIN user_roles ur ON ur.role = g.role WHERE ur.user_id = $1 AND g.permission = 'read'",
        )
        .bind(user_id)
        .fetch_all(c)
        .await?))
    }

    /// The ids of a role's members.
    pub async fn role_members(&mut self, role: &str) -> Result<Vec<i64>, StoreError> {
        Ok(
            on_conn!(self.engine(), c => sqlx::query_scalar("SELECT user_id FROM user_roles WHERE role = $1").bind(role).fetch_all(c).await?),
        )
    }

    pub async fn member_count(&mut self, role: &str) -> Result<i64, StoreError> {
        Ok(
            on_conn!(self.engine(), c => sqlx::query_scalar("SELECT COUNT(*) FROM user_roles WHERE role = $1").bind(role).fetch_one(c).await?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::store;

    #[tokio::test]
    async fn grants_are_idempotent_and_revoked_one_or_all() {
        let (_dir, store) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        assert!(tx.insert_role("agents", "", 1).await.unwrap());
        assert!(!tx.insert_role("agents", "again", 2).await.unwrap(), "the name is taken");
        for p in ["read", "read", "act"] {
            tx.add_grant("agents", "support", p).await.unwrap();
        }
        tx.add_grant("agents", "sales", "read").await.unwrap();
        tx.remove_grant("agents", "support", Some("act")).await.unwrap();
        tx.remove_grant("agents", "sales", None).await.unwrap();
        tx.commit().await.unwrap();
        let listed = super::list(&store).await.unwrap();
        assert!(listed.roles.contains(&("agents".to_string(), String::new())));
        let agents: Vec<_> = listed.grants.iter().filter(|(role, ..)| role == "agents").collect();
        assert_eq!(agents, [&("agents".to_string(), "support".to_string(), "read".to_string())]);
    }
}
