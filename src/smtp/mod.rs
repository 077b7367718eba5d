//! SMTP (the MX) and LMTP (behind another MTA): listeners and sessions.
//!
//! `listen` runs the shared accept loop (`crate::net`) over one pool for every SMTP and LMTP
//! listener; `session` runs one connection's state machine; `data` finds the end of DATA;
//! `memory` is the budget for message bytes in flight.

pub mod config;
pub mod data;
pub mod memory;
pub mod observe;
pub mod session;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use self::config::{Limits, LmtpConfig};
use crate::intake::{Intake, Protocol};
use crate::net::{Admission, Listener, Policy, Pool};
use crate::shutdown::Shutdown;

/// What every session shares.
pub struct SmtpContext {
    /// Ours, for the banner, EHLO and every reply that names us.
    pub hostname: String,
    pub limits: Limits,
    pub lmtp: LmtpConfig,
    /// `limits.message_memory`, shared by every session of every listener.
    pub memory: memory::MessageMemory,
    pub intake: Intake,
    pub tls: TlsAcceptor,
    pub shutdown: Shutdown,
}

/// How a connection is admitted: SMTP is capped per source; LMTP serves a trusted MTA and is
/// capped only when `lmtp.max_connections_per_source` says so.
pub fn policy(ctx: &SmtpContext, protocol: Protocol) -> Policy {
    match protocol {
        Protocol::Smtp => Policy::capped(ctx.limits.max_connections_per_source),
        Protocol::Lmtp => ctx.lmtp.max_connections_per_source.map_or(Policy::trusted(), Policy::capped),
    }
}

/// Accepts connections until shutdown begins; each holds a slot in `connections` while it runs.
pub async fn listen(listener: TcpListener, protocol: Protocol, ctx: Arc<SmtpContext>, connections: Arc<Pool>) {
    let listener = Listener::new(listener, protocol.name()).gate(connections, policy(&ctx, protocol));
    listener
        .run(ctx.shutdown.clone(), |socket, peer, admission| match admission {
            Admission::Admitted(slots) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    session::run(ctx, socket, peer, protocol).await;
                    drop(slots);
                });
            }
            // The client waits for our banner before it sends anything: one write, then close.
            Admission::Refused(refused) => {
                refused.answer_now(&socket, busy_reply(&ctx.hostname, refused.why).as_bytes());
                observe::session_ended(protocol, "421");
            }
        })
        .await;
}

/// The 421 for a connection over a limit (RFC 5321 §3.8: 421 before closing).
pub fn busy_reply(hostname: &str, refused: crate::net::Refusal) -> String {
    if refused.is_per_source() {
        format!("421 4.3.2 {hostname} Too many connections from your address, try again later\r\n")
    } else {
        format!("421 4.3.2 {hostname} Too many connections, try again later\r\n")
    }
}
