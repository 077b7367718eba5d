//! `mailroom store counts [--repair]`: compares the queue counters (what queue counts are read
//! from, kept with every change of a case) with a full count of the cases; `--repair` rewrites
//! them from it, audited as `store.recount`. Works on a running store (it takes the write lock
//! for the count's duration). No customer data: queue names, statuses, times and numbers.

use std::io::Write;

use super::{Location, actor, open_existing};
use crate::store::cases::counters::{CounterCheck, Key};

pub async fn run(location: &Location, repair: bool) -> anyhow::Result<()> {
    let store = open_existing(location).await?;
    let check = if repair { store.recount_queue_counters(&actor()).await? } else { store.check_queue_counters().await? };
    let mut out = std::io::stdout().lock();
    print_mismatches(&mut out, &check)?;
    let differ = check.mismatches.len();
    if repair {
        writeln!(out, "queue counters rewritten from a full count: {} rows ({differ} differed before)", check.rows)?;
        return Ok(());
    }
    anyhow::ensure!(
        differ == 0,
        "{differ} queue counter rows differ from a full count of the cases; `mailroom store counts --repair` rewrites them"
    );
    writeln!(out, "queue counters: {} rows, each equal to a full count of the cases", check.rows)?;
    Ok(())
}

fn print_mismatches(out: &mut impl Write, check: &CounterCheck) -> std::io::Result<()> {
    for m in &check.mismatches {
        let row = match &m.key {
            Key::Count { queue, status, unassigned } => format!("count queue={queue} status={status} unassigned={unassigned}"),
            Key::Due { queue, width, start } => format!("due queue={queue} width_ms={width} start_ms={start}"),
        };
        writeln!(out, "differs: {row} kept={} counted={}", m.kept, m.counted)?;
    }
    Ok(())
}
