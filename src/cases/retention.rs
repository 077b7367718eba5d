//! Retention policies (`[[retention]]`): how long the registrations of closed cases of a queue
//! and/or category are kept, counted from the case's closure. A run shreds what each policy has
//! let expire through `store::purge` (transactions of at most `PURGE_BATCH` messages, each with
//! its audit entry); open cases are never touched, nor cases under legal hold (reported). The server
//! runs it every `server.retention_every` on the node holding its lease; `mailroom retention
//! run` runs it by hand (or `--dry-run`: what would go, nothing changed).
//!
//! A closed case's closure is taken as its last change (`cases.updated_at`): a closed case
//! changes only by staff actions after closing, so this is the closure or later, never earlier,
//! and nothing is purged before its time.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::store::purge::{ERASURE, PurgeReport, Scope};
use crate::store::{Store, StoreError, audit::AuditEntry, now_millis};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// One `[[retention]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Names the policy in tombstones (`purged_by`), the audit log and the metric.
    pub name: String,
    /// Only cases in this queue.
    pub queue: Option<String>,
    /// Only cases of this category (code).
    pub category: Option<String>,
    /// Days after a case's closure its registrations are kept (0: purged at the next run).
    pub keep_days: u32,
}

/// Each policy well-formed, named once, naming configured queues and categories; or
/// (key such as `[1].queue`, reason).
pub fn validate(policies: &[RetentionPolicy], queues: &BTreeSet<String>, categories: &BTreeSet<String>) -> Result<(), (String, String)> {
    let mut names = BTreeSet::new();
    for (i, p) in policies.iter().enumerate() {
        let at = |key: &str| format!("[{i}].{key}");
        let name_ok = !p.name.is_empty()
            && p.name.len() <= 64
            && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err((at("name"), "must be 1 to 64 letters, digits, '-', '_' or '.'".into()));
        }
        if p.name == ERASURE {
            return Err((at("name"), format!("{ERASURE:?} is reserved for `mailroom erase`")));
        }
        if !names.insert(p.name.as_str()) {
            return Err((at("name"), format!("policy {:?} is defined twice", p.name)));
        }
        if p.queue.is_none() && p.category.is_none() {
            return Err((format!("[{i}]"), "needs a queue, a category or both".into()));
        }
        if let Some(queue) = p.queue.as_ref().filter(|q| !queues.contains(*q)) {
            return Err((at("queue"), format!("no queue is named {queue:?}")));
        }
        if let Some(category) = p.category.as_ref().filter(|c| !categories.contains(*c)) {
            return Err((at("category"), format!("no category has the code {category:?}")));
        }
        if p.keep_days > 36_500 {
            return Err((at("keep_days"), "must be at most 36500 (100 years)".into()));
        }
    }
    Ok(())
}

impl RetentionPolicy {
    fn scope(&self, now: i64) -> Scope {
        Scope::Closed {
            policy: self.name.clone(),
            queue: self.queue.clone(),
            category: self.category.clone(),
            closed_before: now - i64::from(self.keep_days) * DAY_MS,
        }
    }
}

/// Applies every policy in order at `now` (unix ms) as `actor`; one report per policy. A real run
/// that purged anything, and every run by hand (`always_audit`), appends a `retention.run` entry
/// with the counts per policy (the purges themselves are `retention.purge` entries).
pub async fn run(
    store: &Store,
    policies: &[RetentionPolicy],
    now: i64,
    actor: &str,
    dry_run: bool,
    always_audit: bool,
) -> Result<Vec<PurgeReport>, StoreError> {
    let mut reports = Vec::with_capacity(policies.len());
    for policy in policies {
        let report = store.purge(&policy.scope(now), actor, "retention.purge", dry_run).await?;
        if !dry_run {
            metrics::counter!("mailroom_retention_purged_total", "policy" => policy.name.clone()).increment(report.messages.len() as u64);
        }
        reports.push(report);
    }
    let purged: usize = reports.iter().map(|r| r.messages.len()).sum();
    if always_audit || (purged > 0 && !dry_run) {
        let counts: Vec<String> =
            reports.iter().map(|r| format!("{}={}{}", r.purged_by, r.messages.len(), held_note(r.held.len()))).collect();
        let entry = AuditEntry {
            at: now_millis(),
            actor: actor.into(),
            action: "retention.run".into(),
            object: None,
            detail: Some(format!("dry_run={dry_run} purged={purged} {}", counts.join(" "))),
        };
        store.append_audit(vec![entry]).await?;
    }
    Ok(reports)
}

fn held_note(held: usize) -> String {
    if held > 0 { format!("(held={held})") } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, queue: Option<&str>, category: Option<&str>) -> RetentionPolicy {
        RetentionPolicy { name: name.into(), queue: queue.map(Into::into), category: category.map(Into::into), keep_days: 30 }
    }

    #[test]
    fn policies_name_configured_queues_and_categories_once() {
        let queues: BTreeSet<String> = ["support".to_string(), "sales".to_string()].into();
        let categories: BTreeSet<String> = ["BZZX".to_string()].into();
        let ok = [policy("support-2y", Some("support"), None), policy("offers", Some("sales"), Some("BZZX"))];
        assert_eq!(validate(&ok, &queues, &categories), Ok(()));
        let check = |list: &[RetentionPolicy]| validate(list, &queues, &categories).unwrap_err();
        assert_eq!(check(&[policy("a", Some("nope"), None)]).0, "[0].queue");
        assert_eq!(check(&[policy("a", None, Some("XXXX"))]).0, "[0].category");
        assert_eq!(check(&[policy("a", None, None)]).0, "[0]");
        assert_eq!(check(&[policy("a b", Some("support"), None)]).0, "[0].name");
        assert_eq!(check(&[policy("erasure", Some("support"), None)]).0, "[0].name");
        assert_eq!(check(&[ok[0].clone(), ok[0].clone()]).0, "[1].name");
        let long = RetentionPolicy { keep_days: 40_000, ..ok[0].clone() };
        assert_eq!(check(&[long]).0, "[0].keep_days");
    }
}
