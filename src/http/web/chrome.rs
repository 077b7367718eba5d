//! What the page frame (`templates/base.html`) needs on every page: the language, the logged-in
//! user and the session's CSRF token for the "Log out" form.

use super::assets;
use super::i18n::{Catalog, Lang};

/// The logged-in user as the frame shows them.
pub struct SessionChrome {
    pub user: String,
    /// The session's CSRF token, for the hidden `csrf` field of every form.
    pub csrf: String,
    /// A security officer: the header links to the officer pages (`/admin/…`).
    pub officer: bool,
    /// Keyboard shortcuts on: the frame loads `app.js` and its help dialog.
    pub shortcuts: bool,
    /// Unread notifications: the header's count next to the link to `/notifications`.
    pub unread: i64,
}

/// The keyboard shortcuts `assets/app.js` knows, as its help dialog lists them: the keys (their
/// names on the keyboard, not translated) and the catalog key of what they do.
pub const SHORTCUTS: [(&[&str], &str); 8] = [
    (&["j", "k"], "keys.move"),
    (&["o", "Enter"], "keys.open"),
    (&["x"], "keys.select"),
    (&["r"], "keys.reply"),
    (&["n"], "keys.note"),
    (&["a"], "keys.assign"),
    (&["?"], "keys.help"),
    (&["Esc"], "keys.close_help"),
];

pub struct Chrome {
    pub lang: Lang,
    catalog: &'static Catalog,
    /// None on the login page and on errors before a session is known.
    pub session: Option<SessionChrome>,
    /// The user supervises some queue: the header links the dashboard.
    supervise: bool,
    /// The user may review replies in some queue: the header links `/reviews`.
    review: bool,
}

impl Chrome {
    pub fn anonymous(lang: Lang) -> Chrome {
        Chrome { lang, catalog: lang.catalog(), session: None, supervise: false, review: false }
    }

    pub fn logged_in(lang: Lang, user: String, csrf: String) -> Chrome {
        Chrome {
            lang,
            catalog: lang.catalog(),
            session: Some(SessionChrome { user, csrf, officer: false, shortcuts: true, unread: 0 }),
            supervise: false,
            review: false,
        }
    }

    /// The same frame for a security officer (`officer` true) or not.
    pub fn with_officer(mut self, officer: bool) -> Chrome {
        if let Some(session) = self.session.as_mut() {
            session.officer = officer;
        }
        self
    }

    /// The same frame with the user's keyboard shortcuts on or off.
    pub fn with_shortcuts(mut self, shortcuts: bool) -> Chrome {
        if let Some(session) = self.session.as_mut() {
            session.shortcuts = shortcuts;
        }
        self
    }

    /// The same frame with the user's unread notification count.
    pub fn with_unread(mut self, unread: i64) -> Chrome {
        if let Some(session) = self.session.as_mut() {
            session.unread = unread;
        }
        self
    }

    /// True when the page loads the keyboard shortcuts (a logged-in user who has them on).
    pub fn shortcuts(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.shortcuts)
    }

    /// The shortcut list of the help dialog.
    pub fn shortcut_list(&self) -> &'static [(&'static [&'static str], &'static str)] {
        &SHORTCUTS
    }

    /// The session's CSRF token for a form's hidden `csrf` field ("" without a session).
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map(|s| s.csrf.as_str()).unwrap_or("")
    }

    /// True for a logged-in security officer: the header shows the officer pages.
    pub fn is_officer(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.officer)
    }

    /// The same frame for a user who supervises some queue (or not).
    pub fn supervising(mut self, supervise: bool) -> Chrome {
        self.supervise = supervise;
        self
    }

    /// Whether the header links the dashboard (`GET /dashboard`).
    pub fn can_supervise(&self) -> bool {
        self.supervise
    }

    /// The same frame for a user who may review replies in some queue (or not).
    pub fn reviewing(mut self, review: bool) -> Chrome {
        self.review = review;
        self
    }

    /// Whether the header links the replies awaiting review (`GET /reviews`).
    pub fn can_review(&self) -> bool {
        self.review
    }

    /// The UI text for `key` in the page's language.
    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        self.catalog.get(key)
    }

    /// The UI text for `key` with `{name}` placeholders filled.
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        self.catalog.fill(key, values)
    }

    /// The content-hash URL of an embedded asset.
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }
}
