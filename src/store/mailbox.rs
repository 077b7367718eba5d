//! The IMAP view's bookkeeping: a queue's messages as a mailbox, each staff member's own
//! \Seen/\Flagged flags, and the mailbox's UIDVALIDITY. Nothing here reads customer content
//! except `trace_len`, which decrypts only our own Received: header to learn its length.

use super::audit::{self, AuditEntry};
use super::crypto::aad;
use super::engine::{on_conn, on_db};
use super::mailbox_seen;
use super::{Store, StoreError};

/// One message as a mailbox shows it: where it is, the header values fixed when it got its UID,
/// what the case says about it now (the keywords), and the flags of the user who looks.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MailboxEntry {
    /// IMAP UID: allocated from the global message sequence when the message entered this queue.
    #[sqlx(try_from = "i64")]
    pub uid: u32,
    pub message_id: i64,
    pub case_id: i64,
    pub number: String,
    /// Unix ms (INTERNALDATE).
    pub received_at: i64,
    /// Octets as received (without our trace header).
    pub size: i64,
    pub seen: bool,
    pub flagged: bool,
    /// The case is flagged as spam (shown as the `$Junk` keyword).
    pub spam: bool,
    /// X-Mailroom-Category/Priority/Due: the case's values when the message got this UID.
    pub x_category: Option<String>,
    pub x_priority: String,
    pub x_due: Option<i64>,
    /// The case now: shown as keywords.
    pub category: Option<String>,
    pub priority: String,
    pub status: String,
    pub assignee: Option<i64>,
    /// RFC 7162: the last change of what everybody sees (keywords, placement) and of this user's
    /// own flags; the message's mod-sequence for this user is the larger.
    pub modseq: i64,
    pub flags_modseq: i64,
}

impl MailboxEntry {
    /// The message's mod-sequence as this user sees it.
    pub fn modseq(&self) -> u64 {
        self.modseq.max(self.flags_modseq).max(1) as u64
    }
}

/// A flag change for one message, as stored per user.
#[derive(Clone, Copy, Debug)]
pub struct FlagUpdate {
    pub case_id: i64,
    pub message_id: i64,
    pub seen: bool,
    pub flagged: bool,
}

impl Store {
    /// The mailbox's UIDVALIDITY, created on first use (the current unix time) and never changed:
    /// UIDs are allocated once per message and queue, so there is no event that would require a
    /// new one.
    pub async fn mailbox_uidvalidity(&self, queue: &str) -> Result<u32, StoreError> {
        const SELECT: &str = "SELECT uidvalidity FROM mailboxes WHERE queue = $1";
        let found: Option<i64> = on_db!(self.db(), pool => sqlx::query_scalar(SELECT).bind(queue).fetch_optional(pool).await?);
        if let Some(v) = found {
            return Ok(v as u32);
        }
        let now = (chrono::Utc::now().timestamp() as u32).max(1);
        let stored: i64 = on_db!(self.db(), pool => {
            // Concurrent first SELECTs: whichever insert lands first wins, both read the same value.
            sqlx::query("INSERT INTO mailboxes (queue, uidvalidity) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(queue)
                .bind(i64::from(now))
                .execute(pool)
                .await?;
            sqlx::query_scalar(SELECT).bind(queue).fetch_one(pool).await?
        });
        Ok(stored as u32)
    }

    /// The next UID any mailbox can see: one more than the message sequence, which every UID
    /// (delivery or transfer) is taken from.
    pub async fn mailbox_uid_next(&self) -> Result<u32, StoreError> {
        let last: i64 =
            on_db!(self.db(), pool => sqlx::query_scalar("SELECT value FROM counters WHERE name = 'message'").fetch_one(pool).await?);
        Ok(u32::try_from(last + 1).unwrap_or(u32::MAX))
    }

    /// Stores flag changes and audit entries in one transaction (a FETCH that sets \Seen and
    /// audits the reads commits once); reads' entries alone (`BODY.PEEK`) go with the writer's
    /// next batch. The changed flags get one new mod-sequence (returned; 0 when nothing changed).
    ///
    /// `unchanged_since` (STORE UNCHANGEDSINCE, RFC 7162 §3.1.3): a message whose mod-sequence
    /// for this user is above it now is left as it is and returned in the second list (its
    /// message id), decided under the write lock.
    ///
    /// The user's "seen through" watermarks (store/mailbox_seen.rs) stay true in the same
    /// transaction: lowered below a message whose \Seen is cleared, advanced in `queue` (the
    /// mailbox the flags were set from) when \Seen was set.
    pub async fn mailbox_commit(
        &self,
        user_id: i64,
        queue: &str,
        flags: &[FlagUpdate],
        entries: &[AuditEntry],
        unchanged_since: Option<u64>,
    ) -> Result<(u64, Vec<i64>), StoreError> {
        if flags.is_empty() {
            return if entries.is_empty() { Ok((0, vec![])) } else { self.append_audit(entries.to_vec()).await.map(|_| (0, vec![])) };
        }
        let mut tx = self.db.begin_write().await?;
        let mut modified = Vec::new();
        let mut written = 0;
        let modseq: i64 = on_conn!(&mut tx, c => sqlx::query_scalar("UPDATE counters SET value = value + 1 WHERE name = 'modseq' RETURNING value")
            .fetch_one(c)
            .await?);
        for f in flags {
            if let Some(limit) = unchanged_since {
                let current: Option<i64> = on_conn!(&mut tx, c => sqlx::query_scalar(
                    "SELECT CASE WHEN COALESCE(f.modseq, 0) > COALESCE(mc.modseq, 1) THEN f.modseq ELSE COALESCE(mc.modseq, 1) END
                     FROM message_cases mc
                     LEFT JOIN mailbox_flags f ON f.user_id = $1 AND f.case_id = mc.case_id AND f.message_id = mc.message_id
                     WHERE mc.case_id = $2 AND mc.message_id = $3",
                )
                .bind(user_id)
                .bind(f.case_id)
                .bind(f.message_id)
                .fetch_optional(c)
                .await?);
                if current.is_some_and(|m| m as u64 > limit) {
                    modified.push(f.message_id);
                    continue;
                }
            }
            written += 1;
            on_conn!(&mut tx, c => sqlx::query(
                "INSERT INTO mailbox_flags (user_id, case_id, message_id, seen, flagged, modseq) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (user_id, case_id, message_id) DO UPDATE SET seen = excluded.seen, flagged = excluded.flagged, modseq = excluded.modseq",
            )
            .bind(user_id)
            .bind(f.case_id)
            .bind(f.message_id)
            .bind(f.seen as i64)
            .bind(f.flagged as i64)
            .bind(modseq)
            .execute(c)
            .await
            .map(|_| ())?);
            if !f.seen {
                mailbox_seen::lower(&mut tx, user_id, f.case_id, f.message_id).await?;
            }
        }
        if written > 0 && flags.iter().any(|f| f.seen) {
            mailbox_seen::advance(&mut tx, user_id, queue).await?;
        }
        audit::append(&self.keys, &mut tx, entries).await?;
        if written > 0 {
            tx.notify_changes().await?;
        }
        tx.commit().await?;
        if written > 0 {
            // The user's other sessions (another client, another device) show the new flags.
            self.changed();
        }
        Ok((if written > 0 { modseq as u64 } else { 0 }, modified))
    }

    /// Length of our Received: header on message `id`, so RFC822.SIZE is known without
    /// decrypting and decompressing the whole message.
    pub async fn trace_len(&self, id: i64) -> Result<usize, StoreError> {
        let row: Option<super::SealedColumn> = on_db!(self.db(), pool => {
            sqlx::query_as("SELECT uid, key_id, wrapped_key, trace_ct FROM messages WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        let (uid, key_id, wrapped_key, trace_ct) = row.ok_or_else(|| StoreError::NotFound(format!("message #{id}")))?;
        let data_key = self.row_key(&uid, key_id, &wrapped_key)?;
        Ok(data_key.open(&aad("trace", &uid), &trace_ct)?.len())
    }
}
