//! The part of the OpenAPI document still written out by hand: the admin group's operations and
//! the answer schemas of the cases group (and the admin group's). `super::document_for` merges
//! it into the generated document; each group leaves this file as it is converted.

use serde_json::{Value, json};

/// Paths (`path → method → operation`) and component schemas to merge.
pub(super) struct Legacy {
    pub paths: serde_json::Map<String, Value>,
    pub schemas: Value,
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn path_param(name: &str, description: &str, kind: &str) -> Value {
    let schema = if kind == "string" { json!({ "type": kind, "minLength": 1 }) } else { json!({ "type": kind }) };
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// An operation. `errors` names entries of `components.responses` by status.
#[allow(clippy::too_many_arguments)]
fn op(
    id: &str,
    tag: &str,
    summary: &str,
    description: &str,
    params: Vec<Value>,
    body: Option<Value>,
    success: (&str, Value),
    errors: &[&str],
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(success.0.to_string(), success.1);
    for status in errors {
        let name = match *status {
            "400" => "BadRequest",
            "401" => "Unauthenticated",
            "403" => "Forbidden",
            "404" => "NotFound",
            "409" => "Conflict",
            "413" => "TooLarge",
            "415" => "UnsupportedMediaType",
            "422" => "Invalid",
            "429" => "Throttled",
            "503" => "Unavailable",
            other => panic!("no shared response for {other}"),
        };
        responses.insert(status.to_string(), error(name));
    }
    let mut o = json!({ "operationId": id, "tags": [tag], "summary": summary, "description": description, "responses": responses });
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(body) = body {
        o["requestBody"] = body;
    }
    o
}

const CHANGE_ERRORS: &[&str] = &["400", "401", "403", "404", "413", "415", "422"];

/// A closed object (an empty `required` or `properties` is left out, as the typed model writes it).
fn object(required: &[&str], properties: Value) -> Value {
    let mut o = json!({ "type": "object", "additionalProperties": false });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    if properties.as_object().is_some_and(|p| !p.is_empty()) {
        o["properties"] = properties;
    }
    o
}

/// Adds the 202 answer of a change that waits for a second person's approval.
fn pending_too(mut operation: Value) -> Value {
    operation["responses"]["202"] = ok("held for a second person's approval (nothing applied yet)", schema("Pending"));
    operation
}

/// The pending changes (issue #8).
fn approval_operations() -> Vec<(&'static str, &'static str, Value)> {
    let write = |mut o: Value| {
        o["security"] = json!([{ "cookie": [], "csrf": [] }, { "bearer": [] }]);
        o
    };
    let who = "Security officers see every change; a supervisor sees those concerning only queues he supervises (403 for anyone else).";
    let id = || {
        vec![
            json!({ "name": "id", "in": "path", "required": true, "description": "change id", "schema": { "type": "integer", "format": "int64", "minimum": 1 } }),
        ]
    };
    let decide = |operation_id: &str, summary: &str, description: &str| {
        write(op(
            operation_id,
            "admin",
            summary,
            description,
            id(),
            None,
            ("200", ok("decided", json!({ "type": "object", "properties": { "change": schema("Change") } }))),
            &["400", "401", "403", "404", "409"],
        ))
    };
    vec![
        (
            "/api/admin/changes",
            "get",
            op(
                "listChanges",
                "admin",
                "Access changes waiting for (or decided by) a second person",
                who,
                vec![query_param(
                    "status",
                    "which changes",
                    json!({ "type": "string", "enum": crate::http::admin::CHANGE_STATUSES, "default": "pending" }),
                )],
                None,
                (
                    "200",
                    ok("changes", json!({ "type": "object", "properties": { "changes": { "type": "array", "items": schema("Change") } } })),
                ),
                &["400", "401", "403", "422"],
            ),
        ),
        (
            "/api/admin/changes/{id}/approve",
            "post",
            decide(
                "approveChange",
                "Approve (and so apply) a pending change",
                "By another security officer, or a supervisor of every queue the change concerns (a change to the security-officer role: \
                 officers only). Never by the requester, never by an account that gains the access, never by an account whose password \
                 was set with a code the requester issued (403). Audited with both names. 409 when already decided.",
            ),
        ),
        (
            "/api/admin/changes/{id}/reject",
            "post",
            decide(
                "rejectChange",
                "Reject a pending change",
                "It never applies. By whoever could approve it, or by the requester (withdrawing it). Audited with both names. 409 when \
                 already decided.",
            ),
        ),
        (
            "/api/admin/changes/{id}/code",
            "post",
            write(op(
                "collectResetCode",
                "admin",
                "Collect the enrolment code of an approved reset (once)",
                "Security officers only, and only the one who requested the reset (403 for anyone else, the approver included; \
                 audited). The code is issued when the reset is approved and kept sealed until this call, which shows it once: 409 \
                 afterwards, and 409 for a change that is not an approved reset or whose code expired or was replaced by a newer \
                 reset. Pass it on to the user, who sets his password with POST /api/enrol.",
                id(),
                None,
                ("200", ok("the code, shown this once", schema("CollectedCode"))),
                &["400", "401", "403", "404", "409"],
            )),
        ),
    ]
}

/// The operations and schemas of the route groups not yet generated.
pub(super) fn operations() -> Legacy {
    let mut paths = serde_json::Map::new();
    let mut put = |path: &str, method: &str, operation: Value| {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    };
    let admin_write = |mut o: Value| {
        o["security"] = json!([{ "cookie": [], "csrf": [] }, { "bearer": [] }]);
        o
    };

    let officer = "Security officers only (403 for everyone else).";
    put(
        "/api/admin/users",
        "get",
        op(
            "listUsers",
            "admin",
            "Users",
            officer,
            vec![],
            None,
            ("200", ok("users", json!({ "type": "object", "properties": { "users": { "type": "array", "items": schema("User") } } }))),
            &["401", "403"],
        ),
    );
    put(
        "/api/admin/users",
        "post",
        pending_too(admin_write(op(
            "addUser",
            "admin",
            "Create a user (with a one-time enrolment code)",
            "Security officers only. The account has no password: the answer carries a one-time enrolment code (shown once) that the \
             user sets his own password with (POST /api/enrol). A password in the body is refused (422). Roles that open a queue's mail \
             (or the security-officer role) wait for a second person's approval: then the answer is 202 and lists them under pending.",
            vec![],
            Some(json_body(object(
                &["name"],
                json!({ "name": crate::http::validate::name_schema(), "roles": { "type": "array", "items": crate::http::validate::name_schema() } }),
            ))),
            ("201", ok("created; every role applied", schema("NewAccount"))),
            &["400", "401", "403", "404", "409", "413", "415", "422"],
        ))),
    );
    let name = || vec![path_param("name", "user name", "string")];
    put(
        "/api/admin/users/{name}/password",
        "post",
        pending_too(admin_write(op(
            "resetPassword",
            "admin",
            "Reset a user's password (with a one-time enrolment code)",
            "The old password stops working and the user's sessions end; the user sets a new one with a one-time enrolment code (POST \
             /api/enrol). For an account that reads no queue and is no officer it applies at once and the answer carries the code \
             (shown once). For an account that can read a queue's mail or is a security officer (and access.grant_approval = \
             second-person) it waits for a second person (202, nothing changes yet); once approved, the requester collects the code \
             with POST /api/admin/changes/{id}/code. Not your own account (403). No body (or {}); a password in the body is refused \
             (422).",
            name(),
            Some(json!({ "required": false, "content": { "application/json": { "schema": object(&[], json!({})) } } })),
            ("200", ok("reset", schema("Reset"))),
            CHANGE_ERRORS,
        ))),
    );
    put(
        "/api/admin/users/{name}/lock",
        "post",
        admin_write(op(
            "lockUser",
            "admin",
            "Lock a user",
            "No login; open sessions stop working at once. Not your own account (403).",
            name(),
            None,
            ("204", json!({ "description": "done" })),
            &["401", "403", "404", "422"],
        )),
    );
    put(
        "/api/admin/users/{name}/unlock",
        "post",
        admin_write(op(
            "unlockUser",
            "admin",
            "Unlock a user",
            "Also lifts a temporary lockout after failed logins. Not your own account (403).",
            name(),
            None,
            ("204", json!({ "description": "done" })),
            &["401", "403", "404"],
        )),
    );
    put(
        "/api/admin/users/{name}",
        "delete",
        admin_write(op(
            "removeUser",
            "admin",
            "Remove a user",
            "Their cases become unassigned; the audit log keeps their history. Not your own account (403).",
            name(),
            None,
            ("204", json!({ "description": "done" })),
            &["401", "403", "404", "422"],
        )),
    );
    put(
        "/api/admin/roles",
        "get",
        op(
            "listRoles",
            "admin",
            "Roles with grants and members",
            officer,
            vec![],
            None,
            ("200", ok("roles", json!({ "type": "object", "properties": { "roles": { "type": "array", "items": schema("Role") } } }))),
            &["401", "403"],
        ),
    );
    put(
        "/api/admin/roles",
        "post",
        admin_write(op(
            "addRole",
            "admin",
            "Create a role",
            officer,
            vec![],
            Some(json_body(object(
                &["name"],
                json!({ "name": crate::http::validate::name_schema(), "description": { "type": "string" } }),
            ))),
            ("201", ok("created", json!({ "type": "object" }))),
            &["400", "401", "403", "409", "413", "415", "422"],
        )),
    );
    let grant_body = || json_body(schema("Grant"));
    // Granting names at least one permission; revoking without any revokes them all.
    let permission = json!({ "type": "string", "enum": ["read", "act", "assign", "supervise"] });
    let new_grant_body = json_body(object(
        &["queue", "permissions"],
        json!({ "queue": { "type": "string", "minLength": 1 }, "permissions": { "type": "array", "minItems": 1, "items": permission } }),
    ));
    let role = || vec![path_param("role", "role name", "string")];
    put(
        "/api/admin/roles/{role}/grants",
        "post",
        pending_too(admin_write(op(
            "grant",
            "admin",
            "Grant permissions on a queue",
            "queue is a configured queue or *; the security-officer role gets none; not on a role you hold (403). Granting read to a \
             role that has members waits for a second person's approval (202).",
            role(),
            Some(new_grant_body),
            ("204", json!({ "description": "done" })),
            CHANGE_ERRORS,
        ))),
    );
    put(
        "/api/admin/roles/{role}/grants",
        "delete",
        admin_write(op(
            "revoke",
            "admin",
            "Revoke permissions on a queue",
            "Without permissions, all of them on the queue. Never waits for approval; not on a role you hold (403).",
            role(),
            Some(grant_body()),
            ("204", json!({ "description": "done" })),
            CHANGE_ERRORS,
        )),
    );
    put(
        "/api/admin/roles/{role}/members",
        "post",
        pending_too(admin_write(op(
            "addMember",
            "admin",
            "Give a user the role",
            "Security officers only; never yourself (403). A role with queue grants, or the security-officer role, waits for a second \
             person's approval (202).",
            role(),
            Some(json_body(object(&["user"], json!({ "user": crate::http::validate::name_schema() })))),
            ("204", json!({ "description": "done" })),
            CHANGE_ERRORS,
        ))),
    );
    put(
        "/api/admin/roles/{role}/members/{user}",
        "delete",
        admin_write(op(
            "removeMember",
            "admin",
            "Take the role from a user",
            "Security officers only; never yourself (403). Never waits for approval.",
            vec![path_param("role", "role name", "string"), path_param("user", "user name", "string")],
            None,
            ("204", json!({ "description": "done" })),
            &["401", "403", "404"],
        )),
    );
    put(
        "/api/admin/audit",
        "get",
        op(
            "auditLog",
            "admin",
            "Read the audit log",
            "Entries after `after`, oldest first; continue with next_after. Reading is itself audited (audit.read).",
            vec![
                query_param("after", "last id already read", json!({ "type": "integer", "default": 0 })),
                query_param(
                    "limit",
                    "entries per page",
                    json!({ "type": "integer", "minimum": 1, "maximum": crate::http::admin::AUDIT_MAX_LIMIT, "default": 100 }),
                ),
            ],
            None,
            ("200", ok("entries", schema("AuditPage"))),
            &["400", "401", "403", "422"],
        ),
    );
    put(
        "/api/admin/audit/verify",
        "get",
        op(
            "auditVerify",
            "admin",
            "Verify the audit chain",
            "Re-computes the keyed hash chain; names the first entry that does not fit.",
            vec![],
            None,
            ("200", ok("result", schema("AuditCheck"))),
            &["401", "403"],
        ),
    );

    for (path, method, operation) in approval_operations() {
        put(path, method, operation);
    }

    Legacy { paths, schemas: schemas() }
}

/// The component schemas (one `json!` each: a single literal this size exceeds the macro recursion limit).
fn schemas() -> Value {
    let nullable_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "Mailbox".into(),
        json!({ "type": "object", "properties": { "name": { "type": ["string", "null"] }, "address": { "type": ["string", "null"] } } }),
    );
    schemas.insert(
        "Case".into(),
        json!({ "type": "object", "properties": {
                    "id": { "type": "integer", "format": "int64", "minimum": 1 }, "opening": { "type": "string", "description": "registration number of the opening message" },
                    "queue": { "type": "string" }, "status": { "type": "string", "enum": crate::store::cases::STATUSES },
                    "priority": { "type": "string" }, "category": { "type": ["string", "null"] }, "tags": { "type": "array", "items": { "type": "string" } },
                    "due": nullable_time, "overdue": { "type": "boolean" }, "assignee": { "type": ["string", "null"] }, "escalated": { "type": "boolean" }, "spam": { "type": "boolean" },
                    "opened_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" },
                    "follow_up_at": nullable_time, "first_response_at": nullable_time, "resolved_at": nullable_time } }),
    );
    schemas.insert(
        "CaseListItem".into(),
        json!({ "allOf": [schema("Case"), { "type": "object", "properties": {
                    "message_count": { "type": "integer" }, "subject": { "type": ["string", "null"] }, "from": { "oneOf": [schema("Mailbox"), { "type": "null" }] } } }] }),
    );
    schemas.insert("Message".into(), json!({ "type": "object", "properties": {
                    "number": { "type": "string" }, "received_at": { "type": "string", "format": "date-time" }, "size": { "type": "integer" },
                    "tags": { "type": "array", "items": { "type": "string" } }, "auth": { "type": ["string", "null"] }, "automatic": { "type": "boolean" }, "parsed": { "type": "boolean" },
                    "raw": { "type": "string", "description": "download path" },
                    "from": { "type": "array", "items": schema("Mailbox") }, "to": { "type": "array", "items": schema("Mailbox") },
                    "cc": { "type": "array", "items": schema("Mailbox") }, "reply_to": { "type": "array", "items": schema("Mailbox") },
                    "subject": { "type": ["string", "null"] }, "date": { "type": ["string", "null"] }, "message_id": { "type": ["string", "null"] },
                    "attachments": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": ["string", "null"] }, "content_type": { "type": ["string", "null"] }, "size": { "type": "integer" } } } } } }));
    schemas.insert(
        "Entry".into(),
        json!({ "type": "object", "properties": {
                    "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "author": { "type": "string" },
                    "kind": { "type": "string", "enum": ["note", "reply", "follow-up"] }, "text": { "type": "string" },
                    "to": { "type": ["string", "null"] }, "subject": { "type": ["string", "null"] }, "due": { "type": ["string", "null"] },
                    "outbox_status": { "type": ["string", "null"], "description": "a reply's delivery: pending, sending, sent, failed" } } }),
    );
    schemas.insert("HistoryEntry".into(), json!({ "type": "object", "properties": {
                    "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "actor": { "type": "string" }, "action": { "type": "string" }, "detail": { "type": ["string", "null"] } } }));
    schemas.insert(
        "CaseDetail".into(),
        json!({ "allOf": [schema("Case"), { "type": "object", "properties": {
                    "messages": { "type": "array", "items": schema("Message") }, "entries": { "type": "array", "items": schema("Entry") },
                    "history": { "type": "array", "items": schema("HistoryEntry") } } }] }),
    );
    schemas.insert("ActionResult".into(), json!({ "type": "object", "properties": { "case": schema("Case"), "entry": { "type": "integer" }, "outbox": { "type": "integer" } } }));
    schemas.insert(
        "User".into(),
        json!({ "type": "object", "properties": {
                    "name": { "type": "string" }, "roles": { "type": "array", "items": { "type": "string" } }, "locked": { "type": "boolean" },
                    "locked_out_until": nullable_time, "failed_logins": { "type": "integer" },
                    "created_at": { "type": "string", "format": "date-time" }, "password_changed_at": { "type": "string", "format": "date-time" },
                    "enrolment_pending": { "type": "boolean" }, "enrolment_expires_at": nullable_time } }),
    );
    schemas.insert(
        "Role".into(),
        json!({ "type": "object", "properties": {
                    "name": { "type": "string" }, "description": { "type": "string" },
                    "grants": { "type": "object", "additionalProperties": { "type": "array", "items": { "type": "string" } } },
                    "members": { "type": "array", "items": { "type": "string" } } } }),
    );
    schemas.insert(
        "Grant".into(),
        object(&["queue"], json!({ "queue": { "type": "string" }, "permissions": { "type": "array", "items": { "type": "string", "enum": ["read", "act", "assign", "supervise"] } } })),
    );
    schemas.insert(
        "AuditPage".into(),
        json!({ "type": "object", "properties": { "next_after": { "type": ["integer", "null"] }, "entries": { "type": "array", "items": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "actor": { "type": "string" }, "action": { "type": "string" },
                    "object": { "type": ["string", "null"] }, "detail": { "type": ["string", "null"] } } } } } }),
    );
    schemas.insert(
        "Enrolment".into(),
        json!({ "type": "object", "description": "a one-time code, shown once: pass it on to the user", "properties": {
                    "code": { "type": "string" }, "expires_at": { "type": "string", "format": "date-time" } } }),
    );
    schemas.insert(
        "Change".into(),
        json!({ "type": "object", "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "kind": { "type": "string", "enum": ["role.assign", "role.grant", "user.reset"] },
                    "role": { "type": ["string", "null"], "description": "null for a reset" },
                    "user": { "type": ["string", "null"] }, "queue": { "type": ["string", "null"] },
                    "permissions": { "type": "array", "items": { "type": "string", "enum": ["read", "act", "assign", "supervise"] } },
                    "queues": { "type": "array", "items": { "type": "string" }, "description": "queues concerned (* = every queue)" },
                    "requested_by": { "type": "string" }, "requested_at": { "type": "string", "format": "date-time" },
                    "status": { "type": "string", "enum": ["pending", "approved", "rejected"] },
                    "decided_by": { "type": ["string", "null"] }, "decided_at": nullable_time,
                    "code": { "type": ["string", "null"], "enum": ["ready", "collected", "void", null],
                              "description": "an approved reset's code: ready for its requester to collect (once), collected, or void (expired or replaced first); null for other changes" } } }),
    );
    schemas.insert(
        "CollectedCode".into(),
        json!({ "type": "object", "properties": { "name": { "type": "string" }, "enrolment": schema("Enrolment"), "change": schema("Change") } }),
    );
    schemas.insert(
        "Pending".into(),
        json!({ "type": "object", "properties": { "pending": { "type": "boolean" }, "change": schema("Change") } }),
    );
    schemas.insert(
        "NewAccount".into(),
        json!({ "type": "object", "properties": {
                    "name": { "type": "string" }, "roles": { "type": "array", "items": { "type": "string" }, "description": "applied now" },
                    "pending": { "type": "array", "items": schema("Change"), "description": "roles waiting for approval" },
                    "enrolment": schema("Enrolment") } }),
    );
    schemas.insert(
        "Reset".into(),
        json!({ "type": "object", "properties": { "name": { "type": "string" }, "enrolment": schema("Enrolment") } }),
    );
    schemas.insert(
        "AuditCheck".into(),
        json!({ "type": "object", "properties": {
                    "intact": { "type": "boolean" }, "entries": { "type": "integer" }, "head": { "type": "string" },
                    "broken_at": { "type": "integer" }, "reason": { "type": "string" } } }),
    );
    Value::Object(schemas)
}
