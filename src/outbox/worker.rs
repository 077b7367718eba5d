//! The outbox worker: delivers sealed outgoing mail through the smarthost, with retries.
//!
//! Rows are written by the intake in the same transaction as the registration they belong to, so
//! nothing is lost by a crash. The worker claims the due rows (`pending` → `sending` in one
//! statement, conditional on their status, with a lease in `next_attempt_at`), decrypts them,
//! sends them over one connection with mail-send and marks them `sent`; a temporary failure
//! schedules another attempt with exponential backoff, a permanent one (5xx) or the last allowed
//! attempt marks the row `failed`. Outcomes are committed together (at least every second), not
//! one fsync per row. Rows whose worker died while sending become due again when the lease runs
//! out (at-least-once after a crash; never twice in normal operation).
//!
//! Logs name rows by id and failures by kind (`RCPT: 550 5.1.1`): never an address or content.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::intake::normalize_address;
use crate::shutdown::{Phase, Shutdown};
use crate::store::crypto::{CryptoError, DataKey, KeyRing, aad};
use crate::store::{Store, now_millis};

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

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("sealed mail is malformed: {0}")]
    Format(&'static str),
}

/// One outgoing message in clear: envelope sender (empty = null reverse-path `<>`), envelope
/// recipients, and the RFC 5322 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl fmt::Debug for Mail {
    // Addresses and content stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail").field("recipients", &self.to.len()).field("size", &self.data.len()).finish_non_exhaustive()
    }
}

/// The JSON inside `mail_ct`.
#[derive(Serialize, Deserialize)]
struct MailJson<'a> {
    from: Cow<'a, str>,
    to: Vec<Cow<'a, str>>,
    data: String,
}

/// A fresh row identity: time-ordered prefix, random rest (the same scheme as messages).
pub fn new_uid() -> Result<[u8; 16], CryptoError> {
    let mut uid = [0u8; 16];
    uid[..8].copy_from_slice(&chrono::Utc::now().timestamp_micros().to_be_bytes());
    aws_lc_rs::rand::fill(&mut uid[8..]).map_err(|_| CryptoError::Random)?;
    Ok(uid)
}

/// Blind index of a recipient for the outbox's `rcpt_idx` (same kind and normalisation as the
/// messages' `sender_idx`, so "one acknowledgement per sender per window" can compare them).
pub fn rcpt_index(keys: &KeyRing, address: &str) -> Vec<u8> {
    keys.blind_index("address", normalize_address(address).as_bytes())
}

/// Seals one outgoing mail for the row `uid`: returns `(key_id, wrapped_key, mail_ct)`.
pub fn seal_mail<S: AsRef<str>>(
    keys: &KeyRing,
    uid: &[u8],
    from: &str,
    to: &[S],
    data: &[u8],
) -> Result<(u32, Vec<u8>, Vec<u8>), CryptoError> {
    let json = MailJson { from: Cow::Borrowed(from), to: to.iter().map(|t| Cow::Borrowed(t.as_ref())).collect(), data: B64.encode(data) };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&json).expect("strings always serialise"));
    let data_key = DataKey::generate()?;
    let mail_ct = data_key.seal(&aad("outbox", uid), &plain)?;
    let (key_id, wrapped_key) = keys.wrap(&data_key, &aad("dek", uid))?;
    Ok((key_id, wrapped_key, mail_ct))
}

/// One outbox row as the worker reads it.
#[derive(Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub attempts: i64,
    pub uid: Vec<u8>,
    pub key_id: i64,
    pub wrapped_key: Vec<u8>,
    pub mail_ct: Vec<u8>,
}

/// Opens a row sealed by [`seal_mail`].
pub fn open_mail(keys: &KeyRing, row: &OutboxRow) -> Result<Mail, OutboxError> {
    let key_id = u32::try_from(row.key_id).map_err(|_| OutboxError::Format("key id out of range"))?;
    let data_key = keys.unwrap(key_id, &row.wrapped_key, &aad("dek", &row.uid))?;
    let plain = zeroize::Zeroizing::new(data_key.open(&aad("outbox", &row.uid), &row.mail_ct)?);
    let json: MailJson = serde_json::from_slice(&plain).map_err(|_| OutboxError::Format("not the expected JSON"))?;
    let data = B64.decode(json.data.as_bytes()).map_err(|_| OutboxError::Format("data is not base64"))?;
    Ok(Mail { from: json.from.into_owned(), to: json.to.into_iter().map(Cow::into_owned).collect(), data })
}

/// Inserts a due row through the pool (tests, tools). The intake writes its rows itself, in the
/// transaction of the registration, with [`seal_mail`] and [`rcpt_index`].
pub async fn insert<S: AsRef<str>>(
    store: &Store,
    message_id: Option<i64>,
    kind: &str,
    from: &str,
    to: &[S],
    data: &[u8],
) -> Result<i64, OutboxError> {
    let uid = new_uid()?;
    let (key_id, wrapped_key, mail_ct) = seal_mail(&store.keys, &uid, from, to, data)?;
    let rcpt_idx = rcpt_index(&store.keys, to.first().map_or("", |t| t.as_ref()));
    let now = now_millis();
    let id = sqlx::query(
        "INSERT INTO outbox (message_id, kind, rcpt_idx, created_at, next_attempt_at, attempts, status, uid, key_id, wrapped_key, mail_ct)
         VALUES (?, ?, ?, ?, ?, 0, 'pending', ?, ?, ?, ?)",
    )
    .bind(message_id)
    .bind(kind)
    .bind(rcpt_idx)
    .bind(now)
    .bind(now)
    .bind(&uid[..])
    .bind(key_id as i64)
    .bind(wrapped_key)
    .bind(mail_ct)
    .execute(&store.pool)
    .await?
    .last_insert_rowid();
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------

/// Why an attempt failed: a short kind with SMTP codes, never addresses or reply text (which
/// often quotes the address).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// Try again later.
    Temporary(String),
    /// The smarthost refused this message for good (5xx in the transaction).
    Permanent(String),
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::Temporary(t) | Failure::Permanent(t) => t,
        }
    }
}

fn reply_kind(step: &str, reply: &smtp_proto::Response<String>) -> String {
    let esc = if reply.esc[0] != 0 { format!(" {}.{}.{}", reply.esc[0], reply.esc[1], reply.esc[2]) } else { String::new() };
    format!("{step}: {}{esc}", reply.code)
}

/// Describes a mail-send error without anything the peer said in free text.
fn error_kind(step: &str, e: &mail_send::Error) -> String {
    match e {
        mail_send::Error::Io(io) => format!("{step}: {}", io.kind()),
        mail_send::Error::Tls(_) => format!("{step}: TLS handshake failed"),
        mail_send::Error::Base64(_) | mail_send::Error::Auth(_) => format!("{step}: authentication exchange failed"),
        mail_send::Error::UnparseableReply => format!("{step}: connection closed or unparseable reply"),
        mail_send::Error::UnexpectedReply(reply) => reply_kind(step, reply),
        mail_send::Error::AuthenticationFailed(reply) => reply_kind(&format!("{step} AUTH"), reply),
        mail_send::Error::InvalidTLSName => format!("{step}: invalid TLS name for the smarthost"),
        mail_send::Error::MissingCredentials => format!("{step}: missing credentials"),
        mail_send::Error::MissingMailFrom | mail_send::Error::MissingRcptTo => format!("{step}: incomplete envelope"),
        mail_send::Error::UnsupportedAuthMechanism => format!("{step}: no supported AUTH mechanism"),
        mail_send::Error::Timeout => format!("{step}: timeout"),
        mail_send::Error::MissingStartTls => format!("{step}: smarthost does not offer STARTTLS"),
    }
}

/// A failed step inside the transaction: permanent for a 5xx, temporary otherwise. `broken` says
/// the connection cannot be reused.
fn transaction_failure(step: &str, e: &mail_send::Error) -> (Failure, bool) {
    match e {
        mail_send::Error::UnexpectedReply(reply) if (500..600).contains(&reply.code) => {
            (Failure::Permanent(reply_kind(step, reply)), false)
        }
        mail_send::Error::UnexpectedReply(reply) if (400..500).contains(&reply.code) => {
            (Failure::Temporary(reply_kind(step, reply)), false)
        }
        other => (Failure::Temporary(error_kind(step, other)), true),
    }
}

/// The bytes as mail-send should get them: CRLF line ends, no final CRLF (it appends
/// `CRLF . CRLF` itself, which would add an empty line), and a leading dot stuffed (it only
/// stuffs dots that follow a line end).
fn wire_data(data: &[u8]) -> Cow<'_, [u8]> {
    let needs_crlf = data
        .iter()
        .enumerate()
        .any(|(i, b)| (*b == b'\n' && (i == 0 || data[i - 1] != b'\r')) || (*b == b'\r' && data.get(i + 1) != Some(&b'\n')));
    let mut out: Cow<[u8]> = if needs_crlf {
        let mut v = Vec::with_capacity(data.len() + data.len() / 32);
        let mut i = 0;
        while i < data.len() {
            match data[i] {
                b'\r' if data.get(i + 1) == Some(&b'\n') => {
                    v.extend_from_slice(b"\r\n");
                    i += 1;
                }
                b'\r' | b'\n' => v.extend_from_slice(b"\r\n"),
                b => v.push(b),
            }
            i += 1;
        }
        Cow::Owned(v)
    } else {
        Cow::Borrowed(data)
    };
    if out.ends_with(b"\r\n") {
        match &mut out {
            Cow::Borrowed(b) => *b = &b[..b.len() - 2],
            Cow::Owned(v) => v.truncate(v.len() - 2),
        }
    }
    if out.first() == Some(&b'.') {
        let mut v = Vec::with_capacity(out.len() + 1);
        v.push(b'.');
        v.extend_from_slice(&out);
        out = Cow::Owned(v);
    }
    out
}

enum Connection {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

/// The outcome of one delivery.
enum Delivery {
    /// Every recipient accepted the message.
    Sent,
    /// Sent to some recipients; the others were refused permanently (text says which codes).
    Partial(String),
}

struct Sender {
    smarthost: SmarthostConfig,
    builder: SmtpClientBuilder<String>,
    timeout: Duration,
}

impl Sender {
    fn new(smarthost: SmarthostConfig, timeout: Duration) -> Result<Sender, String> {
        let mut builder = match smarthost.tls {
            TlsMode::None => SmtpClientBuilder::new_with_tls_connector(smarthost.host.clone(), smarthost.port, unused_tls_connector()?),
            TlsMode::Starttls | TlsMode::Implicit => {
                let builder = SmtpClientBuilder::new(smarthost.host.clone(), smarthost.port)?;
                if smarthost.allow_invalid_certs { builder.allow_invalid_certs() } else { builder }
            }
        };
        builder = builder.implicit_tls(smarthost.tls == TlsMode::Implicit).helo_host(smarthost.hello.clone()).timeout(timeout);
        if let (Some(username), Some(secret)) = (&smarthost.username, &smarthost.password) {
            builder = builder.credentials(Credentials::Plain { username: username.clone(), secret: secret.clone() });
        }
        Ok(Sender { smarthost, builder, timeout })
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        // mail-send does not bound the greeting read of a plain connection; bound everything here.
        let attempt = async {
            match self.smarthost.tls {
                TlsMode::None => self.builder.connect_plain().await.map(Connection::Plain),
                TlsMode::Starttls | TlsMode::Implicit => self.builder.connect().await.map(|c| Connection::Tls(Box::new(c))),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            // Anything going wrong before the transaction is about the smarthost, not the row.
            Ok(Err(e)) => Err(Failure::Temporary(error_kind("connect", &e))),
            Err(_) => Err(Failure::Temporary("connect: timeout".into())),
        }
    }

    /// Sends one message on an open connection; returns whether the connection may be reused.
    async fn send(&self, conn: &mut Connection, mail: &Mail) -> (Result<Delivery, Failure>, bool) {
        let attempt = async {
            match conn {
                Connection::Plain(client) => transact(client, mail).await,
                Connection::Tls(client) => transact(client, mail).await,
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => (Err(Failure::Temporary("send: timeout".into())), false),
        }
    }
}

/// A connector that is never used (plain SMTP), built without touching the platform's trust store.
fn unused_tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// MAIL, RCPT for each recipient, DATA. A 5xx refusal of every recipient, of MAIL or of the data
/// is permanent; a 4xx anywhere makes the whole message wait for another attempt (RSET first).
async fn transact<T: AsyncRead + AsyncWrite + Unpin>(client: &mut SmtpClient<T>, mail: &Mail) -> (Result<Delivery, Failure>, bool) {
    if mail.to.is_empty() {
        return (Err(Failure::Permanent("no recipients".into())), true);
    }
    let mut params = Parameters::new();
    if !mail.from.is_ascii() || mail.to.iter().any(|t| !t.is_ascii()) {
        params.add("SMTPUTF8");
    }
    if let Err(e) = client.mail_from(&mail.from, &params).await {
        return abort(client, transaction_failure("MAIL", &e)).await;
    }
    let none = Parameters::new();
    let mut accepted = 0usize;
    let mut refused: Vec<String> = Vec::new();
    for rcpt in &mail.to {
        match client.rcpt_to(rcpt, &none).await {
            Ok(()) => accepted += 1,
            Err(e) => match transaction_failure("RCPT", &e) {
                (Failure::Permanent(kind), _) => refused.push(kind),
                failure => return abort(client, failure).await,
            },
        }
    }
    if accepted == 0 {
        let kind = refused.first().cloned().unwrap_or_else(|| "RCPT: refused".into());
        return abort(client, (Failure::Permanent(kind), false)).await;
    }
    match client.data(wire_data(&mail.data).as_ref()).await {
        Ok(_) if refused.is_empty() => (Ok(Delivery::Sent), true),
        Ok(_) => (Ok(Delivery::Partial(format!("{} of {} recipients refused ({})", refused.len(), mail.to.len(), refused[0]))), true),
        Err(e) => {
            let (failure, broken) = transaction_failure("DATA", &e);
            // After a reply to the final dot the transaction is over: no RSET needed.
            (Err(failure), !broken)
        }
    }
}

async fn abort<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    (failure, broken): (Failure, bool),
) -> (Result<Delivery, Failure>, bool) {
    let reusable = !broken && client.rset().await.is_ok();
    (Err(failure), reusable)
}

// ---------------------------------------------------------------------------------------------
// The worker loop
// ---------------------------------------------------------------------------------------------

/// Runs until shutdown: takes due rows, delivers them, records the outcome.
pub async fn run(store: Store, config: OutboxConfig, mut shutdown: Shutdown) {
    let smarthost = match config.smarthost(&store.settings.config.server.hostname) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("outbox: smarthost {e}; outgoing mail stays queued");
            return;
        }
    };
    let sender = match Sender::new(smarthost, config.timeout) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("outbox: cannot set up TLS for the smarthost: {e}; outgoing mail stays queued");
            return;
        }
    };
    tracing::info!(smarthost = %format_args!("{}:{}", sender.smarthost.host, sender.smarthost.port), tls = ?sender.smarthost.tls, "outbox worker started");
    let worker = Worker { store, config, sender };
    loop {
        if shutdown.is(Phase::Draining) {
            break;
        }
        let wait = match worker.pass(&shutdown).await {
            Ok(Pass::Stopped) => break,
            Ok(Pass::Done { processed }) => match worker.next_due().await {
                Ok(Some(due)) => {
                    let wait = Duration::from_millis(due.saturating_sub(now_millis()).max(0) as u64).min(worker.config.poll_interval);
                    // Rows due now but not taken (claimed elsewhere meanwhile): do not spin.
                    if processed == 0 && wait.is_zero() { Duration::from_millis(50) } else { wait }
                }
                Ok(None) => worker.config.poll_interval,
                Err(e) => {
                    tracing::warn!("outbox: {e}");
                    worker.config.poll_interval
                }
            },
            Err(e) => {
                tracing::warn!("outbox: {e}");
                worker.config.poll_interval
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.reached(Phase::Draining) => break,
        }
    }
    tracing::info!("outbox worker stopped");
}

/// Resolves at a forced shutdown (sends in progress are abandoned then, not at draining).
async fn forced(shutdown: &Shutdown) {
    shutdown.clone().reached(Phase::Forced).await
}

enum Pass {
    Done { processed: usize },
    Stopped,
}

struct Worker {
    store: Store,
    config: OutboxConfig,
    sender: Sender,
}

/// What happened to one claimed row, waiting to be written.
struct Outcome {
    id: i64,
    kind: String,
    attempts: i64,
    result: Result<Delivery, Failure>,
}

/// Outcomes are written together (one commit for several rows, not one per row: the outbox shares
/// the database with the intake's writer), at the latest this long after the first of them.
const RECORD_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    /// How long claimed rows stay with this worker before another may take them over (a crash):
    /// enough for one connection and a whole batch of sends.
    fn lease(&self) -> Duration {
        self.config.timeout.saturating_mul(self.config.batch as u32 + 1) + Duration::from_secs(60)
    }

    /// Earliest `next_attempt_at` of any row still to be sent (unix ms).
    async fn next_due(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE status IN ('pending', 'sending')")
            .fetch_one(&self.store.pool)
            .await
    }

    /// One pass: claim the due rows (oldest first, up to `batch`), send them over one
    /// connection, record the outcomes.
    async fn pass(&self, shutdown: &Shutdown) -> Result<Pass, OutboxError> {
        let rows = self.claim().await?;
        let processed = rows.len();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(rows.len());
        let mut first_unrecorded: Option<std::time::Instant> = None;
        let mut conn: Option<Connection> = None;
        // A smarthost that cannot be reached is tried once per pass; the other rows share the failure.
        let mut connect_failure: Option<Failure> = None;
        let mut stopped = false;
        let mut rows = rows.into_iter();
        for row in rows.by_ref() {
            let result = match open_mail(&self.store.keys, &row) {
                Ok(mail) => {
                    if conn.is_none() && connect_failure.is_none() {
                        let connected = tokio::select! {
                            connected = self.sender.connect() => Some(connected),
                            _ = forced(shutdown) => None,
                        };
                        match connected {
                            Some(Ok(c)) => conn = Some(c),
                            Some(Err(f)) => connect_failure = Some(f),
                            None => {
                                self.release(&[row.id]).await?;
                                stopped = true;
                                break;
                            }
                        }
                    }
                    match (conn.as_mut(), &connect_failure) {
                        (Some(c), _) => {
                            let sent = tokio::select! {
                                sent = self.sender.send(c, &mail) => Some(sent),
                                _ = forced(shutdown) => None,
                            };
                            let Some((result, reusable)) = sent else {
                                // Forced shutdown mid-send: give the row back untouched (it may
                                // or may not have gone out; the next start sends it again).
                                self.release(&[row.id]).await?;
                                stopped = true;
                                break;
                            };
                            if !reusable {
                                conn = None;
                            }
                            result
                        }
                        (None, Some(failure)) => Err(failure.clone()),
                        (None, None) => unreachable!("either connected or a connect failure"),
                    }
                }
                // The row can never be sent; keep it (for an operator) but stop trying.
                Err(OutboxError::Db(e)) => return Err(e.into()),
                Err(OutboxError::Crypto(e)) => Err(Failure::Permanent(format!("cannot decrypt: {e}"))),
                Err(OutboxError::Format(what)) => Err(Failure::Permanent(format!("cannot decode: {what}"))),
            };
            outcomes.push(Outcome { id: row.id, kind: row.kind, attempts: row.attempts + 1, result });
            let since = *first_unrecorded.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= RECORD_EVERY {
                self.record(&mut outcomes).await?;
                first_unrecorded = None;
            }
            if shutdown.is(Phase::Draining) {
                stopped = true;
                break;
            }
        }
        // Rows claimed but not tried (shutdown) go back as they were.
        let untried: Vec<i64> = rows.map(|r| r.id).collect();
        if !untried.is_empty() {
            self.release(&untried).await?;
        }
        self.record(&mut outcomes).await?;
        if let Some(Connection::Plain(c)) = conn {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.quit()).await;
        } else if let Some(Connection::Tls(c)) = conn {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.quit()).await;
        }
        Ok(if stopped { Pass::Stopped } else { Pass::Done { processed } })
    }

    /// Takes the due rows for this worker in one statement, conditional on their status, so two
    /// workers never get the same row (SQLite runs it under the write lock; a stale snapshot
    /// fails instead of claiming twice). The lease in `next_attempt_at` hands the rows back if
    /// this worker dies while sending. (PostgreSQL will want `FOR UPDATE SKIP LOCKED` here.)
    async fn claim(&self) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let now = now_millis();
        let lease_until = now + self.lease().as_millis() as i64;
        let rows = sqlx::query(
            "UPDATE outbox SET status = 'sending', next_attempt_at = ?
             WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'sending') AND next_attempt_at <= ?
                          ORDER BY next_attempt_at, id LIMIT ?)
               AND status IN ('pending', 'sending') AND next_attempt_at <= ?
             RETURNING id, kind, attempts, uid, key_id, wrapped_key, mail_ct",
        )
        .bind(lease_until)
        .bind(now)
        .bind(self.config.batch as i64)
        .bind(now)
        .fetch_all(&self.store.pool)
        .await?;
        let mut rows: Vec<OutboxRow> = rows
            .into_iter()
            .map(|r| OutboxRow {
                id: r.get(0),
                kind: r.get(1),
                attempts: r.get(2),
                uid: r.get(3),
                key_id: r.get(4),
                wrapped_key: r.get(5),
                mail_ct: r.get(6),
            })
            .collect();
        // RETURNING comes in no particular order; ids grow with time.
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Hands claimed rows back, due now, without counting an attempt.
    async fn release(&self, ids: &[i64]) -> Result<(), sqlx::Error> {
        let mut tx = self.store.pool.begin_with("BEGIN IMMEDIATE").await?;
        for id in ids {
            sqlx::query("UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE id = ? AND status = 'sending'")
                .bind(now_millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Writes (and drains) the outcomes in one transaction.
    async fn record(&self, outcomes: &mut Vec<Outcome>) -> Result<(), sqlx::Error> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let mut tx = self.store.pool.begin_with("BEGIN IMMEDIATE").await?;
        for o in outcomes.iter() {
            match &o.result {
                Ok(delivery) => {
                    let note = match delivery {
                        Delivery::Sent => None,
                        Delivery::Partial(note) => Some(note.as_str()),
                    };
                    sqlx::query(
                        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = ?, last_error = ? WHERE id = ? AND status = 'sending'",
                    )
                    .bind(now)
                    .bind(o.attempts)
                    .bind(note)
                    .bind(o.id)
                    .execute(&mut *tx)
                    .await?;
                }
                Err(failure) => {
                    let give_up = matches!(failure, Failure::Permanent(_)) || o.attempts >= self.config.max_attempts as i64;
                    let (status, next) = if give_up {
                        ("failed", None)
                    } else {
                        ("pending", Some(now + self.config.backoff(o.attempts as u32).as_millis() as i64))
                    };
                    sqlx::query("UPDATE outbox SET status = ?, attempts = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ? AND status = 'sending'")
                        .bind(status)
                        .bind(o.attempts)
                        .bind(failure.text())
                        .bind(next)
                        .bind(o.id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        for o in outcomes.drain(..) {
            let (id, kind, attempts) = (o.id, o.kind.as_str(), o.attempts);
            match o.result {
                Ok(Delivery::Sent) => tracing::debug!(id, kind, attempts, "outbox: sent"),
                Ok(Delivery::Partial(note)) => tracing::warn!(id, kind, attempts, "outbox: sent, but {note}"),
                Err(failure) if matches!(failure, Failure::Permanent(_)) || attempts >= self.config.max_attempts as i64 => {
                    tracing::warn!(id, kind, attempts, error = failure.text(), "outbox: delivery failed, giving up")
                }
                Err(failure) => tracing::info!(id, kind, attempts, error = failure.text(), "outbox: delivery deferred, will retry"),
            }
        }
        Ok(())
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

    #[test]
    fn seal_and_open_round_trip_bound_to_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::load_or_create(&dir.path().join("master.key")).unwrap();
        let uid = new_uid().unwrap();
        let data = b"From: support@example.com\r\nTo: jane@customer.example\r\nSubject: hi\r\n\r\nbody\r\n";
        let (key_id, wrapped_key, mail_ct) = seal_mail(&keys, &uid, "", &["jane@customer.example"], data).unwrap();
        assert!(!mail_ct.windows(8).any(|w| w == b"customer"), "recipient is not in clear");
        let row = OutboxRow { id: 1, kind: "ack".into(), attempts: 0, uid: uid.to_vec(), key_id: key_id as i64, wrapped_key, mail_ct };
        let mail = open_mail(&keys, &row).unwrap();
        assert_eq!(mail, Mail { from: String::new(), to: vec!["jane@customer.example".into()], data: data.to_vec() });
        assert!(!format!("{mail:?}").contains("customer"), "Debug hides addresses");

        let mut other = row.clone();
        other.uid[15] ^= 1;
        assert!(matches!(open_mail(&keys, &other), Err(OutboxError::Crypto(_))), "a ciphertext moved to another row fails");
        assert_eq!(rcpt_index(&keys, " Jane@Customer.Example "), keys.blind_index("address", b"jane@customer.example"));
    }

    #[test]
    fn wire_data_normalises_for_mail_send() {
        assert_eq!(wire_data(b"a\r\nb\r\n").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b"a\nb\n").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b"a\rb").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b"a\r\nb").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b".x\r\n").as_ref(), b"..x");
        assert!(matches!(wire_data(b"a\r\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn failure_kinds_carry_codes_not_text() {
        let reply = smtp_proto::Response { code: 550, esc: [5, 1, 1], message: "<jane@customer.example>: no such user".to_string() };
        let (failure, broken) = transaction_failure("RCPT", &mail_send::Error::UnexpectedReply(reply));
        assert_eq!(failure, Failure::Permanent("RCPT: 550 5.1.1".into()));
        assert!(!broken);
        let reply = smtp_proto::Response { code: 451, esc: [0, 0, 0], message: "try later jane@customer.example".to_string() };
        assert_eq!(transaction_failure("DATA", &mail_send::Error::UnexpectedReply(reply)).0, Failure::Temporary("DATA: 451".into()));
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(error_kind("connect", &mail_send::Error::Io(io)), "connect: connection refused");
    }
}
