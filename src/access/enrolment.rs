//! One-time enrolment codes: how a staff member gets a password that nobody else ever knew.
//!
//! A new account (and a password reset) gets a random code instead of a password. The officer
//! sees it once, passes it on, and the user sets his own password with it (`POST /api/enrol`,
//! `mailroom user enrol`). The database keeps only a keyed MAC of the code (the key is in the key
//! file), an expiry, and who issued it. Until the code is used the account has no usable
//! password: its hash is that of a random secret that is thrown away, so a login attempt costs
//! exactly what a real one costs and always fails. A code works once; a new code replaces the old.

use std::net::IpAddr;
use std::time::Duration;

use zeroize::Zeroizing;

use super::admin::{AdminError, By, audit_in, role_exists, user_id};
use super::approvals::Change;
use super::{Access, check_user_name, password};
use crate::store::crypto::KeyRing;
use crate::store::enrolment::Issue;
use crate::store::tx::Tx;
use crate::store::{StoreError, millis_to_rfc3339, now_millis};

/// Crockford's base32: no I, L, O, U, so a code read aloud or retyped survives.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 25 symbols × 5 bits = 125 random bits, shown as five groups of five.
const SYMBOLS: usize = 25;

/// A freshly issued code: shown once, never stored.
#[derive(Debug, serde::Serialize)]
pub struct EnrolmentCode {
    #[serde(serialize_with = "reveal")]
    pub code: Zeroizing<String>,
    pub expires_at: String,
}

/// A new account: the code for its user, the roles given at once, and the changes that wait for
/// a second person.
#[derive(Debug, serde::Serialize)]
pub struct NewAccount {
    pub name: String,
    pub roles: Vec<String>,
    pub pending: Vec<Change>,
    pub enrolment: EnrolmentCode,
}

fn reveal<S: serde::Serializer>(code: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(code)
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// Unknown user, wrong, expired or used code, locked account: all look alike to the client.
    #[error("invalid user name or enrolment code (wrong, expired or already used)")]
    Invalid,
    #[error("too many failed attempts; try again in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("{0}")]
    Weak(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn random_code() -> Result<Zeroizing<String>, AdminError> {
    let mut bytes = Zeroizing::new([0u8; SYMBOLS]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| AdminError::Store(StoreError::BatchFailed("no randomness for a code".into())))?;
    let mut code = Zeroizing::new(String::with_capacity(SYMBOLS + SYMBOLS / 5));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            code.push('-');
        }
        // 256 is a multiple of 32: every symbol is equally likely.
        code.push(ALPHABET[(b & 31) as usize] as char);
    }
    Ok(code)
}

/// The code as typed → its canonical form: case, dashes and spaces do not matter, and the
/// letters Crockford's alphabet leaves out are read as the digits they look like.
fn canonical(code: &str) -> Zeroizing<String> {
    Zeroizing::new(
        code.chars()
            .filter(|c| !matches!(c, '-' | ' ' | '\t'))
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            })
            .collect(),
    )
}

/// The stored form: a MAC under the key file's key, bound to the account, so a copy of the
/// database neither reveals a code nor lets anyone test guesses offline.
pub(crate) fn code_mac(keys: &KeyRing, user_id: i64, code: &str) -> Vec<u8> {
    keys.mac("enrolment-code", &[&user_id.to_be_bytes(), canonical(code).as_bytes()])
}

/// An argon2id hash of a random secret that is discarded: no password matches it, and checking
/// one against it costs the same as against a real hash.
fn unusable_password_hash() -> Result<String, AdminError> {
    let secret = random_code()?;
    password::hash(&secret).map_err(AdminError::Invalid)
}

/// A code and the unusable password hash, made before any transaction (argon2 takes a while).
pub(crate) struct Prepared {
    code: Zeroizing<String>,
    unusable_hash: String,
}

pub(crate) async fn prepare() -> Result<Prepared, AdminError> {
    let unusable_hash =
        tokio::task::spawn_blocking(unusable_password_hash).await.map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))??;
    Ok(Prepared { code: random_code()?, unusable_hash })
}

impl Access {
    /// Gives user `id` a fresh code inside `tx`: the old password and any older code stop
    /// working, every session ends, a lockout is lifted (so the user can enrol).
    pub(crate) async fn issue_code_in(&self, tx: &mut Tx, id: i64, prepared: Prepared, issuer: &str) -> Result<EnrolmentCode, AdminError> {
        let now = now_millis();
        let expires = now + self.config().enrolment_lifetime.as_millis() as i64;
        let mac = code_mac(&self.store.keys, id, &prepared.code);
        let issue = Issue { unusable_hash: &prepared.unusable_hash, mac: &mac, expires_at: expires, issuer };
        tx.issue_code(id, &issue, now).await?;
        tx.end_sessions(id).await?;
        Ok(EnrolmentCode { code: prepared.code, expires_at: millis_to_rfc3339(expires) })
    }

    /// A new account without a password: the answer carries its enrolment code. From the host
    /// every role applies at once; from an officer, a role that opens a queue's mail (or makes
    /// the user an officer) waits for a second person, unless `grant_approval = "none"`.
    pub async fn add_user_enrolled(&self, name: &str, roles: &[String], by: By<'_>) -> Result<NewAccount, AdminError> {
        check_user_name(name).map_err(AdminError::Invalid)?;
        let prepared = prepare().await?;
        let actor = by.actor();
        let mut tx = self.store.begin_write().await?;
        for role in roles {
            role_exists(&mut tx, role).await?;
        }
        let Some(id) = tx.insert_user(name, &prepared.unusable_hash, now_millis()).await? else {
            return Err(AdminError::Exists(format!("user {name:?}")));
        };
        let enrolment = self.issue_code_in(&mut tx, id, prepared, &actor).await?;
        let (mut applied, mut held) = (Vec::new(), Vec::new());
        for role in roles {
            match by {
                By::Staff(_) if self.second_person() && self.assign_needs_approval(&mut tx, role).await? => held.push(role.clone()),
                _ => {
                    tx.add_membership(id, role).await?;
                    applied.push(role.clone());
                }
            }
        }
        let mut detail = format!("enrolment code issued, valid until {}", enrolment.expires_at);
        if !applied.is_empty() {
            detail = format!("roles={} {detail}", applied.join(","));
        }
        audit_in(&mut tx, &actor, "user.add", format!("user:{name}"), Some(detail)).await?;
        let mut pending = Vec::new();
        if let By::Staff(p) = by {
            for role in &held {
                pending.push(self.hold_assign_in(&mut tx, p, role, id, name).await?);
            }
        }
        tx.commit().await?;
        self.store.changed();
        Ok(NewAccount { name: name.to_string(), roles: applied, pending, enrolment })
    }

    /// A password reset with the host's authority (`mailroom user passwd`), applied at once: the
    /// old password stops working and the user's sessions end; the answer is a code with which
    /// the user sets a new one. An officer's reset goes through `request_reset` (`resets`).
    pub async fn reset_password(&self, name: &str, actor: &str) -> Result<EnrolmentCode, AdminError> {
        let prepared = prepare().await?;
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        let code = self.reset_in(&mut tx, id, name, prepared, actor, "").await?;
        tx.commit().await?;
        self.store.changed();
        Ok(code)
    }

    /// The user sets his own password with his code, from `source` over `via` ("http", "cli").
    /// Wrong codes count like failed logins, per user and per source address, and are checked
    /// and counted in one serialised transaction, so concurrent guesses cannot outrun the limit.
    pub async fn enrol(&self, name: &str, code: &str, new_password: &str, source: IpAddr, via: &str) -> Result<(), EnrolError> {
        password::check_strength(new_password).map_err(EnrolError::Weak)?;
        let mac = self.check_code(name, code, source, via).await?;
        // The code is right: only now is argon2's cost spent, outside any transaction.
        let new_password = Zeroizing::new(new_password.to_string());
        let hash = tokio::task::spawn_blocking(move || password::hash(&new_password))
            .await
            .map_err(|e| EnrolError::Store(StoreError::BatchFailed(format!("hashing failed: {e}"))))?
            .map_err(EnrolError::Weak)?;
        let mut tx = self.store.begin_write().await?;
        let now = now_millis();
        // Consumed only if it is still the code just checked (a concurrent use wins once).
        let done = tx.enrol(name, &mac, &hash, now).await?;
        let (action, detail) = if done {
            ("user.enrol", format!("via={via} source={source}"))
        } else {
            ("enrol.failed", format!("via={via} source={source} reason=code-used"))
        };
        audit_in(&mut tx, &format!("user:{name}"), action, format!("user:{name}"), Some(detail)).await?;
        tx.commit().await?;
        if done { Ok(()) } else { Err(EnrolError::Invalid) }
    }

    /// Checks the code and, when it is wrong, counts the failure (user and source) and waits
    /// the growing delay. The stored MAC when the code is right.
    async fn check_code(&self, name: &str, code: &str, source: IpAddr, via: &str) -> Result<Vec<u8>, EnrolError> {
        let now = now_millis();
        let mut tx = self.store.begin_write().await?;
        let actor = format!("user:{name}");
        let fail_detail = |reason: &str| format!("via={via} source={source} reason={reason}");
        // Checked inside the write transaction: every attempt passes here one at a time.
        if let Some(retry_after) = self.throttle.source_locked(source) {
            audit_in(&mut tx, &actor, "enrol.failed", actor.clone(), Some(fail_detail("source-locked"))).await?;
            tx.commit().await?;
            return Err(EnrolError::Throttled { retry_after });
        }
        let pending = tx.pending_enrolment(name).await?;
        let (user, reason) = match pending {
            None => (None, "unknown-user"),
            Some(pending) => {
                let (id, stored, expires) = (pending.user_id, pending.mac, pending.expires_at);
                let (locked, failed, locked_until) = (pending.locked, pending.failed_logins, pending.locked_until);
                if let Some(until) = locked_until.filter(|until| *until > now) {
                    audit_in(&mut tx, &actor, "enrol.failed", actor.clone(), Some(fail_detail("user-locked-out"))).await?;
                    tx.commit().await?;
                    self.throttle.delay(self.throttle.reserve(source).unwrap_or(self.config().max_failures)).await;
                    return Err(EnrolError::Throttled { retry_after: Duration::from_millis((until - now) as u64) });
                }
                let presented = code_mac(&self.store.keys, id, code);
                let reason = match stored {
                    None => "no-code",
                    Some(_) if locked => "user-locked",
                    Some(_) if expires.is_none_or(|e| e <= now) => "code-expired",
                    Some(stored) if aws_lc_rs::constant_time::verify_slices_are_equal(&stored, &presented).is_err() => "wrong-code",
                    Some(stored) => return Ok(stored),
                };
                (Some((id, failed)), reason)
            }
        };
        // Checks are serialised by the write transaction, so counting after the check cannot be
        // raced; a wrong code counts against the source like a wrong password.
        let source_failures = self.throttle.reserve(source).unwrap_or(self.config().max_failures);
        let mut user_failures = 0;
        if let Some((id, failed)) = user {
            user_failures = failed + 1;
            let config = self.config();
            let lock_until = (user_failures >= config.max_failures as i64).then(|| now + config.lockout.as_millis() as i64);
            tx.count_enrol_failure(id, if lock_until.is_some() { 0 } else { user_failures }, lock_until).await?;
            if lock_until.is_some() {
                let detail = format!("after {user_failures} failed logins or enrolment attempts");
                audit_in(&mut tx, "access", "user.locked-out", actor.clone(), Some(detail)).await?;
            }
        }
        audit_in(&mut tx, &actor, "enrol.failed", actor.clone(), Some(fail_detail(reason))).await?;
        tx.commit().await?;
        self.throttle.delay(source_failures.max(user_failures as u32)).await;
        Err(EnrolError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::LoginError;
    use crate::access::sessions::SessionKind;

    #[test]
    fn codes_are_long_random_and_forgiving_to_type() {
        let a = random_code().unwrap();
        let b = random_code().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), 29, "{}", a.as_str());
        assert_eq!(a.split('-').count(), 5);
        assert!(a.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        assert_eq!(*canonical("7k2qd-m9xht o0il"), "7K2QDM9XHT0011");
    }

    async fn access(max_failures: u32) -> (tempfile::TempDir, Access) {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::config::DEFAULT_CONFIG
            .replace("failure_delay = \"250ms\"", "failure_delay = \"10ms\"")
            .replace("max_failures = 5 ", &format!("max_failures = {max_failures} "));
        let settings = std::sync::Arc::new(crate::config::Settings::from_str("test.toml", &text, dir.path()).unwrap());
        let access = settings.access(crate::store::Store::open(settings.store_options()).await.unwrap());
        access.seed_roles().await.unwrap();
        (dir, access)
    }

    const PW: &str = "a password of my own";

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[tokio::test]
    async fn a_code_sets_the_password_once_and_a_reset_ends_everything() {
        let (dir, access) = access(5).await;
        let account = access.add_user_enrolled("anna", &["support-agent".into()], By::Host("test")).await.unwrap();
        assert_eq!(account.roles, vec!["support-agent"], "the host applies roles at once");
        let code = account.enrolment.code.clone();
        // No password works before enrolment, not even the code.
        assert!(matches!(access.login("anna", &code, ip(1), "test").await, Err(LoginError::Invalid)));
        assert!(access.list_users().await.unwrap()[0].enrolment_pending);

        assert!(matches!(access.enrol("anna", "7K2QD-M9XHT-0CWPN-4RJ8A-VZ3EB", PW, ip(1), "test").await, Err(EnrolError::Invalid)));
        assert!(matches!(access.enrol("anna", &code, "short", ip(1), "test").await, Err(EnrolError::Weak(_))));
        access.enrol("anna", &code.to_lowercase(), PW, ip(1), "test").await.expect("the code, typed in lower case");
        assert!(matches!(access.enrol("anna", &code, "another password!", ip(1), "test").await, Err(EnrolError::Invalid)), "used once");
        let p = access.login("anna", PW, ip(1), "test").await.unwrap();
        assert!(!access.list_users().await.unwrap()[0].enrolment_pending);

        // A reset: the old password fails, the session ends, the new code works.
        let token = access.start_session(&p, SessionKind::Bearer).await.unwrap();
        let reset = access.reset_password("anna", "test").await.unwrap();
        assert!(access.resume_session(&token).await.is_err(), "the reset ends the session");
        assert!(access.principal(p.user_id).await.unwrap().is_none(), "and any IMAP session with it");
        assert!(matches!(access.login("anna", PW, ip(2), "test").await, Err(LoginError::Invalid)));
        assert!(matches!(access.enrol("anna", &code, PW, ip(2), "test").await, Err(EnrolError::Invalid)), "the old code is gone");
        // Expired: the code stops working at its expiry.
        crate::store::testing::expire_enrolment(&access.store, None).await;
        assert!(matches!(access.enrol("anna", &reset.code, PW, ip(2), "test").await, Err(EnrolError::Invalid)));
        let again = access.reset_password("anna", "test").await.unwrap();
        access.enrol("anna", &again.code, "yet another password", ip(2), "test").await.unwrap();
        access.login("anna", "yet another password", ip(2), "test").await.unwrap();

        // The codes are nowhere in the database in clear.
        access.store.close().await;
        let db = std::fs::read(dir.path().join("mailroom.db")).unwrap();
        for c in [&code, &reset.code, &again.code] {
            let canon = canonical(c);
            assert!(!db.windows(canon.len()).any(|w| w == canon.as_bytes()) && !db.windows(c.len()).any(|w| w == c.as_bytes()));
        }
        let reasons: Vec<String> = {
            let settings = crate::config::Settings::from_str("test.toml", crate::config::DEFAULT_CONFIG, dir.path()).unwrap();
            let store = crate::store::Store::open(settings.store_options()).await.unwrap();
            crate::store::testing::audit_details(&store, "enrol.failed").await
        };
        let reasons: Vec<&str> = reasons.iter().map(|d| d.rsplit("reason=").next().unwrap()).collect();
        // A guess, the used code (none pending any more), the replaced code, the expired one.
        assert_eq!(reasons, ["wrong-code", "no-code", "wrong-code", "code-expired"]);
    }

    #[tokio::test]
    async fn wrong_codes_are_counted_per_user_and_lock_out() {
        let (_dir, access) = access(3).await;
        let code = access.add_user_enrolled("bert", &[], By::Host("test")).await.unwrap().enrolment.code;
        // Concurrent guesses: each is checked and counted in turn.
        let guesses: Vec<_> = (0..8u8)
            .map(|i| {
                let access = access.clone();
                tokio::spawn(async move { access.enrol("bert", "0000000000000000000000000", PW, ip(10 + i), "test").await })
            })
            .collect();
        let mut invalid = 0;
        for g in guesses {
            match g.await.unwrap() {
                Err(EnrolError::Invalid) => invalid += 1,
                Err(EnrolError::Throttled { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(invalid, 3, "only max_failures guesses were checked");
        assert!(matches!(access.enrol("bert", &code, PW, ip(99), "test").await, Err(EnrolError::Throttled { .. })), "locked out");
        access.unlock_user("bert", "test").await.unwrap();
        access.enrol("bert", &code, PW, ip(99), "test").await.expect("after the lockout the code still works");
        // Per source: wrong codes for unknown names from one address lock that address out.
        for name in ["x1", "x2", "x3"] {
            assert!(matches!(access.enrol(name, "whatever", PW, ip(50), "test").await, Err(EnrolError::Invalid)));
        }
        assert!(matches!(access.enrol("x4", "whatever", PW, ip(50), "test").await, Err(EnrolError::Throttled { .. })));
    }
}
