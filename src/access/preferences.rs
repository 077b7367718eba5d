//! A staff user's own page settings: UI language and keyboard shortcuts. Anyone logged in sets
//! his own (no permission needed, nobody else's); every change is audited as `user.preferences`
//! with the new values, which carry no customer data.

use super::{Access, Principal};
use crate::store::audit::AuditEntry;
use crate::store::preferences::{self as stored, StoredPreferences};
use crate::store::{StoreError, now_millis};

/// The UI language a user chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// From the browser's `Accept-Language` on each request.
    Auto,
    En,
    ZhCn,
    Ru,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::Auto, Language::En, Language::ZhCn, Language::Ru];

    /// `auto` or the BCP 47 tag, as stored and as posted by the settings form.
    pub fn tag(self) -> &'static str {
        match self {
            Language::Auto => "auto",
            Language::En => "en",
            Language::ZhCn => "zh-CN",
            Language::Ru => "ru",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.tag() == tag)
    }
}

/// One user's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preferences {
    pub language: Language,
    pub shortcuts: bool,
}

impl Default for Preferences {
    /// Nothing saved: the browser's language, shortcuts on.
    fn default() -> Preferences {
        Preferences { language: Language::Auto, shortcuts: true }
    }
}

impl Access {
    /// The user's settings (the defaults when none are saved; an unknown stored language, from
    /// a later version, counts as `auto`).
    pub async fn preferences(&self, user_id: i64) -> Result<Preferences, StoreError> {
        Ok(match stored::get(&self.store, user_id).await? {
            Some(p) => Preferences { language: Language::from_tag(&p.language).unwrap_or(Language::Auto), shortcuts: p.shortcuts },
            None => Preferences::default(),
        })
    }

    /// Saves the principal's own settings with its audit entry, in one transaction.
    pub async fn set_preferences(&self, principal: &Principal, preferences: Preferences) -> Result<(), StoreError> {
        let now = now_millis();
        let row = StoredPreferences { language: preferences.language.tag().into(), shortcuts: preferences.shortcuts };
        let detail = format!("language={} shortcuts={}", row.language, if row.shortcuts { "on" } else { "off" });
        let mut tx = self.store.begin_write().await?;
        tx.set_preferences(principal.user_id, &row, now).await?;
        tx.audit(&[AuditEntry {
            at: now,
            actor: principal.actor(),
            action: "user.preferences".into(),
            object: Some(format!("user:{}", principal.name)),
            detail: Some(detail),
        }])
        .await?;
        tx.commit().await
    }
}
