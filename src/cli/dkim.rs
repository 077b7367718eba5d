//! `mailroom dkim generate` (a new signing key, its DNS record and the config lines) and
//! `mailroom dkim show` (the DNS record of the configured key). Never prints the private key.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};

use super::{Location, load};
use crate::config::Settings;
use crate::outbox::dkim::config::{DEFAULT_HEADERS, DkimConfig};
use crate::outbox::dkim::dns::DnsRecord;
use crate::outbox::dkim::key::{self, NewKey};

#[derive(Clone, Copy, ValueEnum)]
pub enum Algorithm {
    /// rsa-sha256: what every receiver verifies.
    Rsa,
    /// ed25519-sha256 (RFC 8463): short keys, but not every receiver verifies it yet.
    Ed25519,
}

#[derive(Subcommand)]
pub enum DkimCommand {
    /// Write a new private key (PKCS#8 PEM, mode 0600, never over an existing file) and print the
    /// DNS TXT record to publish and the `[dkim]` lines to add to the configuration.
    Generate {
        /// The selector: the key is published at SELECTOR._domainkey.DOMAIN (e.g. 2026-11).
        #[arg(long)]
        selector: String,
        /// The signing domain (default: the configuration's `[dkim] domain`, else its first `[mail] domains`).
        #[arg(long)]
        domain: Option<String>,
        /// Where to write the key (default: DATA_DIR/dkim-SELECTOR.pem, or ./dkim-SELECTOR.pem without a data dir).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// RSA key size: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: Algorithm,
        /// Data directory (for the default key file location).
        #[arg(long, env = "MAILROOM_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Configuration file (for the default domain).
        #[arg(long, env = "MAILROOM_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the DNS TXT record of the key the configuration's `[dkim]` section names.
    #[command(alias = "dns")]
    Show {
        #[command(flatten)]
        location: Location,
    },
}

pub(super) fn run(command: DkimCommand) -> anyhow::Result<()> {
    match command {
        DkimCommand::Generate { selector, domain, key_file, bits, algorithm, data_dir, config } => {
            let domain = match domain {
                Some(domain) => domain,
                None => default_domain(config.as_deref())?,
            };
            let key_file = key_file.unwrap_or_else(|| data_dir.unwrap_or_default().join(format!("dkim-{selector}.pem")));
            let section = DkimConfig {
                domain: domain.trim_end_matches('.').to_string(),
                selector,
                key_file,
                headers: DEFAULT_HEADERS.iter().map(|h| h.to_string()).collect(),
            };
            if let Err((key, reason)) = section.validate() {
                anyhow::bail!("--{}: {reason}", key.replace('_', "-"));
            }
            generate(&section, bits, algorithm)
        }
        DkimCommand::Show { location } => {
            let settings = load(&location)?;
            let Some(signer) = &settings.dkim else {
                anyhow::bail!("{}: no [dkim] section: outgoing mail is not signed", settings.source);
            };
            print_record(signer.record());
            Ok(())
        }
    }
}

/// `[dkim] domain`, else the first of `[mail] domains` (the demo configuration's without --config).
fn default_domain(config: Option<&Path>) -> anyhow::Result<String> {
    let config = Settings::parse_only(config)?;
    config
        .dkim
        .map(|d| d.domain)
        .or_else(|| config.mail.domains.first().cloned())
        .ok_or_else(|| anyhow::anyhow!("give --domain: the configuration names no mail domain"))
}

fn generate(section: &DkimConfig, bits: usize, algorithm: Algorithm) -> anyhow::Result<()> {
    let NewKey { pem, kind, public_key } = match algorithm {
        Algorithm::Rsa => key::generate_rsa(bits),
        Algorithm::Ed25519 => key::generate_ed25519(),
    }
    .map_err(anyhow::Error::msg)?;
    key::write_new(&section.key_file, &pem).map_err(anyhow::Error::msg)?;
    let path = std::fs::canonicalize(&section.key_file).unwrap_or_else(|_| section.key_file.clone());
    let what = match algorithm {
        Algorithm::Rsa => format!("RSA {bits} bits"),
        Algorithm::Ed25519 => "Ed25519".to_string(),
    };
    println!("wrote the private key ({what}, PKCS#8 PEM, mode 0600): {}", path.display());
    println!();
    print_record(&DnsRecord::new(&section.selector, &section.domain, kind, &public_key));
    println!();
    println!("Then add to the configuration (and restart mailroom):");
    println!("[dkim]");
    println!("domain = {}", toml_string(&section.domain));
    println!("selector = {}", toml_string(&section.selector));
    println!("key_file = {}", toml_string(&path.display().to_string()));
    Ok(())
}

fn print_record(record: &DnsRecord) {
    println!("Publish this DNS TXT record (zone-file syntax; the value in strings of at most 255 bytes):");
    println!("{}", record.zone_line());
    println!();
    println!("For a DNS provider's form: name {}, value (unsplit):", record.name);
    println!("{}", record.value);
}

/// A TOML basic string (quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
