//! `GET /settings` and `POST /settings`: the logged-in user's own page settings, UI language
//! (`auto`: the browser's) and keyboard shortcuts on or off (`Access::set_preferences`, audited
//! as `user.preferences`). Every user has this page, officers included: nothing on it is
//! customer data.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::session::{PageSession, Posted, see_other};
use super::two_factor::TwoFactorPanel;
use crate::access::preferences::{Language, Preferences};
use crate::http::HttpContext;

/// One language in the form's list.
struct Choice {
    value: &'static str,
    key: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
pub(super) struct SettingsPage {
    chrome: Chrome,
    languages: Vec<Choice>,
    shortcuts: bool,
    saved: bool,
    two_factor: TwoFactorPanel,
}

impl SettingsPage {
    pub(super) fn new(chrome: Chrome, preferences: Preferences, saved: bool, two_factor: TwoFactorPanel) -> SettingsPage {
        let languages = Language::ALL
            .into_iter()
            .map(|l| Choice { value: l.tag(), key: language_key(l), selected: l == preferences.language })
            .collect();
        SettingsPage { chrome, languages, shortcuts: preferences.shortcuts, saved, two_factor }
    }
}

/// The catalog key naming a language choice.
fn language_key(language: Language) -> &'static str {
    match language {
        Language::Auto => "settings.lang_auto",
        Language::En => "settings.lang_en",
        Language::ZhCn => "settings.lang_zh",
        Language::Ru => "settings.lang_ru",
    }
}

#[derive(Deserialize)]
pub struct Shown {
    /// Set by the redirect after a save: the page says so.
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /settings`.
pub async fn show(State(ctx): State<Arc<HttpContext>>, session: PageSession, Query(shown): Query<Shown>) -> Response {
    let two_factor = match TwoFactorPanel::load(&ctx, &session).await {
        Ok(panel) => panel,
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    render(StatusCode::OK, &SettingsPage::new(session.chrome(&ctx), session.preferences, shown.saved.is_some(), two_factor))
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    language: String,
    /// A checkbox: present ("on") when ticked, absent when not.
    #[serde(default)]
    shortcuts: Option<String>,
}

/// `POST /settings`: saves, then shows the page again in the language just chosen.
pub async fn save(State(ctx): State<Arc<HttpContext>>, Posted { session, form }: Posted<SettingsForm>) -> Response {
    let Some(language) = Language::from_tag(&form.language) else {
        return PageError::new(session.lang, Problem::BadForm).into_response();
    };
    let preferences = Preferences { language, shortcuts: form.shortcuts.is_some() };
    match ctx.access.set_preferences(&session.principal, preferences).await {
        Ok(()) => see_other("/settings?saved=1"),
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    fn page(preferences: Preferences, lang: Lang, saved: bool) -> String {
        let chrome = Chrome::logged_in(lang, "anna".into(), "TOKEN".into()).with_shortcuts(preferences.shortcuts);
        SettingsPage::new(chrome, preferences, saved, TwoFactorPanel::default()).render().unwrap()
    }

    #[test]
    fn the_form_shows_the_saved_choice_and_posts_with_the_token() {
        let html = page(Preferences { language: Language::Ru, shortcuts: false }, Lang::Ru, true);
        assert!(html.contains("<html lang=\"ru\">"), "{html}");
        assert!(html.contains("<option value=\"ru\" selected>"), "{html}");
        assert!(!html.contains("name=\"shortcuts\" checked"), "{html}");
        assert!(html.contains("<form method=\"post\" action=\"/settings\""), "{html}");
        assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"TOKEN\">"), "{html}");
        assert!(html.contains("data-saved"), "{html}");
        assert!(!html.contains("<dialog"), "no help dialog with shortcuts off: {html}");

        let html = page(Preferences::default(), Lang::En, false);
        assert!(html.contains("<option value=\"auto\" selected>"), "{html}");
        assert!(html.contains("name=\"shortcuts\" checked"), "{html}");
        assert!(!html.contains("data-saved"), "{html}");
        assert!(html.contains("<dialog"), "the help dialog with shortcuts on: {html}");
    }

    #[test]
    fn every_shortcut_and_language_is_named_in_every_catalog() {
        let keys = crate::http::web::chrome::SHORTCUTS.iter().map(|(_, key)| *key).chain(Language::ALL.into_iter().map(language_key));
        for key in keys {
            for lang in Lang::ALL {
                assert_ne!(lang.catalog().get(key), key, "{}: no message {key}", lang.tag());
            }
        }
    }
}
