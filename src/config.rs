//! Configuration: one TOML file, validated completely at start.
//!
//! Every error names the file, the line and the key (`deploy/mailroom.toml:42: limits.max_recipients:
//! must be at least 1`), because an operator fixing a config at 3 a.m. should not have to guess.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::intake::regnum::RegFormat;
use crate::intake::rules::{CategoryConfig, RuleConfig, RuleSet};
use crate::intake::sla::{Calendar, SlaConfig};

/// The demo configuration doubles as the embedded default, so the two never drift apart.
pub const DEFAULT_CONFIG: &str = include_str!("../deploy/mailroom.toml");
pub const DEFAULT_CONFIG_NAME: &str = "<embedded deploy/mailroom.toml>";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default = "ListenerConfig::default_smtp")]
    pub smtp: ListenerConfig,
    #[serde(default)]
    pub lmtp: LmtpConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub registration: RegistrationConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub mail: MailConfig,
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    #[serde(default)]
    pub categories: Vec<CategoryConfig>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub sla: SlaConfig,
    #[serde(default)]
    pub intake: IntakeConfig,
    #[serde(default)]
    pub authentication: AuthenticationConfig,
    /// Outgoing mail through a smarthost. Without this section nothing is sent, so nothing is
    /// acknowledged.
    pub outbox: Option<crate::outbox::OutboxConfig>,
    /// The acknowledgement text ({number}, {subject}, {due}, {queue}).
    #[serde(default)]
    pub acknowledgement: crate::outbox::AckTemplate,
    /// The staff IMAP view. Without this section there is no IMAP listener.
    #[serde(default)]
    pub imap: ImapConfig,
    /// The staff HTTP API. Without this section there is no HTTP listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// Logins, sessions and throttling (IMAP and HTTP alike).
    #[serde(default)]
    pub access: AccessConfig,
    /// Roles created on first start when the database does not have them yet (afterwards the
    /// database, managed with `mailroom role …`, is what counts).
    #[serde(default)]
    pub roles: Vec<RoleConfig>,
}

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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: Vec<SocketAddr>,
    /// Serve HTTPS with the [tls] certificate. Plain HTTP is only allowed on loopback addresses
    /// (passwords never cross a network in clear).
    pub tls: bool,
    /// Largest request body (JSON actions, replies).
    pub max_body: usize,
    /// Per-request time limit.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Concurrent HTTP connections over all HTTP listeners.
    pub max_connections: usize,
    /// Concurrent HTTP connections from one address (IPv6: one /64); a browser opens about six.
    pub max_connections_per_source: usize,
    /// How long a connection may take to send a request's headers, counted from connect or from
    /// the previous response (so idle keep-alive connections and silent ones are closed).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: vec![],
            tls: false,
            max_body: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: 1000,
            max_connections_per_source: 100,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// A session (cookie or bearer token) ends this long after login, whatever happens.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// … or after this long without use.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// Delay before answering a failed login; doubles with each further failure (per user and
    /// per source address) up to `max_failure_delay`.
    #[serde(with = "humantime_serde")]
    pub failure_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_failure_delay: Duration,
    /// After this many consecutive failures the user (or the source address) is locked out …
    pub max_failures: u32,
    /// … for this long. An officer can unlock earlier with `mailroom user unlock`.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// Password checks running at once (argon2id takes 19 MiB each); 0 = automatic: 4 per core,
    /// together at most a quarter of the memory available at start.
    pub max_concurrent_logins: usize,
    /// How long a login waits for a free check before it is told to try again later.
    #[serde(with = "humantime_serde")]
    pub login_queue_timeout: Duration,
    /// How long a one-time enrolment code (new account, password reset) stays valid.
    #[serde(with = "humantime_serde")]
    pub enrolment_lifetime: Duration,
    /// Whether a change that gives an account read on a queue waits for a second person.
    pub grant_approval: GrantApproval,
}

/// `[access] grant_approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantApproval {
    /// Another security officer, or a supervisor of every queue concerned, must approve.
    #[default]
    SecondPerson,
    /// Officers' changes apply at once (one-person organisations; a warning is logged at start).
    None,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(12 * 3600),
            session_idle: Duration::from_secs(3600),
            failure_delay: Duration::from_millis(250),
            max_failure_delay: Duration::from_secs(4),
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            max_concurrent_logins: 0,
            login_queue_timeout: Duration::from_secs(5),
            enrolment_lifetime: Duration::from_secs(72 * 3600),
            grant_approval: GrantApproval::SecondPerson,
        }
    }
}

/// A role seeded from the config: `grants = { support = ["read", "act"] }`, queue `*` = all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub grants: std::collections::BTreeMap<String, Vec<String>>,
}

/// SPF/DKIM/DMARC checks of incoming mail (the customer tier counts only for authenticated senders).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticationConfig {
    /// "dns": check with the system resolver; "off": no checks (every sender counts as unverified).
    pub verify: String,
    /// A file of recorded DNS answers to use instead of the network (tests, air-gapped sites).
    pub records: Option<PathBuf>,
    /// Upper bound for the checks of one message; past it the results are temperror.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AuthenticationConfig {
    fn default() -> Self {
        Self { verify: "dns".into(), records: None, timeout: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Acknowledge new messages unless a rule says otherwise (loop-safety rules always apply).
    pub acknowledge: bool,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self { acknowledge: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub hostname: String,
    /// Threads running the sessions. Default: one per core but one, which is left to the
    /// group-commit writer (the serial step every message waits for) and the kernel.
    pub worker_threads: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { hostname: "localhost".into(), worker_threads: None }
    }
}

impl ServerConfig {
    pub fn session_threads(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// An empty list disables the protocol.
    pub listen: Vec<SocketAddr>,
}

impl ListenerConfig {
    fn default_smtp() -> Self {
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    pub format: String,
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self { format: "MR-{year}-{seq:06}-{check}".into(), duplicate_window: Duration::from_secs(48 * 3600) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub database: PathBuf,
    pub master_key_file: PathBuf,
    pub max_batch: usize,
    /// Refuse new mail (451, senders retry) once the database file would exceed this many bytes,
    /// instead of filling the disk.
    pub max_database_size: Option<u64>,
    /// "lz4" (default) or "none": compress each message before encrypting it.
    pub compression: crate::store::codec::Compression,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database: "mailroom.db".into(),
            master_key_file: "master.key".into(),
            max_batch: 256,
            max_database_size: None,
            compression: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub domains: Vec<String>,
    pub recipient_delimiter: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Mail that no address routes more specifically (postmaster) goes here; at most one queue
    /// is the default, otherwise the first queue is.
    #[serde(default)]
    pub default: bool,
    /// Acknowledgement text for this queue (wins over the global one).
    pub acknowledgement: Option<crate::outbox::AckTemplate>,
}

/// A config error that points at the offending place.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {key}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub reason: String,
}

/// The loaded configuration plus what was derived from it once, at start.
#[derive(Clone)]
pub struct Settings {
    pub config: Config,
    pub source: String,
    pub data_dir: PathBuf,
    pub reg_format: RegFormat,
    /// Lower-cased accepted domains.
    pub domains: BTreeSet<String>,
    /// Lower-cased address → queue name.
    pub addresses: HashMap<String, String>,
    pub rules: std::sync::Arc<RuleSet>,
    pub calendar: std::sync::Arc<Calendar>,
    /// Every address of ours, lower-cased: never acknowledged (no loops between our own queues).
    pub own_addresses: std::collections::HashSet<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("source", &self.source)
            .field("data_dir", &self.data_dir)
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn load(config_file: Option<&Path>, data_dir: &Path) -> Result<Settings, ConfigError> {
        let (name, text) = match config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                    file: path.display().to_string(),
                    line: 0,
                    key: "-".into(),
                    reason: format!("cannot read: {e}"),
                })?;
                (path.display().to_string(), text)
            }
            None => (DEFAULT_CONFIG_NAME.to_string(), DEFAULT_CONFIG.to_string()),
        };
        Self::from_str(&name, &text, data_dir)
    }

    pub fn from_str(name: &str, text: &str, data_dir: &Path) -> Result<Settings, ConfigError> {
        let config = parse(name, text)?;
        validate(name, text, config, data_dir)
    }

    /// Where mail without a more specific queue goes (postmaster): the queue marked `default`,
    /// else the first configured queue.
    pub fn default_queue(&self) -> &str {
        let queues = &self.config.queues;
        queues.iter().find(|q| q.default).or(queues.first()).map_or("inbox", |q| q.name.as_str())
    }

    /// The acknowledgement text for a case: its category's, else its queue's, else the global one.
    pub fn acknowledgement_for(&self, queue: &str, category: Option<&str>) -> &crate::outbox::AckTemplate {
        let by_category =
            category.and_then(|code| self.config.categories.iter().find(|c| c.code == code)).and_then(|c| c.acknowledgement.as_ref());
        let by_queue = self.config.queues.iter().find(|q| q.name == queue).and_then(|q| q.acknowledgement.as_ref());
        by_category.or(by_queue).unwrap_or(&self.config.acknowledgement)
    }

    /// The address a queue is reached at (its first), for the From: of acknowledgements.
    pub fn queue_address(&self, queue: &str) -> Option<&str> {
        self.config.queues.iter().find(|q| q.name == queue).and_then(|q| q.addresses.first()).map(String::as_str)
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.data_dir.join(path) }
    }

    pub fn database_path(&self) -> PathBuf {
        self.resolve(&self.config.storage.database)
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.resolve(&self.config.storage.master_key_file)
    }
}

fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(name, text, "-", &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        toml_error(name, text, &key, e.inner())
    })
}

fn toml_error(name: &str, text: &str, key: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
    // toml's message is the reason; its own rendering repeats the location, so keep the first line.
    let reason = e.message().lines().next().unwrap_or("invalid").to_string();
    ConfigError { file: name.into(), line, key: if key == "." { "-".into() } else { key.into() }, reason }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// Finds the line of a dotted key path such as `queues[1].addresses[0]` (best effort: the deepest
/// part of the path that exists), so semantic errors point at the same place as syntax errors.
fn locate(text: &str, path: &str) -> usize {
    let Ok(doc) = toml_edit::Document::parse(text) else { return 0 };
    let mut item = doc.as_item();
    let mut line = 0;
    for part in path.split(['.', '[']).map(|p| p.trim_end_matches(']')).filter(|p| !p.is_empty()) {
        let next = match part.parse::<usize>() {
            Ok(index) => item.get(index),
            Err(_) => item.get(part),
        };
        let Some(next) = next else { break };
        item = next;
        if let Some(span) = item.span() {
            line = line_of(text, span.start);
        }
    }
    line
}

/// The connection limits of every listener: (key, reason) for the first one that is wrong.
fn check_connection_limits(config: &Config) -> Result<(), (&'static str, String)> {
    let (limits, imap, http) = (&config.limits, &config.imap, &config.http);
    let at_least_one = [
        ("limits.max_connections_per_source", limits.max_connections_per_source),
        ("imap.max_connections", imap.max_connections),
        ("imap.max_connections_per_source", imap.max_connections_per_source),
        ("imap.max_unauthenticated", imap.max_unauthenticated),
        ("http.max_connections", http.max_connections),
        ("http.max_connections_per_source", http.max_connections_per_source),
        ("lmtp.max_connections_per_source", config.lmtp.max_connections_per_source.unwrap_or(1)),
    ];
    for (key, value) in at_least_one {
        if value == 0 {
            return Err((key, "must be at least 1".into()));
        }
    }
    if limits.reserved_percent > 50 {
        return Err(("limits.reserved_percent", "must be between 0 and 50 (percent of each connection limit)".into()));
    }
    Ok(())
}

fn validate(name: &str, text: &str, config: Config, data_dir: &Path) -> Result<Settings, ConfigError> {
    let err = |key: &str, reason: String| ConfigError { file: name.into(), line: locate(text, key), key: key.into(), reason };

    let hostname = &config.server.hostname;
    if hostname.is_empty() || hostname.len() > 255 || !hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(err("server.hostname", "must be a domain name (letters, digits, '.', '-')".into()));
    }
    if config.server.worker_threads.is_some_and(|n| n == 0 || n > 1024) {
        return Err(err("server.worker_threads", "must be between 1 and 1024".into()));
    }
    let limits = &config.limits;
    let checks: [(&str, bool, &str); 7] = [
        ("limits.max_message_size", limits.max_message_size >= 1024, "must be at least 1024 bytes"),
        ("limits.max_recipients", limits.max_recipients >= 1, "must be at least 1"),
        ("limits.max_command_line", limits.max_command_line >= 512, "must be at least 512 (RFC 5321 §4.5.3.1.4)"),
        ("limits.max_data_line", limits.max_data_line >= 1000, "must be at least 1000 (RFC 5321 §4.5.3.1.6)"),
        ("limits.max_connections", limits.max_connections >= 1, "must be at least 1"),
        ("limits.max_errors", limits.max_errors >= 1, "must be at least 1"),
        ("storage.max_batch", config.storage.max_batch >= 1 && config.storage.max_batch <= 1000, "must be between 1 and 1000"),
    ];
    for (key, ok, reason) in checks {
        if !ok {
            return Err(err(key, reason.into()));
        }
    }
    if config.storage.max_database_size.is_some_and(|size| size < 64 * 1024) {
        return Err(err("storage.max_database_size", "must be at least 65536 bytes".into()));
    }
    for (key, value) in [
        ("limits.command_timeout", limits.command_timeout),
        ("limits.data_timeout", limits.data_timeout),
        ("limits.max_session_time", limits.max_session_time),
        ("imap.prelogin_timeout", config.imap.prelogin_timeout),
        ("http.idle_timeout", config.http.idle_timeout),
    ] {
        if value < Duration::from_secs(1) {
            return Err(err(key, "must be at least 1s".into()));
        }
    }
    check_connection_limits(&config).map_err(|(key, reason)| err(key, reason))?;
    if config.tls.cert.is_some() != config.tls.key.is_some() {
        let key = if config.tls.cert.is_some() { "tls.key" } else { "tls.cert" };
        return Err(err(key, "tls.cert and tls.key must be given together".into()));
    }
    if !config.http.tls
        && let Some(addr) = config.http.listen.iter().find(|a| !a.ip().is_loopback())
    {
        return Err(err(
            "http.listen",
            format!("{addr} is not a loopback address: set http.tls = true (passwords never cross a network in clear)"),
        ));
    }
    if config.imap.max_literal < 1024 {
        return Err(err("imap.max_literal", "must be at least 1024 bytes".into()));
    }
    if config.access.max_failures == 0 {
        return Err(err("access.max_failures", "must be at least 1".into()));
    }
    if config.access.max_concurrent_logins > crate::access::password::MAX_SLOTS {
        let reason = format!("must be at most {} (each check takes 19 MiB; 0 = automatic)", crate::access::password::MAX_SLOTS);
        return Err(err("access.max_concurrent_logins", reason));
    }
    let queue_timeout = config.access.login_queue_timeout;
    if queue_timeout < Duration::from_millis(100) || queue_timeout > Duration::from_secs(60) {
        return Err(err("access.login_queue_timeout", "must be between 100ms and 60s".into()));
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(90 * 86400)).contains(&config.access.enrolment_lifetime) {
        return Err(err("access.enrolment_lifetime", "must be between 1s and 90 days".into()));
    }
    for addr in config.lmtp.listen.iter() {
        if addr.port() == 25 {
            return Err(err("lmtp.listen", "LMTP must never listen on port 25 (RFC 2033 §5)".into()));
        }
    }
    let reg_format = RegFormat::parse(&config.registration.format).map_err(|reason| err("registration.format", reason))?;

    let mut domains = BTreeSet::new();
    for (i, domain) in config.mail.domains.iter().enumerate() {
        let d = domain.trim().to_ascii_lowercase();
        if d.is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
            return Err(err(&format!("mail.domains[{i}]"), format!("not a domain name: {domain:?}")));
        }
        domains.insert(d);
    }
    if let Some(delimiter) = &config.mail.recipient_delimiter
        && (delimiter.chars().count() != 1 || delimiter == "@")
    {
        return Err(err("mail.recipient_delimiter", "must be a single character other than '@'".into()));
    }

    let mut addresses = HashMap::new();
    let mut queue_names = BTreeSet::new();
    for (qi, queue) in config.queues.iter().enumerate() {
        if queue.name.is_empty() || !queue.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(err(&format!("queues[{qi}].name"), "must be letters, digits, '-' or '_'".into()));
        }
        if !queue_names.insert(queue.name.clone()) {
            return Err(err(&format!("queues[{qi}].name"), format!("queue {:?} is defined twice", queue.name)));
        }
        for (ai, address) in queue.addresses.iter().enumerate() {
            let key = format!("queues[{qi}].addresses[{ai}]");
            let lower = address.trim().to_lowercase();
            let Some((_, domain)) = lower.rsplit_once('@') else {
                return Err(err(&key, format!("not an address: {address:?}")));
            };
            if !domains.contains(domain) {
                return Err(err(&key, format!("domain {domain:?} is not in mail.domains")));
            }
            if let Some(other) = addresses.insert(lower.clone(), queue.name.clone()) {
                return Err(err(&key, format!("address {address:?} already feeds queue {other:?}")));
            }
        }
    }

    if config.queues.iter().filter(|q| q.default).count() > 1 {
        let i = config.queues.iter().enumerate().filter(|(_, q)| q.default).nth(1).map(|(i, _)| i).unwrap_or(0);
        return Err(err(&format!("queues[{i}].default"), "only one queue can be the default".into()));
    }
    let mut codes = BTreeSet::new();
    for (ci, category) in config.categories.iter().enumerate() {
        if category.code.is_empty() || !category.code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(&format!("categories[{ci}].code"), "must be letters and digits, e.g. BZZX".into()));
        }
        if !codes.insert(category.code.clone()) {
            return Err(err(&format!("categories[{ci}].code"), format!("category {:?} is defined twice", category.code)));
        }
    }
    if !matches!(config.authentication.verify.as_str(), "dns" | "off") {
        return Err(err("authentication.verify", format!("{:?} is not \"dns\" or \"off\"", config.authentication.verify)));
    }
    if let Some(outbox) = &config.outbox {
        outbox.validate().map_err(|(key, reason)| err(key, reason))?;
    }
    config.acknowledgement.validate().map_err(|reason| err("acknowledgement", reason))?;
    for (qi, queue) in config.queues.iter().enumerate() {
        if let Some(template) = &queue.acknowledgement {
            template.validate().map_err(|reason| err(&format!("queues[{qi}].acknowledgement"), reason))?;
        }
    }
    for (ci, category) in config.categories.iter().enumerate() {
        if let Some(template) = &category.acknowledgement {
            template.validate().map_err(|reason| err(&format!("categories[{ci}].acknowledgement"), reason))?;
        }
    }
    let calendar = Calendar::from_config(&config.sla).map_err(|e| err(e.key, e.reason))?;
    for (ri, role) in config.roles.iter().enumerate() {
        crate::access::check_role_name(&role.name).map_err(|reason| err(&format!("roles[{ri}].name"), reason))?;
        for (queue, permissions) in &role.grants {
            let key = format!("roles[{ri}].grants.{queue}");
            if queue != "*" && !queue_names.contains(queue) {
                return Err(err(&key, format!("role {:?}: no queue is named {queue:?}", role.name)));
            }
            if role.name == crate::access::SECURITY_OFFICER {
                return Err(err(
                    &key,
                    "the security-officer role gets no queue permissions (separation of duties): give the user a second role".into(),
                ));
            }
            for p in permissions {
                p.parse::<crate::access::Permission>().map_err(|reason| err(&key, format!("role {:?}: {reason}", role.name)))?;
            }
        }
    }
    let rules = RuleSet::compile(&config.rules, &queue_names, &codes, &config.sla.timezone).map_err(|e| {
        let key = if e.key.is_empty() { format!("rules[{}]", e.index) } else { format!("rules[{}].{}", e.index, e.key) };
        err(&key, e.reason)
    })?;

    let own_addresses = addresses.keys().cloned().collect();
    Ok(Settings {
        source: name.to_string(),
        data_dir: data_dir.to_path_buf(),
        reg_format,
        domains,
        addresses,
        rules: std::sync::Arc::new(rules),
        calendar: std::sync::Arc::new(calendar),
        own_addresses,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_str("test.toml", text, Path::new("/tmp"))
    }

    #[test]
    fn embedded_default_is_valid() {
        let s = load(DEFAULT_CONFIG).expect("deploy/mailroom.toml must be valid");
        assert!(s.domains.contains("example.com"));
        for a in ["support@example.com", "sales@example.com", "complaints@example.com"] {
            assert!(s.addresses.contains_key(a), "{a} must be accepted by the demo config");
        }
        assert_eq!(s.config.smtp.listen, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(s.config.lmtp.listen, vec!["127.0.0.1:2424".parse().unwrap()]);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = load("[server]\nhostname = \"a.b\"\n\n[limits]\nmax_recipients = 5\nmax_bogus = 3\n").unwrap_err();
        assert_eq!(e.file, "test.toml");
        assert_eq!(e.line, 6, "{e}");
        assert!(e.reason.contains("max_bogus"), "{e}");
        assert!(e.key.starts_with("limits"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = load("[limits]\nmax_recipients = \"many\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert_eq!(e.key, "limits.max_recipients", "{e}");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = load("[server]\nhostname = \n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn semantic_errors_name_line_and_key() {
        let e = load("[limits]\nmax_recipients = 0\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "limits.max_recipients"), "{e}");

        let text = "[mail]\ndomains = [\"example.com\"]\n\n[[queues]]\nname = \"a\"\naddresses = [\"a@example.com\"]\n\n[[queues]]\nname = \"b\"\naddresses = [\"b@example.com\",\n  \"b@foreign.org\"]\n";
        let e = load(text).unwrap_err();
        assert_eq!(e.key, "queues[1].addresses[1]", "{e}");
        assert_eq!(e.line, 11, "{e}");
        assert!(e.reason.contains("foreign.org"), "{e}");

        let e = load("[registration]\nformat = \"MR-{year}\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "registration.format"), "{e}");

        let e = load("[lmtp]\nlisten = [\"127.0.0.1:25\"]\n").unwrap_err();
        assert_eq!(e.key, "lmtp.listen", "{e}");
    }

    #[test]
    fn connection_limits_are_validated_with_line_and_key() {
        let s = load("").unwrap();
        assert_eq!(s.config.limits.max_connections_per_source, 20);
        assert_eq!(s.config.lmtp.max_connections_per_source, None, "LMTP is not capped per source by default");
        let cases = [
            ("[limits]\nmax_connections_per_source = 0\n", "limits.max_connections_per_source"),
            ("[limits]\nreserved_percent = 60\n", "limits.reserved_percent"),
            ("[limits]\nmax_session_time = \"0s\"\n", "limits.max_session_time"),
            ("[lmtp]\nlisten = []\nmax_connections_per_source = 0\n", "lmtp.max_connections_per_source"),
            ("[imap]\nmax_unauthenticated = 0\n", "imap.max_unauthenticated"),
            ("[imap]\nmax_connections_per_source = 0\n", "imap.max_connections_per_source"),
            ("[imap]\nprelogin_timeout = \"0s\"\n", "imap.prelogin_timeout"),
            ("[http]\nmax_connections = 0\n", "http.max_connections"),
            ("[http]\nmax_connections_per_source = 0\n", "http.max_connections_per_source"),
            ("[http]\nidle_timeout = \"500ms\"\n", "http.idle_timeout"),
        ];
        for (text, key) in cases {
            let e = load(text).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.line >= 2, "{key}: the line is named: {e}");
        }
        let e = load("[limits]\nmin_data_rate = -1\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "limits.min_data_rate"), "{e}");
    }

    #[test]
    fn login_timeout_is_still_accepted_as_prelogin_timeout() {
        let s = load("[imap]\nlogin_timeout = \"7s\"\n").unwrap();
        assert_eq!(s.config.imap.prelogin_timeout, Duration::from_secs(7));
        let s = load("[imap]\nprelogin_timeout = \"9s\"\n").unwrap();
        assert_eq!(s.config.imap.prelogin_timeout, Duration::from_secs(9));
        let e = load("[imap]\nlogin_timeout = \"7s\"\nprelogin_timeout = \"9s\"\n").unwrap_err();
        assert!(e.reason.contains("duplicate"), "{e}");
        assert!(e.key.starts_with("imap"), "{e}");
    }

    #[test]
    fn bad_duration_is_reported() {
        let e = load("[limits]\ncommand_timeout = \"five minutes\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "limits.command_timeout"), "{e}");
    }

    #[test]
    fn enrolment_and_approval_keys_are_checked() {
        let s = load("").unwrap();
        assert_eq!(s.config.access.grant_approval, GrantApproval::SecondPerson, "second-person approval is the default");
        assert_eq!(s.config.access.enrolment_lifetime, Duration::from_secs(72 * 3600));
        let s = load("[access]\ngrant_approval = \"none\"\nenrolment_lifetime = \"2s\"\n").unwrap();
        assert_eq!((s.config.access.grant_approval, s.config.access.enrolment_lifetime), (GrantApproval::None, Duration::from_secs(2)));
        let e = load("[access]\ngrant_approval = \"one-person\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "access.grant_approval"), "{e}");
        assert!(e.reason.contains("second-person"), "{e}");
        let e = load("[access]\n\nenrolment_lifetime = \"0s\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "access.enrolment_lifetime"), "{e}");
    }
}
