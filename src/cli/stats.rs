//! `mailroom stats`: a period's statistics read straight from the store by an admin on the
//! machine (no staff role involved), audited as `stats.read` like the API's.

use super::{Location, actor, load, open_existing};
use crate::cases::period::{self, Period};
use crate::cases::period_export;

pub enum Format {
    Table,
    Json,
    Csv,
}

pub async fn run(from: &str, to: &str, queue: Option<&str>, format: Format, location: &Location) -> anyhow::Result<()> {
    let period = Period::parse(from, to).map_err(|reason| anyhow::anyhow!("{reason}"))?;
    let settings = load(location)?;
    let configured = settings.queue_names();
    let queues = match queue {
        None => configured,
        Some(q) if configured.iter().any(|c| c == q) => vec![q.to_string()],
        Some(q) => anyhow::bail!("no queue is named {q:?} (configured: {})", configured.join(", ")),
    };
    let store = open_existing(location).await?;
    let stats = period::report(&store, &settings.policy.calendar, &queues, period).await?;
    store.append_audit(vec![period::audit_entry(&actor(), period, &queues)]).await?;
    match format {
        Format::Table => print!("{}", period_export::to_table(&stats)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
        Format::Csv => print!("{}", period_export::to_csv(&stats)),
    }
    Ok(())
}
