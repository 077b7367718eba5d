//! `mailroom keys status|add|rotate`: master key versions and their rotation. Rotation adds a
//! version to the key file, re-wraps every data key under it in short transactions (resumable:
//! a run that finds more than one version in the file continues that rotation), then retires the
//! old versions from the file once no row needs them. The blind-index key is not rotatable.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::{Location, actor, load, open_existing};
use crate::store::Store;
use crate::store::crypto::{KeyRing, KeyVersion};
use crate::store::rotation::{self, KeyCount, RetireError};

/// Why the index key stays (printed by `keys status`, said in the README).
const INDEX_KEY_NOTE: &str = "index key: not rotatable: the blind indexes (addresses, Message-IDs, case tags) and the audit \
     chain's MACs are computed with it; another one would orphan every index and break the chain";

/// How long after a version is added before the old ones may be retired: a data key a server
/// wrapped just before it noticed the new file gets this long to be committed (and re-wrapped).
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Subcommand)]
pub enum KeysCommand {
    /// The master key versions in the key file, how many data keys each wraps per table, and
    /// whether a rotation is in progress.
    Status {
        #[command(flatten)]
        location: Location,
    },
    /// Add a new master key version to a key file only. Several nodes: add it to a copy
    /// (`--key-file COPY`), put that copy in place on every node, then run `keys rotate` once,
    /// which continues from there.
    Add {
        /// The key file to add the version to (default: the one of --data-dir/--config, which a
        /// server running on it takes over at once).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Data directory (without --key-file).
        #[arg(long, env = "MAILROOM_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Configuration file (without --key-file).
        #[arg(long, env = "MAILROOM_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Add a new master key version (or continue a rotation already begun), re-wrap every data
    /// key under it in batches while mail keeps coming in, then retire the old versions.
    Rotate {
        /// Data keys re-wrapped per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Re-wrap, but keep the old versions in the key file (retire with a later `keys rotate`).
        #[arg(long)]
        no_retire: bool,
        #[command(flatten)]
        location: Location,
    },
}

pub(super) async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Status { location } => status(&location).await,
        KeysCommand::Add { key_file: Some(path), .. } => {
            // A copy not in use yet: nothing to audit until `keys rotate` runs with it.
            let id = KeyRing::add_version(&path)?;
            println!("added master key version {id} to {}", path.display());
            println!("put this file in place on every node, then run `mailroom keys rotate` once to re-wrap and retire the old versions");
            Ok(())
        }
        KeysCommand::Add { key_file: None, data_dir, config } => {
            let data_dir = data_dir.ok_or_else(|| anyhow::anyhow!("give --data-dir (or --key-file)"))?;
            let location = Location { data_dir, config };
            let path = load(&location)?.master_key_path();
            let store = open_existing(&location).await?;
            let from = store.keys.current_id();
            let id = KeyRing::add_version(&path)?;
            store.append_audit(vec![rotation::audit_entry(&actor(), "keys.add", format!("version={id} previous={from}"))]).await?;
            println!("added master key version {id} to {}; new data keys are wrapped by it", path.display());
            println!("run `mailroom keys rotate` to re-wrap the older data keys and retire the old versions");
            Ok(())
        }
        KeysCommand::Rotate { batch, no_retire, location } => rotate(batch, no_retire, &location).await,
    }
}

async fn status(location: &Location) -> anyhow::Result<()> {
    let store = open_existing(location).await?;
    let current = store.keys.current_id();
    println!("key file: {}", store.keys.path().display());
    for KeyVersion { id, created } in store.keys.versions() {
        let mark = if id == current { "  (current)" } else { "" };
        println!("version {id}: created {created}{mark}");
    }
    let counts = store.key_counts().await?;
    println!("data keys by table and version:");
    if counts.is_empty() {
        println!("  (none yet)");
    }
    for KeyCount { table, key_id, rows } in &counts {
        println!("  {table} v{key_id}: {rows}");
    }
    let old: u64 = counts.iter().filter(|c| c.key_id != current).map(|c| c.rows).sum();
    let versions = store.keys.versions().len();
    if old > 0 || versions > 1 {
        println!(
            "rotation: in progress to version {current}: {old} data keys under older versions, {} versions in the key file \
             (`mailroom keys rotate` continues it)",
            versions
        );
    } else {
        println!("rotation: none in progress");
    }
    println!("{INDEX_KEY_NOTE}");
    Ok(())
}

async fn rotate(batch: u32, no_retire: bool, location: &Location) -> anyhow::Result<()> {
    let path = load(location)?.master_key_path();
    let store = open_existing(location).await?;
    let resuming = store.keys.versions().len() > 1;
    if !resuming {
        KeyRing::add_version(&path)?;
        store.keys.reload()?;
    }
    let target = store.keys.current_id();
    let old: Vec<String> = store.keys.versions().iter().filter(|v| v.id != target).map(|v| v.id.to_string()).collect();
    let action = if resuming { "resuming the rotation" } else { "rotating" };
    println!("{action} to master key version {target} (older versions: {})", old.join(", "));
    let detail = format!("to={target} from={} resumed={resuming}", old.join(","));
    store.append_audit(vec![rotation::audit_entry(&actor(), "keys.rotate", detail)]).await?;

    let mut total = rewrap_all(&store, batch, target).await?;
    if no_retire {
        println!("done: {total} data keys re-wrapped; the old versions stay in the key file (--no-retire)");
        return Ok(());
    }
    // Give a server that wrapped a data key under the old version just before it took over the
    // new file the time to commit it, and re-wrap what it committed.
    let created = store.keys.versions().into_iter().find(|v| v.id == target).map(|v| v.created).unwrap_or_default();
    if let Ok(created) = chrono::DateTime::parse_from_rfc3339(&created) {
        let age = (chrono::Utc::now() - created.with_timezone(&chrono::Utc)).to_std().unwrap_or_default();
        if let Some(wait) = SETTLE.checked_sub(age) {
            tokio::time::sleep(wait).await;
        }
    }
    total += rewrap_all(&store, batch, target).await?;
    println!("checking that no data key needs versions {} any more", old.join(", "));
    if let Some(pause) = test_pause() {
        tokio::time::sleep(pause).await;
    }
    let entry = rotation::audit_entry(&actor(), "keys.retire", format!("keep={target} retired={}", old.join(",")));
    match store.retire_keys(target, entry, || KeyRing::retire_all_but(&path, target)).await {
        Ok(retired) => {
            let retired: Vec<String> = retired.iter().map(|id| id.to_string()).collect();
            println!(
                "done: {total} data keys re-wrapped; retired versions [{}]; the key file holds only version {target}",
                retired.join(", ")
            );
            Ok(())
        }
        Err(RetireError::StillWrapped(still)) => anyhow::bail!("{still}"),
        Err(RetireError::Store(e)) => Err(e).context("retiring the old master key versions"),
    }
}

/// Re-wraps batch after batch until no data key is under another version than `target`.
async fn rewrap_all(store: &Store, batch: u32, target: u32) -> anyhow::Result<u64> {
    let pending = |counts: &[KeyCount]| counts.iter().filter(|c| c.key_id != target).map(|c| c.rows).sum::<u64>();
    let mut todo = pending(&store.key_counts().await?);
    let mut done = 0u64;
    let pause = test_pause();
    loop {
        let n = store.rewrap_batch(batch).await?;
        if n == 0 {
            return Ok(done);
        }
        done += n;
        todo = todo.max(done);
        println!("re-wrapped {done} of {todo} data keys");
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Only for tests/key_rotation.rs: a pause after each batch and before the retirement check, so
/// that a test can kill the process mid-way or write a row under an old version meanwhile.
fn test_pause() -> Option<Duration> {
    std::env::var("MAILROOM_TEST_ROTATE_PAUSE_MS").ok().and_then(|ms| ms.parse().ok()).map(Duration::from_millis)
}
