//! The `[outbox]` section: where the smarthost is, how to talk to it, and how often to retry.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// How the connection to the smarthost is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (a smarthost on loopback or a trusted network).
    #[default]
    None,
    /// STARTTLS is required: a smarthost that does not offer it is an error, never a fallback.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// The longest undo window: a reply held longer than this is a draft, not a sent reply.
pub const MAX_UNDO_SECONDS: u64 = 600;

/// The `[outbox]` section of the configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// `host:port` (`[v6]:port`); the port defaults to 25, or 465 with `tls = "implicit"`.
    pub smarthost: String,
    pub tls: TlsMode,
    /// Accept any certificate from the smarthost (testing only).
    pub allow_invalid_certs: bool,
    /// SMTP AUTH PLAIN; only over TLS.
    pub username: Option<String>,
    pub password: Option<String>,
    /// EHLO name; default: `server.hostname`.
    pub hello: Option<String>,
    /// Attempts before a row is given up (`failed`).
    pub max_attempts: u32,
    /// Delay after the first failed attempt; doubles with every further one...
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// ...up to this.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// At most one acknowledgement per sender within this window (enforced where rows are written).
    #[serde(with = "humantime_serde")]
    pub ack_window: Duration,
    /// Limit for connecting (greeting, EHLO, TLS, AUTH) and, separately, for sending one message.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often the worker looks for new rows when none is due sooner.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Rows taken per pass (sent over one connection).
    pub batch: usize,
    /// Seconds a staff reply waits in the outbox before it may be sent, during which its author
    /// can take it back (0: sent at once).
    pub undo_seconds: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            smarthost: "127.0.0.1:25".into(),
            tls: TlsMode::None,
            allow_invalid_certs: false,
            username: None,
            password: None,
            hello: None,
            max_attempts: 20,
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            ack_window: Duration::from_secs(3600),
            timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            batch: 16,
            undo_seconds: 20,
        }
    }
}

impl fmt::Debug for OutboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxConfig")
            .field("smarthost", &self.smarthost)
            .field("tls", &self.tls)
            .field("allow_invalid_certs", &self.allow_invalid_certs)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("hello", &self.hello)
            .field("max_attempts", &self.max_attempts)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("ack_window", &self.ack_window)
            .field("timeout", &self.timeout)
            .field("poll_interval", &self.poll_interval)
            .field("batch", &self.batch)
            .field("undo_seconds", &self.undo_seconds)
            .finish()
    }
}

impl OutboxConfig {
    /// Semantic checks, as `(key, reason)` for the config loader to turn into a located error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.smarthost("localhost").map_err(|reason| ("outbox.smarthost", reason))?;
        if self.max_attempts == 0 {
            return Err(("outbox.max_attempts", "must be at least 1".into()));
        }
        if self.retry_initial < Duration::from_millis(10) {
            return Err(("outbox.retry_initial", "must be at least 10ms".into()));
        }
        if self.retry_max < self.retry_initial {
            return Err(("outbox.retry_max", "must not be shorter than outbox.retry_initial".into()));
        }
        if self.timeout < Duration::from_secs(1) {
            return Err(("outbox.timeout", "must be at least 1s".into()));
        }
        if self.poll_interval < Duration::from_millis(10) || self.poll_interval > Duration::from_secs(3600) {
            return Err(("outbox.poll_interval", "must be between 10ms and 1h".into()));
        }
        if self.batch == 0 || self.batch > 1000 {
            return Err(("outbox.batch", "must be between 1 and 1000".into()));
        }
        if self.undo_seconds > MAX_UNDO_SECONDS {
            return Err(("outbox.undo_seconds", format!("must be between 0 and {MAX_UNDO_SECONDS}")));
        }
        if self.username.is_some() != self.password.is_some() {
            let key = if self.username.is_some() { "outbox.password" } else { "outbox.username" };
            return Err((key, "outbox.username and outbox.password must be given together".into()));
        }
        if self.username.is_some() && self.tls == TlsMode::None {
            return Err(("outbox.tls", "a password is never sent without TLS: set tls = \"starttls\" or \"implicit\"".into()));
        }
        if let Some(hello) = &self.hello
            && (hello.is_empty()
                || !hello.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'[' || b == b']' || b == b':'))
        {
            return Err(("outbox.hello", "must be a domain name or an address literal".into()));
        }
        Ok(())
    }

    /// The connection settings, with `default_hello` (normally `server.hostname`) when `hello` is unset.
    pub fn smarthost(&self, default_hello: &str) -> Result<SmarthostConfig, String> {
        let spec = self.smarthost.trim();
        let default_port = if self.tls == TlsMode::Implicit { 465 } else { 25 };
        let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
            // [IPv6]:port or [IPv6]
            let (inside, after) = rest.split_once(']').ok_or_else(|| format!("{spec:?}: missing ']'"))?;
            let port = match after {
                "" => default_port,
                p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(|| format!("{spec:?}: bad port"))?,
            };
            (format!("[{inside}]"), port)
        } else {
            match spec.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), port.parse::<u16>().map_err(|_| format!("{spec:?}: bad port"))?),
                None => (spec.to_string(), default_port),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) || port == 0 {
            return Err(format!("{spec:?}: expected host:port"));
        }
        Ok(SmarthostConfig {
            host,
            port,
            tls: self.tls,
            allow_invalid_certs: self.allow_invalid_certs,
            username: self.username.clone(),
            password: self.password.clone(),
            hello: self.hello.clone().unwrap_or_else(|| default_hello.to_string()),
        })
    }

    /// Delay before the next attempt after `failed_attempts` failures (≥ 1): exponential from
    /// `retry_initial`, capped at `retry_max`, minus up to 10 % jitter so that rows which failed
    /// together (smarthost down) do not all come back in the same instant.
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        let exp = failed_attempts.saturating_sub(1).min(32);
        let base = self.retry_initial.saturating_mul(1u32 << exp.min(31)).min(self.retry_max);
        let mut r = [0u8; 2];
        let jitter = if aws_lc_rs::rand::fill(&mut r).is_ok() { u16::from_le_bytes(r) as f64 / u16::MAX as f64 } else { 0.5 };
        base.mul_f64(1.0 - 0.1 * jitter)
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct SmarthostConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub allow_invalid_certs: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub hello: String,
}

impl fmt::Debug for SmarthostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmarthostConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("allow_invalid_certs", &self.allow_invalid_certs)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("hello", &self.hello)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_parsing() {
        let c: OutboxConfig = toml::from_str("").unwrap();
        assert_eq!(c.smarthost, "127.0.0.1:25");
        assert_eq!(c.tls, TlsMode::None);
        assert_eq!(c.max_attempts, 20);
        assert_eq!(c.retry_initial, Duration::from_secs(30));
        assert_eq!(c.retry_max, Duration::from_secs(3600));
        assert_eq!(c.ack_window, Duration::from_secs(3600));
        assert_eq!(c.undo_seconds, 20);
        assert!(c.validate().is_ok());

        let c: OutboxConfig = toml::from_str(
            "smarthost = \"relay.example.net:587\"\ntls = \"starttls\"\nusername = \"u\"\npassword = \"secret\"\nmax_attempts = 5\nretry_initial = \"200ms\"\nretry_max = \"10m\"\nack_window = \"2h\"\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        let s = c.smarthost("mx.example.com").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls, s.hello.as_str()), ("relay.example.net", 587, TlsMode::Starttls, "mx.example.com"));
        assert_eq!(c.retry_initial, Duration::from_millis(200));
        assert_eq!(c.ack_window, Duration::from_secs(7200));
        assert!(!format!("{c:?} {s:?}").contains("secret"), "passwords are redacted in Debug");

        assert!(toml::from_str::<OutboxConfig>("smarthost = \"a:25\"\nbogus = 1\n").unwrap_err().to_string().contains("bogus"));
        assert!(toml::from_str::<OutboxConfig>("tls = \"ssl\"\n").is_err());
    }

    #[test]
    fn config_validation() {
        let with = |f: &dyn Fn(&mut OutboxConfig)| {
            let mut c = OutboxConfig::default();
            f(&mut c);
            c.validate().err().map(|(key, _)| key)
        };
        assert_eq!(with(&|c| c.max_attempts = 0), Some("outbox.max_attempts"));
        assert_eq!(with(&|c| c.retry_max = Duration::from_secs(1)), Some("outbox.retry_max"));
        assert_eq!(with(&|c| c.smarthost = "host:port".into()), Some("outbox.smarthost"));
        assert_eq!(with(&|c| c.smarthost = "".into()), Some("outbox.smarthost"));
        assert_eq!(with(&|c| c.username = Some("u".into())), Some("outbox.password"));
        assert_eq!(
            with(&|c| {
                c.username = Some("u".into());
                c.password = Some("p".into());
            }),
            Some("outbox.tls"),
            "no password over plain text"
        );
        assert_eq!(with(&|c| c.batch = 0), Some("outbox.batch"));
        assert_eq!(with(&|c| c.undo_seconds = 0), None, "0 turns the undo window off");
        assert_eq!(with(&|c| c.undo_seconds = MAX_UNDO_SECONDS), None);
        assert_eq!(with(&|c| c.undo_seconds = MAX_UNDO_SECONDS + 1), Some("outbox.undo_seconds"));
    }

    #[test]
    fn smarthost_forms() {
        let mut c = OutboxConfig { smarthost: "relay.example.net".into(), ..Default::default() };
        assert_eq!(c.smarthost("h").unwrap().port, 25);
        c.tls = TlsMode::Implicit;
        assert_eq!(c.smarthost("h").unwrap().port, 465);
        c.smarthost = "[::1]:2525".into();
        let s = c.smarthost("h").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("[::1]", 2525));
        c.hello = Some("out.example.com".into());
        assert_eq!(c.smarthost("h").unwrap().hello, "out.example.com");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let c = OutboxConfig { retry_initial: Duration::from_secs(30), retry_max: Duration::from_secs(3600), ..Default::default() };
        let within = |d: Duration, nominal: u64| d <= Duration::from_secs(nominal) && d >= Duration::from_secs(nominal).mul_f64(0.9);
        assert!(within(c.backoff(1), 30));
        assert!(within(c.backoff(2), 60));
        assert!(within(c.backoff(3), 120));
        assert!(within(c.backoff(8), 3600));
        assert!(within(c.backoff(40), 3600));
        assert!(within(c.backoff(u32::MAX), 3600));
    }
}
