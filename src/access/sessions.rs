//! HTTP sessions (cookie) and bearer tokens. The client holds 32 random bytes; the database holds
//! only their SHA-256, so a stolen database copy opens no session. The CSRF token of a cookie
//! session is an HMAC of its token under the key file's key: nothing to store, nothing to guess.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::{Access, Principal};
use crate::store::sessions::{self as stored, Session};
use crate::store::{StoreError, now_millis};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Browser: cookie HttpOnly/Secure/SameSite=Strict, and a CSRF header on every change.
    Cookie,
    /// API client: `Authorization: Bearer TOKEN`, no cookie, so no CSRF exposure.
    Bearer,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Cookie => "cookie",
            SessionKind::Bearer => "bearer",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no such session (logged out, or never issued)")]
    Unknown,
    #[error("the session has expired; log in again")]
    Expired,
    #[error("the account is locked or was removed")]
    UserGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a request shows that someone is at the keyboard (and so keeps the session from idling).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Activity {
    User,
    Background,
}

/// `last_seen_at` is written at most this often per session (not on every request).
const TOUCH_EVERY_MS: i64 = 60_000;

fn token_hash(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

impl Access {
    /// Starts a session for a logged-in principal; returns the token to hand to the client.
    pub async fn start_session(&self, principal: &Principal, kind: SessionKind) -> Result<String, StoreError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::BatchFailed("no randomness for a session token".into()))?;
        let token = B64.encode(bytes);
        let now = now_millis();
        let expires = now + self.config().session_lifetime.as_millis() as i64;
        let session = Session { user_id: principal.user_id, kind: kind.as_str().into(), expires_at: expires, last_seen_at: now };
        stored::insert(&self.store, &token_hash(&token), &session, now).await?;
        Ok(token)
    }

    /// The principal behind a token, with permissions as they are now. Fails for unknown,
    /// expired (lifetime or idle) sessions and for users locked or removed since login.
    pub async fn resume_session(&self, token: &str) -> Result<(Principal, SessionKind), SessionError> {
        self.resume(token, Activity::User).await
    }

    /// Like [`Access::resume_session`] for a request the page makes by itself (a presence
    /// heartbeat, a "new mail" poll): it does not count as the user's activity, so an open tab
    /// left alone still ends after `session_idle`.
    pub async fn check_session(&self, token: &str) -> Result<(Principal, SessionKind), SessionError> {
        self.resume(token, Activity::Background).await
    }

    async fn resume(&self, token: &str, activity: Activity) -> Result<(Principal, SessionKind), SessionError> {
        let hash = token_hash(token);
        let Some(session) = stored::find(&self.store, &hash).await? else { return Err(SessionError::Unknown) };
        let Session { user_id, kind, expires_at, last_seen_at: last_seen } = session;
        let now = now_millis();
        if now >= expires_at || now - last_seen >= self.config().session_idle.as_millis() as i64 {
            stored::delete(&self.store, &hash).await?;
            return Err(SessionError::Expired);
        }
        let principal = self.principal(user_id).await?.ok_or(SessionError::UserGone)?;
        if activity == Activity::User && now - last_seen >= TOUCH_EVERY_MS {
            stored::touch(&self.store, &hash, now).await?;
        }
        let kind = if kind == "bearer" { SessionKind::Bearer } else { SessionKind::Cookie };
        Ok((principal, kind))
    }

    /// Logout: the token stops working at once.
    pub async fn end_session(&self, token: &str) -> Result<(), StoreError> {
        stored::delete(&self.store, &token_hash(token)).await
    }

    /// The CSRF token that belongs to a cookie session (sent in the login reply and expected
    /// in `X-CSRF-Token` on every state-changing request).
    pub fn csrf_token(&self, session_token: &str) -> String {
        B64.encode(&self.store.keys.mac("csrf", &[session_token.as_bytes()])[..24])
    }

    /// Constant-time comparison of a presented CSRF token.
    pub fn csrf_ok(&self, session_token: &str, presented: &str) -> bool {
        let expected = self.csrf_token(session_token);
        expected.len() == presented.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes()).is_ok()
    }

    /// Drops expired sessions (called now and then by the server).
    pub async fn purge_sessions(&self) -> Result<u64, StoreError> {
        let idle_cutoff = now_millis() - self.config().session_idle.as_millis() as i64;
        stored::purge(&self.store, now_millis(), idle_cutoff).await
    }
}
