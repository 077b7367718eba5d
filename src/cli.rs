//! Command line: `serve`, and the admin commands that work on the same data dir and config.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::Settings;
use crate::store::{Store, StoreError};

mod backup;
mod counts;
mod dkim;
mod keys;
mod retention;
mod stats;
use backup::{backup, backup_verify, restore};
pub use dkim::DkimCommand;
pub use keys::KeysCommand;

#[derive(Parser)]
#[command(name = "mailroom", version, about = "SMTP-native front door for customer mail: every message registered, encrypted, routed")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// [`Parser::parse`] (exiting with clap's message on bad arguments), noting which command
    /// runs: an admin command names its database connections after it (see [`application_name`]).
    pub fn parse_noting_command() -> Cli {
        let matches = Cli::command().get_matches();
        let _ = INVOKED_AS.set(command_path(&matches));
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The subcommand words of this invocation, joined by '-' (`audit-verify`); set once in `main`.
static INVOKED_AS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn command_path(matches: &ArgMatches) -> String {
    let mut words = Vec::new();
    let mut at = matches;
    while let Some((word, sub)) = at.subcommand() {
        words.push(word);
        at = sub;
    }
    words.join("-")
}

/// What an admin command's PostgreSQL connections show as `application_name`
/// (`mailroom-cli:audit-verify`), so that `pg_stat_activity` tells them from the nodes, which
/// use their node name.
fn application_name() -> String {
    match INVOKED_AS.get() {
        Some(command) => format!("mailroom-cli:{command}"),
        None => "mailroom-cli".into(),
    }
}

#[derive(Args, Clone)]
pub struct Location {
    /// Data directory: database, master key (by default), generated certificate.
    #[arg(long, env = "MAILROOM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Configuration file (TOML). Without it, the built-in demo configuration is used.
    #[arg(long, env = "MAILROOM_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the SMTP and LMTP listeners (and everything behind them) until SIGTERM.
    Serve {
        #[command(flatten)]
        location: Location,
    },
    /// Inspect registered messages.
    Message {
        #[command(subcommand)]
        command: MessageCommand,
    },
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The customer directory (tiers: vip, long-term, prospect).
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
    /// Try the classification rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Staff accounts (IMAP and HTTP logins): one-time enrolment codes, or passwords from stdin (never argv).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Roles and what they may do on which queue (read, act, assign, supervise, review).
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Access changes an officer asked for over HTTP that wait for a second person's approval.
    Change {
        #[command(subcommand)]
        command: ChangeCommand,
    },
    /// Statistics of the cases opened in a period (days in the SLA calendar's time zone, `--to`
    /// included): volumes, working-time response and resolution, SLA, per agent. Audited.
    Stats {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, included, YYYY-MM-DD (at most 366 days from --from).
        #[arg(long)]
        to: String,
        /// Only this queue (default: every configured queue).
        #[arg(long)]
        queue: Option<String>,
        /// JSON (the `period` of `GET /api/stats`).
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV, one figure per row: section,name,measure,value.
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Erase everything stored of one customer address (crypto-shredding): the messages it sent
    /// become tombstones (number, date, queue kept; key and content destroyed), and its case
    /// participations, directory entry and mail to it go. Needs a security officer (--by);
    /// cases under legal hold are skipped. Prints a receipt, which the audit log records.
    Erase {
        /// The customer's address.
        #[arg(long)]
        address: String,
        /// The security officer who orders it (a user with the security-officer role).
        #[arg(long, value_name = "OFFICER")]
        by: String,
        /// Print what would be erased; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The receipt as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Legal hold of cases: a held case is skipped by retention and erasure until released.
    /// Needs a security officer (--by); audited.
    Case {
        #[command(subcommand)]
        command: CaseCommand,
    },
    /// Retention policies ([[retention]] in the configuration): run them now.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The store as a whole: move it to another engine.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Back up a SQLite store while it runs and takes mail (`backup --to FILE`), or check a
    /// backup (`backup verify FILE`). The key file is NOT in the backup: keep a copy of it apart.
    /// PostgreSQL stores: use pg_basebackup or pg_dump (docs/deploy-postgres.md, "Backup").
    #[command(subcommand_negates_reqs = true)]
    Backup {
        #[command(subcommand)]
        command: Option<BackupCommand>,
        #[command(flatten)]
        take: BackupArgs,
    },
    /// DKIM signing keys for outgoing mail: generate one (with its DNS record), show the record.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// Master key versions: `keys status`, `keys rotate` (re-wrap every data key under a new
    /// version while the server runs, then retire the old ones), `keys add` (several nodes).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Make a verified backup the database of a data dir that has none yet. The key file must be
    /// in place first (it is not in the backup): restore refuses to run without it.
    Restore {
        /// The backup file (`mailroom backup --to FILE`).
        file: PathBuf,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Args)]
pub struct BackupArgs {
    /// The new backup file (refused if it exists). Written beside it under a hidden name first.
    #[arg(long, value_name = "FILE", required = true)]
    pub to: Option<PathBuf>,
    /// Data directory of the store to back up.
    #[arg(long, env = "MAILROOM_DATA_DIR", required = true)]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML), for `[storage]` paths other than the defaults.
    #[arg(long, env = "MAILROOM_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Check a backup: a sound SQLite file, a mailroom store at this version's schema, every
    /// message, case tag list, case entry, outbox row and directory entry decrypts with the key
    /// file, the audit chain verifies, the numbering is gap-free. Prints counts; exits 1 naming
    /// the first problem otherwise. Opens the file read-only.
    Verify {
        /// The backup file.
        file: PathBuf,
        /// The key file of the data dir the backup was made from (default: the one of --data-dir).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// A data dir whose key file to use (when --key-file is not given).
        #[arg(long, env = "MAILROOM_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Its configuration file, for a `[storage] master_key_file` other than the default.
        #[arg(long, env = "MAILROOM_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a stopped single-node SQLite store (every message, case, user, audit entry, outbox
    /// row) into an empty PostgreSQL database, all or nothing; checks row counts, counters and the
    /// audit chain before committing. Nodes then run with `[storage] database` set to the URL and
    /// the same key file.
    Copy {
        /// Data directory of the SQLite store (the server must be stopped).
        #[arg(long, env = "MAILROOM_DATA_DIR")]
        from: PathBuf,
        /// Its configuration file (TOML), for `[storage]` paths other than the defaults.
        #[arg(long, env = "MAILROOM_CONFIG")]
        config: Option<PathBuf>,
        /// The PostgreSQL database, `postgres://USER@HOST/DB` (password via PGPASSWORD or the URL).
        #[arg(long)]
        to: String,
    },
    /// Check the queue counters (what queue counts are read from) against a full count of the
    /// cases; exit status 1 when a row differs. With --repair, rewrite them from the count.
    Counts {
        #[command(flatten)]
        location: Location,
        /// Rewrite the counters from a full count (audited as store.recount).
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Args, Clone)]
pub struct PasswordSource {
    /// Set the password from the first line of standard input (automation on the host) instead
    /// of issuing a one-time enrolment code for the user.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with the given roles. Prints a one-time enrolment code for the user to set
    /// his own password with (`mailroom user enrol`, POST /api/enrol), unless --password-stdin.
    Add {
        name: String,
        /// A role to give the user (repeatable), e.g. --role support-agent --role security-officer.
        #[arg(long = "role")]
        roles: Vec<String>,
        #[command(flatten)]
        password: PasswordSource,
        #[command(flatten)]
        location: Location,
    },
    /// List users with their roles and lock state.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Reset a password: the old one stops working, the user's sessions end, and a one-time
    /// enrolment code is printed (with --password-stdin: set the password read from stdin).
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordSource,
        #[command(flatten)]
        location: Location,
    },
    /// Set your own password with the enrolment code you were given (prompted, or with --stdin:
    /// the code on the first line of standard input, the new password on the second).
    Enrol {
        name: String,
        /// Read the code (first line) and the new password (second line) from standard input instead of prompting.
        #[arg(long)]
        stdin: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Set the address the user's notifications (SLA warnings, breaches, new urgent cases) are
    /// mailed to; --clear removes it (he then sees them on the web page only).
    Email {
        name: String,
        /// e.g. anna@example.org
        #[arg(required_unless_present = "clear")]
        address: Option<String>,
        #[arg(long, conflicts_with = "address")]
        clear: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Lock a user: no login, open sessions stop working at once.
    Lock {
        name: String,
        #[command(flatten)]
        location: Location,
    },
    /// A user lost his second factor: his TOTP secret, recovery codes and IMAP app passwords are
    /// removed and his sessions end; his password stays. He enrols a new device at his next login.
    ResetTwoFactor {
        name: String,
        #[command(flatten)]
        location: Location,
    },
    /// Unlock a user (also lifts a temporary lockout after failed logins).
    Unlock {
        name: String,
        #[command(flatten)]
        location: Location,
    },
    /// Remove a user (their cases become unassigned; the audit log keeps their history).
    Remove {
        name: String,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Create a role (with no permissions yet).
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        location: Location,
    },
    /// Grant permissions on a queue to a role (--queue Q --permission P…), or give the role to a user (--user NAME).
    Grant {
        role: String,
        #[command(flatten)]
        target: GrantTarget,
        #[command(flatten)]
        location: Location,
    },
    /// Revoke permissions on a queue (all of them without --permission), or take the role from a user.
    Revoke {
        role: String,
        #[command(flatten)]
        target: GrantTarget,
        #[command(flatten)]
        location: Location,
    },
    /// List roles with their permissions and members.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
pub enum ChangeCommand {
    /// List access changes (default: those pending).
    List {
        /// pending, approved, rejected or all.
        #[arg(long, default_value = "pending", value_parser = ["pending", "approved", "rejected", "all"])]
        status: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Approve a pending change: it applies now (with the host's authority; audited with both names).
    Approve {
        id: i64,
        #[command(flatten)]
        location: Location,
    },
    /// Reject a pending change: it never applies.
    Reject {
        id: i64,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Args, Clone)]
pub struct GrantTarget {
    /// A queue name, or * for every queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// A user name.
    #[arg(long, conflicts_with_all = ["queue", "permission_list"])]
    pub user: Option<String>,
    /// read, act, assign or supervise (repeatable; comma-separated lists work too).
    #[arg(long = "permission", id = "permission_list", value_delimiter = ',')]
    pub permissions: Vec<String>,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Re-compute the hash chain: exit 0 and print the head hash if intact, exit 1 naming the
    /// first altered or missing entry otherwise.
    ///
    /// With --anchor FILE, also checks every anchor line in FILE (as `audit anchor` prints them,
    /// text or JSON): its entry must still exist with the anchored MAC, else the log was cut,
    /// rolled back to an older backup or rewritten, and the command exits 1 naming the anchor.
    Verify {
        /// A file of anchor lines (`audit anchor` output collected elsewhere).
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
        #[command(flatten)]
        location: Location,
    },
    /// Print the chain's head (last entry id, its MAC, the time, this node) as one line, to be
    /// appended by cron to a file outside the database's reach (another host's log, a WORM
    /// bucket): `audit verify --anchor FILE` then detects truncation and rollback.
    Anchor {
        /// One JSON object instead of the text line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Print audit entries, oldest first (who read which message, every action, login, admin change).
    List {
        /// Only entries with an id above this.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        /// Only this action (e.g. message.read, login.failed, user.lock).
        #[arg(long)]
        action: Option<String>,
        /// Only this actor (e.g. user:anna, cli:root, smtp).
        #[arg(long)]
        actor: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Put the case(s) opened by a registration under legal hold.
    Hold {
        /// The registration number that opened the case, e.g. MR-2026-000123-4 (the check digit
        /// may be left out).
        number: String,
        /// The security officer who orders it.
        #[arg(long, value_name = "OFFICER")]
        by: String,
        /// Why (a matter or file reference; kept in the clear, in the case and the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        location: Location,
    },
    /// Release the legal hold of the case(s) opened by a registration.
    Release {
        number: String,
        #[arg(long, value_name = "OFFICER")]
        by: String,
        #[command(flatten)]
        location: Location,
    },
    /// List the cases under legal hold.
    Holds {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Apply every [[retention]] policy now: crypto-shred the registrations of closed cases kept
    /// longer than the policy says (cases under legal hold are skipped). Prints what each policy
    /// purged; audited. The server does the same every `server.retention_every`.
    Run {
        /// Print what would be purged; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON report per policy, one per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
pub enum CustomersCommand {
    /// Add or replace entries from a CSV file: address_or_domain,name,tier,tags (tags split by ';').
    Import {
        file: PathBuf,
        #[command(flatten)]
        location: Location,
    },
    /// Write the directory as CSV to stdout (decrypted; the export is audited).
    Export {
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Dry run: print the extracted record, which rules matched and why, and the resulting
    /// category, tags, priority, queues, due time and acknowledgement. Nothing is stored.
    Test {
        /// The message, as a .eml file (RFC 5322).
        message: PathBuf,
        /// Configuration file (default: the built-in demo configuration).
        #[arg(long, env = "MAILROOM_CONFIG")]
        config: Option<PathBuf>,
        /// Envelope sender (default: the first From: address).
        #[arg(long)]
        from: Option<String>,
        /// Envelope recipient(s) (default: the To: and Cc: addresses that are ours).
        #[arg(long)]
        to: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum MessageCommand {
    /// List registrations (number, time, size, protocol, TLS, queue; `purged=` for a tombstone),
    /// oldest first. No customer data.
    List {
        #[command(flatten)]
        location: Location,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 1_000_000)]
        limit: i64,
    },
    /// Print one message, decrypted, as received (with our Received: header). The read is audited.
    Show {
        /// Registration number, e.g. MR-2026-000001-6 (the check digit may be left out).
        number: String,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration; prints FILE:LINE: key: reason on error.
    Check {
        /// Configuration file (default: the built-in demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The settings `serve` will run with, loaded before the runtime exists (None for other commands).
pub fn serve_settings(cli: &Cli) -> anyhow::Result<Option<Arc<Settings>>> {
    match &cli.command {
        Command::Serve { location } => load(location).map(Some),
        _ => Ok(None),
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who an admin command acts as, for the audit log.
fn actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

fn load(location: &Location) -> anyhow::Result<Arc<Settings>> {
    Ok(Arc::new(Settings::load(location.config.as_deref(), &location.data_dir)?))
}

/// Admin commands never create a data dir: a typo must not look like an empty store.
async fn open_existing(location: &Location) -> anyhow::Result<Store> {
    let settings = load(location)?;
    let db = settings.database_path();
    // A PostgreSQL database is checked by connecting (and its schema made by the first node).
    let sqlite_file = settings.config.storage.postgres_url().is_none();
    anyhow::ensure!(!sqlite_file || db.exists(), "no mailroom database at {} (wrong --data-dir?)", db.display());
    crate::store::prepare_data_dir(&settings.data_dir)?;
    Store::open_as(settings.store_options(), &application_name()).await.context("opening the store")
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Admin commands create the database, its WAL and the key file too: private from the start.
    crate::store::private_umask();
    match cli.command {
        Command::Serve { location } => crate::server::serve(load(&location)?).await,
        Command::Message { command: MessageCommand::List { location, json, limit } } => {
            let store = open_existing(&location).await?;
            let mut out = std::io::stdout().lock();
            for m in store.list(limit).await? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&m)?)?;
                } else {
                    writeln!(
                        out,
                        "{}  {}  {:>9}  {}  {:<10}  {}{}{}",
                        m.number,
                        m.received_at,
                        m.size,
                        m.protocol,
                        m.queue,
                        m.tls.as_deref().unwrap_or("no-tls"),
                        if m.duplicate_count > 0 { format!("  retries={}", m.duplicate_count) } else { String::new() },
                        m.purged_by.as_deref().map(|by| format!("  purged={by}")).unwrap_or_default()
                    )?;
                }
            }
            Ok(())
        }
        Command::Message { command: MessageCommand::Show { number, location } } => {
            let store = open_existing(&location).await?;
            let format = &load(&location)?.policy.reg_format;
            let (year, seq) =
                format.parse_number(number.trim(), true).map_err(|e| StoreError::BadNumber(number.to_string(), e.to_string()))?;
            let raw =
                store.read_raw(format.counter_year(year), seq, &actor()).await?.ok_or_else(|| StoreError::NotFound(number.to_string()))?;
            std::io::stdout().lock().write_all(&raw)?;
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { anchor, location } } => audit_verify(anchor.as_deref(), &location).await,
        Command::Audit { command: AuditCommand::Anchor { json, location } } => {
            let node = load(&location)?.policy.node.clone();
            let anchor = open_existing(&location).await?.audit_anchor(&node).await?;
            println!("{}", if json { serde_json::to_string(&anchor)? } else { anchor.line() });
            Ok(())
        }
        Command::Audit { command: AuditCommand::List { after, limit, action, actor, json, location } } => {
            let store = open_existing(&location).await?;
            let entries = crate::store::audit::list(&store, after, limit, action.as_deref(), actor.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            for e in entries {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&e)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>8}  {}  {:<18} {:<22} {:<24} {}",
                        e.id,
                        e.at,
                        e.actor,
                        e.action,
                        e.object.as_deref().unwrap_or("-"),
                        e.detail.as_deref().unwrap_or("")
                    )?;
                }
            }
            Ok(())
        }
        Command::Customers { command: CustomersCommand::Import { file, location } } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let customers = crate::store::directory::parse_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let store = open_existing(&location).await?;
            let n = store.import_customers(&customers, &actor()).await?;
            println!("imported {n} directory entries (a running server picks them up within seconds)");
            Ok(())
        }
        Command::Customers { command: CustomersCommand::Export { location } } => {
            let store = open_existing(&location).await?;
            print!("{}", crate::store::directory::to_csv(&store.export_customers(&actor()).await?));
            Ok(())
        }
        Command::Stats { from, to, queue, json, csv, location } => {
            let format = if json {
                stats::Format::Json
            } else if csv {
                stats::Format::Csv
            } else {
                stats::Format::Table
            };
            stats::run(&from, &to, queue.as_deref(), format, &location).await
        }
        Command::Erase { address, by, dry_run, json, location } => retention::erase(&address, &by, dry_run, json, &location).await,
        Command::Case { command } => retention::case(command).await,
        Command::Retention { command: RetentionCommand::Run { dry_run, json, location } } => retention::run(dry_run, json, &location).await,
        Command::User { command } => user_command(command).await,
        Command::Role { command } => role_command(command).await,
        Command::Change { command } => change_command(command).await,
        Command::Store { command: StoreCommand::Copy { from, config, to } } => store_copy(Location { data_dir: from, config }, &to).await,
        Command::Store { command: StoreCommand::Counts { location, repair } } => counts::run(&location, repair).await,
        Command::Backup { command: None, take } => backup(take).await,
        Command::Backup { command: Some(BackupCommand::Verify { file, key_file, data_dir, config }), take } => {
            anyhow::ensure!(take.to.is_none(), "--to belongs to `mailroom backup`, not to `backup verify`");
            backup_verify(&file, key_file, data_dir, config).await
        }
        Command::Restore { file, location } => restore(&file, &location).await,
        Command::Dkim { command } => dkim::run(command),
        Command::Keys { command } => keys::run(command).await,
        Command::Rules { command: RulesCommand::Test { message, config, from, to, json } } => {
            rules_test(&message, config.as_deref(), from, to, json)
        }
        Command::Config { command: ConfigCommand::Check { config } } => {
            let settings = Settings::load(config.as_deref(), std::path::Path::new("."))?;
            for warning in &settings.warnings {
                eprintln!("warning: {warning}");
            }
            let dkim = settings.dkim.as_ref().map(|d| format!("; DKIM signing with {}", d.record().name)).unwrap_or_default();
            println!(
                "{}: OK ({} domains, {} queue addresses{dkim})",
                settings.source,
                settings.policy.domains.len(),
                settings.policy.addresses.len()
            );
            Ok(())
        }
    }
}

/// `mailroom audit verify [--anchor FILE]`: the chain, then every anchor in FILE (read first, so
/// a malformed file fails before the database is opened).
async fn audit_verify(anchor_file: Option<&std::path::Path>, location: &Location) -> anyhow::Result<()> {
    use crate::store::audit::ChainCheck;
    let anchors = match anchor_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let anchors = crate::store::audit_anchor::parse_file(&path.display().to_string(), &text).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(!anchors.is_empty(), "{}: no anchor lines", path.display());
            anchors
        }
        None => Vec::new(),
    };
    let check = open_existing(location).await?.verify_audit_anchored(&anchors).await?;
    let (entries, head) = match check.chain {
        ChainCheck::Intact { entries, head } => (entries, head),
        ChainCheck::Broken { id, reason } => anyhow::bail!("audit chain broken at entry {id}: {reason}"),
    };
    if !check.mismatches.is_empty() {
        let lines: Vec<String> = check.mismatches.iter().map(|m| m.to_string()).collect();
        anyhow::bail!(
            "audit chain intact ({entries} entries) but {} of {} anchors do not match:\n{}",
            lines.len(),
            anchors.len(),
            lines.join("\n")
        );
    }
    println!("audit chain intact: {entries} entries, head {}", hex_string(&head));
    if let Some(latest) = anchors.iter().map(|a| a.anchor.id).max() {
        println!("{} anchors match (the latest at entry {latest})", anchors.len());
    }
    Ok(())
}

/// `mailroom rules test`: the intake decision for one message, without storing anything.
fn rules_test(
    path: &std::path::Path,
    config: Option<&std::path::Path>,
    from: Option<String>,
    to: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    use crate::intake::{Envelope, Protocol, RecipientCheck, check_recipient, classify, record};
    let settings = Settings::load(config, std::path::Path::new("."))?;
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let record = record::extract(&raw);
    let mail_from = from.or_else(|| record.from.iter().find_map(|m| m.address.clone())).unwrap_or_default();
    let candidates: Vec<String> =
        if to.is_empty() { record.to.iter().chain(&record.cc).filter_map(|m| m.address.clone()).collect() } else { to };
    let mut recipients = Vec::new();
    let mut not_ours = Vec::new();
    for address in candidates {
        match check_recipient(&settings.policy, &address) {
            RecipientCheck::Accept(queue) => recipients.push((address, queue)),
            _ => not_ours.push(address),
        }
    }
    anyhow::ensure!(!recipients.is_empty(), "no recipient of this message is one of our addresses; give one with --to");
    let envelope = Envelope {
        mail_from,
        recipients,
        helo: "rules-test".into(),
        client_ip: [127, 0, 0, 1].into(),
        protocol: Protocol::Smtp,
        tls: None,
    };
    let received = chrono::Utc::now();
    let (decision, tags) = classify(&settings.policy, &envelope, &record, &raw, received, None, None, None);
    let due = settings.policy.calendar.due(received, decision.priority);
    let categories: std::collections::HashMap<&str, &str> =
        settings.config.categories.iter().map(|c| (c.code.as_str(), c.name.as_str())).collect();
    if json {
        let out = serde_json::json!({
            "record": record,
            "recipients": envelope.recipients,
            "matched": decision.matched.iter().map(|(rule, why)| serde_json::json!({"rule": rule, "because": why})).collect::<Vec<_>>(),
            "category": decision.category,
            "tags": decision.tags,
            "priority": decision.priority.as_str(),
            "queues": decision.queues,
            "due": due.to_rfc3339(),
            "acknowledge": decision.acknowledge,
            "spam": decision.spam,
            "registration_tags": tags.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("message     {}", path.display());
    println!("from        {}", record.from.iter().filter_map(|m| m.address.as_deref()).collect::<Vec<_>>().join(", "));
    println!("subject     {}", record.subject.as_deref().unwrap_or(""));
    println!("message-id  {}", record.message_id.as_deref().unwrap_or("-"));
    println!("recipients  {}", envelope.recipients.iter().map(|(a, q)| format!("{a} → {q}")).collect::<Vec<_>>().join(", "));
    if !not_ours.is_empty() {
        println!("not ours    {}", not_ours.join(", "));
    }
    println!("attachments {}", record.attachments.len());
    println!("automatic   {}", record.automatic);
    println!();
    if decision.matched.is_empty() {
        println!("no rule matched: routed by recipient");
    }
    for (rule, why) in &decision.matched {
        println!("rule {rule:?} matched: {}", why.join("; "));
    }
    println!();
    let category =
        decision.category.as_deref().map(|c| format!("{c} ({})", categories.get(c).unwrap_or(&"?"))).unwrap_or_else(|| "-".into());
    println!("category    {category}");
    println!("tags        {}", if decision.tags.is_empty() { "-".to_string() } else { decision.tags.join(", ") });
    println!("priority    {}", decision.priority.as_str());
    println!("queues      {}", decision.queues.join(", "));
    println!("due         {} (if received now)", due.with_timezone(&chrono::Local).to_rfc2822());
    println!("acknowledge {}", if decision.spam { "no (spam)".to_string() } else { decision.acknowledge.to_string() });
    for tag in tags {
        println!("thread      {tag:?}");
    }
    Ok(())
}

/// User and role commands may run before the first `serve` (to create the first officer), so
/// they create the database when the data dir exists but holds none yet.
async fn open_access(location: &Location) -> anyhow::Result<crate::access::Access> {
    anyhow::ensure!(location.data_dir.is_dir(), "no data dir at {} (create it, or run mailroom serve once)", location.data_dir.display());
    crate::store::prepare_data_dir(&location.data_dir)?;
    let settings = load(location)?;
    let store = Store::open_as(settings.store_options(), &application_name()).await.context("opening the store")?;
    let access = settings.access(store);
    access.seed_roles().await?;
    Ok(access)
}

/// One line of stdin without its line ending; never argv.
fn stdin_line(what: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line).with_context(|| format!("reading the {what} from stdin"))?;
    let trimmed = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    anyhow::ensure!(!trimmed.is_empty(), "no {what} on stdin");
    Ok(trimmed)
}

/// A new password asked twice at the terminal.
fn prompt_new_password() -> anyhow::Result<zeroize::Zeroizing<String>> {
    let first = zeroize::Zeroizing::new(rpassword::prompt_password("New password: ")?);
    let second = zeroize::Zeroizing::new(rpassword::prompt_password("Repeat it: ")?);
    anyhow::ensure!(*first == *second, "the passwords differ");
    Ok(first)
}

/// How the code is shown: once, on a line of its own, with what to do with it.
fn print_code(name: &str, code: &crate::access::enrolment::EnrolmentCode) {
    println!("enrolment code: {}", code.code.as_str());
    println!(
        "give it to {name} (shown only now; valid until {}); {name} sets a password with: mailroom user enrol {name}  (or POST /api/enrol)",
        code.expires_at
    );
}

async fn user_command(command: UserCommand) -> anyhow::Result<()> {
    use crate::access::admin::By;
    match command {
        UserCommand::Add { name, roles, password, location } => {
            let with_roles = if roles.is_empty() {
                " (no roles yet: grant one with mailroom role grant ROLE --user NAME)".to_string()
            } else {
                format!(" with roles {}", roles.join(", "))
            };
            if password.password_stdin {
                let password = stdin_line("password")?;
                open_access(&location).await?.add_user(&name, &password, &roles, &actor()).await?;
                println!("user {name} added{with_roles}");
            } else {
                let account = open_access(&location).await?.add_user_enrolled(&name, &roles, By::Host(&actor())).await?;
                println!("user {name} added{with_roles}");
                print_code(&name, &account.enrolment);
            }
        }
        UserCommand::List { json, location } => {
            let users = open_access(&location).await?.list_users().await?;
            let mut out = std::io::stdout().lock();
            for u in users {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&u)?)?;
                } else {
                    let state = if u.locked {
                        "locked".to_string()
                    } else if let Some(until) = &u.locked_out_until {
                        format!("locked-out-until {until}")
                    } else {
                        "active".to_string()
                    };
                    writeln!(out, "{:<24} {:<28} {}", u.name, state, if u.roles.is_empty() { "-".to_string() } else { u.roles.join(",") })?;
                }
            }
        }
        UserCommand::Passwd { name, password, location } => {
            if password.password_stdin {
                let password = stdin_line("password")?;
                open_access(&location).await?.set_password(&name, &password, &actor()).await?;
                println!("password of {name} changed; their sessions have ended");
            } else {
                let code = open_access(&location).await?.reset_password(&name, &actor()).await?;
                println!("password of {name} reset: the old one no longer works and their sessions have ended");
                print_code(&name, &code);
            }
        }
        UserCommand::Enrol { name, stdin, location } => {
            let (code, password) = if stdin {
                (stdin_line("enrolment code")?, stdin_line("new password")?)
            } else {
                anyhow::ensure!(std::io::IsTerminal::is_terminal(&std::io::stdin()), "no terminal to prompt on: use --stdin");
                (zeroize::Zeroizing::new(rpassword::prompt_password("Enrolment code: ")?), prompt_new_password()?)
            };
            let access = open_access(&location).await?;
            match access.enrol(&name, &code, &password, std::net::Ipv4Addr::LOCALHOST.into(), "cli").await {
                Ok(()) => println!("password of {name} set; log in with it"),
                Err(e) => anyhow::bail!("{e}"),
            }
        }
        UserCommand::Email { name, address, clear: _, location } => {
            open_access(&location).await?.set_email(&name, address.as_deref(), &actor()).await?;
            match address {
                Some(_) => println!("notifications of {name} are mailed to the address set"),
                None => println!("{name} has no notification address: the web page only"),
            }
        }
        UserCommand::Lock { name, location } => {
            open_access(&location).await?.lock_user(&name, &actor()).await?;
            println!("user {name} locked");
        }
        UserCommand::ResetTwoFactor { name, location } => {
            let reset = open_access(&location).await?.reset_two_factor(&name, &actor()).await?;
            let totp = if reset.totp { "TOTP and recovery codes removed" } else { "had no TOTP" };
            println!("user {name}: {totp}, {} app password(s) revoked, sessions ended", reset.app_passwords);
        }
        UserCommand::Unlock { name, location } => {
            open_access(&location).await?.unlock_user(&name, &actor()).await?;
            println!("user {name} unlocked");
        }
        UserCommand::Remove { name, location } => {
            open_access(&location).await?.remove_user(&name, &actor()).await?;
            println!("user {name} removed");
        }
    }
    Ok(())
}

/// `store copy`: the SQLite store of `from` into the PostgreSQL database `to`; prints what was
/// copied (tables and counts, never content).
async fn store_copy(from: Location, to: &str) -> anyhow::Result<()> {
    let settings = load(&from)?;
    anyhow::ensure!(from.data_dir.is_dir(), "no data dir at {} (wrong --from?)", from.data_dir.display());
    let summary = crate::store::copy::copy_to_postgres(&settings.store_options(), to, &actor()).await?;
    let mut out = std::io::stdout().lock();
    for (table, rows) in &summary.tables {
        writeln!(out, "{table:<24} {rows:>10}")?;
    }
    writeln!(out, "copied {} tables, {} rows in {:.1} s to {}", summary.tables.len(), summary.rows, summary.seconds, summary.target)?;
    writeln!(
        out,
        "checked: row counts equal in every table, counters ahead of every id, audit chain intact ({} entries with store.copy; source head {})",
        summary.audit_entries,
        hex_string(&summary.source_head)
    )?;
    writeln!(out, "run the nodes with [storage] database = \"{}\" and this data dir's key file", summary.target)?;
    Ok(())
}

async fn change_command(command: ChangeCommand) -> anyhow::Result<()> {
    use crate::access::admin::By;
    let print = |c: &crate::access::approvals::Change| {
        let what = match (&c.user, &c.queue) {
            (Some(user), _) => format!("user={user}"),
            (None, Some(queue)) => {
                format!("queue={queue} permissions={}", c.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","))
            }
            (None, None) => "-".into(),
        };
        let decided = c.decided_by.as_ref().map(|by| format!("  {} by {by}", c.status)).unwrap_or_default();
        // An approved reset's code goes to its requester over HTTP, never to the host's terminal.
        let code = c.code.map(|state| format!("  code {state}")).unwrap_or_default();
        println!(
            "{:>6}  {:<9} {:<12} role={:<20} {:<40} requested by {} at {}{decided}{code}",
            c.id,
            c.status,
            c.kind,
            c.role.as_deref().unwrap_or("-"),
            what,
            c.requested_by,
            c.requested_at
        );
    };
    match command {
        ChangeCommand::List { status, json, location } => {
            let filter = (status != "all").then_some(status.as_str());
            for change in open_access(&location).await?.list_changes(By::Host(&actor()), filter).await? {
                if json {
                    println!("{}", serde_json::to_string(&change)?);
                } else {
                    print(&change);
                }
            }
        }
        ChangeCommand::Approve { id, location } => {
            let change = open_access(&location).await?.decide_change(By::Host(&actor()), id, true).await?;
            print(&change);
        }
        ChangeCommand::Reject { id, location } => {
            let change = open_access(&location).await?.decide_change(By::Host(&actor()), id, false).await?;
            print(&change);
        }
    }
    Ok(())
}

fn permissions(list: &[String]) -> anyhow::Result<Vec<crate::access::Permission>> {
    list.iter().map(|p| p.trim().parse().map_err(|e: String| anyhow::anyhow!(e))).collect()
}

async fn role_command(command: RoleCommand) -> anyhow::Result<()> {
    match command {
        RoleCommand::Add { name, description, location } => {
            open_access(&location).await?.add_role(&name, &description, &actor()).await?;
            println!("role {name} added (grant it permissions with mailroom role grant {name} --queue Q --permission read)");
        }
        RoleCommand::Grant { role, target, location } => {
            let access = open_access(&location).await?;
            match (target.queue, target.user) {
                (Some(queue), _) => {
                    access.grant(&role, &queue, &permissions(&target.permissions)?, &actor()).await?;
                    println!("role {role} may now {} on {queue}", target.permissions.join(", "));
                }
                (None, Some(user)) => {
                    access.assign_role(&role, &user, &actor()).await?;
                    println!("user {user} now has role {role}");
                }
                (None, None) => anyhow::bail!("give --queue Q --permission P, or --user NAME"),
            }
        }
        RoleCommand::Revoke { role, target, location } => {
            let access = open_access(&location).await?;
            match (target.queue, target.user) {
                (Some(queue), _) => {
                    access.revoke(&role, &queue, &permissions(&target.permissions)?, &actor()).await?;
                    println!(
                        "revoked from role {role} on {queue}: {}",
                        if target.permissions.is_empty() { "everything".to_string() } else { target.permissions.join(", ") }
                    );
                }
                (None, Some(user)) => {
                    access.unassign_role(&role, &user, &actor()).await?;
                    println!("user {user} no longer has role {role}");
                }
                (None, None) => anyhow::bail!("give --queue Q [--permission P], or --user NAME"),
            }
        }
        RoleCommand::List { json, location } => {
            let roles = open_access(&location).await?.list_roles().await?;
            let mut out = std::io::stdout().lock();
            for r in roles {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&r)?)?;
                } else {
                    let grants: Vec<String> = r
                        .grants
                        .iter()
                        .map(|(q, ps)| format!("{q}:{}", ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("+")))
                        .collect();
                    writeln!(
                        out,
                        "{:<20} {:<40} {}",
                        r.name,
                        if grants.is_empty() { "-".to_string() } else { grants.join(" ") },
                        if r.members.is_empty() { "-".to_string() } else { r.members.join(",") }
                    )?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_command_is_named_by_its_subcommand_words() {
        let matches = Cli::command().get_matches_from(["mailroom", "audit", "verify", "--data-dir", "/d"]);
        assert_eq!(command_path(&matches), "audit-verify");
        let matches = Cli::command().get_matches_from(["mailroom", "serve", "--data-dir", "/d"]);
        assert_eq!(command_path(&matches), "serve");
    }
}
