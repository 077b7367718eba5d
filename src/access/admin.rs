//! User and role management: what `mailroom user …` / `mailroom role …` and the security
//! officer's HTTP endpoints do. Every change is audited in the transaction that makes it.
//!
//! The methods that take an `actor: &str` act with the host's authority (the CLI, the config):
//! root on the host can read the database and the key file anyway. What an officer asks for over
//! HTTP goes through [`By::Staff`]: he never changes his own account, roles or grants
//! ([`Access::refuse_own`]), and what would open a queue's mail waits for a second person
//! (`approvals`).

use std::collections::{BTreeMap, BTreeSet};

use super::{Access, Permission, Principal, SECURITY_OFFICER, check_role_name, check_user_name, password};
use crate::store::audit::AuditEntry;
use crate::store::tx::Tx;
use crate::store::{StoreError, millis_to_rfc3339, now_millis};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no user is named {0:?}")]
    NoSuchUser(String),
    #[error("no role is named {0:?}")]
    NoSuchRole(String),
    #[error("no change has the id {0}")]
    NoSuchChange(i64),
    #[error("{0} already exists")]
    Exists(String),
    /// Separation of duties: not this person, not for this change.
    #[error("{0}")]
    Forbidden(String),
    /// The state does not allow it (e.g. a change already decided).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<String>,
    /// Locked by an officer.
    pub locked: bool,
    /// Temporarily locked out after failed logins, until this time.
    pub locked_out_until: Option<String>,
    pub failed_logins: i64,
    pub created_at: String,
    pub password_changed_at: String,
    /// No usable password yet (new account or reset): an enrolment code is pending.
    pub enrolment_pending: bool,
    /// When the pending code expires (it may already have: then the account needs a new one).
    pub enrolment_expires_at: Option<String>,
    /// The user's own address, where notifications are mailed (None: the web list only).
    pub email: Option<String>,
}

/// Who makes a change.
#[derive(Clone, Copy)]
pub enum By<'a> {
    /// The CLI or the configuration, with the host's authority (named for the audit log).
    Host(&'a str),
    /// A logged-in staff member (HTTP), held to separation of duties.
    Staff(&'a Principal),
}

impl By<'_> {
    pub fn actor(&self) -> String {
        match self {
            By::Host(actor) => actor.to_string(),
            By::Staff(p) => p.actor(),
        }
    }
}

/// What an officer's request touches, for the rule that nobody changes his own access.
pub enum Touches<'a> {
    /// An account: reset, lock, unlock, remove.
    Account(&'a str),
    /// A user's membership in a role.
    Membership { role: &'a str, user: &'a str },
    /// A role's grants.
    Grants(&'a str),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleInfo {
    pub name: String,
    pub description: String,
    /// Queue (or "*") → permissions.
    pub grants: BTreeMap<String, BTreeSet<Permission>>,
    pub members: Vec<String>,
}

/// One audit entry by `actor` about `object`, in the change's transaction.
pub(crate) async fn audit_in(tx: &mut Tx, actor: &str, action: &str, object: String, detail: Option<String>) -> Result<(), StoreError> {
    tx.audit(&[AuditEntry { at: now_millis(), actor: actor.into(), action: action.into(), object: Some(object), detail }]).await
}

pub(crate) async fn user_id(tx: &mut Tx, name: &str) -> Result<i64, AdminError> {
    tx.user_id(name).await?.ok_or_else(|| AdminError::NoSuchUser(name.into()))
}

pub(crate) async fn role_exists(tx: &mut Tx, role: &str) -> Result<(), AdminError> {
    if tx.role_exists(role).await? { Ok(()) } else { Err(AdminError::NoSuchRole(role.into())) }
}

/// What resetting a user's second factor removed.
#[derive(Debug, serde::Serialize)]
pub struct TwoFactorReset {
    /// A TOTP secret (with its recovery codes) was removed.
    pub totp: bool,
    /// How many IMAP app passwords were revoked.
    pub app_passwords: u64,
}

impl Access {
    /// Refuses (403, audited as `admin.refused`) a request by which an officer would change his
    /// own account, his own role memberships, or the grants of a role he holds.
    pub async fn refuse_own(&self, by: &Principal, attempt: &str, touches: Touches<'_>) -> Result<(), AdminError> {
        let (own, object, reason) = match touches {
            Touches::Account(name) => (
                name == by.name,
                format!("user:{name}"),
                "you cannot reset, lock, unlock or remove your own account: another officer (or the host's `mailroom user`) can",
            ),
            Touches::Membership { role, user } => (
                user == by.name,
                format!("role:{role}"),
                "you cannot give yourself a role or take one from yourself: another officer (or the host's `mailroom role`) can",
            ),
            Touches::Grants(role) => (
                by.roles.iter().any(|r| r == role),
                format!("role:{role}"),
                "you cannot change the grants of a role you hold: another officer (or the host's `mailroom role`) can",
            ),
        };
        if !own {
            return Ok(());
        }
        self.audit(&by.actor(), "admin.refused", Some(object), Some(format!("attempt={attempt} reason=own-access"))).await?;
        Err(AdminError::Forbidden(reason.into()))
    }

    pub(crate) fn known_queue(&self, queue: &str) -> Result<(), AdminError> {
        let queues = &self.setup.queues;
        if queue == "*" || queues.iter().any(|q| q == queue) {
            return Ok(());
        }
        Err(AdminError::Invalid(format!("no queue is named {queue:?} (queues: {}, or * for all)", queues.join(", "))))
    }

    /// A user with a password chosen on the host (`mailroom user add --password-stdin`, for
    /// automation). Staff accounts made by an officer get an enrolment code instead
    /// (`add_user_enrolled`).
    pub async fn add_user(&self, name: &str, password: &str, roles: &[String], actor: &str) -> Result<(), AdminError> {
        check_user_name(name).map_err(AdminError::Invalid)?;
        password::check_strength(password).map_err(AdminError::Invalid)?;
        let hash = password::hash(password).map_err(AdminError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        for role in roles {
            role_exists(&mut tx, role).await?;
        }
        let Some(id) = tx.insert_user(name, &hash, now_millis()).await? else {
            return Err(AdminError::Exists(format!("user {name:?}")));
        };
        for role in roles {
            tx.add_membership(id, role).await?;
        }
        audit_in(&mut tx, actor, "user.add", format!("user:{name}"), (!roles.is_empty()).then(|| format!("roles={}", roles.join(","))))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_users(&self) -> Result<Vec<UserInfo>, AdminError> {
        let now = now_millis();
        Ok(crate::store::users::list(&self.store)
            .await?
            .into_iter()
            .map(|u| UserInfo {
                name: u.name,
                locked: u.locked,
                locked_out_until: u.locked_until.filter(|t| *t > now).map(millis_to_rfc3339),
                failed_logins: u.failed_logins,
                created_at: millis_to_rfc3339(u.created_at),
                password_changed_at: millis_to_rfc3339(u.password_changed_at),
                roles: u.roles,
                enrolment_pending: u.enrolment_pending,
                enrolment_expires_at: u.enrolment_expires_at.map(millis_to_rfc3339),
                email: u.email,
            })
            .collect())
    }

    /// New password from the host (`mailroom user passwd --password-stdin`); every session of
    /// the user ends, any lockout is lifted, a pending enrolment code stops working.
    pub async fn set_password(&self, name: &str, password: &str, actor: &str) -> Result<(), AdminError> {
        password::check_strength(password).map_err(AdminError::Invalid)?;
        let hash = password::hash(password).map_err(AdminError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        tx.set_password(id, &hash, now_millis()).await?;
        tx.end_sessions(id).await?;
        audit_in(&mut tx, actor, "user.passwd", format!("user:{name}"), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets (or, with None, clears) the address where a user's notifications are mailed. Only a
    /// staff address of his own belongs here; the audit entry does not repeat it.
    pub async fn set_email(&self, name: &str, email: Option<&str>, actor: &str) -> Result<(), AdminError> {
        let email = email.map(str::trim).filter(|e| !e.is_empty());
        if let Some(email) = email {
            check_email(email).map_err(AdminError::Invalid)?;
        }
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        tx.set_email(id, email).await?;
        let detail = if email.is_some() { "set" } else { "cleared" };
        audit_in(&mut tx, actor, "user.email", format!("user:{name}"), Some(detail.into())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lock: no login, and every open session stops working at once.
    pub async fn lock_user(&self, name: &str, actor: &str) -> Result<(), AdminError> {
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        tx.lock_user(id).await?;
        tx.end_sessions(id).await?;
        audit_in(&mut tx, actor, "user.lock", format!("user:{name}"), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A lost second factor: the user's TOTP secret, recovery codes and IMAP app passwords go and
    /// his sessions end (the lost phone may hold one). His password stays, so this alone hands
    /// nobody his account; at his next login he enrols a new device (at once, if a role requires
    /// it). 409 when he has neither, so a mistyped name changes nothing. Audited as `user.two-factor-reset`.
    pub async fn reset_two_factor(&self, name: &str, actor: &str) -> Result<TwoFactorReset, AdminError> {
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        let totp = tx.remove_totp(id).await?;
        let app_passwords = tx.revoke_all_app_passwords(id).await?;
        if !totp && app_passwords == 0 {
            return Err(AdminError::Conflict(format!("user {name:?} has no second factor and no app password: nothing to reset")));
        }
        tx.end_sessions(id).await?;
        let detail = format!("totp={} app-passwords-revoked={app_passwords}", if totp { "removed" } else { "none" });
        audit_in(&mut tx, actor, "user.two-factor-reset", format!("user:{name}"), Some(detail)).await?;
        tx.commit().await?;
        Ok(TwoFactorReset { totp, app_passwords })
    }

    /// Unlock: lifts both an officer's lock and a temporary lockout after failed logins.
    pub async fn unlock_user(&self, name: &str, actor: &str) -> Result<(), AdminError> {
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        tx.unlock_user(id).await?;
        audit_in(&mut tx, actor, "user.unlock", format!("user:{name}"), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove: the user's sessions, roles and reading state go; cases assigned to them become
    /// unassigned; the audit log keeps every entry about them.
    pub async fn remove_user(&self, name: &str, actor: &str) -> Result<(), AdminError> {
        let mut tx = self.store.begin_write().await?;
        let id = user_id(&mut tx, name).await?;
        tx.remove_user(id).await?;
        audit_in(&mut tx, actor, "user.remove", format!("user:{name}"), None).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_role(&self, name: &str, description: &str, actor: &str) -> Result<(), AdminError> {
        check_role_name(name).map_err(AdminError::Invalid)?;
        let mut tx = self.store.begin_write().await?;
        if !tx.insert_role(name, description, now_millis()).await? {
            return Err(AdminError::Exists(format!("role {name:?}")));
        }
        audit_in(&mut tx, actor, "role.add", format!("role:{name}"), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What any grant must satisfy, whoever asks.
    pub(crate) fn check_grant(&self, role: &str, queue: &str, permissions: &[Permission]) -> Result<(), AdminError> {
        self.known_queue(queue)?;
        if role == SECURITY_OFFICER {
            return Err(AdminError::Invalid(
                "the security-officer role gets no queue permissions (separation of duties): give the user a second role".into(),
            ));
        }
        if permissions.is_empty() {
            return Err(AdminError::Invalid("name at least one permission (read, act, assign, supervise, review)".into()));
        }
        Ok(())
    }

    /// Grants permissions on a queue (or "*") to a role.
    pub async fn grant(&self, role: &str, queue: &str, permissions: &[Permission], actor: &str) -> Result<(), AdminError> {
        self.check_grant(role, queue, permissions)?;
        let mut tx = self.store.begin_write().await?;
        role_exists(&mut tx, role).await?;
        self.grant_in(&mut tx, role, queue, permissions, actor, "").await?;
        tx.commit().await?;
        self.store.changed();
        Ok(())
    }

    /// The grant itself, audited by `actor` (with `extra` appended to the detail: an approval).
    pub(crate) async fn grant_in(
        &self,
        tx: &mut Tx,
        role: &str,
        queue: &str,
        permissions: &[Permission],
        actor: &str,
        extra: &str,
    ) -> Result<(), AdminError> {
        for p in permissions {
            tx.add_grant(role, queue, p.as_str()).await?;
        }
        let list: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        let detail = format!("queue={queue} permissions={}{extra}", list.join(","));
        audit_in(tx, actor, "role.grant", format!("role:{role}"), Some(detail)).await?;
        Ok(())
    }

    /// Revokes permissions (all of them on the queue when `permissions` is empty).
    pub async fn revoke(&self, role: &str, queue: &str, permissions: &[Permission], actor: &str) -> Result<(), AdminError> {
        let mut tx = self.store.begin_write().await?;
        role_exists(&mut tx, role).await?;
        if permissions.is_empty() {
            tx.remove_grant(role, queue, None).await?;
        }
        for p in permissions {
            tx.remove_grant(role, queue, Some(p.as_str())).await?;
        }
        let list: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        let detail = if list.is_empty() {
            format!("queue={queue} permissions=all")
        } else {
            format!("queue={queue} permissions={}", list.join(","))
        };
        audit_in(&mut tx, actor, "role.revoke", format!("role:{role}"), Some(detail)).await?;
        tx.commit().await?;
        self.store.changed();
        Ok(())
    }

    /// Gives a user a role.
    pub async fn assign_role(&self, role: &str, user: &str, actor: &str) -> Result<(), AdminError> {
        let mut tx = self.store.begin_write().await?;
        role_exists(&mut tx, role).await?;
        let id = user_id(&mut tx, user).await?;
        self.assign_in(&mut tx, role, id, user, actor, "").await?;
        tx.commit().await?;
        self.store.changed();
        Ok(())
    }

    /// The membership itself, audited by `actor` (with `extra` appended: an approval).
    pub(crate) async fn assign_in(&self, tx: &mut Tx, role: &str, id: i64, user: &str, actor: &str, extra: &str) -> Result<(), AdminError> {
        tx.add_membership(id, role).await?;
        audit_in(tx, actor, "role.assign", format!("role:{role}"), Some(format!("user={user}{extra}"))).await?;
        Ok(())
    }

    /// Takes a role away from a user.
    pub async fn unassign_role(&self, role: &str, user: &str, actor: &str) -> Result<(), AdminError> {
        let mut tx = self.store.begin_write().await?;
        role_exists(&mut tx, role).await?;
        let id = user_id(&mut tx, user).await?;
        tx.remove_membership(id, role).await?;
        audit_in(&mut tx, actor, "role.unassign", format!("role:{role}"), Some(format!("user={user}"))).await?;
        tx.commit().await?;
        self.store.changed();
        Ok(())
    }

    pub async fn list_roles(&self) -> Result<Vec<RoleInfo>, AdminError> {
        let listed = crate::store::roles::list(&self.store).await?;
        let mut roles: BTreeMap<String, RoleInfo> = BTreeMap::new();
        for (name, description) in listed.roles {
            roles.insert(name.clone(), RoleInfo { name, description, grants: BTreeMap::new(), members: vec![] });
        }
        for (role, queue, permission) in listed.grants {
            if let (Some(role), Ok(p)) = (roles.get_mut(&role), permission.parse()) {
                role.grants.entry(queue).or_default().insert(p);
            }
        }
        for (role, user) in listed.members {
            if let Some(role) = roles.get_mut(&role) {
                role.members.push(user);
            }
        }
        Ok(roles.into_values().collect())
    }

    /// Creates the roles named in the config that the database does not have yet (first start).
    /// Roles that exist are left alone: after the first start, the officer's changes count.
    pub async fn seed_roles(&self) -> Result<(), AdminError> {
        for role in self.setup.roles.load_full().iter() {
            let mut tx = self.store.begin_write().await?;
            if !tx.insert_role(&role.name, &role.description, now_millis()).await? {
                continue;
            }
            for (queue, permissions) in &role.grants {
                for p in permissions {
                    tx.add_grant(&role.name, queue, p).await?;
                }
            }
            audit_in(&mut tx, "config", "role.add", format!("role:{}", role.name), Some("seeded from the configuration".into())).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

/// A plain `local@domain` address (what an SMTP envelope takes): no display name, no spaces.
pub fn check_email(email: &str) -> Result<(), String> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.contains('@') && (domain.contains('.') || domain == "localhost"))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    if ok { Ok(()) } else { Err(format!("{email:?} is not an address such as anna@example.org")) }
}
