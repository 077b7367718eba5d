//! Second-person approval: a change that would open a queue's mail to someone takes effect only
//! when a second person approves it.
//!
//! Held back (with `[access] grant_approval = "second-person"`, the default) when an officer asks
//! over HTTP: giving a user a role that has queue grants, granting `read` to a role that has
//! members, making someone a security officer (an officer is an approver: a second officer
//! account in one person's hands would defeat the rule), and resetting the password of someone
//! who can read a queue or is an officer (the code would let the officer log in as him: see
//! `resets`). The change is stored as pending and
//! applies, in the transaction that records the decision, when another security officer or a
//! supervisor (`supervise`) of every queue concerned approves it — never the requester, never an
//! account that gains the access, never an account whose password was set with a code the
//! requester issued. Removing access never waits. The host (CLI, `[[roles]]` at first start) acts
//! directly.

use std::collections::BTreeSet;

use super::admin::{AdminError, By, Touches, audit_in, role_exists, user_id};
use super::config::GrantApproval;
use super::enrolment::prepare;
use super::{Access, Permission, Principal, SECURITY_OFFICER};
use crate::store::approvals::ChangeRow;
use crate::store::tx::Tx;
use crate::store::{StoreError, millis_to_rfc3339, now_millis};

pub const ASSIGN: &str = "role.assign";
pub const GRANT: &str = "role.grant";
pub const RESET: &str = "user.reset";

/// A pending (or decided) change, as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub id: i64,
    /// `role.assign` (user gains role), `role.grant` (role gains permissions on queue) or
    /// `user.reset` (the user's password is reset; the code goes to the requester).
    pub kind: String,
    /// None for a reset.
    pub role: Option<String>,
    pub user: Option<String>,
    pub queue: Option<String>,
    pub permissions: Vec<Permission>,
    /// Queues whose mail the change concerns ("*": every queue); empty for the officer role.
    pub queues: Vec<String>,
    pub requested_by: String,
    pub requested_at: String,
    /// pending, approved or rejected.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// An approved reset's enrolment code: `ready` (for the requester to collect, once),
    /// `collected`, or `void` (expired before it was collected); None for other changes.
    pub code: Option<&'static str>,
}

/// What an officer's request led to.
#[derive(Debug)]
pub enum Outcome {
    Applied,
    Pending(Box<Change>),
}

/// What an officer asks for, before it is stored.
struct Request<'a> {
    kind: &'static str,
    /// "" for a reset.
    role: &'a str,
    /// role.assign: (id, name) of the account that gains the role; user.reset: the account reset.
    user: Option<(i64, &'a str)>,
    /// role.grant: the queue (or "*") and the permissions.
    queue: Option<&'a str>,
    permissions: Vec<Permission>,
}

/// Whose approval a change needs.
pub(crate) struct Concern {
    queues: BTreeSet<String>,
    /// Makes someone a security officer: only another officer decides.
    officer_role: bool,
}

pub(crate) struct Stored {
    pub id: i64,
    pub kind: String,
    pub role: String,
    pub user_id: Option<i64>,
    pub user_name: Option<String>,
    queue: Option<String>,
    permissions: Vec<Permission>,
    pub requester_id: i64,
    pub requester: String,
    requested_at: i64,
    pub status: String,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    /// A reset's sealed code still waits for the requester.
    pub code_sealed: bool,
    pub code_expires_at: Option<i64>,
    pub code_collected_at: Option<i64>,
}

impl Stored {
    fn from_row(r: ChangeRow) -> Stored {
        Stored {
            id: r.id,
            kind: r.kind,
            role: r.role,
            user_id: r.user_id,
            user_name: r.user_name,
            queue: r.queue,
            permissions: r.permissions.map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect()).unwrap_or_default(),
            requester_id: r.requester_id,
            requester: r.requester,
            requested_at: r.requested_at,
            status: r.status,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            code_sealed: r.code_sealed,
            code_expires_at: r.code_expires_at,
            code_collected_at: r.code_collected_at,
        }
    }

    /// The state of an approved reset's code, as listed.
    fn code_state(&self) -> Option<&'static str> {
        if self.kind != RESET || self.status != "approved" {
            return None;
        }
        Some(if self.code_collected_at.is_some() {
            "collected"
        } else if self.code_sealed && self.code_expires_at.is_some_and(|e| e > now_millis()) {
            "ready"
        } else {
            "void"
        })
    }

    fn describe(&self) -> String {
        match self.kind.as_str() {
            ASSIGN => format!("kind={ASSIGN} role={} user={}", self.role, self.user_name.as_deref().unwrap_or("?")),
            RESET => format!("kind={RESET} user={}", self.user_name.as_deref().unwrap_or("?")),
            _ => format!(
                "kind={GRANT} role={} queue={} permissions={}",
                self.role,
                self.queue.as_deref().unwrap_or("?"),
                self.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
            ),
        }
    }

    pub(crate) fn into_change(self, concern: &Concern) -> Change {
        let code = self.code_state();
        Change {
            id: self.id,
            kind: self.kind,
            role: (!self.role.is_empty()).then_some(self.role),
            user: self.user_name,
            queue: self.queue,
            permissions: self.permissions,
            queues: concern.queues.iter().cloned().collect(),
            requested_by: self.requester,
            requested_at: millis_to_rfc3339(self.requested_at),
            status: self.status,
            decided_by: self.decided_by,
            decided_at: self.decided_at.map(millis_to_rfc3339),
            code,
        }
    }
}

/// Queues on which a role has any grant.
async fn role_queues(tx: &mut Tx, role: &str) -> Result<BTreeSet<String>, StoreError> {
    Ok(tx.role_queues(role).await?.into_iter().collect())
}

pub(crate) async fn concern(tx: &mut Tx, change: &Stored) -> Result<Concern, StoreError> {
    Ok(match change.kind.as_str() {
        ASSIGN => Concern { queues: role_queues(tx, &change.role).await?, officer_role: change.role == SECURITY_OFFICER },
        // What the account can open now: a code for it opens the same to whoever holds the code.
        RESET => {
            let user = change.user_id.unwrap_or_default();
            Concern { queues: readable_queues(tx, user).await?, officer_role: is_officer(tx, user).await? }
        }
        _ => Concern { queues: change.queue.iter().cloned().collect(), officer_role: false },
    })
}

/// Queues (or "*") on which an account has `read`, through any of its roles.
pub(crate) async fn readable_queues(tx: &mut Tx, user_id: i64) -> Result<BTreeSet<String>, StoreError> {
    Ok(tx.readable_queues(user_id).await?.into_iter().collect())
}

pub(crate) async fn is_officer(tx: &mut Tx, user_id: i64) -> Result<bool, StoreError> {
    tx.is_member(user_id, SECURITY_OFFICER).await
}

/// The accounts a change gives access to: the user for a membership (or the account reset), the
/// role's members for a grant.
async fn beneficiaries(tx: &mut Tx, change: &Stored) -> Result<Vec<i64>, StoreError> {
    match change.kind.as_str() {
        ASSIGN | RESET => Ok(change.user_id.into_iter().collect()),
        _ => tx.role_members(&change.role).await,
    }
}

/// A supervisor (not an officer) may decide a change only if he supervises every queue it
/// concerns; a change that concerns no queue (the officer role) is for officers only.
fn supervises_all(p: &Principal, concern: &Concern) -> bool {
    !concern.officer_role && !concern.queues.is_empty() && concern.queues.iter().all(|q| p.can(q, Permission::Supervise))
}

impl Access {
    pub(crate) fn second_person(&self) -> bool {
        self.config().grant_approval == GrantApproval::SecondPerson
    }

    /// Giving someone this role opens mail (the role has queue grants) or makes him an approver.
    pub(crate) async fn assign_needs_approval(&self, tx: &mut Tx, role: &str) -> Result<bool, AdminError> {
        Ok(role == SECURITY_OFFICER || !role_queues(tx, role).await?.is_empty())
    }

    async fn grant_needs_approval(&self, tx: &mut Tx, role: &str, permissions: &[Permission]) -> Result<bool, AdminError> {
        if !permissions.contains(&Permission::Read) {
            return Ok(false);
        }
        Ok(tx.member_count(role).await? > 0)
    }

    /// Stores a pending change (or finds the identical one already pending) and audits the request.
    async fn hold_in(&self, tx: &mut Tx, by: &Principal, request: Request<'_>) -> Result<Change, AdminError> {
        let mut permissions = request.permissions;
        permissions.sort();
        permissions.dedup();
        let permissions = (!permissions.is_empty()).then(|| permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","));
        let (user_id, user_name) = request.user.unzip();
        let stored_request = crate::store::approvals::Request {
            kind: request.kind,
            role: request.role,
            user_id,
            user_name,
            queue: request.queue,
            permissions: permissions.as_deref(),
        };
        let (id, new) = tx.hold_change(&stored_request, by.user_id, &by.name, now_millis()).await?;
        let stored = self.change_in(tx, id).await?.ok_or(AdminError::NoSuchChange(id))?;
        if new {
            let detail = format!("{} (waits for a second person)", stored.describe());
            audit_in(tx, &by.actor(), "change.requested", format!("change:{id}"), Some(detail)).await?;
        }
        let concern = concern(tx, &stored).await?;
        Ok(stored.into_change(&concern))
    }

    pub(crate) async fn hold_assign_in(
        &self,
        tx: &mut Tx,
        by: &Principal,
        role: &str,
        user_id: i64,
        user: &str,
    ) -> Result<Change, AdminError> {
        let request = Request { kind: ASSIGN, role, user: Some((user_id, user)), queue: None, permissions: vec![] };
        self.hold_in(tx, by, request).await
    }

    pub(crate) async fn hold_reset_in(&self, tx: &mut Tx, by: &Principal, user_id: i64, user: &str) -> Result<Change, AdminError> {
        let request = Request { kind: RESET, role: "", user: Some((user_id, user)), queue: None, permissions: vec![] };
        self.hold_in(tx, by, request).await
    }

    pub(crate) async fn change_in(&self, tx: &mut Tx, id: i64) -> Result<Option<Stored>, StoreError> {
        Ok(tx.change(id).await?.map(Stored::from_row))
    }

    /// An officer gives `user` the role `role`: refused for himself; held for approval when it
    /// opens mail; applied otherwise.
    pub async fn request_assign(&self, by: &Principal, role: &str, user: &str) -> Result<Outcome, AdminError> {
        self.refuse_own(by, ASSIGN, Touches::Membership { role, user }).await?;
        let mut tx = self.store.begin_write().await?;
        role_exists(&mut tx, role).await?;
        let id = user_id(&mut tx, user).await?;
        let member = tx.is_member(id, role).await?;
        let outcome = if !member && self.second_person() && self.assign_needs_approval(&mut tx, role).await? {
            Outcome::Pending(Box::new(self.hold_assign_in(&mut tx, by, role, id, user).await?))
        } else {
            self.assign_in(&mut tx, role, id, user, &by.actor(), "").await?;
            Outcome::Applied
        };
        tx.commit().await?;
        self.store.changed();
        Ok(outcome)
    }

    /// An officer grants permissions to a role: refused on a role he holds; held for approval
    /// when it gives `read` to a role with members; applied otherwise.
    pub async fn request_grant(&self, by: &Principal, role: &str, queue: &str, permissions: &[Permission]) -> Result<Outcome, AdminError> {
        self.check_grant(role, queue, permissions)?;
        self.refuse_own(by, GRANT, Touches::Grants(role)).await?;
        let mut tx = self.store.begin_write().await?;
        role_exists(&mut tx, role).await?;
        let outcome = if self.second_person() && self.grant_needs_approval(&mut tx, role, permissions).await? {
            let request = Request { kind: GRANT, role, user: None, queue: Some(queue), permissions: permissions.to_vec() };
            Outcome::Pending(Box::new(self.hold_in(&mut tx, by, request).await?))
        } else {
            self.grant_in(&mut tx, role, queue, permissions, &by.actor(), "").await?;
            Outcome::Applied
        };
        tx.commit().await?;
        self.store.changed();
        Ok(outcome)
    }

    /// Changes with the given status (`pending`, `approved`, `rejected`, or None for all), newest
    /// last. Staff who are not officers see only those they may decide (their queues).
    pub async fn list_changes(&self, viewer: By<'_>, status: Option<&str>) -> Result<Vec<Change>, AdminError> {
        let mut conn = self.store.begin_read().await?;
        let rows = conn.changes(status).await?;
        let mut out = Vec::new();
        for row in rows {
            let row = Stored::from_row(row);
            let concern = concern(&mut conn, &row).await?;
            let visible = match viewer {
                By::Host(_) => true,
                By::Staff(p) => p.officer || supervises_all(p, &concern),
            };
            if visible {
                out.push(row.into_change(&concern));
            }
        }
        Ok(out)
    }

    /// Approves (applies) or rejects a pending change. Staff are checked: see the module comment.
    /// A rejection may also come from the requester (withdrawing it).
    pub async fn decide_change(&self, by: By<'_>, id: i64, approve: bool) -> Result<Change, AdminError> {
        let verb = if approve { "approve" } else { "reject" };
        // An approved reset issues a code: its argon2 work is done before the write transaction.
        let kind = crate::store::approvals::kind(&self.store, id).await?;
        let mut prepared = match kind.as_deref() {
            Some(RESET) if approve => Some(prepare().await?),
            _ => None,
        };
        let mut tx = self.store.begin_write().await?;
        let change = self.change_in(&mut tx, id).await?.ok_or_else(|| AdminError::NoSuchChange(id))?;
        if change.status != "pending" {
            return Err(AdminError::Conflict(format!("change {id} is already {}", change.status)));
        }
        let concern = concern(&mut tx, &change).await?;
        if let By::Staff(p) = by
            && let Err(reason) = self.may_decide(&mut tx, p, &change, &concern, approve).await?
        {
            audit_in(&mut tx, &p.actor(), "admin.refused", format!("change:{id}"), Some(format!("attempt=change.{verb} reason={reason}")))
                .await?;
            tx.commit().await?;
            return Err(AdminError::Forbidden(refusal(reason, &change, &concern)));
        }
        let decider = by.actor();
        let requester = format!("user:{}", change.requester);
        if approve {
            let extra = format!(" approved_by={decider} change={id}");
            match change.kind.as_str() {
                ASSIGN => {
                    let name = change.user_name.as_deref().unwrap_or_default();
                    role_exists(&mut tx, &change.role).await?;
                    let user = user_id(&mut tx, name).await?;
                    if Some(user) != change.user_id {
                        return Err(AdminError::Conflict(format!("user {name:?} was removed since the change was requested; reject it")));
                    }
                    self.assign_in(&mut tx, &change.role, user, name, &requester, &extra).await?;
                }
                RESET => {
                    let name = change.user_name.as_deref().unwrap_or_default();
                    let user = user_id(&mut tx, name).await?;
                    if Some(user) != change.user_id {
                        return Err(AdminError::Conflict(format!("user {name:?} was removed since the reset was requested; reject it")));
                    }
                    let prepared = prepared.take().ok_or_else(|| AdminError::Conflict(format!("change {id} changed kind; try again")))?;
                    self.apply_reset_in(&mut tx, id, user, name, prepared, &requester, &extra).await?;
                }
                _ => {
                    let queue = change.queue.as_deref().unwrap_or_default();
                    self.check_grant(&change.role, queue, &change.permissions)?;
                    role_exists(&mut tx, &change.role).await?;
                    self.grant_in(&mut tx, &change.role, queue, &change.permissions, &requester, &extra).await?;
                }
            }
        }
        let status = if approve { "approved" } else { "rejected" };
        tx.decide_change(id, status, &decider, now_millis()).await?;
        let detail = format!("{} requested_by={requester}", change.describe());
        audit_in(&mut tx, &decider, &format!("change.{status}"), format!("change:{id}"), Some(detail)).await?;
        let decided = self.change_in(&mut tx, id).await?.ok_or(AdminError::NoSuchChange(id))?;
        tx.commit().await?;
        self.store.changed();
        Ok(decided.into_change(&concern))
    }

    /// Ok(Ok) when `p` may decide; Ok(Err(reason code)) when not.
    async fn may_decide(
        &self,
        tx: &mut Tx,
        p: &Principal,
        change: &Stored,
        concern: &Concern,
        approve: bool,
    ) -> Result<Result<(), &'static str>, AdminError> {
        if p.user_id == change.requester_id {
            return Ok(if approve { Err("requester") } else { Ok(()) });
        }
        if approve {
            if beneficiaries(tx, change).await?.contains(&p.user_id) {
                return Ok(Err("beneficiary"));
            }
            let issuer = tx.password_issuer(p.user_id).await?;
            if issuer.is_some_and(|i| i == format!("user:{}", change.requester)) {
                return Ok(Err("enrolled-by-requester"));
            }
        }
        Ok(if p.officer || supervises_all(p, concern) { Ok(()) } else { Err("not-an-approver") })
    }
}

/// The sentence a refused decider reads.
fn refusal(reason: &str, change: &Stored, concern: &Concern) -> String {
    let id = change.id;
    match reason {
        "requester" => {
            format!("you requested change {id}: another security officer or a supervisor of the queues concerned must approve it")
        }
        "beneficiary" if change.kind == RESET => format!("change {id} resets your own password: someone else must approve it"),
        "beneficiary" => format!("change {id} gives you this access: someone it does not benefit must approve it"),
        "enrolled-by-requester" => format!(
            "your password was set with an enrolment code that {} issued, so you may not approve {}'s changes: ask another officer",
            change.requester, change.requester
        ),
        _ if concern.officer_role && change.kind == RESET => {
            format!("change {id} resets a security officer's password: only another security officer decides it")
        }
        _ if concern.officer_role => format!("change {id} makes someone a security officer: only another security officer decides it"),
        _ => format!(
            "only a security officer or a supervisor of every queue concerned ({}) may decide change {id}",
            concern.queues.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}
