//! One registered message as a mail client sees it: our `X-Mailroom-*` header fields
//! (registration number, category, priority, due date) prepended to the stored bytes, and
//! everything IMAP derives from a message (RFC822.SIZE, sections, ENVELOPE, BODYSTRUCTURE)
//! computed on exactly those rendered bytes, so all of them agree with BODY[].
//!
//! mail-parser finds the MIME tree and its offsets; sections are byte ranges of the rendered
//! message (or, for a base64-encoded message/rfc822 part, of its decoded content).
//!
//! `x_headers`: our header fields; `mime`: the MIME fields of a part; `fields`: raw header
//! blocks (HEADER.FIELDS, values for ENVELOPE); `envelope`: ENVELOPE; `structure`:
//! BODYSTRUCTURE; `strings`: IMAP strings.

mod envelope;
mod fields;
mod mime;
mod strings;
mod structure;
mod x_headers;

use std::ops::Range;

use imap_codec::imap_types::body::BodyStructure;
use imap_codec::imap_types::envelope::Envelope;
use imap_codec::imap_types::fetch::{Part, Section};
use mail_parser::{Message, MessageParser, PartType};

use envelope::{empty_envelope, envelope};
use fields::{filter_fields, header_end};
use mime::{Mime, mime_fields};
pub use strings::nstring;
use structure::placeholder_structure;
pub use x_headers::x_headers;

/// A rendered message with its MIME structure.
pub struct Rendered {
    /// The X-Mailroom header fields followed by the stored bytes: BODY[].
    pub data: Vec<u8>,
    /// Decoded contents of encoded message/rfc822 parts; buffer `i + 1` in `Entity::buf`.
    decoded: Vec<Vec<u8>>,
    root: Entity,
    pub envelope: Envelope<'static>,
    /// BODYSTRUCTURE (with extension data) and BODY (without).
    pub body_structure: BodyStructure<'static>,
    pub body: BodyStructure<'static>,
}

/// One MIME entity: a header block and a body, both ranges of buffer `buf`.
struct Entity {
    buf: usize,
    header: Range<usize>,
    body: Range<usize>,
    mime: Mime,
    kind: Kind,
}

enum Kind {
    Leaf,
    Multipart(Vec<Entity>),
    /// message/rfc822: the encapsulated message (its root entity) and its envelope.
    Message(Box<Entity>, Box<Envelope<'static>>),
}

/// Nesting deeper than this is shown as an opaque part (mail-parser stops earlier anyway).
const MAX_DEPTH: usize = 32;

impl Rendered {
    pub fn new(x_headers: &str, stored: &[u8]) -> Rendered {
        let mut data = Vec::with_capacity(x_headers.len() + stored.len());
        data.extend_from_slice(x_headers.as_bytes());
        data.extend_from_slice(stored);
        let mut decoded = Vec::new();
        let (root, envelope) = match MessageParser::default().parse(&data) {
            Some(message) if !message.parts.is_empty() => {
                let root = build(&message, 0, 0, &data, &mut decoded, 0);
                let envelope = envelope(&data[root.header.clone()], &message.parts[0]);
                (root, envelope)
            }
            // Not a message mail-parser can read: all of it as text/plain (split at the first
            // blank line, if there is one).
            _ => {
                let split = header_end(&data);
                let root = Entity { buf: 0, header: 0..split, body: split..data.len(), mime: Mime::default(), kind: Kind::Leaf };
                (root, empty_envelope())
            }
        };
        let mut r = Rendered { data, decoded, root, envelope, body_structure: placeholder_structure(), body: placeholder_structure() };
        r.body_structure = r.structure(&r.root, true);
        r.body = r.structure(&r.root, false);
        r
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn wipe_decoded(&mut self) {
        for d in &mut self.decoded {
            zeroize::Zeroize::zeroize(d);
        }
    }

    fn buf(&self, i: usize) -> &[u8] {
        if i == 0 { &self.data } else { &self.decoded[i - 1] }
    }

    fn bytes(&self, e: &Entity, range: &Range<usize>) -> &[u8] {
        self.buf(e.buf).get(range.clone()).unwrap_or_default()
    }

    /// The bytes of a BODY[section]; None when the section names a part that does not exist.
    pub fn section(&self, section: Option<&Section>) -> Option<Vec<u8>> {
        let Some(section) = section else { return Some(self.data.clone()) };
        // HEADER/TEXT/HEADER.FIELDS apply to a message: the whole one, or a message/rfc822 part.
        let message = |part: &Option<Part>| -> Option<&Entity> {
            match part {
                None => Some(&self.root),
                Some(part) => match &self.resolve(part)?.kind {
                    Kind::Message(inner, _) => Some(inner.as_ref()),
                    _ => None,
                },
            }
        };
        Some(match section {
            Section::Part(part) => {
                let e = self.resolve(part)?;
                self.bytes(e, &e.body).to_vec()
            }
            Section::Mime(part) => {
                let e = self.resolve(part)?;
                self.bytes(e, &e.header).to_vec()
            }
            Section::Header(part) => {
                let m = message(part)?;
                self.bytes(m, &m.header).to_vec()
            }
            Section::Text(part) => {
                let m = message(part)?;
                self.bytes(m, &m.body).to_vec()
            }
            Section::HeaderFields(part, names) => {
                let m = message(part)?;
                filter_fields(self.bytes(m, &m.header), names.as_ref(), true)
            }
            Section::HeaderFieldsNot(part, names) => {
                let m = message(part)?;
                filter_fields(self.bytes(m, &m.header), names.as_ref(), false)
            }
        })
    }

    /// Part numbers (RFC 3501 §6.4.5): the parts of a multipart, or of the body of an
    /// encapsulated message; a message that is not multipart has just part 1, its body.
    fn resolve(&self, part: &Part) -> Option<&Entity> {
        let mut path = part.0.as_ref().iter().map(|n| n.get() as usize);
        let mut cur = message_part(&self.root, path.next()?)?;
        for n in path {
            cur = match &cur.kind {
                Kind::Multipart(children) => children.get(n - 1)?,
                Kind::Message(inner, _) => message_part(inner, n)?,
                Kind::Leaf => return None,
            };
        }
        Some(cur)
    }
}

/// Part `n` of a message whose root entity is `root`.
fn message_part(root: &Entity, n: usize) -> Option<&Entity> {
    match &root.kind {
        Kind::Multipart(children) => children.get(n.checked_sub(1)?),
        _ if n == 1 => Some(root),
        _ => None,
    }
}

fn build(message: &Message, id: usize, buf: usize, data: &[u8], decoded: &mut Vec<Vec<u8>>, depth: usize) -> Entity {
    let part = &message.parts[id];
    let header = part.offset_header as usize..part.offset_body as usize;
    let body = part.offset_body as usize..(part.offset_end as usize).max(part.offset_body as usize);
    let mut mime = mime_fields(part);
    let kind = match &part.body {
        PartType::Multipart(children) if !children.is_empty() && depth < MAX_DEPTH => {
            Kind::Multipart(children.iter().map(|c| build(message, *c as usize, buf, data, decoded, depth + 1)).collect())
        }
        PartType::Message(inner) if !inner.parts.is_empty() && depth < MAX_DEPTH => {
            // Unencoded, the inner offsets point into the same buffer; decoded (base64), into
            // the decoded bytes, which become a buffer of their own.
            let outer = if buf == 0 { data } else { &decoded[buf - 1] };
            let inner_buf = if inner.raw_message.as_ref() == outer {
                buf
            } else {
                decoded.push(inner.raw_message.to_vec());
                decoded.len()
            };
            let root = build(inner, 0, inner_buf, data, decoded, depth + 1);
            let inner_data = if inner_buf == 0 { data } else { &decoded[inner_buf - 1] };
            let envelope = envelope(inner_data.get(root.header.clone()).unwrap_or_default(), &inner.parts[0]);
            if !mime.ctype.eq_ignore_ascii_case("message") {
                // A multipart/digest part without Content-Type.
                (mime.ctype, mime.subtype) = ("message".into(), "rfc822".into());
            }
            Kind::Message(Box::new(root), Box::new(envelope))
        }
        _ => Kind::Leaf,
    };
    if matches!(kind, Kind::Leaf)
        && (mime.ctype.eq_ignore_ascii_case("multipart")
            || mime.ctype.eq_ignore_ascii_case("message") && matches!(mime.subtype.to_ascii_lowercase().as_str(), "rfc822" | "global"))
    {
        // A multipart without parts or an unreadable encapsulated message: BODYSTRUCTURE
        // syntax would promise a structure that is not there, so it is shown as opaque data.
        (mime.ctype, mime.subtype) = ("application".into(), "octet-stream".into());
    }
    Entity { buf, header, body, mime, kind }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use imap_codec::imap_types::body::{Body, SpecificFields};
    use imap_codec::imap_types::core::{AString, IString, NonEmptyVec};

    use super::fields::raw_value;
    use super::strings::istring;
    use super::*;

    fn part(path: &[u32]) -> Part {
        Part(NonEmptyVec::try_from(path.iter().map(|n| NonZeroU32::new(*n).unwrap()).collect::<Vec<_>>()).unwrap())
    }

    fn text(r: &Rendered, s: Section) -> String {
        String::from_utf8(r.section(Some(&s)).expect("section exists")).unwrap()
    }

    const NESTED: &str = "From: Anna <a@example.org>\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n\
--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld\r\n\
--XX\r\nContent-Type: multipart/alternative; boundary=\"YY\"\r\n\r\n--YY\r\n\r\nplain\r\n--YY\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--YY--\r\n\r\n\
--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: n@b.example\r\nSubject: inner\r\n\r\ninner body\r\n\
--XX\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogZW5jDQoNCmVuY29kZWQgaW5uZXINCg==\r\n\
--XX--\r\nepilogue\r\n";

    #[test]
    fn sections_follow_rfc3501_part_numbers() {
        let r = Rendered::new("X-Mailroom-Registration: MR-1\r\n", NESTED.as_bytes());
        assert_eq!(r.section(None).unwrap(), r.data);
        assert!(text(&r, Section::Header(None)).starts_with("X-Mailroom-Registration: MR-1\r\nFrom: Anna"));
        assert!(text(&r, Section::Header(None)).ends_with("boundary=\"XX\"\r\n\r\n"));
        assert!(text(&r, Section::Text(None)).starts_with("preamble\r\n--XX\r\n"));
        assert_eq!(text(&r, Section::Part(part(&[1]))), "hello\r\nworld");
        assert_eq!(text(&r, Section::Mime(part(&[1]))), "Content-Type: text/plain\r\n\r\n");
        assert_eq!(text(&r, Section::Part(part(&[2, 1]))), "plain");
        assert_eq!(text(&r, Section::Part(part(&[2, 2]))), "<b>x</b>");
        assert_eq!(text(&r, Section::Part(part(&[3]))), "From: n@b.example\r\nSubject: inner\r\n\r\ninner body");
        assert_eq!(text(&r, Section::Header(Some(part(&[3])))), "From: n@b.example\r\nSubject: inner\r\n\r\n");
        assert_eq!(text(&r, Section::Text(Some(part(&[3])))), "inner body");
        assert_eq!(text(&r, Section::Part(part(&[3, 1]))), "inner body");
        // The base64 part: its own bytes as sent, its inside decoded.
        assert_eq!(text(&r, Section::Part(part(&[4]))), "U3ViamVjdDogZW5jDQoNCmVuY29kZWQgaW5uZXINCg==");
        assert_eq!(text(&r, Section::Header(Some(part(&[4])))), "Subject: enc\r\n\r\n");
        assert_eq!(text(&r, Section::Part(part(&[4, 1]))), "encoded inner\r\n");
        assert!(r.section(Some(&Section::Part(part(&[5])))).is_none());
        assert!(r.section(Some(&Section::Part(part(&[1, 1])))).is_none());
        assert!(r.section(Some(&Section::Header(Some(part(&[1]))))).is_none());
    }

    #[test]
    fn header_fields_keep_raw_fields_and_end_with_a_blank_line() {
        let msg = "Subject: a\r\n folded\r\nFrom: x@y.example\r\nTo: z@y.example\r\n\r\nbody\r\n";
        let r = Rendered::new("X-Mailroom-Priority: low\r\n", msg.as_bytes());
        let names =
            NonEmptyVec::try_from(vec![AString::try_from("SUBJECT").unwrap(), AString::try_from("x-mailroom-priority").unwrap()]).unwrap();
        assert_eq!(text(&r, Section::HeaderFields(None, names.clone())), "X-Mailroom-Priority: low\r\nSubject: a\r\n folded\r\n\r\n");
        assert_eq!(text(&r, Section::HeaderFieldsNot(None, names)), "From: x@y.example\r\nTo: z@y.example\r\n\r\n");
        assert_eq!(raw_value(&r.data, "subject").unwrap(), b"a folded");
    }

    #[test]
    fn single_part_message_has_part_one_and_a_text_structure() {
        let r = Rendered::new("X-A: 1\r\n", b"Subject: s\r\n\r\nline 1\r\nline 2\r\n");
        assert_eq!(text(&r, Section::Part(part(&[1]))), "line 1\r\nline 2\r\n");
        match &r.body_structure {
            BodyStructure::Single { body, .. } => {
                assert_eq!(body.basic.size, 16);
                assert!(matches!(body.specific, SpecificFields::Text { number_of_lines: 2, .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelope_and_structure_of_a_multipart() {
        let r = Rendered::new("", NESTED.as_bytes());
        assert_eq!(r.envelope.subject, nstring(Some("hi")));
        assert_eq!(r.envelope.from.len(), 1);
        assert_eq!(r.envelope.from[0].mailbox, nstring(Some("a")));
        assert_eq!(r.envelope.from[0].host, nstring(Some("example.org")));
        assert_eq!(r.envelope.sender, r.envelope.from, "Sender defaults to From");
        let BodyStructure::Multi { bodies, .. } = &r.body_structure else { panic!("{:?}", r.body_structure) };
        assert_eq!(bodies.as_ref().len(), 4);
        assert!(matches!(&bodies.as_ref()[2], BodyStructure::Single { body: Body { specific: SpecificFields::Message { .. }, .. }, .. }));
    }

    #[test]
    fn unparsable_bytes_are_still_a_message() {
        let r = Rendered::new("", b"\x00\x01 not mail at all");
        assert_eq!(r.section(None).unwrap(), b"\x00\x01 not mail at all");
        assert!(matches!(istring(vec![0u8, 1]), IString::Literal(_)));
    }
}
