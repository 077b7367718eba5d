//! The case page's history lines and reply states in the reader's language.
//!
//! The case service stores a history row as an action code (`claim`, `reply.approved`, …) and a
//! detail made of fields (`assignee none→ann`, `status open→waiting`, `promised=…`, `entry=12`);
//! the JSON API returns them as stored. The page names the action from the catalog and says the
//! fields a person cares about in words (statuses and priorities translated, "nobody" for an empty
//! assignee, the promised date in the site's time zone); internal ids (`entry=`, `outbox=`, …)
//! are left out. A field this module does not know is shown as stored, never dropped.

use super::chrome::Chrome;
use crate::intake::sla::Calendar;

/// Every history action the case service and intake write, with its catalog key. Notes,
/// follow-ups and sent replies are shown as thread entries instead (`case::SHOWN_AS_ENTRIES`).
pub const ACTION_KEYS: [(&str, &str); 15] = [
    ("claim", "history.claim"),
    ("assign", "history.assign"),
    ("transfer", "history.transfer"),
    ("escalate", "history.escalate"),
    ("status", "history.status"),
    ("priority", "history.priority"),
    ("category", "history.category"),
    ("tags", "history.tags"),
    ("note", "history.note"),
    ("follow-up", "history.follow_up"),
    ("reply", "history.reply"),
    ("reply.submitted", "history.reply_submitted"),
    ("reply.approved", "history.reply_approved"),
    ("reply.returned", "history.reply_returned"),
    ("reply-withdrawn", "history.reply_withdrawn"),
];

/// Fields that name rows only the server knows (entries, outbox rows): not for people.
const INTERNAL_FIELDS: [&str; 5] = ["entry", "outbox", "follow-up", "comment", "count"];

/// Free text intake and the reply service put in a detail, with what the page says instead.
const PHRASES: [(&str, Option<&str>); 2] = [("(the customer wrote again)", Some("history.customer_wrote")), ("awaiting review", None)];

/// One history line as the page shows it.
pub struct HistoryText {
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// The history row (`actor`, `action`, `detail`) in the reader's language.
pub fn history_text(chrome: &Chrome, calendar: &Calendar, actor: &str, action: &str, detail: &str) -> HistoryText {
    let action_text = ACTION_KEYS.iter().find(|(code, _)| *code == action).map_or(action, |(_, key)| chrome.t(key)).to_string();
    let actor = if actor == "intake" { chrome.t("history.actor_intake").to_string() } else { actor.to_string() };
    HistoryText { actor, action: action_text, detail: detail_text(chrome, calendar, detail) }
}

fn detail_text(chrome: &Chrome, calendar: &Calendar, detail: &str) -> String {
    let mut rest = detail.to_string();
    let mut said = Vec::new();
    for (phrase, key) in PHRASES {
        if rest.contains(phrase) {
            rest = rest.replace(phrase, " ");
            if let Some(key) = key {
                said.push(chrome.t(key).to_string());
            }
        }
    }
    let mut parts: Vec<String> = Vec::new();
    // Words that are none of the known fields stay together, as stored.
    let mut free = false;
    let mut tags: Option<(String, String)> = None;
    let mut tokens = rest.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        let next = tokens.peek().copied().unwrap_or("");
        let part = if let Some((key, value)) = token.split_once('=') {
            match key {
                _ if INTERNAL_FIELDS.contains(&key) => None,
                "added" => {
                    tags.get_or_insert_default().0 = value.to_string();
                    None
                }
                "removed" => {
                    tags.get_or_insert_default().1 = value.to_string();
                    None
                }
                "author" => Some(chrome.fill("history.author", &[("user", value)])),
                "promised" => Some(chrome.fill("history.promised", &[("when", &when(calendar, value))])),
                _ => Some(token.to_string()),
            }
        } else if token == "tags" && next.starts_with("added=") {
            None
        } else if let Some((from, to)) = next.split_once('→').filter(|_| !token.contains('→')) {
            tokens.next();
            Some(change(chrome, token, from, to))
        } else {
            match parts.last_mut() {
                Some(last) if free => last.push_str(&format!(" {token}")),
                _ => parts.push(token.to_string()),
            }
            free = true;
            continue;
        };
        free = false;
        parts.extend(part);
    }
    if let Some((added, removed)) = tags {
        parts.push(chrome.fill("history.tags_changed", &[("added", or_zero(&added)), ("removed", or_zero(&removed))]));
    }
    parts.extend(said);
    parts.join("; ")
}

fn or_zero(n: &str) -> &str {
    if n.is_empty() { "0" } else { n }
}

/// `field from→to` in words: "Status: Open → Waiting", "Assignee: nobody → ann".
fn change(chrome: &Chrome, field: &str, from: &str, to: &str) -> String {
    let (label, value): (&str, fn(&Chrome, &str) -> String) = match field {
        "status" => ("queue.status", |c, v| named(c, "status", v)),
        "priority" => ("queue.priority", |c, v| named(c, "priority", v)),
        "assignee" => ("queue.assignee", plain),
        "queue" => ("case.queue", plain),
        "category" => ("queue.category", plain),
        _ => return format!("{field} {from}→{to}"),
    };
    chrome.fill("history.change", &[("field", chrome.t(label)), ("from", &value(chrome, from)), ("to", &value(chrome, to))])
}

/// A status or priority by its catalog name; one the catalog lacks as stored.
fn named(chrome: &Chrome, group: &str, value: &str) -> String {
    let key = format!("{group}.{value}");
    let text = chrome.t(&key);
    if text == key { value.to_string() } else { text.to_string() }
}

/// A user name, queue or category code as stored; `none` (nobody, no category) in words.
fn plain(chrome: &Chrome, value: &str) -> String {
    if value == "none" { chrome.t("history.nobody").to_string() } else { value.to_string() }
}

/// An RFC 3339 time in the site's zone, as the rest of the page writes times.
fn when(calendar: &Calendar, rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&calendar.timezone()).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// The catalog key of a reply's state on the case page: its review state if it has one that
/// decides, else its outbox row's status.
pub fn reply_state_key(state: Option<&str>, outbox_status: Option<&str>) -> Option<&'static str> {
    Some(match (state, outbox_status) {
        (Some("withdrawn"), _) | (_, Some("withdrawn")) => "reply_state.withdrawn",
        (_, Some("sent")) => "reply_state.sent",
        (_, Some("failed")) => "reply_state.failed",
        (_, Some("sending")) => "reply_state.sending",
        (_, Some("pending")) => "reply_state.pending",
        (Some("awaiting-review"), _) => "reply_state.awaiting",
        (Some("returned"), _) => "reply_state.returned",
        (Some("resubmitted"), _) => "reply_state.resubmitted",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    fn calendar() -> Calendar {
        Calendar::default()
    }

    fn line(lang: Lang, actor: &str, action: &str, detail: &str) -> HistoryText {
        history_text(&Chrome::anonymous(lang), &calendar(), actor, action, detail)
    }

    #[test]
    fn known_fields_are_said_in_words_and_ids_left_out() {
        let claim = line(Lang::En, "ann", "claim", "assignee none→ann status new→open");
        assert_eq!(claim.action, "claimed the case");
        assert_eq!(claim.detail, "Assignee: nobody → ann; Status: New → Open");
        let reply = line(Lang::En, "ann", "reply.approved", "entry=4 outbox=9 author=bob status open→waiting");
        assert_eq!(reply.detail, "written by bob; Status: Open → Waiting");
        let tags = line(Lang::En, "ann", "tags", "tags added=2 removed=0 count=3");
        assert_eq!(tags.detail, "Tags: 2 added, 0 removed");
        let submitted = line(Lang::En, "ann", "reply.submitted", "entry=4 awaiting review promised=2026-12-03T09:00:00.000Z follow-up=5");
        assert_eq!(submitted.detail, "promised for 2026-12-03 09:00");
    }

    #[test]
    fn intake_reopening_is_translated() {
        let ru = line(Lang::Ru, "intake", "status", "status waiting→open (the customer wrote again)");
        assert!(!ru.detail.contains("customer wrote"), "{}", ru.detail);
        assert!(ru.detail.contains("В работе"), "{}", ru.detail);
        assert_ne!(ru.actor, "intake");
        let zh = line(Lang::ZhCn, "ann", "transfer", "queue billing→vip assignee ann→none");
        assert!(zh.detail.contains("billing") && zh.detail.contains("vip"), "{}", zh.detail);
        assert!(!zh.detail.contains("none"), "{}", zh.detail);
    }

    #[test]
    fn unknown_text_is_kept() {
        let odd = line(Lang::En, "ann", "merge", "into=MR-1 weird words");
        assert_eq!(odd.action, "merge");
        assert_eq!(odd.detail, "into=MR-1; weird words");
    }

    #[test]
    fn every_key_exists_in_every_catalog() {
        let mut keys: Vec<String> = ACTION_KEYS.iter().map(|(_, key)| key.to_string()).collect();
        keys.extend(PHRASES.iter().filter_map(|(_, key)| key.map(str::to_string)));
        keys.extend(
            ["history.actor_intake", "history.author", "history.promised", "history.tags_changed", "history.change", "history.nobody"]
                .map(str::to_string),
        );
        for state in [None, Some("withdrawn"), Some("awaiting-review"), Some("returned"), Some("resubmitted")] {
            for outbox in [None, Some("pending"), Some("sending"), Some("sent"), Some("failed"), Some("withdrawn")] {
                keys.extend(reply_state_key(state, outbox).map(str::to_string));
            }
        }
        for lang in Lang::ALL {
            let catalog = lang.catalog();
            for key in &keys {
                assert_ne!(catalog.get(key), key.as_str(), "{key} is missing from the {} catalog", lang.tag());
            }
        }
    }
}
