//! Wire details that imap-codec leaves to the server: framing a command with its literals
//! (the codec parses a complete command; the session decides when to send `+` and how much to
//! accept), and status lines with the response codes of RFC 5530, which imap-types 1.0 cannot
//! build (its `CodeOther` needs the crate's `unvalidated` feature). Untagged data (LIST, FETCH,
//! SEARCH …) is encoded by imap-codec.

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::response::{Data, Response};

/// Responses waiting to be written.
#[derive(Default)]
pub struct Out {
    pub buf: Vec<u8>,
}

impl Out {
    pub fn data(&mut self, data: Data<'_>) {
        self.buf.extend_from_slice(&ResponseCodec::default().encode(&Response::Data(data)).dump());
    }

    /// A FETCH response, with `MODSEQ (n)` last when given (RFC 7162; imap-types 1.0 has no such
    /// item): the encoded response ends with `)` CRLF, and the item goes before that `)`.
    pub fn fetch(&mut self, data: Data<'_>, modseq: Option<u64>) {
        self.data(data);
        if let Some(modseq) = modseq {
            debug_assert!(self.buf.ends_with(b")\r\n"));
            let end = self.buf.len() - 3;
            self.buf.splice(end..end, format!(" MODSEQ ({modseq})").into_bytes());
        }
    }

    /// `tag OK|NO|BAD [code] text`; untagged (`*`) when `tag` is None.
    pub fn status(&mut self, tag: Option<&str>, kind: &str, code: Option<&str>, text: &str) {
        self.buf.extend_from_slice(tag.unwrap_or("*").as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(kind.as_bytes());
        if let Some(code) = code {
            self.buf.extend_from_slice(b" [");
            self.buf.extend_from_slice(code.as_bytes());
            self.buf.push(b']');
        }
        self.buf.push(b' ');
        // Text is ours, but may quote a mailbox name: never let it break the line.
        self.buf.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' || b == 0 { b' ' } else { b }));
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self, tag: &str, code: Option<&str>, text: &str) {
        self.status(Some(tag), "OK", code, text);
    }

    pub fn no(&mut self, tag: &str, code: Option<&str>, text: &str) {
        self.status(Some(tag), "NO", code, text);
    }

    pub fn bad(&mut self, tag: Option<&str>, code: Option<&str>, text: &str) {
        self.status(tag, "BAD", code, text);
    }

    pub fn bye(&mut self, code: Option<&str>, text: &str) {
        self.status(None, "BYE", code, text);
    }

    /// A line written as is (CRLF appended): `* ID (...)`, continuation requests.
    pub fn line(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// A literal announced at the end of a command line: `{n}` (synchronising: wait for `+`) or
/// `{n+}` (LITERAL+: the data follows at once).
#[derive(Debug, PartialEq, Eq)]
pub struct Announced {
    pub len: u64,
    pub sync: bool,
}

/// The literal announced at the end of `line` (which ends with LF), if any. Atoms cannot contain
/// `{` and a quoted string ends with `"`, so `{digits}` or `{digits+}` last on the line is always
/// a literal.
pub fn announced_literal(line: &[u8]) -> Option<Announced> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', inner)?;
    let spec = &inner[open + 1..];
    let (digits, sync) = match spec.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (spec, true),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(Announced { len, sync })
}

/// The tag of a command line, if it is a valid one (so an error can be tagged).
pub fn tag_of(command: &[u8]) -> Option<&str> {
    let end = command.iter().position(|b| *b == b' ' || *b == b'\r' || *b == b'\n').unwrap_or(command.len());
    let tag = &command[..end];
    let valid =
        !tag.is_empty() && tag.iter().all(|b| b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+'));
    valid.then(|| std::str::from_utf8(tag).expect("ASCII"))
}

/// The words after the tag, upper-cased (`UID FETCH` → ["UID", "FETCH"]), for the commands the
/// session recognises by hand.
pub fn verbs(command: &[u8], n: usize) -> Vec<String> {
    let line_end = memchr::memchr(b'\n', command).unwrap_or(command.len());
    String::from_utf8_lossy(&command[..line_end]).split_ascii_whitespace().skip(1).take(n).map(|w| w.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found_at_the_end_of_a_line_only() {
        assert_eq!(announced_literal(b"a LOGIN {4}\r\n"), Some(Announced { len: 4, sync: true }));
        assert_eq!(announced_literal(b"a LOGIN joe {12+}\r\n"), Some(Announced { len: 12, sync: false }));
        assert_eq!(announced_literal(b"a LOGIN joe {0}\n"), Some(Announced { len: 0, sync: true }));
        assert_eq!(announced_literal(b"a LOGIN joe \"{5}\"\r\n"), None);
        assert_eq!(announced_literal(b"a LOGIN joe {}\r\n"), None);
        assert_eq!(announced_literal(b"a LOGIN joe {5a}\r\n"), None);
        assert_eq!(announced_literal(b"a NOOP\r\n"), None);
        assert_eq!(announced_literal(b"a X {99999999999999999999}\r\n"), None);
    }

    #[test]
    fn tags_and_verbs() {
        assert_eq!(tag_of(b"a1 NOOP\r\n"), Some("a1"));
        assert_eq!(tag_of(b"* NOOP\r\n"), None);
        assert_eq!(tag_of(b"+x NOOP\r\n"), None);
        assert_eq!(tag_of(b"\r\n"), None);
        assert_eq!(verbs(b"7 uid expunge 1:2\r\n", 2), vec!["UID", "EXPUNGE"]);
    }

    #[test]
    fn status_lines_cannot_be_split() {
        let mut out = Out::default();
        out.no("a", Some("NONEXISTENT"), "No mailbox named x\r\ny OK");
        assert_eq!(out.buf, b"a NO [NONEXISTENT] No mailbox named x  y OK\r\n");
    }
}
