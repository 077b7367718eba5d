//! `GET /cases/{id}`: one case (`Cases::read`, audited) with its header and SLA line, the thread
//! in time order (customer messages with their text part decoded from the stored message, our
//! replies, internal notes, follow-ups, history as compact lines) and a plain form for every
//! action of the case service (`case_actions`). A case that does not exist and one in a queue the
//! reader may not read get the same 404 page, as in the API.
//!
//! Every form carries the case's [`last_event`] marker as `seen`; `case_actions` answers 409 with
//! this page, the new items marked, when the case changed since.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::case_body::{self, Body};
use super::case_history::{HistoryText, history_text, reply_state_key};
use super::case_sla::{SlaLine, sla_line};
use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::presence::{PresenceView, for_page};
use super::queue::{Choice, PRIORITY_CHOICES};
use super::session::PageSession;
use crate::access::Permission;
use crate::cases::{Activity, CaseError, CaseView, last_event};
use crate::http::HttpContext;
use crate::intake::sla::Calendar;
use crate::store::millis_to_rfc3339;
use crate::store::record::Mailbox;

/// The view written into the audit entries of reads made through the page.
pub const VIA: &str = "web";

/// The actions of the case service, as they appear in form URLs (`POST /cases/{id}/{action}`).
pub const ACTIONS: [&str; 10] = ["claim", "assign", "transfer", "escalate", "status", "priority", "category", "tags", "note", "follow-up"];

/// A time as `<time datetime>` and as text in the calendar's time zone.
pub struct Stamp {
    pub datetime: String,
    pub text: String,
}

fn stamp(calendar: &Calendar, ms: i64) -> Stamp {
    let text = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&calendar.timezone()).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    Stamp { datetime: millis_to_rfc3339(ms), text }
}

pub struct MessageItem {
    pub id: i64,
    pub number: String,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub subject: Option<String>,
    pub at: Stamp,
    pub automatic: bool,
    pub body: Body,
}

impl MessageItem {
    pub fn size(&self, bytes: &usize) -> String {
        case_body::human_size(*bytes)
    }
}

pub struct EntryItem {
    pub id: i64,
    /// `note`, `reply`, `follow-up` or `review` (a reviewer's comment).
    pub kind: String,
    pub author: String,
    pub at: Stamp,
    pub text: String,
    pub due: Option<Stamp>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// The catalog key of a reply's state (sent, awaiting review, …).
    pub state: Option<&'static str>,
}

pub struct HistoryItem {
    pub at: Stamp,
    /// The stored action code (for `data-history`).
    pub code: String,
    /// Actor, action and detail in the reader's language.
    pub text: HistoryText,
}

pub enum Item {
    Message(MessageItem),
    Entry(EntryItem),
    History(HistoryItem),
}

/// One line of the thread; `new` when it came after the marker the reader's form had seen.
pub struct ThreadItem {
    pub new: bool,
    pub item: Item,
}

/// The head of the page.
pub struct Header {
    pub number: String,
    pub subject: Option<String>,
    pub queue: String,
    pub status: String,
    pub priority: String,
    pub category_code: Option<String>,
    pub category_name: String,
    pub assignee: Option<String>,
    pub tags: Vec<String>,
    pub escalated: bool,
    pub sla: SlaLine,
}

/// What the action forms need, and which of them the reader may use (the service decides).
pub struct Forms {
    pub act: bool,
    pub assign: bool,
    pub supervise: bool,
    pub other_queues: Vec<String>,
    pub categories: Vec<(String, String)>,
    pub timezone: String,
}

/// A reply's text as the agent wrote it (the reply form's fields).
pub struct KeptReply {
    pub subject: String,
    pub body: String,
    pub promise: String,
    pub replaces: String,
}

/// What the page says above the case.
pub enum Notice {
    /// The form's `seen` was older than the case: nothing was done.
    Collision,
    /// A reply was not sent because the case changed meanwhile: the agent's text comes back
    /// with the page, to continue from once the new items are read.
    ReplyCollision(KeptReply),
    /// The service refused the action, with its reason.
    Refused(String),
    /// The action was done (catalog key of its name).
    Done(&'static str),
}

pub struct CaseViewPage {
    pub id: i64,
    pub header: Header,
    pub thread: Vec<ThreadItem>,
    pub seen: String,
    pub forms: Forms,
    pub notice: Option<Notice>,
    /// The "also here" line (`presence.html`); None only in render tests.
    pub presence: Option<PresenceView>,
}

impl CaseViewPage {
    pub fn statuses(&self) -> [Choice; 4] {
        [
            choice("open", "status.open"),
            choice("waiting", "status.waiting"),
            choice("resolved", "status.resolved"),
            choice("closed", "status.closed"),
        ]
    }

    pub fn priorities(&self) -> &'static [Choice] {
        &PRIORITY_CHOICES[1..]
    }
}

const fn choice(value: &'static str, key: &'static str) -> Choice {
    Choice { value, key }
}

#[derive(Template)]
#[template(path = "case.html")]
pub struct CasePage {
    pub chrome: Chrome,
    pub view: CaseViewPage,
}

fn mailboxes(list: &[Mailbox]) -> String {
    list.iter()
        .map(|m| match (m.name.as_deref().map(str::trim).filter(|n| !n.is_empty()), m.address.as_deref()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (Some(name), None) => name.to_string(),
            (None, Some(address)) => address.to_string(),
            (None, None) => String::new(),
        })
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The history rows that the thread already shows as entries are left out.
const SHOWN_AS_ENTRIES: [&str; 3] = ["note", "follow-up", "reply"];

/// The thread in time order (a message before an entry before a history line at the same
/// instant). `seen`: the (message, entry, history) ids the reader had seen; later ones are new.
fn thread(chrome: &Chrome, calendar: &Calendar, view: &CaseView, bodies: Vec<Body>, seen: Option<(i64, i64, i64)>) -> Vec<ThreadItem> {
    let newer = |id: i64, pick: fn((i64, i64, i64)) -> i64| seen.is_some_and(|s| id > pick(s));
    let mut items: Vec<(i64, u8, i64, ThreadItem)> = Vec::new();
    for ((m, record), body) in view.messages.iter().zip(bodies) {
        let item = MessageItem {
            id: m.id,
            number: m.number.clone(),
            from: mailboxes(&record.from),
            to: mailboxes(&record.to),
            cc: mailboxes(&record.cc),
            subject: record.subject.clone(),
            at: stamp(calendar, m.received_at),
            automatic: m.automatic,
            body,
        };
        items.push((m.received_at, 0, m.id, ThreadItem { new: newer(m.id, |s| s.0), item: Item::Message(item) }));
    }
    for e in &view.entries {
        let due =
            e.body.due.as_deref().and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok()).map(|d| stamp(calendar, d.timestamp_millis()));
        let item = EntryItem {
            id: e.id,
            kind: e.kind.clone(),
            author: e.author.clone(),
            at: stamp(calendar, e.at),
            text: e.body.text.clone(),
            due,
            to: e.body.to.clone(),
            subject: e.body.subject.clone(),
            state: reply_state_key(e.state.as_deref(), e.outbox_status.as_deref()),
        };
        items.push((e.at, 1, e.id, ThreadItem { new: newer(e.id, |s| s.1), item: Item::Entry(item) }));
    }
    for h in view.history.iter().filter(|h| !SHOWN_AS_ENTRIES.contains(&h.action.as_str())) {
        let item = HistoryItem {
            at: stamp(calendar, h.at),
            code: h.action.clone(),
            text: history_text(chrome, calendar, &h.actor, &h.action, h.detail.as_deref().unwrap_or_default()),
        };
        items.push((h.at, 2, h.id, ThreadItem { new: newer(h.id, |s| s.2), item: Item::History(item) }));
    }
    items.sort_by_key(|(at, kind, id, _)| (*at, *kind, *id));
    items.into_iter().map(|(_, _, _, item)| item).collect()
}

/// The page of case `id` for `session`, with `status` and `notice`; `seen` marks what is new.
/// A case the reader may not read is the 404 page.
pub async fn page(
    ctx: &HttpContext,
    session: &PageSession,
    id: i64,
    status: StatusCode,
    notice: Option<Notice>,
    seen: Option<(i64, i64, i64)>,
) -> Response {
    let lang = session.lang;
    let view = match ctx.cases.read(&session.principal, VIA, id).await {
        Ok(view) => view,
        Err(CaseError::NotFound(_)) => return PageError::new(lang, Problem::NotFound).into_response(),
        Err(e) => return PageError::internal(lang, e).into_response(),
    };
    let mut bodies = Vec::with_capacity(view.messages.len());
    for (m, _) in &view.messages {
        match ctx.cases.case_message(&session.principal, VIA, id, m.id).await {
            Ok(raw) => bodies.push(case_body::body(&raw.bytes)),
            Err(CaseError::NotFound(_) | CaseError::NoSuchMessage(_)) => return PageError::new(lang, Problem::NotFound).into_response(),
            Err(e) => return PageError::internal(lang, e).into_response(),
        }
    }
    let chrome = session.chrome(ctx);
    let settings = ctx.cases.settings();
    let calendar = &settings.calendar;
    let case = &view.case;
    let can = |p: Permission| session.principal.can(&case.queue, p);
    let header = Header {
        number: case.opening.clone(),
        subject: view.messages.first().and_then(|(_, r)| r.subject.clone()),
        queue: case.queue.clone(),
        status: format!("status.{}", case.status),
        priority: format!("priority.{}", case.priority),
        category_code: case.category.clone(),
        category_name: case
            .category
            .as_ref()
            .and_then(|code| settings.categories.iter().find(|c| &c.code == code))
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        assignee: case.assignee.clone(),
        tags: case.tags.clone(),
        escalated: case.escalated,
        sla: sla_line(&chrome, calendar, case, view.now),
    };
    let forms = Forms {
        act: can(Permission::Act),
        assign: can(Permission::Assign) || can(Permission::Supervise),
        supervise: can(Permission::Supervise),
        other_queues: settings.queues.iter().map(|q| q.name.clone()).filter(|q| q != &case.queue).collect(),
        categories: settings.categories.iter().map(|c| (c.code.clone(), c.name.clone())).collect(),
        timezone: calendar.timezone().name().to_string(),
    };
    // Opening the page is the first "viewing" heartbeat: the marker works without JavaScript.
    let presence = match for_page(ctx, session, id, Activity::Viewing).await {
        Ok(presence) => presence,
        Err(CaseError::NotFound(_)) => return PageError::new(lang, Problem::NotFound).into_response(),
        Err(e) => return PageError::internal(lang, e).into_response(),
    };
    let seen_now = last_event(&view);
    let thread = thread(&chrome, calendar, &view, bodies, seen);
    let page = CaseViewPage { id, header, thread, seen: seen_now, forms, notice, presence: Some(presence) };
    render(status, &CasePage { chrome, view: page })
}

#[derive(Deserialize, Default)]
pub struct Shown {
    /// The action just done (after the 303), to say so.
    #[serde(default)]
    done: String,
}

/// The catalog key naming `action`, if it is one.
pub fn action_key(action: &str) -> Option<&'static str> {
    const KEYS: [&str; 10] = [
        "case.do_claim",
        "case.do_assign",
        "case.do_transfer",
        "case.do_escalate",
        "case.do_status",
        "case.do_priority",
        "case.do_category",
        "case.do_tags",
        "case.do_note",
        "case.do_follow_up",
    ];
    ACTIONS.iter().position(|a| *a == action).map(|i| KEYS[i])
}

/// `GET /cases/{id}`.
pub async fn show(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    Path(id): Path<String>,
    shown: Result<Query<Shown>, QueryRejection>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else { return PageError::new(session.lang, Problem::NotFound).into_response() };
    let notice = shown.ok().and_then(|Query(s)| action_key(&s.done)).map(Notice::Done);
    page(&ctx, &session, id, StatusCode::OK, notice, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    #[test]
    fn every_key_named_in_code_has_its_text_in_every_language() {
        let sla = ["sla_due_on", "sla_due_on_one", "sla_due_in", "sla_overdue", "sla_waiting", "sla_resolved", "sla_closed", "sla_none"];
        let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map(|d| format!("weekday.{d}"));
        let actions = ACTIONS.iter().map(|a| action_key(a).unwrap().to_string());
        let keys: Vec<String> = sla.iter().map(|k| format!("case.{k}")).chain(days).chain(actions).collect();
        for lang in Lang::ALL {
            for key in &keys {
                assert_ne!(lang.catalog().get(key), key, "{}: no text for {key}", lang.tag());
            }
        }
        assert_eq!(action_key("delete"), None);
    }

    fn stamp_at(text: &str) -> Stamp {
        Stamp { datetime: format!("{text}:00.000Z"), text: text.replace('T', " ") }
    }

    fn sample(act: bool) -> CaseViewPage {
        let message = MessageItem {
            id: 41,
            number: "MR-2026-000041-7".into(),
            from: "Ann <ann@client.example>".into(),
            to: "support@example.com".into(),
            cc: String::new(),
            subject: Some("Help".into()),
            at: stamp_at("2026-12-02T10:00"),
            automatic: false,
            body: Body {
                text: Some("<script>alert(1)</script> hi".into()),
                has_html: true,
                attachments: vec![case_body::AttachmentInfo {
                    index: 0,
                    name: "a.pdf".into(),
                    content_type: "application/pdf".into(),
                    size: 2048,
                }],
            },
        };
        let note = EntryItem {
            id: 5,
            kind: "note".into(),
            author: "bert".into(),
            at: stamp_at("2026-12-02T11:00"),
            text: "Call back".into(),
            due: None,
            to: None,
            subject: None,
            state: None,
        };
        CaseViewPage {
            id: 9,
            header: Header {
                number: "MR-2026-000041-7".into(),
                subject: Some("Help".into()),
                queue: "support".into(),
                status: "status.open".into(),
                priority: "priority.normal".into(),
                category_code: None,
                category_name: String::new(),
                assignee: None,
                tags: vec!["vip".into()],
                escalated: false,
                sla: SlaLine { text: "due in 3 h".into(), datetime: Some("2026-12-02T13:00:00.000Z".into()), overdue: false },
            },
            thread: vec![ThreadItem { new: false, item: Item::Message(message) }, ThreadItem { new: true, item: Item::Entry(note) }],
            seen: "m41.e5.h3".into(),
            forms: Forms { act, assign: false, supervise: false, other_queues: vec![], categories: vec![], timezone: "UTC".into() },
            notice: Some(Notice::Collision),
            presence: Some(PresenceView {
                case_id: 9,
                activity: Activity::Viewing,
                every: 20,
                others: vec![super::super::presence::Colleague { user: "olga".into(), replying: false }],
            }),
        }
    }

    #[test]
    fn the_page_shows_the_thread_escaped_and_only_the_forms_the_reader_may_use() {
        let chrome = || Chrome::logged_in(Lang::En, "anna".into(), "TOKEN".into());
        let html = CasePage { chrome: chrome(), view: sample(true) }.render().unwrap();
        for part in [
            "<li class=\"message\" id=\"m41\" data-message=\"41\" data-row>",
            "&#60;script&#62;alert(1)&#60;/script&#62; hi</pre>",
            "<iframe sandbox src=\"/cases/9/messages/41/html\" title=\"HTML version of message MR-2026-000041-7\"></iframe>",
            "href=\"/cases/9/messages/41/attachments/0\" download>a.pdf</a> <span class=\"muted\">application/pdf, 2.0 KB</span>",
            "<li class=\"entry note new\" id=\"e5\" data-entry=\"note\" data-row><strong class=\"new-mark\">New:</strong>",
            "Internal note — not sent to the customer",
            "<time datetime=\"2026-12-02T13:00:00.000Z\">due in 3 h</time>",
            "data-notice=\"collision\">This case changed while you were looking at it",
            "<a class=\"button\" href=\"/cases/9/reply\" data-key-reply>Reply</a>",
            "<input type=\"hidden\" name=\"seen\" value=\"m41.e5.h3\">",
            "action=\"/cases/9/note\"",
            "hx-post=\"/cases/9/presence\" hx-trigger=\"every 20s\"",
            "<input type=\"hidden\" name=\"kind\" value=\"viewing\">",
            "role=\"status\" data-presence><span class=\"colleagues\" data-colleagues><span class=\"colleague\" data-user=\"olga\">olga is viewing</span></span></p>",
        ] {
            assert!(html.contains(part), "{part}: {html}");
        }
        assert!(!html.contains("<script>alert"), "customer text is escaped");
        assert!(!html.contains("action=\"/cases/9/assign\"") && !html.contains("action=\"/cases/9/transfer\""));
        let reader = CasePage { chrome: chrome(), view: sample(false) }.render().unwrap();
        assert!(!reader.contains("action=\"/cases/9/"), "a reader without act gets no action form: {reader}");
        let ru = CasePage { chrome: Chrome::logged_in(Lang::Ru, "anna".into(), "T".into()), view: sample(true) }.render().unwrap();
        assert!(ru.contains("Внутренняя заметка — клиенту не отправляется") && ru.contains(">Ответить</a>"), "{ru}");
    }
}
