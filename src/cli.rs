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
            let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
            let raw = store.read_raw(&number, &actor).await?;
            std::io::stdout().lock().write_all(&raw)?;
            Ok(())
        }
        Command::Config { command: ConfigCommand::Check { config } } => {
            let settings = Settings::load(config.as_deref(), std::path::Path::new("."))?;
            println!("{}: OK ({} domains, {} queue addresses)", settings.source, settings.domains.len(), settings.addresses.len());
            Ok(())
        }
    }
}
