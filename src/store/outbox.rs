//! The outbox table: outgoing mail, sealed, waiting for the worker.
//!
//! A row is written in the transaction of whatever it answers (a registration's acknowledgement
//! through the writer's rusqlite transaction, a staff reply through a case change's sqlx
//! transaction): both go through [`NewOutboxMail`] and the one [`INSERT`], so the two paths
//! cannot drift apart. The worker claims due rows, and records what happened to them, here.
//!
//! The mail is sealed as JSON `{from, to, data}` under the row's own data key; the recipient is
//! kept as a blind index only (`rcpt_idx`, the rate limit of acknowledgements).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::crypto::{CryptoError, KeyRing, aad};
use super::engine::{Conn, Db, on_conn, on_db};
use super::{Store, StoreError, now_millis};
use super::{postgres, sqlite};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Db(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("sealed mail is malformed: {0}")]
    Format(&'static str),
}

impl From<sqlx::Error> for OutboxError {
    fn from(e: sqlx::Error) -> Self {
        OutboxError::Db(e.into())
    }
}

/// One outgoing message in clear: envelope sender (empty = null reverse-path `<>`), envelope
/// recipients, and the RFC 5322 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl fmt::Debug for Mail {
    // Addresses and content stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail").field("recipients", &self.to.len()).field("size", &self.data.len()).finish_non_exhaustive()
    }
}

/// The JSON inside `mail_ct`.
#[derive(Serialize, Deserialize)]
struct MailJson<'a> {
    from: Cow<'a, str>,
    to: Vec<Cow<'a, str>>,
    data: String,
}

/// A new outbox row, sealed and ready to insert (due at once).
pub struct NewOutboxMail {
    /// The registered message it answers (`None`: tests and tools).
    pub message_id: Option<i64>,
    /// `ack` or `reply`.
    pub kind: String,
    /// Blind index of the first recipient.
    pub rcpt_idx: Vec<u8>,
    /// Unix ms; also the first `next_attempt_at`.
    pub created_at: i64,
    pub uid: [u8; 16],
    pub key_id: u32,
    pub wrapped_key: Vec<u8>,
    pub mail_ct: Vec<u8>,
}

impl NewOutboxMail {
    /// Seals one outgoing mail into a new row: a new uid and data key, the mail under it, the
    /// first recipient's blind index. The one way an outbox row is made.
    pub fn seal<S: AsRef<str>>(
        keys: &KeyRing,
        message_id: Option<i64>,
        kind: &str,
        from: &str,
        to: &[S],
        data: &[u8],
        created_at: i64,
    ) -> Result<NewOutboxMail, CryptoError> {
        let row = keys.new_row()?;
        let mail_ct = seal_json(&row.key, &row.uid, from, to, data)?;
        let rcpt_idx = keys.address_index(to.first().map_or("", |t| t.as_ref()));
        Ok(NewOutboxMail {
            message_id,
            kind: kind.to_string(),
            rcpt_idx,
            created_at,
            uid: row.uid,
            key_id: row.key_id,
            wrapped_key: row.wrapped_key,
            mail_ct,
        })
    }
}

fn seal_json<S: AsRef<str>>(key: &super::crypto::DataKey, uid: &[u8], from: &str, to: &[S], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let json = MailJson { from: Cow::Borrowed(from), to: to.iter().map(|t| Cow::Borrowed(t.as_ref())).collect(), data: B64.encode(data) };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&json).expect("strings always serialise"));
    key.seal(&aad("outbox", uid), &plain)
}

/// The one INSERT of an outbox row, for both drivers; binds in [`NewOutboxMail`]'s field order
/// (`created_at` twice: a new row is due at once). Attempts and status take their defaults.
pub const INSERT: &str = "INSERT INTO outbox (message_id, kind, rcpt_idx, created_at, next_attempt_at, uid, key_id, wrapped_key, mail_ct) \
     VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8) RETURNING id";

/// Inserts a row in a transaction (or on a connection); returns its id.
pub async fn insert(conn: &mut Conn, row: &NewOutboxMail) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(INSERT)
        .bind(row.message_id)
        .bind(&row.kind)
        .bind(&row.rcpt_idx)
        .bind(row.created_at)
        .bind(&row.uid[..])
        .bind(i64::from(row.key_id))
        .bind(&row.wrapped_key)
        .bind(&row.mail_ct)
        .fetch_one(c)
        .await)
}

/// Makes a row due no earlier than `at` (unix ms): a staff reply's undo window.
pub async fn hold_until(conn: &mut Conn, id: i64, at: i64) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE id = $2").bind(at).bind(id).execute(c).await.map(|_| ()))
}

/// Takes a row back before it is sent: one statement, only while it is still pending, never
/// attempted and not yet due at `now`. The worker's [`claim`] is conditional on the status too:
/// SQLite runs both under its write lock, PostgreSQL re-checks the condition of whichever waited
/// for the other's row lock, so exactly one of them wins. True when withdrawn.
pub async fn withdraw(conn: &mut Conn, id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let withdrawn = on_conn!(conn, c => sqlx::query(
        "UPDATE outbox SET status = 'withdrawn' WHERE id = $1 AND status = 'pending' AND attempts = 0 AND next_attempt_at > $2",
    )
    .bind(id)
    .bind(now)
    .execute(c)
    .await?
    .rows_affected());
    Ok(withdrawn == 1)
}

/// A row's status (pending, sending, sent, failed, withdrawn), if it exists.
pub async fn status_of(conn: &mut Conn, id: i64) -> Result<Option<String>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1").bind(id).fetch_optional(c).await)
}

/// Inserts a row in the writer's rusqlite transaction; returns its id.
pub fn insert_sync(tx: &rusqlite::Transaction, row: &NewOutboxMail) -> rusqlite::Result<i64> {
    tx.prepare_cached(INSERT)?.query_row(
        rusqlite::params![row.message_id, row.kind, row.rcpt_idx, row.created_at, &row.uid[..], row.key_id, row.wrapped_key, row.mail_ct],
        |r| r.get(0),
    )
}

/// An acknowledgement to recipient `$1` (blind index) queued since `$2` (unix ms), if any.
pub const RECENT_ACK: &str = "SELECT id FROM outbox WHERE rcpt_idx = $1 AND kind = 'ack' AND created_at >= $2 LIMIT 1";

/// PostgreSQL, the writer: [`INSERT`] of an acknowledgement unless [`RECENT_ACK`] finds one
/// ($9: since), in one statement; returns the new id, or no row.
pub const INSERT_ACK_UNLESS_RECENT: &str = "INSERT INTO outbox (message_id, kind, rcpt_idx, created_at, next_attempt_at, uid, key_id, wrapped_key, mail_ct) \
     SELECT $1, $2, $3, $4, $4, $5, $6, $7, $8 \
     WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE rcpt_idx = $3 AND kind = 'ack' AND created_at >= $9) RETURNING id";

/// Whether an acknowledgement went to this recipient since `since` (unix ms): at most one per
/// sender within the window.
pub fn recent_ack_sync(tx: &rusqlite::Transaction, rcpt_idx: &[u8], since: i64) -> rusqlite::Result<bool> {
    use rusqlite::OptionalExtension;
    let found: Option<i64> = tx.prepare_cached(RECENT_ACK)?.query_row(rusqlite::params![rcpt_idx, since], |r| r.get(0)).optional()?;
    Ok(found.is_some())
}

/// Seals and inserts a due row through the pool (tests, tools); returns its id.
pub async fn enqueue<S: AsRef<str>>(
    store: &Store,
    message_id: Option<i64>,
    kind: &str,
    from: &str,
    to: &[S],
    data: &[u8],
) -> Result<i64, OutboxError> {
    let row = NewOutboxMail::seal(&store.keys, message_id, kind, from, to, data, now_millis())?;
    let mut conn = store.db().begin_read().await?;
    Ok(insert(&mut conn, &row).await?)
}

/// One outbox row as the worker reads it.
#[derive(Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub attempts: i64,
    pub uid: Vec<u8>,
    pub key_id: i64,
    pub wrapped_key: Vec<u8>,
    pub mail_ct: Vec<u8>,
}

/// Opens a row sealed by [`NewOutboxMail::seal`].
pub fn open_mail(keys: &KeyRing, row: &OutboxRow) -> Result<Mail, OutboxError> {
    let key_id = u32::try_from(row.key_id).map_err(|_| OutboxError::Format("key id out of range"))?;
    let data_key = keys.unwrap(key_id, &row.wrapped_key, &aad("dek", &row.uid))?;
    let plain = zeroize::Zeroizing::new(data_key.open(&aad("outbox", &row.uid), &row.mail_ct)?);
    let json: MailJson = serde_json::from_slice(&plain).map_err(|_| OutboxError::Format("not the expected JSON"))?;
    let data = B64.decode(json.data.as_bytes()).map_err(|_| OutboxError::Format("data is not base64"))?;
    Ok(Mail { from: json.from.into_owned(), to: json.to.into_iter().map(Cow::into_owned).collect(), data })
}

/// Takes up to `batch` due rows in one statement, conditional on their status, so two workers
/// never get the same row. SQLite runs it under the write lock (a stale snapshot fails instead of
/// claiming twice); PostgreSQL locks the rows it picks with `FOR UPDATE SKIP LOCKED`, so workers
/// on several nodes take different rows instead of waiting for each other's, and re-checks the
/// outer condition on a row another transaction changed meanwhile (a withdrawn reply). No
/// sequencer lock: one statement on outbox rows only. `lease_until` (unix ms) hands the rows
/// back if the worker dies while sending. Oldest first.
pub async fn claim(store: &Store, now: i64, lease_until: i64, batch: usize) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = match store.db() {
        Db::Sqlite(_) => sqlite::CLAIM_OUTBOX,
        Db::Postgres(_) => postgres::CLAIM_OUTBOX,
    };
    let mut rows: Vec<OutboxRow> =
        on_db!(store.db(), pool => sqlx::query_as(sql).bind(lease_until).bind(now).bind(batch as i64).fetch_all(pool).await?);
    // RETURNING comes in no particular order; ids grow with time.
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Hands claimed rows back, due now, without counting an attempt.
/// Like [`record`], without the sequencer lock.
pub async fn release(store: &Store, ids: &[i64]) -> Result<(), StoreError> {
    let mut tx = store.db().begin_unsequenced().await?;
    for id in ids {
        on_conn!(&mut tx, c => {
            sqlx::query("UPDATE outbox SET status = 'pending', next_attempt_at = $1 WHERE id = $2 AND status = 'sending'")
                .bind(now_millis())
                .bind(id)
                .execute(c)
                .await
                .map(|_| ())?
        });
    }
    tx.commit().await?;
    Ok(())
}

/// What became of one claimed row.
pub enum Attempt<'a> {
    /// Delivered; `note` says which recipients were refused, if some were.
    Sent { note: Option<&'a str> },
    /// Failed for now: due again at `next_attempt_at` (unix ms).
    Retry { error: &'a str, next_attempt_at: i64 },
    /// Given up.
    Failed { error: &'a str },
}

/// Writes the attempts (row id, attempts so far, what happened) in one transaction, `now` as the
/// time of sending. Without the sequencer lock (`Db::begin_unsequenced`): each statement is one
/// conditional UPDATE of a row this worker claimed (status `sending`), which allocates no number
/// and writes no audit entry, so it needs no place in the commit order; another node's claim
/// skips rows locked here, and a withdrawal waits for this row lock only (it never holds the
/// sequencer while this waits for it, so no deadlock).
pub async fn record(store: &Store, attempts: &[(i64, i64, Attempt<'_>)], now: i64) -> Result<(), StoreError> {
    let mut tx = store.db().begin_unsequenced().await?;
    for (id, count, attempt) in attempts {
        match attempt {
            Attempt::Sent { note } => on_conn!(&mut tx, c => sqlx::query(
                "UPDATE outbox SET status = 'sent', sent_at = $1, attempts = $2, last_error = $3 WHERE id = $4 AND status = 'sending'",
            )
            .bind(now)
            .bind(count)
            .bind(note)
            .bind(id)
            .execute(c)
            .await
            .map(|_| ())?),
            Attempt::Retry { .. } | Attempt::Failed { .. } => {
                let (status, error, next) = match attempt {
                    Attempt::Retry { error, next_attempt_at } => ("pending", *error, Some(*next_attempt_at)),
                    Attempt::Failed { error } => ("failed", *error, None),
                    Attempt::Sent { .. } => unreachable!("matched above"),
                };
                on_conn!(&mut tx, c => sqlx::query(
                    "UPDATE outbox SET status = $1, attempts = $2, last_error = $3, next_attempt_at = COALESCE($4, next_attempt_at) \
                     WHERE id = $5 AND status = 'sending'",
                )
                .bind(status)
                .bind(count)
                .bind(error)
                .bind(next)
                .bind(id)
                .execute(c)
                .await
                .map(|_| ())?);
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Earliest `next_attempt_at` of any row still to be sent (unix ms).
pub async fn next_due(store: &Store) -> Result<Option<i64>, StoreError> {
    Ok(on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE status IN ('pending', 'sending')").fetch_one(pool).await?
    }))
}

/// When a row still waiting to be sent is due (unix ms); None once taken, sent or withdrawn.
pub async fn pending_until(store: &Store, id: i64) -> Result<Option<i64>, StoreError> {
    Ok(
        on_db!(store.db(), pool => sqlx::query_scalar("SELECT next_attempt_at FROM outbox WHERE id = $1 AND status = 'pending' AND attempts = 0")
        .bind(id)
        .fetch_optional(pool)
        .await?),
    )
}

/// Where one row stands (for operators and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowState {
    pub status: String,
    pub attempts: i64,
    /// Never contains addresses or content.
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

pub async fn state(store: &Store, id: i64) -> Result<RowState, StoreError> {
    let (status, attempts, last_error, sent_at) = on_db!(store.db(), pool => {
        sqlx::query_as("SELECT status, attempts, last_error, sent_at FROM outbox WHERE id = $1").bind(id).fetch_one(pool).await?
    });
    Ok(RowState { status, attempts, last_error, sent_at })
}

/// The sealed mail of one row, as stored (to check that nothing is in clear).
pub async fn sealed_mail(store: &Store, id: i64) -> Result<Vec<u8>, StoreError> {
    Ok(on_db!(store.db(), pool => sqlx::query_scalar("SELECT mail_ct FROM outbox WHERE id = $1").bind(id).fetch_one(pool).await?))
}

/// Attempts made over all rows (the SUM cast: PostgreSQL's SUM of a BIGINT is a NUMERIC).
pub async fn total_attempts(store: &Store) -> Result<i64, StoreError> {
    Ok(on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM outbox").fetch_one(pool).await?
    }))
}

/// Marks a row as claimed by a worker whose lease ends at `lease_until` (unix ms), as [`claim`]
/// leaves it: for tests that play a worker which died while sending.
pub async fn mark_sending(store: &Store, id: i64, lease_until: i64) -> Result<(), StoreError> {
    on_db!(store.db(), pool => {
        sqlx::query("UPDATE outbox SET status = 'sending', next_attempt_at = $1 WHERE id = $2")
            .bind(lease_until)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())?
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_bound_to_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::load_or_create(&dir.path().join("master.key")).unwrap();
        let data = b"From: support@example.com\r\nTo: jane@customer.example\r\nSubject: hi\r\n\r\nbody\r\n";
        let new = NewOutboxMail::seal(&keys, None, "ack", "", &["jane@customer.example"], data, 1).unwrap();
        assert!(!new.mail_ct.windows(8).any(|w| w == b"customer"), "recipient is not in clear");
        let row = OutboxRow {
            id: 1,
            kind: "ack".into(),
            attempts: 0,
            uid: new.uid.to_vec(),
            key_id: new.key_id as i64,
            wrapped_key: new.wrapped_key,
            mail_ct: new.mail_ct,
        };
        let mail = open_mail(&keys, &row).unwrap();
        assert_eq!(mail, Mail { from: String::new(), to: vec!["jane@customer.example".into()], data: data.to_vec() });
        assert!(!format!("{mail:?}").contains("customer"), "Debug hides addresses");

        let mut other = row.clone();
        other.uid[15] ^= 1;
        assert!(matches!(open_mail(&keys, &other), Err(OutboxError::Crypto(_))), "a ciphertext moved to another row fails");
        assert_eq!(new.rcpt_idx, keys.blind_index("address", b"jane@customer.example"));
        assert_eq!(keys.address_index(" Jane@Customer.Example "), keys.blind_index("address", b"jane@customer.example"));
    }

    #[tokio::test]
    async fn both_drivers_insert_the_same_rows_and_the_worker_claims_and_records_them() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            std::sync::Arc::new(crate::config::Settings::from_str("test.toml", crate::config::DEFAULT_CONFIG, dir.path()).unwrap());
        let store = Store::open(settings.store_options()).await.unwrap();
        let now = now_millis();

        // The writer's path: rusqlite, in its own transaction.
        let ack = NewOutboxMail::seal(&store.keys, None, "ack", "", &["jane@customer.example"], b"ack", now - 10).unwrap();
        let mut conn = rusqlite::Connection::open(settings.database_path()).unwrap();
        let tx = conn.transaction().unwrap();
        assert!(!recent_ack_sync(&tx, &ack.rcpt_idx, now - 1000).unwrap());
        let a = insert_sync(&tx, &ack).unwrap();
        assert!(recent_ack_sync(&tx, &store.keys.address_index("Jane@customer.example"), now - 1000).unwrap());
        assert!(!recent_ack_sync(&tx, &ack.rcpt_idx, now).unwrap(), "outside the window");
        tx.commit().unwrap();

        // A case change's path: sqlx.
        let reply =
            NewOutboxMail::seal(&store.keys, None, "reply", "support@example.com", &["bob@customer.example"], b"reply", now).unwrap();
        let b = insert(&mut store.db().begin_read().await.unwrap(), &reply).await.unwrap();
        assert!(b > a);
        assert_eq!(next_due(&store).await.unwrap(), Some(now - 10), "a new row is due when it was made");

        let claimed = claim(&store, now, now + 60_000, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|r| (r.id, r.kind.as_str(), r.attempts)).collect::<Vec<_>>(), [(a, "ack", 0), (b, "reply", 0)]);
        assert_eq!(open_mail(&store.keys, &claimed[0]).unwrap().data, b"ack");
        assert_eq!(open_mail(&store.keys, &claimed[1]).unwrap().from, "support@example.com");
        assert!(claim(&store, now, now + 60_000, 10).await.unwrap().is_empty(), "leased rows are not claimed twice");

        let attempts = [(a, 1, Attempt::Sent { note: None }), (b, 1, Attempt::Retry { error: "DATA: 451", next_attempt_at: now + 5 })];
        record(&store, &attempts, now).await.unwrap();
        assert_eq!(state(&store, a).await.unwrap(), RowState { status: "sent".into(), attempts: 1, last_error: None, sent_at: Some(now) });
        let retry = state(&store, b).await.unwrap();
        assert_eq!((retry.status.as_str(), retry.attempts, retry.last_error.as_deref()), ("pending", 1, Some("DATA: 451")));
        assert_eq!(next_due(&store).await.unwrap(), Some(now + 5));
        assert_eq!(total_attempts(&store).await.unwrap(), 2);

        mark_sending(&store, b, now + 60_000).await.unwrap();
        release(&store, &[b]).await.unwrap();
        assert_eq!(state(&store, b).await.unwrap().status, "pending");
        record(&store, &[(b, 2, Attempt::Failed { error: "RCPT: 550 5.1.1" })], now).await.unwrap();
        assert_eq!(state(&store, b).await.unwrap().status, "pending", "only a claimed row is recorded");
    }

    #[tokio::test]
    async fn exactly_one_of_undo_and_the_workers_claim_wins() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            std::sync::Arc::new(crate::config::Settings::from_str("test.toml", crate::config::DEFAULT_CONFIG, dir.path()).unwrap());
        let store = Store::open(settings.store_options()).await.unwrap();
        let (mut claimed_wins, mut undo_wins) = (0, 0);
        for _ in 0..40 {
            let now = now_millis();
            let held = now + 2_000;
            let row = NewOutboxMail::seal(&store.keys, None, "reply", "a@b", &["c@d"], b"x", now).unwrap();
            let id = {
                let mut conn = store.db().begin_read().await.unwrap();
                let id = insert(&mut conn, &row).await.unwrap();
                hold_until(&mut conn, id, held).await.unwrap();
                id
            };
            assert!(claim(&store, held - 1, held + 60_000, 10).await.unwrap().is_empty(), "held rows are not due");
            // The worker's clock says the row is due; the undo's says it is not yet: only the status decides.
            let (claimed, withdrawn) = tokio::join!(claim(&store, held, held + 60_000, 10), async {
                let mut conn = store.db().begin_read().await.unwrap();
                withdraw(&mut conn, id, held - 1).await.unwrap()
            });
            let claimed = claimed.unwrap().iter().any(|r| r.id == id);
            assert!(claimed != withdrawn, "exactly one wins (claimed {claimed}, withdrawn {withdrawn})");
            let status = state(&store, id).await.unwrap().status;
            assert_eq!(status, if withdrawn { "withdrawn" } else { "sending" });
            if claimed {
                claimed_wins += 1;
                record(&store, &[(id, 1, Attempt::Sent { note: None })], held).await.unwrap();
                let mut conn = store.db().begin_read().await.unwrap();
                assert!(!withdraw(&mut conn, id, held - 1).await.unwrap(), "a sent row is never withdrawn");
            } else {
                undo_wins += 1;
                assert!(claim(&store, held + 10_000, held + 60_000, 10).await.unwrap().iter().all(|r| r.id != id), "never claimed later");
            }
        }
        assert_eq!(claimed_wins + undo_wins, 40);
        // After its time, an untouched row cannot be withdrawn either.
        let now = now_millis();
        let row = NewOutboxMail::seal(&store.keys, None, "reply", "a@b", &["c@d"], b"x", now).unwrap();
        let mut conn = store.db().begin_read().await.unwrap();
        let id = insert(&mut conn, &row).await.unwrap();
        hold_until(&mut conn, id, now + 1_000).await.unwrap();
        assert!(!withdraw(&mut conn, id, now + 1_000).await.unwrap(), "too late at its time");
        assert!(withdraw(&mut conn, id, now + 999).await.unwrap());
        assert_eq!(status_of(&mut conn, id).await.unwrap().as_deref(), Some("withdrawn"));
    }

    #[test]
    fn a_sealed_row_opens_with_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::load_or_create(&dir.path().join("master.key")).unwrap();
        let new = NewOutboxMail::seal(&keys, None, "reply", "a@b", &["c@d"], b"x", 0).unwrap();
        let row = OutboxRow {
            id: 1,
            kind: "reply".into(),
            attempts: 0,
            uid: new.uid.to_vec(),
            key_id: new.key_id as i64,
            wrapped_key: new.wrapped_key.clone(),
            mail_ct: new.mail_ct.clone(),
        };
        assert_eq!(open_mail(&keys, &row).unwrap(), Mail { from: "a@b".into(), to: vec!["c@d".into()], data: b"x".to_vec() });
    }
}
