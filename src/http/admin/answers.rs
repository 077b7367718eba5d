//! What the admin endpoints answer. The old answers were `json!` values, whose keys serde_json
//! sorts: every struct here lists its fields in alphabetical order so the wire bytes stay the
//! same. The access types are converted field for field (the document describes these).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::access::Permission;
use crate::access::admin::{RoleInfo, UserInfo};
use crate::access::approvals::{ASSIGN, GRANT, RESET};
use crate::access::enrolment::{EnrolmentCode, NewAccount as Account};
use crate::access::resets::CollectedCode as Collected;
use crate::http::validate::permission_schema;
use crate::store::audit::{ChainCheck, ListedEntry};

fn permissions_schema() -> ArrayBuilder {
    ArrayBuilder::new().items(permission_schema())
}

fn nullable_time() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// A user, as officers see him.
#[derive(Serialize, ToSchema)]
pub struct User {
    #[schema(format = DateTime)]
    created_at: String,
    /// Where notifications are mailed; null: the web page only.
    #[schema(required = true, nullable = true)]
    email: Option<String>,
    #[schema(required = true, schema_with = nullable_time)]
    enrolment_expires_at: Option<String>,
    enrolment_pending: bool,
    failed_logins: i64,
    locked: bool,
    #[schema(required = true, schema_with = nullable_time)]
    locked_out_until: Option<String>,
    name: String,
    #[schema(format = DateTime)]
    password_changed_at: String,
    roles: Vec<String>,
}

impl From<UserInfo> for User {
    fn from(u: UserInfo) -> Self {
        User {
            created_at: u.created_at,
            email: u.email,
            enrolment_expires_at: u.enrolment_expires_at,
            enrolment_pending: u.enrolment_pending,
            failed_logins: u.failed_logins,
            locked: u.locked,
            locked_out_until: u.locked_out_until,
            name: u.name,
            password_changed_at: u.password_changed_at,
            roles: u.roles,
        }
    }
}

// `GET /api/admin/users`.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

fn grants_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(permissions_schema())).build()
}

/// A role with its grants and members.
#[derive(Serialize, ToSchema)]
pub struct Role {
    description: String,
    /// queue (or *) → permissions
    #[schema(schema_with = grants_schema)]
    grants: BTreeMap<String, BTreeSet<Permission>>,
    members: Vec<String>,
    name: String,
}

impl From<RoleInfo> for Role {
    fn from(r: RoleInfo) -> Self {
        Role { description: r.description, grants: r.grants, members: r.members, name: r.name }
    }
}

// `GET /api/admin/roles`.
#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<Role>,
}

// `POST /api/admin/roles`: the role created.
#[derive(Serialize, ToSchema)]
pub struct NewRole {
    pub description: String,
    pub name: String,
}

/// A one-time enrolment code (its fields are already in alphabetical order).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Enrolment(pub EnrolmentCode);

impl PartialSchema for Enrolment {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("a one-time code, shown once: pass it on to the user"))
            .property("code", ObjectBuilder::new().schema_type(Type::String))
            .required("code")
            .property(
                "expires_at",
                ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .required("expires_at")
            .into()
    }
}

impl ToSchema for Enrolment {}

fn kind_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some([ASSIGN, GRANT, RESET])).build()
}

fn change_status_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["pending", "approved", "rejected"])).build()
}

fn code_state_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([Some("ready"), Some("collected"), Some("void"), None]))
        .description(Some(
            "an approved reset's code: ready for its requester to collect (once), collected, or void (expired or replaced first); null for other changes",
        ))
        .build()
}

fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

fn role_of_change_schema() -> Object {
    nullable_string().description(Some("null for a reset")).build()
}

/// An access change waiting for (or decided by) a second person.
#[derive(Serialize, ToSchema)]
pub struct Change {
    #[schema(required = true, schema_with = code_state_schema)]
    code: Option<&'static str>,
    #[schema(required = true, schema_with = nullable_time)]
    decided_at: Option<String>,
    #[schema(required = true)]
    decided_by: Option<String>,
    id: i64,
    #[schema(schema_with = kind_schema)]
    kind: String,
    #[schema(schema_with = permissions_schema)]
    permissions: Vec<Permission>,
    #[schema(required = true)]
    queue: Option<String>,
    /// queues concerned (* = every queue)
    queues: Vec<String>,
    #[schema(format = DateTime)]
    requested_at: String,
    requested_by: String,
    #[schema(required = true, schema_with = role_of_change_schema)]
    role: Option<String>,
    #[schema(schema_with = change_status_schema)]
    status: String,
    #[schema(required = true)]
    user: Option<String>,
}

impl From<crate::access::approvals::Change> for Change {
    fn from(c: crate::access::approvals::Change) -> Self {
        Change {
            code: c.code,
            decided_at: c.decided_at,
            decided_by: c.decided_by,
            id: c.id,
            kind: c.kind,
            permissions: c.permissions,
            queue: c.queue,
            queues: c.queues,
            requested_at: c.requested_at,
            requested_by: c.requested_by,
            role: c.role,
            status: c.status,
            user: c.user,
        }
    }
}

// `GET /api/admin/changes`.
#[derive(Serialize, ToSchema)]
pub struct ChangeList {
    pub changes: Vec<Change>,
}

// A change after approval or rejection.
#[derive(Serialize, ToSchema)]
pub struct Decided {
    pub change: Change,
}

/// 202: the change waits for a second person; nothing applied yet.
#[derive(Serialize, ToSchema)]
pub struct Pending {
    pub change: Change,
    pub pending: bool,
}

impl Pending {
    pub fn new(change: crate::access::approvals::Change) -> Self {
        Pending { change: change.into(), pending: true }
    }
}

/// A new account: its enrolment code, the roles given at once, those waiting for approval.
#[derive(Serialize, ToSchema)]
pub struct NewAccount {
    enrolment: Enrolment,
    name: String,
    /// roles waiting for approval
    pending: Vec<Change>,
    /// applied now
    roles: Vec<String>,
}

impl From<Account> for NewAccount {
    fn from(a: Account) -> Self {
        NewAccount {
            enrolment: Enrolment(a.enrolment),
            name: a.name,
            pending: a.pending.into_iter().map(Change::from).collect(),
            roles: a.roles,
        }
    }
}

/// A reset applied at once: the user's new enrolment code.
#[derive(Serialize, ToSchema)]
pub struct Reset {
    pub enrolment: Enrolment,
    pub name: String,
}

/// An approved reset's code, collected by its requester.
#[derive(Serialize, ToSchema)]
pub struct CollectedCode {
    change: Change,
    enrolment: Enrolment,
    name: String,
}

impl From<Collected> for CollectedCode {
    fn from(c: Collected) -> Self {
        CollectedCode { change: c.change.into(), enrolment: Enrolment(c.enrolment), name: c.name }
    }
}

/// One audit entry.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditPage_entries)]
pub struct AuditEntry {
    action: String,
    actor: String,
    #[schema(format = DateTime)]
    at: String,
    #[schema(required = true)]
    detail: Option<String>,
    pub id: i64,
    #[schema(required = true)]
    object: Option<String>,
}

impl From<ListedEntry> for AuditEntry {
    fn from(e: ListedEntry) -> Self {
        AuditEntry { action: e.action, actor: e.actor, at: e.at, detail: e.detail, id: e.id, object: e.object }
    }
}

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// null on the last page
    #[schema(required = true)]
    pub next_after: Option<i64>,
}

/// The audit chain re-computed: `entries` and `head` when intact, `broken_at` and `reason` when not.
#[derive(Serialize, ToSchema)]
pub struct AuditCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    head: Option<String>,
    intact: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reason: Option<String>,
}

impl From<ChainCheck> for AuditCheck {
    fn from(check: ChainCheck) -> Self {
        match check {
            ChainCheck::Intact { entries, head } => AuditCheck {
                broken_at: None,
                entries: Some(entries),
                head: Some(head.iter().map(|b| format!("{b:02x}")).collect()),
                intact: true,
                reason: None,
            },
            ChainCheck::Broken { id, reason } => {
                AuditCheck { broken_at: Some(id), entries: None, head: None, intact: false, reason: Some(reason) }
            }
        }
    }
}
