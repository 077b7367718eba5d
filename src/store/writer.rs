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
use std::time::Instant;

use chrono::Datelike;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::audit::{self, AuditEntry};
use super::crypto::{DataKey, aad};
use super::{Store, StoreError};

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
    pub queue: String,
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

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Returns once the message is durably committed (or the batch failed).
    pub async fn submit(&self, submission: Submission) -> Result<Outcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { submission, reply }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Starts the writer. It runs until every `WriterHandle` is dropped and the queue is drained.
pub fn spawn(store: Store, conn: SqliteConnection) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let max_batch = store.settings.config.storage.max_batch;
    let (tx, rx) = mpsc::channel(max_batch * 4);
    let task = tokio::spawn(run(store, conn, rx, max_batch));
    (WriterHandle { tx }, task)
}

async fn run(store: Store, mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let started = Instant::now();
        let result = commit_batch(&store, &mut conn, &batch).await;
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
    }
    let _ = store.checkpoint().await;
}

/// Allocates `count` consecutive values of a counter; returns the first.
async fn allocate(conn: &mut SqliteConnection, name: &str, count: i64) -> Result<i64, sqlx::Error> {
    let last: i64 = sqlx::query_scalar("UPDATE counters SET value = value + ? WHERE name = ? RETURNING value").bind(count).bind(name).fetch_one(&mut *conn).await?;
    Ok(last - count + 1)
}

async fn commit_batch(store: &Store, conn: &mut SqliteConnection, batch: &[Job]) -> Result<Vec<Outcome>, StoreError> {
    let settings = &store.settings;
    let now = chrono::Utc::now();
    let window_start = now.timestamp_millis() - settings.config.registration.duplicate_window.as_millis() as i64;
    let year = settings.reg_format.counter_year(now.year());

    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;

    // Retries of messages committed earlier (their sender timed out before our 250 arrived).
    let mut known: HashMap<Vec<u8>, String> = HashMap::new();
    {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT dedupe_idx, number FROM messages WHERE received_at >= ");
        q.push_bind(window_start).push(" AND dedupe_idx IN (");
        let mut list = q.separated(", ");
        for job in batch {
            list.push_bind(&job.submission.dedupe_idx);
        }
        q.push(")");
        let rows: Vec<(Vec<u8>, String)> = q.build_query_as().fetch_all(&mut *tx).await?;
        known.extend(rows);
    }

    // Decide each job's fate; duplicates inside the batch point at the first copy.
    enum Plan {
        New { index: i64 },
        Duplicate(String),
        DuplicateInBatch(usize),
    }
    let mut plans = Vec::with_capacity(batch.len());
    let mut first_in_batch: HashMap<&[u8], usize> = HashMap::new();
    let mut fresh = 0i64;
    for (i, job) in batch.iter().enumerate() {
        let key = job.submission.dedupe_idx.as_slice();
        if let Some(number) = known.get(key) {
            plans.push(Plan::Duplicate(number.clone()));
        } else if let Some(&first) = first_in_batch.get(key) {
            plans.push(Plan::DuplicateInBatch(first));
        } else {
            first_in_batch.insert(key, i);
            plans.push(Plan::New { index: fresh });
            fresh += 1;
        }
    }

    // The number each new message gets, by batch position.
    let mut numbers: Vec<Option<String>> = vec![None; batch.len()];
    let mut audit_entries = Vec::with_capacity(batch.len());
    let at = now.timestamp_millis();
    if fresh > 0 {
        let last_seq: i64 = sqlx::query_scalar(
            "INSERT INTO reg_counters (year, last_seq) VALUES (?, ?)
             ON CONFLICT (year) DO UPDATE SET last_seq = reg_counters.last_seq + excluded.last_seq RETURNING last_seq",
        )
        .bind(year)
        .bind(fresh)
        .fetch_one(&mut *tx)
        .await?;
        let first_seq = last_seq - fresh + 1;
        let first_message = allocate(&mut tx, "message", fresh).await?;
        let first_case = allocate(&mut tx, "case", fresh).await?;

        struct Row<'a> {
            s: &'a Submission,
            id: i64,
            case_id: i64,
            seq: i64,
            number: String,
            trace_ct: Vec<u8>,
        }
        let mut rows = Vec::with_capacity(fresh as usize);
        for (i, (job, plan)) in batch.iter().zip(&plans).enumerate() {
            if let Plan::New { index } = plan {
                let s = &job.submission;
                let seq = first_seq + index;
                let number = settings.reg_format.format(year, seq as u64);
                let trace_ct = s.data_key.seal(&aad("trace", &s.uid), received_header(s, &number).as_bytes())?;
                audit_entries.push(AuditEntry {
                    at,
                    actor: s.protocol.into(),
                    action: "message.registered".into(),
                    object: Some(number.clone()),
                    detail: Some(format!("size={} queue={} tls={}", s.size, s.queue, s.tls.is_some())),
                });
                numbers[i] = Some(number.clone());
                rows.push(Row { s, id: first_message + index, case_id: first_case + index, seq, number, trace_ct });
            }
        }
        // Each statement inserts at most 100 rows: well inside SQLite's parameter limit.
        for chunk in rows.chunks(100) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at) ");
            q.push_values(chunk, |mut b, r| {
                let t = r.s.received_at.timestamp_millis();
                b.push_bind(r.case_id).push_bind(&r.number).push_bind(&r.s.queue).push_bind("new").push_bind(t).push_bind(t);
            });
            q.build().execute(&mut *tx).await?;

            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, tls, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, sender_idx, msgid_idx, dedupe_idx) ",
            );
            q.push_values(chunk, |mut b, r| {
                let s = r.s;
                b.push_bind(r.id)
                    .push_bind(&s.uid[..])
                    .push_bind(&r.number)
                    .push_bind(year)
                    .push_bind(r.seq)
                    .push_bind(s.received_at.timestamp_millis())
                    .push_bind(s.size as i64)
                    .push_bind(s.protocol)
                    .push_bind(&s.tls)
                    .push_bind(s.parsed)
                    .push_bind(r.case_id)
                    .push_bind(s.key_id as i64)
                    .push_bind(&s.wrapped_key)
                    .push_bind(&r.trace_ct)
                    .push_bind(&s.fields_ct)
                    .push_bind(&s.sender_idx)
                    .push_bind(&s.msgid_idx)
                    .push_bind(&s.dedupe_idx);
            });
            q.build().execute(&mut *tx).await?;

            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO message_blobs (message_id, raw_ct) ");
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id).push_bind(&r.s.raw_ct);
            });
            q.build().execute(&mut *tx).await?;
        }
    }
    let outcomes: Vec<Outcome> = plans
        .iter()
        .enumerate()
        .map(|(i, plan)| match plan {
            Plan::New { .. } => Outcome::Registered(numbers[i].clone().expect("numbered above")),
            Plan::Duplicate(n) => Outcome::Duplicate(n.clone()),
            Plan::DuplicateInBatch(first) => Outcome::Duplicate(numbers[*first].clone().expect("first copy numbered above")),
        })
        .collect();
    for (job, outcome) in batch.iter().zip(&outcomes) {
        if let Outcome::Duplicate(number) = outcome {
            sqlx::query("UPDATE messages SET duplicate_count = duplicate_count + 1 WHERE number = ?").bind(number).execute(&mut *tx).await?;
            audit_entries.push(AuditEntry {
                at,
                actor: job.submission.protocol.into(),
                action: "message.duplicate".into(),
                object: Some(number.clone()),
                detail: Some(format!("size={}", job.submission.size)),
            });
        }
    }
    audit::append(&mut tx, &audit_entries).await?;
    tx.commit().await?;
    Ok(outcomes)
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
