//! [`Imap`]: a raw IMAP client (plain, STARTTLS or implicit TLS via rustls) for exact protocol
//! checks: a command's untagged lines with their literals inlined, and its tagged status.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::{HOST, Server, find, show_bytes, tls_client_config};

pub enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Gone,
}

impl Conn {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
            Conn::Gone => panic!("connection gone"),
        }
    }
}

pub struct Imap {
    pub conn: Conn,
    pub buf: Vec<u8>,
    pub tag: u32,
}

/// A command's response: the untagged (and continuation) lines, literals inlined, and the
/// tagged status without the tag ("OK [READ-WRITE] SELECT completed").
#[derive(Debug)]
pub struct Resp {
    pub lines: Vec<String>,
    pub raw: Vec<Vec<u8>>,
    pub status: String,
}

impl Resp {
    pub fn ok(&self) -> bool {
        self.status.starts_with("OK")
    }
    pub fn has(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.contains(needle))
    }
}

impl Imap {
    pub fn connect(addr: SocketAddr) -> Imap {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Imap { conn: Conn::Plain(tcp), buf: Vec::new(), tag: 0 }
    }

    /// Connected to the implicit-TLS listener, greeting read.
    pub fn tls(addr: SocketAddr) -> Imap {
        let mut c = Imap::connect(addr);
        c.handshake();
        let greeting = c.line();
        assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "), "{greeting}");
        c
    }

    /// Logged in as `user` over TLS.
    pub fn login(s: &Server, user: &str, password: &str) -> Imap {
        let mut c = Imap::tls(s.imaps_addr());
        let r = c.command(&format!("LOGIN {user} \"{password}\""));
        assert!(r.ok(), "login {user}: {r:?}");
        c
    }

    pub fn handshake(&mut self) {
        assert!(self.buf.is_empty(), "clear text before the handshake: {:?}", show_bytes(&self.buf));
        let Conn::Plain(mut sock) = std::mem::replace(&mut self.conn, Conn::Gone) else { panic!("not plain") };
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap().to_owned();
        let mut tls = rustls::ClientConnection::new(Arc::new(tls_client_config(None)), name).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut sock).expect("TLS handshake");
        }
        self.conn = Conn::Tls(Box::new(rustls::StreamOwned::new(tls, sock)));
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let r = match &mut self.conn {
            Conn::Plain(s) => s.write_all(bytes).and_then(|_| s.flush()),
            Conn::Tls(t) => t.write_all(bytes).and_then(|_| t.flush()),
            Conn::Gone => panic!("connection gone"),
        };
        r.expect("send");
    }

    /// More bytes; Ok(0) at EOF.
    pub fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = match &mut self.conn {
            Conn::Plain(s) => s.read(&mut chunk),
            Conn::Tls(t) => match t.read(&mut chunk) {
                // A peer that closes without close_notify: EOF all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Conn::Gone => panic!("connection gone"),
        };
        let n = match n {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            other => other?,
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// One response line with its literals, without the final CRLF; None at EOF.
    pub fn try_line(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let nl = loop {
                if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                    break i;
                }
                if self.fill().expect("read") == 0 {
                    assert!(out.is_empty() && self.buf.is_empty(), "EOF inside a response: {:?}", show_bytes(&self.buf));
                    return None;
                }
            };
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            assert!(line.ends_with(b"\r\n"), "response line without CRLF: {:?}", show_bytes(&line));
            let line = &line[..line.len() - 2];
            out.extend_from_slice(line);
            match literal_len(line) {
                Some(n) => {
                    while self.buf.len() < n {
                        assert!(self.fill().expect("read") > 0, "EOF inside a literal");
                    }
                    out.extend(self.buf.drain(..n));
                }
                None => return Some(out),
            }
        }
    }

    pub fn line(&mut self) -> String {
        let line = self.try_line().expect("a response line, got EOF");
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Sends `tag command` and reads up to the tagged response.
    pub fn command(&mut self, command: &str) -> Resp {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.send(format!("{tag} {command}\r\n").as_bytes());
        self.finish(&tag)
    }

    pub fn finish(&mut self, tag: &str) -> Resp {
        let mut resp = Resp { lines: vec![], raw: vec![], status: String::new() };
        loop {
            let raw = self.try_line().unwrap_or_else(|| panic!("EOF before the tagged response; so far {resp:?}"));
            let line = String::from_utf8_lossy(&raw).into_owned();
            if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                resp.status = status.to_string();
                return resp;
            }
            resp.lines.push(line);
            resp.raw.push(raw);
        }
    }

    /// The server closes the connection: the remaining lines before EOF.
    pub fn closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(l) = self.try_line() {
            lines.push(String::from_utf8_lossy(&l).into_owned());
        }
        lines
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.conn.tcp().set_read_timeout(Some(d)).unwrap();
    }
}

pub fn literal_len(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

/// The literal (or quoted string) after `item` in a FETCH response line.
pub fn fetched<'a>(raw: &'a [u8], item: &str) -> &'a [u8] {
    let at = find(raw, item.as_bytes()).unwrap_or_else(|| panic!("{item} not in {:?}", show_bytes(raw))) + item.len();
    let rest = &raw[at..];
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    if rest.starts_with(b"{") {
        let close = rest.iter().position(|b| *b == b'}').unwrap();
        let n: usize = std::str::from_utf8(&rest[1..close]).unwrap().parse().unwrap();
        &rest[close + 1..close + 1 + n]
    } else if let Some(q) = rest.strip_prefix(b"\"") {
        &q[..q.iter().position(|b| *b == b'"').unwrap()]
    } else {
        panic!("no string after {item}: {:?}", show_bytes(raw))
    }
}
