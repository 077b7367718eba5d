//! Two-factor login: TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of clock
//! skew either way; the `totp-rs` crate computes and compares the codes) and ten one-time
//! recovery codes.
//!
//! * Enrolment: [`Access::start_totp`] makes a 160-bit secret, stores it sealed (`store::two_factor`)
//!   and hands back the secret and its `otpauth://` URI (the web page draws it as a QR code);
//!   [`Access::confirm_totp`] switches it on with a first code and returns the recovery codes,
//!   shown this once. [`Access::disable_totp`] takes a code too. Each is audited.
//! * Login: [`Access::use_code`] accepts a code once: a TOTP code only if its time step is later
//!   than the last one accepted (no replay within its window), a recovery code only if unused.
//! * The web page's second step carries a short-lived token that vouches for the password
//!   ([`Access::pending_login`]): an HMAC under the key file's key, nothing stored.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

use super::{Access, Principal};
use crate::store::audit::AuditEntry;
use crate::store::two_factor::{self as stored, seal_secret};
use crate::store::{StoreError, now_millis};

/// The name authenticator apps show beside the account.
pub const ISSUER: &str = "mailroom";
const DIGITS: u8 = 6;
const STEP_SECONDS: u64 = 30;
/// One step before and after the current one: a clock a little off, a code typed late.
const SKEW_STEPS: u16 = 1;
/// 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
pub const RECOVERY_CODES: usize = 10;
/// Recovery codes: 10 characters of this 32-letter alphabet (no 0/o, 1/l), 50 random bits each.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
const RECOVERY_LEN: usize = 10;
/// How long the web page's second step may follow the password.
const PENDING_LOGIN_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    #[error("two-factor login is on already; disable it first to enrol a new device")]
    AlreadyOn,
    #[error("no enrolment is waiting for confirmation: start one first")]
    NotStarted,
    #[error("two-factor login is not on")]
    NotOn,
    #[error("the code is wrong, expired or was used before")]
    WrongCode,
    #[error("too many failed attempts; try again later")]
    Throttled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A started enrolment: what the authenticator app needs. The secret is base32 (RFC 4648, no
/// padding), as apps expect it typed.
pub struct Enrolment {
    pub secret: Zeroizing<String>,
    pub uri: Zeroizing<String>,
}

/// Where a user's two-factor login stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwoFactorStatus {
    pub enabled: bool,
    /// An enrolment waits for its first code.
    pub pending: bool,
    pub recovery_codes_left: i64,
}

fn totp(secret: &[u8], account: &str) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(Secret::from(secret.to_vec()))
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        // Our own parameters are the RFC's; only an account name with ':' is refused by build().
        .build_noncompliant()
}

fn unix_seconds() -> u64 {
    (now_millis() / 1000) as u64
}

/// A code as typed: spaces and dashes dropped, lower case.
fn normalize(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect()
}

fn is_totp_code(code: &str) -> bool {
    code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::BatchFailed("no randomness for a two-factor secret".into()))?;
    Ok(bytes)
}

/// Ten fresh recovery codes, as shown: `xxxxx-xxxxx`.
fn new_recovery_codes() -> Result<Vec<String>, StoreError> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = random_bytes::<RECOVERY_LEN>()?;
            let chars: String = bytes.iter().map(|b| RECOVERY_ALPHABET[usize::from(b % 32)] as char).collect();
            Ok(format!("{}-{}", &chars[..5], &chars[5..]))
        })
        .collect()
}

impl Access {
    /// A keyed hash of a recovery code (normalised). Not argon2 like passwords: a code is 50
    /// random bits, not something a person chose, so there is no dictionary to slow down, and
    /// the key file's key is needed to test guesses against a stolen database at all. The user
    /// id is in the hash, so equal codes of two users do not match.
    fn recovery_hash(&self, user_id: i64, code: &str) -> Vec<u8> {
        self.store.keys.mac("recovery-code", &[&user_id.to_be_bytes(), normalize(code).as_bytes()])
    }

    /// Where the user's two-factor login stands.
    pub async fn two_factor_status(&self, user_id: i64) -> Result<TwoFactorStatus, StoreError> {
        let totp = stored::totp(&self.store, user_id).await?;
        Ok(TwoFactorStatus {
            enabled: totp.as_ref().is_some_and(|t| t.confirmed),
            pending: totp.as_ref().is_some_and(|t| !t.confirmed),
            recovery_codes_left: stored::recovery_codes_left(&self.store, user_id).await?,
        })
    }

    /// Starts an enrolment with a new secret (replacing one not yet confirmed); audited as
    /// `totp.enrol`.
    pub async fn start_totp(&self, principal: &Principal) -> Result<Enrolment, TwoFactorError> {
        let secret = Zeroizing::new(random_bytes::<SECRET_BYTES>()?);
        let sealed = seal_secret(&self.store.keys, principal.user_id, secret.as_ref())?;
        let mut tx = self.store.begin_write().await?;
        if !tx.start_totp(principal.user_id, &sealed, now_millis()).await? {
            return Err(TwoFactorError::AlreadyOn);
        }
        tx.audit(&[self.entry(principal, "totp.enrol", None)]).await?;
        tx.commit().await?;
        let totp = totp(secret.as_ref(), &principal.name);
        let uri = totp.to_url().map_err(|e| StoreError::BatchFailed(format!("otpauth URI: {e}")))?;
        Ok(Enrolment { secret: Zeroizing::new(totp.secret().to_base32()), uri: Zeroizing::new(uri) })
    }

    /// The enrolment waiting for its first code, if any (the settings page shows it again).
    pub async fn pending_totp(&self, principal: &Principal) -> Result<Option<Enrolment>, StoreError> {
        let Some(pending) = stored::totp(&self.store, principal.user_id).await?.filter(|t| !t.confirmed) else { return Ok(None) };
        let totp = totp(&pending.secret, &principal.name);
        let uri = totp.to_url().map_err(|e| StoreError::BatchFailed(format!("otpauth URI: {e}")))?;
        Ok(Some(Enrolment { secret: Zeroizing::new(totp.secret().to_base32()), uri: Zeroizing::new(uri) }))
    }

    /// Switches a started enrolment on with its first code; returns the ten recovery codes (the
    /// only time they are seen: only their hashes are kept). Audited as `totp.confirm`, a wrong
    /// code as `totp.confirm-failed`.
    pub async fn confirm_totp(&self, principal: &Principal, code: &str) -> Result<Vec<String>, TwoFactorError> {
        let Some(pending) = stored::totp(&self.store, principal.user_id).await?.filter(|t| !t.confirmed) else {
            return Err(TwoFactorError::NotStarted);
        };
        let code = normalize(code);
        let step = is_totp_code(&code).then(|| totp(&pending.secret, &principal.name).check(&code, unix_seconds())).flatten();
        let Some(step) = step else {
            self.audit(&principal.actor(), "totp.confirm-failed", Some(format!("user:{}", principal.name)), None).await?;
            return Err(TwoFactorError::WrongCode);
        };
        let codes = new_recovery_codes()?;
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| self.recovery_hash(principal.user_id, c)).collect();
        let mut tx = self.store.begin_write().await?;
        if !tx.confirm_totp(principal.user_id, step as i64, now_millis()).await? {
            return Err(TwoFactorError::NotStarted);
        }
        tx.set_recovery_codes(principal.user_id, &hashes).await?;
        tx.audit(&[self.entry(principal, "totp.confirm", Some(format!("recovery-codes={RECOVERY_CODES}")))]).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Switches two-factor login off; takes a current code (or a recovery code), checked and
    /// throttled like a login's, so a session left open is not enough. Audited as `totp.disable`.
    pub async fn disable_totp(&self, principal: &Principal, code: &str, source: IpAddr) -> Result<(), TwoFactorError> {
        if !stored::totp_enabled(&self.store, principal.user_id).await? {
            return Err(TwoFactorError::NotOn);
        }
        let source_attempt = self.throttle.reserve(source).map_err(|_| TwoFactorError::Throttled)?;
        let Some(user) = self.reserve_user(&principal.name).await? else { return Err(TwoFactorError::NotOn) };
        if user.attempt > self.config().max_failures as i64 {
            self.audit_failure(&principal.name, source, "totp-disable", "user-locked-out").await?;
            return Err(TwoFactorError::Throttled);
        }
        let Some(factor) = self.use_code(principal.user_id, code).await? else {
            self.fail(Some(&user), &principal.name, source, "totp-disable", "wrong-code", source_attempt).await?;
            return Err(TwoFactorError::WrongCode);
        };
        let mut tx = self.store.begin_write().await?;
        tx.login_succeeded(principal.user_id).await?;
        tx.remove_totp(principal.user_id).await?;
        tx.audit(&[self.entry(principal, "totp.disable", Some(format!("factor={factor}")))]).await?;
        tx.commit().await?;
        self.throttle.source_success(source);
        Ok(())
    }

    /// Checks a second-factor code of a user with two-factor login on and uses it up: Some("totp")
    /// or Some("recovery-code") when it was good (and never before used), None otherwise.
    pub(super) async fn use_code(&self, user_id: i64, code: &str) -> Result<Option<&'static str>, StoreError> {
        let code = normalize(code);
        if is_totp_code(&code) {
            let Some(totp_row) = stored::totp(&self.store, user_id).await?.filter(|t| t.confirmed) else { return Ok(None) };
            let Some(step) = totp(&totp_row.secret, "-").check(&code, unix_seconds()) else { return Ok(None) };
            let mut tx = self.store.begin_write().await?;
            let fresh = tx.accept_totp_step(user_id, step as i64).await?;
            tx.commit().await?;
            return Ok(fresh.then_some("totp"));
        }
        if code.len() == RECOVERY_LEN {
            let hash = self.recovery_hash(user_id, &code);
            let mut tx = self.store.begin_write().await?;
            let fresh = tx.use_recovery_code(user_id, &hash, now_millis()).await?;
            tx.commit().await?;
            return Ok(fresh.then_some("recovery-code"));
        }
        Ok(None)
    }

    /// A token for the web page's second login step: the password of `name` was right just now.
    pub fn pending_login(&self, name: &str) -> String {
        let expires = now_millis() + PENDING_LOGIN_MS;
        let mac = self.pending_mac(name, expires);
        format!("{expires}.{}.{}", B64.encode(name), B64.encode(mac))
    }

    /// The user a pending-login token vouches for, while it is valid.
    pub(super) fn pending_login_user(&self, token: &str) -> Option<String> {
        let mut parts = token.splitn(3, '.');
        let expires: i64 = parts.next()?.parse().ok()?;
        let name = String::from_utf8(B64.decode(parts.next()?).ok()?).ok()?;
        let presented = B64.decode(parts.next()?).ok()?;
        let expected = self.pending_mac(&name, expires);
        let genuine = aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &presented).is_ok();
        (genuine && now_millis() < expires).then_some(name)
    }

    fn pending_mac(&self, name: &str, expires: i64) -> Vec<u8> {
        self.store.keys.mac("login-pending", &[&expires.to_be_bytes(), name.as_bytes()])[..24].to_vec()
    }

    fn entry(&self, principal: &Principal, action: &str, detail: Option<String>) -> AuditEntry {
        AuditEntry {
            at: now_millis(),
            actor: principal.actor(),
            action: action.into(),
            object: Some(format!("user:{}", principal.name)),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows, cut to our 6 digits (the last six of the 8-digit values).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let t = totp(b"12345678901234567890", "test");
        for (time, code) in [
            (59u64, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
            (20000000000, "353130"),
        ] {
            assert_eq!(t.generate(time).to_string(), code, "T={time}");
        }
        // One step of skew either way, not two.
        assert_eq!(t.check("081804", 1111111109 + 30), Some(1111111109 / 30));
        assert_eq!(t.check("081804", 1111111109 - 30), Some(1111111109 / 30));
        assert_eq!(t.check("081804", 1111111109 + 60), None);
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let t = totp(b"12345678901234567890", "anna@example.org");
        let uri = t.to_url().unwrap();
        assert!(uri.starts_with("otpauth://totp/mailroom:anna%40example.org?"), "{uri}");
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=mailroom"), "{uri}");
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_typed_forgivingly() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
        assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), 10);
        assert_eq!(normalize(" ABCDE-fghij "), "abcdefghij");
        assert!(is_totp_code(&normalize("123 456")) && !is_totp_code("12345a"));
    }
}
