//! Staff access: who may see and do what, and the record of it.
//!
//! * `password` hashes with argon2id and bounds how many checks run at once; `throttle` slows
//!   down and locks out guessing (attempts are reserved before their check, so guesses sent
//!   together cannot outrun the count).
//! * `admin` manages users and roles (the CLI and the officer's HTTP endpoints both call it).
//! * `sessions` keeps HTTP sessions and bearer tokens (only their hashes are stored).
//! * `two_factor` adds TOTP codes and recovery codes to web and API logins; `app_passwords` gives
//!   IMAP clients (which cannot ask for a code) a password per device.
//!
//! A [`Principal`] is the logged-in user with the permissions of all their roles; the IMAP view
//! and the HTTP API ask it `can(queue, permission)` before every read or action, and write an
//! audit entry for every read of customer data. The `security-officer` role manages users and
//! roles and reads the audit log, but it carries no queue permission: an officer reads customer
//! mail only when also given a queue role (separation of duties).

pub mod admin;
pub mod app_passwords;
pub mod approvals;
pub mod config;
pub mod enrolment;
pub mod password;
pub mod preferences;
pub mod resets;
pub mod sessions;
pub mod throttle;
pub mod two_factor;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use self::config::{AccessConfig, RoleConfig, TwoFactorConfig};
use crate::store::audit::AuditEntry;
use crate::store::users::Reservation;
use crate::store::{Store, StoreError, now_millis};
use password::Verifier;
use throttle::Throttle;

/// The built-in role that manages access (and nothing else).
pub const SECURITY_OFFICER: &str = "security-officer";

/// What a role may do on a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// See the queue and read its messages and cases (IMAP mailbox, HTTP listing, case view).
    Read,
    /// Work cases: claim, status, priority, category, tags, notes, replies, follow-ups, escalate.
    Act,
    /// Assign cases to other people.
    Assign,
    /// Statistics and reassignment: transfer cases to other queues, assign.
    Supervise,
    /// Approve or return replies written by others in a queue with `review = true` (four eyes).
    Review,
}

impl Permission {
    pub const ALL: [Permission; 5] = [Permission::Read, Permission::Act, Permission::Assign, Permission::Supervise, Permission::Review];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Act => "act",
            Permission::Assign => "assign",
            Permission::Supervise => "supervise",
            Permission::Review => "review",
        }
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown permission {s:?} (read, act, assign, supervise, review)"))
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Role and user names: short, printable, usable in IMAP and URLs without quoting.
pub fn check_role_name(name: &str) -> Result<(), String> {
    check_name("role", name)
}

pub fn check_user_name(name: &str) -> Result<(), String> {
    check_name("user", name)
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!("{what} name {name:?} must be 1 to 64 characters: letters, digits, '.', '-', '_', '@'"));
    }
    Ok(())
}

/// A logged-in user with the combined permissions of their roles.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Principal {
    pub user_id: i64,
    pub name: String,
    pub roles: Vec<String>,
    /// Member of `security-officer`: user and role management, audit log.
    pub officer: bool,
    /// A role (or being an officer) requires two-factor login and the user has not enrolled:
    /// until he does, only the enrolment is open to him.
    #[serde(skip)]
    pub two_factor_missing: bool,
    /// Queue name (or "*" for every queue) → permissions.
    pub grants: BTreeMap<String, BTreeSet<Permission>>,
}

impl Principal {
    pub fn can(&self, queue: &str, permission: Permission) -> bool {
        [queue, "*"].iter().any(|q| self.grants.get(*q).is_some_and(|set| set.contains(&permission)))
    }

    /// The configured queues this user may read, in configuration order.
    pub fn readable_queues<'a>(&self, queues: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        queues.into_iter().filter(|q| self.can(q, Permission::Read)).map(str::to_string).collect()
    }

    /// The actor written into audit entries.
    pub fn actor(&self) -> String {
        format!("user:{}", self.name)
    }
}

/// Why a login failed. A guesser learns nothing about which names exist: only `Throttled` and,
/// after the right password, `Locked` differ from `Invalid` (the API and IMAP still answer
/// "invalid" for `Locked`; the web page tells the person who knows the password). The audit log
/// records the real reason.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid user name or password")]
    Invalid,
    /// The password was right but a security officer has locked the account.
    #[error("invalid user name or password")]
    Locked,
    #[error("too many failed logins; try again in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    /// Every password-check slot stayed taken for `login_queue_timeout`; nothing was checked or
    /// counted.
    #[error("too many logins are being checked at once; try again in {} s", retry_after.as_secs().max(1))]
    Busy { retry_after: Duration },
    /// The password was right, but the user has two-factor login on and sent no code.
    #[error("this account has two-factor login: send the 6-digit code from the authenticator app (or a recovery code) as well")]
    CodeRequired,
    /// The password was right, the second-factor code was not (wrong, expired or used before).
    #[error("the two-factor code is wrong, expired or was used before")]
    WrongCode,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Login, principals and sessions over the shared store; one per server, cheap to clone.
#[derive(Clone)]
pub struct Access {
    pub store: Store,
    throttle: Arc<Throttle>,
    verifier: Arc<Verifier>,
    setup: Arc<Setup>,
}

/// What access is handed from the configuration at start.
struct Setup {
    config: AccessConfig,
    /// Roles to create on first start ([`Access::seed_roles`]) and which of them require
    /// two-factor login; a configuration reload replaces them.
    roles: arc_swap::ArcSwap<Vec<RoleConfig>>,
    /// The configured queue names, which grants may name.
    queues: Vec<String>,
    two_factor: TwoFactorConfig,
}

impl Access {
    pub fn new(store: Store, config: AccessConfig, roles: Vec<RoleConfig>, queues: Vec<String>) -> Access {
        let throttle = Arc::new(Throttle::new(config.clone()));
        let verifier = Arc::new(Verifier::new(&config));
        Access {
            store,
            throttle,
            verifier,
            setup: Arc::new(Setup {
                config,
                roles: arc_swap::ArcSwap::from_pointee(roles),
                queues,
                two_factor: TwoFactorConfig::default(),
            }),
        }
    }

    /// Who must use two-factor login besides the roles that say so (`[two_factor]`).
    pub fn with_two_factor(mut self, two_factor: TwoFactorConfig) -> Access {
        let setup = Setup {
            config: self.setup.config.clone(),
            roles: arc_swap::ArcSwap::new(self.setup.roles.load_full()),
            queues: self.setup.queues.clone(),
            two_factor,
        };
        self.setup = Arc::new(setup);
        self
    }

    /// Whether any of these roles requires two-factor login (officers: `[two_factor] officers`).
    pub fn roles_require_two_factor(&self, roles: &[String]) -> bool {
        let configured = self.setup.roles.load();
        roles.iter().any(|role| {
            (role == SECURITY_OFFICER && self.setup.two_factor.officers)
                || configured.iter().any(|r| r.require_two_factor && &r.name == role)
        })
    }

    /// Puts the roles of a reloaded configuration in force (run [`Access::seed_roles`] next to
    /// create the new ones; the database keeps what it has for the others).
    pub fn replace_roles(&self, roles: Vec<RoleConfig>) {
        self.setup.roles.store(Arc::new(roles));
    }

    /// How many password checks may run at once (`[access] max_concurrent_logins`, or automatic).
    pub fn login_slots(&self) -> usize {
        self.verifier.slots()
    }

    fn config(&self) -> &AccessConfig {
        &self.setup.config
    }

    /// Checks a user name and password from `source` for protocol `via` ("imap", "http").
    ///
    /// The attempt is reserved before the password is checked, per source address (in memory,
    /// per node) and per user (one statement in the database, shared by every node), and counts
    /// as a failure until it succeeds: however many guesses arrive at once, at most
    /// `max_failures` of them are checked before the lockout. Checks wait for one of the
    /// verifier's slots (bounded memory); a login that gets none in time is `Busy`. Every failure
    /// is audited with its real reason and delayed (growing with repeated failures).
    pub async fn login(&self, name: &str, password: &str, source: IpAddr, via: &str) -> Result<Principal, LoginError> {
        self.login_with_code(name, password, None, source, via).await
    }

    /// [`Access::login`] with the second factor of a user who has two-factor login on: a TOTP
    /// code or a recovery code in `code`. Without one such a user gets `CodeRequired` after the
    /// right password, and the attempt stays counted as a failure until a code completes a login
    /// (so alternating password and code steps cannot reset the count between code guesses).
    pub async fn login_with_code(
        &self,
        name: &str,
        password: &str,
        code: Option<&str>,
        source: IpAddr,
        via: &str,
    ) -> Result<Principal, LoginError> {
        let result = self.check_login(name, password, code, source, via).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(LoginError::Invalid) => "invalid",
            Err(LoginError::Locked) => "locked",
            Err(LoginError::Throttled { .. }) => "throttled",
            Err(LoginError::Busy { .. }) => "busy",
            Err(LoginError::CodeRequired) => "code_required",
            Err(LoginError::WrongCode) => "wrong_code",
            Err(LoginError::Store(_)) => "error",
        };
        // Labels from fixed sets only (never the name given).
        let via = ["imap", "http", "web"].into_iter().find(|v| *v == via).unwrap_or("other");
        metrics::counter!("mailroom_logins_total", "via" => via, "result" => outcome).increment(1);
        result
    }

    async fn check_login(
        &self,
        name: &str,
        password: &str,
        code: Option<&str>,
        source: IpAddr,
        via: &str,
    ) -> Result<Principal, LoginError> {
        // A locked-out source is refused at once, without queueing for a check.
        if let Some(retry_after) = self.throttle.source_locked(source) {
            self.audit_failure(name, source, via, "source-locked").await?;
            return Err(LoginError::Throttled { retry_after });
        }
        let Some(slot) = self.verifier.slot().await else {
            self.audit_failure(name, source, via, "busy").await?;
            return Err(LoginError::Busy { retry_after: self.verifier.queue_timeout() });
        };
        let source_attempt = match self.throttle.reserve(source) {
            Ok(attempt) => attempt,
            Err(retry_after) => {
                drop(slot);
                self.audit_failure(name, source, via, "source-locked").await?;
                return Err(LoginError::Throttled { retry_after });
            }
        };
        let Some(user) = self.reserve_user(name).await? else {
            // Spend the same time as for a real user, so timing does not reveal which names exist.
            slot.verify_dummy(password).await;
            self.fail(None, name, source, via, "unknown-user", source_attempt).await?;
            return Err(LoginError::Invalid);
        };
        if user.attempt > self.config().max_failures as i64 {
            // Reserved while locked out (or while the attempt that locks is still being checked).
            drop(slot);
            self.audit_failure(name, source, via, "user-locked-out").await?;
            self.throttle.delay(source_attempt).await;
            let remaining = user.locked_until.map_or(0, |until| until - now_millis()).max(1000);
            return Err(LoginError::Throttled { retry_after: Duration::from_millis(remaining as u64) });
        }
        if !slot.verify(password, &user.hash).await {
            // IMAP also takes the user's per-device app passwords (never the web or the API).
            if via == "imap"
                && !user.locked
                && let Some(device) = self.match_app_password(user.id, password).await?
            {
                return self.succeed(user.id, name, source, via, Some(&format!("app-password device={device}"))).await;
            }
            self.fail(Some(&user), name, source, via, "wrong-password", source_attempt).await?;
            return Err(LoginError::Invalid);
        }
        if user.locked {
            // Checked after the password, so only someone who knows it learns the account is locked.
            self.fail(Some(&user), name, source, via, "user-locked", source_attempt).await?;
            return Err(LoginError::Locked);
        }
        let factor = match code {
            _ if !crate::store::two_factor::totp_enabled(&self.store, user.id).await? => None,
            None => {
                // The reservation stays counted: only a right code releases it.
                self.audit_failure(name, source, via, "code-required").await?;
                return Err(LoginError::CodeRequired);
            }
            Some(code) => Some(self.second_factor(&user, name, code, source, via, source_attempt).await?),
        };
        self.succeed(user.id, name, source, via, factor).await
    }

    /// The web page's second step: the code, for the user whose password `pending` vouches for
    /// (see [`Access::pending_login`]). Reserved, throttled and audited like a password.
    pub async fn login_second_step(&self, pending: &str, code: &str, source: IpAddr, via: &str) -> Result<Principal, LoginError> {
        let Some(name) = self.pending_login_user(pending) else { return Err(LoginError::Invalid) };
        if let Some(retry_after) = self.throttle.source_locked(source) {
            self.audit_failure(&name, source, via, "source-locked").await?;
            return Err(LoginError::Throttled { retry_after });
        }
        let source_attempt = match self.throttle.reserve(source) {
            Ok(attempt) => attempt,
            Err(retry_after) => {
                self.audit_failure(&name, source, via, "source-locked").await?;
                return Err(LoginError::Throttled { retry_after });
            }
        };
        let Some(user) = self.reserve_user(&name).await? else { return Err(LoginError::Invalid) };
        if user.attempt > self.config().max_failures as i64 {
            self.audit_failure(&name, source, via, "user-locked-out").await?;
            self.throttle.delay(source_attempt).await;
            let remaining = user.locked_until.map_or(0, |until| until - now_millis()).max(1000);
            return Err(LoginError::Throttled { retry_after: Duration::from_millis(remaining as u64) });
        }
        if user.locked {
            self.fail(Some(&user), &name, source, via, "user-locked", source_attempt).await?;
            return Err(LoginError::Locked);
        }
        let factor = self.second_factor(&user, &name, code, source, via, source_attempt).await?;
        self.succeed(user.id, &name, source, via, Some(factor)).await
    }

    /// Checks and uses up a second-factor code; a wrong one is a failed login.
    async fn second_factor(
        &self,
        user: &Reservation,
        name: &str,
        code: &str,
        source: IpAddr,
        via: &str,
        source_attempt: u32,
    ) -> Result<&'static str, LoginError> {
        match self.use_code(user.id, code).await? {
            Some(factor) => Ok(factor),
            None => {
                self.fail(Some(user), name, source, via, "wrong-code", source_attempt).await?;
                Err(LoginError::WrongCode)
            }
        }
    }

    /// A login that passed every check: the reservations are released (the counters start
    /// over), the login audited with the second factor it took, if any.
    async fn succeed(&self, user_id: i64, name: &str, source: IpAddr, via: &str, factor: Option<&str>) -> Result<Principal, LoginError> {
        let mut detail = format!("via={via} source={source}");
        if let Some(factor) = factor {
            detail.push_str(&format!(" factor={factor}"));
        }
        let mut tx = self.store.begin_write().await?;
        tx.login_succeeded(user_id).await?;
        tx.audit(&[AuditEntry {
            at: now_millis(),
            actor: format!("user:{name}"),
            action: "login".into(),
            object: Some(format!("user:{name}")),
            detail: Some(detail),
        }])
        .await?;
        tx.commit().await?;
        self.throttle.source_success(source);
        self.principal(user_id).await?.ok_or(LoginError::Invalid)
    }

    /// Reserves one login attempt for `name` before its check (see `store::users::reserve_login`);
    /// None when no such user.
    async fn reserve_user(&self, name: &str) -> Result<Option<Reservation>, StoreError> {
        let now = now_millis();
        let lockout_end = now + self.config().lockout.as_millis() as i64;
        crate::store::users::reserve_login(&self.store, name, now, self.config().max_failures as i64, lockout_end).await
    }

    /// Records a failed attempt (its reservation has counted it already): the audit entry, and the
    /// lockout's entry when this was the attempt that reached `max_failures` and the lockout still
    /// stands; then waits the growing delay.
    async fn fail(
        &self,
        user: Option<&Reservation>,
        name: &str,
        source: IpAddr,
        via: &str,
        reason: &str,
        source_attempt: u32,
    ) -> Result<(), StoreError> {
        let max = self.config().max_failures as i64;
        let user_attempt = user.map_or(0, |u| u.attempt);
        let mut tx = self.store.begin_write().await?;
        let mut entries = Vec::with_capacity(2);
        if let Some(user) = user.filter(|u| u.attempt == max) {
            // A concurrent success may have lifted it again.
            let until = tx.locked_until(user.id).await?;
            if until.is_some_and(|until| until > now_millis()) {
                metrics::counter!("mailroom_login_lockouts_total", "scope" => "user").increment(1);
                entries.push(AuditEntry {
                    at: now_millis(),
                    actor: "access".into(),
                    action: "user.locked-out".into(),
                    object: Some(format!("user:{name}")),
                    detail: Some(format!("after {max} failed logins")),
                });
            }
        }
        entries.push(AuditEntry {
            at: now_millis(),
            actor: format!("user:{name}"),
            action: "login.failed".into(),
            object: Some(format!("user:{name}")),
            detail: Some(format!("via={via} source={source} reason={reason}")),
        });
        tx.audit(&entries).await?;
        tx.commit().await?;
        self.throttle.delay(source_attempt.max(user_attempt as u32)).await;
        Ok(())
    }

    async fn audit_failure(&self, name: &str, source: IpAddr, via: &str, reason: &str) -> Result<(), StoreError> {
        self.audit(
            &format!("user:{name}"),
            "login.failed",
            Some(format!("user:{name}")),
            Some(format!("via={via} source={source} reason={reason}")),
        )
        .await
    }

    /// The user with their current roles, or None when removed, locked or reset (a session of a
    /// user locked or reset meanwhile stops working at once).
    pub async fn principal(&self, user_id: i64) -> Result<Option<Principal>, StoreError> {
        // A pending enrolment code means the password was reset: no session survives that.
        let Some(standing) = crate::store::users::standing(&self.store, user_id).await? else {
            return Ok(None);
        };
        let (name, roles) = (standing.name, standing.roles);
        let mut grants: BTreeMap<String, BTreeSet<Permission>> = BTreeMap::new();
        for (queue, permission) in standing.grants {
            if let Ok(p) = permission.parse() {
                grants.entry(queue).or_default().insert(p);
            }
        }
        let two_factor_missing =
            self.roles_require_two_factor(&roles) && !crate::store::two_factor::totp_enabled(&self.store, user_id).await?;
        Ok(Some(Principal { user_id, name, officer: roles.iter().any(|r| r == SECURITY_OFFICER), roles, grants, two_factor_missing }))
    }

    /// One audit entry of its own (a read, a listing), durable before this returns.
    pub async fn audit(&self, actor: &str, action: &str, object: Option<String>, detail: Option<String>) -> Result<(), StoreError> {
        self.store.append_audit(vec![AuditEntry { at: now_millis(), actor: actor.into(), action: action.into(), object, detail }]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn principal(grants: &[(&str, &[Permission])]) -> Principal {
        Principal {
            user_id: 1,
            name: "a".into(),
            roles: vec![],
            officer: false,
            two_factor_missing: false,
            grants: grants.iter().map(|(q, ps)| (q.to_string(), ps.iter().copied().collect())).collect(),
        }
    }

    #[test]
    fn permissions_are_per_queue_and_explicit() {
        let p = principal(&[("support", &[Permission::Read]), ("sales", &[Permission::Act])]);
        assert!(p.can("support", Permission::Read));
        assert!(!p.can("support", Permission::Act));
        assert!(!p.can("sales", Permission::Read), "act does not imply read");
        assert!(!p.can("complaints", Permission::Read));
        assert_eq!(p.readable_queues(["support", "sales", "complaints"]), vec!["support"]);
        let all = principal(&[("*", &[Permission::Read])]);
        assert!(all.can("complaints", Permission::Read));
        assert!(!all.can("complaints", Permission::Assign));
    }

    /// A store in a temp dir with fast throttling: 20 ms first delay, lockout after 3 failures.
    async fn access() -> (tempfile::TempDir, Access) {
        access_with(|text| text).await
    }

    /// Like `access()`, with the config text changed further by `edit`.
    async fn access_with(edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, Access) {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::config::DEFAULT_CONFIG
            .replace("failure_delay = \"250ms\"", "failure_delay = \"20ms\"")
            .replace("max_failures = 5 ", "max_failures = 3 ")
            .replace("lockout = \"15m\"", "lockout = \"2s\"");
        let text = edit(text);
        let settings = std::sync::Arc::new(crate::config::Settings::from_str("test.toml", &text, dir.path()).unwrap());
        assert_eq!(settings.config.access.max_failures, 3);
        let access = settings.access(Store::open(settings.store_options()).await.unwrap());
        access.seed_roles().await.unwrap();
        (dir, access)
    }

    const PW: &str = "correct horse battery";

    #[tokio::test]
    async fn login_checks_password_lock_and_throttles_per_user() {
        let (_dir, access) = access().await;
        access.add_user("anna", PW, &["support-agent".into()], "test").await.unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let p = access.login("anna", PW, ip, "test").await.unwrap();
        assert!(p.can("support", Permission::Read) && !p.can("sales", Permission::Read) && !p.officer);

        assert!(matches!(access.login("anna", "wrong password!", ip, "test").await, Err(LoginError::Invalid)));
        assert!(matches!(access.login("nobody", PW, ip, "test").await, Err(LoginError::Invalid)));
        // Third failure in a row (per user: the unknown name does not count for anna) …
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(matches!(access.login("anna", "wrong again!!", other, "test").await, Err(LoginError::Invalid)));
        assert!(matches!(access.login("anna", "wrong thrice!", other, "test").await, Err(LoginError::Invalid)));
        // … locks anna out, even with the right password and from a fresh address.
        let fresh: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(matches!(access.login("anna", PW, fresh, "test").await, Err(LoginError::Throttled { .. })));
        // An officer's unlock lifts it.
        access.unlock_user("anna", "test").await.unwrap();
        access.login("anna", PW, fresh, "test").await.unwrap();
        // A locked user cannot log in, even with the right password (and only then learns why).
        access.lock_user("anna", "test").await.unwrap();
        assert!(matches!(access.login("anna", PW, fresh, "test").await, Err(LoginError::Locked)));
        assert!(access.principal(p.user_id).await.unwrap().is_none(), "a locked user has no principal");

        let actions: Vec<(String, Option<String>)> = testing::audit_log(&access.store).await;
        let count = |a: &str| actions.iter().filter(|(action, _)| action == a).count();
        assert_eq!(count("login"), 2);
        assert_eq!(count("login.failed"), 6, "{actions:?}");
        assert_eq!(count("user.locked-out"), 1);
        assert!(actions.iter().any(|(a, d)| a == "login.failed" && d.as_deref().is_some_and(|d| d.contains("reason=user-locked"))));
        assert!(matches!(access.store.verify_audit().await.unwrap(), crate::store::audit::ChainCheck::Intact { .. }));
    }

    /// Asking again for a change that is already pending finds it (one change, one audit entry);
    /// the lookup treats absent values (a grant has no user) as equal, on every engine.
    #[tokio::test]
    async fn an_identical_pending_change_is_found_not_held_twice() {
        let (_dir, access) = access().await;
        access.add_user("olga", PW, &["security-officer".into()], "test").await.unwrap();
        access.add_user("anna", PW, &["support-agent".into()], "test").await.unwrap();
        let olga = access.login("olga", PW, "192.0.2.1".parse().unwrap(), "test").await.unwrap();
        let pending = |outcome| match outcome {
            approvals::Outcome::Pending(change) => change.id,
            approvals::Outcome::Applied => panic!("granting read to a role with members waits for approval"),
        };
        let first = pending(access.request_grant(&olga, "support-agent", "sales", &[Permission::Read]).await.unwrap());
        let again = pending(access.request_grant(&olga, "support-agent", "sales", &[Permission::Read]).await.unwrap());
        assert_eq!(first, again, "the same grant asked twice is one pending change");
        let other = pending(access.request_grant(&olga, "support-agent", "complaints", &[Permission::Read]).await.unwrap());
        assert_ne!(first, other, "another queue is another change");
        let both = pending(access.request_grant(&olga, "support-agent", "sales", &[Permission::Read, Permission::Act]).await.unwrap());
        assert_ne!(first, both, "other permissions are another change");
        let requested = testing::audit_log(&access.store).await.into_iter().filter(|(a, _)| a == "change.requested").count();
        assert_eq!(requested, 3);
    }

    #[tokio::test]
    async fn a_source_address_is_locked_out_across_user_names() {
        let (_dir, access) = access().await;
        access.add_user("bert", PW, &[], "test").await.unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for name in ["u1", "u2", "u3"] {
            assert!(matches!(access.login(name, PW, ip, "test").await, Err(LoginError::Invalid)));
        }
        let started = std::time::Instant::now();
        assert!(matches!(access.login("bert", PW, ip, "test").await, Err(LoginError::Throttled { .. })), "the source is locked out");
        assert!(started.elapsed() < Duration::from_secs(1), "a locked-out source is refused without a password check");
        access.login("bert", PW, "203.0.113.10".parse().unwrap(), "test").await.expect("other sources are not affected");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        access.login("bert", PW, ip, "test").await.expect("the lockout ends");
    }

    #[tokio::test]
    async fn failures_are_delayed_more_and_more() {
        let (_dir, access) = access().await;
        access.add_user("carl", PW, &[], "test").await.unwrap();
        let ip: IpAddr = "192.0.2.44".parse().unwrap();
        let mut took = vec![];
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let _ = access.login("carl", "nope nope nope", ip, "test").await;
            took.push(started.elapsed());
        }
        assert!(took[0] >= Duration::from_millis(20) && took[1] >= Duration::from_millis(40), "{took:?}");
    }

    #[tokio::test]
    async fn sessions_expire_end_and_die_with_the_user() {
        let (_dir, access) = access().await;
        access.add_user("dora", PW, &["sales-agent".into()], "test").await.unwrap();
        let p = access.login("dora", PW, "192.0.2.1".parse().unwrap(), "test").await.unwrap();
        let token = access.start_session(&p, sessions::SessionKind::Cookie).await.unwrap();
        let (again, kind) = access.resume_session(&token).await.unwrap();
        assert_eq!((again.name.as_str(), kind), ("dora", sessions::SessionKind::Cookie));
        assert!(matches!(access.resume_session("forged-token").await, Err(sessions::SessionError::Unknown)));
        let csrf = access.csrf_token(&token);
        assert!(access.csrf_ok(&token, &csrf));
        assert!(!access.csrf_ok(&token, &access.csrf_token("another session")));
        assert!(!access.csrf_ok(&token, ""));
        // Expired: move the expiry into the past.
        testing::expire_sessions(&access.store).await;
        assert!(matches!(access.resume_session(&token).await, Err(sessions::SessionError::Expired)));
        // Idle too long.
        let token = access.start_session(&p, sessions::SessionKind::Bearer).await.unwrap();
        testing::age_sessions(&access.store, 3600001).await;
        assert!(matches!(access.resume_session(&token).await, Err(sessions::SessionError::Expired)));
        // A background request (a page's own poll) keeps no session alive; the user's request does.
        let token = access.start_session(&p, sessions::SessionKind::Cookie).await.unwrap();
        testing::age_sessions(&access.store, 3_000_000).await;
        access.check_session(&token).await.unwrap();
        testing::age_sessions(&access.store, 600_001).await;
        assert!(matches!(access.check_session(&token).await, Err(sessions::SessionError::Expired)), "polls alone kept it alive");
        let token = access.start_session(&p, sessions::SessionKind::Cookie).await.unwrap();
        testing::age_sessions(&access.store, 3_000_000).await;
        access.resume_session(&token).await.unwrap();
        testing::age_sessions(&access.store, 600_001).await;
        access.resume_session(&token).await.expect("the user's own request counts as activity");
        // Logout.
        let token = access.start_session(&p, sessions::SessionKind::Bearer).await.unwrap();
        access.end_session(&token).await.unwrap();
        assert!(matches!(access.resume_session(&token).await, Err(sessions::SessionError::Unknown)));
        // A password change ends every session; a lock makes them useless.
        let token = access.start_session(&p, sessions::SessionKind::Bearer).await.unwrap();
        access.set_password("dora", "another long password", "test").await.unwrap();
        assert!(access.resume_session(&token).await.is_err());
        let p = access.login("dora", "another long password", "192.0.2.1".parse().unwrap(), "test").await.unwrap();
        let token = access.start_session(&p, sessions::SessionKind::Bearer).await.unwrap();
        testing::lock_every_user(&access.store).await;
        assert!(matches!(access.resume_session(&token).await, Err(sessions::SessionError::UserGone)));
        // The database holds only hashes of tokens.
        let stored: Vec<Vec<u8>> = testing::session_token_hashes(&access.store).await;
        assert!(stored.iter().all(|h| h.len() == 32 && h.as_slice() != token.as_bytes()));
    }

    #[tokio::test]
    async fn officers_get_no_queue_permissions_and_grants_follow_roles() {
        let (_dir, access) = access().await;
        access.add_user("olga", PW, &[SECURITY_OFFICER.into()], "test").await.unwrap();
        let p = access.login("olga", PW, "192.0.2.1".parse().unwrap(), "test").await.unwrap();
        assert!(p.officer && p.grants.is_empty());
        assert!(access.grant(SECURITY_OFFICER, "support", &[Permission::Read], "test").await.is_err());
        assert!(access.grant("support-agent", "nope", &[Permission::Read], "test").await.is_err());
        access.assign_role("complaints-handler", "olga", "test").await.unwrap();
        let p = access.principal(p.user_id).await.unwrap().unwrap();
        assert!(p.can("complaints", Permission::Read) && p.officer);
        access.revoke("complaints-handler", "complaints", &[Permission::Read], "test").await.unwrap();
        let p = access.principal(p.user_id).await.unwrap().unwrap();
        assert!(!p.can("complaints", Permission::Read) && p.can("complaints", Permission::Act));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_user_name("anna.schmidt@example.com").is_ok());
        for bad in ["", "a b", "a\"b", "ä", &"x".repeat(65), "a/b"] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!("act".parse::<Permission>(), Ok(Permission::Act));
        assert!("write".parse::<Permission>().is_err());
    }

    async fn audit_details(access: &Access, action: &str) -> Vec<String> {
        testing::audit_details(&access.store, action).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn user_reservations_are_atomic_and_grant_at_most_max_failures() {
        let (_dir, access) = access().await;
        access.add_user("anna", PW, &[], "test").await.unwrap();
        assert!(access.reserve_user("nobody").await.unwrap().is_none(), "unknown names reserve nothing");
        // … but commit a write all the same (the timing of an answer must not tell which names exist).
        let unknown: i64 = testing::counter(&access.store, "login.unknown-user").await;
        assert_eq!(unknown, 1);

        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let access = access.clone();
                tokio::spawn(async move { access.reserve_user("anna").await.unwrap().unwrap() })
            })
            .collect();
        let mut attempts = Vec::new();
        for task in tasks {
            let r = task.await.unwrap();
            assert!(!r.locked && r.hash.starts_with("$argon2id$"));
            attempts.push(r.attempt);
        }
        attempts.sort();
        assert_eq!(attempts[..3], [1, 2, 3], "one of each granted number");
        assert!(attempts[3..].iter().all(|a| *a == 4), "the other 47 are refused: {attempts:?}");

        // The third attempt started the lockout before any password was checked.
        let (failed, until): (i64, Option<i64>) = testing::login_state(&access.store, "anna").await;
        assert_eq!(failed, 4);
        assert!(until.is_some_and(|u| u > now_millis() + 1000));

        // When the lockout has ended, the count starts over; the third attempt locks again.
        testing::set_login_state(&access.store, "anna", None, now_millis() - 1).await;
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(access.reserve_user("anna").await.unwrap().unwrap().attempt);
        }
        assert_eq!(seen, [1, 2, 3, 4]);

        // A lockout recorded with a zero count (as before reservations existed) still refuses.
        testing::set_login_state(&access.store, "anna", Some(0), now_millis() + 60_000).await;
        assert_eq!(access.reserve_user("anna").await.unwrap().unwrap().attempt, 4);

        // An officer's unlock clears it; a success resets the count.
        access.unlock_user("anna", "test").await.unwrap();
        assert_eq!(access.reserve_user("anna").await.unwrap().unwrap().attempt, 1);
        access.login("anna", PW, "192.0.2.50".parse().unwrap(), "test").await.unwrap();
        assert_eq!(access.reserve_user("anna").await.unwrap().unwrap().attempt, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_passwords_are_checked_at_most_max_failures_times() {
        let (_dir, access) = access().await;
        access.add_user("anna", PW, &[], "test").await.unwrap();
        // 30 guesses at once, each from its own address, so only the per-user count can stop them.
        let tasks: Vec<_> = (0..30u8)
            .map(|i| {
                let access = access.clone();
                let source = IpAddr::from([192, 0, 2, 100 + i]);
                tokio::spawn(async move { access.login("anna", "a wrong guess!", source, "test").await })
            })
            .collect();
        let (mut invalid, mut throttled) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Err(LoginError::Invalid) => invalid += 1,
                Err(LoginError::Throttled { .. }) => throttled += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((invalid, throttled), (3, 27));
        let failed = audit_details(&access, "login.failed").await;
        assert_eq!(failed.len(), 30, "one entry per attempt");
        assert_eq!(failed.iter().filter(|d| d.ends_with("reason=wrong-password")).count(), 3, "{failed:?}");
        assert_eq!(failed.iter().filter(|d| d.ends_with("reason=user-locked-out")).count(), 27);
        assert_eq!(audit_details(&access, "user.locked-out").await.len(), 1);
        // The right password, from yet another address, is refused while the lockout lasts.
        let fresh = IpAddr::from([198, 51, 100, 7]);
        assert!(matches!(access.login("anna", PW, fresh, "test").await, Err(LoginError::Throttled { .. })));
        assert_eq!(audit_details(&access, "login").await.len(), 0);
        assert!(matches!(access.store.verify_audit().await.unwrap(), crate::store::audit::ChainCheck::Intact { .. }));
    }

    #[tokio::test]
    async fn a_login_that_finds_no_free_check_is_busy_and_counts_nothing() {
        let (_dir, access) = access_with(|text| {
            text.replace("max_concurrent_logins = 0 ", "max_concurrent_logins = 1 ")
                .replace("login_queue_timeout = \"5s\"", "login_queue_timeout = \"200ms\"")
        })
        .await;
        assert_eq!(access.login_slots(), 1);
        access.add_user("anna", PW, &[], "test").await.unwrap();
        let ip: IpAddr = "192.0.2.60".parse().unwrap();
        let taken = access.verifier.slot().await.unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(access.login("anna", PW, ip, "test").await, Err(LoginError::Busy { .. })));
        assert!(started.elapsed() >= Duration::from_millis(200), "waited for the queue timeout");
        // Nothing was checked, so nothing counts: neither for anna nor for the source.
        let (failed, _) = testing::login_state(&access.store, "anna").await;
        assert_eq!(failed, 0);
        for _ in 0..3 {
            assert!(matches!(access.login("nobody", PW, ip, "test").await, Err(LoginError::Busy { .. })));
        }
        assert!(access.throttle.source_locked(ip).is_none());
        assert!(audit_details(&access, "login.failed").await.iter().all(|d| d.ends_with("reason=busy")));
        drop(taken);
        access.login("anna", PW, ip, "test").await.expect("a free check again");
    }

    #[test]
    fn login_capacity_keys_are_validated() {
        let load =
            |access: &str| crate::config::Settings::from_str("t.toml", &format!("[access]\n{access}\n"), std::path::Path::new("/tmp"));
        let e = load("max_concurrent_logins = 100000").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "access.max_concurrent_logins"), "{e}");
        let e = load("login_queue_timeout = \"10ms\"").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "access.login_queue_timeout"), "{e}");
        let e = load("login_queue_timeout = \"2m\"").unwrap_err();
        assert_eq!(e.key, "access.login_queue_timeout", "{e}");
        let s = load("max_concurrent_logins = 3\nlogin_queue_timeout = \"1s\"").unwrap();
        assert_eq!((s.config.access.max_concurrent_logins, s.config.access.login_queue_timeout), (3, Duration::from_secs(1)));
        let s = load("").unwrap();
        assert_eq!((s.config.access.max_concurrent_logins, s.config.access.login_queue_timeout), (0, Duration::from_secs(5)));
    }
}
