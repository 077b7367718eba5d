//! One SMTP or LMTP connection: the command state machine.
//!
//! Input is read into one buffer; every complete command in it is handled in order and the
//! replies are queued, then flushed before the next blocking read (RFC 2920 pipelining: nothing
//! buffered is dropped, replies stay in order). DATA and BDAT take their bytes from the same
//! buffer, so a pipelined command after the data is never lost. STARTTLS throws the buffer away,
//! so nothing sent before the handshake is ever run inside TLS (CVE-2011-0411).
//!
//! Time limits are deadlines, not idle timers, so input that trickles in a byte at a time cannot
//! stretch them: a command line must be complete within `command_timeout` of when we started
//! waiting for it; DATA/BDAT data must keep up `min_data_rate` after a grace of `data_timeout`
//! (and no pause may exceed `data_timeout`); the whole connection ends after `max_session_time`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use smtp_proto::{Error as ParseError, MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::SmtpContext;
use super::data::DataReceiver;
use super::memory::{self, Reservation};
use crate::intake::Outcome;
use crate::intake::{Envelope, Protocol, RecipientCheck};
use crate::net::Stream;
use crate::net::deadline::after;
use crate::shutdown::Phase;

/// Initial buffer: small, because most connections are idle most of the time.
const INITIAL_BUFFER: usize = 1024;
/// Read granularity during DATA/BDAT.
const READ_CHUNK: usize = 16 * 1024;

/// What a read is for: a command line fits in what is left of the small first buffer; message
/// data is read a whole [`READ_CHUNK`] at a time (read into the remainder of the command buffer,
/// a 10 KB message took a dozen reads of ~900 bytes).
#[derive(Clone, Copy)]
enum Room {
    Command,
    Data,
}

pub async fn run(ctx: Arc<SmtpContext>, socket: TcpStream, peer: SocketAddr, protocol: Protocol) {
    let mut session = Session::new(ctx, Stream::Plain(socket), peer, protocol);
    if let Err(e) = session.serve().await {
        tracing::debug!(error = %e, "session ended with an I/O error");
    }
    super::observe::session_ended(protocol, session.last_code);
    let _ = tokio::time::timeout(Duration::from_secs(2), session.stream.shutdown()).await;
}

struct Transaction {
    mail_from: String,
    smtputf8: bool,
    /// Accepted recipients (address, queue) in RCPT order.
    recipients: Vec<(String, String)>,
    /// The data received by BDAT so far; `Some` once the first BDAT arrived.
    bdat: Option<Vec<u8>>,
    /// This transaction's share of `limits.message_memory`, held until its reply is sent.
    memory: Reservation,
    /// MAIL declared `SIZE=`: the reservation already covers the message.
    sized: bool,
}

/// A final reply that refuses the message: status ("552 5.3.4") and text.
type Refusal = (&'static str, String);

enum Flow {
    Continue,
    Close,
    StartTls,
}

#[derive(Clone, Copy)]
enum Input {
    Data,
    Eof,
    /// A command line, or a pause in the data, took longer than allowed.
    Timeout,
    /// The data arrived slower than `limits.min_data_rate`.
    TooSlow,
    /// The connection reached `limits.max_session_time`.
    SessionLimit,
    Shutdown,
}

enum Line {
    Command(BytesMut),
    TooLong,
}

struct Session {
    ctx: Arc<SmtpContext>,
    stream: Stream,
    peer: SocketAddr,
    protocol: Protocol,
    buf: BytesMut,
    out: Vec<u8>,
    helo: Option<String>,
    tls: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
    /// Skipping the rest of a command line that was too long.
    discarding: bool,
    /// The connection ends here (`limits.max_session_time` after connect).
    session_deadline: Instant,
    /// The code of the last reply queued, for the metrics.
    last_code: &'static str,
}

impl Session {
    fn new(ctx: Arc<SmtpContext>, stream: Stream, peer: SocketAddr, protocol: Protocol) -> Session {
        let session_deadline = after(Instant::now(), ctx.limits.max_session_time);
        Session {
            ctx,
            stream,
            peer,
            protocol,
            buf: BytesMut::with_capacity(INITIAL_BUFFER),
            out: Vec::with_capacity(256),
            helo: None,
            tls: None,
            tx: None,
            errors: 0,
            discarding: false,
            session_deadline,
            last_code: "220",
        }
    }

    fn hostname(&self) -> &str {
        &self.ctx.hostname
    }

    fn reply(&mut self, line: impl AsRef<str>) {
        self.last_code = super::observe::code_label(line.as_ref().as_bytes());
        self.out.extend_from_slice(line.as_ref().as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// A reply that counts against `limits.max_errors`.
    fn error(&mut self, line: impl AsRef<str>) -> Flow {
        self.reply(line);
        self.errors += 1;
        if self.errors >= self.ctx.limits.max_errors {
            let closing = format!("421 4.7.0 {} Too many errors, closing connection", self.hostname());
            self.reply(closing);
            tracing::info!(peer = %self.peer.ip(), errors = self.errors, "too many errors; disconnected");
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.ctx.limits.command_timeout;
        let Session { stream, out, .. } = self;
        let write = async {
            stream.write_all(out).await?;
            stream.flush().await
        };
        let result = tokio::time::timeout(timeout, write).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
        out.clear();
        result
    }

    /// Reads more input, at most what `room` asks to have free, until the earliest of `deadlines`
    /// (answering with its reason) or the session's own deadline. Returns early when shutdown
    /// reaches `interrupt_at`.
    async fn read_more(&mut self, deadlines: &[(Instant, Input)], interrupt_at: Phase, room: Room) -> io::Result<Input> {
        let wanted = match room {
            Room::Command => 512,
            Room::Data => READ_CHUNK,
        };
        if self.buf.capacity() - self.buf.len() < wanted {
            self.buf.reserve(READ_CHUNK);
        }
        let session_limit: (Instant, Input) = (self.session_deadline, Input::SessionLimit);
        let (until, expired) = deadlines.iter().copied().chain([session_limit]).min_by_key(|(at, _)| *at).expect("the session deadline");
        let mut shutdown = self.ctx.shutdown.clone();
        let Session { stream, buf, .. } = self;
        tokio::select! {
            read = tokio::time::timeout_at(until, stream.read_buf(buf)) => match read {
                Err(_) => Ok(expired),
                Ok(Ok(0)) => Ok(Input::Eof),
                Ok(Ok(_)) => Ok(Input::Data),
                Ok(Err(e)) => Err(e),
            },
            _ = shutdown.reached(interrupt_at) => Ok(Input::Shutdown),
        }
    }

    /// Sends the 421 that must precede any close we initiate, for timeouts and shutdown.
    async fn close_with(&mut self, input: Input) -> io::Result<Flow> {
        let line = match input {
            Input::Timeout => format!("421 4.4.2 {} Timeout, closing connection", self.hostname()),
            Input::TooSlow => format!("421 4.4.2 {} Data rate too low, closing connection", self.hostname()),
            Input::SessionLimit => format!("421 4.4.2 {} Session time limit reached, closing connection", self.hostname()),
            Input::Shutdown => format!("421 4.3.2 {} Service shutting down", self.hostname()),
            Input::Eof | Input::Data => return Ok(Flow::Close),
        };
        self.reply(line);
        self.flush().await?;
        Ok(Flow::Close)
    }

    async fn serve(&mut self) -> io::Result<()> {
        let banner = match self.protocol {
            Protocol::Smtp => format!("220 {} ESMTP mailroom", self.hostname()),
            Protocol::Lmtp => format!("220 {} LMTP mailroom", self.hostname()),
        };
        self.reply(banner);
        // When the command line being waited for must be complete (set when the wait starts).
        let mut line_deadline = None;
        loop {
            while let Some(line) = self.next_line() {
                line_deadline = None;
                let flow = match line {
                    Line::TooLong => self.error("500 5.5.2 Line too long"),
                    Line::Command(bytes) => self.command(&bytes).await?,
                };
                match flow {
                    Flow::Continue => {}
                    Flow::Close => return self.flush().await,
                    Flow::StartTls => {
                        self.flush().await?;
                        self.start_tls().await?;
                        break;
                    }
                }
            }
            self.flush().await?;
            if self.ctx.shutdown.is(Phase::Draining) && self.tx.is_none() {
                self.close_with(Input::Shutdown).await?;
                return Ok(());
            }
            let timeout = self.ctx.limits.command_timeout;
            let deadline = *line_deadline.get_or_insert_with(|| after(Instant::now(), timeout));
            // Between transactions shutdown interrupts at once; inside one (MAIL given, the
            // client is about to send data) only when forced.
            let interrupt_at = if self.tx.is_some() { Phase::Forced } else { Phase::Draining };
            match self.read_more(&[(deadline, Input::Timeout)], interrupt_at, Room::Command).await? {
                Input::Data => {}
                Input::Eof => return Ok(()),
                other => {
                    self.close_with(other).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Takes the next complete command line off the buffer.
    fn next_line(&mut self) -> Option<Line> {
        let max = self.ctx.limits.max_command_line;
        if self.discarding {
            match memchr::memchr(b'\n', &self.buf) {
                Some(pos) => {
                    self.buf.advance(pos + 1);
                    self.discarding = false;
                }
                None => {
                    self.buf.clear();
                    return None;
                }
            }
        }
        match memchr::memchr(b'\n', &self.buf) {
            Some(pos) if pos < max => Some(Line::Command(self.buf.split_to(pos + 1))),
            Some(pos) => {
                self.buf.advance(pos + 1);
                Some(Line::TooLong)
            }
            None if self.buf.len() >= max => {
                self.buf.clear();
                self.discarding = true;
                Some(Line::TooLong)
            }
            None => None,
        }
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        // smtp-proto wraps SIZE values of 21+ digits around and rejects 20-digit ones as invalid;
        // RFC 1870 says any size over our limit is a 552, so look at the digits ourselves.
        let max = self.ctx.limits.max_message_size;
        if let Some(size) = declared_size(line)
            && size > max as u128
        {
            return Ok(match self.mail_refusal() {
                Some(refusal) => self.error(refusal),
                None => self.error(format!("552 5.3.4 Message size exceeds fixed limit of {max} bytes")),
            });
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(e) => return Ok(self.parse_error(e, line)),
        };
        let lmtp = self.protocol == Protocol::Lmtp;
        Ok(match request {
            Request::Ehlo { .. } | Request::Helo { .. } if lmtp => self.error("500 5.5.1 Use LHLO in LMTP"),
            Request::Lhlo { .. } if !lmtp => self.error("500 5.5.1 Command unrecognized"),
            Request::Ehlo { host } | Request::Lhlo { host } => {
                self.greet(host.into_owned(), true);
                Flow::Continue
            }
            Request::Helo { host } => {
                self.greet(host.into_owned(), false);
                Flow::Continue
            }
            Request::Mail { from } => self.mail(from.address.into_owned(), from.flags, from.size),
            Request::Rcpt { to } => {
                let postmaster = to.address.is_empty() && contains_ignore_case(line, b"<postmaster>");
                let answer_at = self.out.len();
                let flow = self.rcpt(to.address.into_owned(), postmaster);
                super::observe::recipient(self.protocol, super::observe::code_label(&self.out[answer_at..]));
                flow
            }
            Request::Data if has_arguments(line) => self.error("501 5.5.4 Syntax: DATA"),
            Request::Data => return self.data().await,
            Request::Bdat { chunk_size, is_last } => return self.bdat(chunk_size, is_last).await,
            Request::Rset if has_arguments(line) => self.error("501 5.5.4 Syntax: RSET"),
            Request::Rset => {
                self.tx = None;
                self.reply("250 2.0.0 OK");
                Flow::Continue
            }
            Request::Noop { .. } => {
                self.reply("250 2.0.0 OK");
                Flow::Continue
            }
            Request::Quit if has_arguments(line) => self.error("501 5.5.4 Syntax: QUIT"),
            Request::Quit => {
                let bye = format!("221 2.0.0 {} closing connection", self.hostname());
                self.reply(bye);
                Flow::Close
            }
            Request::Vrfy { .. } => {
                self.reply("252 2.5.0 Cannot verify user; will accept message and attempt delivery");
                Flow::Continue
            }
            Request::Expn { .. } => self.error("502 5.5.1 EXPN not supported"),
            Request::Help { .. } => {
                self.reply("214 2.0.0 mailroom: see https://www.rfc-editor.org/rfc/rfc5321");
                Flow::Continue
            }
            Request::StartTls if self.tls.is_some() => self.error("503 5.5.1 TLS already active"),
            Request::StartTls if has_arguments(line) => self.error("501 5.5.4 Syntax: STARTTLS"),
            Request::StartTls => {
                self.reply("220 2.0.0 Ready to start TLS");
                Flow::StartTls
            }
            Request::Auth { .. } => self.error("502 5.5.1 AUTH not supported"),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => self.error("502 5.5.1 Command not implemented"),
        })
    }

    fn parse_error(&mut self, error: ParseError, line: &[u8]) -> Flow {
        let verb = line.iter().take_while(|b| b.is_ascii_alphabetic()).map(u8::to_ascii_uppercase).collect::<Vec<u8>>();
        match error {
            ParseError::UnknownCommand => self.error("500 5.5.1 Command unrecognized"),
            ParseError::InvalidSenderAddress => self.error("553 5.1.7 Invalid sender address"),
            ParseError::InvalidRecipientAddress => self.error("501 5.1.3 Invalid recipient address"),
            ParseError::SyntaxError { syntax } => self.error(format!("501 5.5.4 Syntax: {syntax}")),
            ParseError::InvalidParameter { .. } => self.error("501 5.5.4 Invalid value for parameter"),
            ParseError::UnsupportedParameter { .. } => self.error("555 5.5.4 Unsupported parameter"),
            _ if verb == b"MAIL" => self.error("501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]"),
            _ if verb == b"RCPT" => self.error("501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]"),
            _ => self.error("501 5.5.4 Syntax error"),
        }
    }

    fn greet(&mut self, host: String, extended: bool) {
        // EHLO/HELO/LHLO resets any transaction (RFC 5321 §4.1.4).
        self.tx = None;
        self.helo = Some(sanitize_helo(&host));
        let hostname = self.hostname().to_string();
        if !extended {
            self.reply(format!("250 {hostname}"));
            return;
        }
        let mut lines = vec![
            hostname,
            "PIPELINING".into(),
            format!("SIZE {}", self.ctx.limits.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if self.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        lines.push("HELP".into());
        let last = lines.len() - 1;
        for (i, line) in lines.into_iter().enumerate() {
            self.reply(format!("250{}{line}", if i == last { ' ' } else { '-' }));
        }
    }

    /// Why MAIL cannot be given now, if it cannot.
    fn mail_refusal(&self) -> Option<&'static str> {
        if self.helo.is_none() {
            Some(self.hello_first())
        } else if self.tx.is_some() {
            Some("503 5.5.1 Sender already specified")
        } else {
            None
        }
    }

    fn mail(&mut self, address: String, flags: u64, size: usize) -> Flow {
        if let Some(refusal) = self.mail_refusal() {
            return self.error(refusal);
        }
        if flags & MAIL_BODY_BINARYMIME != 0 {
            return self.error("555 5.5.4 Unsupported parameter");
        }
        let smtputf8 = flags & MAIL_SMTPUTF8 != 0;
        if !address.is_ascii() && !smtputf8 {
            return self.error("553 5.6.7 Non-ASCII address requires SMTPUTF8");
        }
        let max = self.ctx.limits.max_message_size;
        if size > max {
            return self.error(format!("552 5.3.4 Message size exceeds fixed limit of {max} bytes"));
        }
        // What SIZE= declares is reserved now, so a message that cannot fit is turned away
        // before it is sent (plus one read chunk: the data's framing, dot-stuffing and the final
        // dot, is counted before it is unstuffed, and growing by those few bytes would make a
        // sized message a grower that can fail); without SIZE=, the first step must fit (a full
        // budget takes no new transactions). Not a client error: not counted against max_errors.
        let first = if size > 0 { size.saturating_add(READ_CHUNK) } else { READ_CHUNK };
        let Some(reservation) = self.ctx.memory.reserve(first as u64, max as u64) else {
            memory_refused(self.protocol, "mail");
            self.reply(memory::REPLY);
            return Flow::Continue;
        };
        let sized = size > 0;
        self.tx = Some(Transaction { mail_from: address, smtputf8, recipients: Vec::new(), bdat: None, memory: reservation, sized });
        self.reply("250 2.1.0 Sender OK");
        Flow::Continue
    }

    fn hello_first(&self) -> &'static str {
        match self.protocol {
            Protocol::Smtp => "503 5.5.1 Send EHLO first",
            Protocol::Lmtp => "503 5.5.1 Send LHLO first",
        }
    }

    fn rcpt(&mut self, address: String, postmaster: bool) -> Flow {
        if self.helo.is_none() {
            return self.error(self.hello_first());
        }
        let Some(tx) = &self.tx else { return self.error("503 5.5.1 Send MAIL first") };
        if address.is_empty() && !postmaster {
            return self.error("501 5.1.3 Invalid recipient address");
        }
        if !address.is_ascii() && !tx.smtputf8 {
            return self.error("553 5.6.7 Non-ASCII address requires SMTPUTF8");
        }
        if tx.recipients.len() >= self.ctx.limits.max_recipients {
            // Not an error: the client sends the rest in another transaction (RFC 5321 §4.5.3.1.10).
            self.reply("452 4.5.3 Too many recipients");
            return Flow::Continue;
        }
        let address = if postmaster { "postmaster".to_string() } else { address };
        match self.ctx.intake.check_recipient(&address) {
            RecipientCheck::Accept(queue) => {
                self.tx.as_mut().expect("checked above").recipients.push((address, queue));
                self.reply("250 2.1.5 Recipient OK");
                Flow::Continue
            }
            RecipientCheck::UnknownMailbox => self.error("550 5.1.1 Mailbox unknown"),
            RecipientCheck::ForeignDomain => self.error("550 5.7.1 Relay access denied"),
        }
    }

    /// Why a DATA or BDAT cannot start now, if it cannot.
    fn data_refusal(&self) -> Option<&'static str> {
        match &self.tx {
            _ if self.helo.is_none() => Some(self.hello_first()),
            None => Some("503 5.5.1 Send MAIL first"),
            Some(tx) if tx.recipients.is_empty() => Some("503 5.5.1 Send RCPT first"),
            Some(_) => None,
        }
    }

    async fn data(&mut self) -> io::Result<Flow> {
        if let Some(refusal) = self.data_refusal() {
            return Ok(self.error(refusal));
        }
        if self.tx.as_ref().is_some_and(|tx| tx.bdat.is_some()) {
            self.tx = None;
            return Ok(self.error("503 5.5.1 DATA not allowed after BDAT"));
        }
        let exhausted = self.ctx.memory.exhausted();
        if self.tx.as_mut().is_some_and(|tx| !tx.sized && (exhausted || !tx.memory.cover(memory::STEP))) {
            // A message of unknown size is admitted only with room for one growth step taken
            // now, and never while a grower waits for memory: otherwise it would grow
            // into a full budget, fail and be discarded after all its data was sent (with many
            // such senders almost every transfer is wasted). Refused before the data instead
            // (RFC 5321 allows a 4xx to DATA); the transaction ends, as after a refused BDAT:
            // RSET and MAIL work.
            memory_refused(self.protocol, "data_command");
            self.tx = None;
            self.reply(memory::REPLY);
            return Ok(Flow::Continue);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>");
        self.flush().await?;
        let limits = &self.ctx.limits;
        let mut receiver = DataReceiver::new(limits.max_message_size, limits.max_data_line);
        let mut pace = Pace::start(limits.data_timeout, limits.min_data_rate);
        let mut received = 0;
        loop {
            if receiver.too_big {
                self.transaction().memory.release();
            } else if !receiver.discarding {
                // Unstuffing only shrinks: what is buffered bounds what feeding it adds.
                let waited_from = Instant::now();
                let grown = match self.grow((receiver.total + self.buf.len()) as u64).await {
                    Ok(grown) => grown,
                    Err(input) => return self.close_with(input).await,
                };
                // Time spent waiting for memory is ours, not the sender's slowness.
                pace.pause(waited_from.elapsed());
                if !grown {
                    // Over the budget: keep reading to the end (the session stays in sync) but
                    // keep nothing, and give back what this message held at once.
                    receiver.discard();
                    self.transaction().memory.release();
                    memory_refused(self.protocol, "data");
                }
            }
            if let Some(consumed) = receiver.feed(&self.buf) {
                self.buf.advance(consumed);
                break;
            }
            received += self.buf.len() as u64;
            self.buf.clear();
            match self.read_more(&pace.deadlines(received), Phase::Forced, Room::Data).await? {
                Input::Data => {}
                Input::Eof => return Ok(Flow::Close),
                other => return self.close_with(other).await,
            }
        }
        let end_of_data = Instant::now();
        let max_line = self.ctx.limits.max_data_line;
        let verdict = if receiver.too_big {
            Err(self.too_big())
        } else if receiver.line_too_long {
            Err(("554 5.6.0", format!("Message contains a line longer than {max_line} bytes")))
        } else if receiver.discarding {
            Err(out_of_memory())
        } else {
            Ok(receiver.into_message())
        };
        self.finish(verdict, end_of_data).await
    }

    fn too_big(&self) -> Refusal {
        ("552 5.3.4", format!("Message size exceeds fixed limit of {} bytes", self.ctx.limits.max_message_size))
    }

    async fn bdat(&mut self, size: usize, last: bool) -> io::Result<Flow> {
        // The chunk is always read in full first, whatever the verdict, so the next command
        // is found where the client put it (RFC 3030 §4.2).
        let refusal = self.data_refusal();
        let max = self.ctx.limits.max_message_size;
        let so_far = self.tx.as_ref().and_then(|tx| tx.bdat.as_ref()).map_or(0, Vec::len);
        let overflow = refusal.is_none() && so_far.saturating_add(size) > max;
        // The chunk's size is known before it is read: reserve it all now (waiting for it by
        // age, the chunk unread), or keep none of it.
        let no_room = if refusal.is_none() && !overflow {
            match self.grow(so_far.saturating_add(size) as u64).await {
                Ok(grown) => !grown,
                Err(input) => return self.close_with(input).await,
            }
        } else {
            false
        };
        if no_room {
            memory_refused(self.protocol, "bdat");
            if let Some(tx) = self.tx.as_mut() {
                tx.bdat = None;
                tx.memory.release();
            }
        }
        let keep = refusal.is_none() && !overflow && !no_room;
        let mut chunk = Vec::with_capacity(if keep { size.min(READ_CHUNK * 64) } else { 0 });
        let mut remaining = size;
        let limits = &self.ctx.limits;
        let pace = Pace::start(limits.data_timeout, limits.min_data_rate);
        loop {
            let take = remaining.min(self.buf.len());
            if keep {
                chunk.extend_from_slice(&self.buf[..take]);
            }
            self.buf.advance(take);
            remaining -= take;
            if remaining == 0 {
                break;
            }
            match self.read_more(&pace.deadlines((size - remaining) as u64), Phase::Forced, Room::Data).await? {
                Input::Data => {}
                Input::Eof => return Ok(Flow::Close),
                other => return self.close_with(other).await,
            }
        }
        if let Some(refusal) = refusal {
            return Ok(self.error(refusal));
        }
        let end_of_data = Instant::now();
        if overflow || no_room {
            let refusal = if overflow { self.too_big() } else { out_of_memory() };
            if last {
                return self.finish(Err(refusal), end_of_data).await;
            }
            // RFC 3030 §4.2: the transaction has failed; chunks already pipelined behind this
            // one are read and refused (503), never stored.
            let (status, text) = refusal;
            self.tx = None;
            self.reply(format!("{status} {text}"));
            return Ok(Flow::Continue);
        }
        let tx = self.tx.as_mut().expect("data_refusal checked the transaction");
        tx.bdat.get_or_insert_with(Vec::new).extend_from_slice(&chunk);
        if !last {
            self.reply(format!("250 2.0.0 {size} octets received"));
            return Ok(Flow::Continue);
        }
        let data = tx.bdat.take().unwrap_or_default();
        self.finish(Ok(data), end_of_data).await
    }

    fn transaction(&mut self) -> &mut Transaction {
        self.tx.as_mut().expect("data_refusal checked the transaction")
    }

    /// Grows the transaction's reservation to `bytes` by age (`smtp::memory`): a grower whose
    /// step does not fit waits its turn, not reading, so TCP holds its sender back, up to
    /// `data_timeout`; a younger one fails instead when the oldest needs its share. Err: the wait
    /// was cut short by a forced shutdown, the session time limit or the client hanging up (its
    /// share and its place go to the others at once, not after `data_timeout`).
    async fn grow(&mut self, bytes: u64) -> Result<bool, Input> {
        let mut shutdown = self.ctx.shutdown.clone();
        let patience = self.ctx.limits.data_timeout;
        let session_deadline = self.session_deadline;
        let Session { tx, stream, .. } = self;
        let tx = tx.as_mut().expect("data_refusal checked the transaction");
        if tx.memory.covers(bytes) {
            return Ok(true);
        }
        // Biased: memory that is there at once is taken at once; the other branches only end a
        // wait (a client that half-closed after its last byte is not turned away unless it waits).
        tokio::select! {
            biased;
            grown = tx.memory.grow(bytes, patience) => Ok(grown),
            _ = stream.peer_closed() => Err(Input::Eof),
            _ = tokio::time::sleep_until(session_deadline) => Err(Input::SessionLimit),
            _ = shutdown.reached(Phase::Forced) => Err(Input::Shutdown),
        }
    }

    /// Ends a transaction: registers the message (or refuses it) and replies, once for SMTP and
    /// once per accepted recipient for LMTP.
    async fn finish(&mut self, verdict: Result<Vec<u8>, Refusal>, end_of_data: Instant) -> io::Result<Flow> {
        let tx = self.tx.take().expect("a transaction is open");
        let size = verdict.as_ref().map_or(0, Vec::len);
        let (result, number, (status, text)) = match verdict {
            Err(refusal) => ("refused", None, refusal),
            Ok(data) => {
                let envelope = Envelope {
                    mail_from: tx.mail_from.clone(),
                    recipients: tx.recipients.clone(),
                    helo: self.helo.clone().unwrap_or_default(),
                    client_ip: self.peer.ip(),
                    protocol: self.protocol,
                    tls: self.tls.clone(),
                };
                match self.ctx.intake.register(&envelope, data).await {
                    Ok(Outcome::Registered(n)) => ("registered", Some(n.clone()), ("250 2.0.0", format!("Registered {n}"))),
                    Ok(Outcome::Duplicate(n)) => {
                        ("duplicate", Some(n.clone()), ("250 2.0.0", format!("Registered {n} (duplicate, not stored again)")))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "registration failed; replied 451");
                        ("tempfail", None, ("451 4.3.0", "Temporary failure, message not stored; try again later".to_string()))
                    }
                }
            }
        };
        match self.protocol {
            Protocol::Smtp => self.reply(format!("{status} {text}")),
            // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order; a success names it.
            Protocol::Lmtp => {
                for (address, _) in &tx.recipients {
                    let line = if status.starts_with('2') { format!("{status} <{address}> {text}") } else { format!("{status} {text}") };
                    self.reply(line);
                }
            }
        }
        // Counted whether or not the client is still there to read the reply.
        let latency = status.starts_with("250").then(|| end_of_data.elapsed());
        super::observe::transaction(self.protocol, super::observe::code_label(status.as_bytes()), result, size, latency);
        self.flush().await?;
        tracing::info!(
            reg = number.as_deref().unwrap_or("-"),
            size,
            protocol = self.protocol.name(),
            tls = self.tls.is_some(),
            recipients = tx.recipients.len(),
            result,
            latency_us = end_of_data.elapsed().as_micros() as u64,
            "transaction"
        );
        Ok(Flow::Continue)
    }

    async fn start_tls(&mut self) -> io::Result<()> {
        // Anything pipelined after STARTTLS was sent in clear text: it must never be executed.
        self.buf.clear();
        self.discarding = false;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("STARTTLS on a stream that is not plain"));
        };
        let timeout = self.ctx.limits.command_timeout;
        let tls = tokio::time::timeout(timeout, self.ctx.tls.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Stream::Tls(Box::new(tls));
        // RFC 3207 §4.2: forget everything learnt before the handshake.
        self.tls = self.stream.tls_description();
        self.helo = None;
        self.tx = None;
        Ok(())
    }
}

/// The final reply to a message the memory budget could not hold (see `smtp::memory`).
fn out_of_memory() -> Refusal {
    let (status, text) = memory::REPLY.split_at(9);
    (status, text.trim_start().to_string())
}

/// A transaction was turned away by the memory budget: at MAIL, at the DATA command, during
/// DATA or at a BDAT chunk.
fn memory_refused(protocol: Protocol, at: &'static str) {
    metrics::counter!("mailroom_smtp_memory_refusals_total", "protocol" => protocol.name(), "at" => at).increment(1);
}

/// The time limits while message data is read (one DATA, or one BDAT chunk): no pause longer
/// than `data_timeout`, and on average at least `min_data_rate` bytes per second after a grace
/// of `data_timeout` (the whole transfer must end by start + data_timeout + received / rate,
/// as Postfix's `smtpd_min_data_rate` does), so a sender that trickles bytes just often enough
/// to never pause for long is still cut off.
struct Pace {
    started: Instant,
    idle: Duration,
    min_rate: u64,
}

impl Pace {
    fn start(idle: Duration, min_rate: u64) -> Pace {
        Pace { started: Instant::now(), idle, min_rate }
    }

    /// Leaves `pause` (we were not reading) out of the transfer's time.
    fn pause(&mut self, pause: Duration) {
        self.started += pause;
    }

    /// The deadlines for the next read, `received` bytes into the transfer.
    fn deadlines(&self, received: u64) -> Vec<(Instant, Input)> {
        let mut deadlines: Vec<(Instant, Input)> = vec![(after(Instant::now(), self.idle), Input::Timeout)];
        if self.min_rate > 0 {
            let earned = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
            deadlines.push((after(self.started, self.idle.saturating_add(earned)), Input::TooSlow));
        }
        deadlines
    }
}

/// The value of a MAIL command's `SIZE=` parameter, saturating (None for other commands, or when
/// the value is not a plain number, which the parser then reports).
fn declared_size(line: &[u8]) -> Option<u128> {
    if line.len() < 5 || !line[..5].eq_ignore_ascii_case(b"MAIL ") {
        return None;
    }
    let close = memchr::memrchr(b'>', line)?;
    let params = &line[close + 1..];
    let start = params.windows(5).position(|w| w.eq_ignore_ascii_case(b"SIZE="))? + 5;
    if start > 5 && !params[start - 6].is_ascii_whitespace() {
        return None;
    }
    let digits: Vec<u8> = params[start..].iter().copied().take_while(u8::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some(digits.iter().fold(0u128, |v, d| v.saturating_mul(10).saturating_add((d - b'0') as u128)))
}

/// DATA, RSET, QUIT and STARTTLS take no arguments; smtp-proto ignores any, we refuse them.
fn has_arguments(line: &[u8]) -> bool {
    let rest = line.iter().skip_while(|b| b.is_ascii_alphabetic());
    rest.copied().any(|b| !b.is_ascii_whitespace())
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// The HELO name goes into our Received header: keep it printable and short.
fn sanitize_helo(host: &str) -> String {
    host.chars().filter(|c| !c.is_control()).take(255).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_detection() {
        assert!(!has_arguments(b"DATA\r\n"));
        assert!(!has_arguments(b"data  \r\n"));
        assert!(has_arguments(b"STARTTLS x\r\n"));
        assert!(has_arguments(b"QUIT now\n"));
    }

    #[test]
    fn declared_size_saturates() {
        assert_eq!(declared_size(b"MAIL FROM:<a@b> SIZE=1000\r\n"), Some(1000));
        assert_eq!(declared_size(b"mail from:<a@b> BODY=8BITMIME size=99999999999999999999999\r\n"), Some(99999999999999999999999));
        assert_eq!(declared_size(b"MAIL FROM:<a@b> SIZE=999999999999999999999999999999999999999999\r\n"), Some(u128::MAX));
        assert_eq!(declared_size(b"MAIL FROM:<size=5@b>\r\n"), None);
        assert_eq!(declared_size(b"MAIL FROM:<a@b> XSIZE=5\r\n"), None);
        assert_eq!(declared_size(b"RCPT TO:<a@b> SIZE=5\r\n"), None);
    }
}
