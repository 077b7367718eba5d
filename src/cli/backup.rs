//! `mailroom backup --to FILE`, `mailroom backup verify FILE` and `mailroom restore FILE`: the
//! store does the work (`store::backup`); this prints what happened, never customer data.

use std::path::{Path, PathBuf};

use super::{BackupArgs, Location, actor, hex_string, load, open_existing};
use crate::config::Settings;
use crate::store::backup::{self, POSTGRES_REFUSAL, VerifySummary};

pub(super) async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let (Some(to), Some(data_dir)) = (args.to, args.data_dir) else {
        anyhow::bail!("give --to FILE and --data-dir DIR");
    };
    let location = Location { data_dir, config: args.config };
    let settings = load(&location)?;
    // Before anything is opened: a PostgreSQL store is not this command's to copy.
    anyhow::ensure!(settings.config.storage.postgres_url().is_none(), "{POSTGRES_REFUSAL}");
    let store = open_existing(&location).await?;
    let summary = store.backup_to(&to, &actor()).await;
    store.close().await;
    let summary = summary?;
    println!(
        "backup written: {} ({} bytes): {} messages{}, {} audit entries",
        summary.file.display(),
        summary.bytes,
        summary.messages,
        summary.last_number.map(|n| format!(" up to {n}")).unwrap_or_default(),
        summary.audit_entries
    );
    println!(
        "snapshot: {} ms in one read transaction (the server's writer does not wait for it); the store.backup audit entry took {} ms",
        summary.snapshot.as_millis(),
        summary.audit_append.as_millis()
    );
    let key = settings.master_key_path();
    println!(
        "the key file is NOT in the backup: keep a copy of {} apart from it (without the key nothing in it can be read)",
        key.display()
    );
    println!("check it with: mailroom backup verify {} --key-file {}", summary.file.display(), key.display());
    Ok(())
}

pub(super) async fn backup_verify(
    file: &Path,
    key_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let key = match (key_file, data_dir) {
        (Some(key), _) => key,
        (None, Some(data_dir)) => Settings::load(config.as_deref(), &data_dir)?.master_key_path(),
        (None, None) => {
            anyhow::bail!("give --key-file FILE: the key file of the data dir the backup was made from (it is not in the backup)")
        }
    };
    let summary = backup::verify(file, &key).await?;
    println!("backup {} verified with the key file {}", file.display(), key.display());
    print_summary(&summary);
    Ok(())
}

pub(super) async fn restore(file: &Path, location: &Location) -> anyhow::Result<()> {
    let settings = load(location)?;
    let summary = backup::restore(file, &settings.store_options(), &actor()).await?;
    println!("backup {} verified and restored as {}", file.display(), summary.database.display());
    print_summary(&summary.verified);
    println!("start the server with: mailroom serve --data-dir {}", location.data_dir.display());
    Ok(())
}

fn print_summary(s: &VerifySummary) {
    println!("schema version  {}", s.schema_version);
    let numbering: Vec<String> = s.numbering.iter().map(|(year, last)| format!("year {year}: 1..={last}")).collect();
    println!(
        "messages        {} (every one decrypted; numbering gap-free: {})",
        s.messages,
        if numbering.is_empty() { "none yet".to_string() } else { numbering.join(", ") }
    );
    if s.purged > 0 {
        println!("purged          {} (tombstones: numbered, content destroyed by retention or erasure)", s.purged);
    }
    println!("cases           {} ({} with sealed tags, decrypted)", s.cases, s.tagged_cases);
    println!("case entries    {} (decrypted)", s.case_entries);
    println!("outbox rows     {} (decrypted)", s.outbox);
    println!("directory       {} (decrypted)", s.customers);
    println!("reset codes     {} (decrypted)", s.reset_codes);
    println!("audit chain intact: {} entries, head {}", s.audit_entries, hex_string(&s.audit_head));
}
