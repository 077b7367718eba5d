//! `mailroom erase`: crypto-shredding of everything stored of one customer address, by a
//! security officer named with `--by` (checked against the store's users and roles), with a
//! receipt printed and appended to the audit chain (the address only as its blind index).
//! `mailroom retention run`: the `[[retention]]` policies, now. `mailroom case hold|release`:
//! legal hold, by an officer.

use std::io::Write;

use anyhow::Context;

use super::{CaseCommand, Location, actor, load, open_existing};
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
    if !r.dry_run && (!r.messages.is_empty() || r.purged_by == crate::store::purge::ERASURE) {
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

/// `mailroom retention run [--dry-run] [--json]`.
pub async fn run(dry_run: bool, json: bool, location: &Location) -> anyhow::Result<()> {
    let settings = load(location)?;
    let policies = &settings.config.retention;
    anyhow::ensure!(!policies.is_empty(), "{}: no [[retention]] policy is configured", settings.source);
    let store = open_existing(location).await?;
    let reports = crate::cases::retention::run(&store, policies, crate::store::now_millis(), &actor(), dry_run, true).await?;
    let mut out = std::io::stdout().lock();
    for (policy, report) in policies.iter().zip(&reports) {
        if json {
            writeln!(out, "{}", serde_json::to_string(report)?)?;
        } else {
            let scope = [policy.queue.as_ref().map(|q| format!("queue {q}")), policy.category.as_ref().map(|c| format!("category {c}"))];
            let scope: Vec<String> = scope.into_iter().flatten().collect();
            let title = format!("policy {} ({}, closed more than {} days ago)", policy.name, scope.join(", "), policy.keep_days);
            print_receipt(&mut out, report, &title)?;
        }
    }
    Ok(())
}

/// `mailroom case hold|release|holds`.
pub async fn case(command: CaseCommand) -> anyhow::Result<()> {
    match command {
        CaseCommand::Hold { number, by, reason, location } => {
            let reason = reason.trim();
            anyhow::ensure!(!reason.is_empty() && reason.len() <= 500, "--reason: say why, in at most 500 characters");
            hold(&number, &by, Some(reason), &location).await
        }
        CaseCommand::Release { number, by, location } => hold(&number, &by, None, &location).await,
        CaseCommand::Holds { json, location } => {
            let store = open_existing(&location).await?;
            let mut out = std::io::stdout().lock();
            for h in store.holds().await? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&h)?)?;
                } else {
                    let at = crate::store::millis_to_rfc3339(h.held_at);
                    writeln!(out, "{}  case {:<6} {:<12} held {at} by {}: {}", h.opening, h.case, h.queue, h.held_by, h.reason)?;
                }
            }
            Ok(())
        }
    }
}

async fn hold(number: &str, by: &str, reason: Option<&str>, location: &Location) -> anyhow::Result<()> {
    let store = open_existing(location).await?;
    let what = if reason.is_some() { "legal hold" } else { "releasing a legal hold" };
    let officer = officer(&store, location, by, if reason.is_some() { "case.hold" } else { "case.release" }).await?;
    let format = &load(location)?.policy.reg_format;
    let (year, seq) =
        format.parse_number(number.trim(), true).map_err(|e| anyhow::anyhow!("{number:?} is not a registration number: {e}"))?;
    let id = store
        .message_id_by_registration(format.counter_year(year), seq)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no message is registered as {number}"))?;
    let opening = store.message_number(id).await?;
    let changed = store.set_hold(&opening, reason, &format!("{} ({})", officer.actor(), actor())).await.context(what)?;
    match (reason.is_some(), changed.len()) {
        (true, 0) => println!("{opening}: no case opened by it that is not already held (nothing changed)"),
        (false, 0) => println!("{opening}: no case opened by it is held (nothing changed)"),
        (true, n) => println!("{opening}: {n} case(s) under legal hold: retention and erasure skip them until released"),
        (false, n) => println!("{opening}: legal hold released on {n} case(s)"),
    }
    Ok(())
}
