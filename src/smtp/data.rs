//! The DATA receiver: finds the end of the message and undoes dot-stuffing.
//!
//! Policy against SMTP smuggling (CVE-2023-51764 family): a line ends ONLY at CRLF. A bare LF or a
//! bare CR is ordinary content, kept byte for byte, so `LF.LF`, `LF.CRLF`, `CRLF.LF`, `CR.CR` and
//! every mix never end the message and never make the rest of the data look like commands. Only
//! `CRLF . CRLF` (or `. CRLF` as the very first line) ends it. A line that starts with "." and has
//! more after it loses that first "." (RFC 5321 §4.5.2).
//!
//! The receiver keeps scanning to the end after the size or line-length limit is hit, storing
//! nothing more, so the reply comes after the final dot and the session stays in sync.

/// Scanner position relative to CRLF-delimited lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Just after CRLF (or at the very start of the data).
    LineStart,
    /// Inside a line.
    Mid,
    /// Inside a line, just after a CR.
    Cr,
    /// A line that began with ".".
    Dot,
    /// A line that began with ".", then CR.
    DotCr,
}

pub struct DataReceiver {
    state: State,
    message: Vec<u8>,
    max_size: usize,
    max_line: usize,
    line_len: usize,
    /// Octets of content seen (after unstuffing), including what was not kept.
    pub total: usize,
    pub too_big: bool,
    pub line_too_long: bool,
    /// Keeping nothing more (the memory budget could not hold it): the end is still looked for.
    pub discarding: bool,
}

impl DataReceiver {
    pub fn new(max_size: usize, max_line: usize) -> DataReceiver {
        DataReceiver {
            state: State::LineStart,
            message: Vec::with_capacity(16 * 1024),
            max_size,
            max_line,
            line_len: 0,
            total: 0,
            too_big: false,
            line_too_long: false,
            discarding: false,
        }
    }

    /// Keeps nothing from here on and frees what was kept; the end of data is still found and
    /// the limits still checked.
    pub fn discard(&mut self) {
        self.discarding = true;
        self.message = Vec::new();
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        self.line_len += bytes.len();
        if self.line_len > self.max_line {
            self.line_too_long = true;
        }
        if self.too_big {
            return;
        }
        if self.total > self.max_size {
            self.too_big = true;
            self.message = Vec::new();
        } else if !self.discarding {
            self.message.extend_from_slice(bytes);
        }
    }

    /// A CRLF that ends a line (the line length counts the line's content and its CRLF).
    fn end_line(&mut self) {
        self.push(b"\n");
        self.line_len = 0;
        self.state = State::LineStart;
    }

    /// Consumes input; returns `Some(n)` when the end-of-data mark ends at `input[n - 1]`
    /// (bytes from `n` on belong to the next command).
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Mid => {
                    // Fast path: copy everything up to the next CR in one go.
                    match memchr::memchr(b'\r', &input[i..]) {
                        Some(off) => {
                            self.push(&input[i..i + off + 1]);
                            i += off + 1;
                            self.state = State::Cr;
                        }
                        None => {
                            self.push(&input[i..]);
                            i = input.len();
                        }
                    }
                    continue;
                }
                State::LineStart => match input[i] {
                    b'.' => self.state = State::Dot,
                    b'\r' => {
                        self.push(b"\r");
                        self.state = State::Cr;
                    }
                    b => {
                        self.push(&[b]);
                        self.state = State::Mid;
                    }
                },
                State::Cr => match input[i] {
                    b'\n' => self.end_line(),
                    b'\r' => self.push(b"\r"),
                    b => {
                        self.push(&[b]);
                        self.state = State::Mid;
                    }
                },
                State::Dot => match input[i] {
                    b'\r' => self.state = State::DotCr,
                    b => {
                        // Unstuffing: the leading dot goes, the rest of the line stays.
                        self.push(&[b]);
                        self.state = State::Mid;
                    }
                },
                State::DotCr => match input[i] {
                    b'\n' => return Some(i + 1),
                    _ => {
                        // ".\r" followed by something else: an unstuffed line holding a bare CR.
                        self.push(b"\r");
                        self.state = State::Cr;
                        continue; // re-examine this byte in the Cr state
                    }
                },
            }
            i += 1;
        }
        None
    }

    pub fn into_message(self) -> Vec<u8> {
        self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (message, consumed) if the end was found.
    fn run(input: &[u8], step: usize) -> Option<(Vec<u8>, usize)> {
        let mut r = DataReceiver::new(1 << 20, 1 << 16);
        let mut offset = 0;
        for piece in input.chunks(step) {
            if let Some(n) = r.feed(piece) {
                return Some((r.into_message(), offset + n));
            }
            offset += piece.len();
        }
        None
    }

    fn every_split(input: &[u8]) -> Option<(Vec<u8>, usize)> {
        let whole = run(input, input.len().max(1));
        for step in 1..input.len().max(1) {
            assert_eq!(run(input, step), whole, "result depends on how the input is split (step {step})");
        }
        whole
    }

    #[test]
    fn plain_message_and_rest() {
        let (m, n) = every_split(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n").unwrap();
        assert_eq!(m, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(n, b"Subject: x\r\n\r\nhello\r\n.\r\n".len());
    }

    #[test]
    fn empty_message_first_line_dot() {
        assert_eq!(every_split(b".\r\n"), Some((Vec::new(), 3)));
    }

    #[test]
    fn dot_unstuffing() {
        let (m, _) = every_split(b"..leading\r\n...\r\n.x\r\nmid.dle\r\n.\r\n").unwrap();
        assert_eq!(m, b".leading\r\n..\r\nx\r\nmid.dle\r\n");
        // A first-line stuffed dot too.
        assert_eq!(every_split(b"..\r\n.\r\n").unwrap().0, b".\r\n");
    }

    #[test]
    fn smuggling_sequences_never_end_the_data() {
        let tails: [&[u8]; 14] = [
            b"\n.\n",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r",
            b"\r\n.\r",
            b"\r.\r\n",
            b"\n.\r",
            b"\r.\n",
            b"\n\n.\n\n",
            b"\r\r.\r\r",
            b"\r\n.\r\r\n",
            b"\r\n.\n\r\n",
            b"\n.\n.\n",
            b"\r\n \r\n.\n",
        ];
        for tail in tails {
            let mut input = b"Subject: s\r\n\r\nbody".to_vec();
            input.extend_from_slice(tail);
            input.extend_from_slice(b"MAIL FROM:<evil@x.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nsmuggled\r\n");
            let end = input.len();
            input.extend_from_slice(b".\r\n");
            let (message, consumed) = every_split(&input).unwrap_or_else(|| panic!("{tail:?}: no end found"));
            assert_eq!(consumed, input.len(), "{tail:?} ended the data early");
            assert!(message.windows(22).any(|w| w == b"MAIL FROM:<evil@x.org>"), "{tail:?}");
            assert_eq!(message, reference_unstuff(&input[..end]), "{tail:?}");
        }
    }

    /// The RFC rule, written the obvious way: split at CRLF, drop one leading dot per line.
    fn reference_unstuff(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
                Some(p) => (&rest[..p + 2], &rest[p + 2..]),
                None => (rest, &rest[rest.len()..]),
            };
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            rest = next;
        }
        out
    }

    #[test]
    fn limits_are_flagged_but_the_end_is_still_found() {
        let mut r = DataReceiver::new(10, 1 << 16);
        assert_eq!(r.feed(b"0123456789abc\r\n.\r\nNEXT"), Some(18));
        assert!(r.too_big);
        let mut r = DataReceiver::new(1 << 20, 1000);
        let mut long = vec![b'a'; 1001];
        long.extend_from_slice(b"\r\n.\r\n");
        assert!(r.feed(&long).is_some());
        assert!(r.line_too_long);
        let mut r = DataReceiver::new(1 << 20, 1000);
        let mut ok = vec![b'a'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert!(r.feed(&ok).is_some());
        assert!(!r.line_too_long, "998 octets + CRLF is the RFC maximum");
    }

    #[test]
    fn discarding_keeps_nothing_but_still_finds_the_end_and_the_size() {
        let mut r = DataReceiver::new(20, 1 << 16);
        assert_eq!(r.feed(b"0123456789"), None);
        r.discard();
        assert_eq!(r.feed(b"abc\r\n.\r\nNEXT"), Some(8));
        assert!(!r.too_big);
        assert_eq!(r.total, 15);
        assert!(r.into_message().is_empty());
        let mut r = DataReceiver::new(20, 1 << 16);
        r.discard();
        assert_eq!(r.feed(b"0123456789012345678901234\r\n.\r\n"), Some(30));
        assert!(r.too_big, "the size limit still counts what was discarded");
    }
}
