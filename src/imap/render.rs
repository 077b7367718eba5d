//! One registered message as a mail client sees it: our `X-Mailroom-*` header fields
//! (registration number, category, priority, due date) prepended to the stored bytes, and
//! everything IMAP derives from a message (RFC822.SIZE, sections, ENVELOPE, BODYSTRUCTURE)
//! computed on exactly those rendered bytes, so all of them agree with BODY[].
//!
//! mail-parser finds the MIME tree and its offsets; sections are byte ranges of the rendered
//! message (or, for a base64-encoded message/rfc822 part, of its decoded content).

use std::ops::Range;

use base64::Engine;
use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData, SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, Literal, NString, NonEmptyVec, Quoted};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::{Part, Section};
use mail_parser::{HeaderName, HeaderValue, Message, MessageParser, MessagePart, PartType};

use crate::config::Settings;
use crate::store::mailbox::MailboxEntry;

/// Our header fields for `entry`, each ending in CRLF. Shown on top of the stored message (our
/// Received: header + the message as received).
pub fn x_headers(settings: &Settings, entry: &MailboxEntry) -> String {
    let mut h = format!("X-Mailroom-Registration: {}\r\n", header_text(&entry.number));
    if let Some(code) = &entry.category {
        match settings.config.categories.iter().find(|c| &c.code == code) {
            Some(category) => h.push_str(&format!("X-Mailroom-Category: {} ({})\r\n", header_text(code), header_text(&category.name))),
            None => h.push_str(&format!("X-Mailroom-Category: {}\r\n", header_text(code))),
        }
    }
    h.push_str(&format!("X-Mailroom-Priority: {}\r\n", header_text(&entry.priority)));
    if let Some(due) = entry.due_at.and_then(chrono::DateTime::from_timestamp_millis) {
        // In the business-hours calendar's zone: the deadline as the team counts it.
        let tz: chrono_tz::Tz = settings.config.sla.timezone.parse().unwrap_or(chrono_tz::UTC);
        h.push_str(&format!("X-Mailroom-Due: {}\r\n", due.with_timezone(&tz).format("%a, %d %b %Y %H:%M:%S %z")));
    }
    h
}

/// Unstructured header text: one line, non-ASCII as an RFC 2047 encoded word.
fn header_text(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.is_ascii() { s } else { encoded_word(&s) }
}

fn encoded_word(s: &str) -> String {
    format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
}

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

/// The MIME header fields BODYSTRUCTURE reports.
#[derive(Default)]
struct Mime {
    ctype: String,
    subtype: String,
    params: Vec<(String, String)>,
    id: Option<String>,
    description: Option<String>,
    encoding: Option<String>,
    md5: Option<String>,
    disposition: Option<(String, Vec<(String, String)>)>,
    language: Vec<String>,
    location: Option<String>,
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

    fn structure(&self, e: &Entity, extended: bool) -> BodyStructure<'static> {
        let m = &e.mime;
        if let Kind::Multipart(children) = &e.kind
            && let Ok(bodies) = NonEmptyVec::try_from(children.iter().map(|c| self.structure(c, extended)).collect::<Vec<_>>())
        {
            return BodyStructure::Multi {
                bodies,
                subtype: istring(m.subtype.clone()),
                extension_data: extended.then(|| MultiPartExtensionData { parameter_list: params(&m.params), tail: Some(disposition(m)) }),
            };
        }
        let body = self.bytes(e, &e.body);
        let basic = BasicFields {
            parameter_list: params(&m.params),
            id: nstring(m.id.clone()),
            description: nstring(m.description.clone()),
            content_transfer_encoding: istring(m.encoding.clone().unwrap_or_else(|| "7BIT".into()).to_ascii_uppercase()),
            size: body.len() as u32,
        };
        let specific = match &e.kind {
            Kind::Message(inner, envelope) => SpecificFields::Message {
                envelope: envelope.clone(),
                body_structure: Box::new(self.structure(inner, extended)),
                number_of_lines: lines(body),
            },
            _ if m.ctype.eq_ignore_ascii_case("text") => {
                SpecificFields::Text { subtype: istring(m.subtype.clone()), number_of_lines: lines(body) }
            }
            _ => SpecificFields::Basic { r#type: istring(m.ctype.clone()), subtype: istring(m.subtype.clone()) },
        };
        BodyStructure::Single {
            body: Body { basic, specific },
            extension_data: extended.then(|| SinglePartExtensionData { md5: nstring(m.md5.clone()), tail: Some(disposition(m)) }),
        }
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

fn mime_fields(part: &MessagePart) -> Mime {
    let mut m =
        Mime { ctype: "text".into(), subtype: "plain".into(), params: vec![("charset".into(), "us-ascii".into())], ..Default::default() };
    for h in &part.headers {
        match (&h.name, &h.value) {
            (HeaderName::ContentType, HeaderValue::ContentType(ct)) => {
                m.ctype = ct.ctype().to_string();
                m.subtype = ct.subtype().unwrap_or(if m.ctype.eq_ignore_ascii_case("text") { "plain" } else { "octet-stream" }).to_string();
                m.params = ct.attributes().unwrap_or_default().iter().map(|a| (a.name.to_string(), a.value.to_string())).collect();
            }
            (HeaderName::ContentTransferEncoding, HeaderValue::Text(t)) => m.encoding = Some(t.trim().to_string()),
            (HeaderName::ContentId, v) => m.id = value_text(v),
            (HeaderName::ContentDescription, v) => m.description = value_text(v),
            (HeaderName::Other(name), v) if name.eq_ignore_ascii_case("Content-MD5") => m.md5 = value_text(v),
            (HeaderName::ContentDisposition, HeaderValue::ContentType(d)) => {
                m.disposition = Some((
                    d.ctype().to_string(),
                    d.attributes().unwrap_or_default().iter().map(|a| (a.name.to_string(), a.value.to_string())).collect(),
                ));
            }
            (HeaderName::ContentLanguage, HeaderValue::TextList(list)) => m.language = list.iter().map(|l| l.to_string()).collect(),
            (HeaderName::ContentLanguage, HeaderValue::Text(l)) => m.language = vec![l.to_string()],
            (HeaderName::ContentLocation, v) => m.location = value_text(v),
            _ => {}
        }
    }
    m
}

fn value_text(v: &HeaderValue) -> Option<String> {
    match v {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(list) => Some(list.join(" ")),
        _ => None,
    }
}

fn disposition(m: &Mime) -> Disposition<'static> {
    Disposition {
        disposition: m.disposition.as_ref().map(|(kind, p)| (istring(kind.clone()), params(p))),
        tail: Some(Language {
            language: m.language.iter().map(|l| istring(l.clone())).collect(),
            tail: Some(Location { location: nstring(m.location.clone()), extensions: vec![] }),
        }),
    }
}

fn params(list: &[(String, String)]) -> Vec<(IString<'static>, IString<'static>)> {
    list.iter().map(|(k, v)| (istring(k.clone()), istring(v.clone()))).collect()
}

/// Lines of a text or message body, as BODYSTRUCTURE counts them (a last line without a line
/// break counts too).
fn lines(body: &[u8]) -> u32 {
    let n = memchr::memchr_iter(b'\n', body).count();
    (n + usize::from(body.last().is_some_and(|b| *b != b'\n'))) as u32
}

/// End of the header block (after the blank line), or the whole input when there is none.
fn header_end(data: &[u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() {
        let line_end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..line_end];
        if line == b"\r\n" || line == b"\n" {
            return line_end;
        }
        pos = line_end;
    }
    data.len()
}

/// One header field of a header block: its bytes (with continuation lines and the line break),
/// its name and its raw value.
struct Field<'a> {
    raw: &'a [u8],
    name: &'a [u8],
    value: &'a [u8],
}

fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < block.len() && block[pos] != b'\n' && !block[pos..].starts_with(b"\r\n") {
        let start = pos;
        loop {
            pos = memchr::memchr(b'\n', &block[pos..]).map_or(block.len(), |i| pos + i + 1);
            if pos >= block.len() || !matches!(block[pos], b' ' | b'\t') {
                break;
            }
        }
        let raw = &block[start..pos];
        let colon = memchr::memchr(b':', raw).unwrap_or(raw.len());
        let name = raw[..colon].trim_ascii_end();
        let value = raw.get(colon + 1..).unwrap_or_default();
        out.push(Field { raw, name, value });
    }
    out
}

/// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT: the chosen fields as they are, then the blank
/// line that ends a header.
fn filter_fields(block: &[u8], names: &[imap_codec::imap_types::core::AString], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields(block) {
        let listed = names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(f.name));
        if listed == keep {
            out.extend_from_slice(f.raw);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The first field named `name`, unfolded and trimmed (ENVELOPE shows header values raw).
fn raw_value(block: &[u8], name: &str) -> Option<Vec<u8>> {
    let f = fields(block).into_iter().find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))?;
    let unfolded: Vec<u8> = f.value.iter().copied().filter(|b| *b != b'\r' && *b != b'\n').collect();
    Some(unfolded.trim_ascii().to_vec())
}

fn envelope(block: &[u8], part: &MessagePart) -> Envelope<'static> {
    let addresses = |name: HeaderName| -> Option<Vec<Address<'static>>> {
        part.headers.iter().find(|h| h.name == name).and_then(|h| h.value.as_address()).map(address_list)
    };
    let from = addresses(HeaderName::From).unwrap_or_default();
    Envelope {
        date: nstring(raw_value(block, "Date")),
        subject: nstring(raw_value(block, "Subject")),
        sender: addresses(HeaderName::Sender).filter(|a| !a.is_empty()).unwrap_or_else(|| from.clone()),
        reply_to: addresses(HeaderName::ReplyTo).filter(|a| !a.is_empty()).unwrap_or_else(|| from.clone()),
        from,
        to: addresses(HeaderName::To).unwrap_or_default(),
        cc: addresses(HeaderName::Cc).unwrap_or_default(),
        bcc: addresses(HeaderName::Bcc).unwrap_or_default(),
        in_reply_to: nstring(raw_value(block, "In-Reply-To")),
        message_id: nstring(raw_value(block, "Message-ID")),
    }
}

fn empty_envelope() -> Envelope<'static> {
    let nil = || NString(None);
    Envelope {
        date: nil(),
        subject: nil(),
        from: vec![],
        sender: vec![],
        reply_to: vec![],
        to: vec![],
        cc: vec![],
        bcc: vec![],
        in_reply_to: nil(),
        message_id: nil(),
    }
}

fn address_list(a: &mail_parser::Address) -> Vec<Address<'static>> {
    match a {
        mail_parser::Address::List(list) => list.iter().map(address).collect(),
        mail_parser::Address::Group(groups) => {
            let mut out = Vec::new();
            for g in groups {
                // RFC 3501 group syntax: a start marker with the group name, the members, an
                // end marker; members of no group are listed plainly.
                let named = g.name.is_some();
                if let Some(name) = &g.name {
                    out.push(Address {
                        name: NString(None),
                        adl: NString(None),
                        mailbox: nstring(Some(phrase(name))),
                        host: NString(None),
                    });
                }
                out.extend(g.addresses.iter().map(address));
                if named {
                    out.push(Address { name: NString(None), adl: NString(None), mailbox: NString(None), host: NString(None) });
                }
            }
            out
        }
    }
}

fn address(a: &mail_parser::Addr) -> Address<'static> {
    let (mailbox, host) = match a.address.as_deref() {
        Some(addr) => match addr.rsplit_once('@') {
            Some((local, domain)) => (Some(local.to_string()), Some(domain.to_string())),
            // NIL host would mean "group"; an address without a domain gets an empty one.
            None => (Some(addr.to_string()), Some(String::new())),
        },
        None => (None, Some(String::new())),
    };
    Address { name: nstring(a.name.as_deref().map(phrase)), adl: NString(None), mailbox: nstring(mailbox), host: nstring(host) }
}

/// mail-parser decodes display names; ENVELOPE carries header text, so non-ASCII goes back into
/// an encoded word.
fn phrase(name: &str) -> String {
    if name.is_ascii() { name.to_string() } else { encoded_word(name) }
}

/// A string as an IMAP string: quoted when it can be, a literal otherwise. NUL cannot appear in
/// an IMAP4rev1 literal, so it is sent as 0x80 (as Dovecot does); the length stays the same.
pub fn istring(value: impl Into<Vec<u8>>) -> IString<'static> {
    let mut value = value.into();
    if value.len() <= 1024
        && let Ok(q) = Quoted::try_from(String::from_utf8_lossy(&value).into_owned())
        && q.inner().len() == value.len()
    {
        return IString::Quoted(q);
    }
    for b in value.iter_mut().filter(|b| **b == 0) {
        *b = 0x80;
    }
    IString::Literal(Literal::try_from(value).expect("a literal without NUL is valid"))
}

pub fn nstring(value: Option<impl Into<Vec<u8>>>) -> NString<'static> {
    NString(value.map(istring))
}

fn placeholder_structure() -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![],
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: istring("7BIT"),
                size: 0,
            },
            specific: SpecificFields::Text { subtype: istring("plain"), number_of_lines: 0 },
        },
        extension_data: None,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use imap_codec::imap_types::core::AString;

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
