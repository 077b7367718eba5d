//! A stored message taken apart for the case page with mail-parser (built with `full_encoding`,
//! so GB2312/GBK, Big5, KOI8-R, windows-1251 bodies and RFC 2047 words decode): the text to show,
//! whether there is an HTML part (shown only in the sandboxed frame, `case_parts`), and the
//! attachments, numbered in mail-parser's order (the same order the record lists them in).

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// One attachment as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub index: usize,
    pub name: String,
    pub content_type: String,
    /// Bytes, decoded.
    pub size: usize,
}

/// What the page shows of a message's body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// The text part, or a text rendering of the HTML part when there is no text part.
    pub text: Option<String>,
    /// The message has an HTML part.
    pub has_html: bool,
    pub attachments: Vec<AttachmentInfo>,
}

fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// The body of `raw` as the page shows it.
pub fn body(raw: &[u8]) -> Body {
    let Some(message) = parse(raw) else { return Body::default() };
    let text = message.body_text(0).map(|t| t.trim_end().to_string());
    let attachments = message
        .attachments()
        .enumerate()
        .map(|(index, part)| AttachmentInfo {
            index,
            name: part.attachment_name().map(str::to_string).unwrap_or_default(),
            content_type: content_type(part),
            size: part.contents().len(),
        })
        .collect();
    Body { text, has_html: html_of(&message).is_some(), attachments }
}

fn content_type(part: &mail_parser::MessagePart) -> String {
    part.content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".to_string())
        .to_ascii_lowercase()
}

/// A real HTML part (mail-parser's `body_html` would turn a text part into HTML).
fn html_of(message: &Message) -> Option<String> {
    message.html_body.iter().find_map(|id| match &message.parts.get(*id as usize)?.body {
        PartType::Html(html) => Some(html.to_string()),
        _ => None,
    })
}

/// The HTML part of `raw`, decoded to a string (served as UTF-8), without its `<meta
/// http-equiv>` elements: a refresh would navigate the frame to a remote page (which the CSP of
/// the part does not govern), and a declared charset is no longer true once re-encoded.
pub fn html(raw: &[u8]) -> Option<String> {
    static META: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let meta = META.get_or_init(|| regex::Regex::new(r"(?is)<meta\b[^>]*\bhttp-equiv\b[^>]*>").expect("a valid pattern"));
    Some(meta.replace_all(&html_of(&parse(raw)?)?, "").into_owned())
}

/// Attachment `index` of `raw`: its info and decoded bytes.
pub fn attachment(raw: &[u8], index: usize) -> Option<(AttachmentInfo, Vec<u8>)> {
    let message = parse(raw)?;
    let part = message.attachments().nth(index)?;
    let info = AttachmentInfo {
        index,
        name: part.attachment_name().map(str::to_string).unwrap_or_default(),
        content_type: content_type(part),
        size: part.contents().len(),
    };
    Some((info, part.contents().to_vec()))
}

/// `512 B`, `1.5 KB`, `2.0 MB` (1024-based, one decimal above bytes).
pub fn human_size(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GB2312 for "您好，世界" and KOI8-R for "Привет, мир", as a mail client would send them.
    const GB2312_HELLO: &[u8] = b"\xc4\xfa\xba\xc3\xa3\xac\xca\xc0\xbd\xe7";
    const KOI8R_HELLO: &[u8] = b"\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2";

    fn message(charset: &str, body: &[u8]) -> Vec<u8> {
        let mut raw = format!("From: a@b.example\r\nSubject: s\r\nContent-Type: text/plain; charset={charset}\r\n\r\n").into_bytes();
        raw.extend_from_slice(body);
        raw.extend_from_slice(b"\r\n");
        raw
    }

    #[test]
    fn legacy_charsets_decode() {
        assert_eq!(body(&message("gb2312", GB2312_HELLO)).text.as_deref(), Some("您好，世界"));
        assert_eq!(body(&message("GBK", GB2312_HELLO)).text.as_deref(), Some("您好，世界"));
        assert_eq!(body(&message("koi8-r", KOI8R_HELLO)).text.as_deref(), Some("Привет, мир"));
        assert_eq!(body(&message("windows-1251", b"\xcf\xf0\xe8\xe2\xe5\xf2")).text.as_deref(), Some("Привет"));
        assert_eq!(body(&message("big5", b"\xa4\xa4\xa4\xe5")).text.as_deref(), Some("中文"));
        let subject = b"From: a@b.example\r\nSubject: =?GB2312?B?xPq6ww==?= =?KOI8-R?Q?=F0=D2=C9=D7=C5=D4?=\r\n\r\nx\r\n";
        assert_eq!(MessageParser::default().parse(&subject[..]).unwrap().subject(), Some("您好Привет"));
    }

    #[test]
    fn html_only_mail_gets_a_text_rendering_and_attachments_are_numbered() {
        let raw = b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>there</b></p><script>x()</script>\r\n--B\r\n\
Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n";
        let b = body(raw);
        assert!(b.has_html);
        assert!(b.text.as_deref().unwrap().contains("Hello there"), "{b:?}");
        assert_eq!(b.attachments, vec![AttachmentInfo { index: 0, name: "a.pdf".into(), content_type: "application/pdf".into(), size: 9 }]);
        assert_eq!(attachment(raw, 0).unwrap().1, b"%PDF-1.4\n");
        assert!(attachment(raw, 1).is_none());
        assert!(html(raw).unwrap().contains("<b>there</b>"));
        assert_eq!(html(&message("utf-8", b"plain")), None, "a text part is not HTML");
        let refresh = b"From: a@b.example\r\nContent-Type: text/html\r\n\r\n<head><META HTTP-EQUIV=\"refresh\" content=\"0; url=https://x.example/\"><meta charset=utf-8></head><p>x</p>\r\n";
        assert_eq!(html(refresh).unwrap().trim(), "<head><meta charset=utf-8></head><p>x</p>");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MB");
    }
}
