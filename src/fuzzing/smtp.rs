//! The SMTP/LMTP session target: bytes from the fuzzer go through `smtp::session::run` over a
//! loopback socket, with the real intake and store behind it.
//!
//! The first input byte picks the protocol (bit 0: LMTP) and the client's manner (bit 1:
//! lock-step, waiting for every reply before sending on; otherwise everything pipelined at
//! once). Either way a model client walks the input and the replies together and checks that
//! every command gets exactly its reply (one; one per accepted recipient after LMTP data), that
//! the data ends where RFC 5321 says it ends, that every reply line is well formed, and that the
//! server closes only after 421 or 221, or once the client has closed.

use std::time::Duration;

use smtp_proto::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::reference;
use super::replies::{Reply, ReplyParser};
use super::server::{self, Server};
use crate::intake::Protocol;

/// Longer than the server's own command and data timeouts (5 s in the fuzz config): when this
/// runs out, the server has neither answered nor timed out.
const PATIENCE: Duration = Duration::from_secs(15);

pub fn run(input: &[u8]) {
    let Some((&mode, stream)) = input.split_first() else { return };
    let protocol = if mode & 1 == 0 { Protocol::Smtp } else { Protocol::Lmtp };
    let lockstep = mode & 2 != 0;
    server::with(|s| s.block_on(converse(s, stream, protocol, lockstep)));
}

async fn converse(s: &Server, input: &[u8], protocol: Protocol, lockstep: bool) {
    let (client, server_end, peer) = s.smtp_pair().await;
    let session = tokio::spawn(crate::smtp::session::run(s.smtp().clone(), server_end, peer, protocol));
    let (reader, writer) = client.into_split();
    let max_line = s.settings.config.limits.max_command_line;
    let mut conversation = if lockstep {
        Conversation::Live { reader, writer, parser: ReplyParser::default() }
    } else {
        Conversation::Recorded { parser: pipeline(reader, writer, input).await }
    };
    let ended = check(&mut conversation, input, protocol == Protocol::Lmtp, max_line).await;
    conversation.finish(ended).await;
    match tokio::time::timeout(PATIENCE, session).await {
        Err(_) => panic!("the session did not end after the client closed"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(_) => {}
    }
}

/// Sends everything at once (reading at the same time, so neither side blocks on a full
/// buffer), closes the sending side and collects the replies until the server closes.
async fn pipeline(mut reader: OwnedReadHalf, mut writer: OwnedWriteHalf, input: &[u8]) -> ReplyParser {
    let send = async {
        // The server may close first (QUIT, too many errors): that is judged from the replies.
        let _ = writer.write_all(input).await;
        let _ = writer.shutdown().await;
    };
    let receive = async {
        let mut all = Vec::new();
        match tokio::time::timeout(PATIENCE, reader.read_to_end(&mut all)).await {
            Err(_) => panic!("the server neither replied nor closed after the client closed"),
            Ok(Err(e)) if e.kind() != std::io::ErrorKind::ConnectionReset => panic!("reading replies: {e}"),
            Ok(_) => {}
        }
        all
    };
    let ((), all) = tokio::join!(send, receive);
    let mut parser = ReplyParser::default();
    parser.push(&all);
    parser
}

enum Conversation {
    /// Lock-step: each command is sent once the previous one is answered.
    Live { reader: OwnedReadHalf, writer: OwnedWriteHalf, parser: ReplyParser },
    /// Pipelined: everything was sent; the replies are all here.
    Recorded { parser: ReplyParser },
}

impl Conversation {
    async fn send(&mut self, bytes: &[u8]) {
        if let Conversation::Live { writer, .. } = self {
            let _ = writer.write_all(bytes).await;
        }
    }

    /// The next `n` replies; None when the server closed before sending them all.
    async fn replies(&mut self, n: usize, after: &[u8]) -> Option<Vec<Reply>> {
        let mut got: Vec<Reply> = Vec::with_capacity(n);
        // A closing reply ends the wait, however many replies were due.
        while got.len() < n && !got.last().is_some_and(Reply::closes) {
            match self {
                Conversation::Recorded { parser } => got.push(parser.next_reply()?),
                Conversation::Live { reader, parser, .. } => {
                    if let Some(reply) = parser.next_reply() {
                        got.push(reply);
                        continue;
                    }
                    let mut chunk = [0u8; 4096];
                    let read = tokio::time::timeout(PATIENCE, reader.read(&mut chunk)).await;
                    match read {
                        Err(_) => panic!("no reply within {PATIENCE:?} after {:?}", String::from_utf8_lossy(after)),
                        Ok(Ok(0)) | Ok(Err(_)) => return None,
                        Ok(Ok(n)) => parser.push(&chunk[..n]),
                    }
                }
            }
        }
        Some(got)
    }

    /// Closes our side; whatever the server still says may only be a closing 421, then nothing
    /// (or, after STARTTLS, whatever TLS says about our clear text: `Ended::Tls`).
    async fn finish(&mut self, ended: Ended) {
        if let Conversation::Live { reader, writer, parser } = self {
            let _ = writer.shutdown().await;
            let mut rest = Vec::new();
            match tokio::time::timeout(PATIENCE, reader.read_to_end(&mut rest)).await {
                Err(_) => panic!("the server did not close after the client closed"),
                Ok(Err(e)) if e.kind() != std::io::ErrorKind::ConnectionReset => panic!("reading replies: {e}"),
                Ok(_) => {}
            }
            parser.push(&rest);
        }
        let parser = match self {
            Conversation::Live { parser, .. } | Conversation::Recorded { parser } => parser,
        };
        if ended == Ended::Tls {
            return;
        }
        while let Some(extra) = parser.next_reply() {
            assert!(extra.closes(), "a reply nobody asked for: {:?}", extra.last_line);
        }
        assert!(parser.leftover().is_empty(), "an unfinished reply line: {:?}", String::from_utf8_lossy(parser.leftover()));
    }
}

/// How the SMTP text of a conversation ended.
#[derive(PartialEq)]
enum Ended {
    Text,
    /// STARTTLS was accepted: what follows is (our clear text sent into) a TLS handshake.
    Tls,
}

/// Walks the input as the server must read it and checks each reply against it.
async fn check(c: &mut Conversation, input: &[u8], lmtp: bool, max_line: usize) -> Ended {
    let banner = c.replies(1, b"(connect)").await.expect("a banner");
    assert_eq!(banner[0].code, 220, "banner: {:?}", banner[0].last_line);
    let mut rest = input;
    // Recipients accepted in the open transaction: LMTP answers the data once for each.
    let mut accepted = 0usize;
    while let Some(pos) = memchr::memchr(b'\n', rest) {
        let (line, after) = rest.split_at(pos + 1);
        rest = after;
        c.send(line).await;
        // A line over the limit is refused without being parsed.
        let request = if pos < max_line { Request::parse(&mut line.iter()).ok() } else { None };
        let mut expected = 1;
        if let Some(Request::Bdat { chunk_size, is_last }) = request {
            let n = chunk_size.min(rest.len());
            c.send(&rest[..n]).await;
            rest = &rest[n..];
            if n < chunk_size {
                // The server waits for the rest of the chunk; only our close ends that.
                return Ended::Text;
            }
            if is_last && lmtp && accepted > 0 {
                expected = accepted;
            }
        }
        let Some(replies) = c.replies(expected, line).await else {
            panic!("the server closed without 421 after {:?}", String::from_utf8_lossy(line));
        };
        if let Some(r) = replies.iter().find(|r| r.code == 421 && r.last_line.contains("4.4.2")) {
            panic!("the server waited for more input after a complete {:?}: {}", String::from_utf8_lossy(line), r.last_line);
        }
        if replies.iter().any(Reply::closes) {
            return Ended::Text;
        }
        let ok = replies.iter().all(Reply::positive);
        match request {
            Some(Request::StartTls) if replies[0].code == 220 => return Ended::Tls,
            Some(Request::Mail { .. } | Request::Ehlo { .. } | Request::Helo { .. } | Request::Lhlo { .. } | Request::Rset) if ok => {
                accepted = 0
            }
            Some(Request::Rcpt { .. }) if ok => accepted += 1,
            Some(Request::Bdat { is_last, .. }) if is_last || !ok => accepted = 0,
            Some(Request::Data) => {
                if replies[0].code == 354 {
                    let Some(end) = reference::data_end(rest) else {
                        c.send(rest).await;
                        return Ended::Text;
                    };
                    c.send(&rest[..end]).await;
                    rest = &rest[end..];
                    let n = if lmtp { accepted.max(1) } else { 1 };
                    let Some(answers) = c.replies(n, b"(end of data)").await else {
                        panic!("the server closed without 421 after the end of data");
                    };
                    if answers.iter().any(Reply::closes) {
                        return Ended::Text;
                    }
                }
                accepted = 0;
            }
            _ => {}
        }
    }
    c.send(rest).await;
    if rest.len() >= max_line {
        // A line already over the limit is refused before its end arrives.
        let Some(replies) = c.replies(1, rest).await else { panic!("the server closed without 421 after an over-long line") };
        // (Or the 421 that closes the session after too many errors, the previous one included.)
        let r = &replies[0];
        assert!(r.closes() || r.last_line.starts_with("500 5.5.2"), "over-long line: {}", r.last_line);
    }
    Ended::Text
}
