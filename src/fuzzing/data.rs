//! The DATA/BDAT target: the end of the data, dot-unstuffing and the limits, against the
//! reference rule, however the bytes are split.
//!
//! Input: `[mode, size, line, seed, payload…]`. Mode 0 and 3 feed `DataReceiver` directly (with
//! limits from `size` and `line`); mode 1 sends the payload as DATA and mode 2 as BDAT chunks
//! through a real session, and then reads the registered message back from the store. `seed`
//! chooses where the payload is split (the receiver's reads, the BDAT chunk sizes).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::reference;
use super::replies::{Reply, ReplyParser};
use super::server::{self, Server};
use crate::intake::Protocol;
use crate::smtp::data::DataReceiver;

pub fn run(input: &[u8]) {
    let [mode, size, line, seed, payload @ ..] = input else { return };
    match mode % 4 {
        1 => server::with(|s| s.block_on(through_session(s, payload, *seed, false))),
        2 => server::with(|s| s.block_on(through_session(s, payload, *seed, true))),
        _ => receiver(payload, 1 + usize::from(*size) * 16, 1 + usize::from(*line) * 8, *seed),
    }
}

/// Piece sizes from 1 to 16, from a tiny generator seeded by the input.
fn pieces(len: usize, seed: u8) -> Vec<usize> {
    let mut state = u32::from(seed) | 0x100;
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (((state >> 16) % 16) as usize + 1).min(left);
        out.push(n);
        left -= n;
    }
    out
}

#[derive(Debug, PartialEq)]
struct Fed {
    consumed: Option<usize>,
    message: Vec<u8>,
    total: usize,
    too_big: bool,
    line_too_long: bool,
}

fn feed(payload: &[u8], sizes: &[usize], max_size: usize, max_line: usize) -> Fed {
    let mut r = DataReceiver::new(max_size, max_line);
    let (mut offset, mut consumed) = (0, None);
    for n in sizes {
        if let Some(end) = r.feed(&payload[offset..offset + n]) {
            assert!(end <= *n, "the end lies beyond the bytes fed");
            consumed = Some(offset + end);
            break;
        }
        offset += n;
    }
    let (total, too_big, line_too_long) = (r.total, r.too_big, r.line_too_long);
    Fed { consumed, message: r.into_message(), total, too_big, line_too_long }
}

fn receiver(payload: &[u8], max_size: usize, max_line: usize, seed: u8) {
    let whole = feed(payload, &[payload.len()], max_size, max_line);
    let split = feed(payload, &pieces(payload.len(), seed), max_size, max_line);
    assert_eq!(whole, split, "the result depends on how the data is split");
    let end = reference::data_end(payload);
    assert_eq!(whole.consumed, end, "wrong end of data");
    let Some(end) = end else { return };
    let content = &payload[..end - 3];
    let message = reference::unstuff(content);
    assert_eq!(whole.total, message.len(), "octet count");
    assert_eq!(whole.too_big, message.len() > max_size, "size limit");
    assert_eq!(whole.line_too_long, reference::longest_line(content) > max_line, "line limit");
    if whole.too_big {
        assert!(whole.message.is_empty(), "an oversized message is not kept");
    } else {
        assert!(whole.message == message, "the message differs from the reference unstuffing");
    }
}

/// One transaction through a real SMTP session: the payload as DATA (terminated by the first
/// end-of-data mark in it, or one we add) or as BDAT chunks, then NOOP to show the session is
/// still in step. The message read back from the store must be exactly what was meant.
async fn through_session(s: &Server, payload: &[u8], seed: u8, bdat: bool) {
    let (client, server_end, peer) = s.smtp_pair().await;
    let session = tokio::spawn(crate::smtp::session::run(s.smtp().clone(), server_end, peer, Protocol::Smtp));
    let limits = &s.settings.config.limits;
    let mut c = Client { stream: client, parser: ReplyParser::default() };
    assert_eq!(c.reply().await.code, 220);
    for command in ["EHLO fuzz.example.org", "MAIL FROM:<sender@customer.org>", "RCPT TO:<support@example.com>"] {
        c.send(format!("{command}\r\n").as_bytes()).await;
        let r = c.reply().await;
        assert!(r.positive(), "{command}: {}", r.last_line);
    }
    let sizes = pieces(payload.len(), seed);
    let (message, verdict, reply) = if bdat {
        // At most five chunks, so the 503s after an oversized chunk stay under max_errors.
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut offset = 0;
        for (i, n) in sizes.iter().enumerate() {
            if i < 4 {
                chunks.push(&payload[offset..offset + n]);
                offset += n;
            }
        }
        chunks.push(&payload[offset..]);
        let mut total = 0usize;
        let mut open = true;
        let mut final_reply = None;
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            c.send(format!("BDAT {}{}\r\n", chunk.len(), if last { " LAST" } else { "" }).as_bytes()).await;
            c.send_in_pieces(chunk, seed).await;
            total += chunk.len();
            let r = c.reply().await;
            if last {
                final_reply = Some(r);
                break;
            }
            if !open {
                assert_eq!(r.code, 503, "BDAT after the transaction ended: {}", r.last_line);
            } else if total > limits.max_message_size {
                assert!(r.last_line.starts_with("552 5.3.4"), "oversized chunk: {}", r.last_line);
                open = false;
            } else {
                assert_eq!(r.last_line, format!("250 2.0.0 {} octets received", chunk.len()));
            }
        }
        let verdict = match (open, total > limits.max_message_size) {
            (false, _) => Verdict::Code(503),
            (true, true) => Verdict::Code(552),
            (true, false) => Verdict::Stored,
        };
        (payload.to_vec(), verdict, final_reply.expect("the last chunk was answered"))
    } else {
        c.send(b"DATA\r\n").await;
        assert_eq!(c.reply().await.code, 354);
        let mut data = payload.to_vec();
        data.extend_from_slice(b"\r\n.\r\n");
        let end = reference::data_end(&data).expect("ends at the latest with the mark we added");
        let content = &data[..end - 3];
        c.send_in_pieces(&data[..end], seed).await;
        let reply = c.reply().await;
        let message = reference::unstuff(content);
        let verdict = if message.len() > limits.max_message_size {
            Verdict::Code(552)
        } else if reference::longest_line(content) > limits.max_data_line {
            Verdict::Code(554)
        } else {
            Verdict::Stored
        };
        (message, verdict, reply)
    };
    match verdict {
        Verdict::Code(code) => assert_eq!(reply.code, code, "{}", reply.last_line),
        Verdict::Stored => {
            let number = reply
                .last_line
                .strip_prefix("250 2.0.0 Registered ")
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_else(|| panic!("not registered: {}", reply.last_line));
            let format = &s.settings.policy.reg_format;
            let (year, seq) = format.parse_number(number, true).expect("a registration number");
            let stored = s.store.read_raw(format.counter_year(year), seq, "fuzz").await.expect("reading the message back").expect("stored");
            assert!(stored.len() >= message.len() && stored.ends_with(&message), "the stored message is not the one sent");
            let trace = &stored[..stored.len() - message.len()];
            assert!(trace.starts_with(b"Received: ") && trace.ends_with(b"\r\n"), "our trace header, then the message");
        }
    }
    c.send(b"NOOP\r\n").await;
    assert_eq!(c.reply().await.last_line, "250 2.0.0 OK", "the session is out of step after the data");
    c.send(b"QUIT\r\n").await;
    assert_eq!(c.reply().await.code, 221);
    drop(c);
    if let Err(e) = session.await
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

enum Verdict {
    Code(u16),
    Stored,
}

struct Client {
    stream: TcpStream,
    parser: ReplyParser,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("sending to the session");
    }

    /// Sends in pieces and lets the session read each before the next (one runtime thread: the
    /// yield hands it the turn), so the receiver sees these split points.
    async fn send_in_pieces(&mut self, bytes: &[u8], seed: u8) {
        let mut offset = 0;
        for n in pieces(bytes.len(), seed.rotate_left(3)) {
            self.send(&bytes[offset..offset + n]).await;
            offset += n;
            tokio::task::yield_now().await;
        }
    }

    async fn reply(&mut self) -> Reply {
        loop {
            if let Some(reply) = self.parser.next_reply() {
                return reply;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(std::time::Duration::from_secs(15), self.stream.read(&mut chunk)).await {
                Err(_) => panic!("no reply"),
                Ok(Ok(0)) | Ok(Err(_)) => panic!("the session closed"),
                Ok(Ok(n)) => self.parser.push(&chunk[..n]),
            }
        }
    }
}
