//! The MIME header fields of a part, as BODYSTRUCTURE reports them.

use mail_parser::{HeaderName, HeaderValue, MessagePart};

/// The MIME header fields BODYSTRUCTURE reports.
#[derive(Default)]
pub(super) struct Mime {
    pub(super) ctype: String,
    pub(super) subtype: String,
    pub(super) params: Vec<(String, String)>,
    pub(super) id: Option<String>,
    pub(super) description: Option<String>,
    pub(super) encoding: Option<String>,
    pub(super) md5: Option<String>,
    pub(super) disposition: Option<(String, Vec<(String, String)>)>,
    pub(super) language: Vec<String>,
    pub(super) location: Option<String>,
}

pub(super) fn mime_fields(part: &MessagePart) -> Mime {
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
