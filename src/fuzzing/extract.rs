//! The message target: a message as received, through everything the intake derives from it
//! (the record, classification, threading tags, the SLA, the acknowledgement) and everything the
//! IMAP view shows of it (sections, ENVELOPE, BODYSTRUCTURE).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use imap_codec::ResponseCodec;
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::NonEmptyVec;
use imap_codec::imap_types::fetch::{MessageDataItem, Part, Section};
use imap_codec::imap_types::response::{Data, Response};
use mail_parser::MessageParser;

use crate::config::{DEFAULT_CONFIG, Settings};
use crate::imap::render::Rendered;
use crate::intake::record::{self, Record};
use crate::intake::regnum::SubjectTag;
use crate::intake::{Envelope, Protocol};

/// Rules for every kind of condition (the demo's rules use only some), each with `continue`, so
/// that all of them are evaluated before the demo's own.
const EXTRA_RULES: &str = r#"
[[rules]]
name = "fuzz: body"
body_contains = ["refund", "kündigung"]
body_regex = "(?i)order\\s+#?\\d+"
tags = ["body"]
continue = true

[[rules]]
name = "fuzz: sender"
from = ["*@customer.org", "ana*"]
from_domain = ["customer.org", "*.example.net"]
priority = "low"
continue = true

[[rules]]
name = "fuzz: headers"
header = [{ name = "X-Priority", regex = "^[12]" }, { name = "List-Id", exists = false }, { name = "Subject", contains = "a" }]
size_over = 100
size_under = 100000
has_attachment = true
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
hours = "00:00-23:59"
tags = ["headers"]
continue = true

"#;

fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let text = DEFAULT_CONFIG.replacen("[[rules]]", &format!("{EXTRA_RULES}[[rules]]"), 1);
        Settings::from_str("fuzz-extract.toml", &text, std::path::Path::new("/nonexistent")).expect("the extract config is valid")
    })
}

pub fn run(raw: &[u8]) {
    let settings = settings();
    let parsed = record::parse_headers(raw);
    assert_eq!(parsed.message, MessageParser::default().parse_headers(raw), "the header block differs from mail-parser's");
    let headers = parsed.message;
    let record = record::extract_with_headers(raw, headers.as_ref(), parsed.body);
    check_record(raw, &record);
    classify(settings, raw, &record, headers.as_ref());
    render_for_imap(raw);
}

fn check_record(raw: &[u8], record: &Record) {
    // Only what the header block and the structure walk cannot tell is parsed in full; the
    // record must be the full parse's either way.
    assert_eq!(*record, record::full_parse(raw), "the record differs from the full parse");
    // The record is stored as JSON (sealed) and read back by the staff views.
    let json = serde_json::to_vec(record).expect("a record serialises");
    let back: Record = serde_json::from_slice(&json).expect("a stored record reads back");
    assert_eq!(back, *record, "the record does not survive storage");
}

fn classify(settings: &Settings, raw: &[u8], record: &Record, headers: Option<&mail_parser::Message>) {
    let envelope = Envelope {
        mail_from: record.from.iter().find_map(|m| m.address.clone()).unwrap_or_else(|| "customer@customer.org".into()),
        recipients: vec![("support@example.com".into(), "support".into()), ("sales@example.com".into(), "sales".into())],
        helo: "client.customer.org".into(),
        client_ip: [192, 0, 2, 1].into(),
        protocol: Protocol::Smtp,
        tls: None,
    };
    let received = chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("a valid instant");
    let queues: BTreeSet<&str> = settings.config.queues.iter().map(|q| q.name.as_str()).collect();
    for tier in [None, Some("vip")] {
        let (decision, tags) = crate::intake::classify(&settings.policy, &envelope, record, raw, received, None, tier, headers);
        assert!(!decision.queues.is_empty(), "a message must land in a queue");
        assert!(decision.queues.iter().all(|q| queues.contains(q.as_str())), "unknown queue in {:?}", decision.queues);
        if let Some(code) = &decision.category {
            assert!(settings.config.categories.iter().any(|c| &c.code == code), "unknown category {code}");
        }
        for tag in tags {
            if let SubjectTag::Valid { year, seq, text } = tag {
                let again = settings.policy.reg_format.parse_number(&text, false).expect("a valid tag parses again");
                assert_eq!(again, (year, seq));
            }
        }
        let due = settings.policy.calendar.due(received, decision.priority);
        assert!(due >= received, "due before received");
        acknowledge(settings, &envelope, record, headers, &decision.queues[0], decision.category.as_deref(), due);
    }
}

/// The acknowledgement built from the customer's subject and Message-ID must be one message
/// with exactly our header fields: nothing from the customer may add or split a field.
fn acknowledge(
    settings: &Settings,
    envelope: &Envelope,
    record: &Record,
    headers: Option<&mail_parser::Message>,
    queue: &str,
    category: Option<&str>,
    due: chrono::DateTime<chrono::Utc>,
) {
    if let Some(headers) = headers {
        let _ = crate::outbox::skip_reason(&envelope.mail_from, headers, &settings.policy.own_addresses);
    }
    let number = settings.policy.reg_format.format(2026, 123);
    let rendered = crate::outbox::compose::acknowledgement(
        settings.policy.acknowledgement_for(queue, category),
        &number,
        record.subject.as_deref().unwrap_or(""),
        due.with_timezone(&settings.policy.calendar.timezone()),
        queue,
        settings.policy.queue_address(queue).unwrap_or("support@example.com"),
        &envelope.mail_from,
        record.message_id.as_deref(),
        &settings.config.server.hostname,
    );
    let message = MessageParser::default().parse(&rendered).expect("an acknowledgement parses");
    let allowed = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "X-Auto-Response-Suppress",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ];
    let mut seen = BTreeSet::new();
    for header in message.headers() {
        let name = header.name.as_str();
        assert!(allowed.iter().any(|a| a.eq_ignore_ascii_case(name)), "an acknowledgement carries a header field it should not: {name}");
        assert!(seen.insert(name.to_ascii_lowercase()), "header field {name} appears twice");
    }
    let subject = message.subject().unwrap_or_default();
    assert!(subject.starts_with(&format!("[{number}]")), "the subject must start with the tag: {subject:?}");
}

/// IMAP's view of the message: BODY[] is the rendered bytes, HEADER and TEXT of the top-level
/// message make it up, every section of every part can be fetched, and the FETCH response with
/// ENVELOPE and BODYSTRUCTURE encodes into something an IMAP client parses back.
fn render_for_imap(raw: &[u8]) {
    let x_headers = "X-Mailroom-Registration: MR-2026-000123-4\r\nX-Mailroom-Priority: normal\r\n";
    let r = Rendered::new(x_headers, raw);
    assert_eq!(r.section(None).as_deref(), Some(&r.data[..]));
    let header = r.section(Some(&Section::Header(None))).expect("the top-level header");
    let text = r.section(Some(&Section::Text(None))).expect("the top-level text");
    assert!([header, text].concat() == r.data, "BODY[HEADER] followed by BODY[TEXT] is not BODY[]");
    for path in part_paths() {
        let part = Part(path);
        if r.section(Some(&Section::Part(part.clone()))).is_none() {
            continue;
        }
        for section in [Section::Mime(part.clone()), Section::Header(Some(part.clone())), Section::Text(Some(part.clone()))] {
            let _ = r.section(Some(&section));
        }
    }
    let items = vec![
        MessageDataItem::Envelope(r.envelope.clone()),
        MessageDataItem::BodyStructure(r.body_structure.clone()),
        MessageDataItem::Body(r.body.clone()),
        MessageDataItem::Rfc822Size(r.len() as u32),
    ];
    let fetch = Response::Data(Data::Fetch {
        seq: std::num::NonZeroU32::new(1).expect("one"),
        items: NonEmptyVec::try_from(items).expect("four items"),
    });
    let encoded = ResponseCodec::default().encode(&fetch).dump();
    match ResponseCodec::default().decode(&encoded) {
        Ok((rest, _)) => assert!(rest.is_empty(), "trailing bytes after the FETCH response"),
        Err(e) => panic!("a FETCH response an IMAP client cannot parse ({e:?}): {:?}", String::from_utf8_lossy(&encoded)),
    }
}

/// Part numbers to try: 1 … 4 at each of three levels.
fn part_paths() -> Vec<NonEmptyVec<std::num::NonZeroU32>> {
    let n = |i: u32| std::num::NonZeroU32::new(i).expect("positive");
    let mut out = Vec::new();
    for a in 1..=4 {
        out.push(vec![n(a)]);
        for b in 1..=4 {
            out.push(vec![n(a), n(b)]);
            for c in 1..=2 {
                out.push(vec![n(a), n(b), n(c)]);
            }
        }
    }
    out.into_iter().map(|v| NonEmptyVec::try_from(v).expect("non-empty")).collect()
}
