//! Per-device app passwords for IMAP: IMAP clients cannot ask for a TOTP code, so a user with
//! two-factor login on logs in to IMAP with a password made for one device (shown once, stored
//! as an argon2id hash, revocable on its own). Each login with one is audited with the device
//! name; it never opens a web or API session.

use super::{Access, Principal};
use crate::store::app_passwords::{self as stored, Listed};
use crate::store::audit::AuditEntry;
use crate::store::{StoreError, now_millis};

/// At most this many per user: a login checks each hash in turn.
pub const MAX_APP_PASSWORDS: usize = 10;
/// 20 characters of a 32-letter alphabet (100 random bits), shown in groups of four.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

#[derive(Debug, thiserror::Error)]
pub enum AppPasswordError {
    #[error("device names are 1 to 64 letters, digits, spaces, '.', '-' or '_'")]
    BadDevice,
    #[error("there is an app password for this device already; revoke it first")]
    Exists,
    #[error("at most {MAX_APP_PASSWORDS} app passwords per user")]
    TooMany,
    #[error("no such app password")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check_device(device: &str) -> Result<(), AppPasswordError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_');
    let trimmed = device.trim();
    if trimmed.is_empty() || trimmed != device || device.len() > 64 || !device.chars().all(ok) {
        return Err(AppPasswordError::BadDevice);
    }
    Ok(())
}

fn new_app_password() -> Result<String, StoreError> {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::BatchFailed("no randomness for an app password".into()))?;
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect();
    Ok(chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-"))
}

impl Access {
    /// A new app password for `device`, returned this once; audited as `app-password.create`.
    pub async fn create_app_password(&self, principal: &Principal, device: &str) -> Result<(Listed, String), AppPasswordError> {
        check_device(device)?;
        if stored::list(&self.store, principal.user_id).await?.len() >= MAX_APP_PASSWORDS {
            return Err(AppPasswordError::TooMany);
        }
        let password = new_app_password()?;
        let hash = super::password::hash(&password).map_err(StoreError::BatchFailed)?;
        let now = now_millis();
        let mut tx = self.store.begin_write().await?;
        let Some(id) = tx.insert_app_password(principal.user_id, device, &hash, now).await? else {
            return Err(AppPasswordError::Exists);
        };
        tx.audit(&[self.app_entry(principal, "app-password.create", device)]).await?;
        tx.commit().await?;
        Ok((Listed { id, device: device.into(), created_at: now, last_used_at: None }, password))
    }

    pub async fn app_passwords(&self, principal: &Principal) -> Result<Vec<Listed>, StoreError> {
        stored::list(&self.store, principal.user_id).await
    }

    /// Revokes one: IMAP logins with it fail from now on. Audited as `app-password.revoke`.
    pub async fn revoke_app_password(&self, principal: &Principal, id: i64) -> Result<(), AppPasswordError> {
        let mut tx = self.store.begin_write().await?;
        let Some(device) = tx.revoke_app_password(principal.user_id, id).await? else { return Err(AppPasswordError::NotFound) };
        tx.audit(&[self.app_entry(principal, "app-password.revoke", &device)]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The device whose app password `password` is, if any (each check takes a verifier slot,
    /// as a password check does); its last use is recorded.
    pub(super) async fn match_app_password(&self, user_id: i64, password: &str) -> Result<Option<String>, StoreError> {
        for (id, device, hash) in stored::hashes(&self.store, user_id).await? {
            let Some(slot) = self.verifier.slot().await else { return Ok(None) };
            if slot.verify(password, &hash).await {
                let mut tx = self.store.begin_write().await?;
                tx.app_password_used(id, now_millis()).await?;
                tx.commit().await?;
                return Ok(Some(device));
            }
        }
        Ok(None)
    }

    fn app_entry(&self, principal: &Principal, action: &str, device: &str) -> AuditEntry {
        AuditEntry {
            at: now_millis(),
            actor: principal.actor(),
            action: action.into(),
            object: Some(format!("user:{}", principal.name)),
            detail: Some(format!("device={device}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_passwords_are_long_and_device_names_plain() {
        let p = new_app_password().unwrap();
        assert_eq!(p.len(), 24, "{p}");
        assert_eq!(p.split('-').count(), 5);
        assert_ne!(p, new_app_password().unwrap());
        assert!(check_device("Anna's phone").is_err() && check_device("").is_err() && check_device(" x").is_err());
        assert!(check_device("Thunderbird laptop-2").is_ok());
    }
}
