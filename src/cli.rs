//! Command line: `serve`, and the admin commands that work on the same data dir and config.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::store::Store;

#[derive(Parser)]
#[command(name = "mailroom", version, about = "SMTP-native front door for customer mail: every message registered, encrypted, routed")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Re-compute the hash chain: exit 0 and print the head hash if intact, exit 1 naming the
    /// first altered or missing entry otherwise.
    Verify {
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
    /// List registrations (number, time, size, protocol, TLS, queue), oldest first. No customer data.
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
    anyhow::ensure!(db.exists(), "no mailroom database at {} (wrong --data-dir?)", db.display());
    Store::open(settings).await.context("opening the store")
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { location } => crate::server::serve(load(&location)?).await,
        Command::Message { command: MessageCommand::List { location, json, limit } } => {
            let store = open_existing(&location).await?;
            let mut out = std::io::stdout().lock();
            for m in store.list(limit).await? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&m)?)?;
                } else {
                    writeln!(out, "{}  {}  {:>9}  {}  {:<10}  {}{}", m.number, m.received_at, m.size, m.protocol, m.queue, m.tls.as_deref().unwrap_or("no-tls"), if m.duplicate_count > 0 { format!("  retries={}", m.duplicate_count) } else { String::new() })?;
                }
            }
            Ok(())
        }
        Command::Message { command: MessageCommand::Show { number, location } } => {
            let store = open_existing(&location).await?;
            let raw = store.read_raw(&number, &actor()).await?;
            std::io::stdout().lock().write_all(&raw)?;
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { location } } => match open_existing(&location).await?.verify_audit().await? {
            crate::store::audit::ChainCheck::Intact { entries, head } => {
                println!("audit chain intact: {entries} entries, head {}", hex_string(&head));
                Ok(())
            }
            crate::store::audit::ChainCheck::Broken { id, reason } => anyhow::bail!("audit chain broken at entry {id}: {reason}"),
        },
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
        Command::Rules { command: RulesCommand::Test { message, config, from, to, json } } => rules_test(&message, config.as_deref(), from, to, json),
        Command::Config { command: ConfigCommand::Check { config } } => {
            let settings = Settings::load(config.as_deref(), std::path::Path::new("."))?;
            println!("{}: OK ({} domains, {} queue addresses)", settings.source, settings.domains.len(), settings.addresses.len());
            Ok(())
        }
    }
}

/// `mailroom rules test`: the intake decision for one message, without storing anything.
fn rules_test(path: &std::path::Path, config: Option<&std::path::Path>, from: Option<String>, to: Vec<String>, json: bool) -> anyhow::Result<()> {
    use crate::intake::{Envelope, Protocol, RecipientCheck, check_recipient, classify, record};
    let settings = Settings::load(config, std::path::Path::new("."))?;
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let record = record::extract(&raw);
    let mail_from = from.or_else(|| record.from.iter().find_map(|m| m.address.clone())).unwrap_or_default();
    let candidates: Vec<String> = if to.is_empty() { record.to.iter().chain(&record.cc).filter_map(|m| m.address.clone()).collect() } else { to };
    let mut recipients = Vec::new();
    let mut not_ours = Vec::new();
    for address in candidates {
        match check_recipient(&settings, &address) {
            RecipientCheck::Accept(queue) => recipients.push((address, queue)),
            _ => not_ours.push(address),
        }
    }
    anyhow::ensure!(!recipients.is_empty(), "no recipient of this message is one of our addresses; give one with --to");
    let envelope = Envelope { mail_from, recipients, helo: "rules-test".into(), client_ip: [127, 0, 0, 1].into(), protocol: Protocol::Smtp, tls: None };
    let received = chrono::Utc::now();
    let (decision, tags) = classify(&settings, &envelope, &record, &raw, received, None, None, None);
    let due = settings.calendar.due(received, decision.priority);
    let categories: std::collections::HashMap<&str, &str> = settings.config.categories.iter().map(|c| (c.code.as_str(), c.name.as_str())).collect();
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
    let category = decision.category.as_deref().map(|c| format!("{c} ({})", categories.get(c).unwrap_or(&"?"))).unwrap_or_else(|| "-".into());
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
