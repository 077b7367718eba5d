//! [`Client`]: a tiny raw-socket SMTP/LMTP client (plain or STARTTLS via rustls) that sends exact
//! bytes and reads (multi-line) replies, for byte-level assertions; and the server's ways to open
//! one with the greeting done.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::{HOST, Server, data_wire, registered, show_bytes, tcp_from, tls_client_config};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Full lines without CRLF, e.g. `250-PIPELINING`, `250 HELP`.
    pub lines: Vec<String>,
}

impl Reply {
    /// The last (or only) line, e.g. `250 2.0.0 OK`.
    pub fn last(&self) -> &str {
        self.lines.last().unwrap()
    }
    /// For a single-line reply: the line.
    pub fn line(&self) -> &str {
        assert_eq!(self.lines.len(), 1, "expected a single-line reply, got {:?}", self.lines);
        &self.lines[0]
    }
    /// Text parts without `NNN-`/`NNN ` prefixes.
    pub fn texts(&self) -> Vec<String> {
        self.lines.iter().map(|l| l.get(4..).unwrap_or("").to_string()).collect()
    }
}

#[derive(Debug)]
pub enum ReadErr {
    Eof,
    Timeout,
    Io(io::Error),
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Gone,
}

pub struct Client {
    conn: Conn,
    buf: Vec<u8>,
    pub addr: SocketAddr,
    /// Every reply line read so far (for failure messages).
    pub transcript: Vec<String>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.set_write_timeout(Some(Duration::from_secs(15)))?;
        s.set_nodelay(true)?;
        Ok(Client { conn: Conn::Plain(s), buf: Vec::new(), addr, transcript: vec![] })
    }

    /// Connects from a chosen local address (e.g. 127.0.0.2), to act as a distinct source.
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Client {
        let s = tcp_from(source, addr).unwrap_or_else(|e| panic!("connect {addr} from {source}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { conn: Conn::Plain(s), buf: Vec::new(), addr, transcript: vec![] }
    }

    /// A second handle on a plain connection's socket, for a writer thread.
    pub fn plain_clone(&self) -> TcpStream {
        match &self.conn {
            Conn::Plain(s) => s.try_clone().unwrap(),
            _ => panic!("not a plain connection"),
        }
    }

    pub fn set_read_timeout(&mut self, d: Duration) {
        self.tcp().set_read_timeout(Some(d)).unwrap();
    }

    fn tcp(&self) -> &TcpStream {
        match &self.conn {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
            Conn::Gone => panic!("connection gone"),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.conn {
            Conn::Tls(t) => t.conn.protocol_version(),
            _ => None,
        }
    }

    /// Write exact bytes (one write call, so they travel together).
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).unwrap_or_else(|e| panic!("write to server: {e}"));
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.conn {
            Conn::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Conn::Tls(t) => {
                t.write_all(bytes)?;
                t.flush()
            }
            Conn::Gone => Err(io::Error::other("connection gone")),
        }
    }

    fn fill(&mut self) -> Result<(), ReadErr> {
        let mut tmp = [0u8; 16384];
        let r = match &mut self.conn {
            Conn::Plain(s) => s.read(&mut tmp),
            Conn::Tls(t) => t.read(&mut tmp),
            Conn::Gone => return Err(ReadErr::Eof),
        };
        match r {
            Ok(0) => Err(ReadErr::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            // A signal delivered to this thread (EINTR): nothing was read, the caller reads again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => Err(ReadErr::Timeout),
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionReset
                    || e.kind() == io::ErrorKind::ConnectionAborted
                    || e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::BrokenPipe =>
            {
                Err(ReadErr::Eof)
            }
            Err(e) => Err(ReadErr::Io(e)),
        }
    }

    /// One CRLF-terminated line (without CRLF).
    pub fn try_line(&mut self) -> Result<String, ReadErr> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=i).collect();
                assert!(raw.len() >= 2 && raw[raw.len() - 2] == b'\r', "server reply line not terminated by CRLF: {:?}", show_bytes(&raw));
                let line = String::from_utf8(raw[..raw.len() - 2].to_vec())
                    .unwrap_or_else(|_| panic!("reply is not UTF-8: {:?}", show_bytes(&raw)));
                self.transcript.push(line.clone());
                return Ok(line);
            }
            self.fill()?;
        }
    }

    /// A complete (multi-line) reply.
    pub fn try_reply(&mut self) -> Result<Reply, ReadErr> {
        let mut lines = Vec::new();
        loop {
            let line = self.try_line()?;
            let b = line.as_bytes();
            assert!(
                b.len() >= 3 && b[..3].iter().all(|c| c.is_ascii_digit()) && (b.len() == 3 || b[3] == b' ' || b[3] == b'-'),
                "malformed reply line {line:?} (transcript {:?})",
                self.transcript
            );
            let code: u16 = line[..3].parse().unwrap();
            if let Some(first) = lines.first() {
                let first: &String = first;
                assert_eq!(&first[..3], &line[..3], "reply code changed inside a multi-line reply");
            }
            let last = b.len() == 3 || b[3] == b' ';
            lines.push(line);
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    pub fn reply(&mut self) -> Reply {
        match self.try_reply() {
            Ok(r) => r,
            Err(e) => {
                panic!("expected a reply, got {e:?}; transcript so far: {:#?}; unread bytes: {:?}", self.transcript, show_bytes(&self.buf))
            }
        }
    }

    /// Send `line` + CRLF and read the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Read one reply and assert it is exactly this single line.
    pub fn expect_line(&mut self, expected: &str) -> Reply {
        let r = self.reply();
        assert_eq!(r.lines, vec![expected.to_string()], "unexpected reply (transcript {:#?})", self.transcript);
        r
    }

    /// Send `line` + CRLF and assert the single-line reply.
    pub fn expect(&mut self, line: &str, expected: &str) {
        self.send(format!("{line}\r\n").as_bytes());
        let r = self.reply();
        assert_eq!(r.lines, vec![expected.to_string()], "reply to {line:?} (transcript {:#?})", self.transcript);
    }

    /// Send `line` + CRLF and assert the single-line reply is one of `expected`.
    pub fn expect_any(&mut self, line: &str, expected: &[&str]) {
        self.send(format!("{line}\r\n").as_bytes());
        let r = self.reply();
        assert!(
            r.lines.len() == 1 && expected.contains(&r.lines[0].as_str()),
            "reply to {line:?}: {r:?}, expected one of {expected:?} (transcript {:#?})",
            self.transcript
        );
    }

    /// EHLO and check the documented capability list. Returns the extension keywords.
    pub fn ehlo(&mut self, name: &str) -> Vec<String> {
        let r = self.cmd(&format!("EHLO {name}"));
        check_ehlo(&r, self.is_tls(), None);
        r.texts()[1..].to_vec()
    }

    /// MAIL + RCPTs (all must be accepted) + DATA with `content` (stuffed here); returns the
    /// registration number.
    pub fn send_message(&mut self, from: &str, rcpts: &[&str], content: &[u8]) -> String {
        self.expect(&format!("MAIL FROM:<{from}>"), "250 2.1.0 Sender OK");
        for r in rcpts {
            self.expect(&format!("RCPT TO:<{r}>"), "250 2.1.5 Recipient OK");
        }
        self.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
        self.send(&data_wire(content));
        let r = self.reply();
        registered(r.line())
    }

    /// Assert the server closes the connection (EOF/reset) without sending anything more.
    pub fn expect_closed(&mut self) {
        match self.try_line() {
            Err(ReadErr::Eof) => {}
            Ok(l) => panic!("expected the server to close the connection, got line {l:?}"),
            Err(e) => panic!("expected the server to close the connection, got {e:?}"),
        }
    }

    /// Assert that nothing arrives within `d` (no stray reply).
    pub fn expect_silence(&mut self, d: Duration) {
        assert!(self.buf.is_empty(), "unexpected buffered bytes: {:?}", show_bytes(&self.buf));
        let old = self.tcp().read_timeout().unwrap();
        self.set_read_timeout(d);
        loop {
            match self.fill() {
                Err(ReadErr::Timeout) => break,
                Ok(()) if self.buf.is_empty() => continue, // interrupted by a signal: wait again
                Ok(()) => panic!("unexpected bytes from server: {:?}", show_bytes(&self.buf)),
                Err(e) => panic!("expected silence, got {e:?}"),
            }
        }
        self.tcp().set_read_timeout(old).unwrap();
    }

    pub fn unread(&self) -> &[u8] {
        &self.buf
    }

    /// Close our write side (the server should see EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.tcp().shutdown(Shutdown::Write);
    }

    /// Send STARTTLS, expect 220, then run the TLS handshake (any certificate accepted).
    pub fn starttls(&mut self) {
        self.expect("STARTTLS", "220 2.0.0 Ready to start TLS");
        self.handshake(None);
    }

    /// Run a TLS handshake on the current plain connection. Any byte the server sent after its
    /// 220 and before the handshake is a failure.
    pub fn handshake(&mut self, version: Option<&'static rustls::SupportedProtocolVersion>) {
        assert!(self.buf.is_empty(), "server sent plaintext after `220 Ready to start TLS`: {:?}", show_bytes(&self.buf));
        let sock = match std::mem::replace(&mut self.conn, Conn::Gone) {
            Conn::Plain(s) => s,
            _ => panic!("handshake on a non-plain connection"),
        };
        let config = tls_client_config(version);
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap().to_owned();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut sock = sock;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                panic!("TLS handshake failed: {e}");
            }
        }
        self.conn = Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock)));
    }
}

/// Check an EHLO/LHLO reply against docs/smtp-replies.md.
pub fn check_ehlo(r: &Reply, tls: bool, size: Option<u64>) {
    assert_eq!(r.code, 250, "EHLO reply: {r:?}");
    assert!(r.lines.len() >= 3, "EHLO reply too short: {r:?}");
    assert_eq!(r.lines[0], format!("250-{HOST}"), "first EHLO line: {r:?}");
    assert_eq!(r.last(), "250 HELP", "last EHLO line: {r:?}");
    let mut got: Vec<String> = r.texts()[1..r.lines.len() - 1].to_vec();
    got.sort();
    let mut want: Vec<String> = vec![
        "PIPELINING".into(),
        format!("SIZE {}", size.map(|s| s.to_string()).unwrap_or_else(|| "*".into())),
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        "ENHANCEDSTATUSCODES".into(),
        "CHUNKING".into(),
    ];
    if !tls {
        want.push("STARTTLS".into());
    }
    if size.is_none() {
        // Accept any numeric SIZE value.
        for g in got.iter_mut() {
            if let Some(v) = g.strip_prefix("SIZE ") {
                assert!(v.parse::<u64>().is_ok(), "bad SIZE line {g:?}");
                *g = "SIZE *".into();
            }
        }
    }
    want.sort();
    assert_eq!(got, want, "EHLO extensions (tls={tls}): {r:?}");
}

impl Server {
    pub fn connect_smtp(&self) -> Client {
        let mut c = Client::connect(self.smtp_addr());
        c.expect_line(&format!("220 {HOST} ESMTP mailroom"));
        c
    }

    /// Connected, banner read, EHLO done.
    pub fn smtp_session(&self) -> Client {
        let mut c = self.connect_smtp();
        c.ehlo("client.example.org");
        c
    }

    pub fn connect_lmtp(&self) -> Client {
        let mut c = Client::connect(self.lmtp_addr());
        c.expect_line(&format!("220 {HOST} LMTP mailroom"));
        c
    }

    pub fn lmtp_session(&self) -> Client {
        let mut c = self.connect_lmtp();
        let r = c.cmd("LHLO client.example.org");
        assert_eq!(r.code, 250, "LHLO: {r:?}");
        assert_eq!(r.lines[0], format!("250-{HOST}"), "LHLO: {r:?}");
        c
    }
}
