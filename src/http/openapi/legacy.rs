//! The part of the OpenAPI document still written out by hand: the answer schemas of the cases
//! group. `super::document_for` merges
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

/// The schemas of the route groups not yet generated.
pub(super) fn operations() -> Legacy {
    Legacy { paths: serde_json::Map::new(), schemas: schemas() }
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
    Value::Object(schemas)
}
