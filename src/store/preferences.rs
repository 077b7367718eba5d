//! A staff user's own page settings (`user_preferences`): UI language and keyboard shortcuts.
//! The store keeps the language as the tag it is given; `access::preferences` says which tags
//! are valid.

use super::engine::{on_conn, on_db};
use super::tx::Tx;
use super::{Store, StoreError};

/// One user's stored settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPreferences {
    /// `auto` or a language tag.
    pub language: String,
    pub shortcuts: bool,
}

/// The user's settings, or None when he never saved any.
pub async fn get(store: &Store, user_id: i64) -> Result<Option<StoredPreferences>, StoreError> {
    let row: Option<(String, i64)> = on_db!(store.db(), pool => {
        sqlx::query_as("SELECT language, shortcuts FROM user_preferences WHERE user_id = $1").bind(user_id).fetch_optional(pool).await?
    });
    Ok(row.map(|(language, shortcuts)| StoredPreferences { language, shortcuts: shortcuts != 0 }))
}

impl Tx {
    /// Saves the user's settings (replacing what was there).
    pub async fn set_preferences(&mut self, user_id: i64, preferences: &StoredPreferences, now: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query(
            "INSERT INTO user_preferences (user_id, language, shortcuts, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE SET language = excluded.language, shortcuts = excluded.shortcuts,
                 updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(&preferences.language)
        .bind(i64::from(preferences.shortcuts))
        .bind(now)
        .execute(c)
        .await
        .map(|_| ())?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store;

    #[tokio::test]
    async fn settings_are_saved_replaced_and_go_with_the_user() {
        let (_dir, store) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        let id = tx.insert_user("anna", "hash", 1).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        assert_eq!(get(&store, id).await.unwrap(), None, "nothing saved: the defaults");

        let ru = StoredPreferences { language: "ru".into(), shortcuts: false };
        let mut tx = store.begin_write().await.unwrap();
        tx.set_preferences(id, &ru, 2).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(get(&store, id).await.unwrap(), Some(ru));

        let auto = StoredPreferences { language: "auto".into(), shortcuts: true };
        let mut tx = store.begin_write().await.unwrap();
        tx.set_preferences(id, &auto, 3).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(get(&store, id).await.unwrap(), Some(auto));

        let mut tx = store.begin_write().await.unwrap();
        tx.remove_user(id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(get(&store, id).await.unwrap(), None, "removed with the user");
    }
}
