//! Our `X-Mailroom-*` header fields, shown on top of every message: the values fixed when the
//! message got its UID in this mailbox (delivery or transfer), never the case's current ones:
//! clients cache a message by UID and never fetch it again. The case now is shown as keywords
//! (`imap::mailbox::flags`).

use base64::Engine;

use crate::cases::CaseSettings;
use crate::store::mailbox::MailboxEntry;

/// Our header fields for `entry`, each ending in CRLF. Shown on top of the stored message (our
/// Received: header + the message as received).
pub fn x_headers(settings: &CaseSettings, entry: &MailboxEntry) -> String {
    let mut h = format!("X-Mailroom-Registration: {}\r\n", header_text(&entry.number));
    if let Some(code) = &entry.x_category {
        match settings.categories.iter().find(|c| &c.code == code).map(|c| &c.name) {
            Some(name) => h.push_str(&format!("X-Mailroom-Category: {} ({})\r\n", header_text(code), header_text(name))),
            None => h.push_str(&format!("X-Mailroom-Category: {}\r\n", header_text(code))),
        }
    }
    h.push_str(&format!("X-Mailroom-Priority: {}\r\n", header_text(&entry.x_priority)));
    if let Some(due) = entry.x_due.and_then(chrono::DateTime::from_timestamp_millis) {
        // In the business-hours calendar's zone: the deadline as the team counts it.
        h.push_str(&format!("X-Mailroom-Due: {}\r\n", due.with_timezone(&settings.calendar.timezone()).format("%a, %d %b %Y %H:%M:%S %z")));
    }
    h
}

/// Unstructured header text: one line, non-ASCII as an RFC 2047 encoded word.
fn header_text(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.is_ascii() { s } else { encoded_word(&s) }
}

pub(super) fn encoded_word(s: &str) -> String {
    format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
}
