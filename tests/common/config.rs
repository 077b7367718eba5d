//! The test config: [`Opts`] holds the knobs a test may turn; `config_toml` writes them into a
//! complete `mailroom.toml` (port 0 listeners, three queues, no network authentication).

use super::HOST;

/// Limits and knobs written into the test config. Defaults are small but roomy enough for the
/// ordinary tests; individual tests override what they exercise.
#[derive(Clone, Debug)]
pub struct Opts {
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub max_command_line: u32,
    pub max_data_line: u32,
    pub max_connections: u32,
    pub max_errors: u32,
    pub command_timeout: String,
    pub data_timeout: String,
    pub shutdown_grace: String,
    pub duplicate_window: String,
    pub max_batch: u32,
    /// `storage.max_database_size` (unset when None).
    pub max_database_size: Option<u64>,
    /// `storage.database`: a PostgreSQL URL (e.g. [`super::PgCluster::database`]) instead of the
    /// SQLite file in the data dir.
    pub postgres_url: Option<String>,
    /// `storage.master_key_file` (default `master.key` in the data dir): nodes sharing one
    /// database share one key file.
    pub master_key_file: Option<String>,
    /// `server.node` (unset: mailroom's default, the host name).
    pub node: Option<String>,
    /// Extra `key = value` lines for the generated `[server]` table.
    pub server_extra: String,
    /// Appended verbatim to the generated config (new tables only).
    pub extra_toml: String,
    /// Extra `key = value` lines for the generated `[limits]`, `[lmtp]`, `[imap]` and `[http]`
    /// tables (e.g. connection caps; unset keys keep mailroom's defaults).
    pub limits_extra: String,
    pub lmtp_extra: String,
    pub imap_extra: String,
    pub http_extra: String,
    /// A complete config to use verbatim instead of the generated one.
    pub raw_config: Option<String>,
    /// `[two_factor] officers`: mailroom's default is on; the harness turns it off unless a test
    /// asks, because the scenarios written before two-factor login log officers in with a
    /// password alone (tests/two_factor.rs turns it on).
    pub officers_two_factor: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            max_message_size: 1_000_000,
            max_recipients: 100,
            max_command_line: 2048,
            max_data_line: 65536,
            max_connections: 1000,
            max_errors: 10,
            command_timeout: "60s".into(),
            data_timeout: "60s".into(),
            shutdown_grace: "5s".into(),
            duplicate_window: "48h".into(),
            max_batch: 256,
            max_database_size: None,
            postgres_url: None,
            master_key_file: None,
            node: None,
            server_extra: String::new(),
            extra_toml: String::new(),
            limits_extra: String::new(),
            lmtp_extra: String::new(),
            imap_extra: String::new(),
            http_extra: String::new(),
            raw_config: None,
            officers_two_factor: false,
        }
    }
}

impl Opts {
    /// The config text. Its `database = "mailroom.db"` line is what the PostgreSQL pass replaces
    /// with a database URL (engine.rs), also in raw configs derived from this text.
    pub fn config_toml(&self) -> String {
        if let Some(raw) = &self.raw_config {
            return raw.clone();
        }
        format!(
            r#"# written by mailroom's integration test harness
[server]
hostname = "{HOST}"
{node}
{server_extra}

[smtp]
listen = ["127.0.0.1:0"]

[lmtp]
listen = ["127.0.0.1:0"]
{lmtp_extra}

[imap]
listen_starttls = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
{imap_extra}

[http]
listen = ["127.0.0.1:0"]
{http_extra}

[limits]
max_message_size = {max_message_size}
max_recipients = {max_recipients}
max_command_line = {max_command_line}
max_data_line = {max_data_line}
max_connections = {max_connections}
max_errors = {max_errors}
command_timeout = "{command_timeout}"
data_timeout = "{data_timeout}"
shutdown_grace = "{shutdown_grace}"
{limits_extra}

[registration]
format = "MR-{{year}}-{{seq:06}}-{{check}}"
duplicate_window = "{duplicate_window}"

[storage]
database = "{database}"
master_key_file = "{master_key_file}"
max_batch = {max_batch}
{max_database_size}

[mail]
domains = ["example.com"]
recipient_delimiter = "+"

[authentication]
# No network here: tests that need SPF/DKIM/DMARC give recorded DNS answers instead.
verify = "off"

[[queues]]
name = "support"
addresses = ["support@example.com", "help@example.com"]

[[queues]]
name = "sales"
addresses = ["sales@example.com"]

[[queues]]
name = "complaints"
addresses = ["complaints@example.com"]

[two_factor]
officers = {officers_two_factor}

{extra}
"#,
            max_message_size = self.max_message_size,
            max_recipients = self.max_recipients,
            max_command_line = self.max_command_line,
            max_data_line = self.max_data_line,
            max_connections = self.max_connections,
            max_errors = self.max_errors,
            command_timeout = self.command_timeout,
            data_timeout = self.data_timeout,
            shutdown_grace = self.shutdown_grace,
            duplicate_window = self.duplicate_window,
            max_batch = self.max_batch,
            node = self.node.as_ref().map(|n| format!("node = \"{n}\"")).unwrap_or_default(),
            database = self.postgres_url.as_deref().unwrap_or("mailroom.db"),
            master_key_file = self.master_key_file.as_deref().unwrap_or("master.key"),
            max_database_size = self.max_database_size.map(|n| format!("max_database_size = {n}")).unwrap_or_default(),
            server_extra = self.server_extra,
            extra = self.extra_toml,
            officers_two_factor = self.officers_two_factor,
            limits_extra = self.limits_extra,
            lmtp_extra = self.lmtp_extra,
            imap_extra = self.imap_extra,
            http_extra = self.http_extra,
        )
    }
}
