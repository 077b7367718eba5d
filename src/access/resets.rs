//! Password resets that wait for a second person.
//!
//! A reset hands the requesting officer an enrolment code for the account: with it he could set a
//! password and log in as that person. So when the account can read a queue's mail (through any
//! role) or is a security officer, an officer's reset over HTTP is a pending change like a grant
//! (`approvals`, kind `user.reset`): until another officer, or a supervisor of every queue the
//! account reads, approves it, nothing happens and the old password keeps working. The approval
//! applies it (old password void, sessions end) and issues the code for the requester, who passes
//! it on; the approver never sees it. The code waits sealed under the master key in the change's
//! row until the requester collects it, once (`POST /api/admin/changes/{id}/code`); from then on
//! only its MAC remains, as for every code. Resets of accounts that read nothing, the host's
//! `mailroom user passwd` and `grant_approval = "none"` apply at once.

use zeroize::Zeroizing;

use super::admin::{AdminError, Touches, audit_in, user_id};
use super::approvals::{Change, RESET, concern, is_officer, readable_queues};
use super::enrolment::{EnrolmentCode, Prepared, code_mac, prepare};
use super::{Access, Principal};
use crate::store::approvals::SealedCode;
use crate::store::crypto::{CryptoError, DataKey, aad};
use crate::store::tx::Tx;
use crate::store::{StoreError, millis_to_rfc3339, now_millis};

/// What an officer's reset led to.
#[derive(Debug)]
pub enum ResetOutcome {
    /// Applied at once: the code for the officer to pass on.
    Issued(EnrolmentCode),
    /// Waits for a second person; nothing changed yet.
    Pending(Box<Change>),
}

/// An approved reset's code, collected by its requester (shown this once).
#[derive(Debug, serde::Serialize)]
pub struct CollectedCode {
    pub name: String,
    pub enrolment: EnrolmentCode,
    pub change: Change,
}

/// The sealed code belongs to this change's row and no other.
fn code_aad(change_id: i64) -> Vec<u8> {
    aad("reset-code", &change_id.to_be_bytes())
}

fn crypto(e: CryptoError) -> AdminError {
    AdminError::Store(StoreError::Crypto(e))
}

impl Access {
    /// A reset of this account hands its holder what the account can open: queues it reads, or
    /// an officer's powers.
    async fn reset_needs_approval(&self, tx: &mut Tx, user: i64) -> Result<bool, AdminError> {
        Ok(self.second_person() && (is_officer(tx, user).await? || !readable_queues(tx, user).await?.is_empty()))
    }

    /// An officer resets `name`'s password: refused for himself; held for a second person when the
    /// account reads a queue or is an officer; applied (with the code in the answer) otherwise.
    pub async fn request_reset(&self, by: &Principal, name: &str) -> Result<ResetOutcome, AdminError> {
        self.refuse_own(by, RESET, Touches::Account(name)).await?;
        let prepared = prepare().await?;
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        let outcome = if self.reset_needs_approval(&mut tx, id).await? {
            ResetOutcome::Pending(Box::new(self.hold_reset_in(&mut tx, by, id, name).await?))
        } else {
            ResetOutcome::Issued(self.reset_in(&mut tx, id, name, prepared, &by.actor(), "").await?)
        };
        tx.commit().await?;
        self.store.changed();
        Ok(outcome)
    }

    /// The reset itself: a fresh code (old password and code void, sessions end), audited as
    /// `user.reset` by `actor` (with `extra` appended: an approval).
    pub(crate) async fn reset_in(
        &self,
        tx: &mut Tx,
        id: i64,
        name: &str,
        prepared: Prepared,
        actor: &str,
        extra: &str,
    ) -> Result<EnrolmentCode, AdminError> {
        let code = self.issue_code_in(tx, id, prepared, actor).await?;
        let detail = format!("enrolment code valid until {}{extra}", code.expires_at);
        audit_in(tx, actor, "user.reset", format!("user:{name}"), Some(detail)).await?;
        Ok(code)
    }

    /// An approved reset (inside the approval's transaction): applies it with the requester as
    /// the code's issuer, and keeps the code sealed for him to collect.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn apply_reset_in(
        &self,
        tx: &mut Tx,
        change_id: i64,
        user: i64,
        name: &str,
        prepared: Prepared,
        requester: &str,
        extra: &str,
    ) -> Result<(), AdminError> {
        let code = self.reset_in(tx, user, name, prepared, requester, extra).await?;
        let expires = tx.enrolment_of(user).await?.and_then(|(_, expires)| expires).unwrap_or_default();
        let aad = code_aad(change_id);
        let data_key = DataKey::generate().map_err(crypto)?;
        let (key_id, wrapped) = self.store.keys.wrap(&data_key, &aad).map_err(crypto)?;
        let sealed = data_key.seal(&aad, code.code.as_bytes()).map_err(crypto)?;
        let code = SealedCode { key_id: key_id as i64, wrapped_key: wrapped, ciphertext: sealed };
        tx.seal_code(change_id, &code, expires).await?;
        Ok(())
    }

    /// The requester of an approved reset collects its code, once. The sealed copy is gone
    /// afterwards (also when the code turns out expired or replaced: then 409, reset again).
    pub async fn collect_code(&self, by: &Principal, id: i64) -> Result<CollectedCode, AdminError> {
        let mut tx = self.store.begin_write().await?;
        let change = self.change_in(&mut tx, id).await?.ok_or(AdminError::NoSuchChange(id))?;
        if change.kind != RESET {
            return Err(AdminError::Conflict(format!("change {id} is not a password reset: it has no code")));
        }
        if change.requester_id != by.user_id {
            let detail = Some("attempt=change.code reason=not-requester".to_string());
            audit_in(&mut tx, &by.actor(), "admin.refused", format!("change:{id}"), detail).await?;
            tx.commit().await?;
            return Err(AdminError::Forbidden(format!(
                "only {}, who requested reset {id}, collects its code (to pass it on): nobody else ever sees it",
                change.requester
            )));
        }
        if change.status != "approved" {
            return Err(AdminError::Conflict(format!(
                "change {id} is {}: its code is issued only when a second person approves it",
                change.status
            )));
        }
        if let Some(at) = change.code_collected_at {
            return Err(AdminError::Conflict(format!(
                "the code of change {id} was collected at {}; it is shown once (if it was lost, reset again)",
                millis_to_rfc3339(at)
            )));
        }
        let Some(SealedCode { key_id, wrapped_key: wrapped, ciphertext: sealed }) = tx.sealed_code(id).await? else {
            return Err(AdminError::Conflict(format!("the code of change {id} is void (expired or replaced): reset again")));
        };
        let aad = code_aad(id);
        let data_key = self.store.keys.unwrap(key_id as u32, &wrapped, &aad).map_err(crypto)?;
        let plain = Zeroizing::new(data_key.open(&aad, &sealed).map_err(crypto)?);
        let code = Zeroizing::new(String::from_utf8(plain.to_vec()).map_err(|_| crypto(CryptoError::Format))?);
        let user = change.user_id.unwrap_or_default();
        let now = now_millis();
        // Still the account's pending code? (A later reset, a password set on the host, the
        // enrolment window passing or the account's removal make it worthless.)
        let pending = tx.enrolment_of(user).await?;
        let valid = match &pending {
            Some((Some(stored), Some(expires))) if *expires > now => {
                aws_lc_rs::constant_time::verify_slices_are_equal(stored, &code_mac(&self.store.keys, user, &code)).is_ok()
            }
            _ => false,
        };
        tx.drop_code(id, valid.then_some(now)).await?;
        let name = change.user_name.clone().unwrap_or_default();
        if !valid {
            let detail = Some(format!("user={name} code void (expired or replaced)"));
            audit_in(&mut tx, &by.actor(), "change.code-void", format!("change:{id}"), detail).await?;
            tx.commit().await?;
            return Err(AdminError::Conflict(format!("the code of change {id} is void (expired or replaced): reset again")));
        }
        let expires_at = millis_to_rfc3339(pending.and_then(|(_, e)| e).unwrap_or_default());
        audit_in(&mut tx, &by.actor(), "change.code-collected", format!("change:{id}"), Some(format!("user={name}"))).await?;
        let stored = self.change_in(&mut tx, id).await?.ok_or(AdminError::NoSuchChange(id))?;
        let concern = concern(&mut tx, &stored).await?;
        // Committed before the code is shown: a failed commit shows nothing and keeps it sealed.
        tx.commit().await?;
        Ok(CollectedCode { name, enrolment: EnrolmentCode { code, expires_at }, change: stored.into_change(&concern) })
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::access::admin::By;
    use crate::store::testing;

    const PW: &str = "a password of my own";

    async fn access() -> (tempfile::TempDir, Access) {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::config::DEFAULT_CONFIG.replace("failure_delay = \"250ms\"", "failure_delay = \"10ms\"");
        let settings = std::sync::Arc::new(crate::config::Settings::from_str("test.toml", &text, dir.path()).unwrap());
        let access = settings.access(crate::store::Store::open(settings.store_options()).await.unwrap());
        access.seed_roles().await.unwrap();
        for (name, roles) in [("olga", &["security-officer"][..]), ("anna", &["support-agent"]), ("bert", &["support-agent"])] {
            access.add_user(name, PW, &roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(), "test").await.unwrap();
        }
        (dir, access)
    }

    async fn principal(access: &Access, name: &str) -> Principal {
        access.login(name, PW, IpAddr::from([192, 0, 2, 1]), "test").await.unwrap()
    }

    /// Olga asks to reset `name`, the host approves: the change id.
    async fn approved_reset(access: &Access, olga: &Principal, name: &str) -> i64 {
        let ResetOutcome::Pending(change) = access.request_reset(olga, name).await.unwrap() else { panic!("{name}: not held") };
        access.decide_change(By::Host("test"), change.id, true).await.unwrap();
        change.id
    }

    #[tokio::test]
    async fn a_sealed_code_opens_only_in_its_own_row_and_only_until_it_expires() {
        let (_dir, access) = access().await;
        let olga = principal(&access, "olga").await;
        let (anna, bert) = (approved_reset(&access, &olga, "anna").await, approved_reset(&access, &olga, "bert").await);
        // Tampered: bert's sealed code copied into anna's change does not open (bound to its row).
        testing::copy_sealed_code(&access.store, bert, anna).await;
        let err = access.collect_code(&olga, anna).await.unwrap_err();
        assert!(matches!(err, AdminError::Store(StoreError::Crypto(CryptoError::Authentication))), "{err:?}");
        // Expired before it was collected: void, and the sealed copy is gone.
        testing::expire_enrolment(&access.store, Some("bert")).await;
        assert!(matches!(access.collect_code(&olga, bert).await, Err(AdminError::Conflict(reason)) if reason.contains("void")));
        let left: Option<Vec<u8>> = testing::sealed_code_ciphertext(&access.store, bert).await;
        assert!(left.is_none());
        // A fresh approved reset: collected once; the code is anna's enrolment code.
        let again = approved_reset(&access, &olga, "anna").await;
        let collected = access.collect_code(&olga, again).await.unwrap();
        assert!(matches!(access.collect_code(&olga, again).await, Err(AdminError::Conflict(_))));
        access.enrol("anna", &collected.enrolment.code, "anna's new passphrase", IpAddr::from([192, 0, 2, 9]), "test").await.unwrap();
    }
}
