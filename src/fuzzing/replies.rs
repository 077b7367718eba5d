//! SMTP/LMTP reply streams as a client sees them: split into (multi-line) replies, each line
//! checked for the syntax RFC 5321 §4.2 and RFC 2034 require.

/// One complete reply: its code and the text of its last line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub last_line: String,
}

impl Reply {
    pub fn positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 421 and 221 are always followed by the server closing the connection.
    pub fn closes(&self) -> bool {
        self.code == 421 || self.code == 221
    }
}

/// Accumulates bytes from the server and hands out complete replies.
#[derive(Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    /// Code of a multi-line reply whose last line has not arrived yet.
    open: Option<u16>,
}

impl ReplyParser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete reply, if one is buffered. Panics on a malformed line.
    pub fn next_reply(&mut self) -> Option<Reply> {
        loop {
            let end = memchr::memchr(b'\n', &self.buf)?;
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let (code, last) = check_line(&line);
            if let Some(open) = self.open {
                assert_eq!(code, open, "a multi-line reply changed its code: {:?}", String::from_utf8_lossy(&line));
            }
            if last {
                self.open = None;
                return Some(Reply { code, last_line: String::from_utf8_lossy(&line).trim_end().to_string() });
            }
            self.open = Some(code);
        }
    }

    /// Bytes that do not form a complete reply (must be none once the server has closed).
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}

/// Checks one reply line (with its LF); returns its code and whether it is a reply's last line.
fn check_line(line: &[u8]) -> (u16, bool) {
    let shown = String::from_utf8_lossy(line);
    let content = line.strip_suffix(b"\r\n").unwrap_or_else(|| panic!("reply line without CRLF: {shown:?}"));
    assert!(
        !content.iter().any(|b| b.is_ascii_control()),
        "a reply line carries a control character (client input echoed unsanitised?): {shown:?}"
    );
    assert!(content.len() >= 3 && content[..3].iter().all(u8::is_ascii_digit), "reply without a code: {shown:?}");
    assert!((b'2'..=b'5').contains(&content[0]), "reply code out of range: {shown:?}");
    let code = content[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let separator = content.get(3).copied();
    assert!(matches!(separator, None | Some(b' ' | b'-')), "bad separator after the code: {shown:?}");
    let last = separator != Some(b'-');
    if code >= 400 {
        // Every error carries an enhanced status code of the same class (RFC 3463).
        let text = std::str::from_utf8(&content[4.min(content.len())..]).unwrap_or("");
        let enhanced = text.split(' ').next().unwrap_or("");
        let parts: Vec<&str> = enhanced.split('.').collect();
        assert!(
            parts.len() == 3
                && parts[0] == &shown[..1]
                && parts[1..].iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())),
            "error reply without a matching enhanced status code: {shown:?}"
        );
    }
    (code, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies_are_one_reply() {
        let mut p = ReplyParser::default();
        p.push(b"250-mx\r\n250-PIPELINING\r\n250 HELP\r\n550 5.1.1 Mailbox unknown\r\n354 go");
        assert_eq!(p.next_reply().unwrap().code, 250);
        assert_eq!(p.next_reply().unwrap().last_line, "550 5.1.1 Mailbox unknown");
        assert!(p.next_reply().is_none());
        assert_eq!(p.leftover(), b"354 go");
    }

    #[test]
    #[should_panic(expected = "enhanced status code")]
    fn errors_need_an_enhanced_code() {
        let mut p = ReplyParser::default();
        p.push(b"550 Mailbox unknown\r\n");
        p.next_reply();
    }

    #[test]
    #[should_panic(expected = "control character")]
    fn control_characters_are_refused() {
        let mut p = ReplyParser::default();
        p.push(b"250 2.0.0 <a\rb> Registered\r\n");
        p.next_reply();
    }
}
