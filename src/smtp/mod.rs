//! SMTP (the MX) and LMTP (behind another MTA): listeners and sessions.
//!
//! `listen` accepts connections and bounds them with a semaphore shared by every listener;
//! `session` runs one connection's state machine; `data` finds the end of DATA; `stream` wraps the
//! socket so STARTTLS can upgrade it in place.

pub mod data;
pub mod session;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;
use crate::intake::{Intake, Protocol};
use crate::shutdown::{Phase, Shutdown};

/// What every session shares.
pub struct SmtpContext {
    pub settings: Arc<Settings>,
    pub intake: Intake,
    pub tls: TlsAcceptor,
    pub shutdown: Shutdown,
}

/// Accepts connections until shutdown begins.
pub async fn listen(listener: TcpListener, protocol: Protocol, ctx: Arc<SmtpContext>, connections: Arc<Semaphore>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.reached(Phase::Draining) => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning; existing sessions keep going.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    session::run(ctx, socket, peer, protocol).await;
                    drop(permit);
                });
            }
            Err(_) => {
                let hostname = ctx.settings.config.server.hostname.clone();
                tokio::spawn(reject_busy(socket, peer, hostname));
            }
        }
    }
}

/// Over `limits.max_connections`: say so (RFC 5321 §3.8: 421 before closing) and hang up.
async fn reject_busy(mut socket: TcpStream, peer: SocketAddr, hostname: String) {
    tracing::warn!(%peer, "too many connections; refused with 421");
    let reply = format!("421 4.3.2 {hostname} Too many connections, try again later\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = socket.write_all(reply.as_bytes()).await;
        let _ = socket.shutdown().await;
    })
    .await;
}
