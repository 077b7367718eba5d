//! The staff IMAP view: one read-only mailbox per queue the user may read, named like the queue,
//! holding the messages of its cases with our `X-Mailroom-*` header fields on top. Staff use any
//! mail client; the only changes a client can make are the user's own \Seen and \Flagged flags.
//!
//! * `session`: a connection's state and its command loop; `input`: reading commands and their
//!   literals; `login`: STARTTLS, LOGIN, AUTHENTICATE; `dispatch`: the command table;
//!   `select`: LIST/LSUB, STATUS, SELECT/EXAMINE; `idle`: IDLE.
//! * `mailbox`: the selected mailbox as the client knows it (sequence numbers, EXPUNGE/EXISTS).
//! * `condstore`: the RFC 7162 syntax imap-codec does not parse (MODSEQ, CHANGEDSINCE …).
//! * `fetch`: FETCH and STORE; `search`: SEARCH; `render`: the message as shown and its MIME
//!   structure; `wire`: command framing (literals) and status lines.
//!
//! imap-codec parses commands and encodes untagged data. Passwords are only accepted over TLS
//! (implicit, or after STARTTLS); every read of customer content is authorised by queue and
//! audited.

mod condstore;
pub mod config;
mod dispatch;
mod fetch;
mod idle;
mod input;
mod login;
mod mailbox;
pub(crate) mod render;
mod search;
mod select;
mod session;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use self::config::ImapConfig;
use crate::access::Access;
use crate::net::{Admission, Listener, Policy, Pool, Refusal, Refused, Stream};
use crate::shutdown::Shutdown;

/// What every IMAP session shares.
pub struct ImapContext {
    pub settings: ImapSettings,
    pub access: Access,
    /// For category names and the calendar's zone in our header fields (a reload replaces them).
    pub cases: crate::cases::Cases,
    pub tls: TlsAcceptor,
    pub shutdown: Shutdown,
}

/// What the IMAP view is handed from the configuration.
pub struct ImapSettings {
    pub imap: ImapConfig,
    /// Ours, for the greeting.
    pub hostname: String,
    /// `[limits]`: how long a command may take to arrive, and how many bad ones in a row end
    /// the session.
    pub command_timeout: Duration,
    pub max_errors: u32,
    /// The configured queue names, in order: the mailboxes.
    pub queues: Vec<String>,
}

/// The two pools every IMAP connection is admitted to: all sessions, and the smaller one of
/// sessions not logged in yet (left at login).
pub struct ImapPools {
    pub sessions: Arc<Pool>,
    pub unauthenticated: Arc<Pool>,
}

/// Accepts IMAP connections until shutdown. `implicit_tls`: the 993-style listener (TLS from the
/// first byte); otherwise 143-style with STARTTLS.
pub async fn listen(listener: TcpListener, implicit_tls: bool, ctx: Arc<ImapContext>, pools: Arc<ImapPools>) {
    let policy = Policy::capped(ctx.settings.imap.max_connections_per_source);
    let listener = Listener::new(listener, if implicit_tls { "imaps" } else { "imap" })
        .gate(pools.sessions.clone(), policy)
        .gate(pools.unauthenticated.clone(), policy);
    listener
        .run(ctx.shutdown.clone(), |socket, peer, admission| {
            let ctx = ctx.clone();
            match admission {
                Admission::Admitted(mut slots) => {
                    // Gate order: the session slot, then the pre-login one the session gives up at login.
                    let prelogin = slots.pop().expect("two gates");
                    tokio::spawn(async move {
                        let opened = tokio::select! {
                            // An eviction before the session runs is answered by the session (BYE).
                            biased;
                            opened = open(&ctx, socket, implicit_tls) => opened,
                            // Evicted during the TLS handshake: nothing to say BYE with yet.
                            _ = prelogin.evicted() => None,
                        };
                        if let Some(stream) = opened {
                            session::run(ctx, stream, peer, prelogin).await;
                        }
                        drop(slots);
                    });
                }
                Admission::Refused(refused) if !implicit_tls => refused.answer_now(&socket, busy_bye(refused.why)),
                // Inside TLS, where a clear-text line would be noise: a handshake first, in a
                // task of its own while few are (otherwise just close).
                Admission::Refused(refused) => {
                    if refused.answering.is_some() {
                        tokio::spawn(reject_busy_tls(ctx, socket, refused));
                    }
                }
            }
        })
        .await;
    // Sessions see the same shutdown and say BYE; `net::drain` waits for them.
}

/// The session's stream: TLS first on the implicit-TLS listener (within the pre-login timeout).
async fn open(ctx: &ImapContext, socket: TcpStream, implicit_tls: bool) -> Option<Stream> {
    if !implicit_tls {
        return Some(Stream::Plain(socket));
    }
    match tokio::time::timeout(ctx.settings.imap.prelogin_timeout, ctx.tls.accept(socket)).await {
        Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "IMAP TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// The BYE for a connection over a limit.
fn busy_bye(why: Refusal) -> &'static [u8] {
    if why.is_per_source() {
        b"* BYE Too many connections from your address, try again later\r\n"
    } else {
        b"* BYE Too many connections, try again later\r\n"
    }
}

async fn reject_busy_tls(ctx: Arc<ImapContext>, socket: TcpStream, refused: Refused) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let Some(mut stream) = open(&ctx, socket, true).await else { return };
        let _ = stream.write_all(busy_bye(refused.why)).await;
        let _ = stream.shutdown().await;
    })
    .await;
    drop(refused);
}
