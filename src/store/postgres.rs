//! What only PostgreSQL needs: connecting, how a write transaction starts (the `sequencer` row
//! lock), and statements written in PostgreSQL's own dialect. The sibling of `sqlite.rs`; nothing
//! outside `store` sees either.

use sqlx::{PgPool, Postgres, Transaction};

/// Starts a write transaction and takes the one `sequencer` row lock first, the PostgreSQL
/// counterpart of SQLite's `BEGIN IMMEDIATE`: write transactions from every node run one at a
/// time, so registration numbers, message ids (IMAP UIDs) and the audit chain follow commit
/// order, and since every writer locks the same row first, none can deadlock on another.
pub(crate) async fn begin_write(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM sequencer WHERE id = 1 FOR UPDATE").execute(&mut *tx).await?;
    Ok(tx)
}

/// Registrations for operators, oldest first, `$1` at most: as `sqlite::LIST_MESSAGES`, with
/// PostgreSQL's JSON aggregation.
pub(crate) const LIST_MESSAGES: &str =
    "SELECT m.number, m.received_at, m.size, m.protocol, m.tls, m.parsed, m.duplicate_count, c.queue, m.tags, m.auth,
            (SELECT json_agg(json_build_object('case', k.id, 'opening', k.opening_number, 'queue', k.queue, 'status', k.status,
                     'category', k.category, 'priority', k.priority, 'due_at', k.due_at, 'spam', k.spam, 'tier', k.tier))::text
             FROM message_cases mc JOIN cases k ON k.id = mc.case_id WHERE mc.message_id = m.id)
     FROM messages m JOIN cases c ON c.id = m.case_id ORDER BY m.id LIMIT $1";
