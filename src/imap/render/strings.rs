//! IMAP strings: quoted when possible, literal otherwise.

use imap_codec::imap_types::core::{IString, Literal, NString, Quoted};

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
