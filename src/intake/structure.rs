//! The record's attachment list from the MIME structure alone. mail-parser's full parse decodes
//! every part (quoted-printable HTML, base64 attachments, charsets into strings) while the record
//! keeps only each attachment's name, type and size; on realistic mail that decoding was the
//! largest single cost of intake.
//!
//! The walk drives mail-parser's own stream for everything that splits the message (header
//! blocks, boundaries, the end of a multipart), so parts begin and end exactly where the full
//! parse puts them, and it decides what is an attachment by the full parse's rules
//! (`MessageParser::parse_` in mail-parser 0.11). Part bodies are only scanned: a base64
//! attachment is counted, not decoded, and inline text is checked for the encoding errors that
//! would make the parser list it as an attachment. What it does not mirror exactly answers
//! `None` and the caller parses in full: a nested message, a text part that is an attachment
//! (its size is that of its text after charset conversion), a broken encoding, a multipart
//! whose boundary never comes. Tests hold the two to the same answer on the fuzz corpus and on
//! mutations of it.

use mail_parser::decoders::base64::BASE64_MAP;
use mail_parser::decoders::quoted_printable::HEX_MAP;
use mail_parser::parsers::MessageStream;
use mail_parser::{ContentType, Encoding, GetHeader, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::store::record::Attachment;

/// A message's header block, and where the stream stands after it (the walk goes on from there).
pub struct Headers<'x> {
    /// The same `Message` as `MessageParser::parse_headers` gives.
    pub message: Option<Message<'x>>,
    pub body: Body<'x>,
}

/// The stream positioned after the header block.
pub struct Body<'x> {
    stream: MessageStream<'x>,
    /// False when the data ended inside the header block: the full parse then finds no body.
    follows: bool,
}

/// The header block, parsed once for the record, the rules and the walk.
pub fn parse_headers(raw: &[u8]) -> Headers<'_> {
    let mut stream = MessageStream::new(raw);
    let mut headers = Vec::new();
    let follows = stream.parse_headers(&MessageParser::default(), &mut headers);
    // As `parse_headers` builds it: one part holding the headers, no body.
    let message = (!headers.is_empty()).then(|| Message {
        parts: vec![MessagePart {
            headers,
            is_encoding_problem: true,
            body: PartType::Text("".into()),
            encoding: Encoding::None,
            offset_header: 0,
            offset_body: raw.len() as u32,
            offset_end: raw.len() as u32,
        }],
        raw_message: raw.into(),
        ..Message::default()
    });
    Headers { message, body: Body { stream, follows } }
}

/// What the full parse calls a part, by its Content-Type (mail-parser's `MimeType`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    Mixed,
    Alternative,
    Related,
    Digest,
    OtherMultipart,
    TextPlain,
    TextHtml,
    TextOther,
    Inline,
    Other,
}

impl Kind {
    /// The kind and whether it is a multipart, inline by default, text.
    fn of(content_type: Option<&ContentType>, parent: Kind) -> (Kind, bool, bool, bool) {
        let Some(ct) = content_type else {
            return if parent == Kind::Digest { (Kind::Message, false, false, false) } else { (Kind::TextPlain, false, true, true) };
        };
        match ct.ctype() {
            "multipart" => {
                let kind = match ct.subtype() {
                    Some("mixed") => Kind::Mixed,
                    Some("alternative") => Kind::Alternative,
                    Some("related") => Kind::Related,
                    Some("digest") => Kind::Digest,
                    _ => Kind::OtherMultipart,
                };
                (kind, true, false, false)
            }
            "text" => match ct.subtype() {
                Some("plain") => (Kind::TextPlain, false, true, true),
                Some("html") => (Kind::TextHtml, false, true, true),
                _ => (Kind::TextOther, false, false, true),
            },
            "image" | "audio" | "video" => (Kind::Inline, false, true, false),
            "message" if matches!(ct.subtype(), Some("rfc822") | Some("global")) => (Kind::Message, false, false, false),
            _ => (Kind::Other, false, false, false),
        }
    }
}

/// One multipart being walked (the message itself at the bottom): the parser's state for it.
struct Level {
    kind: Kind,
    boundary: Option<Vec<u8>>,
    in_alternative: bool,
    parts: usize,
    need_html: bool,
    need_text: bool,
}

/// The attachments the full parse would list, or `None` where only the full parse can tell.
pub fn attachments<'x>(raw: &'x [u8], root: &MessagePart<'x>, body: Body<'x>) -> Option<Vec<Attachment>> {
    let Body { mut stream, follows } = body;
    if !follows {
        return Some(Vec::new());
    }
    let parser = MessageParser::default();
    let mut state = Level { kind: Kind::Message, boundary: None, in_alternative: false, parts: 0, need_html: true, need_text: true };
    let mut stack = Vec::new();
    let mut found = Vec::new();
    let mut next_part;
    let mut part = root;
    loop {
        state.parts += 1;
        let content_type = part.content_type();
        let (kind, is_multipart, is_inline, is_text) = Kind::of(content_type, state.kind);
        if is_multipart {
            // Without a boundary, or when it never comes, the parser keeps the part as a leaf.
            let boundary = content_type.and_then(|ct| ct.attribute("boundary"))?;
            if !stream.seek_next_part(boundary.as_bytes()) {
                return None;
            }
            let inner = Level {
                kind,
                boundary: Some(boundary.as_bytes().to_vec()),
                in_alternative: state.in_alternative || kind == Kind::Alternative,
                parts: 0,
                need_html: state.need_html,
                need_text: state.need_text,
            };
            stack.push(std::mem::replace(&mut state, inner));
            stream.skip_crlf();
        } else {
            if kind == Kind::Message {
                return None;
            }
            let encoding = match part.headers.header_value(&HeaderName::ContentTransferEncoding) {
                Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("base64") => Encoding::Base64,
                Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("quoted-printable") => Encoding::QuotedPrintable,
                _ => Encoding::None,
            };
            let is_inline = is_inline
                && part.content_disposition().is_none_or(|d| !d.is_attachment())
                && (state.parts == 1
                    || state.kind != Kind::Related && (kind == Kind::Inline || content_type.is_none_or(|ct| !ct.has_attribute("name"))));
            let (to_html, to_text) = if state.kind == Kind::Alternative {
                (kind == Kind::TextHtml, kind == Kind::TextPlain)
            } else if is_inline {
                if state.in_alternative && (state.need_text || state.need_html) {
                    match kind {
                        Kind::TextHtml => state.need_text = false,
                        Kind::TextPlain => state.need_html = false,
                        _ => {}
                    }
                }
                (state.need_html, state.need_text)
            } else {
                (false, false)
            };
            let boundary = state.boundary.as_deref().unwrap_or_default();
            if is_text {
                let is_html = kind == Kind::TextHtml;
                if is_html && !to_html || !is_html && !to_text {
                    // A text attachment's size is that of its text after charset conversion.
                    return None;
                }
                skip_body(raw, &mut stream, encoding, boundary)?;
            } else {
                let size = body_size(raw, &mut stream, encoding, boundary)?;
                found.push(super::extract::attachment(part, size));
            }
            if state.boundary.is_none() {
                // A single-part message: its body ran to the end.
                return Some(found);
            }
            // After a boundary: the end of this multipart (and perhaps of its parents), or the
            // next part's headers.
            while stream.is_multipart_end() {
                state = stack.pop()?;
                match state.boundary.as_deref() {
                    Some(boundary) if stream.seek_next_part_offset(boundary).is_some() => {}
                    _ => return Some(found),
                }
            }
        }
        let mut headers = Vec::new();
        if !stream.parse_headers(&parser, &mut headers) {
            // The parser stops here too; what follows is not a part.
            return Some(found);
        }
        next_part = MessagePart { headers, ..MessagePart::default() };
        part = &next_part;
    }
}

/// Moves past an inline text part, `None` where its encoding is broken (the parser would then
/// list it as an attachment).
fn skip_body(raw: &[u8], stream: &mut MessageStream<'_>, encoding: Encoding, boundary: &[u8]) -> Option<()> {
    match encoding {
        Encoding::QuotedPrintable => quoted_printable_extent(raw, stream, boundary),
        _ => body_size(raw, stream, encoding, boundary).map(|_| ()),
    }
}

/// Moves past a part and gives its decoded size, `None` where its encoding is broken.
fn body_size(raw: &[u8], stream: &mut MessageStream<'_>, encoding: Encoding, boundary: &[u8]) -> Option<usize> {
    match encoding {
        Encoding::Base64 => base64_size(raw, stream, boundary),
        Encoding::None if !boundary.is_empty() => plain_size(raw, stream, boundary),
        // Rare for an attachment; the parser's own decoder gives the exact size.
        _ => {
            let (end, bytes) =
                if encoding == Encoding::None { stream.mime_part(boundary) } else { stream.decode_quoted_printable_mime(boundary) };
            (end != usize::MAX).then_some(bytes.len())
        }
    }
}

/// `mime_part` with a boundary, by searching for it: the part ends at the first `--boundary`,
/// without the line break before it when there is one.
fn plain_size(raw: &[u8], stream: &mut MessageStream<'_>, boundary: &[u8]) -> Option<usize> {
    let body = &raw[stream.offset()..];
    let at = find_marker(body, boundary)?;
    let size = match at.checked_sub(1).map(|i| body[i]) {
        Some(b'\n') if at >= 2 && body[at - 2] == b'\r' => at - 2,
        Some(b'\n') => at - 1,
        // At the very start the parser counts a line break before it.
        None => 0,
        Some(_) => at,
    };
    stream.skip_bytes(at + 2 + boundary.len());
    Some(size)
}

/// Where `--boundary` first occurs: where the parser's decoders stop.
fn find_marker(body: &[u8], boundary: &[u8]) -> Option<usize> {
    let mut marker = Vec::with_capacity(boundary.len() + 2);
    marker.extend_from_slice(b"--");
    marker.extend_from_slice(boundary);
    memchr::memmem::find(body, &marker)
}

/// Whether the decoder takes `ch` as a base64 digit (`BASE64_MAP` has the same set in each of
/// its four tables; a test holds them together). Comparisons, so a line's count vectorises.
fn is_base64_digit(ch: u8) -> bool {
    ch.is_ascii_alphanumeric() || ch == b'+' || ch == b'/'
}

/// Whether every byte of `text` is a base64 digit, counted in byte lanes (a sum in `usize`
/// would widen every byte and vectorise a few at a time).
fn all_base64_digits(text: &[u8]) -> bool {
    // At most 128 per chunk: the count fits in a byte.
    text.chunks(128).all(|chunk| usize::from(chunk.iter().fold(0u8, |n, &ch| n + u8::from(is_base64_digit(ch)))) == chunk.len())
}

/// `decode_base64_mime` without the output: the number of bytes it would give and the same end.
fn base64_size(raw: &[u8], stream: &mut MessageStream<'_>, boundary: &[u8]) -> Option<usize> {
    let body = &raw[stream.offset()..];
    let (mut size, mut byte_count, mut last_ch) = (0usize, 0usize, b'\n');
    let mut i = 0;
    while i < body.len() {
        // Nearly every line is digits and a line break (76 and CRLF): count those at once.
        let end = memchr::memchr(b'\n', &body[i..]).map_or(body.len(), |at| i + at + 1);
        let line = &body[i..end];
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !text.is_empty() && all_base64_digits(text) {
            let digits = byte_count + text.len();
            size += digits / 4 * 3;
            byte_count = digits % 4;
            last_ch = line[line.len() - 1];
            i = end;
            continue;
        }
        // Padding, a boundary, blanks or a stray byte: as the decoder reads them, one by one.
        for (j, &ch) in line.iter().enumerate() {
            if BASE64_MAP[byte_count][ch as usize] < 0x01ffffff {
                byte_count = (byte_count + 1) & 3;
                if byte_count == 0 {
                    size += 3;
                }
            } else {
                match ch {
                    b'=' => {
                        size += [0, 1, 1, 2][byte_count];
                        byte_count = 0;
                    }
                    b'\n' | b' ' | b'\t' | b'\r' => {}
                    b'-' if last_ch == b'-' => {
                        let at = i + j;
                        if boundary.is_empty() || !body[at + 1..].starts_with(boundary) {
                            return None;
                        }
                        stream.skip_bytes(at + 1 + boundary.len());
                        return Some(size);
                    }
                    b'-' => {}
                    _ => return None,
                }
            }
            last_ch = ch;
        }
        i = end;
    }
    // The end of the data is the end of the part only for a single-part message.
    boundary.is_empty().then(|| {
        stream.skip_bytes(body.len());
        size
    })
}

/// `decode_quoted_printable_mime` without the output: whether it succeeds, and the same end.
/// It fails only on an `=` that starts while an escape is pending, or when the boundary never
/// comes.
fn quoted_printable_extent(raw: &[u8], stream: &mut MessageStream<'_>, boundary: &[u8]) -> Option<()> {
    #[derive(Clone, Copy)]
    enum State {
        None,
        Eq,
        Hex1,
    }
    let body = &raw[stream.offset()..];
    // The decoder stops at the first `--boundary`, whatever the state, having read the first
    // `-` as text; the boundary itself is never decoded.
    let (scanned, end) = if boundary.is_empty() {
        (body, body.len())
    } else {
        let at = find_marker(body, boundary)?;
        (&body[..at + 1], at + 2 + boundary.len())
    };
    // One pass over the bytes: in UTF-8 Russian or Chinese text every third byte is an `=`, too
    // dense for a search from one to the next.
    let mut state = State::None;
    for &ch in scanned {
        state = match (ch, state) {
            (b'=', State::None) => State::Eq,
            (_, State::None) => State::None,
            (b'=', _) => return None,
            (b'\n', State::Eq) => State::None,
            (b'\n' | b'\r', state) => state,
            (_, State::Eq) if HEX_MAP[ch as usize] != -1 => State::Hex1,
            (_, State::Eq) if ch.is_ascii_whitespace() => State::Eq,
            _ => State::None,
        };
    }
    stream.skip_bytes(end);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::record::{extract, full_parse};

    #[test]
    fn base64_digits_are_the_decoders() {
        for table in BASE64_MAP {
            for ch in 0..=255u8 {
                assert_eq!(table[ch as usize] < 0x01ffffff, is_base64_digit(ch), "byte {ch:#04x}");
            }
        }
    }

    fn structured(raw: &[u8]) -> Option<Vec<Attachment>> {
        let headers = parse_headers(raw);
        attachments(raw, headers.message.as_ref()?.parts.first()?, headers.body)
    }

    /// Messages of every shape the walk handles, and of some it leaves to the full parse.
    fn samples() -> Vec<(&'static str, Vec<u8>, bool)> {
        let head = "From: a@b.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n";
        let mut out: Vec<(&'static str, String, bool)> = vec![
            (
                "mixed: text and base64 attachments with each padding",
                format!(
                    "{head}Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\nHello\r\n\
--XX\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\nREVG\r\n\
--XX\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"b.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\nQUI=\r\n\
--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: BASE64\r\n\r\nQQ==\r\n\
--XX\r\nContent-Type: application/zip\r\n\r\nraw bytes\r\n--XX--\r\nepilogue\r\n"
                ),
                true,
            ),
            (
                "alternative: quoted-printable text and html, soft breaks, a boundary with =",
                format!(
                    "{head}Content-Type: multipart/alternative; boundary=\"----=_Part_1\"\r\n\r\n------=_Part_1\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 =\r\nline\r\n\
------=_Part_1\r\nContent-Type: text/html; charset=gb2312\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>=C4=E3=BA=C3</p>=\r\n\r\n------=_Part_1--\r\n"
                ),
                true,
            ),
            (
                "mixed > alternative > related with an inline image, then a pdf",
                format!(
                    "{head}Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n\
Content-Type: text/plain\r\n\r\nplain\r\n--a\r\nContent-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n<img src=cid:x>\r\n\
--r\r\nContent-Type: image/gif; name=x.gif\r\nContent-ID: <x>\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n--r--\r\n\r\n--a--\r\n\
--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=utf-8''%D0%B0.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--m--\r\n"
                ),
                true,
            ),
            (
                "bare LF line ends and a boundary line with trailing blanks",
                "From: a@b.org\nContent-Type: multipart/mixed; boundary=z\n\n--z  \nContent-Type: text/plain\n\nhi\n--z\nContent-Type: application/x-thing\nContent-Transfer-Encoding: base64\n\nAAAA\nAA\n--z--\n".to_string(),
                true,
            ),
            (
                "a single-part base64 attachment",
                format!("{head}Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0x\r\nLjQK\r\n"),
                true,
            ),
            (
                "a text attachment (its size needs its charset)",
                format!(
                    "{head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/csv; charset=koi8-r\r\n\r\nPR\r\n--b--\r\n"
                ),
                false,
            ),
            (
                "a forwarded message",
                format!(
                    "{head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfwd\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.org\r\nSubject: inner\r\n\r\nbody\r\n--b--\r\n"
                ),
                false,
            ),
            (
                "quoted-printable html with a broken escape",
                format!(
                    "{head}Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3=\r\n--b--\r\n"
                ),
                false,
            ),
            (
                "base64 with a character outside the alphabet",
                format!(
                    "{head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQU*J\r\n--b--\r\n"
                ),
                false,
            ),
            (
                "a final boundary that never comes",
                format!(
                    "{head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n"
                ),
                false,
            ),
        ];
        out.drain(..).map(|(name, text, walked)| (name, text.into_bytes(), walked)).collect()
    }

    #[test]
    fn the_walk_lists_what_the_full_parse_lists() {
        for (name, raw, walked) in samples() {
            let by_structure = structured(&raw);
            assert_eq!(by_structure.is_some(), walked, "{name}: walked or not");
            let full = full_parse(&raw);
            if let Some(list) = by_structure {
                assert_eq!(list, full.attachments, "{name}");
            }
            assert_eq!(extract(&raw), full, "{name}: the record");
        }
        let (_, mixed, _) = &samples()[0];
        let sizes: Vec<usize> = structured(mixed).unwrap().iter().map(|a| a.size).collect();
        assert_eq!(sizes, [6, 2, 1, 9], "base64 sizes with each padding, and an unencoded part");
    }

    #[test]
    fn the_header_block_is_mail_parsers() {
        for (name, raw, _) in samples() {
            assert_eq!(parse_headers(&raw).message, MessageParser::default().parse_headers(&raw), "{name}");
        }
        for raw in [&b""[..], b"\r\n\r\nbody", b"Subject: cut off", b"Subject: x\r\n\r\n"] {
            assert_eq!(parse_headers(raw).message, MessageParser::default().parse_headers(raw));
        }
    }

    /// Damaged copies of the samples and of the fuzz corpus's multipart messages: wherever the
    /// walk answers, it answers what the full parse says.
    #[test]
    fn damaged_messages_get_the_full_parses_answer() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/extract");
        let mut seeds: Vec<Vec<u8>> = samples().into_iter().map(|(_, raw, _)| raw).collect();
        for entry in std::fs::read_dir(corpus).expect("the extract corpus").flatten() {
            let raw = std::fs::read(entry.path()).unwrap();
            if raw.windows(9).any(|w| w.eq_ignore_ascii_case(b"multipart")) {
                seeds.push(raw);
            }
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n.max(1) as u64) as usize
        };
        // More for a longer run: `STRUCTURE_MUTATIONS=400 cargo test --release structure`.
        let per_seed: usize = std::env::var("STRUCTURE_MUTATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(40);
        let (mut walked, mut total) = (0, 0);
        for seed in &seeds {
            for _ in 0..per_seed {
                let mut raw = seed.clone();
                for _ in 0..1 + next(3) {
                    let at = next(raw.len() + 1);
                    match next(4) {
                        0 => raw.insert(at, b"-=\n\r A/\t\0"[next(9)]),
                        1 if at < raw.len() => drop(raw.drain(at..(at + 1 + next(8)).min(raw.len()))),
                        2 if at < raw.len() => raw[at] = b"-=\n\r A/\t\0"[next(9)],
                        _ => raw.truncate(at),
                    }
                }
                total += 1;
                let headers = parse_headers(&raw);
                let Some(root) = headers.message.as_ref().and_then(|m| m.parts.first()) else { continue };
                if let Some(list) = attachments(&raw, root, headers.body) {
                    walked += 1;
                    assert_eq!(list, full_parse(&raw).attachments, "{}", String::from_utf8_lossy(&raw));
                }
            }
        }
        eprintln!("the walk answered {walked} of {total} damaged messages");
        assert!(walked * 4 > total, "the walk answered only {walked} of {total}");
    }
}
