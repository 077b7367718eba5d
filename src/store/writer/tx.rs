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
use super::super::crypto::KeyRing;

/// One batch's transaction, as a registration sees it.
pub struct WriteTx<'t> {
    pub(super) engine: Engine<'t>,
    pub(super) keys: &'t KeyRing,
    pub(super) now: chrono::DateTime<chrono::Utc>,
    pub(super) audit: &'t mut Vec<AuditEntry>,
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
    /// The first case it opened or joined.
    pub case_id: i64,
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

/// A case opened by a new message (status `new`).
pub struct NewCase<'a> {
    pub id: i64,
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
}

impl WriteTx<'_> {
    pub fn keys(&self) -> &KeyRing {
        self.keys
    }

    /// When the batch is being committed.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now
    }

    /// Allocates `count` consecutive values of a counter; returns the first.
    pub fn allocate(&self, counter: &str, count: i64) -> Result<i64, StoreError> {
        let (last,): (i64,) =
            fetch_optional!(&self.engine, (i64,), "UPDATE counters SET value = value + $1 WHERE name = $2 RETURNING value", count, counter)
                .ok_or_else(|| StoreError::BatchFailed(format!("no counter named {counter}")))?;
        Ok(last - count + 1)
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

    pub fn insert_case(&self, case: &NewCase) -> Result<(), StoreError> {
        let key = case.tags.map(|t| &t.key);
        execute!(
            &self.engine,
            "INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, category, priority, due_at, spam, uid, key_id, wrapped_key, tags_ct, tier)
             VALUES ($1, $2, $3, 'new', $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            case.id,
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
        );
        for idx in case.tags.iter().flat_map(|t| &t.index) {
            execute!(
                &self.engine,
                "INSERT INTO case_tags (case_id, tag_idx) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                case.id,
                idx.as_slice()
            );
        }
        Ok(())
    }

    /// Stores a new message: its row and its sealed raw bytes.
    pub fn insert_message(&self, m: &MessageRow) -> Result<(), StoreError> {
        execute!(
            &self.engine,
            "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, tls, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, sender_idx, msgid_idx, dedupe_idx, tags, automatic, auth)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
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
            m.case_id,
            i64::from(m.key_id),
            m.wrapped_key,
            m.trace_ct,
            m.fields_ct,
            m.sender_idx,
            m.msgid_idx,
            m.dedupe_idx,
            serde_json::to_string(m.tags).expect("tags serialise"),
            i64::from(m.automatic),
            m.auth
        );
        execute!(&self.engine, "INSERT INTO message_blobs (message_id, raw_ct) VALUES ($1, $2)", m.id, m.raw_ct);
        Ok(())
    }

    /// Files message `message_id` under case `case_id` (once).
    pub fn link(&self, message_id: i64, case_id: i64) -> Result<(), StoreError> {
        execute!(
            &self.engine,
            "INSERT INTO message_cases (message_id, case_id, uid) VALUES ($1, $2, $1) ON CONFLICT DO NOTHING",
            message_id,
            case_id
        );
        Ok(())
    }

    /// Whether an acknowledgement to this recipient (blind index) was queued since `since` (ms).
    pub fn ack_queued_since(&self, rcpt_idx: &[u8], since: i64) -> Result<bool, StoreError> {
        Ok(match &self.engine {
            Engine::Sqlite(tx) => crate::store::outbox::recent_ack_sync(tx, rcpt_idx, since)?,
            engine @ Engine::Postgres { .. } => {
                fetch_optional!(engine, (i64,), crate::store::outbox::RECENT_ACK, rcpt_idx, since).is_some()
            }
        })
    }

    /// Queues sealed outgoing mail (an acknowledgement), due at once, through the outbox's one
    /// INSERT; returns the outbox row id.
    pub fn queue_mail(&self, mail: &NewOutboxMail) -> Result<i64, StoreError> {
        Ok(match &self.engine {
            Engine::Sqlite(tx) => crate::store::outbox::insert_sync(tx, mail)?,
            engine @ Engine::Postgres { .. } => {
                let (id,): (i64,) = fetch_optional!(
                    engine,
                    (i64,),
                    crate::store::outbox::INSERT,
                    mail.message_id,
                    mail.kind.as_str(),
                    mail.rcpt_idx.as_slice(),
                    mail.created_at,
                    &mail.uid[..],
                    i64::from(mail.key_id),
                    mail.wrapped_key.as_slice(),
                    mail.mail_ct.as_slice()
                )
                .ok_or_else(|| StoreError::BatchFailed("INSERT … RETURNING id returned no row".into()))?;
                id
            }
        })
    }

    /// Adds an audit event, appended to the chain with the rest of the batch before commit.
    pub fn audit(&mut self, entry: AuditEntry) {
        self.audit.push(entry);
    }
}

/// The batch's own steps (the writer's, not a registration's): retries, numbers, the audit chain.
impl WriteTx<'_> {
    /// The message (id, number) this one is a retry of: same Message-ID index (or none) and
    /// fingerprint, received since `since` (ms).
    pub(super) fn find_retry(&self, msgid_idx: Option<&[u8]>, dedupe_idx: &[u8], since: i64) -> Result<Option<(i64, String)>, StoreError> {
        // A retry has the same Message-ID, so the Message-ID index finds it; the fingerprint
        // (envelope + Message-ID + body) decides. Without a Message-ID, the partial index on the
        // fingerprint does.
        Ok(match msgid_idx {
            Some(msgid) => fetch_optional!(
                &self.engine,
                (i64, String),
                "SELECT id, number FROM messages WHERE msgid_idx = $1 AND dedupe_idx = $2 AND received_at >= $3 ORDER BY id LIMIT 1",
                msgid,
                dedupe_idx,
                since
            ),
            None => fetch_optional!(
                &self.engine,
                (i64, String),
                "SELECT id, number FROM messages WHERE msgid_idx IS NULL AND dedupe_idx = $1 AND received_at >= $2 ORDER BY id LIMIT 1",
                dedupe_idx,
                since
            ),
        })
    }

    /// Takes `count` registration numbers of counter year `year`; returns the first sequence.
    pub(super) fn take_numbers(&self, year: i32, count: i64) -> Result<i64, StoreError> {
        let (last,): (i64,) = fetch_optional!(
            &self.engine,
            (i64,),
            "INSERT INTO reg_counters (year, last_seq) VALUES ($1, $2)
             ON CONFLICT (year) DO UPDATE SET last_seq = reg_counters.last_seq + excluded.last_seq RETURNING last_seq",
            i64::from(year),
            count
        )
        .ok_or_else(|| StoreError::BatchFailed("reg_counters returned no row".into()))?;
        Ok(last - count + 1)
    }

    /// Counts one more retry of message `id`.
    pub(super) fn count_retry(&self, id: i64) -> Result<(), StoreError> {
        execute!(&self.engine, "UPDATE messages SET duplicate_count = duplicate_count + 1 WHERE id = $1", id);
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
