//! The one mail composer (mail-builder): acknowledgements and staff replies as RFC 5322 bytes.
//!
//! Both carry the registration tag `[number]` in the subject (so the customer's answer threads
//! back into its case), a Message-ID of ours naming the kind and the number, the Date,
//! In-Reply-To/References pointing at the customer's message, and a text body with CRLF line
//! ends. An acknowledgement is also marked as an automatic reply (RFC 3834 §5).

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;

use super::ack::AckTemplate;

/// What differs between two renderings of the same mail: the time and the Message-ID's random part.
struct Stamp {
    date: i64,
    nonce: String,
}

/// One mail of ours, ready to serialise.
struct Draft<'a> {
    from: Address<'a>,
    to: Address<'a>,
    subject: String,
    message_id: String,
    /// The message answered (In-Reply-To) and the References list (ending with it), without `<>`.
    answers: Option<(String, Vec<String>)>,
    /// An automatic reply: `Auto-Submitted: auto-replied` and `X-Auto-Response-Suppress: All`.
    auto_replied: bool,
    text: String,
}

fn compose(draft: Draft, date: i64) -> Vec<u8> {
    let mut builder =
        MessageBuilder::new().from(draft.from).to(draft.to).subject(draft.subject).date(Date::new(date)).message_id(draft.message_id);
    if let Some((original, references)) = draft.answers {
        builder = builder.in_reply_to(MessageId::new(original)).references(MessageId::from(references));
    }
    if draft.auto_replied {
        builder = builder.header("Auto-Submitted", Raw::new("auto-replied")).header("X-Auto-Response-Suppress", Raw::new("All"));
    }
    let mut out = Vec::with_capacity(2048);
    builder.text_body(crlf(&draft.text)).serialize(&mut out);
    out
}

/// `kind.NUMBER.RANDOM@host`: ours, unique, and telling at a glance what it answered.
fn message_id(kind: &str, id_part: &str, nonce: &str, hostname: &str) -> String {
    format!("{kind}.{id_part}.{nonce}@{hostname}")
}

/// Normalises line ends to CRLF (templates come from TOML, and staff text from JSON, with bare LF).
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n")
}

/// `bytes` random bytes as hex, or `None` when the generator fails.
fn random_hex(bytes: usize) -> Option<String> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// "Name <addr@x>" or "addr@x" → (name, address).
fn split_mailbox(mailbox: &str) -> (Option<&str>, &str) {
    let mailbox = mailbox.trim();
    match (mailbox.rfind('<'), mailbox.ends_with('>')) {
        (Some(open), true) => {
            let name = mailbox[..open].trim().trim_matches('"').trim();
            let address = mailbox[open + 1..mailbox.len() - 1].trim();
            ((!name.is_empty()).then_some(name), address)
        }
        _ => (None, mailbox),
    }
}

fn mailbox_address(mailbox: &str) -> Address<'_> {
    match split_mailbox(mailbox) {
        (Some(name), address) => (name, address).into(),
        (None, address) => address.into(),
    }
}

/// Builds the acknowledgement as an RFC 5322 message (CRLF line ends).
///
/// `from` is our queue address (optionally `Name <address>`), `to` the customer. The subject
/// starts with the registration tag `[number]` so that the customer's reply threads back;
/// In-Reply-To/References point at the customer's message; `Auto-Submitted: auto-replied`
/// (RFC 3834 §5) and `X-Auto-Response-Suppress: All` keep other responders from answering us.
/// There is deliberately no `Precedence` header (RFC 3834 §3.1.8).
#[allow(clippy::too_many_arguments)]
pub fn acknowledgement<Tz: TimeZone>(
    template: &AckTemplate,
    number: &str,
    original_subject: &str,
    due: DateTime<Tz>,
    queue: &str,
    from: &str,
    to: &str,
    original_message_id: Option<&str>,
    hostname: &str,
) -> Vec<u8>
where
    Tz::Offset: Display,
{
    // Uniqueness, not secrecy, is what a Message-ID needs; the clock will do if randomness fails.
    let nonce = random_hex(8).unwrap_or_else(|| {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        (0..8).map(|i| format!("{:02x}", (nanos >> ((i % 8) * 8)) as u8)).collect()
    });
    let stamp = Stamp { date: chrono::Utc::now().timestamp(), nonce };
    acknowledgement_at(template.fill_in(number, original_subject, due, queue), from, to, original_message_id, hostname, stamp)
}

fn acknowledgement_at(
    text: super::ack::AckText,
    from: &str,
    to: &str,
    original_message_id: Option<&str>,
    hostname: &str,
    stamp: Stamp,
) -> Vec<u8> {
    let id_part: String = text.number.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    let answers = original_message_id
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').trim())
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
        .map(|id| (id.to_string(), vec![id.to_string()]));
    let draft = Draft {
        from: mailbox_address(from),
        to: mailbox_address(to),
        subject: text.subject,
        message_id: message_id("ack", &id_part, &stamp.nonce, hostname.trim()),
        answers,
        auto_replied: true,
        text: text.body,
    };
    compose(draft, stamp.date)
}

/// The customer's message a staff reply answers.
pub struct Original<'a> {
    /// Our queue address the reply is sent from.
    pub from: &'a str,
    pub to_name: Option<&'a str>,
    pub to_address: &'a str,
    pub subject: Option<&'a str>,
    pub message_id: Option<&'a str>,
    /// Its References (the thread before it).
    pub references: &'a [String],
    /// The subject the agent wrote instead of "Re: …" (tagged all the same).
    pub own_subject: Option<&'a str>,
}

/// A staff reply, rendered.
pub struct Reply {
    pub data: Vec<u8>,
    pub message_id: String,
    pub subject: String,
}

#[derive(Debug, thiserror::Error)]
#[error("no randomness for a Message-ID")]
pub struct NoRandomness;

/// Builds a staff reply to `original` (CRLF line ends): `Re: [number] subject`, threaded under
/// the customer's message.
pub fn reply(original: &Original, number: &str, body: &str, hostname: &str) -> Result<Reply, NoRandomness> {
    let stamp = Stamp { date: chrono::Utc::now().timestamp(), nonce: random_hex(8).ok_or(NoRandomness)? };
    Ok(reply_at(original, number, body, hostname, stamp))
}

fn reply_at(original: &Original, number: &str, body: &str, hostname: &str, stamp: Stamp) -> Reply {
    let subject = match original.own_subject.filter(|s| !s.trim().is_empty()) {
        Some(own) => own_subject(own, number),
        None => reply_subject(original.subject, number),
    };
    let id_part: String = number.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let message_id = message_id("reply", &id_part, &stamp.nonce, hostname);
    let answers = original
        .message_id
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
        .map(|original_id| {
            // References: the thread so far (bounded), then the message answered.
            let mut references: Vec<String> = original.references.iter().rev().take(10).rev().cloned().collect();
            references.retain(|r| r != original_id);
            references.push(original_id.to_string());
            (original_id.to_string(), references)
        });
    let draft = Draft {
        from: Address::new_address(None::<String>, original.from.to_string()),
        to: Address::new_address(original.to_name.filter(|n| !n.trim().is_empty()), original.to_address),
        subject: subject.clone(),
        message_id: message_id.clone(),
        answers,
        auto_replied: false,
        text: body.to_string(),
    };
    Reply { data: compose(draft, stamp.date), message_id, subject }
}

/// The agent's own subject, one line, with the tag (`[NUMBER] subject` unless it has it already).
fn own_subject(own: &str, number: &str) -> String {
    let tag = format!("[{number}]");
    let text: String = own.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.chars().count() > 200 {
        words = words.chars().take(200).collect::<String>() + "…";
    }
    if words.contains(&tag) { words } else { format!("{tag} {words}") }
}

/// `Re: [NUMBER] subject`: the tag threads the customer's answer back into the case.
fn reply_subject(original: Option<&str>, number: &str) -> String {
    let tag = format!("[{number}]");
    let text: String = original.unwrap_or("").replace(&tag, " ").chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    while let Some(rest) = words.get(..3).filter(|p| p.eq_ignore_ascii_case("re:")).map(|_| words[3..].trim_start().to_string()) {
        words = rest;
    }
    if words.chars().count() > 200 {
        words = words.chars().take(200).collect::<String>() + "…";
    }
    if words.is_empty() { format!("Re: {tag}") } else { format!("Re: {tag} {words}") }
}

/// What a staff notification is about (no customer data: numbers, queue, times, priority).
pub struct Notice<'a> {
    /// `warning` (the due time approaches), `breach` (it passed), `new` (a new urgent or VIP case).
    pub kind: &'a str,
    /// The case's opening registration number.
    pub number: &'a str,
    pub queue: &'a str,
    pub priority: &'a str,
    /// The due time as shown (local time of the SLA calendar), if the case has one.
    pub due: Option<String>,
    /// The case page's address, when the web page's address is configured.
    pub link: Option<String>,
}

/// Builds a notification to a staff user (CRLF line ends). The number goes into the subject
/// without the registration tag's brackets, so an answer to it never threads into the case; it
/// is marked automatic (RFC 3834) like an acknowledgement.
pub fn notice(notice: &Notice, from: &str, to: &str, hostname: &str) -> Result<Vec<u8>, NoRandomness> {
    let stamp = Stamp { date: chrono::Utc::now().timestamp(), nonce: random_hex(8).ok_or(NoRandomness)? };
    Ok(notice_at(notice, from, to, hostname, stamp))
}

fn notice_at(notice: &Notice, from: &str, to: &str, hostname: &str, stamp: Stamp) -> Vec<u8> {
    let (subject, lead) = match notice.kind {
        "warning" => ("SLA warning", "The due time of this case is near."),
        "breach" => ("SLA breached", "This case is past its due time and has been escalated."),
        _ => ("New case", "A new case that asks for attention arrived in your queue."),
    };
    let mut text = format!("{lead}\n\nCase:     {}\nQueue:    {}\nPriority: {}\n", notice.number, notice.queue, notice.priority);
    if let Some(due) = &notice.due {
        text.push_str(&format!("Due:      {due}\n"));
    }
    if let Some(link) = &notice.link {
        text.push_str(&format!("\n{link}\n"));
    }
    text.push_str("\n-- \nmailroom: you get this because you work this queue. Your notifications are also on the web page.\n");
    let id_part: String = notice.number.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let draft = Draft {
        from: mailbox_address(from),
        to: mailbox_address(to),
        subject: format!("{subject}: {} ({})", notice.number, notice.queue),
        message_id: message_id(&format!("notice-{}", notice.kind), &id_part, &stamp.nonce, hostname.trim()),
        answers: None,
        auto_replied: true,
        text,
    };
    compose(draft, stamp.date)
}

#[cfg(test)]
mod tests {
    //! The expected files were rendered by the two composers this one replaced (`ack::render` and
    //! the HTTP API's `render_reply`), with the random part of the Message-ID set to a constant:
    //! the output must stay the same byte for byte.

    use super::*;
    use chrono::Utc;

    /// The Date of the expected files (Sun, 29 Nov 2026 23:38:45 +0000).
    const DATE: i64 = 1_795_995_525;
    const NONCE: &str = "0123456789abcdef";

    fn stamp() -> Stamp {
        Stamp { date: DATE, nonce: NONCE.into() }
    }

    #[allow(clippy::too_many_arguments)]
    fn ack(
        template: &AckTemplate,
        number: &str,
        subject: &str,
        due: DateTime<Utc>,
        queue: &str,
        from: &str,
        to: &str,
        id: Option<&str>,
        host: &str,
    ) -> Vec<u8> {
        acknowledgement_at(template.fill_in(number, subject, due, queue), from, to, id, host, stamp())
    }

    fn expect(name: &str, got: &[u8]) {
        let want = std::fs::read(format!("{}/src/outbox/testdata/{name}.eml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(&want), "{name}");
        assert_eq!(got, want, "{name}");
    }

    #[test]
    fn acknowledgements_are_rendered_as_before() {
        let due = Utc.with_ymd_and_hms(2026, 3, 4, 15, 30, 0).unwrap();
        let t = AckTemplate::default();
        let support = "Support <support@example.com>";
        let jane = "jane@customer.example";
        let host = "mx.example.com";
        expect(
            "ack1",
            &ack(&t, "MR-2026-000123-7", "Where is my order?", due, "support", support, jane, Some("<abc@customer.example>"), host),
        );
        expect("ack2", &ack(&t, "MR-2026-000123-7", "", due, "support", "support@example.com", jane, None, " mx.example.com "));
        let injection = "[MR-2026-000123-7] Re: {number} {due}\r\nBcc: victim@example.org";
        expect("ack3", &ack(&t, "MR-2026-000123-7", injection, due, "support", support, jane, Some("abc@customer.example"), host));
        let german =
            AckTemplate { subject: "Eingangsbestätigung {subject}".into(), body: "Grüße, {queue}: {number} bis {due}\n".into() };
        let due2 = Utc.with_ymd_and_hms(2026, 1, 2, 9, 0, 0).unwrap();
        let joerg = "Jörg <joerg@kunde.example>";
        expect("ack4", &ack(&german, "MR-2026-000001-3", "Bestellung über 5 €", due2, "sales", "sales@example.com", joerg, None, host));
        let long = "x".repeat(500);
        let team = "\"Support Team\" <support@example.com>";
        let jane_doe = "\"Jane Doe\" <jane@customer.example>";
        expect("ack5", &ack(&t, "MR 2026/1", &long, due, "support", team, jane_doe, Some("<has space@x>"), host));
    }

    #[test]
    fn replies_are_rendered_as_before() {
        let host = "mx.example.com";
        let refs: Vec<String> = ["r1@x", "abc@customer.example", "r2@x"].map(String::from).to_vec();
        let original = Original {
            from: "support@example.com",
            to_name: Some("Jane Doe"),
            to_address: "jane@customer.example",
            subject: Some("RE: re: [MR-2026-000001-7] Broken\r\n order"),
            message_id: Some("<abc@customer.example>"),
            references: &refs,
            own_subject: None,
        };
        let r = reply_at(&original, "MR-2026-000001-7", "Hello Jane,\nwe are on it.\n\nRegards\r\nSupport\n", host, stamp());
        expect("reply1", &r.data);
        assert_eq!(r.message_id, "reply.MR-2026-000001-7.0123456789abcdef@mx.example.com");
        assert_eq!(r.subject, "Re: [MR-2026-000001-7] Broken order");

        let refs: Vec<String> = (0..14).map(|i| format!("r{i}@x")).collect();
        let original = Original {
            from: "sales@example.com",
            to_name: Some("  "),
            to_address: "jörg@kunde.example",
            subject: Some("Réclamation über 5 €"),
            message_id: Some("orig@kunde.example"),
            references: &refs,
            own_subject: None,
        };
        let r = reply_at(&original, "MR-2026-000002-5", "Grüße\r\n", host, stamp());
        expect("reply2", &r.data);
        assert_eq!(r.subject, "Re: [MR-2026-000002-5] Réclamation über 5 €");

        let original = Original {
            from: "support@example.com",
            to_name: None,
            to_address: "",
            subject: None,
            message_id: None,
            references: &[],
            own_subject: None,
        };
        let r = reply_at(&original, "MR 2026.3", "x", host, stamp());
        expect("reply3", &r.data);
        assert_eq!((r.message_id.as_str(), r.subject.as_str()), ("reply.MR-2026-3.0123456789abcdef@mx.example.com", "Re: [MR 2026.3]"));

        let long = "x".repeat(500);
        let refs = vec!["r@x".to_string()];
        let original = Original {
            from: "support@example.com",
            to_name: Some("Jane"),
            to_address: "jane@customer.example",
            subject: Some(&long),
            message_id: Some("<bad id@x>"),
            references: &refs,
            own_subject: None,
        };
        let r = reply_at(&original, "MR-2026-000004-1", "line\rline\n", host, stamp());
        expect("reply4", &r.data);
    }

    #[test]
    fn reply_subjects_carry_the_tag_once() {
        let n = "MR-2026-000001-7";
        assert_eq!(reply_subject(Some("Broken order"), n), "Re: [MR-2026-000001-7] Broken order");
        assert_eq!(reply_subject(Some("RE: re: [MR-2026-000001-7] Broken\r\n order"), n), "Re: [MR-2026-000001-7] Broken order");
        assert_eq!(reply_subject(None, n), "Re: [MR-2026-000001-7]");
        assert_eq!(reply_subject(Some("Réclamation"), n), "Re: [MR-2026-000001-7] Réclamation");
        assert!(reply_subject(Some(&"x".repeat(500)), n).chars().count() < 230);
        assert_eq!(own_subject("Your refund\r\n", n), "[MR-2026-000001-7] Your refund");
        assert_eq!(own_subject("About [MR-2026-000001-7]", n), "About [MR-2026-000001-7]", "tagged once");
    }

    #[test]
    fn the_random_part_differs_between_renderings() {
        let original = Original {
            from: "support@example.com",
            to_name: None,
            to_address: "a@b",
            subject: None,
            message_id: None,
            references: &[],
            own_subject: None,
        };
        let a = reply(&original, "MR-1", "x", "h").unwrap();
        let b = reply(&original, "MR-1", "x", "h").unwrap();
        assert_ne!(a.message_id, b.message_id);
    }

    #[test]
    fn a_notice_names_the_case_without_the_registration_tag_and_is_automatic() {
        let notice = Notice {
            kind: "breach",
            number: "MR-2026-000042-7",
            queue: "support",
            priority: "urgent",
            due: Some("2026-11-30 17:00 UTC".into()),
            link: Some("https://mailroom.example.org/cases/42".into()),
        };
        let data =
            String::from_utf8(notice_at(&notice, "mailroom@mx.example.org", "lena@staff.example.org", "mx.example.org", stamp())).unwrap();
        assert!(data.contains("Subject: SLA breached: MR-2026-000042-7 (support)\r\n"), "{data}");
        assert!(!data.contains("[MR-2026-000042-7]"), "no tag: an answer must not thread into the case");
        assert!(data.contains("Auto-Submitted: auto-replied\r\n") && data.contains("To: <lena@staff.example.org>\r\n"), "{data}");
        assert!(data.contains("Message-ID: <notice-breach.MR-2026-000042-7.0123456789abcdef@mx.example.org>"), "{data}");
        assert!(
            data.contains("Due:      2026-11-30 17:00 UTC\r\n") && data.contains("https://mailroom.example.org/cases/42\r\n"),
            "{data}"
        );
    }
}
