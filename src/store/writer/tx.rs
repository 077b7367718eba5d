//! The narrow interface through which a registration (intake's rules) writes inside the writer's
//! batch transaction: typed reads and writes, no SQL outside the store. Each statement is written
//! once and runs on the batch's engine ([`Engine`]): on SQLite through rusqlite, prepared once per
//! connection (`prepare_cached`), so calling these per message costs a cache look-up, not a parse;
//! on PostgreSQL through sqlx, driven from the writer thread with `Handle::block_on`.
//!
//! SQLite reads `$N` as a NAMED parameter, numbered by first appearance, and rusqlite binds
//! `params![…]` by that number: write each statement's placeholders in ascending order. Bind only
//! types both engines store alike: `i64` (never `bool` or `u32`: PostgreSQL's columns are
//! BIGINT), text, bytes, and `Option`s of them.

use std::cell::RefCell;

use crate::store::engine::Conn;
use crate::store::outbox::NewOutboxMail;
use rusqlite::{OptionalExtension, Transaction, params};

use super::super::StoreError;
use super::super::audit::{self, AuditEntry};
use super::super::cases::counters::{self, Counted, Deltas, Key};
use super::super::crypto::KeyRing;

/// One batch's transaction, as a registration sees it.
pub struct WriteTx<'t> {
    engine: Engine<'t>,
    keys: &'t KeyRing,
    now: chrono::DateTime<chrono::Utc>,
    audit: &'t mut Vec<AuditEntry>,
    /// The queue counters' changes of the batch's cases, applied once before the commit.
    counts: RefCell<Deltas>,
    /// The one IMAP modseq every message placed by this batch shares (RFC 7162 lets one change
    /// give many messages the same value), taken when the first is placed: one counter update per
    /// batch instead of one per message.
    modseq: std::cell::Cell<Option<i64>>,
    /// SQLite: the next case id, once the batch has opened a case ([`WriteTx::next_case_id`]).
    next_case: std::cell::Cell<Option<i64>>,
}

/// The batch's open write transaction on the store's engine.
pub(super) enum Engine<'t> {
    /// `BEGIN IMMEDIATE` on the writer's own rusqlite connection.
    Sqlite(&'t Transaction<'t>),
    /// A sqlx transaction holding the `sequencer` row lock ([`Conn::PostgresWrite`]); `rt` is the
    /// runtime the writer was spawned from. A `RefCell` because registrations write through
    /// `&self` methods and sqlx needs `&mut` the connection.
    Postgres { conn: RefCell<&'t mut Conn>, rt: &'t tokio::runtime::Handle },
}

/// The PostgreSQL connection inside the batch's transaction.
fn pg(conn: &mut Conn) -> &mut sqlx::PgConnection {
    match conn {
        Conn::PostgresWrite(tx) => tx,
        _ => unreachable!("the writer's PostgreSQL engine always holds a PostgreSQL write transaction"),
    }
}

/// Runs a statement without result rows; the number of rows it changed.
macro_rules! execute {
    ($engine:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $engine {
            Engine::Sqlite(tx) => tx.prepare_cached($sql)?.execute(params![$($arg),*])? as u64,
            Engine::Postgres { conn, rt } => {
                let mut conn = conn.borrow_mut();
                rt.block_on(sqlx::query($sql)$(.bind($arg))*.execute(pg(&mut conn)))?.rows_affected()
            }
        }
    };
}

/// Runs a query for at most one row, decoded as the tuple type `$row`.
macro_rules! fetch_optional {
    ($engine:expr, $row:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $engine {
            Engine::Sqlite(tx) => tx.prepare_cached($sql)?.query_row(params![$($arg),*], |r| <$row>::try_from(r)).optional()?,
            Engine::Postgres { conn, rt } => {
                let mut conn = conn.borrow_mut();
                rt.block_on(sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.fetch_optional(pg(&mut conn)))?
            }
        }
    };
}

/// Runs a query for every row, each decoded as the tuple type `$row`.
macro_rules! fetch_all {
    ($engine:expr, $row:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $engine {
            Engine::Sqlite(tx) => {
                tx.prepare_cached($sql)?.query_map(params![$($arg),*], |r| <$row>::try_from(r))?.collect::<Result<Vec<$row>, _>>()?
            }
            Engine::Postgres { conn, rt } => {
                let mut conn = conn.borrow_mut();
                rt.block_on(sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.fetch_all(pg(&mut conn)))?
            }
        }
    };
}

/// The retry of a message with this Message-ID index ($1) and fingerprint ($2), since $3.
const RETRY_BY_MESSAGE_ID: &str =
    "SELECT id, number FROM messages WHERE msgid_idx = $1 AND dedupe_idx = $2 AND received_at >= $3 ORDER BY id LIMIT 1";
/// The retry of a message without a Message-ID with this fingerprint ($1), since $2.
const RETRY_WITHOUT_MESSAGE_ID: &str =
    "SELECT id, number FROM messages WHERE msgid_idx IS NULL AND dedupe_idx = $1 AND received_at >= $2 ORDER BY id LIMIT 1";
/// PostgreSQL: the two look-ups above for a whole batch ($1 Message-ID indexes, NULL for none;
/// $2 fingerprints; $3 since), as (position from 1, id, number). Each branch's `k.msgid IS [NOT]
/// NULL` is a one-time filter, so each key runs only the index scan that fits it.
const RETRIES_OF_BATCH: &str = "SELECT k.position, r.id, r.number
     FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS k(msgid, dedupe, position)
     CROSS JOIN LATERAL (
         (SELECT id, number FROM messages WHERE k.msgid IS NOT NULL AND msgid_idx = k.msgid AND dedupe_idx = k.dedupe AND received_at >= $3 ORDER BY id LIMIT 1)
         UNION ALL
         (SELECT id, number FROM messages WHERE k.msgid IS NULL AND msgid_idx IS NULL AND dedupe_idx = k.dedupe AND received_at >= $3 ORDER BY id LIMIT 1)
     ) AS r";

/// The columns and values of a new message's row ($1 … $21), for both engines.
macro_rules! insert_message {
    () => {
        "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, tls, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, sender_idx, msgid_idx, dedupe_idx, tags, automatic, auth)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
    };
}
const INSERT_MESSAGE: &str = insert_message!();
/// PostgreSQL: the row, its sealed raw bytes ($22) and its filing under cases ($23), at once.
const INSERT_MESSAGE_FILED: &str = concat!(
    "WITH m AS (",
    insert_message!(),
    " RETURNING id), b AS (INSERT INTO message_blobs (message_id, raw_ct) SELECT id, $22 FROM m)
     INSERT INTO message_cases (message_id, case_id, uid, modseq, queue, x_category, x_priority, x_due)
     SELECT m.id, c.id, m.id, $24, c.queue, c.category, c.priority, c.due_at FROM m, cases c WHERE c.id = ANY($23::bigint[])"
);
/// SQLite: a new message's filing under case $3 ($1 its id, $2 the batch's modseq), with the
/// case's queue and the values its `X-Mailroom-*` headers show (no trigger stamps them: see
/// migration 0020).
const FILE_UNDER_CASE: &str = "INSERT INTO message_cases (message_id, case_id, uid, modseq, queue, x_category, x_priority, x_due)
     SELECT $1, id, $1, $2, queue, category, priority, due_at FROM cases WHERE id = $3";
/// The columns of a new case's row, for both engines (their values differ: see the two uses).
macro_rules! insert_case_columns {
    () => {
        "INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, category, priority, due_at, spam, uid, key_id, wrapped_key, tags_ct, tier)"
    };
}
/// A new case's row ($1 id … $13), on SQLite.
const INSERT_CASE: &str = concat!(insert_case_columns!(), " VALUES ($1, $2, $3, 'new', $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
/// PostgreSQL: the case with its id from the counter ($1 … $12 as [`INSERT_CASE`]'s $2 … $13),
/// its tag index ($13) and its first participant ($14, or NULL), at once; returns its id.
const OPEN_CASE: &str = concat!(
    "WITH next AS (UPDATE counters SET value = value + 1 WHERE name = 'case' RETURNING value),
     c AS (",
    insert_case_columns!(),
    " SELECT value, $1, $2, 'new', $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM next RETURNING id),
     t AS (INSERT INTO case_tags (case_id, tag_idx) SELECT c.id, x FROM c, unnest($13::bytea[]) AS x ON CONFLICT DO NOTHING),
     p AS (INSERT INTO case_participants (case_id, address_idx) SELECT c.id, $14 FROM c WHERE $14 IS NOT NULL ON CONFLICT DO NOTHING)
     SELECT id FROM c"
);
const INSERT_CASE_TAG: &str = "INSERT INTO case_tags (case_id, tag_idx) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// PostgreSQL: the counter rows of a batch as arrays, one per column (`unnest`).
#[derive(Default)]
struct CountColumns<'a>(Vec<&'a str>, Vec<&'a str>, Vec<i64>, Vec<i64>);
#[derive(Default)]
struct DueColumns<'a>(Vec<&'a str>, Vec<i64>, Vec<i64>, Vec<i64>);

impl<'a> CountColumns<'a> {
    fn push(&mut self, queue: &'a str, status: &'a str, unassigned: i64, n: i64) {
        self.0.push(queue);
        self.1.push(status);
        self.2.push(unassigned);
        self.3.push(n);
    }
}

impl<'a> DueColumns<'a> {
    fn push(&mut self, queue: &'a str, width: i64, start: i64, n: i64) {
        self.0.push(queue);
        self.1.push(width);
        self.2.push(start);
        self.3.push(n);
    }
}

/// A new message's row: its number and identity, the sealed parts, the lookup indexes.
pub struct MessageRow<'a> {
    pub id: i64,
    pub uid: &'a [u8],
    pub number: &'a str,
    pub reg_year: i32,
    pub reg_seq: i64,
    pub received_at: i64,
    pub size: usize,
    pub protocol: &'a str,
    pub tls: Option<&'a str>,
    pub parsed: bool,
    /// The cases it opened or joined (at least one); the first is `messages.case_id`.
    pub cases: &'a [i64],
    pub key_id: u32,
    pub wrapped_key: &'a [u8],
    pub trace_ct: &'a [u8],
    pub fields_ct: &'a [u8],
    pub raw_ct: &'a [u8],
    pub sender_idx: Option<&'a [u8]>,
    pub msgid_idx: Option<&'a [u8]>,
    pub dedupe_idx: &'a [u8],
    pub tags: &'a [String],
    pub automatic: bool,
    pub auth: Option<&'a str>,
}

/// A case opened by a new message (status `new`); [`WriteTx::open_case`] allocates its id.
pub struct NewCase<'a> {
    pub opening_number: &'a str,
    pub queue: &'a str,
    pub opened_at: i64,
    pub category: Option<&'a str>,
    pub priority: &'a str,
    pub due_at: i64,
    pub spam: bool,
    /// The sender's customer tier, when known and trusted.
    pub tier: Option<&'a str>,
    /// The case's key and sealed tags, when it has tags.
    pub tags: Option<&'a super::super::cases::SealedTags>,
    /// The sender (blind index), its first participant.
    pub participant: Option<&'a [u8]>,
}

impl<'t> WriteTx<'t> {
    /// The batch's transaction, before its first statement.
    pub(super) fn new(
        engine: Engine<'t>,
        keys: &'t KeyRing,
        now: chrono::DateTime<chrono::Utc>,
        audit: &'t mut Vec<AuditEntry>,
    ) -> WriteTx<'t> {
        WriteTx { engine, keys, now, audit, counts: Default::default(), modseq: Default::default(), next_case: Default::default() }
    }
}

impl WriteTx<'_> {
    pub fn keys(&self) -> &KeyRing {
        self.keys
    }

    /// When the batch is being committed.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now
    }

    /// Allocates `count` consecutive values of a counter; returns the first. SQLite runs a
    /// `RETURNING` clause like a trigger, with a statement journal (a copy of every page the
    /// statement changes), so there the update and the read are two statements.
    pub fn allocate(&self, counter: &str, count: i64) -> Result<i64, StoreError> {
        let last = match &self.engine {
            Engine::Sqlite(_) => {
                execute!(&self.engine, "UPDATE counters SET value = value + $1 WHERE name = $2", count, counter);
                fetch_optional!(&self.engine, (i64,), "SELECT value FROM counters WHERE name = $1", counter)
            }
            Engine::Postgres { .. } => {
                fetch_optional!(
                    &self.engine,
                    (i64,),
                    "UPDATE counters SET value = value + $1 WHERE name = $2 RETURNING value",
                    count,
                    counter
                )
            }
        };
        let (last,) = last.ok_or_else(|| StoreError::BatchFailed(format!("no counter named {counter}")))?;
        Ok(last - count + 1)
    }

    /// SQLite: the next case id of the batch. Only the writer opens cases, and it holds the write
    /// lock for the whole batch, so the counter is read once and written back once
    /// ([`WriteTx::finish_case_ids`]) instead of updated per case.
    fn next_case_id(&self) -> Result<i64, StoreError> {
        let next = match self.next_case.get() {
            Some(next) => next,
            None => {
                let (value,): (i64,) = fetch_optional!(&self.engine, (i64,), "SELECT value FROM counters WHERE name = 'case'")
                    .ok_or_else(|| StoreError::BatchFailed("no counter named case".into()))?;
                value + 1
            }
        };
        self.next_case.set(Some(next + 1));
        Ok(next)
    }

    /// The batch's modseq for new placements (see [`WriteTx::modseq`]).
    fn batch_modseq(&self) -> Result<i64, StoreError> {
        if let Some(modseq) = self.modseq.get() {
            return Ok(modseq);
        }
        let modseq = self.allocate("modseq", 1)?;
        self.modseq.set(Some(modseq));
        Ok(modseq)
    }

    /// The cases (id, status) of the message registered as (counter year, sequence).
    pub fn cases_of_number(&self, year: i32, seq: u64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(fetch_all!(
            &self.engine,
            (i64, String),
            "SELECT c.id, c.status FROM messages m JOIN message_cases mc ON mc.message_id = m.id JOIN cases c ON c.id = mc.case_id WHERE m.reg_year = $1 AND m.reg_seq = $2",
            i64::from(year),
            seq as i64
        ))
    }

    /// The cases (id, status) of the messages with this Message-ID blind index.
    pub fn cases_of_message_id(&self, msgid_idx: &[u8]) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(fetch_all!(
            &self.engine,
            (i64, String),
            "SELECT c.id, c.status FROM messages m JOIN message_cases mc ON mc.message_id = m.id JOIN cases c ON c.id = mc.case_id WHERE m.msgid_idx = $1",
            msgid_idx
        ))
    }

    pub fn touch_case(&self, case_id: i64, at: i64) -> Result<(), StoreError> {
        execute!(&self.engine, "UPDATE cases SET updated_at = $1 WHERE id = $2", at, case_id);
        Ok(())
    }

    /// Sets a case back to `open` and records why in its history (actor `intake`).
    pub fn reopen_case(&self, case_id: i64, at: i64, detail: &str) -> Result<(), StoreError> {
        let before = fetch_optional!(
            &self.engine,
            (String, String, Option<i64>, Option<i64>),
            "SELECT queue, status, assignee, due_at FROM cases WHERE id = $1",
            case_id
        );
        if let Some((queue, status, assignee, due_at)) = before {
            let before = Counted { queue, status, unassigned: assignee.is_none(), due_at };
            let after = Counted { status: "open".into(), ..before.clone() };
            self.counts.borrow_mut().change(&before, &after);
        }
        execute!(&self.engine, "UPDATE cases SET status = 'open', resolved_at = NULL, updated_at = $1 WHERE id = $2", at, case_id);
        execute!(
            &self.engine,
            "INSERT INTO case_history (case_id, at, actor, action, detail) VALUES ($1, $2, 'intake', 'status', $3)",
            case_id,
            at,
            detail
        );
        Ok(())
    }

    /// Records an address (blind index) as a participant; true when it is new to the case.
    pub fn add_participant(&self, case_id: i64, address_idx: &[u8]) -> Result<bool, StoreError> {
        let added = execute!(
            &self.engine,
            "INSERT INTO case_participants (case_id, address_idx) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            case_id,
            address_idx
        );
        Ok(added > 0)
    }

    /// Opens a case: allocates its id, inserts it with its tag index and its first participant;
    /// returns the id. On PostgreSQL one statement (one round trip under the sequencer lock).
    pub fn open_case(&self, case: &NewCase) -> Result<i64, StoreError> {
        let counted = Counted { queue: case.queue.into(), status: "new".into(), unassigned: true, due_at: Some(case.due_at) };
        self.counts.borrow_mut().add(&counted, 1);
        let key = case.tags.map(|t| &t.key);
        let no_index = Vec::new();
        let index: Vec<&[u8]> = case.tags.map_or(&no_index, |t| &t.index).iter().map(Vec::as_slice).collect();
        match &self.engine {
            Engine::Sqlite(tx) => {
                let id = self.next_case_id()?;
                tx.prepare_cached(INSERT_CASE)?.execute(params![
                    id,
                    case.opening_number,
                    case.queue,
                    case.opened_at,
                    case.category,
                    case.priority,
                    case.due_at,
                    i64::from(case.spam),
                    key.map(|k| k.uid.as_slice()),
                    key.map(|k| k.key_id),
                    key.map(|k| k.wrapped_key.as_slice()),
                    case.tags.and_then(|t| t.tags_ct.as_deref()),
                    case.tier
                ])?;
                for idx in index {
                    tx.prepare_cached(INSERT_CASE_TAG)?.execute(params![id, idx])?;
                }
                if let Some(address_idx) = case.participant {
                    self.add_participant(id, address_idx)?;
                }
                Ok(id)
            }
            Engine::Postgres { conn, rt } => {
                let mut conn = conn.borrow_mut();
                let query = sqlx::query_scalar(OPEN_CASE)
                    .bind(case.opening_number)
                    .bind(case.queue)
                    .bind(case.opened_at)
                    .bind(case.category)
                    .bind(case.priority)
                    .bind(case.due_at)
                    .bind(i64::from(case.spam))
                    .bind(key.map(|k| k.uid.as_slice()))
                    .bind(key.map(|k| k.key_id))
                    .bind(key.map(|k| k.wrapped_key.as_slice()))
                    .bind(case.tags.and_then(|t| t.tags_ct.as_deref()))
                    .bind(case.tier)
                    .bind(index)
                    .bind(case.participant);
                rt.block_on(query.fetch_optional(pg(&mut conn)))?.ok_or_else(|| StoreError::BatchFailed("no counter named case".into()))
            }
        }
    }

    /// Stores a new message: its row, its sealed raw bytes, and its filing under each of its
    /// cases. On PostgreSQL one statement (one round trip under the sequencer lock).
    pub fn insert_message(&self, m: &MessageRow) -> Result<(), StoreError> {
        let tags = serde_json::to_string(m.tags).expect("tags serialise");
        let first_case = *m.cases.first().ok_or_else(|| StoreError::BatchFailed("a message without a case".into()))?;
        match &self.engine {
            Engine::Sqlite(tx) => {
                tx.prepare_cached(INSERT_MESSAGE)?.execute(params![
                    m.id,
                    m.uid,
                    m.number,
                    i64::from(m.reg_year),
                    m.reg_seq,
                    m.received_at,
                    m.size as i64,
                    m.protocol,
                    m.tls,
                    i64::from(m.parsed),
                    first_case,
                    i64::from(m.key_id),
                    m.wrapped_key,
                    m.trace_ct,
                    m.fields_ct,
                    m.sender_idx,
                    m.msgid_idx,
                    m.dedupe_idx,
                    tags,
                    i64::from(m.automatic),
                    m.auth
                ])?;
                tx.prepare_cached("INSERT INTO message_blobs (message_id, raw_ct) VALUES ($1, $2)")?.execute(params![m.id, m.raw_ct])?;
                let modseq = self.batch_modseq()?;
                for case in m.cases {
                    // The cases are distinct (placement de-duplicates them) and in this
                    // transaction: a row not filed would be a message no mailbox shows.
                    if tx.prepare_cached(FILE_UNDER_CASE)?.execute(params![m.id, modseq, case])? != 1 {
                        return Err(StoreError::BatchFailed(format!("message {} was not filed under case {case}", m.id)));
                    }
                }
            }
            Engine::Postgres { conn, rt } => {
                let modseq = self.batch_modseq()?; // before borrowing the connection: it uses it too
                let filings = m.cases.len() as u64;
                let mut conn = conn.borrow_mut();
                let query = sqlx::query(INSERT_MESSAGE_FILED)
                    .bind(m.id)
                    .bind(m.uid)
                    .bind(m.number)
                    .bind(i64::from(m.reg_year))
                    .bind(m.reg_seq)
                    .bind(m.received_at)
                    .bind(m.size as i64)
                    .bind(m.protocol)
                    .bind(m.tls)
                    .bind(i64::from(m.parsed))
                    .bind(first_case)
                    .bind(i64::from(m.key_id))
                    .bind(m.wrapped_key)
                    .bind(m.trace_ct)
                    .bind(m.fields_ct)
                    .bind(m.sender_idx)
                    .bind(m.msgid_idx)
                    .bind(m.dedupe_idx)
                    .bind(tags)
                    .bind(i64::from(m.automatic))
                    .bind(m.auth)
                    .bind(m.raw_ct)
                    .bind(m.cases)
                    .bind(modseq);
                // As on SQLite: every case must have filed the message (the statement's count is
                // its last INSERT's, the filings).
                if rt.block_on(query.execute(pg(&mut conn)))?.rows_affected() != filings {
                    return Err(StoreError::BatchFailed(format!("message {} was not filed under all of its {filings} cases", m.id)));
                }
            }
        }
        Ok(())
    }

    /// Queues an acknowledgement (sealed by `seal`, due at once) unless one went to its recipient
    /// (blind index `rcpt_idx`) since `since` (ms): at most one per sender within the window.
    /// Returns the outbox row id, `None` when one was recent. SQLite looks first and seals only
    /// when needed; PostgreSQL seals first and does both in one statement (one round trip under
    /// the sequencer lock).
    pub fn queue_ack_unless_recent(
        &self,
        rcpt_idx: &[u8],
        since: i64,
        seal: impl FnOnce(&KeyRing) -> Result<NewOutboxMail, StoreError>,
    ) -> Result<Option<i64>, StoreError> {
        use crate::store::outbox;
        match &self.engine {
            Engine::Sqlite(tx) => {
                if outbox::recent_ack_sync(tx, rcpt_idx, since)? {
                    return Ok(None);
                }
                Ok(Some(outbox::insert_sync(tx, &seal(self.keys)?)?))
            }
            Engine::Postgres { conn, rt } => {
                let mail = seal(self.keys)?;
                debug_assert_eq!(mail.rcpt_idx, rcpt_idx, "the row's index is the one looked up");
                let mut conn = conn.borrow_mut();
                let query = sqlx::query_scalar(outbox::INSERT_ACK_UNLESS_RECENT)
                    .bind(mail.message_id)
                    .bind(mail.kind.as_str())
                    .bind(rcpt_idx)
                    .bind(mail.created_at)
                    .bind(&mail.uid[..])
                    .bind(i64::from(mail.key_id))
                    .bind(mail.wrapped_key.as_slice())
                    .bind(mail.mail_ct.as_slice())
                    .bind(since);
                Ok(rt.block_on(query.fetch_optional(pg(&mut conn)))?)
            }
        }
    }

    /// Adds an audit event, appended to the chain with the rest of the batch before commit.
    pub fn audit(&mut self, entry: AuditEntry) {
        self.audit.push(entry);
    }
}

/// The batch's own steps (the writer's, not a registration's): retries, numbers, the audit chain.
impl WriteTx<'_> {
    /// For each (Message-ID index or none, fingerprint): the message (id, number) it is a retry
    /// of, received since `since` (ms). A retry has the same Message-ID, so the Message-ID index
    /// finds it and the fingerprint (envelope + Message-ID + body) decides; without a Message-ID,
    /// the partial index on the fingerprint does. On PostgreSQL one query for the whole batch.
    pub(super) fn find_retries(&self, keys: &[(Option<&[u8]>, &[u8])], since: i64) -> Result<Vec<Option<(i64, String)>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new()); // a batch of staff reads' audit entries only
        }
        match &self.engine {
            Engine::Sqlite(tx) => keys
                .iter()
                .map(|(msgid, dedupe)| {
                    Ok(match msgid {
                        Some(msgid) => tx
                            .prepare_cached(RETRY_BY_MESSAGE_ID)?
                            .query_row(params![msgid, dedupe, since], |r| <(i64, String)>::try_from(r))
                            .optional()?,
                        None => tx
                            .prepare_cached(RETRY_WITHOUT_MESSAGE_ID)?
                            .query_row(params![dedupe, since], |r| <(i64, String)>::try_from(r))
                            .optional()?,
                    })
                })
                .collect(),
            Engine::Postgres { conn, rt } => {
                let msgids: Vec<Option<&[u8]>> = keys.iter().map(|k| k.0).collect();
                let dedupes: Vec<&[u8]> = keys.iter().map(|k| k.1).collect();
                let mut conn = conn.borrow_mut();
                let query = sqlx::query_as::<_, (i64, i64, String)>(RETRIES_OF_BATCH).bind(msgids).bind(dedupes).bind(since);
                let found = rt.block_on(query.fetch_all(pg(&mut conn)))?;
                let mut retries = vec![None; keys.len()];
                for (position, id, number) in found {
                    retries[position as usize - 1] = Some((id, number));
                }
                Ok(retries)
            }
        }
    }

    /// Writes back the case counter after the batch opened cases (SQLite, see
    /// [`WriteTx::next_case_id`]).
    pub(super) fn finish_case_ids(&self) -> Result<(), StoreError> {
        if let Some(next) = self.next_case.get() {
            execute!(&self.engine, "UPDATE counters SET value = $1 WHERE name = 'case'", next - 1);
        }
        Ok(())
    }

    /// Takes `count` registration numbers of counter year `year`; returns the first sequence.
    /// (On SQLite without `RETURNING`, as in [`WriteTx::allocate`].)
    pub(super) fn take_numbers(&self, year: i32, count: i64) -> Result<i64, StoreError> {
        macro_rules! upsert {
            () => {
                "INSERT INTO reg_counters (year, last_seq) VALUES ($1, $2)
             ON CONFLICT (year) DO UPDATE SET last_seq = reg_counters.last_seq + excluded.last_seq"
            };
        }
        const UPSERT: &str = upsert!();
        const UPSERT_RETURNING: &str = concat!(upsert!(), " RETURNING last_seq");
        let year = i64::from(year);
        let last = match &self.engine {
            Engine::Sqlite(_) => {
                execute!(&self.engine, UPSERT, year, count);
                fetch_optional!(&self.engine, (i64,), "SELECT last_seq FROM reg_counters WHERE year = $1", year)
            }
            Engine::Postgres { .. } => fetch_optional!(&self.engine, (i64,), UPSERT_RETURNING, year, count),
        };
        let (last,) = last.ok_or_else(|| StoreError::BatchFailed("reg_counters returned no row".into()))?;
        Ok(last - count + 1)
    }

    /// Counts one more retry of message `id`.
    pub(super) fn count_retry(&self, id: i64) -> Result<(), StoreError> {
        execute!(&self.engine, "UPDATE messages SET duplicate_count = duplicate_count + 1 WHERE id = $1", id);
        Ok(())
    }

    /// Applies the batch's changes to the queue counters: one upsert per counter row changed
    /// (a burst of mail into one queue changes a handful).
    pub(super) fn apply_counts(&self) -> Result<(), StoreError> {
        let deltas = self.counts.borrow();
        if let Engine::Postgres { conn, rt } = &self.engine {
            // One round trip under the sequencer lock for the upserts, one more only when a row
            // went down (a case re-opened) and may now be empty.
            if deltas.is_empty() {
                return Ok(());
            }
            let (mut counts, mut dues) = (CountColumns::default(), DueColumns::default());
            let (mut counts_down, mut dues_down) = (CountColumns::default(), DueColumns::default());
            for (key, n) in deltas.changed() {
                match key {
                    Key::Count { queue, status, unassigned } => {
                        counts.push(queue, status, *unassigned, n);
                        if n < 0 {
                            counts_down.push(queue, status, *unassigned, n);
                        }
                    }
                    Key::Due { queue, width, start } => {
                        dues.push(queue, *width, *start, n);
                        if n < 0 {
                            dues_down.push(queue, *width, *start, n);
                        }
                    }
                }
            }
            let mut conn = conn.borrow_mut();
            let query = sqlx::query(counters::UPSERT_ALL_POSTGRES)
                .bind(&counts.0)
                .bind(&counts.1)
                .bind(&counts.2)
                .bind(&counts.3)
                .bind(&dues.0)
                .bind(&dues.1)
                .bind(&dues.2)
                .bind(&dues.3);
            rt.block_on(query.execute(pg(&mut conn)))?;
            if !counts_down.0.is_empty() || !dues_down.0.is_empty() {
                let query = sqlx::query(counters::DROP_ALL_EMPTY_POSTGRES)
                    .bind(&counts_down.0)
                    .bind(&counts_down.1)
                    .bind(&counts_down.2)
                    .bind(&dues_down.0)
                    .bind(&dues_down.1)
                    .bind(&dues_down.2);
                rt.block_on(query.execute(pg(&mut conn)))?;
            }
            return Ok(());
        }
        for (key, n) in deltas.changed() {
            match key {
                Key::Count { queue, status, unassigned } => {
                    execute!(&self.engine, counters::UPSERT_COUNT, queue.as_str(), status.as_str(), *unassigned, n);
                    if n < 0 {
                        execute!(&self.engine, counters::DROP_EMPTY_COUNT, queue.as_str(), status.as_str(), *unassigned);
                    }
                }
                Key::Due { queue, width, start } => {
                    execute!(&self.engine, counters::UPSERT_DUE, queue.as_str(), *width, *start, n);
                    if n < 0 {
                        execute!(&self.engine, counters::DROP_EMPTY_DUE, queue.as_str(), *width, *start);
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends the batch's audit events to the chain (after the last row, which the engine's
    /// write lock keeps from moving).
    pub(super) fn append_audit(&self) -> Result<(), StoreError> {
        let entries = &self.audit[..];
        match &self.engine {
            Engine::Sqlite(tx) => audit::append_sync(self.keys, tx, entries)?,
            Engine::Postgres { conn, rt } => rt.block_on(audit::append(self.keys, &mut conn.borrow_mut(), entries))?,
        }
        Ok(())
    }
}
