//! The group-commit writer: the single place where registration numbers are allocated and
//! messages are committed.
//!
//! Sessions hand over fully prepared (parsed, encrypted) submissions through a channel. The writer
//! takes everything that is waiting — up to `storage.max_batch` — and stores it in ONE transaction:
//! next numbers, case, message row, ciphertext, audit events. Only when `COMMIT` has returned (the
//! WAL is fsynced: synchronous=FULL) does each session learn its number and send 250. If anything
//! fails the whole batch rolls back, every session replies 451 and no number is consumed, so the
//! sequence stays gap-free. While one commit is being fsynced the next batch accumulates, so the
//! cost of an fsync is shared by every message that arrived meanwhile.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Datelike;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::audit::{self, AuditEntry};
use super::crypto::{DataKey, KeyRing, aad};
use super::{Store, StoreError};
use crate::intake::rules::Decision;

/// Everything the writer needs to store one message; the expensive work (parsing, encryption,
/// hashing) was done by the session, in parallel with other sessions.
pub struct Submission {
    /// Random row identity, bound into every ciphertext as associated data.
    pub uid: [u8; 16],
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub size: usize,
    pub protocol: &'static str,
    pub tls: Option<String>,
    pub parsed: bool,
    /// Classification and threading, decided by intake.
    pub routing: Routing,
    /// "spf=pass dkim=pass dmarc=pass" (no addresses), when checks ran.
    pub auth_summary: Option<String>,
    /// Our Authentication-Results header, stored (encrypted) with our Received header.
    pub auth_header: Option<String>,
    /// Set when the message may be acknowledged (rules allow it, loop-safe, not spam). The writer
    /// sends one only if the message opens a new case and the sender had none within the window.
    pub ack: Option<AckRequest>,
    /// Kept so the writer can seal the trace header, which needs the registration number.
    pub data_key: DataKey,
    pub key_id: u32,
    pub wrapped_key: Vec<u8>,
    pub raw_ct: Vec<u8>,
    pub fields_ct: Vec<u8>,
    pub sender_idx: Option<Vec<u8>>,
    pub msgid_idx: Option<Vec<u8>>,
    pub dedupe_idx: Vec<u8>,
    pub trace: Trace,
}

/// Where a message goes: the classification decision and the keys that may join it to an
/// existing case. The writer resolves the keys inside the transaction, so two messages of one
/// thread committed together still end up in the same case.
pub struct Routing {
    pub decision: Decision,
    /// SLA due time for a new case (unix ms).
    pub due_at: i64,
    /// Valid registration tags from the subject: (counter year, sequence).
    pub thread_numbers: Vec<(i32, u64)>,
    /// Blind indexes of the In-Reply-To and References Message-IDs.
    pub reference_idx: Vec<Vec<u8>>,
    /// Auto-replies and reports join a case but never re-open it.
    pub automatic: bool,
    /// Tags on the message itself (invalid-registration-tag, …; new-participant is added here).
    pub message_tags: Vec<String>,
}

/// What an acknowledgement needs from the original message (in memory only; the rendered
/// acknowledgement is stored encrypted in the outbox).
pub struct AckRequest {
    pub to: String,
    pub subject: String,
    pub message_id: Option<String>,
}

/// What goes into our `Received:` header.
pub struct Trace {
    pub helo: String,
    pub client_ip: IpAddr,
    /// RFC 3848 protocol type: ESMTP, ESMTPS, LMTP, LMTPS…
    pub with: &'static str,
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Registered(String),
    /// A retry of a message registered earlier: the earlier number, nothing stored again.
    Duplicate(String),
}

struct Job {
    submission: Submission,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// How often the writer itself finishes a checkpoint, so the WAL restarts instead of growing.
const WRITER_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct WriterHandle {
    // Unbounded, yet bounded in practice: each session has at most one job in flight, and
    // sessions are bounded by limits.max_connections.
    tx: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Returns once the message is durably committed (or the batch failed).
    pub async fn submit(&self, submission: Submission) -> Result<Outcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { submission, reply }).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Starts the writer thread. It runs until every `WriterHandle` is dropped and the queue is
/// drained; join the returned handle to wait for the last commit.
///
/// The writer owns a synchronous SQLite connection on a thread of its own (rusqlite, over the
/// same libsqlite3 that sqlx uses). sqlx's SQLite driver sends every statement to a worker thread
/// and back; on the commit path that hand-off, repeated for every statement of every batch, cost
/// more than the fsync itself, and the commit path is what every sender waits for.
pub fn spawn(store: Store) -> Result<(WriterHandle, std::thread::JoinHandle<()>), StoreError> {
    let conn = open_connection(&store)?;
    let max_batch = store.settings.config.storage.max_batch;
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("mailroom-writer".into())
        .spawn(move || run(store, conn, rx, max_batch))
        .map_err(|e| StoreError::BatchFailed(format!("starting the writer thread: {e}")))?;
    Ok((WriterHandle { tx }, thread))
}

fn open_connection(store: &Store) -> Result<Connection, StoreError> {
    let conn = Connection::open(store.settings.database_path())?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    // FULL: the WAL is fsynced at every commit, so a 250 survives power loss, not just a crash.
    conn.pragma_update(None, "synchronous", "full")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Sorting and temp indexes stay in memory: no clear-text scratch files on disk.
    conn.pragma_update(None, "temp_store", "memory")?;
    // Checkpoints run in a background task, never inside a commit that senders wait for; once a
    // checkpoint has caught up, the WAL restarts and is cut back to this size.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    if let Some(max_bytes) = store.settings.config.storage.max_database_size {
        // Past this size commits fail with SQLITE_FULL, which the sessions turn into 451.
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
        conn.pragma_update(None, "max_page_count", (max_bytes as i64 / page_size).max(1))?;
    }
    // Blind-index keys are random, so index inserts touch pages all over their B-trees: keep
    // them in memory instead of re-reading them through the OS for every commit.
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn run(store: Store, mut conn: Connection, rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut last_checkpoint = Instant::now();
    while let Ok(first) = rx.recv() {
        // Everything that queued up during the previous commit shares this one. (Waiting a
        // little longer for transactions still arriving was measured: bigger batches, but lower
        // throughput and higher latency on 2 cores, so the writer never waits.)
        batch.push(first);
        batch.extend(rx.try_iter().take(max_batch - 1));
        let started = Instant::now();
        let result = commit_batch(&store, &mut conn, &batch);
        tracing::debug!(messages = batch.len(), ms = started.elapsed().as_secs_f64() * 1e3, ok = result.is_ok(), "batch");
        match result {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "commit failed; batch rolled back, senders get 451");
                let message = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::BatchFailed(message.clone())));
                }
            }
        }
        // The background checkpointer copies most of the WAL; finishing here, between commits,
        // lets the checkpoint complete so the next commit restarts the WAL from its beginning.
        if last_checkpoint.elapsed() >= WRITER_CHECKPOINT_EVERY {
            last_checkpoint = Instant::now();
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }
    // Last one out moves the WAL into the database file, so a clean stop leaves one file.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

/// Allocates `count` consecutive values of a counter; returns the first.
fn allocate(tx: &Transaction, name: &str, count: i64) -> rusqlite::Result<i64> {
    let last: i64 = tx
        .prepare_cached("UPDATE counters SET value = value + ?1 WHERE name = ?2 RETURNING value")?
        .query_row(params![count, name], |r| r.get(0))?;
    Ok(last - count + 1)
}

fn commit_batch(store: &Store, conn: &mut Connection, batch: &[Job]) -> Result<Vec<Outcome>, StoreError> {
    let settings = &store.settings;
    let now = chrono::Utc::now();
    let window_start = now.timestamp_millis() - settings.config.registration.duplicate_window.as_millis() as i64;
    let year = settings.reg_format.counter_year(now.year());

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

    // Decide each job's fate: new, a retry of a message committed earlier (its sender timed out
    // before our 250 arrived), or a second copy within this batch.
    enum Plan {
        New { index: i64 },
        Duplicate { id: i64, number: String },
        DuplicateInBatch(usize),
    }
    let mut plans = Vec::with_capacity(batch.len());
    let mut first_in_batch: HashMap<&[u8], usize> = HashMap::new();
    let mut fresh = 0i64;
    {
        // A retry has the same Message-ID, so the Message-ID index finds it; the fingerprint
        // (envelope + Message-ID + body) decides. Without a Message-ID, the partial index on the
        // fingerprint does.
        let mut by_msgid = tx.prepare_cached(
            "SELECT id, number FROM messages WHERE msgid_idx = ?1 AND dedupe_idx = ?2 AND received_at >= ?3 ORDER BY id LIMIT 1",
        )?;
        let mut by_fingerprint = tx.prepare_cached(
            "SELECT id, number FROM messages WHERE msgid_idx IS NULL AND dedupe_idx = ?1 AND received_at >= ?2 ORDER BY id LIMIT 1",
        )?;
        for (i, job) in batch.iter().enumerate() {
            let s = &job.submission;
            let key = s.dedupe_idx.as_slice();
            if let Some(&first) = first_in_batch.get(key) {
                plans.push(Plan::DuplicateInBatch(first));
                continue;
            }
            let known: Option<(i64, String)> = match &s.msgid_idx {
                Some(msgid) => by_msgid.query_row(params![msgid, key, window_start], |r| Ok((r.get(0)?, r.get(1)?))).optional()?,
                None => by_fingerprint.query_row(params![key, window_start], |r| Ok((r.get(0)?, r.get(1)?))).optional()?,
            };
            match known {
                Some((id, number)) => plans.push(Plan::Duplicate { id, number }),
                None => {
                    first_in_batch.insert(key, i);
                    plans.push(Plan::New { index: fresh });
                    fresh += 1;
                }
            }
        }
    }

    // The number each new message gets, by batch position.
    let mut numbers: Vec<Option<String>> = vec![None; batch.len()];
    let mut ids: Vec<Option<i64>> = vec![None; batch.len()];
    let mut audit_entries = Vec::with_capacity(batch.len());
    let at = now.timestamp_millis();
    if fresh > 0 {
        // Numbers are taken inside this transaction: if it rolls back, none is consumed.
        let last_seq: i64 = tx
            .prepare_cached(
                "INSERT INTO reg_counters (year, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (year) DO UPDATE SET last_seq = reg_counters.last_seq + excluded.last_seq RETURNING last_seq",
            )?
            .query_row(params![year, fresh], |r| r.get(0))?;
        let first_seq = last_seq - fresh + 1;
        let first_message = allocate(&tx, "message", fresh)?;

        let mut insert_message = tx.prepare_cached(
            "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, tls, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, sender_idx, msgid_idx, dedupe_idx, tags, automatic, auth)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        )?;
        let mut link = tx.prepare_cached("INSERT OR IGNORE INTO message_cases (message_id, case_id, uid) VALUES (?1, ?2, ?1)")?;
        let mut insert_blob = tx.prepare_cached("INSERT INTO message_blobs (message_id, raw_ct) VALUES (?1, ?2)")?;
        for (i, (job, plan)) in batch.iter().zip(&plans).enumerate() {
            let Plan::New { index } = plan else { continue };
            let s = &job.submission;
            let (seq, id) = (first_seq + index, first_message + index);
            let number = settings.reg_format.format(year, seq as u64);
            let mut trace = received_header(s, &number);
            if let Some(header) = &s.auth_header {
                trace.push_str(header);
            }
            let trace_ct = s.data_key.seal(&aad("trace", &s.uid), trace.as_bytes())?;
            let received = s.received_at.timestamp_millis();
            let mut tags = s.routing.message_tags.clone();
            let placement = place(&tx, &store.keys, s, &number, received, &mut tags)?;
            let case_id = placement.cases[0];
            insert_message.execute(params![
                id,
                &s.uid[..],
                number,
                year,
                seq,
                received,
                s.size as i64,
                s.protocol,
                s.tls,
                s.parsed,
                case_id,
                s.key_id,
                s.wrapped_key,
                trace_ct,
                s.fields_ct,
                s.sender_idx,
                s.msgid_idx,
                s.dedupe_idx,
                serde_json::to_string(&tags).expect("tags serialise"),
                s.routing.automatic,
                s.auth_summary
            ])?;
            insert_blob.execute(params![id, s.raw_ct])?;
            for case in &placement.cases {
                link.execute(params![id, case])?;
            }
            if !placement.joined
                && let Some(ack) = &s.ack
            {
                enqueue_ack(store, &tx, s, ack, id, &number, &placement, now)?;
            }
            audit_entries.push(AuditEntry {
                at,
                actor: s.protocol.into(),
                action: "message.registered".into(),
                object: Some(number.clone()),
                detail: Some(format!("size={} cases={:?} joined={} tls={}", s.size, placement.cases, placement.joined, s.tls.is_some())),
            });
            numbers[i] = Some(number);
            ids[i] = Some(id);
        }
    }
    let outcomes: Vec<Outcome> = plans
        .iter()
        .enumerate()
        .map(|(i, plan)| match plan {
            Plan::New { .. } => Outcome::Registered(numbers[i].clone().expect("numbered above")),
            Plan::Duplicate { number, .. } => Outcome::Duplicate(number.clone()),
            Plan::DuplicateInBatch(first) => Outcome::Duplicate(numbers[*first].clone().expect("first copy numbered above")),
        })
        .collect();
    {
        let mut count_retry = tx.prepare_cached("UPDATE messages SET duplicate_count = duplicate_count + 1 WHERE id = ?1")?;
        for (i, (job, outcome)) in batch.iter().zip(&outcomes).enumerate() {
            if let Outcome::Duplicate(number) = outcome {
                let id = match &plans[i] {
                    Plan::Duplicate { id, .. } => *id,
                    Plan::DuplicateInBatch(first) => ids[*first].expect("first copy inserted above"),
                    Plan::New { .. } => unreachable!("a new message is not a duplicate"),
                };
                count_retry.execute(params![id])?;
                audit_entries.push(AuditEntry {
                    at,
                    actor: job.submission.protocol.into(),
                    action: "message.duplicate".into(),
                    object: Some(number.clone()),
                    detail: Some(format!("size={}", job.submission.size)),
                });
            }
        }
    }
    audit::append_sync(&store.keys, &tx, &audit_entries)?;
    tx.commit()?;
    // Wakes IMAP sessions in IDLE (a new registration is an EXISTS in its queue's mailbox).
    store.changed();
    Ok(outcomes)
}

/// Writes the acknowledgement of a new case into the outbox, in the registration's transaction
/// (so no acknowledgement is lost by a crash), at most one per sender within `ack_window`.
#[allow(clippy::too_many_arguments)]
fn enqueue_ack(
    store: &Store,
    tx: &Transaction,
    s: &Submission,
    ack: &AckRequest,
    message_id: i64,
    number: &str,
    placement: &Placement,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let settings = &store.settings;
    let Some(outbox) = &settings.config.outbox else { return Ok(()) };
    let rcpt_idx = crate::outbox::rcpt_index(&store.keys, &ack.to);
    let window_start = now.timestamp_millis() - outbox.ack_window.as_millis() as i64;
    let recent: Option<i64> = tx
        .prepare_cached("SELECT id FROM outbox WHERE rcpt_idx = ?1 AND kind = 'ack' AND created_at >= ?2 LIMIT 1")?
        .query_row(params![rcpt_idx, window_start], |r| r.get(0))
        .optional()?;
    if recent.is_some() {
        return Ok(());
    }
    let queue = &placement.queues[0];
    let from = settings.queue_address(queue).unwrap_or(queue);
    let due = chrono::DateTime::from_timestamp_millis(s.routing.due_at).unwrap_or(now).with_timezone(&settings.calendar.timezone());
    let hostname = &settings.config.server.hostname;
    let template = settings.acknowledgement_for(queue, s.routing.decision.category.as_deref());
    let data = crate::outbox::render(template, number, &ack.subject, due, queue, from, &ack.to, ack.message_id.as_deref(), hostname);
    let uid = crate::outbox::new_uid()?;
    // RFC 3834: automatic replies go out with the null sender, so nothing bounces back at us.
    let (key_id, wrapped_key, mail_ct) = crate::outbox::seal_mail(&store.keys, &uid, "", &[ack.to.as_str()], &data)?;
    let at = now.timestamp_millis();
    tx.prepare_cached(
        "INSERT INTO outbox (message_id, kind, rcpt_idx, created_at, next_attempt_at, uid, key_id, wrapped_key, mail_ct) VALUES (?1, 'ack', ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![message_id, rcpt_idx, at, &uid[..], key_id, wrapped_key, mail_ct])?;
    Ok(())
}

/// Which cases a new message belongs to.
struct Placement {
    cases: Vec<i64>,
    /// The queue of each case, in the same order.
    queues: Vec<String>,
    /// True when it joined existing cases (a reply), false when it opened new ones.
    joined: bool,
}

/// Joins the message to the cases its subject tag or references point at, or opens one case per
/// queue it was routed to. Records the sender as a participant; a sender new to a case is tagged
/// `new-participant`; a human reply re-opens a case that waits on the customer or was resolved or
/// closed (with a history row), an automatic one (out-of-office) does not.
fn place(
    tx: &Transaction,
    keys: &KeyRing,
    s: &Submission,
    number: &str,
    received: i64,
    message_tags: &mut Vec<String>,
) -> Result<Placement, StoreError> {
    let r = &s.routing;
    let mut existing: Vec<(i64, String)> = Vec::new();
    {
        let mut by_number = tx.prepare_cached(
            "SELECT c.id, c.status FROM messages m JOIN message_cases mc ON mc.message_id = m.id JOIN cases c ON c.id = mc.case_id WHERE m.reg_year = ?1 AND m.reg_seq = ?2",
        )?;
        for (year, seq) in &r.thread_numbers {
            for row in by_number.query_map(params![year, *seq as i64], |row| Ok((row.get(0)?, row.get(1)?)))? {
                let row = row?;
                if !existing.iter().any(|(id, _)| *id == row.0) {
                    existing.push(row);
                }
            }
        }
        let mut by_reference = tx.prepare_cached(
            "SELECT c.id, c.status FROM messages m JOIN message_cases mc ON mc.message_id = m.id JOIN cases c ON c.id = mc.case_id WHERE m.msgid_idx = ?1",
        )?;
        for idx in &r.reference_idx {
            for row in by_reference.query_map(params![idx], |row| Ok((row.get(0)?, row.get(1)?)))? {
                let row = row?;
                if !existing.iter().any(|(id, _)| *id == row.0) {
                    existing.push(row);
                }
            }
        }
    }
    let mut add_participant = tx.prepare_cached("INSERT OR IGNORE INTO case_participants (case_id, address_idx) VALUES (?1, ?2)")?;
    if !existing.is_empty() {
        let mut touch = tx.prepare_cached("UPDATE cases SET updated_at = ?2 WHERE id = ?1")?;
        let mut reopen = tx.prepare_cached("UPDATE cases SET status = 'open', resolved_at = NULL, updated_at = ?2 WHERE id = ?1")?;
        let mut history =
            tx.prepare_cached("INSERT INTO case_history (case_id, at, actor, action, detail) VALUES (?1, ?2, 'intake', 'status', ?3)")?;
        for (case_id, status) in &existing {
            let answered = matches!(status.as_str(), "waiting" | "resolved" | "closed");
            if answered && !r.automatic {
                reopen.execute(params![case_id, received])?;
                history.execute(params![case_id, received, format!("status {status}→open (the customer wrote again)")])?;
            } else {
                touch.execute(params![case_id, received])?;
            }
            if let Some(sender) = &s.sender_idx
                && add_participant.execute(params![case_id, sender])? > 0
                && !message_tags.iter().any(|t| t == "new-participant")
            {
                message_tags.push("new-participant".into());
            }
        }
        return Ok(Placement { cases: existing.into_iter().map(|(id, _)| id).collect(), queues: Vec::new(), joined: true });
    }
    let d = &r.decision;
    let mut insert_case = tx.prepare_cached(
        "INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, category, priority, due_at, spam, uid, key_id, wrapped_key, tags_ct)
         VALUES (?1, ?2, ?3, 'new', ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut index_tag = tx.prepare_cached("INSERT OR IGNORE INTO case_tags (case_id, tag_idx) VALUES (?1, ?2)")?;
    let mut cases = Vec::with_capacity(d.queues.len());
    for queue in &d.queues {
        let case_id = allocate(tx, "case", 1)?;
        // Rule tags are sealed like staff tags (each case its own key); untagged cases need none.
        let sealed = if d.tags.is_empty() { None } else { Some(crate::store::cases::seal_tags(keys, None, &d.tags)?) };
        let key = sealed.as_ref().map(|t| &t.key);
        insert_case.execute(params![
            case_id,
            number,
            queue,
            received,
            d.category,
            d.priority.as_str(),
            r.due_at,
            d.spam,
            key.map(|k| &k.uid),
            key.map(|k| k.key_id),
            key.map(|k| &k.wrapped_key),
            sealed.as_ref().and_then(|t| t.tags_ct.as_ref())
        ])?;
        for idx in sealed.iter().flat_map(|t| &t.index) {
            index_tag.execute(params![case_id, idx])?;
        }
        if let Some(sender) = &s.sender_idx {
            add_participant.execute(params![case_id, sender])?;
        }
        cases.push(case_id);
    }
    Ok(Placement { cases, queues: d.queues.clone(), joined: false })
}

/// Our trace header (RFC 5321 §4.4), naming the registration number as the message id.
fn received_header(s: &Submission, number: &str) -> String {
    let t = &s.trace;
    let tls = s.tls.as_deref().map(|tls| format!("\r\n\t(using {tls})")).unwrap_or_default();
    format!(
        "Received: from {helo} ([{ip}])\r\n\tby {host} (mailroom) with {with}{tls}\r\n\tid {number};\r\n\t{date}\r\n",
        helo = t.helo,
        ip = t.client_ip,
        host = t.hostname,
        with = t.with,
        date = s.received_at.to_rfc2822(),
    )
}
