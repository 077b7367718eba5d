//! The staff IMAP view (to be written): one mailbox per queue the user may read.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::access::Access;
use crate::config::Settings;
use crate::shutdown::Shutdown;

/// What every IMAP session shares.
pub struct ImapContext {
    pub settings: Arc<Settings>,
    pub access: Access,
    pub tls: TlsAcceptor,
    pub shutdown: Shutdown,
}

/// Accepts IMAP connections until shutdown. `implicit_tls`: the 993-style listener (TLS from the
/// first byte); otherwise 143-style with STARTTLS. `connections` bounds concurrent sessions.
pub async fn listen(listener: TcpListener, implicit_tls: bool, ctx: Arc<ImapContext>, connections: Arc<Semaphore>) {
    let _ = (listener, implicit_tls, ctx, connections);
}
