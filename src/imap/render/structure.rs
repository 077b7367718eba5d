//! BODYSTRUCTURE and BODY, computed from the rendered MIME tree.

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData, SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, NString, NonEmptyVec};

use super::mime::Mime;
use super::strings::{istring, nstring};
use super::{Entity, Kind, Rendered};

impl Rendered {
    pub(super) fn structure(&self, e: &Entity, extended: bool) -> BodyStructure<'static> {
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

pub(super) fn placeholder_structure() -> BodyStructure<'static> {
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
