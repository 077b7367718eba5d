//! One IMAP connection: reading commands (with their literals), the state machine
//! (not authenticated → authenticated → selected), and the commands that do not touch message
//! content. FETCH and STORE live in `fetch`, SEARCH in `search`.
//!
//! Every command of a logged-in user first re-reads the user (`Access::principal`): a locked or
//! removed user gets BYE, a revoked grant closes the mailbox, at the next command.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::BytesMut;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::{Atom, NonEmptyVec, QuotedChar};
use imap_codec::imap_types::flag::{Flag, FlagNameAttribute};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Capability, Data};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use zeroize::Zeroize;

use super::ImapContext;
use super::fetch::Cache;
use super::mailbox::{self, Selected};
use super::wire::{self, Out};
use crate::access::{LoginError, Permission, Principal};
use crate::net::{Guard, Stream};
use crate::shutdown::Phase;
use crate::store::StoreError;

/// Longest command line (without literals). Longer: BAD and the connection is closed.
pub const MAX_LINE: usize = 64 * 1024;
/// Failed logins on one connection before it is closed (`Access` also throttles per user and
/// per address across connections).
const MAX_LOGIN_FAILURES: u32 = 3;
/// IDLE re-reads the mailbox this often even without a change notification.
const IDLE_RECHECK: Duration = Duration::from_secs(10);
/// … and at most this often, however many commits are notified.
const IDLE_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Output is written out once this much is buffered (a FETCH of many messages streams).
pub const FLUSH_AT: usize = 256 * 1024;

/// `prelogin`: the connection's slot among those not logged in yet, given up at login.
pub async fn run(ctx: Arc<ImapContext>, stream: Stream, peer: SocketAddr, prelogin: Guard) {
    let tls = matches!(stream, Stream::Tls(_));
    let mut session = Session::new(ctx, stream, peer, tls, prelogin);
    if let Err(e) = session.serve().await {
        tracing::debug!(error = %e, "IMAP session ended with an I/O error");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), session.stream.shutdown()).await;
    // Read (and drop) what the client still sends for a moment: closing a socket with unread
    // input resets the connection, and the client could lose our last response (the BYE).
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while let Ok(n @ 1..) = session.stream.read(&mut sink).await {
            total += n;
            if total > 1024 * 1024 {
                break;
            }
        }
    })
    .await;
}

pub(super) enum Flow {
    Continue,
    Close,
    StartTls,
}

enum Input {
    Command(Vec<u8>),
    /// More bytes arrived (`read_more`).
    Data,
    /// A literal was refused before its data was sent: the command is over, with this answer.
    Refused {
        tag: Option<String>,
        code: &'static str,
        text: &'static str,
    },
    TooLong,
    Eof,
    Timeout,
    /// Not logged in, and evicted from the full pool of such connections by a newer one.
    Evicted,
    Shutdown,
}

/// What ends a command handler early: the connection, or the store (answered with NO).
pub(super) enum Failure {
    Io(io::Error),
    Store(StoreError),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Store(e.into())
    }
}

pub(super) type Handled = Result<Flow, Failure>;

pub(super) struct Session {
    pub ctx: Arc<ImapContext>,
    pub stream: Stream,
    peer: SocketAddr,
    tls: bool,
    buf: BytesMut,
    pub out: Out,
    pub principal: Option<Principal>,
    pub selected: Option<Selected>,
    /// The selected mailbox was closed because the user may no longer read it: selected-state
    /// commands get NO [NOPERM] instead of "no mailbox selected".
    revoked: bool,
    login_failures: u32,
    bad_in_a_row: u32,
    /// The unauthenticated phase ends at this instant (prelogin_timeout from connect), however
    /// much input trickles in before it.
    login_deadline: Instant,
    /// The slot in the pool of connections not logged in yet; None once logged in.
    prelogin: Option<Guard>,
    pub cache: Cache,
    /// Length of each message's trace header (RFC822.SIZE without decrypting the message).
    pub trace_lens: HashMap<i64, usize>,
}

impl Session {
    fn new(ctx: Arc<ImapContext>, stream: Stream, peer: SocketAddr, tls: bool, prelogin: Guard) -> Session {
        let login_deadline = crate::net::deadline::after(Instant::now(), ctx.settings.config.imap.prelogin_timeout);
        Session {
            ctx,
            stream,
            peer,
            tls,
            buf: BytesMut::with_capacity(1024),
            out: Out::default(),
            principal: None,
            selected: None,
            revoked: false,
            login_failures: 0,
            bad_in_a_row: 0,
            login_deadline,
            prelogin: Some(prelogin),
            cache: Cache::default(),
            trace_lens: HashMap::new(),
        }
    }

    fn capabilities(&self) -> Vec<&'static str> {
        let mut caps = vec!["IMAP4rev1", "LITERAL+", "ID", "ENABLE", "IDLE", "UNSELECT"];
        if self.principal.is_none() {
            if self.tls {
                caps.extend(["SASL-IR", "AUTH=PLAIN"]);
            } else {
                caps.extend(["STARTTLS", "LOGINDISABLED"]);
            }
        }
        caps
    }

    fn capability_code(&self) -> String {
        format!("CAPABILITY {}", self.capabilities().join(" "))
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.buf.is_empty() {
            return Ok(());
        }
        let timeout = self.ctx.settings.config.limits.command_timeout;
        let Session { stream, out, .. } = self;
        let write = async {
            stream.write_all(&out.buf).await?;
            stream.flush().await
        };
        let result = tokio::time::timeout(timeout, write).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
        out.buf.clear();
        result
    }

    async fn serve(&mut self) -> io::Result<()> {
        let greeting = format!("{} IMAP4rev1 mailroom ready", self.ctx.settings.config.server.hostname);
        let code = self.capability_code();
        self.out.status(None, "OK", Some(&code), &greeting);
        loop {
            self.flush().await?;
            if self.ctx.shutdown.is(Phase::Draining) {
                return self.close_with(Input::Shutdown).await;
            }
            let flow = match self.read_command().await? {
                Input::Command(raw) => self.command(&raw).await?,
                Input::Refused { tag, code, text } => {
                    // Without a valid tag only an untagged BAD ends the command (RFC 3501 §7.1.3);
                    // an untagged NO is a mere warning (found by the imap_command fuzz target).
                    let kind = if code == "CANNOT" && tag.is_some() { "NO" } else { "BAD" };
                    self.out.status(Some(tag.as_deref().unwrap_or("*")), kind, Some(code), text);
                    Flow::Continue
                }
                other => return self.close_with(other).await,
            };
            if self.principal.is_some() {
                // Logged in: this connection no longer counts against imap.max_unauthenticated.
                self.prelogin = None;
            }
            match flow {
                Flow::Continue => {}
                Flow::Close => return self.flush().await,
                Flow::StartTls => {
                    self.flush().await?;
                    self.start_tls().await?;
                }
            }
        }
    }

    /// The BYE we owe the client before closing for any reason of ours.
    async fn close_with(&mut self, input: Input) -> io::Result<()> {
        match input {
            Input::Timeout if self.principal.is_none() => self.out.bye(None, "Autologout; not logged in in time"),
            Input::Timeout => self.out.bye(None, "Autologout; idle for too long"),
            Input::Evicted => self.out.bye(None, "Too many connections not logged in; this one waited longest"),
            Input::Shutdown => self.out.bye(None, "Server shutting down"),
            Input::TooLong => {
                self.out.bad(None, None, "Command line too long");
                self.out.bye(None, "Closing connection");
            }
            Input::Eof | Input::Data | Input::Command(_) | Input::Refused { .. } => return Ok(()),
        }
        self.flush().await
    }

    fn read_deadline(&self) -> Instant {
        match self.principal {
            None => self.login_deadline,
            Some(_) => Instant::now() + self.ctx.settings.config.imap.idle_timeout,
        }
    }

    /// Reads more input, until `deadline` or shutdown.
    async fn read_more(&mut self, deadline: Instant) -> io::Result<Input> {
        let mut shutdown = self.ctx.shutdown.clone();
        let Session { stream, buf, prelogin, .. } = self;
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(16 * 1024);
        }
        let evicted = async {
            match prelogin {
                Some(slot) => slot.evicted().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => match read {
                Err(_) => Ok(Input::Timeout),
                Ok(Ok(0)) => Ok(Input::Eof),
                Ok(Ok(_)) => Ok(Input::Data),
                Ok(Err(e)) => Err(e),
            },
            _ = evicted => Ok(Input::Evicted),
            _ = shutdown.reached(Phase::Draining) => Ok(Input::Shutdown),
        }
    }

    /// One line (with its LF) off the input.
    async fn read_line(&mut self, deadline: Instant) -> io::Result<Result<Vec<u8>, Input>> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf) {
                if pos >= MAX_LINE {
                    return Ok(Err(Input::TooLong));
                }
                return Ok(Ok(self.buf.split_to(pos + 1).to_vec()));
            }
            if self.buf.len() >= MAX_LINE {
                return Ok(Err(Input::TooLong));
            }
            match self.read_more(deadline).await? {
                Input::Data => {}
                other => return Ok(Err(other)),
            }
        }
    }

    /// A complete command: its lines and literals, asking for each synchronising literal with
    /// `+` once its size is accepted.
    async fn read_command(&mut self) -> io::Result<Input> {
        let max_literal = self.ctx.settings.config.imap.max_literal as u64;
        let max_command = 2 * (MAX_LINE as u64 + max_literal);
        let mut command = Vec::new();
        loop {
            let deadline = self.read_deadline();
            let line = match self.read_line(deadline).await? {
                Ok(line) => line,
                Err(input) => return Ok(input),
            };
            command.extend_from_slice(&line);
            let Some(literal) = wire::announced_literal(&line) else { return Ok(Input::Command(command)) };
            let tag = wire::tag_of(&command).map(str::to_string);
            if literal.len > max_literal || command.len() as u64 + literal.len > max_command {
                if !literal.sync {
                    // The data is on its way and would be read as commands: hang up instead.
                    return Ok(Input::TooLong);
                }
                return Ok(Input::Refused { tag, code: "TOOBIG", text: "Literal too large" });
            }
            if literal.sync && wire::verbs(&command, 1).first().is_some_and(|v| v == "APPEND") {
                // No point in receiving a message that cannot be stored.
                return Ok(Input::Refused { tag, code: "CANNOT", text: APPEND_REFUSED });
            }
            if literal.sync {
                self.out.line(b"+ Ready for literal data");
                self.flush().await?;
            }
            let len = literal.len as usize;
            while self.buf.len() < len {
                match self.read_more(deadline).await? {
                    Input::Data => {}
                    other => return Ok(other),
                }
            }
            command.extend_from_slice(&self.buf.split_to(len));
        }
    }

    async fn start_tls(&mut self) -> io::Result<()> {
        // Anything pipelined after STARTTLS arrived in clear text: it must never run inside TLS
        // (CVE-2011-0411).
        self.buf.clear();
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("STARTTLS on a stream that is not plain"));
        };
        let tls = tokio::time::timeout_at(self.login_deadline, self.ctx.tls.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Stream::Tls(Box::new(tls));
        self.tls = true;
        Ok(())
    }

    /// A BAD that counts towards `limits.max_errors` in a row.
    pub fn bad(&mut self, tag: Option<&str>, text: &str) {
        self.out.bad(tag, None, text);
        self.bad_in_a_row += 1;
    }

    async fn command(&mut self, raw: &[u8]) -> io::Result<Flow> {
        let bad_before = self.bad_in_a_row;
        let flow = match self.dispatch(raw).await {
            Ok(flow) => flow,
            Err(Failure::Io(e)) => return Err(e),
            Err(Failure::Store(e)) => {
                tracing::warn!(error = %e, "IMAP command failed in the store");
                // Whatever the handler had queued may be half a response: the tagged NO says
                // what counts.
                let tag = wire::tag_of(raw).unwrap_or("*").to_string();
                self.out.no(&tag, Some("UNAVAILABLE"), "Temporary server failure, try again later");
                Flow::Continue
            }
        };
        if self.bad_in_a_row == bad_before {
            self.bad_in_a_row = 0;
        } else if self.bad_in_a_row >= self.ctx.settings.config.limits.max_errors {
            self.out.bye(None, "Too many invalid commands");
            tracing::info!(peer = %self.peer.ip(), "IMAP: too many invalid commands; disconnected");
            return Ok(Flow::Close);
        }
        Ok(flow)
    }

    async fn dispatch(&mut self, raw: &[u8]) -> Handled {
        let Some(tag) = wire::tag_of(raw).map(str::to_string) else {
            self.bad(None, "Missing or invalid tag");
            return Ok(Flow::Continue);
        };
        let tag = tag.as_str();
        let verbs = wire::verbs(raw, 2);
        // What imap-codec 1.0 does not parse but clients send.
        match verbs.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["ID", ..] => return Ok(self.id(tag)),
            ["UID", "EXPUNGE"] if self.selected.is_some() => {
                self.out.no(tag, Some("CANNOT"), EXPUNGE_REFUSED);
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        let command = match CommandCodec::default().decode(raw) {
            Ok((b"", command)) => command,
            _ => {
                let known = verbs.first().is_some_and(|v| KNOWN.contains(&v.as_str()));
                self.bad(Some(tag), if known { "Syntax error in arguments" } else { "Unknown command" });
                return Ok(Flow::Continue);
            }
        };
        let body = command.body;
        // Any state.
        match body {
            CommandBody::Capability => {
                let caps: Vec<Capability> =
                    self.capabilities().into_iter().map(|c| Capability::from(Atom::try_from(c).expect("capability atoms"))).collect();
                self.out.data(Data::Capability(NonEmptyVec::try_from(caps).expect("IMAP4rev1 is there")));
                self.out.ok(tag, None, "CAPABILITY completed");
                return Ok(Flow::Continue);
            }
            CommandBody::Logout => {
                self.out.bye(None, "Logging out");
                self.out.ok(tag, None, "LOGOUT completed");
                return Ok(Flow::Close);
            }
            CommandBody::Noop if self.principal.is_none() => {
                self.out.ok(tag, None, "NOOP completed");
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        if self.principal.is_none() {
            return match body {
                CommandBody::StartTLS if self.tls => {
                    self.bad(Some(tag), "TLS is already active");
                    Ok(Flow::Continue)
                }
                CommandBody::StartTLS => {
                    self.out.ok(tag, None, "Begin TLS negotiation now");
                    Ok(Flow::StartTls)
                }
                CommandBody::Login { username, password } => {
                    let name = String::from_utf8_lossy(username.as_ref()).into_owned();
                    let mut password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                    let flow = self.login(tag, &name, &password).await;
                    password.zeroize();
                    flow
                }
                CommandBody::Authenticate { mechanism, initial_response } => {
                    let initial = initial_response.map(|r| r.declassify().to_vec());
                    self.authenticate(tag, mechanism, initial).await
                }
                _ => {
                    self.bad(Some(tag), "Log in first");
                    Ok(Flow::Continue)
                }
            };
        }
        match body {
            CommandBody::StartTLS | CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                self.bad(Some(tag), "Already logged in");
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        // Logged in: the user as they are now.
        if !self.refresh_principal().await? {
            return Ok(Flow::Close);
        }
        // EXPUNGE responses may not interrupt FETCH, STORE or SEARCH by sequence number.
        let expunge_allowed = !matches!(
            body,
            CommandBody::Fetch { uid: false, .. } | CommandBody::Store { uid: false, .. } | CommandBody::Search { uid: false, .. }
        );
        if !matches!(body, CommandBody::Select { .. } | CommandBody::Examine { .. } | CommandBody::Close | CommandBody::Unselect) {
            self.sync(expunge_allowed).await?;
        }
        match body {
            CommandBody::Noop => {
                self.out.ok(tag, None, "NOOP completed");
                Ok(Flow::Continue)
            }
            CommandBody::Enable { .. } => {
                // Nothing this server offers needs enabling (no CONDSTORE, no UTF8=ACCEPT).
                self.out.data(Data::Enabled { capabilities: vec![] });
                self.out.ok(tag, None, "ENABLE completed");
                Ok(Flow::Continue)
            }
            CommandBody::Idle => self.idle(tag).await,
            CommandBody::List { reference, mailbox_wildcard } => self.list(tag, &reference, &mailbox_wildcard, false),
            CommandBody::Lsub { reference, mailbox_wildcard } => self.list(tag, &reference, &mailbox_wildcard, true),
            CommandBody::Status { mailbox, item_names } => self.status(tag, &mailbox, &item_names).await,
            CommandBody::Select { mailbox } => self.select(tag, &mailbox, false).await,
            CommandBody::Examine { mailbox } => self.select(tag, &mailbox, true).await,
            CommandBody::Subscribe { .. } | CommandBody::Unsubscribe { .. } => {
                // Every queue the user may read is listed anyway.
                self.out.ok(tag, None, "Completed");
                Ok(Flow::Continue)
            }
            CommandBody::Create { .. } | CommandBody::Delete { .. } | CommandBody::Rename { .. } => {
                self.out.no(tag, Some("CANNOT"), "Mailboxes are the configured queues; they cannot be created, deleted or renamed here");
                Ok(Flow::Continue)
            }
            CommandBody::Append { .. } => {
                self.out.no(tag, Some("CANNOT"), APPEND_REFUSED);
                Ok(Flow::Continue)
            }
            CommandBody::Check
            | CommandBody::Close
            | CommandBody::Unselect
            | CommandBody::Expunge
            | CommandBody::Search { .. }
            | CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. }
                if self.selected.is_none() =>
            {
                if std::mem::take(&mut self.revoked) {
                    self.out.no(tag, Some("NOPERM"), "Access to the selected mailbox was revoked");
                } else {
                    self.bad(Some(tag), "No mailbox selected");
                }
                Ok(Flow::Continue)
            }
            CommandBody::Check => {
                self.out.ok(tag, None, "CHECK completed");
                Ok(Flow::Continue)
            }
            CommandBody::Close | CommandBody::Unselect => {
                // Nothing is ever marked \Deleted, so CLOSE has nothing to expunge.
                self.selected = None;
                self.out.ok(tag, None, "Completed");
                Ok(Flow::Continue)
            }
            CommandBody::Expunge => {
                self.out.no(tag, Some("CANNOT"), EXPUNGE_REFUSED);
                Ok(Flow::Continue)
            }
            CommandBody::Copy { .. } | CommandBody::Move { .. } => {
                self.out.no(tag, Some("CANNOT"), "Registered mail cannot be copied or moved here; transfer the case through the HTTP API");
                Ok(Flow::Continue)
            }
            CommandBody::Fetch { sequence_set, macro_or_item_names, uid } => self.fetch(tag, &sequence_set, macro_or_item_names, uid).await,
            CommandBody::Store { sequence_set, kind, response, flags, uid } => {
                self.store(tag, &sequence_set, kind, response, &flags, uid).await
            }
            CommandBody::Search { charset, criteria, uid } => self.search(tag, charset, &criteria, uid).await,
            _ => {
                self.bad(Some(tag), "Command not supported");
                Ok(Flow::Continue)
            }
        }
    }

    fn id(&mut self, tag: &str) -> Flow {
        let line = format!("* ID (\"name\" \"mailroom\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION"));
        self.out.line(line.as_bytes());
        self.out.ok(tag, None, "ID completed");
        Flow::Continue
    }

    async fn login(&mut self, tag: &str, name: &str, password: &str) -> Handled {
        if !self.tls {
            // LOGINDISABLED: the password has crossed the wire in clear already; it is not even
            // checked, so a sniffed guess cannot be confirmed here either.
            self.out.no(tag, Some("PRIVACYREQUIRED"), "Use STARTTLS first; passwords are not accepted in clear text");
            return Ok(Flow::Continue);
        }
        match self.ctx.access.login(name, password, self.peer.ip(), "imap").await {
            Ok(principal) => {
                tracing::debug!(user = %principal.name, "IMAP login");
                self.principal = Some(principal);
                let code = self.capability_code();
                self.out.ok(tag, Some(&code), "Logged in");
                Ok(Flow::Continue)
            }
            Err(e) => {
                match e {
                    LoginError::Invalid => self.out.no(tag, Some("AUTHENTICATIONFAILED"), "Invalid credentials"),
                    LoginError::Throttled { .. } => self.out.no(tag, Some("UNAVAILABLE"), "Too many failed logins, try again later"),
                    LoginError::Busy { .. } => {
                        // Nothing was checked: not the client's failure, so it does not count towards the BYE.
                        self.out.no(tag, Some("UNAVAILABLE"), "Server busy, try again later");
                        return Ok(Flow::Continue);
                    }
                    LoginError::Store(e) => return Err(e.into()),
                }
                self.login_failures += 1;
                if self.login_failures >= MAX_LOGIN_FAILURES {
                    self.out.bye(None, "Too many failed logins");
                    return Ok(Flow::Close);
                }
                Ok(Flow::Continue)
            }
        }
    }

    async fn authenticate(&mut self, tag: &str, mechanism: AuthMechanism<'_>, initial: Option<Vec<u8>>) -> Handled {
        if !self.tls {
            self.out.no(tag, Some("PRIVACYREQUIRED"), "Use STARTTLS first; passwords are not accepted in clear text");
            return Ok(Flow::Continue);
        }
        if mechanism != AuthMechanism::Plain {
            self.out.no(tag, None, "Unsupported authentication mechanism (AUTH=PLAIN is offered)");
            return Ok(Flow::Continue);
        }
        let mut response = match initial {
            Some(r) => r,
            None => {
                self.out.line(b"+ ");
                self.flush().await?;
                let deadline = self.read_deadline();
                let line = match self.read_line(deadline).await? {
                    Ok(line) => line,
                    Err(input) => {
                        self.close_with(input).await?;
                        return Ok(Flow::Close);
                    }
                };
                let line = line.trim_ascii();
                if line == b"*" {
                    self.bad(Some(tag), "Authentication cancelled");
                    return Ok(Flow::Continue);
                }
                match base64::engine::general_purpose::STANDARD.decode(line) {
                    Ok(r) => r,
                    Err(_) => {
                        self.bad(Some(tag), "Invalid base64 in the authentication response");
                        return Ok(Flow::Continue);
                    }
                }
            }
        };
        // RFC 4616: [authzid] NUL authcid NUL passwd.
        let parts: Vec<&[u8]> = response.split(|b| *b == 0).collect();
        let flow = match parts.as_slice() {
            [authzid, authcid, password] if authzid.is_empty() || authzid == authcid => {
                let name = String::from_utf8_lossy(authcid).into_owned();
                let mut password = String::from_utf8_lossy(password).into_owned();
                let flow = self.login(tag, &name, &password).await;
                password.zeroize();
                flow
            }
            [_, _, _] => {
                self.out.no(tag, Some("AUTHORIZATIONFAILED"), "Acting as another user is not supported");
                Ok(Flow::Continue)
            }
            _ => {
                self.bad(Some(tag), "Malformed PLAIN response");
                Ok(Flow::Continue)
            }
        };
        response.zeroize();
        flow
    }

    /// Re-reads the logged-in user. False (after BYE) when they were locked or removed; closes
    /// the selected mailbox when they may no longer read it.
    pub async fn refresh_principal(&mut self) -> Result<bool, Failure> {
        let Some(current) = &self.principal else { return Ok(false) };
        let Some(principal) = self.ctx.access.principal(current.user_id).await? else {
            tracing::info!(user = %current.name, "IMAP session of a locked or removed user closed");
            self.principal = None;
            self.selected = None;
            self.out.bye(None, "Your access was revoked");
            return Ok(false);
        };
        if let Some(sel) = &self.selected
            && !principal.can(&sel.queue, Permission::Read)
        {
            self.out.status(None, "OK", Some("CLOSED"), "Access to the selected mailbox was revoked");
            self.selected = None;
            self.revoked = true;
        }
        self.principal = Some(principal);
        Ok(true)
    }

    pub fn user_id(&self) -> i64 {
        self.principal.as_ref().map_or(0, |p| p.user_id)
    }

    /// Tells the client what changed in the selected mailbox (see `Selected::apply`).
    pub async fn sync(&mut self, expunge: bool) -> Result<(), Failure> {
        let Some(sel) = &self.selected else { return Ok(()) };
        let current = self.ctx.access.store.mailbox_entries(&sel.queue, self.user_id()).await?;
        if let Some(sel) = &mut self.selected {
            sel.apply(current, expunge, &mut self.out);
        }
        Ok(())
    }

    /// A queue the user may read, by mailbox name; None for anything else (unknown and
    /// forbidden look the same).
    fn readable(&self, name: &str) -> Option<String> {
        let principal = self.principal.as_ref()?;
        let queues = self.ctx.settings.config.queues.iter().map(|q| q.name.as_str());
        // INBOX is case-insensitive (a queue could be called "inbox").
        principal
            .readable_queues(queues)
            .into_iter()
            .find(|q| q == name || name.eq_ignore_ascii_case("INBOX") && q.eq_ignore_ascii_case("INBOX"))
    }

    fn list(&mut self, tag: &str, reference: &Mailbox, pattern: &ListMailbox, lsub: bool) -> Handled {
        let reference = match reference {
            Mailbox::Inbox => b"INBOX".to_vec(),
            Mailbox::Other(o) => o.as_ref().to_vec(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => t.as_ref().to_vec(),
            ListMailbox::String(s) => s.as_ref().to_vec(),
        };
        let delimiter = Some(QuotedChar::try_from(mailbox::DELIMITER).expect("valid delimiter"));
        let verb = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() && !lsub {
            // The delimiter probe.
            let root = Mailbox::try_from("").expect("empty mailbox name");
            self.out.data(Data::List { items: vec![FlagNameAttribute::Noselect], delimiter, mailbox: root });
            self.out.ok(tag, None, "LIST completed");
            return Ok(Flow::Continue);
        }
        let full: Vec<u8> = [reference, pattern].concat();
        let queues = self.ctx.settings.config.queues.iter().map(|q| q.name.as_str());
        let names = self.principal.as_ref().map(|p| p.readable_queues(queues)).unwrap_or_default();
        for name in names.into_iter().filter(|n| mailbox::list_matches(&full, n.as_bytes())) {
            let items = vec![FlagNameAttribute::from(Atom::try_from("HasNoChildren").expect("valid atom"))];
            let Ok(mailbox) = Mailbox::try_from(name) else { continue };
            self.out.data(if lsub { Data::Lsub { items, delimiter, mailbox } } else { Data::List { items, delimiter, mailbox } });
        }
        self.out.ok(tag, None, &format!("{verb} completed"));
        Ok(Flow::Continue)
    }

    async fn status(&mut self, tag: &str, mailbox: &Mailbox<'_>, items: &[StatusDataItemName]) -> Handled {
        let Some(queue) = self.readable(&mailbox::mailbox_name(mailbox)) else {
            self.out.no(tag, Some("NONEXISTENT"), "No such mailbox");
            return Ok(Flow::Continue);
        };
        let store = &self.ctx.access.store;
        let (messages, unseen) = store.mailbox_counts(&queue, self.user_id()).await?;
        let mut values = Vec::new();
        for item in items {
            values.push(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(messages),
                StatusDataItemName::Recent => StatusDataItem::Recent(0),
                StatusDataItemName::Unseen => StatusDataItem::Unseen(unseen),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(nonzero(store.mailbox_uid_next().await?)),
                StatusDataItemName::UidValidity => StatusDataItem::UidValidity(nonzero(store.mailbox_uidvalidity(&queue).await?)),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(0),
                _ => continue,
            });
        }
        let mailbox = Mailbox::try_from(queue).map_err(|_| io::Error::other("queue name is not a mailbox name"))?;
        self.out.data(Data::Status { mailbox, items: values.into() });
        self.out.ok(tag, None, "STATUS completed");
        Ok(Flow::Continue)
    }

    async fn select(&mut self, tag: &str, mailbox: &Mailbox<'_>, read_only: bool) -> Handled {
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        self.selected = None;
        self.revoked = false;
        let Some(queue) = self.readable(&mailbox::mailbox_name(mailbox)) else {
            self.out.no(tag, Some("NONEXISTENT"), "No such mailbox");
            return Ok(Flow::Continue);
        };
        let store = &self.ctx.access.store;
        let uidvalidity = store.mailbox_uidvalidity(&queue).await?;
        let entries = store.mailbox_entries(&queue, self.user_id()).await?;
        let uid_next = store.mailbox_uid_next().await?;
        let sel = Selected::new(queue, read_only, entries);
        self.out.data(Data::Flags(vec![Flag::Seen, Flag::Flagged, mailbox::junk()]));
        self.out.data(Data::Exists(sel.exists()));
        self.out.data(Data::Recent(0));
        if let Some(first) = sel.first_unseen() {
            self.out.status(None, "OK", Some(&format!("UNSEEN {first}")), "First unseen message");
        }
        self.out.status(None, "OK", Some(&format!("UIDVALIDITY {uidvalidity}")), "UIDs valid");
        self.out.status(None, "OK", Some(&format!("UIDNEXT {uid_next}")), "Predicted next UID");
        let permanent = if read_only { "PERMANENTFLAGS ()" } else { "PERMANENTFLAGS (\\Seen \\Flagged)" };
        self.out.status(None, "OK", Some(permanent), "Flags the user can change");
        self.out.ok(
            tag,
            Some(if read_only { "READ-ONLY" } else { "READ-WRITE" }),
            if read_only { "EXAMINE completed" } else { "SELECT completed" },
        );
        self.selected = Some(sel);
        Ok(Flow::Continue)
    }

    async fn idle(&mut self, tag: &str) -> Handled {
        enum Wake {
            Read(io::Result<usize>),
            Timeout,
            Changed(bool),
            Recheck,
            Shutdown,
        }
        self.out.line(b"+ idling");
        self.flush().await?;
        let mut changes = self.ctx.access.store.changes.subscribe();
        let mut changes_open = true;
        let mut shutdown = self.ctx.shutdown.clone();
        let deadline = Instant::now() + self.ctx.settings.config.imap.idle_timeout;
        let mut next_check = Instant::now() + IDLE_RECHECK;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf) {
                let line = self.buf.split_to(pos + 1);
                if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
                    self.out.ok(tag, None, "IDLE terminated");
                } else {
                    self.bad(Some(tag), "Expected DONE");
                }
                return Ok(Flow::Continue);
            }
            if self.buf.len() >= MAX_LINE {
                self.close_with(Input::TooLong).await?;
                return Ok(Flow::Close);
            }
            let wake = {
                let Session { stream, buf, .. } = &mut *self;
                tokio::select! {
                    read = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => read.map_or(Wake::Timeout, Wake::Read),
                    changed = changes.changed(), if changes_open => Wake::Changed(changed.is_ok()),
                    _ = tokio::time::sleep_until(next_check) => Wake::Recheck,
                    _ = shutdown.reached(Phase::Draining) => Wake::Shutdown,
                }
            };
            match wake {
                Wake::Read(Ok(0)) => return Ok(Flow::Close),
                Wake::Read(Ok(_)) => continue,
                Wake::Read(Err(e)) => return Err(e.into()),
                Wake::Timeout => {
                    self.close_with(Input::Timeout).await?;
                    return Ok(Flow::Close);
                }
                Wake::Shutdown => {
                    self.close_with(Input::Shutdown).await?;
                    return Ok(Flow::Close);
                }
                Wake::Changed(open) => {
                    changes_open = open;
                    // Commits come in bursts: one re-read for all of them.
                    tokio::time::sleep(IDLE_MIN_INTERVAL).await;
                    changes.borrow_and_update();
                }
                Wake::Recheck => {}
            }
            next_check = Instant::now() + IDLE_RECHECK;
            if !self.refresh_principal().await? {
                self.flush().await?;
                return Ok(Flow::Close);
            }
            if self.selected.is_none() && std::mem::take(&mut self.revoked) {
                // The mailbox being watched is gone for this user; IDLE cannot answer otherwise.
                self.out.bye(None, "Access to the selected mailbox was revoked");
                self.flush().await?;
                return Ok(Flow::Close);
            }
            self.sync(true).await?;
            self.flush().await?;
        }
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n.max(1)).expect("at least 1")
}

pub const APPEND_REFUSED: &str = "Mail reaches a queue only by SMTP; nothing can be added here";
pub const EXPUNGE_REFUSED: &str = "Registered mail cannot be deleted here; close the case through the HTTP API";

/// Commands a syntax error is reported for as such (anything else is "unknown").
const KNOWN: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "ENABLE",
];

impl Drop for Session {
    fn drop(&mut self) {
        // Rendered messages are customer content: do not leave them in freed memory.
        self.cache.clear();
        self.out.buf.zeroize();
    }
}
