//! Extraction of the basic record (`store::record::Record`) from a message with mail-parser.

use mail_parser::{Address, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders};

use super::structure;
use crate::store::record::{Attachment, Mailbox, Record};

fn mailboxes(address: Option<&Address>) -> Vec<Mailbox> {
    address
        .map(|a| a.iter().map(|m| Mailbox { name: m.name().map(str::to_string), address: m.address().map(str::to_string) }).collect())
        .unwrap_or_default()
}

fn ids(value: &HeaderValue) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Fills the message-derived part of a record. The envelope part is set by the caller.
///
/// The record needs the headers and, for a message that can carry attachments (see
/// `headers_suffice`), each attachment's name, type and size: the MIME structure gives those
/// (`structure`), and only what the walk cannot mirror exactly is parsed in full, which decodes
/// every part and costs several times more.
pub fn extract(raw: &[u8]) -> Record {
    let headers = structure::parse_headers(raw);
    extract_with_headers(raw, headers.message.as_ref(), headers.body)
}

/// The same, for a caller that already parsed the header block (and uses it for more).
pub fn extract_with_headers<'x>(raw: &'x [u8], headers: Option<&Message<'x>>, body: structure::Body<'x>) -> Record {
    // No header block (e.g. the data starts with a blank line or binary junk) does not mean no
    // message: the full parser may still find a body, and the record must say what it says.
    let Some(headers) = headers else { return full_parse(raw) };
    if headers_suffice(headers) {
        return from_message(headers);
    }
    if let Some(attachments) = headers.parts.first().and_then(|root| structure::attachments(raw, root, body)) {
        return Record { attachments, ..from_message(headers) };
    }
    full_parse(raw)
}

/// The record from mail-parser's full parse: what the shortcuts above must agree with.
pub fn full_parse(raw: &[u8]) -> Record {
    MessageParser::default().parse(raw).map(|m| from_message(&m)).unwrap_or_default()
}

/// How the record lists an attachment: the full parse and the structure walk both go through
/// here, so they name and type it alike.
pub(super) fn attachment(part: &MessagePart, size: usize) -> Attachment {
    Attachment {
        name: part.attachment_name().map(str::to_string),
        content_type: part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        }),
        size,
    }
}

/// Whether the message is one inline text body that mail-parser would never list as an
/// attachment, so the header block alone gives the full parse's record. Its rules: only
/// `text/plain` and `text/html` are inline text (any other text subtype is an attachment); a
/// single `text/plain` body stays text even when its transfer encoding is broken, but an
/// `text/html` body that fails to decode is listed as an attachment, so only an identity
/// encoding qualifies for that one. (Found by the `extract` fuzz target.)
pub fn headers_suffice(m: &Message) -> bool {
    let inline = m.content_disposition().is_none_or(|cd| !cd.is_attachment());
    let identity =
        m.content_transfer_encoding().is_none_or(|e| !e.eq_ignore_ascii_case("base64") && !e.eq_ignore_ascii_case("quoted-printable"));
    let body = match m.content_type() {
        None => true,
        Some(ct) if ct.ctype() == "text" => match ct.subtype() {
            Some("plain") => true,
            Some("html") => identity,
            _ => false,
        },
        Some(_) => false,
    };
    inline && body
}

fn from_message(m: &Message) -> Record {
    Record {
        parsed: true,
        from: mailboxes(m.from()),
        to: mailboxes(m.to()),
        cc: mailboxes(m.cc()),
        reply_to: mailboxes(m.reply_to()),
        subject: m.subject().map(str::to_string),
        date: m.date().map(|d| d.to_rfc3339()),
        message_id: m.message_id().map(str::to_string),
        in_reply_to: ids(m.in_reply_to()),
        references: ids(m.references()),
        attachments: m.attachments().map(|part| attachment(part, part.contents().len())).collect(),
        automatic: is_automatic(m),
        ..Record::default()
    }
}

fn is_automatic(m: &Message) -> bool {
    let header = |name: &str| m.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    let auto_submitted = header("Auto-Submitted").is_some_and(|v| !v.starts_with("no"));
    let bulk = header("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply"));
    let autoreply = ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"].iter().any(|h| m.header_raw(*h).is_some());
    let report = m
        .content_type()
        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report")));
    auto_submitted || bulk || autoreply || report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_basic_record() {
        let raw = b"From: Ana Customer <ana@customer.org>\r\nTo: support@example.com\r\nCc: boss@customer.org, other@customer.org\r\n\
Subject: =?utf-8?q?Caf=C3=A9?= order\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <abc@customer.org>\r\n\
In-Reply-To: <prev@example.com>\r\nReferences: <first@example.com> <prev@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nHello\r\n--XX\r\n\
Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n";
        let r = extract(raw);
        assert!(r.parsed);
        assert_eq!(r.from, vec![Mailbox { name: Some("Ana Customer".into()), address: Some("ana@customer.org".into()) }]);
        assert_eq!(r.to[0].address.as_deref(), Some("support@example.com"));
        assert_eq!(r.cc.len(), 2);
        assert_eq!(r.subject.as_deref(), Some("Café order"));
        assert_eq!(r.message_id.as_deref(), Some("abc@customer.org"));
        assert_eq!(r.in_reply_to, vec!["prev@example.com"]);
        assert_eq!(r.references, vec!["first@example.com", "prev@example.com"]);
        assert!(r.date.as_deref().unwrap().starts_with("2026-11-23T10:00:00"));
        assert_eq!(
            r.attachments,
            vec![Attachment { name: Some("invoice.pdf".into()), content_type: Some("application/pdf".into()), size: 9 }]
        );
    }

    #[test]
    fn header_only_path_matches_the_full_parse() {
        let plain = b"From: a@b.org\r\nTo: <support@example.com>\r\nSubject: plain\r\nMessage-ID: <x@y>\r\nReferences: <r1@y> <r2@y>\r\n\r\nBody\r\n";
        let typed = b"From: a@b.org\r\nSubject: t\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody\r\n";
        let pdf = b"From: a@b.org\r\nSubject: p\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\n\r\nJVBERi0=\r\n";
        let text_attachment =
            b"From: a@b.org\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\nhello\r\n";
        for raw in [&plain[..], &typed[..], &pdf[..], &text_attachment[..]] {
            let full = from_message(&MessageParser::default().parse(raw).unwrap());
            assert_eq!(extract(raw), full, "{}", String::from_utf8_lossy(raw));
        }
        assert!(!extract(pdf).attachments.is_empty(), "a whole-message attachment is still listed");
        assert!(!extract(text_attachment).attachments.is_empty());
    }

    #[test]
    fn automatic_messages_are_recognised() {
        for (headers, automatic) in [
            ("Auto-Submitted: auto-replied\r\n", true),
            ("Auto-Submitted: no\r\n", false),
            ("Precedence: bulk\r\n", true),
            ("X-Autoreply: yes\r\n", true),
            ("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n", true),
            ("", false),
        ] {
            let raw = format!("From: a@b.org\r\nSubject: s\r\n{headers}\r\nbody\r\n");
            assert_eq!(extract(raw.as_bytes()).automatic, automatic, "{headers}");
        }
    }

    #[test]
    fn garbage_is_recorded_as_unparsed() {
        let r = extract(b"");
        assert!(!r.parsed);
        assert_eq!(r.subject, None);
    }
}
