//! Configuration: one TOML file, validated completely at start.
//!
//! Every error names the file, the line and the key (`deploy/mailroom.toml:42: limits.max_recipients:
//! must be at least 1`), because an operator fixing a config at 3 a.m. should not have to guess.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use crate::access::config::{AccessConfig, GrantApproval, RoleConfig};
pub use crate::http::config::HttpConfig;
pub use crate::imap::config::ImapConfig;
use crate::intake::Policy;
pub use crate::intake::config::{AuthenticationConfig, IntakeConfig, MailConfig, QueueConfig, RegistrationConfig};
use crate::intake::regnum::RegFormat;
use crate::intake::rules::{CategoryConfig, RuleConfig, RuleSet};
use crate::intake::sla::{Calendar, SlaConfig};
pub use crate::smtp::config::{Limits, ListenerConfig, LmtpConfig};
pub use crate::store::config::StorageConfig;
pub use crate::tls::TlsConfig;

mod reload;
pub use reload::{Reload, ReloadError};

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
    /// DKIM signing of outgoing mail. Without this section mail goes out unsigned.
    pub dkim: Option<crate::outbox::DkimConfig>,
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
    /// Who must use two-factor login besides the roles that say so.
    #[serde(default)]
    pub two_factor: crate::access::config::TwoFactorConfig,
    /// Reply templates offered on the reply page.
    #[serde(default)]
    pub templates: Vec<crate::cases::templates::ReplyTemplate>,
    /// `/metrics`, `/healthz` and `/readyz`. Without `listen` there is no metrics listener.
    #[serde(default)]
    pub metrics: crate::telemetry::config::MetricsConfig,
    /// The SLA sweep: warnings, breaches, new urgent or VIP cases, staff notifications. Without
    /// this section there is no sweep.
    pub escalation: Option<crate::cases::escalation::EscalationConfig>,
    /// Retention policies: how long the registrations of closed cases are kept (crypto-shredded
    /// after). None: everything is kept.
    #[serde(default)]
    pub retention: Vec<crate::cases::retention::RetentionPolicy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub hostname: String,
    /// This node's name among several on one PostgreSQL database (logs, the Received header, the
    /// database's `application_name`). Default: the machine's host name.
    pub node: Option<String>,
    /// Threads running the sessions. Default: one per core but one, which is left to the
    /// group-commit writer (the serial step every message waits for) and the kernel.
    pub worker_threads: Option<usize>,
    /// How often expired HTTP sessions are deleted. One node at a time does it, holding the job's
    /// lease for five periods (renewed at each), so a dead holder's job passes to another node
    /// within about six. Default 1 minute.
    #[serde(default = "default_session_purge_every", with = "humantime_serde")]
    pub session_purge_every: std::time::Duration,
    /// How often the `[[retention]]` policies run (on one node at a time, under a lease, like
    /// the session purge). Default 1 hour.
    #[serde(default = "default_retention_every", with = "humantime_serde")]
    pub retention_every: std::time::Duration,
}

fn default_session_purge_every() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

fn default_retention_every() -> std::time::Duration {
    std::time::Duration::from_secs(3600)
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            node: None,
            worker_threads: None,
            session_purge_every: default_session_purge_every(),
            retention_every: default_retention_every(),
        }
    }
}

impl ServerConfig {
    /// `node`, else the machine's host name, else `hostname`.
    pub fn node_name(&self) -> String {
        self.node.clone().or_else(system_host_name).filter(|n| valid_node_name(n)).unwrap_or_else(|| self.hostname.clone())
    }

    pub fn session_threads(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1))
    }
}

/// The kernel's host name (`gethostname`), when it has one.
fn system_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&buf[..end]).ok().map(str::to_string).filter(|n| !n.is_empty())
}

/// A node name goes into logs, a header comment and `application_name` (63 bytes at most).
fn valid_node_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// A config error that points at the offending place.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The file it came from (None: the embedded default), which a reload reads again.
    pub file: Option<PathBuf>,
    /// Its text, which a reload compares section by section with the new one.
    pub text: Arc<str>,
    pub data_dir: PathBuf,
    /// Routing, numbering and acknowledgement state, derived once: what intake decides by.
    pub policy: Arc<Policy>,
    /// `[metrics]`'s bearer token, read from its file at load time.
    pub metrics_token: Option<Arc<zeroize::Zeroizing<String>>>,
    /// `[dkim]`'s signer, its key read from the key file at load time.
    pub dkim: Option<Arc<crate::outbox::DkimSigner>>,
    /// What is allowed but probably not meant (same form as an error: file, line, key); `config
    /// check` prints them, `serve` logs them at start.
    pub warnings: Vec<ConfigError>,
    /// `[escalation]`, validated; None: no sweep (no section, or `enabled = false`).
    pub escalation: Option<crate::cases::escalation::Escalation>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("source", &self.source)
            .field("data_dir", &self.data_dir)
            .field("rules", &self.policy.rules.len())
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn load(config_file: Option<&Path>, data_dir: &Path) -> Result<Settings, ConfigError> {
        let (name, text) = read(config_file)?;
        let mut settings = Self::from_str(&name, &text, data_dir)?;
        settings.file = config_file.map(Path::to_path_buf);
        Ok(settings)
    }

    /// The configuration parsed but not validated (nothing it names is read): for commands that
    /// prepare what it will name, such as `dkim generate` before the key file exists.
    pub fn parse_only(config_file: Option<&Path>) -> Result<Config, ConfigError> {
        let (name, text) = read(config_file)?;
        parse(&name, &text)
    }

    pub fn from_str(name: &str, text: &str, data_dir: &Path) -> Result<Settings, ConfigError> {
        let config = parse(name, text)?;
        validate(name, text, config, data_dir)
    }

    /// What the store is opened with: its files, resolved against the data dir, and `[storage]`.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            database_path: self.database_path(),
            master_key_path: self.master_key_path(),
            data_dir: self.data_dir.clone(),
            storage: self.config.storage.clone(),
        }
    }

    /// What the case service needs (built again at each reload); the IMAP view reads category
    /// names and the calendar's zone from it too.
    pub fn case_settings(&self) -> crate::cases::CaseSettings {
        let config = &self.config;
        crate::cases::CaseSettings {
            queues: config
                .queues
                .iter()
                .map(|q| crate::cases::QueueSetting {
                    name: q.name.clone(),
                    address: self.policy.queue_address(&q.name).map(str::to_string),
                    review: q.review,
                })
                .collect(),
            categories: config.categories.iter().map(|c| crate::cases::Category { code: c.code.clone(), name: c.name.clone() }).collect(),
            calendar: self.policy.calendar.clone(),
            hostname: config.server.hostname.clone(),
            outbox_configured: config.outbox.is_some(),
            own_addresses: self.policy.own_addresses.clone(),
            reg_format: self.policy.reg_format.clone(),
            templates: config.templates.clone(),
            undo_window: std::time::Duration::from_secs(config.outbox.as_ref().map_or(0, |o| o.undo_seconds)),
            presence_expiry: config.http.presence_expiry,
        }
    }

    /// What the IMAP view needs: its section, our hostname, two limits and the queues.
    pub fn imap_settings(&self) -> crate::imap::ImapSettings {
        let config = &self.config;
        crate::imap::ImapSettings {
            imap: config.imap.clone(),
            hostname: config.server.hostname.clone(),
            command_timeout: config.limits.command_timeout,
            max_errors: config.limits.max_errors,
            queues: self.queue_names(),
        }
    }

    /// What the HTTP API needs: its section, the session lifetime, queue names, category codes.
    pub fn http_settings(&self) -> crate::http::HttpSettings {
        let config = &self.config;
        crate::http::HttpSettings {
            http: config.http.clone(),
            session_lifetime: config.access.session_lifetime,
            queues: self.queue_names(),
            category_codes: config.categories.iter().map(|c| c.code.clone()).collect(),
            retention: config.retention.clone(),
        }
    }

    /// The configured queue names, in order.
    pub fn queue_names(&self) -> Vec<String> {
        self.config.queues.iter().map(|q| q.name.clone()).collect()
    }

    /// Access over `store`, handed its section, the roles to seed and the queue names.
    pub fn access(&self, store: crate::store::Store) -> crate::access::Access {
        crate::access::Access::new(store, self.config.access.clone(), self.config.roles.clone(), self.queue_names())
            .with_two_factor(self.config.two_factor.clone())
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

/// The file's name and text, or the embedded demo configuration's.
fn read(config_file: Option<&Path>) -> Result<(String, String), ConfigError> {
    match config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                file: path.display().to_string(),
                line: 0,
                key: "-".into(),
                reason: format!("cannot read: {e}"),
            })?;
            Ok((path.display().to_string(), text))
        }
        None => Ok((DEFAULT_CONFIG_NAME.to_string(), DEFAULT_CONFIG.to_string())),
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

fn validate(name: &str, text: &str, config: Config, data_dir: &Path) -> Result<Settings, ConfigError> {
    let err = |key: &str, reason: String| ConfigError { file: name.into(), line: locate(text, key), key: key.into(), reason };
    // A section's own check names the key inside the section; the line is found from the full path.
    let within = |section: &'static str| {
        move |(key, reason): (String, String)| {
            let path = if key.starts_with('[') { format!("{section}{key}") } else { format!("{section}.{key}") };
            err(&path, reason)
        }
    };

    let hostname = &config.server.hostname;
    if hostname.is_empty() || hostname.len() > 255 || !hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(err("server.hostname", "must be a domain name (letters, digits, '.', '-')".into()));
    }
    if config.server.node.as_deref().is_some_and(|node| !valid_node_name(node)) {
        return Err(err("server.node", "must be 1 to 63 letters, digits, '.', '-' or '_'".into()));
    }
    if config.server.worker_threads.is_some_and(|n| n == 0 || n > 1024) {
        return Err(err("server.worker_threads", "must be between 1 and 1024".into()));
    }
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(24 * 3600)).contains(&config.server.session_purge_every) {
        return Err(err("server.session_purge_every", "must be between 1s and 24h".into()));
    }
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(7 * 24 * 3600)).contains(&config.server.retention_every) {
        return Err(err("server.retention_every", "must be between 1s and 7 days".into()));
    }
    config.limits.validate().map_err(within("limits"))?;
    config.lmtp.validate().map_err(within("lmtp"))?;
    config.storage.validate().map_err(within("storage"))?;
    config.imap.validate().map_err(within("imap"))?;
    config.http.validate().map_err(within("http"))?;
    config.tls.validate().map_err(within("tls"))?;
    config.access.validate().map_err(within("access"))?;
    let metrics_token = config.metrics.token(data_dir).map_err(within("metrics"))?.map(Arc::new);
    let dkim = match &config.dkim {
        Some(dkim) => {
            dkim.validate().map_err(within("dkim"))?;
            let key_file = if dkim.key_file.is_absolute() { dkim.key_file.clone() } else { data_dir.join(&dkim.key_file) };
            let signer = crate::outbox::DkimSigner::load(dkim, &key_file).map_err(|reason| err("dkim.key_file", reason))?;
            Some(Arc::new(signer))
        }
        None => None,
    };
    let escalation = match &config.escalation {
        Some(section) => Some(section.validate(&config.server.hostname).map_err(within("escalation"))?).filter(|e| e.enabled),
        None => None,
    };
    let reg_format = RegFormat::parse(&config.registration.format).map_err(|reason| err("registration.format", reason))?;

    let domains = config.mail.validate().map_err(within("mail"))?;
    let crate::intake::config::Routes { addresses, names: queue_names } =
        crate::intake::config::validate_queues(&config.queues, &domains).map_err(within("queues"))?;
    let mut codes = BTreeSet::new();
    for (ci, category) in config.categories.iter().enumerate() {
        if category.code.is_empty() || !category.code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(&format!("categories[{ci}].code"), "must be letters and digits, e.g. BZZX".into()));
        }
        if !codes.insert(category.code.clone()) {
            return Err(err(&format!("categories[{ci}].code"), format!("category {:?} is defined twice", category.code)));
        }
    }
    config.authentication.validate().map_err(within("authentication"))?;
    if let Some(outbox) = &config.outbox {
        outbox.validate().map_err(|(key, reason)| err(key, reason))?;
    }
    config.acknowledgement.validate().map_err(|reason| err("acknowledgement", reason))?;
    for (ci, category) in config.categories.iter().enumerate() {
        if let Some(template) = &category.acknowledgement {
            template.validate().map_err(|reason| err(&format!("categories[{ci}].acknowledgement"), reason))?;
        }
    }
    validate_templates(&config.templates, &queue_names, &codes).map_err(within("templates"))?;
    crate::cases::retention::validate(&config.retention, &queue_names, &codes).map_err(within("retention"))?;
    let calendar = Calendar::from_config(&config.sla).map_err(|e| err(e.key, e.reason))?;
    crate::access::config::validate_roles(&config.roles, &queue_names).map_err(within("roles"))?;
    let rules = RuleSet::compile(&config.rules, &queue_names, &codes, &config.sla.timezone).map_err(|e| {
        let key = if e.key.is_empty() { format!("rules[{}]", e.index) } else { format!("rules[{}].{}", e.index, e.key) };
        err(&key, e.reason)
    })?;

    let own_addresses = addresses.keys().cloned().collect();
    let policy = Policy {
        reg_format,
        domains,
        addresses,
        own_addresses,
        recipient_delimiter: config.mail.recipient_delimiter.clone(),
        rules: Arc::new(rules),
        calendar: Arc::new(calendar),
        queues: config.queues.clone(),
        categories: config.categories.clone(),
        acknowledgement: config.acknowledgement.clone(),
        acknowledge: config.intake.acknowledge,
        ack_window: config.outbox.as_ref().map(|outbox| outbox.ack_window),
        hostname: config.server.hostname.clone(),
        node: config.server.node_name(),
        compression: config.storage.compression,
    };
    let warnings = dkim_alignment(&config, &policy).into_iter().map(|(key, reason)| err(key, reason)).collect();
    Ok(Settings {
        source: name.to_string(),
        file: None,
        text: text.into(),
        data_dir: data_dir.to_path_buf(),
        policy: Arc::new(policy),
        config,
        metrics_token,
        dkim,
        warnings,
        escalation,
    })
}

/// Queues whose From domain the DKIM domain does not cover: their mail is signed, but DMARC
/// receivers do not count a signature of another domain (`(key, reason)` for a warning).
fn dkim_alignment(config: &Config, policy: &Policy) -> Vec<(&'static str, String)> {
    let Some(dkim) = &config.dkim else { return Vec::new() };
    let mut unaligned: Vec<&str> = config
        .queues
        .iter()
        .filter_map(|q| policy.queue_address(&q.name))
        .filter(|address| !dkim.aligns_with(address))
        .filter_map(|address| address.rsplit_once('@').map(|(_, domain)| domain))
        .collect();
    unaligned.sort_unstable();
    unaligned.dedup();
    unaligned
        .into_iter()
        .map(|domain| {
            let reason = format!(
                "mail from {domain} is signed as {}, which DMARC does not count for {domain} (sign as {domain} or a parent of it)",
                dkim.domain
            );
            ("dkim.domain", reason)
        })
        .collect()
}

/// Each template well-formed, its name unique, its scope naming configured queues and categories;
/// or (key such as `[1].queues[0]`, reason).
fn validate_templates(
    templates: &[crate::cases::templates::ReplyTemplate],
    queues: &BTreeSet<String>,
    categories: &BTreeSet<String>,
) -> Result<(), (String, String)> {
    let mut names = BTreeSet::new();
    for (ti, template) in templates.iter().enumerate() {
        template.check().map_err(|(key, reason)| (format!("[{ti}].{key}"), reason))?;
        if !names.insert(template.name.as_str()) {
            return Err((format!("[{ti}].name"), format!("template {:?} is defined twice", template.name)));
        }
        if let Some((qi, q)) = template.queues.iter().enumerate().find(|(_, q)| !queues.contains(*q)) {
            return Err((format!("[{ti}].queues[{qi}]"), format!("no queue is named {q:?}")));
        }
        if let Some((ci, c)) = template.categories.iter().enumerate().find(|(_, c)| !categories.contains(*c)) {
            return Err((format!("[{ti}].categories[{ci}]"), format!("no category is coded {c:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_str("test.toml", text, Path::new("/tmp"))
    }

    #[test]
    fn embedded_default_is_valid() {
        let s = load(DEFAULT_CONFIG).expect("deploy/mailroom.toml must be valid");
        assert!(s.policy.domains.contains("example.com"));
        for a in ["support@example.com", "sales@example.com", "complaints@example.com"] {
            assert!(s.policy.addresses.contains_key(a), "{a} must be accepted by the demo config");
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
    fn reply_templates_are_checked_naming_line_and_key() {
        let with = |entry: &str| {
            load(&format!(
                "{DEFAULT_CONFIG}\n[[templates]]\nname = \"thanks\"\nbody = \"Dear {{customer_name}}\"\n\n[[templates]]\n{entry}\n"
            ))
        };
        let ok = with("name = \"later\"\nqueues = [\"support\"]\ncategories = [\"BZZX\"]\nsubject = \"{number}\"\nbody = \"By {due}, {agent} of {queue}. {{x}}\"").unwrap();
        assert_eq!(ok.config.templates.len(), 4, "two from the demo config, two here");
        let lines = DEFAULT_CONFIG.lines().count();
        for (entry, key, line, reason) in [
            ("name = \"b\"\nbody = \"Dear {customer}\"", "templates[3].body", lines + 8, "unknown placeholder {customer}"),
            ("name = \"b\"\nsubject = \"Re {\"\nbody = \"x\"", "templates[3].subject", lines + 8, "not closed"),
            ("name = \"thanks\"\nbody = \"x\"", "templates[3].name", lines + 7, "defined twice"),
            (
                "name = \"b\"\nqueues = [\"support\", \"nope\"]\nbody = \"x\"",
                "templates[3].queues[1]",
                lines + 8,
                "no queue is named \"nope\"",
            ),
            ("name = \"b\"\ncategories = [\"NOPE\"]\nbody = \"x\"", "templates[3].categories[0]", lines + 8, "no category"),
            ("name = \"b\"\nbody = \"x\"\ncolour = \"red\"", "templates[3]", 0, "colour"),
        ] {
            let e = with(entry).unwrap_err();
            assert!(e.key.starts_with(key), "{entry}: {e}");
            assert!(e.reason.contains(reason), "{entry}: {e}");
            if line > 0 {
                assert_eq!(e.line, line, "{entry}: {e}");
            }
            assert_eq!(e.file, "test.toml");
        }
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
            ("[storage]\nchange_poll = \"10ms\"\n", "storage.change_poll"),
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
    fn message_memory_must_hold_the_largest_message() {
        let s = load("").unwrap();
        assert_eq!(s.config.limits.message_memory, 256 * 1024 * 1024);
        let e = load("[limits]\nmax_message_size = 10485760\nmessage_memory = 41943039\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "limits.message_memory"), "{e}");
        assert!(e.reason.contains("41943040"), "the reason names the minimum: {e}");
        let s = load("[limits]\nmax_message_size = 10485760\nmessage_memory = 41943040\n").unwrap();
        assert_eq!(s.config.limits.message_memory, 41_943_040);
        let e = load("[limits]\nmessage_memory = \"lots\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "limits.message_memory"), "{e}");
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
    fn session_purge_every_defaults_to_a_minute_and_is_bounded() {
        assert_eq!(load("").unwrap().config.server.session_purge_every, Duration::from_secs(60));
        let s = load("[server]\nhostname = \"mx.example.com\"\nsession_purge_every = \"2s\"\n").unwrap();
        assert_eq!(s.config.server.session_purge_every, Duration::from_secs(2));
        let e = load("[server]\nhostname = \"mx.example.com\"\nsession_purge_every = \"100ms\"\n").unwrap_err();
        assert_eq!(e.key, "server.session_purge_every", "{e}");
        assert!(e.line >= 2, "the line is named: {e}");
    }

    #[test]
    fn metrics_section_is_checked_naming_line_and_key() {
        let s = load("").unwrap();
        assert_eq!(s.config.metrics.listen, None, "no [metrics]: no listener");
        assert_eq!(load(DEFAULT_CONFIG).unwrap().config.metrics.listen, Some("127.0.0.1:9325".parse().unwrap()));
        let s = load("[metrics]\nlisten = \"127.0.0.1:9325\"\nbearer_token = \"0123456789abcdef0123\"\n").unwrap();
        assert_eq!(s.metrics_token.as_deref().map(|t| t.as_str()), Some("0123456789abcdef0123"));
        for (text, key, line) in [
            ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen", 2),
            ("[metrics]\n\nbearer_token = \"short\"\n", "metrics.bearer_token", 3),
            ("[metrics]\nbearer_token_file = \"/no/such/token\"\n", "metrics.bearer_token_file", 2),
            ("[metrics]\nmin_free_disk = -1\n", "metrics.min_free_disk", 2),
            ("[metrics]\nmax_connections = 0\n", "metrics.max_connections", 2),
            ("[metrics]\nlisten = \"127.0.0.1:9325\"\ncolour = 1\n", "metrics", 3),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.key.starts_with(key), "{text}: {e}");
            assert_eq!(e.line, line, "{text}: {e}");
            assert_eq!(e.file, "test.toml");
        }
    }

    #[test]
    fn dkim_section_loads_its_key_and_names_line_and_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = crate::outbox::dkim::key::generate_ed25519().unwrap();
        crate::outbox::dkim::key::write_new(&dir.path().join("k.pem"), &key.pem).unwrap();
        let load_in = |text: &str| Settings::from_str("test.toml", text, dir.path());
        let section = |domain: &str, file: &str| format!("[dkim]\ndomain = \"{domain}\"\nselector = \"s1\"\nkey_file = \"{file}\"\n");

        assert!(load_in("").unwrap().dkim.is_none(), "no [dkim]: unsigned");
        let s = load_in(&format!("{DEFAULT_CONFIG}\n{}", section("example.com", "k.pem"))).unwrap();
        let signer = s.dkim.as_ref().expect("a signer");
        assert_eq!(signer.record().name, "s1._domainkey.example.com");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert!(!format!("{s:?} {signer:?}").contains(&key.pem[30..60]), "the key is never in Debug");

        let e = load_in(&section("example.com", "none.pem")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (4, "dkim.key_file"), "{e}");
        assert!(e.reason.contains("cannot read") && e.reason.contains("none.pem"), "{e}");
        let e = load_in(&section("localhost", "k.pem")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "dkim.domain"), "{e}");
        let e = load_in(&format!("{}headers = [\"To\"]\n", section("example.com", "k.pem"))).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (5, "dkim.headers"), "{e}");
        let e = load_in("[dkim]\ndomain = \"example.com\"\nselector = \"s1\"\n").unwrap_err();
        assert!(e.key.starts_with("dkim") && e.reason.contains("key_file"), "{e}");
        std::fs::set_permissions(dir.path().join("k.pem"), std::fs::Permissions::from_mode(0o604)).unwrap();
        let e = load_in(&section("example.com", "k.pem")).unwrap_err();
        assert!(e.reason.contains("every user"), "{e}");
        std::fs::set_permissions(dir.path().join("k.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();

        // Our mail comes from example.com: signing as example.org is allowed, with a warning.
        let lines = DEFAULT_CONFIG.lines().count();
        let s = load_in(&format!("{DEFAULT_CONFIG}\n{}", section("example.org", "k.pem"))).unwrap();
        assert_eq!(s.warnings.len(), 1, "one warning per From domain: {:?}", s.warnings);
        let w = &s.warnings[0];
        assert_eq!((w.line, w.key.as_str()), (lines + 3, "dkim.domain"), "{w}");
        assert!(w.reason.contains("example.com"), "{w}");
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

    /// Each section validates itself and names the key inside it; the full path and its line
    /// come out the same as when config.rs checked everything itself.
    #[test]
    fn section_checks_name_the_full_key_and_its_line() {
        let mail = "[mail]\ndomains = [\"example.com\"]\n\n";
        let cases = [
            (format!("{mail}[[queues]]\nname = \"a b\"\n"), "queues[0].name", 5),
            (
                format!("{mail}[[queues]]\nname = \"a\"\ndefault = true\n\n[[queues]]\nname = \"b\"\ndefault = true\n"),
                "queues[1].default",
                10,
            ),
            (
                format!("{mail}[[queues]]\nname = \"a\"\n\n[[roles]]\nname = \"r\"\ngrants = {{ nope = [\"read\"] }}\n"),
                "roles[0].grants.nope",
                9,
            ),
            ("[mail]\ndomains = [\"a@b\"]\n".to_string(), "mail.domains[0]", 2),
            ("[tls]\ncert = \"c.pem\"\n".to_string(), "tls.key", 1),
            ("[storage]\nmax_batch = 0\n".to_string(), "storage.max_batch", 2),
            ("[storage]\n\ndatabase = \"postgres://mr:pw@db:x/m\"\n".to_string(), "storage.database", 3),
            ("[server]\nhostname = \"a.b\"\nnode = \"node a\"\n".to_string(), "server.node", 3),
            ("[authentication]\nverify = \"maybe\"\n".to_string(), "authentication.verify", 2),
            ("[access]\nmax_failures = 0\n".to_string(), "access.max_failures", 2),
        ];
        for (text, key, line) in cases {
            let e = load(&text).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, line), "{e}");
        }
    }
}
