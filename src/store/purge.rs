//! Crypto-shredding: retention and erasure destroy what opens a registration's data and keep the
//! registration itself. A purged message keeps its row as a tombstone (number, received_at, size,
//! case → queue, `purged_at`, `purged_by`); its wrapped data key, trace header, record, raw bytes
//! (`message_blobs`), blind indexes and IMAP placement (`message_cases`, flags) are destroyed. A
//! case with no unpurged message left loses its sealed staff entries, its sealed tags and their
//! index, and its participants. Outgoing mail of those messages and cases is shredded too (its
//! key and text; a row not yet sent becomes `purged` and is never sent); the rows stay because
//! case entries and notifications point at them.
//!
//! Everything of one run happens in one write transaction (the writer lock) with its audit entry.
//! On SQLite every connection runs with `secure_delete` (freed and moved row contents are zeroed
//! in the pages, also by the page splits of ordinary writes, which would otherwise leave old
//! copies of rows in unused page space), and the WAL is truncated after the commit, so neither
//! the database file nor the WAL holds a destroyed key afterwards. On PostgreSQL the old row versions stay in the
//! table files until VACUUM, but the keys that opened them are gone: nothing is decryptable.
//!
//! A dry run does the same work and rolls it back: what it reports is what a real run would do.
//! Cases under legal hold are never touched (and are reported).

use super::audit::{self, AuditEntry};
use super::engine::{Conn, on_conn};
use super::{Store, StoreError, now_millis, sqlite};

/// `purged_by` of an erasure (a retention run names its policy).
pub const ERASURE: &str = "erasure";

/// What to shred.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Everything stored of one customer address (`mailroom erase`): the messages it sent, its
    /// place among the cases' participants, its directory entry, outgoing mail to it.
    Address(String),
    /// A retention policy: the messages of closed cases (of `queue` and/or `category`, if given)
    /// last changed before `closed_before` (unix ms).
    Closed { policy: String, queue: Option<String>, category: Option<String>, closed_before: i64 },
}

impl Scope {
    /// `purged_by` of what this scope purges.
    pub fn purged_by(&self) -> &str {
        match self {
            Scope::Address(_) => ERASURE,
            Scope::Closed { policy, .. } => policy,
        }
    }
}

/// What a run purged (or, dry, would purge). Numbers and counts: no customer data.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PurgeReport {
    pub purged_by: String,
    pub dry_run: bool,
    /// Registration numbers made tombstones, oldest first.
    pub messages: Vec<String>,
    /// Cases left with no unpurged message, whose entries, tags and participants were shredded.
    pub cases: u64,
    /// Outgoing mail rows shredded (`pending` ones among them never go out).
    pub outbox: u64,
    /// Case participant rows removed (erasure: the address in cases it did not open).
    pub participants: u64,
    /// Directory entries removed (erasure).
    pub customers: u64,
    /// Opening numbers of held cases that would have been purged.
    pub held: Vec<String>,
}

/// A purged registration as readers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tombstone {
    pub number: String,
    pub received_at: i64,
    pub purged_at: i64,
    pub purged_by: String,
    /// The queue of the case the message was registered into.
    pub queue: String,
}

/// How many messages one transaction of a retention run shreds at most. A first run over years of
/// closed cases goes in many short transactions (each with its audit entry), so mail keeps being
/// acknowledged between them and no audit entry lists more than this many numbers.
pub const PURGE_BATCH: usize = 500;

impl Store {
    /// Shreds what `scope` selects (module docs), audited as `action` by `actor`; a dry run
    /// rolls everything back (and audits nothing). A retention run commits every
    /// [`PURGE_BATCH`] messages; an erasure (one customer) and a dry run are one transaction.
    pub async fn purge(&self, scope: &Scope, actor: &str, action: &str, dry_run: bool) -> Result<PurgeReport, StoreError> {
        if dry_run || matches!(scope, Scope::Address(_)) {
            return self.purge_batch(scope, actor, action, dry_run, None).await;
        }
        self.purge_in_batches(scope, actor, action, PURGE_BATCH).await
    }

    /// A retention run in transactions of at most `batch` messages, until one finds fewer; the
    /// reports added up (the held cases as the first batch saw them).
    pub async fn purge_in_batches(&self, scope: &Scope, actor: &str, action: &str, batch: usize) -> Result<PurgeReport, StoreError> {
        let mut total = PurgeReport { purged_by: scope.purged_by().into(), ..PurgeReport::default() };
        for round in 0.. {
            let done = self.purge_batch(scope, actor, action, false, Some(batch)).await?;
            let last = done.messages.len() < batch;
            if round == 0 {
                total.held = done.held;
            }
            total.messages.extend(done.messages);
            total.cases += done.cases;
            total.outbox += done.outbox;
            total.participants += done.participants;
            total.customers += done.customers;
            if last {
                break;
            }
        }
        Ok(total)
    }

    /// One transaction: at most `limit` messages (all with None).
    async fn purge_batch(
        &self,
        scope: &Scope,
        actor: &str,
        action: &str,
        dry_run: bool,
        limit: Option<usize>,
    ) -> Result<PurgeReport, StoreError> {
        let now = now_millis();
        let mut tx = self.db().begin_write().await?;
        // On already (every connection's default), said again: this is what it is for.
        sqlite::secure_delete(&mut tx, true).await?;
        let mut report = self.purge_in(&mut tx, scope, now, limit).await?;
        report.dry_run = dry_run;
        // A policy's run that found nothing leaves no trace (it runs every hour); an erasure's
        // receipt is recorded even when the address had nothing.
        let nothing = report.messages.is_empty() && report.outbox == 0 && report.participants == 0 && report.customers == 0;
        if dry_run || (nothing && matches!(scope, Scope::Closed { .. })) {
            drop(tx);
            return Ok(report);
        }
        let entry = AuditEntry {
            at: now,
            actor: actor.into(),
            action: action.into(),
            object: Some(match scope {
                // The address only as its keyed blind index: the log names no one.
                Scope::Address(address) => format!("address-index:{}", hex(&self.keys.address_index(address))),
                Scope::Closed { policy, .. } => format!("policy:{policy}"),
            }),
            detail: Some(report.detail()),
        };
        audit::append(&self.keys, &mut tx, &[entry]).await?;
        tx.notify_changes().await?;
        tx.commit().await?;
        self.changed();
        if !sqlite::truncate_wal(self.db()).await? {
            tracing::warn!(
                "purge: the WAL could not be truncated at once (a reader held it); the destroyed keys leave it at the next checkpoint"
            );
        }
        Ok(report)
    }

    async fn purge_in(&self, tx: &mut Conn, scope: &Scope, now: i64, limit: Option<usize>) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport { purged_by: scope.purged_by().into(), ..PurgeReport::default() };
        let (ids, held) = match scope {
            Scope::Address(address) => select_sender(tx, &self.keys.address_index(address)).await?,
            Scope::Closed { queue, category, closed_before, .. } => {
                select_closed(tx, queue.as_deref(), category.as_deref(), *closed_before, limit).await?
            }
        };
        report.held = held;
        let mut cases = std::collections::BTreeSet::new();
        for (id, number) in &ids {
            cases.extend(shred_message(tx, *id, scope.purged_by(), now).await?);
            report.outbox += shred_outbox(tx, "SELECT id FROM outbox WHERE message_id = $1 AND key_id <> 0", *id).await?;
            report.messages.push(number.clone());
        }
        for case in cases {
            let left: i64 = on_conn!(&mut *tx, c => sqlx::query_scalar("SELECT COUNT(*) FROM message_cases WHERE case_id = $1")
                .bind(case)
                .fetch_one(c)
                .await?);
            if left == 0 {
                report.outbox += shred_case(tx, case).await?;
                report.cases += 1;
            }
        }
        if let Scope::Address(address) = scope {
            let index = self.keys.address_index(address);
            // The address among the participants of the cases it wrote to (held ones keep it).
            report.participants = on_conn!(&mut *tx, c => sqlx::query(
                "DELETE FROM case_participants WHERE address_idx = $1
                 AND case_id NOT IN (SELECT id FROM cases WHERE hold_at IS NOT NULL)",
            )
            .bind(&index)
            .execute(c)
            .await?
            .rows_affected());
            let key = super::directory::entry_key(&self.keys, address);
            report.customers = on_conn!(&mut *tx, c => sqlx::query("DELETE FROM customers WHERE key_idx = $1")
                .bind(&key)
                .execute(c)
                .await?
                .rows_affected());
            // Mail to the address that belongs to no held case (acknowledgements, replies).
            report.outbox += shred_outbox_bound(
                tx,
                "SELECT o.id FROM outbox o WHERE o.rcpt_idx = $1 AND o.key_id <> 0
                 AND NOT EXISTS (SELECT 1 FROM message_cases mc JOIN cases k ON k.id = mc.case_id
                                 WHERE mc.message_id = o.message_id AND k.hold_at IS NOT NULL)
                 AND NOT EXISTS (SELECT 1 FROM case_entries e JOIN cases k ON k.id = e.case_id
                                 WHERE e.outbox_id = o.id AND k.hold_at IS NOT NULL)",
                &index,
            )
            .await?;
        }
        Ok(report)
    }

    /// The tombstone of message `id`, if it has been purged.
    pub async fn tombstone(&self, id: i64) -> Result<Option<Tombstone>, StoreError> {
        type Columns = (String, i64, i64, String, String);
        let row: Option<Columns> = super::engine::on_db!(self.db(), pool => sqlx::query_as(
            "SELECT m.number, m.received_at, m.purged_at, m.purged_by, c.queue FROM messages m JOIN cases c ON c.id = m.case_id
             WHERE m.id = $1 AND m.purged_at IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(number, received_at, purged_at, purged_by, queue)| Tombstone { number, received_at, purged_at, purged_by, queue }))
    }
}

impl PurgeReport {
    /// The audit entry's detail: counts, the purged numbers, the held cases.
    fn detail(&self) -> String {
        format!(
            "messages={} cases={} outbox={} participants={} customers={} held={} numbers={} held_cases={}",
            self.messages.len(),
            self.cases,
            self.outbox,
            self.participants,
            self.customers,
            self.held.len(),
            self.messages.join(","),
            self.held.join(",")
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpurged messages sent from the address with blind index `index`, and the held cases that
/// keep some of them.
async fn select_sender(tx: &mut Conn, index: &[u8]) -> Result<(Vec<(i64, String)>, Vec<String>), StoreError> {
    let ids: Vec<(i64, String)> = on_conn!(&mut *tx, c => sqlx::query_as(
        "SELECT m.id, m.number FROM messages m WHERE m.sender_idx = $1 AND m.purged_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM message_cases mc JOIN cases k ON k.id = mc.case_id WHERE mc.message_id = m.id AND k.hold_at IS NOT NULL)
         ORDER BY m.id",
    )
    .bind(index)
    .fetch_all(c)
    .await?);
    let held: Vec<String> = on_conn!(&mut *tx, c => sqlx::query_scalar(
        "SELECT DISTINCT k.opening_number FROM messages m JOIN message_cases mc ON mc.message_id = m.id JOIN cases k ON k.id = mc.case_id
         WHERE m.sender_idx = $1 AND m.purged_at IS NULL AND k.hold_at IS NOT NULL ORDER BY k.opening_number",
    )
    .bind(index)
    .fetch_all(c)
    .await?);
    Ok((ids, held))
}

/// Unpurged messages all of whose cases are closed, not held and last changed before
/// `before`, with at least one such case in `queue` / `category` (when given); and the held
/// closed cases the policy would have reached.
async fn select_closed(
    tx: &mut Conn,
    queue: Option<&str>,
    category: Option<&str>,
    before: i64,
    limit: Option<usize>,
) -> Result<(Vec<(i64, String)>, Vec<String>), StoreError> {
    let limit = limit.map_or(i64::MAX, |n| n as i64);
    let ids: Vec<(i64, String)> = on_conn!(&mut *tx, c => sqlx::query_as(
        "SELECT DISTINCT m.id, m.number FROM cases k JOIN message_cases mc ON mc.case_id = k.id JOIN messages m ON m.id = mc.message_id
         WHERE k.status = 'closed' AND k.updated_at < $1 AND k.hold_at IS NULL
           AND ($2 IS NULL OR k.queue = $2) AND ($3 IS NULL OR k.category = $3) AND m.purged_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM message_cases o JOIN cases ok ON ok.id = o.case_id
                           WHERE o.message_id = m.id AND (ok.status <> 'closed' OR ok.updated_at >= $1 OR ok.hold_at IS NOT NULL))
         ORDER BY m.id LIMIT $4",
    )
    .bind(before)
    .bind(queue)
    .bind(category)
    .bind(limit)
    .fetch_all(c)
    .await?);
    let held: Vec<String> = on_conn!(&mut *tx, c => sqlx::query_scalar(
        "SELECT k.opening_number FROM cases k
         WHERE k.status = 'closed' AND k.updated_at < $1 AND k.hold_at IS NOT NULL
           AND ($2 IS NULL OR k.queue = $2) AND ($3 IS NULL OR k.category = $3)
           AND EXISTS (SELECT 1 FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE mc.case_id = k.id AND m.purged_at IS NULL)
         ORDER BY k.id",
    )
    .bind(before)
    .bind(queue)
    .bind(category)
    .fetch_all(c)
    .await?);
    Ok((ids, held))
}

/// Makes message `id` a tombstone; the cases it was in.
async fn shred_message(tx: &mut Conn, id: i64, by: &str, now: i64) -> Result<Vec<i64>, StoreError> {
    let mut cases: Vec<i64> = on_conn!(&mut *tx, c => sqlx::query_scalar("SELECT case_id FROM message_cases WHERE message_id = $1")
        .bind(id)
        .fetch_all(c)
        .await?);
    let first: i64 = on_conn!(&mut *tx, c => sqlx::query_scalar(
        "UPDATE messages SET key_id = 0, wrapped_key = $1, trace_ct = $1, fields_ct = $1, dedupe_idx = $1,
                sender_idx = NULL, msgid_idx = NULL, purged_at = $2, purged_by = $3
         WHERE id = $4 RETURNING case_id",
    )
    .bind(Vec::<u8>::new())
    .bind(now)
    .bind(by)
    .bind(id)
    .fetch_one(c)
    .await?);
    cases.push(first);
    for sql in [
        "DELETE FROM message_blobs WHERE message_id = $1",
        "DELETE FROM mailbox_flags WHERE message_id = $1",
        "DELETE FROM message_cases WHERE message_id = $1",
    ] {
        on_conn!(&mut *tx, c => sqlx::query(sql).bind(id).execute(c).await.map(|_| ())?);
    }
    cases.sort_unstable();
    cases.dedup();
    Ok(cases)
}

/// Shreds what case `id` holds beyond its registrations: staff entries, tags, participants, and
/// the outgoing mail of its entries and notifications. How many outbox rows.
async fn shred_case(tx: &mut Conn, id: i64) -> Result<u64, StoreError> {
    let outbox = shred_outbox(
        tx,
        "SELECT outbox_id FROM case_entries WHERE case_id = $1 AND outbox_id IS NOT NULL
         UNION SELECT outbox_id FROM notifications WHERE case_id = $1 AND outbox_id IS NOT NULL",
        id,
    )
    .await?;
    on_conn!(&mut *tx, c => sqlx::query("UPDATE case_entries SET key_id = 0, wrapped_key = $1, body_ct = $1 WHERE case_id = $2")
        .bind(Vec::<u8>::new())
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())?);
    on_conn!(&mut *tx, c => sqlx::query("UPDATE cases SET uid = NULL, key_id = NULL, wrapped_key = NULL, tags_ct = NULL, tags = '[]' WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())?);
    for sql in ["DELETE FROM case_tags WHERE case_id = $1", "DELETE FROM case_participants WHERE case_id = $1"] {
        on_conn!(&mut *tx, c => sqlx::query(sql).bind(id).execute(c).await.map(|_| ())?);
    }
    Ok(outbox)
}

/// Shreds the outbox rows whose ids `select` (with `$1` = `id`) returns.
async fn shred_outbox(tx: &mut Conn, select: &'static str, id: i64) -> Result<u64, StoreError> {
    let ids: Vec<Option<i64>> = on_conn!(&mut *tx, c => sqlx::query_scalar(select).bind(id).fetch_all(c).await?);
    shred_outbox_rows(tx, ids.into_iter().flatten().collect()).await
}

/// Shreds the outbox rows whose ids `select` (with `$1` = `value`) returns.
async fn shred_outbox_bound(tx: &mut Conn, select: &'static str, value: &[u8]) -> Result<u64, StoreError> {
    let ids: Vec<i64> = on_conn!(&mut *tx, c => sqlx::query_scalar(select).bind(value).fetch_all(c).await?);
    shred_outbox_rows(tx, ids).await
}

async fn shred_outbox_rows(tx: &mut Conn, ids: Vec<i64>) -> Result<u64, StoreError> {
    let mut count = 0;
    for id in ids {
        count += on_conn!(&mut *tx, c => sqlx::query(
            "UPDATE outbox SET key_id = 0, wrapped_key = $1, mail_ct = $1, rcpt_idx = $1, last_error = NULL,
                    status = CASE WHEN status IN ('pending', 'sending') THEN 'purged' ELSE status END
             WHERE id = $2 AND key_id <> 0",
        )
        .bind(Vec::<u8>::new())
        .bind(id)
        .execute(c)
        .await?
        .rows_affected());
    }
    Ok(count)
}
