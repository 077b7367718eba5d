//! `mailroom erase`: crypto-shredding of everything stored of one customer address, by a
//! security officer named with `--by` (checked against the store's users and roles), with a
//! receipt printed and appended to the audit chain (the address only as its blind index).

use std::io::Write;

use anyhow::Context;

use super::{Location, actor, load, open_existing};
use crate::access::Principal;
use crate::store::Store;
use crate::store::purge::{PurgeReport, Scope};

/// The officer named by `--by`: an existing, unlocked user with the security-officer role.
/// A refusal is audited too (who tried, as whom).
pub(super) async fn officer(store: &Store, location: &Location, by: &str, what: &str) -> anyhow::Result<Principal> {
    let settings = load(location)?;
    let access = settings.access(store.clone());
    let principal = match store.user_id(by).await? {
        Some(id) => access.principal(id).await?,
        None => None,
    };
    match principal {
        Some(p) if p.officer => Ok(p),
        _ => {
            store
                .append_audit(vec![crate::store::audit::AuditEntry {
                    at: crate::store::now_millis(),
                    actor: actor(),
                    action: format!("{what}.refused"),
                    object: Some(format!("user:{by}")),
                    detail: Some("not an active security officer".into()),
                }])
                .await?;
            anyhow::bail!("{by:?} is not an active security officer: {what} needs one (--by NAME)")
        }
    }
}

/// `mailroom erase --address ADDR --by OFFICER [--dry-run] [--json]`.
pub async fn erase(address: &str, by: &str, dry_run: bool, json: bool, location: &Location) -> anyhow::Result<()> {
    let address = address.trim();
    let (local, domain) = address.rsplit_once('@').unwrap_or(("", ""));
    anyhow::ensure!(
        !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace),
        "{address:?} is not an e-mail address"
    );
    let store = open_existing(location).await?;
    let officer = officer(&store, location, by, "erasure").await?;
    let report = store
        .purge(&Scope::Address(address.to_string()), &format!("{} ({})", officer.actor(), actor()), "erasure", dry_run)
        .await
        .context("erasing")?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_receipt(&mut out, &report, &format!("erasure of address index {}", hex(&store.keys.address_index(address))))?;
    }
    Ok(())
}

/// The receipt of a purge: counts and registration numbers (no customer data).
pub(super) fn print_receipt(out: &mut impl Write, r: &PurgeReport, title: &str) -> std::io::Result<()> {
    let dry = if r.dry_run { " — dry run: nothing was changed" } else { "" };
    writeln!(out, "{title}{dry}")?;
    let list = |v: &[String]| if v.is_empty() { String::new() } else { format!(": {}", v.join(", ")) };
    writeln!(out, "messages purged     {}{}", r.messages.len(), list(&r.messages))?;
    writeln!(out, "cases shredded      {}", r.cases)?;
    writeln!(out, "outbox rows         {}", r.outbox)?;
    writeln!(out, "participant rows    {}", r.participants)?;
    writeln!(out, "directory entries   {}", r.customers)?;
    writeln!(out, "held cases skipped  {}{}", r.held.len(), list(&r.held))?;
    if !r.dry_run {
        writeln!(
            out,
            "recorded in the audit log (action {})",
            if r.purged_by == crate::store::purge::ERASURE { "erasure" } else { "retention.purge" }
        )?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
