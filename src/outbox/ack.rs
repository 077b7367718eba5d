//! Acknowledgements: whether one may be sent at all (RFC 3834 loop safety) and what it says.
//!
//! Pure functions, no I/O: the intake decides with [`skip_reason`] while it registers a message,
//! renders the reply with [`super::compose::acknowledgement`] (which fills in the [`AckTemplate`]
//! here) and writes it into the outbox in the same transaction; the worker only delivers bytes.

use std::collections::HashSet;
use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use mail_parser::MimeHeaders;
use serde::Deserialize;

/// Why no acknowledgement goes out, or `None` when one may. The reason names a rule, never an
/// address or content, so it can be logged and stored as it is.
///
/// RFC 3834 §2: no automatic response to the null reverse-path, to system or list-management
/// senders, to auto-submitted mail, to bulk or list mail, to delivery or disposition reports, or
/// to ourselves (which would start a loop between two queues).
pub fn skip_reason(envelope_from: &str, headers: &mail_parser::Message, own_addresses: &HashSet<String>) -> Option<&'static str> {
    let sender = envelope_address(envelope_from);
    if sender.is_empty() {
        return Some("null sender");
    }
    let sender = sender.to_lowercase();
    if is_system_sender(&sender) {
        return Some("system sender");
    }
    if own_addresses.contains(&sender) {
        return Some("own address");
    }

    for (name, value) in headers.headers_raw() {
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("Auto-Submitted") {
            // RFC 3834 §5: anything but "no" (e.g. auto-generated, auto-replied, auto-notified).
            if first_token(value) != "no" {
                return Some("auto-submitted");
            }
        } else if name.eq_ignore_ascii_case("X-Autoreply")
            || name.eq_ignore_ascii_case("X-Autorespond")
            || name.eq_ignore_ascii_case("X-Autoresponder")
        {
            // Pre-RFC 3834 responders (vacation programs, some help desks).
            return Some("auto-submitted");
        } else if name.eq_ignore_ascii_case("Precedence") {
            if matches!(first_token(value).as_str(), "bulk" | "list" | "junk" | "auto_reply") {
                return Some("bulk precedence");
            }
        } else if is_list_header(name) {
            return Some("list mail");
        } else if name.eq_ignore_ascii_case("X-Auto-Response-Suppress") {
            // Microsoft's header: a comma-separated list of response kinds the sender does not want.
            let suppressed = value
                .split([',', ' ', '\t'])
                .map(|t| t.trim().to_ascii_lowercase())
                .any(|t| matches!(t.as_str(), "all" | "oar" | "autoreply"));
            if suppressed {
                return Some("auto-response suppressed");
            }
        }
    }

    if let Some(ct) = headers.content_type() {
        let ctype = ct.ctype();
        let subtype = ct.subtype().unwrap_or_default();
        let report = (ctype.eq_ignore_ascii_case("multipart") && subtype.eq_ignore_ascii_case("report"))
            || (ctype.eq_ignore_ascii_case("message")
                && (subtype.eq_ignore_ascii_case("delivery-status") || subtype.eq_ignore_ascii_case("disposition-notification")));
        if report {
            return Some("delivery or disposition report");
        }
    }

    // The header From as well: our own acknowledgement relayed back with a rewritten envelope
    // sender must still not be answered.
    if let Some(from) = headers.from() {
        for addr in from.iter() {
            if let Some(address) = addr.address() {
                let address = address.trim().to_lowercase();
                if own_addresses.contains(&address) {
                    return Some("own address");
                }
                if is_system_sender(&address) {
                    return Some("system sender");
                }
            }
        }
    }
    None
}

/// The envelope sender without angle brackets; empty for the null reverse-path `<>`.
fn envelope_address(envelope_from: &str) -> &str {
    let s = envelope_from.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    let s = s.strip_suffix('>').unwrap_or(s);
    s.trim()
}

/// The first token of a header value, lower-cased, without comments or parameters.
fn first_token(value: &str) -> String {
    value.trim().split(|c: char| c == ';' || c == '(' || c.is_whitespace()).next().unwrap_or_default().to_ascii_lowercase()
}

/// RFC 2369 / RFC 2919 list headers.
fn is_list_header(name: &str) -> bool {
    ["List-Id", "List-Unsubscribe", "List-Post", "List-Help", "List-Subscribe", "List-Owner", "List-Archive"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Mailer daemons, postmasters, list managers and no-reply boxes (RFC 3834 §2; a reply to a
/// no-reply address only produces a bounce). `address` is lower-cased.
fn is_system_sender(address: &str) -> bool {
    let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
    // VERP and sub-addressing: "bounces+123=x=y@" is still the bounce handler.
    let local = local.split_once('+').map_or(local, |(base, _)| base);
    matches!(
        local,
        "mailer-daemon"
            | "postmaster"
            | "listserv"
            | "majordomo"
            | "bounce"
            | "bounces"
            | "noreply"
            | "no-reply"
            | "no_reply"
            | "donotreply"
            | "do-not-reply"
            | "do_not_reply"
    ) || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-bounces")
        || local.ends_with("-owner")
}

/// Subject and body of an acknowledgement, with placeholders `{number}` (registration number),
/// `{subject}` (the customer's subject), `{due}` (expected reply time) and `{queue}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckTemplate {
    pub subject: String,
    pub body: String,
}

pub const PLACEHOLDERS: [&str; 4] = ["number", "subject", "due", "queue"];

impl Default for AckTemplate {
    fn default() -> Self {
        AckTemplate {
            subject: "[{number}] We have received your message: {subject}".into(),
            body: "Hello,\n\
                   \n\
                   thank you for your message. It has been registered under the number {number}\n\
                   and passed to our {queue} team.\n\
                   \n\
                   Your subject: {subject}\n\
                   \n\
                   We will reply by {due} at the latest.\n\
                   \n\
                   If you write to us again about this matter, please keep [{number}] in the\n\
                   subject line, so that your message joins the same case.\n\
                   \n\
                   This acknowledgement was sent automatically; there is no need to reply to it.\n\
                   \n\
                   Kind regards\n\
                   The {queue} team\n"
                .into(),
        }
    }
}

impl AckTemplate {
    /// Checks that every `{...}` is a known placeholder (for config validation at start).
    pub fn validate(&self) -> Result<(), String> {
        for (what, text) in [("subject", &self.subject), ("body", &self.body)] {
            let mut rest = text.as_str();
            while let Some(open) = rest.find('{') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('}') else {
                    return Err(format!("{what}: unclosed '{{'"));
                };
                let name = &after[..close];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(format!("{what}: unknown placeholder {{{name}}} (known: {{number}}, {{subject}}, {{due}}, {{queue}})"));
                }
                rest = &after[close + 1..];
            }
        }
        if self.subject.trim().is_empty() {
            return Err("subject: must not be empty".into());
        }
        Ok(())
    }
}

/// Fills placeholders in one pass, so text coming from the customer (their subject) is never
/// expanded again. Unknown `{...}` stay as they are.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| values.iter().find(|(k, _)| *k == &after[..close]).map(|(_, v)| (close, v))) {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The customer's subject made safe for a header and a body line: one line, no control
/// characters, our tag removed (it is put first anyway), bounded length.
fn clean_subject(original: &str, tag: &str) -> String {
    let without_tag = original.replace(tag, " ");
    let one_line: String = without_tag.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut words = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    const MAX_CHARS: usize = 200;
    if words.chars().count() > MAX_CHARS {
        words = words.chars().take(MAX_CHARS).collect::<String>() + "…";
    }
    if words.is_empty() { "(no subject)".into() } else { words }
}

fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// An acknowledgement's text, filled in: the registration number made one line, the subject
/// (starting with the tag `[number]`), and the body (line ends as in the template).
pub struct AckText {
    pub number: String,
    pub subject: String,
    pub body: String,
}

impl AckTemplate {
    /// Fills in the template for one registration. The customer's subject is cleaned (one line,
    /// our tag removed, bounded) and never expanded as a template.
    pub fn fill_in<Tz: TimeZone>(&self, number: &str, original_subject: &str, due: DateTime<Tz>, queue: &str) -> AckText
    where
        Tz::Offset: Display,
    {
        let number = one_line(number);
        let tag = format!("[{number}]");
        let subject_value = clean_subject(original_subject, &tag);
        let due_text = due.format("%A, %-d %B %Y, %H:%M %Z").to_string();
        let queue = one_line(queue);
        let values =
            [("number", number.as_str()), ("subject", subject_value.as_str()), ("due", due_text.as_str()), ("queue", queue.as_str())];
        let mut subject = one_line(&fill(&self.subject, &values));
        if !subject.starts_with(&tag) {
            subject = format!("{tag} {subject}");
        }
        let body = fill(&self.body, &values);
        AckText { number, subject, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::compose::acknowledgement as render;
    use chrono::Utc;
    use mail_parser::MessageParser;

    fn own() -> HashSet<String> {
        ["support@example.com", "sales@example.com"].into_iter().map(String::from).collect()
    }

    fn parse(raw: &str) -> mail_parser::Message<'_> {
        MessageParser::default().parse(raw.as_bytes()).expect("parses")
    }

    const NORMAL: &str = "From: Jane Customer <jane@customer.example>\r\nTo: support@example.com\r\nSubject: My order\r\nMessage-ID: <abc@customer.example>\r\n\r\nHello, where is my order?\r\n";

    fn with_header(header: &str) -> String {
        format!("{header}\r\n{NORMAL}")
    }

    #[test]
    fn a_normal_customer_mail_gets_an_acknowledgement() {
        assert_eq!(skip_reason("jane@customer.example", &parse(NORMAL), &own()), None);
        assert_eq!(skip_reason("<jane@customer.example>", &parse(NORMAL), &own()), None);
        assert_eq!(skip_reason("jane@customer.example", &parse(&with_header("Auto-Submitted: no")), &own()), None);
        assert_eq!(skip_reason("jane@customer.example", &parse(&with_header("Auto-Submitted: No (a person wrote this)")), &own()), None);
        assert_eq!(skip_reason("jane@customer.example", &parse(&with_header("Precedence: first-class")), &own()), None);
        assert_eq!(skip_reason("jane@customer.example", &parse(&with_header("X-Auto-Response-Suppress: DR, RN, NRN")), &own()), None);
        assert_eq!(skip_reason("postmaster-fan@customer.example", &parse(NORMAL), &own()), None);
    }

    #[test]
    fn null_and_system_senders_are_skipped() {
        let msg = parse(NORMAL);
        assert_eq!(skip_reason("", &msg, &own()), Some("null sender"));
        assert_eq!(skip_reason("<>", &msg, &own()), Some("null sender"));
        assert_eq!(skip_reason(" <> ", &msg, &own()), Some("null sender"));
        for sender in [
            "MAILER-DAEMON@mx.customer.example",
            "postmaster@customer.example",
            "owner-announce@lists.example",
            "announce-request@lists.example",
            "announce-bounces+jane=customer.example@lists.example",
            "noreply@shop.example",
            "no-reply@shop.example",
            "do-not-reply@shop.example",
        ] {
            assert_eq!(skip_reason(sender, &msg, &own()), Some("system sender"), "{sender}");
        }
        let from_daemon = "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nTo: support@example.com\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(skip_reason("relay@mx.example", &parse(from_daemon), &own()), Some("system sender"));
    }

    #[test]
    fn auto_submitted_mail_is_skipped() {
        for header in [
            "Auto-Submitted: auto-replied",
            "Auto-Submitted: auto-generated",
            "auto-submitted: Auto-Notified; owner-email=\"x@y\"",
            "X-Autoreply: yes",
            "X-Autorespond: vacation",
        ] {
            assert_eq!(skip_reason("jane@customer.example", &parse(&with_header(header)), &own()), Some("auto-submitted"), "{header}");
        }
    }

    #[test]
    fn bulk_and_list_mail_is_skipped() {
        for header in ["Precedence: bulk", "Precedence: list", "Precedence: JUNK", "Precedence: auto_reply"] {
            assert_eq!(skip_reason("jane@customer.example", &parse(&with_header(header)), &own()), Some("bulk precedence"), "{header}");
        }
        for header in [
            "List-Id: Announcements <announce.lists.example>",
            "List-Unsubscribe: <mailto:leave@lists.example>",
            "List-Post: <mailto:announce@lists.example>",
            "list-help: <https://lists.example/help>",
        ] {
            assert_eq!(skip_reason("jane@customer.example", &parse(&with_header(header)), &own()), Some("list mail"), "{header}");
        }
    }

    #[test]
    fn auto_response_suppression_is_honoured() {
        for header in ["X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress: OOF, AutoReply", "X-Auto-Response-Suppress: DR,OAR"] {
            assert_eq!(
                skip_reason("jane@customer.example", &parse(&with_header(header)), &own()),
                Some("auto-response suppressed"),
                "{header}"
            );
        }
    }

    #[test]
    fn delivery_and_disposition_reports_are_skipped() {
        let dsn = "From: relay@mx.customer.example\r\nTo: support@example.com\r\nSubject: Delivery Status Notification\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n--b--\r\n";
        assert_eq!(skip_reason("relay@mx.customer.example", &parse(dsn), &own()), Some("delivery or disposition report"));
        let mdn = "From: jane@customer.example\r\nTo: support@example.com\r\nSubject: Read\r\nMIME-Version: 1.0\r\nContent-Type: Multipart/Report; report-type=disposition-notification; boundary=x\r\n\r\n--x--\r\n";
        assert_eq!(skip_reason("jane@customer.example", &parse(mdn), &own()), Some("delivery or disposition report"));
    }

    #[test]
    fn our_own_addresses_are_skipped() {
        assert_eq!(skip_reason("Support@Example.com", &parse(NORMAL), &own()), Some("own address"));
        let from_us = "From: Sales <sales@example.com>\r\nTo: support@example.com\r\nSubject: [MR-2026-000001-3] We have received your message\r\n\r\nbody\r\n";
        assert_eq!(skip_reason("forwarder@relay.example", &parse(from_us), &own()), Some("own address"));
    }

    #[test]
    fn reasons_never_contain_addresses() {
        let cases = [
            ("", NORMAL.to_string()),
            ("support@example.com", NORMAL.to_string()),
            ("jane@customer.example", with_header("Precedence: bulk")),
        ];
        for (sender, raw) in cases {
            let reason = skip_reason(sender, &parse(&raw), &own()).unwrap();
            assert!(!reason.contains('@'), "{reason}");
        }
    }

    fn render_default(subject: &str, message_id: Option<&str>) -> Vec<u8> {
        let due = Utc.with_ymd_and_hms(2026, 3, 4, 15, 30, 0).unwrap();
        render(
            &AckTemplate::default(),
            "MR-2026-000123-7",
            subject,
            due,
            "support",
            "Support <support@example.com>",
            "jane@customer.example",
            message_id,
            "mx.example.com",
        )
    }

    #[test]
    fn render_builds_a_threadable_auto_reply() {
        let raw = render_default("Where is my order?", Some("<abc@customer.example>"));
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(!text.replace("\r\n", "").contains('\n'), "only CRLF line ends:\n{text}");
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("[MR-2026-000123-7] We have received your message: Where is my order?"));
        assert_eq!(msg.from().unwrap().first().unwrap().address(), Some("support@example.com"));
        assert_eq!(msg.from().unwrap().first().unwrap().name(), Some("Support"));
        assert_eq!(msg.to().unwrap().first().unwrap().address(), Some("jane@customer.example"));
        assert!(msg.date().is_some());
        let id = msg.message_id().unwrap();
        assert!(id.starts_with("ack.MR-2026-000123-7.") && id.ends_with("@mx.example.com"), "{id}");
        assert_eq!(msg.in_reply_to().as_text(), Some("abc@customer.example"));
        assert_eq!(msg.references().as_text(), Some("abc@customer.example"));
        assert_eq!(msg.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
        assert!(msg.header_raw("Precedence").is_none(), "RFC 3834 §3.1.8: no Precedence header");
        let ct = msg.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
        assert_eq!(ct.attribute("charset"), Some("utf-8"));
        let body = msg.body_text(0).unwrap();
        assert!(body.contains("MR-2026-000123-7"), "{body}");
        assert!(body.contains("[MR-2026-000123-7]"), "asks to keep the tag: {body}");
        assert!(body.contains("Wednesday, 4 March 2026, 15:30 UTC"), "{body}");
        assert!(body.contains("support team"), "{body}");
        assert!(body.contains("Where is my order?"), "{body}");
        // Our own acknowledgement must never be acknowledged in turn.
        let own: HashSet<String> = HashSet::new();
        assert_eq!(skip_reason("someone@else.example", &msg, &own), Some("auto-submitted"));
    }

    #[test]
    fn render_without_original_message_id_or_subject() {
        let raw = render_default("", None);
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("[MR-2026-000123-7] We have received your message: (no subject)"));
        assert!(msg.header_raw("In-Reply-To").is_none());
        assert!(msg.header_raw("References").is_none());
        assert_eq!(msg.from().unwrap().first().unwrap().address(), Some("support@example.com"));
    }

    #[test]
    fn customer_text_is_neither_expanded_nor_able_to_inject_headers() {
        let raw = render_default("[MR-2026-000123-7] Re: {number} {due}\r\nBcc: victim@example.org", Some("abc@customer.example"));
        let msg = MessageParser::default().parse(&raw).unwrap();
        let subject = msg.subject().unwrap();
        assert!(subject.starts_with("[MR-2026-000123-7] "), "{subject}");
        assert_eq!(subject.matches("[MR-2026-000123-7]").count(), 1, "tag only once: {subject}");
        assert!(subject.contains("{number} {due}"), "customer text is not a template: {subject}");
        assert!(msg.bcc().is_none(), "no header injection");
    }

    #[test]
    fn non_ascii_subjects_and_templates_are_encoded() {
        let template =
            AckTemplate { subject: "Eingangsbestätigung {subject}".into(), body: "Grüße, {queue}: {number} bis {due}\n".into() };
        let due = Utc.with_ymd_and_hms(2026, 1, 2, 9, 0, 0).unwrap();
        let raw = render(
            &template,
            "MR-2026-000001-3",
            "Bestellung über 5 €",
            due,
            "sales",
            "sales@example.com",
            "Jörg <joerg@kunde.example>",
            None,
            "mx.example.com",
        );
        assert!(raw.is_ascii(), "8-bit text is MIME-encoded");
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("[MR-2026-000001-3] Eingangsbestätigung Bestellung über 5 €"));
        assert_eq!(msg.to().unwrap().first().unwrap().name(), Some("Jörg"));
        assert_eq!(msg.body_text(0).unwrap().trim_end(), "Grüße, sales: MR-2026-000001-3 bis Friday, 2 January 2026, 09:00 UTC");
    }

    #[test]
    fn template_validation() {
        assert!(AckTemplate::default().validate().is_ok());
        let bad = AckTemplate { subject: "{numbr}".into(), body: String::new() };
        assert!(bad.validate().unwrap_err().contains("numbr"));
        let unclosed = AckTemplate { subject: "x".into(), body: "{due".into() };
        assert!(unclosed.validate().is_err());
        assert_eq!(fill("{a} {b} {c", &[("a", "{b}"), ("b", "2")]), "{b} 2 {c");
    }
}
