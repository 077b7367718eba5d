//! `[smtp]`, `[lmtp]` and `[limits]`: where SMTP and LMTP listen and the limits of a session.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// An empty list disables the protocol.
    pub listen: Vec<SocketAddr>,
}

impl ListenerConfig {
    pub fn default_smtp() -> Self {
        Self { listen: vec![([127, 0, 0, 1], 2525).into()] }
    }
}

/// LMTP serves a trusted MTA that opens many connections from one address, so it has no
/// per-source cap (and may use the reserved share) unless one is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmtpConfig {
    /// An empty list disables LMTP.
    pub listen: Vec<SocketAddr>,
    #[serde(default)]
    pub max_connections_per_source: Option<usize>,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        Self { listen: vec![([127, 0, 0, 1], 2424).into()], max_connections_per_source: None }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_command_line: usize,
    pub max_data_line: usize,
    pub max_connections: usize,
    /// SMTP connections from one address (IPv6: one /64); LMTP is not capped (see `LmtpConfig`).
    pub max_connections_per_source: usize,
    /// Percentage of every connection limit (SMTP/LMTP, IMAP, IMAP before login, HTTP) that only
    /// addresses with no connection yet may take, so a few addresses can never fill every slot.
    pub reserved_percent: u8,
    pub max_errors: u32,
    /// Time limit for a whole command line, however slowly it trickles in.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Idle time waiting for the next block of message data.
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    /// Total time limit of one SMTP/LMTP connection.
    #[serde(with = "humantime_serde")]
    pub max_session_time: Duration,
    /// Bytes per second DATA/BDAT must keep up on average: the data must be in within
    /// `data_timeout` plus one second per `min_data_rate` bytes received (0: no minimum).
    pub min_data_rate: u64,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Bytes of memory all SMTP and LMTP transactions together may hold for message data
    /// (each message byte counts `smtp::memory::FACTOR` times); past it, 452 4.3.1.
    pub message_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_command_line: 2048,
            max_data_line: 65536,
            max_connections: 10_000,
            max_connections_per_source: 20,
            reserved_percent: 10,
            max_errors: 20,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            max_session_time: Duration::from_secs(30 * 60),
            min_data_rate: 500,
            shutdown_grace: Duration::from_secs(30),
            message_memory: 256 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// (key within `[limits]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let checks: [(&str, bool, &str); 8] = [
            ("max_message_size", self.max_message_size >= 1024, "must be at least 1024 bytes"),
            ("max_recipients", self.max_recipients >= 1, "must be at least 1"),
            ("max_command_line", self.max_command_line >= 512, "must be at least 512 (RFC 5321 §4.5.3.1.4)"),
            ("max_data_line", self.max_data_line >= 1000, "must be at least 1000 (RFC 5321 §4.5.3.1.6)"),
            ("max_connections", self.max_connections >= 1, "must be at least 1"),
            ("max_connections_per_source", self.max_connections_per_source >= 1, "must be at least 1"),
            ("max_errors", self.max_errors >= 1, "must be at least 1"),
            ("reserved_percent", self.reserved_percent <= 50, "must be between 0 and 50 (percent of each connection limit)"),
        ];
        for (key, ok, reason) in checks {
            if !ok {
                return Err((key.into(), reason.into()));
            }
        }
        let largest = (self.max_message_size as u64).saturating_mul(super::memory::FACTOR);
        if self.message_memory < largest {
            let reason = format!(
                "must be at least max_message_size × {} ({largest} bytes), so that the largest message allowed can be received",
                super::memory::FACTOR
            );
            return Err(("message_memory".into(), reason));
        }
        for (key, value) in
            [("command_timeout", self.command_timeout), ("data_timeout", self.data_timeout), ("max_session_time", self.max_session_time)]
        {
            if value < Duration::from_secs(1) {
                return Err((key.into(), "must be at least 1s".into()));
            }
        }
        Ok(())
    }
}

impl LmtpConfig {
    /// (key within `[lmtp]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.max_connections_per_source == Some(0) {
            return Err(("max_connections_per_source".into(), "must be at least 1".into()));
        }
        if self.listen.iter().any(|addr| addr.port() == 25) {
            return Err(("listen".into(), "LMTP must never listen on port 25 (RFC 2033 §5)".into()));
        }
        Ok(())
    }
}
