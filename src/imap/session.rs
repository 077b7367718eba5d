//! One IMAP connection: its state (not authenticated → authenticated → selected), the loop that
//! reads a command, runs it and writes the responses, and the BYE owed when we close.
//! Reading commands is in `input`, logging in in `login`, the command table in `dispatch`,
//! finding and opening mailboxes in `select`, IDLE in `idle`; FETCH and STORE in `fetch`,
//! SEARCH in `search`.
//!
//! Every command of a logged-in user first re-reads the user (`Access::principal`): a locked or
//! removed user gets BYE, a revoked grant closes the mailbox, at the next command.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use zeroize::Zeroize;

use super::ImapContext;
use super::fetch::Cache;
use super::input::Input;
use super::mailbox::{Changes, Selected, fetch_flags};
use super::wire::{self, Out};
use crate::access::{Permission, Principal};
use crate::net::{Guard, Stream};
use crate::shutdown::Phase;
use crate::store::StoreError;

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

pub(super) type Handled = Result<Flow, Failure>;

pub(super) struct Session {
    pub ctx: Arc<ImapContext>,
    pub stream: Stream,
    pub(super) peer: SocketAddr,
    pub(super) tls: bool,
    pub(super) buf: BytesMut,
    pub out: Out,
    pub principal: Option<Principal>,
    pub selected: Option<Selected>,
    /// The selected mailbox was closed because the user may no longer read it: selected-state
    /// commands get NO [NOPERM] instead of "no mailbox selected".
    pub(super) revoked: bool,
    pub(super) login_failures: u32,
    pub(super) bad_in_a_row: u32,
    /// The unauthenticated phase ends at this instant (prelogin_timeout from connect), however
    /// much input trickles in before it.
    pub(super) login_deadline: Instant,
    /// The slot in the pool of connections not logged in yet; None once logged in.
    pub(super) prelogin: Option<Guard>,
    pub cache: Cache,
    /// Length of each message's trace header (RFC822.SIZE without decrypting the message).
    pub trace_lens: HashMap<i64, usize>,
    /// CONDSTORE is enabled (ENABLE CONDSTORE, SELECT … (CONDSTORE), a FETCH with MODSEQ or
    /// CHANGEDSINCE …): FETCH responses with FLAGS carry MODSEQ (RFC 7162 §3.1).
    pub condstore: bool,
}

impl Session {
    fn new(ctx: Arc<ImapContext>, stream: Stream, peer: SocketAddr, tls: bool, prelogin: Guard) -> Session {
        let login_deadline = crate::net::deadline::after(Instant::now(), ctx.settings.imap.prelogin_timeout);
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
            condstore: false,
        }
    }

    pub(super) fn capabilities(&self) -> Vec<&'static str> {
        let mut caps = vec!["IMAP4rev1", "LITERAL+", "ID", "ENABLE", "IDLE", "UNSELECT", "CONDSTORE"];
        if self.principal.is_none() {
            if self.tls {
                caps.extend(["SASL-IR", "AUTH=PLAIN"]);
            } else {
                caps.extend(["STARTTLS", "LOGINDISABLED"]);
            }
        }
        caps
    }

    pub(super) fn capability_code(&self) -> String {
        format!("CAPABILITY {}", self.capabilities().join(" "))
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.buf.is_empty() {
            return Ok(());
        }
        let timeout = self.ctx.settings.command_timeout;
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
        let greeting = format!("{} IMAP4rev1 mailroom ready", self.ctx.settings.hostname);
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
    pub(super) async fn close_with(&mut self, input: Input) -> io::Result<()> {
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
        } else if self.bad_in_a_row >= self.ctx.settings.max_errors {
            self.out.bye(None, "Too many invalid commands");
            tracing::info!(peer = %self.peer.ip(), "IMAP: too many invalid commands; disconnected");
            return Ok(Flow::Close);
        }
        Ok(flow)
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

    /// Tells the client what changed in the selected mailbox (see `Selected::apply`): nothing
    /// is read but the modseq counter unless something was written since the last time.
    pub async fn sync(&mut self, expunge: bool) -> Result<(), Failure> {
        let user_id = self.user_id();
        let condstore = self.condstore;
        let Some(sel) = &self.selected else { return Ok(()) };
        let store = &self.ctx.access.store;
        let modseq = store.mailbox_modseq().await?;
        if modseq <= sel.modseq && (sel.gone.is_empty() || !expunge) {
            return Ok(());
        }
        let mut changes = Changes { modseq, ..Changes::default() };
        if modseq > sel.modseq {
            let (queue, since) = (sel.queue.as_str(), sel.modseq);
            match store.mailbox_departed(queue, since).await? {
                Some(departed) => {
                    changes.departed = departed;
                    changes.new = store.mailbox_uids_after(queue, sel.last_uid).await?;
                }
                // The records since this session last looked were pruned (it slept through
                // `imap.departures_kept`): what left is what the whole list no longer has.
                None => {
                    let now = store.mailbox_uids_after(queue, 0).await?;
                    changes.departed = sel.missing_from(&now);
                    changes.new = now.into_iter().filter(|uid| *uid > sel.last_uid).collect();
                }
            }
            changes.changed = store.mailbox_changed(queue, user_id, since).await?;
        }
        if let Some(sel) = &mut self.selected {
            sel.apply(changes, expunge, &mut self.out, |out, i, e| {
                out.fetch(fetch_flags(i, e, user_id, true), condstore.then(|| e.modseq()));
            });
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Rendered messages are customer content: do not leave them in freed memory.
        self.cache.clear();
        self.out.buf.zeroize();
    }
}
