//! The staff IMAP view: one read-only mailbox per queue the user may read, named like the queue,
//! holding the messages of its cases with our `X-Mailroom-*` header fields on top. Staff use any
//! mail client; the only changes a client can make are the user's own \Seen and \Flagged flags.
//!
//! * `session`: a connection's state machine (TLS, login, mailbox commands, IDLE).
//! * `mailbox`: the selected mailbox as the client knows it (sequence numbers, EXPUNGE/EXISTS).
//! * `fetch`: FETCH and STORE; `search`: SEARCH; `render`: the message as shown and its MIME
//!   structure; `wire`: command framing (literals) and status lines.
//!
//! imap-codec parses commands and encodes untagged data. Passwords are only accepted over TLS
//! (implicit, or after STARTTLS); every read of customer content is authorised by queue and
//! audited.

mod fetch;
mod mailbox;
pub(crate) mod render;
mod search;
mod session;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::access::Access;
use crate::config::Settings;
use crate::shutdown::{Phase, Shutdown};
use crate::smtp::stream::Stream;

/// What every IMAP session shares.
pub struct ImapContext {
    pub settings: Arc<Settings>,
    pub access: Access,
    pub tls: TlsAcceptor,
    pub shutdown: Shutdown,
}

/// How long sessions get to say BYE after shutdown begins (the server waits 5 s for us).
const DRAIN: Duration = Duration::from_secs(4);

/// Accepts IMAP connections until shutdown. `implicit_tls`: the 993-style listener (TLS from the
/// first byte); otherwise 143-style with STARTTLS. `connections` bounds concurrent sessions.
pub async fn listen(listener: TcpListener, implicit_tls: bool, ctx: Arc<ImapContext>, connections: Arc<Semaphore>) {
    let mut shutdown = ctx.shutdown.clone();
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            _ = shutdown.reached(Phase::Draining) => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning; existing sessions keep going.
                tracing::warn!(error = %e, "IMAP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let ctx = ctx.clone();
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                sessions.spawn(async move {
                    if let Some(stream) = open(&ctx, socket, implicit_tls).await {
                        session::run(ctx, stream, peer).await;
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::warn!(%peer, "too many IMAP connections; refused");
                sessions.spawn(reject_busy(ctx, socket, implicit_tls));
            }
        }
    }
    // Sessions see the same shutdown and say BYE; give them a moment to do so.
    let _ = tokio::time::timeout(DRAIN, async { while sessions.join_next().await.is_some() {} }).await;
}

/// The session's stream: TLS first on the implicit-TLS listener (within the login timeout).
async fn open(ctx: &ImapContext, socket: TcpStream, implicit_tls: bool) -> Option<Stream> {
    if !implicit_tls {
        return Some(Stream::Plain(socket));
    }
    match tokio::time::timeout(ctx.settings.config.imap.login_timeout, ctx.tls.accept(socket)).await {
        Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "IMAP TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// Over `imap.max_connections`: say so and hang up (inside TLS on the TLS listener, where a
/// clear-text line would be noise).
async fn reject_busy(ctx: Arc<ImapContext>, socket: TcpStream, implicit_tls: bool) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let Some(mut stream) = open(&ctx, socket, implicit_tls).await else { return };
        let _ = stream.write_all(b"* BYE Too many connections, try again later\r\n").await;
        let _ = stream.shutdown().await;
    })
    .await;
}
