//! The IMAP target: bytes from the fuzzer as a staff client's command stream, through the real
//! IMAP listener and session (implicit TLS, as on port 993) with a store that holds messages.
//!
//! The first input byte chooses: bit 0, log in first (as a supervisor, who reads every queue);
//! bit 1, then SELECT the support mailbox; bit 2, lock-step (wait for each command's completion)
//! instead of pipelining everything. A model client walks the commands (lines and literals, as
//! RFC 3501 frames them) together with the responses and checks that every command is completed
//! by a tagged response with its tag (or an untagged BAD when it has no valid tag), that
//! continuation requests come where a literal, IDLE or AUTHENTICATE expects them, that every
//! response line is well formed and decodes as IMAP, and that the server closes only after BYE
//! or once the client has closed.

use std::time::Duration;

use imap_codec::ResponseCodec;
use imap_codec::decode::Decoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::server::{self, HOST, PASSWORD, Server, USER};

/// Longer than the server's own login and idle timeouts (5 s in the fuzz config).
const PATIENCE: Duration = Duration::from_secs(15);

pub fn run(input: &[u8]) {
    let Some((&mode, commands)) = input.split_first() else { return };
    let login = mode & 1 != 0;
    let select = login && mode & 2 != 0;
    let lockstep = mode & 4 != 0;
    server::with(|s| s.block_on(converse(s, commands, login, select, lockstep)));
}

async fn converse(s: &Server, input: &[u8], login: bool, select: bool, lockstep: bool) {
    let tcp = tokio::net::TcpStream::connect(s.imap_addr).await.expect("connecting to the IMAP listener");
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from(HOST).expect("a server name");
    let tls = s.tls_client.connect(name, tcp).await.expect("TLS handshake with the IMAP listener");
    let (reader, writer) = tokio::io::split(tls);
    let mut c = Client { reader, writer, parser: ResponseParser::default(), recorded: false, bye: false };
    let greeting = c.response(b"(connect)").await.expect("a greeting");
    assert!(greeting.bytes.starts_with(b"* OK "), "greeting: {:?}", greeting.shown());
    if login {
        c.send(format!("L1 LOGIN {USER} {PASSWORD}\r\n").as_bytes()).await;
        c.expect_ok("L1").await;
    }
    if select {
        c.send(b"S1 SELECT support\r\n").await;
        c.expect_ok("S1").await;
    }
    if !lockstep {
        c.pipeline(input).await;
    }
    walk(&mut c, input).await;
    c.finish().await;
}

/// One response: a status, data, or a continuation request, with any literals it carries.
struct Response {
    bytes: Vec<u8>,
}

impl Response {
    fn shown(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.chars().take(300).collect()
    }

    fn continuation(&self) -> bool {
        self.bytes.starts_with(b"+")
    }

    fn bye(&self) -> bool {
        self.bytes.len() >= 6 && self.bytes[..6].eq_ignore_ascii_case(b"* BYE ")
    }

    /// `tag OK|NO|BAD …` for this tag.
    fn completes(&self, tag: &[u8]) -> bool {
        self.bytes.len() > tag.len() && self.bytes.starts_with(tag) && self.bytes[tag.len()] == b' ' && {
            let rest = &self.bytes[tag.len() + 1..];
            [&b"OK "[..], b"NO ", b"BAD "].iter().any(|s| rest.len() >= s.len() && rest[..s.len()].eq_ignore_ascii_case(s))
        }
    }

    fn untagged_bad(&self) -> bool {
        self.bytes.len() >= 6 && self.bytes[..6].eq_ignore_ascii_case(b"* BAD ")
    }

    fn tagged(&self) -> bool {
        !self.bytes.starts_with(b"*") && !self.continuation()
    }
}

/// Splits the server's output into responses, checking the framing of each.
#[derive(Default)]
struct ResponseParser {
    buf: Vec<u8>,
    seen_greeting: bool,
}

impl ResponseParser {
    fn next_response(&mut self) -> Option<Response> {
        let mut end = 0;
        loop {
            let lf = end + memchr::memchr(b'\n', &self.buf[end..])?;
            let line = &self.buf[end..=lf];
            assert!(line.ends_with(b"\r\n"), "response line without CRLF: {:?}", String::from_utf8_lossy(line));
            assert!(
                !line[..line.len() - 2].iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                "CR, LF or NUL inside a response line: {:?}",
                String::from_utf8_lossy(line)
            );
            match literal_length(line) {
                Some(n) => {
                    if self.buf.len() < lf + 1 + n {
                        return None;
                    }
                    end = lf + 1 + n;
                }
                None => {
                    end = lf + 1;
                    break;
                }
            }
        }
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        let response = Response { bytes };
        if std::mem::replace(&mut self.seen_greeting, true) {
            check_syntax(&response);
        }
        Some(response)
    }
}

/// Every response must be one a client can parse. imap-codec 1.0 does not know `* ID` (RFC
/// 2971); that one is checked by the framing above only.
fn check_syntax(r: &Response) {
    if r.bytes.len() >= 5 && r.bytes[..5].eq_ignore_ascii_case(b"* ID ") {
        return;
    }
    match ResponseCodec::default().decode(&r.bytes) {
        Ok((rest, _)) => assert!(rest.is_empty(), "trailing bytes after a response: {:?}", r.shown()),
        Err(e) => panic!("a response a client cannot parse ({e:?}): {:?}", r.shown()),
    }
}

/// `{n}` at the end of a line (before CRLF): a literal of n octets follows.
fn literal_length(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', body)?;
    let digits = &body[open + 1..];
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A literal announced by the client at the end of a command line: (length, synchronising).
/// The same rule the server applies (RFC 3501 §4.3, RFC 7888).
fn announced(line: &[u8]) -> Option<(u64, bool)> {
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
    Some((digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')), sync))
}

/// The tag of a command, if it has a valid one (RFC 3501 §9: astring characters but `+`).
fn tag_of(command: &[u8]) -> Option<&[u8]> {
    let end = command.iter().position(|b| matches!(b, b' ' | b'\r' | b'\n')).unwrap_or(command.len());
    let tag = &command[..end];
    let valid =
        !tag.is_empty() && tag.iter().all(|b| b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+'));
    valid.then_some(tag)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

struct Client {
    reader: ReadHalf<Tls>,
    writer: WriteHalf<Tls>,
    parser: ResponseParser,
    /// Everything was sent at once and every response is in the parser.
    recorded: bool,
    /// The server said BYE: it may close now.
    bye: bool,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        if !self.recorded {
            let _ = self.writer.write_all(bytes).await;
            let _ = self.writer.flush().await;
        }
    }

    /// Sends the whole input (reading meanwhile), closes, and keeps every response.
    async fn pipeline(&mut self, input: &[u8]) {
        let Client { reader, writer, parser, .. } = self;
        let send = async {
            let _ = writer.write_all(input).await;
            let _ = writer.shutdown().await;
        };
        let (_, all) = tokio::join!(send, read_all(reader));
        parser.buf.extend_from_slice(&all);
        self.recorded = true;
    }

    /// The next response; None once the server has closed.
    async fn response(&mut self, after: &[u8]) -> Option<Response> {
        loop {
            if let Some(r) = self.parser.next_response() {
                self.bye |= r.bye();
                return Some(r);
            }
            if self.recorded {
                return None;
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(PATIENCE, self.reader.read(&mut chunk)).await {
                Err(_) => panic!("no response within {PATIENCE:?} after {:?}", String::from_utf8_lossy(after)),
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.parser.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn expect_ok(&mut self, tag: &str) {
        loop {
            let r = self.response(tag.as_bytes()).await.unwrap_or_else(|| panic!("{tag}: closed"));
            if r.completes(tag.as_bytes()) {
                assert!(r.bytes[tag.len() + 1..].starts_with(b"OK "), "{tag}: {}", r.shown());
                return;
            }
        }
    }

    /// Closes our side; the server may still say BYE (untagged), nothing else, then close.
    async fn finish(&mut self) {
        if !self.recorded {
            let _ = self.writer.shutdown().await;
            let rest = read_all(&mut self.reader).await;
            self.parser.buf.extend_from_slice(&rest);
        }
        while let Some(r) = self.parser.next_response() {
            assert!(!r.tagged() && !r.continuation(), "a response nobody asked for: {:?}", r.shown());
        }
        assert!(self.parser.buf.is_empty(), "an unfinished response: {:?}", String::from_utf8_lossy(&self.parser.buf));
    }
}

async fn read_all(reader: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout(PATIENCE, reader.read(&mut chunk)).await {
            Err(_) => panic!("the server did not close after the client closed"),
            // A close without TLS close_notify reads as an error: the end all the same.
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What ended the wait for a command's completion.
enum Wait {
    Completed,
    /// `+`: the server wants the next line (IDLE, AUTHENTICATE) or a literal.
    Continue,
    Closed,
}

/// Waits for the completion of the command with `tag` (None: no valid tag, so an untagged BAD
/// completes it). Untagged data on the way is fine.
async fn wait(c: &mut Client, tag: Option<&[u8]>, command: &[u8]) -> Wait {
    loop {
        let Some(r) = c.response(command).await else {
            assert!(c.bye, "the server closed without BYE after {:?}", String::from_utf8_lossy(command));
            return Wait::Closed;
        };
        if r.continuation() {
            return Wait::Continue;
        }
        if r.bye() {
            assert!(!r.shown().contains("Autologout"), "the server waited for more input after {:?}", String::from_utf8_lossy(command));
            // The server closes after BYE; a tagged completion may still come first (LOGOUT).
            continue;
        }
        match tag {
            Some(tag) if r.completes(tag) => return Wait::Completed,
            Some(_) => assert!(!r.tagged(), "a completion with another tag: {:?} for {:?}", r.shown(), String::from_utf8_lossy(command)),
            None if r.untagged_bad() => return Wait::Completed,
            None => {}
        }
    }
}

async fn walk(c: &mut Client, input: &[u8]) {
    let mut rest = input;
    'commands: while !rest.is_empty() {
        let mut command = Vec::new();
        // The lines and literals of one command.
        loop {
            let Some(pos) = memchr::memchr(b'\n', rest) else {
                c.send(rest).await;
                return;
            };
            let (line, after) = rest.split_at(pos + 1);
            rest = after;
            command.extend_from_slice(line);
            c.send(line).await;
            let Some((len, sync)) = announced(line) else { break };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if sync {
                match wait(c, tag_of(&command), &command).await {
                    Wait::Continue => {}
                    // Refused (too large, APPEND): the command is over; the data never follows.
                    Wait::Completed => continue 'commands,
                    Wait::Closed => return,
                }
            }
            if len > rest.len() {
                c.send(rest).await;
                return;
            }
            let (literal, after) = rest.split_at(len);
            rest = after;
            command.extend_from_slice(literal);
            c.send(literal).await;
        }
        let tag = tag_of(&command).map(<[u8]>::to_vec);
        loop {
            match wait(c, tag.as_deref(), &command).await {
                Wait::Completed => break,
                Wait::Closed => return,
                Wait::Continue => {
                    // IDLE or AUTHENTICATE: the next line answers the continuation request.
                    let Some(pos) = memchr::memchr(b'\n', rest) else {
                        c.send(rest).await;
                        return;
                    };
                    let (line, after) = rest.split_at(pos + 1);
                    rest = after;
                    c.send(line).await;
                }
            }
        }
    }
}
