//! ENVELOPE: header values raw, addresses as mail-parser reads them (with RFC 3501 groups).

use imap_codec::imap_types::core::NString;
use imap_codec::imap_types::envelope::{Address, Envelope};
use mail_parser::{HeaderName, MessagePart};

use super::fields::raw_value;
use super::strings::nstring;
use super::x_headers::encoded_word;

pub(super) fn envelope(block: &[u8], part: &MessagePart) -> Envelope<'static> {
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

pub(super) fn empty_envelope() -> Envelope<'static> {
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
