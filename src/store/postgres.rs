//! What only PostgreSQL needs: connecting, how a write transaction starts (the `sequencer` row
//! lock), and statements written in PostgreSQL's own dialect. The sibling of `sqlite.rs`; nothing
//! outside `store` sees either.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool, Postgres, Transaction};

use super::config::redacted_url;

/// Connections per node: the writer's, the staff sessions' reads and writes, the workers'. A few
/// nodes together stay well below PostgreSQL's default `max_connections` (100).
const MAX_CONNECTIONS: u32 = 16;
/// How long taking a connection may wait (a new one included) before the operation fails: a
/// session gets 451 rather than hanging on an unreachable database.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the pool (every connection named `node`) and brings the schema up to date (sqlx takes
/// an advisory lock, so nodes starting together migrate once).
///
/// Each session starts with `synchronous_commit = on` (a COMMIT returns only once it is durable,
/// on the synchronous standby too when one is configured: a 250 may follow it) and
/// `statement_timeout = 0`, whatever the server or role default, since a timeout that cancelled a
/// COMMIT's wait would leave its outcome unknown. Statements are not logged: their parameters
/// are sealed customer data, and their text is no use at the default level.
pub(crate) async fn open(url: &str, node: &str) -> Result<PgPool, super::StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let options =
        options.application_name(node).options([("synchronous_commit", "on"), ("statement_timeout", "0")]).disable_statement_logging();
    let pool = PgPoolOptions::new().max_connections(MAX_CONNECTIONS).acquire_timeout(ACQUIRE_TIMEOUT).connect_with(options).await?;
    let durable: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&pool).await?;
    if durable != "on" {
        return Err(sqlx::Error::Configuration(format!("synchronous_commit is {durable:?}, not \"on\"").into()).into());
    }
    super::PG_MIGRATOR.run(&pool).await?;
    tracing::info!(database = %redacted_url(url), node, "PostgreSQL connected");
    Ok(pool)
}

/// A pool of one connection of its own, with the store's settings and the application name
/// `<node>-<role>`, connected on first use and again after a failure: for a task that must not
/// wait for a connection behind staff requests (the writer) or holds one for good (the listener).
pub(crate) fn own_connection(pool: &PgPool, role: &str) -> PgPool {
    let options = (*pool.connect_options()).clone();
    let name = format!("{}-{role}", node_name(pool));
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options.application_name(&name))
}

/// This node's name: the `application_name` the store's pool was opened with ([`open`]).
pub(crate) fn node_name(pool: &PgPool) -> String {
    pool.connect_options().get_application_name().unwrap_or("mailroom").to_string()
}

/// Starts a write transaction and takes the one `sequencer` row lock first, the PostgreSQL
/// counterpart of SQLite's `BEGIN IMMEDIATE`: write transactions from every node run one at a
/// time, so registration numbers, message ids (IMAP UIDs) and the audit chain follow commit
/// order, and since every writer locks the same row first, none can deadlock on another.
pub(crate) async fn begin_write(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM sequencer WHERE id = 1 FOR UPDATE").execute(&mut *tx).await?;
    Ok(tx)
}

/// The channel on which every commit that staff see is announced to the other nodes.
pub(crate) const CHANGES_CHANNEL: &str = "mailroom_changes";
/// The channel on which staff presence heartbeats go to the other nodes (`store::presence`).
pub(crate) const PRESENCE_CHANNEL: &str = "mailroom_presence";

/// Announces the transaction's changes to every node's listener (`store::listener`). PostgreSQL
/// delivers a NOTIFY only when its transaction commits, and not at all if it rolls back, so it is
/// sent inside the transaction. The payload is only a hint: the last message id allocated so far
/// (never customer data); listeners re-read on any notification.
pub(crate) async fn notify_changes(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, (SELECT value FROM counters WHERE name = 'message')::text)")
        .bind(CHANGES_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Registrations for operators, oldest first, `$1` at most: as `sqlite::LIST_MESSAGES`, with
/// PostgreSQL's JSON aggregation.
pub(crate) const LIST_MESSAGES: &str =
    "SELECT m.number, m.received_at, m.size, m.protocol, m.tls, m.parsed, m.duplicate_count, c.queue, m.tags, m.auth,
            (SELECT json_agg(json_build_object('case', k.id, 'opening', k.opening_number, 'queue', k.queue, 'status', k.status,
                     'category', k.category, 'priority', k.priority, 'due_at', k.due_at, 'spam', k.spam, 'tier', k.tier))::text
             FROM message_cases mc JOIN cases k ON k.id = mc.case_id WHERE mc.message_id = m.id),
            m.purged_by
     FROM messages m JOIN cases c ON c.id = m.case_id ORDER BY m.id LIMIT $1";

/// The outbox worker's claim, as `sqlite::CLAIM_OUTBOX`, with the rows locked by
/// `FOR UPDATE SKIP LOCKED`: a worker on another node skips rows already being claimed (it takes
/// the next ones) instead of waiting for that transaction and then finding them taken.
/// As `sqlite::MAILBOX_UID_PAGE`.
pub(crate) const MAILBOX_UID_PAGE: &str = "SELECT string_agg(uid::text, ',' ORDER BY uid)
     FROM (SELECT uid FROM message_cases WHERE queue = $1 AND uid > $2 ORDER BY uid LIMIT $3) AS page";

pub(crate) const CLAIM_OUTBOX: &str = "UPDATE outbox SET status = 'sending', next_attempt_at = $1
     WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'sending') AND next_attempt_at <= $2
                  ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
       AND status IN ('pending', 'sending') AND next_attempt_at <= $2
     RETURNING id, kind, attempts, uid, key_id, wrapped_key, mail_ct";

/// The bytes the database takes on the server's disk.
pub(crate) async fn database_size(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(pool).await
}
