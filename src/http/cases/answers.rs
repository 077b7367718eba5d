//! What the case endpoints (and a queue's listing) answer. The old answers were `json!` values,
//! whose keys serde_json sorts: every struct here lists its fields in alphabetical order so the
//! wire bytes stay the same, and the two that extend a case (`CaseListItem`, `CaseDetail`, with
//! `#[serde(flatten)]`, an `allOf` in the document) are written through [`Sorted`].

use serde::{Serialize, Serializer};
use utoipa::ToSchema;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

use crate::cases::view::CaseView;
use crate::cases::workflow::Outcome;
use crate::intake::record::{Attachment as RecordAttachment, Mailbox as RecordMailbox, Record};
use crate::store::cases::{CaseEntry, CaseMessage, CaseRow, HistoryEntry as HistoryRow, STATUSES, is_overdue};
use crate::store::millis_to_rfc3339;

/// Serializes through `serde_json::Value`, whose maps are sorted by key: a flattened answer then
/// comes out in the same alphabetical order as every other answer.
pub struct Sorted<T>(pub T);

impl<T: Serialize> Serialize for Sorted<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

fn time(ms: Option<i64>) -> Option<String> {
    ms.map(millis_to_rfc3339)
}

fn nullable_time() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .build()
}

fn status_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(STATUSES)).build()
}

/// A name and an address, either of which a message may lack.
#[derive(Serialize, ToSchema)]
pub struct Mailbox {
    #[schema(required = true)]
    address: Option<String>,
    #[schema(required = true)]
    name: Option<String>,
}

impl From<&RecordMailbox> for Mailbox {
    fn from(m: &RecordMailbox) -> Self {
        Mailbox { address: m.address.clone(), name: m.name.clone() }
    }
}

fn mailboxes(list: &[RecordMailbox]) -> Vec<Mailbox> {
    list.iter().map(Mailbox::from).collect()
}

/// A case's metadata, as every endpoint shows it.
#[derive(Serialize, ToSchema)]
pub struct Case {
    #[schema(required = true)]
    assignee: Option<String>,
    #[schema(required = true)]
    category: Option<String>,
    #[schema(required = true, schema_with = nullable_time)]
    due: Option<String>,
    escalated: bool,
    #[schema(required = true, schema_with = nullable_time)]
    first_response_at: Option<String>,
    #[schema(required = true, schema_with = nullable_time)]
    follow_up_at: Option<String>,
    #[schema(minimum = 1)]
    id: i64,
    #[schema(format = DateTime)]
    opened_at: String,
    /// registration number of the opening message
    opening: String,
    overdue: bool,
    priority: String,
    queue: String,
    #[schema(required = true, schema_with = nullable_time)]
    resolved_at: Option<String>,
    spam: bool,
    #[schema(schema_with = status_schema)]
    status: String,
    tags: Vec<String>,
    /// the sender's customer tier when the case was opened (vip, long-term, prospect), if known
    #[schema(required = true)]
    tier: Option<String>,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl Case {
    /// The case as it stood at `now` (what "overdue" is measured against).
    pub fn new(c: &CaseRow, now: i64) -> Self {
        Case {
            assignee: c.assignee.clone(),
            category: c.category.clone(),
            due: time(c.due_at),
            escalated: c.escalated,
            first_response_at: time(c.first_response_at),
            follow_up_at: time(c.follow_up_at),
            id: c.id,
            opened_at: millis_to_rfc3339(c.opened_at),
            opening: c.opening.clone(),
            overdue: is_overdue(&c.status, c.due_at, now),
            priority: c.priority.clone(),
            queue: c.queue.clone(),
            resolved_at: time(c.resolved_at),
            spam: c.spam,
            status: c.status.clone(),
            tags: c.tags.clone(),
            tier: c.tier.clone(),
            updated_at: millis_to_rfc3339(c.updated_at),
        }
    }
}

/// A case in a queue's listing, with its opening message's subject and sender.
#[derive(Serialize, ToSchema)]
pub struct CaseListItem {
    #[serde(flatten)]
    pub case: Case,
    #[schema(required = true)]
    pub from: Option<Mailbox>,
    pub message_count: i64,
    #[schema(required = true)]
    pub subject: Option<String>,
}

/// An attachment's name, type and size.
#[derive(Serialize, ToSchema)]
pub struct Attachment {
    #[schema(required = true)]
    content_type: Option<String>,
    #[schema(required = true)]
    name: Option<String>,
    size: usize,
}

impl From<&RecordAttachment> for Attachment {
    fn from(a: &RecordAttachment) -> Self {
        Attachment { content_type: a.content_type.clone(), name: a.name.clone(), size: a.size }
    }
}

/// A message of a case: what was stored about it and its extracted record.
#[derive(Serialize, ToSchema)]
pub struct Message {
    #[schema(inline)]
    attachments: Vec<Attachment>,
    #[schema(required = true)]
    auth: Option<String>,
    automatic: bool,
    cc: Vec<Mailbox>,
    #[schema(required = true)]
    date: Option<String>,
    from: Vec<Mailbox>,
    #[schema(required = true)]
    message_id: Option<String>,
    number: String,
    parsed: bool,
    /// download path
    raw: String,
    #[schema(format = DateTime)]
    received_at: String,
    reply_to: Vec<Mailbox>,
    size: i64,
    #[schema(required = true)]
    subject: Option<String>,
    tags: Vec<String>,
    to: Vec<Mailbox>,
}

impl Message {
    fn new(m: &CaseMessage, r: &Record) -> Self {
        Message {
            attachments: r.attachments.iter().map(Attachment::from).collect(),
            auth: m.auth.clone(),
            automatic: m.automatic,
            cc: mailboxes(&r.cc),
            date: r.date.clone(),
            from: mailboxes(&r.from),
            message_id: r.message_id.clone(),
            number: m.number.clone(),
            parsed: m.parsed,
            raw: format!("/api/messages/{}/raw", m.number),
            received_at: millis_to_rfc3339(m.received_at),
            reply_to: mailboxes(&r.reply_to),
            size: m.size,
            subject: r.subject.clone(),
            tags: m.tags.clone(),
            to: mailboxes(&r.to),
        }
    }
}

fn entry_kind_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["note", "reply", "follow-up", "review"])).build()
}

fn outbox_status_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some("a reply's delivery: pending, sending, sent, failed, withdrawn (taken back within the undo window)"))
        .build()
}

fn reply_state_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some("a reply's own state: null (outbox_status tells), withdrawn, awaiting-review, returned, resubmitted (returned, then sent again as a new reply)"))
        .build()
}

/// A staff entry: a note, a reply or a follow-up.
#[derive(Serialize, ToSchema)]
pub struct Entry {
    #[schema(format = DateTime)]
    at: String,
    author: String,
    #[schema(required = true)]
    due: Option<String>,
    id: i64,
    #[schema(schema_with = entry_kind_schema)]
    kind: String,
    #[schema(required = true, schema_with = outbox_status_schema)]
    outbox_status: Option<String>,
    #[schema(required = true, schema_with = reply_state_schema)]
    state: Option<String>,
    #[schema(required = true)]
    subject: Option<String>,
    text: String,
    #[schema(required = true)]
    to: Option<String>,
}

impl From<CaseEntry> for Entry {
    fn from(e: CaseEntry) -> Self {
        Entry {
            at: millis_to_rfc3339(e.at),
            author: e.author,
            due: e.body.due,
            id: e.id,
            kind: e.kind,
            outbox_status: e.outbox_status,
            state: e.state,
            subject: e.body.subject,
            text: e.body.text,
            to: e.body.to,
        }
    }
}

/// One step of a case's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    action: String,
    actor: String,
    #[schema(format = DateTime)]
    at: String,
    #[schema(required = true)]
    detail: Option<String>,
    id: i64,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(h: HistoryRow) -> Self {
        HistoryEntry { action: h.action, actor: h.actor, at: millis_to_rfc3339(h.at), detail: h.detail, id: h.id }
    }
}

/// A case with its messages, staff entries and history.
#[derive(Serialize, ToSchema)]
pub struct CaseDetail {
    #[serde(flatten)]
    case: Case,
    entries: Vec<Entry>,
    history: Vec<HistoryEntry>,
    messages: Vec<Message>,
}

impl From<CaseView> for CaseDetail {
    fn from(view: CaseView) -> Self {
        CaseDetail {
            case: Case::new(&view.case, view.now),
            entries: view.entries.into_iter().map(Entry::from).collect(),
            history: view.history.into_iter().map(HistoryEntry::from).collect(),
            messages: view.messages.iter().map(|(m, record)| Message::new(m, record)).collect(),
        }
    }
}

/// The case after an action, with the entry (and outbox row) it added.
#[derive(Serialize, ToSchema)]
pub struct ActionResult {
    case: Case,
    /// the staff entry written (note, follow-up, reply)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    entry: Option<i64>,
    /// the outbox row of a reply
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    outbox: Option<i64>,
}

impl From<Outcome> for ActionResult {
    fn from(outcome: Outcome) -> Self {
        ActionResult { case: Case::new(&outcome.case, outcome.now), entry: outcome.entry, outbox: outcome.outbox }
    }
}
