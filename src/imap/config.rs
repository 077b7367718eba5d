//! `[imap]`: the staff IMAP view's listeners and limits.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// Plain listeners that offer STARTTLS (LOGIN is refused until TLS is up). Port 143/1143.
    pub listen_starttls: Vec<SocketAddr>,
    /// Implicit-TLS listeners. Port 993/1993.
    pub listen_tls: Vec<SocketAddr>,
    /// Largest literal a client may send (passwords, search strings); larger: BAD/NO.
    pub max_literal: u32,
    /// Time from connect to a successful login (TLS handshake, STARTTLS and LOGIN included, not
    /// reset by input); then BYE and close. `login_timeout`, its name before, is still accepted.
    #[serde(with = "humantime_serde", alias = "login_timeout")]
    pub prelogin_timeout: Duration,
    /// Idle time before an authenticated session is closed (RFC 9051 §5.4: at least 30 minutes).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Concurrent IMAP sessions over all IMAP listeners.
    pub max_connections: usize,
    /// Concurrent IMAP sessions from one address (IPv6: one /64). Staff behind one NAT address
    /// share it: a mail client opens a few connections per account.
    pub max_connections_per_source: usize,
    /// Concurrent IMAP connections not logged in yet (a smaller pool inside `max_connections`,
    /// left at login, so idle unauthenticated connections cannot lock staff out); at most
    /// `max_connections` counts.
    pub max_unauthenticated: usize,
    /// How long the record of a message leaving a mailbox (transfer, purge) is kept for open
    /// sessions to report as EXPUNGE: records are pruned every this long, so each lives one to
    /// two periods. A session that slept longer re-reads its mailbox's UID list once instead.
    #[serde(with = "humantime_serde")]
    pub departures_kept: Duration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        Self {
            listen_starttls: vec![],
            listen_tls: vec![],
            max_literal: 64 * 1024,
            prelogin_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30 * 60),
            max_connections: 1000,
            max_connections_per_source: 50,
            max_unauthenticated: 100,
            departures_kept: Duration::from_secs(3600),
        }
    }
}

impl ImapConfig {
    /// (key within `[imap]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (key, value) in [("prelogin_timeout", self.prelogin_timeout), ("departures_kept", self.departures_kept)] {
            if value < Duration::from_secs(1) {
                return Err((key.into(), "must be at least 1s".into()));
            }
        }
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_source", self.max_connections_per_source),
            ("max_unauthenticated", self.max_unauthenticated),
        ] {
            if value == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        if self.max_literal < 1024 {
            return Err(("max_literal".into(), "must be at least 1024 bytes".into()));
        }
        Ok(())
    }
}
