//! `[access]` and `[[roles]]`: logins, sessions, throttling, the officer workflow, seeded roles.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// A session (cookie or bearer token) ends this long after login, whatever happens.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// … or after this long without use.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// Delay before answering a failed login; doubles with each further failure (per user and
    /// per source address) up to `max_failure_delay`.
    #[serde(with = "humantime_serde")]
    pub failure_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_failure_delay: Duration,
    /// After this many consecutive failures the user (or the source address) is locked out …
    pub max_failures: u32,
    /// … for this long. An officer can unlock earlier with `mailroom user unlock`.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// Password checks running at once (argon2id takes 19 MiB each); 0 = automatic: 4 per core,
    /// together at most a quarter of the memory available at start.
    pub max_concurrent_logins: usize,
    /// How long a login waits for a free check before it is told to try again later.
    #[serde(with = "humantime_serde")]
    pub login_queue_timeout: Duration,
    /// How long a one-time enrolment code (new account, password reset) stays valid.
    #[serde(with = "humantime_serde")]
    pub enrolment_lifetime: Duration,
    /// Whether a change that gives an account read on a queue waits for a second person.
    pub grant_approval: GrantApproval,
}

/// `[access] grant_approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantApproval {
    /// Another security officer, or a supervisor of every queue concerned, must approve.
    #[default]
    SecondPerson,
    /// Officers' changes apply at once (one-person organisations; a warning is logged at start).
    None,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(12 * 3600),
            session_idle: Duration::from_secs(3600),
            failure_delay: Duration::from_millis(250),
            max_failure_delay: Duration::from_secs(4),
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            max_concurrent_logins: 0,
            login_queue_timeout: Duration::from_secs(5),
            enrolment_lifetime: Duration::from_secs(72 * 3600),
            grant_approval: GrantApproval::SecondPerson,
        }
    }
}

/// A role seeded from the config: `grants = { support = ["read", "act"] }`, queue `*` = all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub grants: std::collections::BTreeMap<String, Vec<String>>,
    /// Members must use two-factor login: without it, after the password, they get only the
    /// enrolment (the settings page; 403 `two_factor_required` on the rest of the API; no IMAP).
    #[serde(default)]
    pub require_two_factor: bool,
}

/// `[two_factor]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwoFactorConfig {
    /// Security officers must use two-factor login, like members of a role with
    /// `require_two_factor`. On unless turned off (the test harness's older scenarios log
    /// officers in with a password alone).
    pub officers: bool,
}

impl Default for TwoFactorConfig {
    fn default() -> Self {
        TwoFactorConfig { officers: true }
    }
}

impl AccessConfig {
    /// (key within `[access]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.max_failures == 0 {
            return Err(("max_failures".into(), "must be at least 1".into()));
        }
        if self.max_concurrent_logins > super::password::MAX_SLOTS {
            let reason = format!("must be at most {} (each check takes 19 MiB; 0 = automatic)", super::password::MAX_SLOTS);
            return Err(("max_concurrent_logins".into(), reason));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&self.login_queue_timeout) {
            return Err(("login_queue_timeout".into(), "must be between 100ms and 60s".into()));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(90 * 86400)).contains(&self.enrolment_lifetime) {
            return Err(("enrolment_lifetime".into(), "must be between 1s and 90 days".into()));
        }
        Ok(())
    }
}

/// The `[[roles]]` list: (key such as `[2].grants.support`, reason) for the first wrong entry.
pub fn validate_roles(roles: &[RoleConfig], queues: &BTreeSet<String>) -> Result<(), (String, String)> {
    for (ri, role) in roles.iter().enumerate() {
        super::check_role_name(&role.name).map_err(|reason| (format!("[{ri}].name"), reason))?;
        for (queue, permissions) in &role.grants {
            let key = format!("[{ri}].grants.{queue}");
            if queue != "*" && !queues.contains(queue) {
                return Err((key, format!("role {:?}: no queue is named {queue:?}", role.name)));
            }
            if role.name == super::SECURITY_OFFICER {
                return Err((
                    key,
                    "the security-officer role gets no queue permissions (separation of duties): give the user a second role".into(),
                ));
            }
            for p in permissions {
                p.parse::<super::Permission>().map_err(|reason| (key.clone(), format!("role {:?}: {reason}", role.name)))?;
            }
        }
    }
    Ok(())
}
