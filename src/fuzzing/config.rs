//! The configuration target: arbitrary text through `Settings::from_str`, the whole validation
//! including the rules compiler and the SLA calendar. A refused file gets an error that points
//! somewhere ("FILE:LINE: key: reason" on one line); an accepted one must then work: its rules
//! evaluate, its calendar yields due times, its registration numbers read back, its recipient
//! checks route to configured queues and its acknowledgement texts render.

use std::path::Path;

use crate::config::Settings;
use crate::intake::record::{Mailbox, Record};
use crate::intake::regnum::SubjectTag;
use crate::intake::sla::Priority;
use crate::intake::{Envelope, Protocol, RecipientCheck};

pub fn run(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    match Settings::from_str("fuzz.toml", text, Path::new("/nonexistent")) {
        Err(e) => {
            let shown = e.to_string();
            assert_eq!(e.file, "fuzz.toml");
            assert!(e.line <= text.lines().count() + 1, "line {} is past the end of the file: {shown}", e.line);
            assert!(!e.key.is_empty() && !e.reason.is_empty(), "an error without key or reason: {shown:?}");
            assert!(!shown.contains(['\n', '\r']), "a config error must be one line: {shown:?}");
        }
        Ok(settings) => exercise(&settings),
    }
}

fn exercise(settings: &Settings) {
    let queues: Vec<&str> = settings.config.queues.iter().map(|q| q.name.as_str()).collect();
    let known_queue = |q: &str| queues.is_empty() || queues.contains(&q);

    for seq in [1, 42, 999_999, 123_456_789_012] {
        let number = settings.policy.reg_format.format(2026, seq);
        let year = settings.policy.reg_format.counter_year(2026);
        assert_eq!(
            settings.policy.reg_format.parse_number(&number, false),
            Ok((year, seq)),
            "registration number {number:?} does not read back (format {:?})",
            settings.config.registration.format
        );
        let subject = format!("Re: [{number}] order");
        let tags = settings.policy.reg_format.find_tags(&subject);
        assert!(
            tags.iter().any(|t| matches!(t, SubjectTag::Valid { year: y, seq: s, .. } if *y == year && *s == seq)),
            "the tag in {subject:?} is not found"
        );
    }

    let mut recipients = Vec::new();
    for (address, queue) in &settings.policy.addresses {
        match crate::intake::check_recipient(&settings.policy, address) {
            RecipientCheck::Accept(q) => assert_eq!(&q, queue, "{address} routes elsewhere"),
            other => panic!("a configured address is refused: {address} → {other:?}"),
        }
        recipients.push((address.clone(), queue.clone()));
    }
    if let RecipientCheck::Accept(q) = crate::intake::check_recipient(&settings.policy, "postmaster") {
        assert!(known_queue(&q), "postmaster routes to unknown queue {q}");
    }
    recipients.truncate(3);
    if recipients.is_empty() {
        recipients.push(("postmaster".into(), settings.policy.default_queue().to_string()));
    }

    let received = chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("an instant");
    let dst_change = chrono::DateTime::from_timestamp(1_774_746_000, 0).expect("an instant"); // 2026-03-29 01:00 UTC
    for at in [received, dst_change] {
        for priority in [Priority::Urgent, Priority::Normal, Priority::Low] {
            let due = settings.policy.calendar.due(at, priority);
            assert!(due >= at, "{priority} due {due} before {at}");
        }
    }

    let raw = b"From: Ana <ana@customer.org>\r\nTo: support@example.com\r\nSubject: complaint about order 42\r\nImportance: high\r\nX-Priority: 1\r\n\r\nI want a refund for order #42.\r\n";
    let record = Record {
        parsed: true,
        from: vec![Mailbox { name: Some("Ana".into()), address: Some("ana@customer.org".into()) }],
        subject: Some("complaint about order 42".into()),
        ..Record::default()
    };
    let envelope = Envelope {
        mail_from: "ana@customer.org".into(),
        recipients,
        helo: "client.customer.org".into(),
        client_ip: [192, 0, 2, 1].into(),
        protocol: Protocol::Smtp,
        tls: None,
    };
    let headers = mail_parser::MessageParser::default().parse_headers(raw);
    for tier in [None, Some("vip"), Some("prospect")] {
        let (decision, _) = crate::intake::classify(&settings.policy, &envelope, &record, raw, received, None, tier, headers.as_ref());
        assert!(decision.queues.iter().all(|q| known_queue(q)), "unknown queue in {:?}", decision.queues);
        let queue = decision.queues.first().map_or("support", String::as_str);
        let template = settings.policy.acknowledgement_for(queue, decision.category.as_deref());
        let due = settings.policy.calendar.due(received, decision.priority).with_timezone(&settings.policy.calendar.timezone());
        let number = settings.policy.reg_format.format(2026, 7);
        let ack = crate::outbox::compose::acknowledgement(
            template,
            &number,
            "complaint",
            due,
            queue,
            "support@example.com",
            "ana@customer.org",
            None,
            "h",
        );
        let parsed = mail_parser::MessageParser::default().parse(&ack).expect("an acknowledgement parses");
        assert!(parsed.subject().unwrap_or_default().starts_with(&format!("[{number}]")), "the acknowledgement's subject lost the tag");
    }
}
