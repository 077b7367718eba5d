//! The group-commit writer: the single place where registration numbers are allocated and
//! messages are committed.
//!
//! Sessions hand over fully prepared (parsed, encrypted) registrations through a channel. The
//! writer takes everything that is waiting — up to `storage.max_batch` — and stores it in ONE
//! transaction: it finds retries, takes the next numbers, lets each registration write itself
//! through [`WriteTx`] (intake decides threading, cases and acknowledgements), appends the audit
//! events. Only when `COMMIT` has returned (SQLite: the WAL is fsynced, synchronous=FULL;
//! PostgreSQL: synchronous_commit=on, so flushed, on the synchronous standby too when the server
//! has one) does each session learn its number and send 250. If anything fails the whole batch rolls back, every
//! session replies 451 and no number is consumed, so the sequence stays gap-free. While one
//! commit is being fsynced the next batch accumulates, so the cost of an fsync is shared by
//! every message that arrived meanwhile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Datelike;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::audit::AuditEntry;
use super::engine::{Conn, Db};
use super::{Store, StoreError};

mod notices;
mod tx;
use tx::Engine;
pub use tx::{MessageRow, NewCase, WriteTx};

/// One message to register, prepared by intake. The writer decides whether it is a retry of a
/// message stored earlier (by its indexes), numbers it, and lets it write itself into the batch's
/// transaction: where it goes (threading, cases) and what follows (acknowledgement) are intake's.
pub trait Registration: Send {
    /// Blind index of the Message-ID, when the message has one.
    fn msgid_idx(&self) -> Option<&[u8]>;
    /// The retry fingerprint (envelope + Message-ID + body).
    fn dedupe_idx(&self) -> &[u8];
    /// Who the audit log names for a retry (the protocol), and its size.
    fn actor(&self) -> &'static str;
    fn size(&self) -> usize;
    /// Stores the message as row `number.id`, inside the batch's transaction; any error rolls
    /// the whole batch back.
    fn register(&self, tx: &mut WriteTx<'_>, number: &Numbered) -> Result<(), StoreError>;
}

/// The identity the writer gave a new message.
pub struct Numbered {
    /// Row id of the message.
    pub id: i64,
    /// Counter year and sequence (gap-free per year).
    pub year: i32,
    pub seq: i64,
    /// The registration number as shown, formatted by [`Numbering`].
    pub number: String,
}

/// How registration numbers are counted and written (intake's format; the store only counts).
pub trait Numbering: Send + Sync {
    /// The counter year for a calendar year (one sequence per counter year).
    fn counter_year(&self, calendar_year: i32) -> i32;
    fn format(&self, counter_year: i32, seq: u64) -> String;
}

/// The writer's answer once the batch is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Registered(String),
    /// A retry of a message registered earlier: the earlier number, nothing stored again.
    Duplicate(String),
}

enum Job {
    Register {
        registration: Box<dyn Registration>,
        reply: oneshot::Sender<Result<Answer, StoreError>>,
    },
    /// Audit entries of their own (a staff read): appended in the next batch, so a read costs no
    /// write transaction (and, on PostgreSQL, no turn at the sequencer lock) of its own.
    Audit {
        entries: Vec<AuditEntry>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// How often the writer itself finishes a checkpoint, so the WAL restarts instead of growing.
const WRITER_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct WriterHandle {
    // Unbounded, yet bounded in practice: each session has at most one job in flight, and
    // sessions are bounded by limits.max_connections.
    tx: mpsc::UnboundedSender<Job>,
}

/// What the store keeps of the writer: it does not hold the channel open (the writer stops once
/// the last [`WriterHandle`] is gone), and gives a handle while the writer runs.
pub(crate) struct WeakWriter(mpsc::WeakUnboundedSender<Job>);

impl WeakWriter {
    pub(crate) fn upgrade(&self) -> Option<WriterHandle> {
        self.0.upgrade().map(|tx| WriterHandle { tx })
    }
}

impl WriterHandle {
    /// Returns once the message is durably committed (or the batch failed).
    pub async fn submit(&self, registration: Box<dyn Registration>) -> Result<Answer, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Register { registration, reply }).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Returns once the entries are durably appended to the audit chain (in the next batch).
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Audit { entries, reply }).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Starts the writer thread. It runs until every `WriterHandle` is dropped and the queue is
/// drained; join the returned handle to wait for the last commit. Call it inside the runtime the
/// store was opened in (on PostgreSQL the writer drives its transactions there).
///
/// On SQLite the writer owns a synchronous connection on a thread of its own (rusqlite, over the
/// same libsqlite3 that sqlx uses). sqlx's SQLite driver sends every statement to a worker thread
/// and back; on the commit path that hand-off, repeated for every statement of every batch, cost
/// more than the fsync itself, and the commit path is what every sender waits for. On PostgreSQL
/// the same thread runs each batch through the store's pool with `Handle::block_on`.
pub fn spawn(
    store: Store,
    numbering: Arc<dyn Numbering>,
    duplicate_window: Duration,
) -> Result<(WriterHandle, std::thread::JoinHandle<()>), StoreError> {
    let backend = match store.db() {
        Db::Sqlite(_) => Backend::Sqlite(open_connection(&store)?),
        Db::Postgres(pool) => {
            let rt = tokio::runtime::Handle::try_current()
                .map_err(|e| StoreError::BatchFailed(format!("the PostgreSQL writer needs a tokio runtime: {e}")))?;
            if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
                return Err(StoreError::BatchFailed("the PostgreSQL writer needs a multi-threaded tokio runtime".into()));
            }
            // Its own connection: a burst of staff requests holding every pooled one must not
            // keep a delivery waiting for a connection (and then answering 451).
            Backend::Postgres { rt, warnings: notices::Watch::new(), pool: super::postgres::own_connection(pool, "writer") }
        }
    };
    let max_batch = store.options.storage.max_batch;
    let (tx, rx) = mpsc::unbounded_channel();
    // Staff reads' audit entries go through the writer while it runs (`Store::append_audit`).
    let _ = store.writer.set(WeakWriter(tx.downgrade()));
    let thread = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || run(store, &*numbering, backend, rx, max_batch, duplicate_window))
        .map_err(|e| StoreError::BatchFailed(format!("starting the writer thread: {e}")))?;
    Ok((WriterHandle { tx }, thread))
}

/// What the writer thread commits through.
enum Backend {
    /// Its own synchronous SQLite connection.
    Sqlite(Connection),
    /// The runtime to drive PostgreSQL connections in (a multi-threaded one: the writer thread's
    /// `block_on` cannot drive a current-thread runtime's IO), what notes the server's warnings
    /// during COMMIT, and the writer's own connection (`<node>-writer`).
    Postgres { rt: tokio::runtime::Handle, warnings: notices::Watch, pool: sqlx::PgPool },
}

fn open_connection(store: &Store) -> Result<Connection, StoreError> {
    // WAL writes gathered until each commit's sync (`sqlite_wal_buffer`); it relies on the
    // `synchronous = FULL` set below.
    let conn = if super::sqlite_wal_buffer::register() {
        Connection::open_with_flags_and_vfs(&store.options.database_path, OpenFlags::default(), super::sqlite_wal_buffer::NAME)?
    } else {
        Connection::open(&store.options.database_path)?
    };
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    // FULL: the WAL is fsynced at every commit, so a 250 survives power loss, not just a crash.
    conn.pragma_update(None, "synchronous", "full")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Sorting and temp indexes stay in memory: no clear-text scratch files on disk.
    conn.pragma_update(None, "temp_store", "memory")?;
    // Freed and moved row contents are zeroed (see `sqlite::connect_options`).
    conn.pragma_update(None, "secure_delete", "on")?;
    // Checkpoints run in a background task, never inside a commit that senders wait for; once a
    // checkpoint has caught up, the WAL restarts and is cut back to this size.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    if let Some(max_bytes) = store.options.storage.max_database_size {
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

/// The writer thread's name, as CPU profiles and `/proc/PID/task/*/comm` show it (the benches
/// report its CPU apart).
pub const THREAD_NAME: &str = "mailroom-writer";

/// `duplicate_window`: how long a retry of a committed message is recognised as one.
fn run(
    store: Store,
    numbering: &dyn Numbering,
    mut backend: Backend,
    mut rx: mpsc::UnboundedReceiver<Job>,
    max_batch: usize,
    duplicate_window: Duration,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut last_checkpoint = Instant::now();
    while let Some(first) = rx.blocking_recv() {
        // Everything that queued up during the previous commit shares this one. (Waiting a
        // little longer for transactions still arriving was measured: bigger batches, but lower
        // throughput and higher latency on 2 cores, so the writer never waits.)
        batch.push(first);
        while batch.len() < max_batch
            && let Ok(job) = rx.try_recv()
        {
            batch.push(job);
        }
        let started = Instant::now();
        let result = commit_batch(&store, numbering, &mut backend, &batch, duplicate_window);
        tracing::debug!(messages = batch.len(), ms = started.elapsed().as_secs_f64() * 1e3, ok = result.is_ok(), "batch");
        record_batch(&batch, started.elapsed(), result.is_ok());
        match result {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for job in batch.drain(..) {
                    match job {
                        Job::Register { reply, .. } => {
                            let _ = reply.send(outcomes.next().ok_or(StoreError::Closed));
                        }
                        Job::Audit { reply, .. } => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "commit failed; batch rolled back, senders get 451");
                let message = e.to_string();
                for job in batch.drain(..) {
                    let failed = StoreError::BatchFailed(message.clone());
                    match job {
                        Job::Register { reply, .. } => {
                            let _ = reply.send(Err(failed));
                        }
                        Job::Audit { reply, .. } => {
                            let _ = reply.send(Err(failed));
                        }
                    }
                }
            }
        }
        // The background checkpointer copies most of the WAL; finishing here, between commits,
        // lets the checkpoint complete so the next commit restarts the WAL from its beginning.
        if let Backend::Sqlite(conn) = &backend
            && last_checkpoint.elapsed() >= WRITER_CHECKPOINT_EVERY
        {
            last_checkpoint = Instant::now();
            if let Err(e) = super::sqlite::checkpoint_sync(conn, false) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }
    // Last one out moves the WAL into the database file, so a clean stop leaves one file.
    if let Backend::Sqlite(conn) = &backend
        && let Err(e) = super::sqlite::checkpoint_sync(conn, true)
    {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

/// The batch in the metrics (`telemetry` renders them): its duration, its outcome, and how many
/// messages shared its commit.
fn record_batch(batch: &[Job], took: Duration, committed: bool) {
    // Readiness probes' empty batches (`Store::check_writable`) are not commits worth counting.
    if batch.iter().all(|job| matches!(job, Job::Audit { entries, .. } if entries.is_empty())) {
        return;
    }
    let messages = batch.iter().filter(|job| matches!(job, Job::Register { .. })).count();
    metrics::counter!("mailroom_store_commits_total", "result" => if committed { "ok" } else { "failed" }).increment(1);
    metrics::histogram!("mailroom_store_commit_duration_seconds").record(took.as_secs_f64());
    if messages > 0 {
        metrics::histogram!("mailroom_store_commit_messages").record(messages as f64);
    }
}

/// One batch in one transaction on the backend's engine, committed before any answer is given.
///
/// On PostgreSQL every statement, including the sealed message bodies, runs after the
/// `sequencer` lock: message ids are allocated under it and `message_blobs` is keyed by them.
/// If COMMIT fails, or its outcome is unknown (the connection was lost while it ran: PostgreSQL
/// may have committed or not; or it succeeded with a warning, as when the wait for the
/// synchronous standby was cancelled), the batch counts as failed: every sender gets 451 and
/// retries, and a retry of a message that was in fact committed finds it through the retry
/// lookup and gets its original number.
fn commit_batch(
    store: &Store,
    numbering: &dyn Numbering,
    backend: &mut Backend,
    batch: &[Job],
    duplicate_window: Duration,
) -> Result<Vec<Answer>, StoreError> {
    let now = chrono::Utc::now();
    let mut registrations: Vec<&dyn Registration> = Vec::with_capacity(batch.len());
    // Staff reads' entries first, then the registrations' (all in this one transaction).
    let mut audit_entries = Vec::with_capacity(batch.len());
    for job in batch {
        match job {
            Job::Register { registration, .. } => registrations.push(registration.as_ref()),
            Job::Audit { entries, .. } => audit_entries.extend(entries.iter().cloned()),
        }
    }
    // A batch of audit entries alone changes nothing staff see: no IDLE session is woken.
    let staff_visible = !registrations.is_empty();
    let answers = match backend {
        Backend::Sqlite(conn) => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut write = WriteTx::new(Engine::Sqlite(&tx), &store.keys, now, &mut audit_entries);
            let answers = write_batch(&mut write, numbering, &registrations, duplicate_window)?;
            tx.commit()?;
            answers
        }
        Backend::Postgres { rt, warnings, pool } => {
            // Inside the runtime until `conn` is gone: a failed batch drops its transaction here,
            // and sqlx returns the connection to the pool by spawning a task, which panics (and
            // killed this thread) outside a runtime. Declared first, so dropped last.
            let _runtime = rt.enter();
            let mut conn = Conn::PostgresWrite(rt.block_on(super::postgres::begin_write(pool))?);
            let locked = Instant::now();
            let answers = {
                let engine = Engine::Postgres { conn: RefCell::new(&mut conn), rt };
                let mut write = WriteTx::new(engine, &store.keys, now, &mut audit_entries);
                write_batch(&mut write, numbering, &registrations, duplicate_window)?
            };
            // The other nodes' IMAP sessions in IDLE hear of the batch when it commits.
            if staff_visible {
                rt.block_on(conn.notify_changes())?;
            }
            let (committed, warning) = warnings.run(|| rt.block_on(conn.commit()));
            committed?;
            if let Some(warning) = warning {
                // Committed on the primary, perhaps not on the synchronous standby: not what a
                // 250 promises. The senders retry and find it (same number).
                return Err(StoreError::BatchFailed(format!("COMMIT answered with a warning, durability unknown: {warning}")));
            }
            tracing::debug!(messages = batch.len(), lock_ms = locked.elapsed().as_secs_f64() * 1e3, "sequencer lock held");
            answers
        }
    };
    // Wakes IMAP sessions in IDLE (a new registration is an EXISTS in its queue's mailbox).
    if staff_visible {
        store.changed();
    }
    Ok(answers)
}

/// The batch's statements, the same on every engine: retries, numbers, each registration's
/// rows, retry counts, the audit chain.
fn write_batch(
    write: &mut WriteTx<'_>,
    numbering: &dyn Numbering,
    batch: &[&dyn Registration],
    duplicate_window: Duration,
) -> Result<Vec<Answer>, StoreError> {
    let now = write.now();
    let window_start = now.timestamp_millis() - duplicate_window.as_millis() as i64;
    let year = numbering.counter_year(now.year());

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
    let lookups: Vec<(Option<&[u8]>, &[u8])> = batch.iter().map(|r| (r.msgid_idx(), r.dedupe_idx())).collect();
    let retries = write.find_retries(&lookups, window_start)?;
    for (i, (job, retry)) in batch.iter().zip(retries).enumerate() {
        let key = job.dedupe_idx();
        if let Some(&first) = first_in_batch.get(key) {
            plans.push(Plan::DuplicateInBatch(first));
            continue;
        }
        match retry {
            Some((id, number)) => plans.push(Plan::Duplicate { id, number }),
            None => {
                first_in_batch.insert(key, i);
                plans.push(Plan::New { index: fresh });
                fresh += 1;
            }
        }
    }

    // The number each new message gets, by batch position.
    let mut numbers: Vec<Option<String>> = vec![None; batch.len()];
    let mut ids: Vec<Option<i64>> = vec![None; batch.len()];
    let at = now.timestamp_millis();
    if fresh > 0 {
        // Numbers are taken inside this transaction: if it rolls back, none is consumed.
        let first_seq = write.take_numbers(year, fresh)?;
        let first_message = write.allocate("message", fresh)?;
        for (i, (job, plan)) in batch.iter().zip(&plans).enumerate() {
            let Plan::New { index } = plan else { continue };
            let (seq, id) = (first_seq + index, first_message + index);
            let numbered = Numbered { id, year, seq, number: numbering.format(year, seq as u64) };
            job.register(write, &numbered)?;
            numbers[i] = Some(numbered.number);
            ids[i] = Some(id);
        }
    }
    let answers: Vec<Answer> = plans
        .iter()
        .enumerate()
        .map(|(i, plan)| match plan {
            Plan::New { .. } => Answer::Registered(numbers[i].clone().expect("numbered above")),
            Plan::Duplicate { number, .. } => Answer::Duplicate(number.clone()),
            Plan::DuplicateInBatch(first) => Answer::Duplicate(numbers[*first].clone().expect("first copy numbered above")),
        })
        .collect();
    for (i, (job, answer)) in batch.iter().zip(&answers).enumerate() {
        if let Answer::Duplicate(number) = answer {
            let id = match &plans[i] {
                Plan::Duplicate { id, .. } => *id,
                Plan::DuplicateInBatch(first) => ids[*first].expect("first copy inserted above"),
                Plan::New { .. } => unreachable!("a new message is not a duplicate"),
            };
            write.count_retry(id)?;
            write.audit(AuditEntry {
                at,
                actor: job.actor().into(),
                action: "message.duplicate".into(),
                object: Some(number.clone()),
                detail: Some(format!("size={}", job.size())),
            });
        }
    }
    write.finish_case_ids()?;
    write.apply_counts()?;
    write.append_audit()?;
    Ok(answers)
}
