//! The "seen through" watermark (issue #13): per user and queue, a UID through which every
//! message now in the queue is seen by the user (migrations/*/0019_mailbox_seen_through.sql).
//! The flags stay the truth; the watermark is where the walk for unseen messages starts, so
//! SELECT's [UNSEEN n], SEARCH UNSEEN and STATUS UNSEEN cost the unseen messages (and those
//! seen out of order above it), not the mailbox. Kept in the transaction that writes the flags.

use super::engine::{Conn, on_conn, on_db};
use super::{Store, StoreError};

/// The user's ($1) watermark in queue $2, 0 without a row (one index probe, as a scalar
/// subquery so the range read that uses it is one statement, one snapshot).
macro_rules! through {
    () => {
        "COALESCE((SELECT w.uid FROM mailbox_seen_through w WHERE w.user_id = $1 AND w.queue = $2), 0)"
    };
}

/// The unseen messages of queue $2 for user $1 above the watermark: `mc` rows, in UID order.
macro_rules! unseen_above {
    ($select:literal, $tail:literal) => {
        concat!(
            $select,
            " FROM message_cases mc
             LEFT JOIN mailbox_flags f ON f.user_id = $1 AND f.case_id = mc.case_id AND f.message_id = mc.message_id
             WHERE mc.queue = $2 AND mc.uid > ",
            through!(),
            " AND COALESCE(f.seen, 0) = 0",
            $tail
        )
    };
}

/// UIDs between the watermark and the first unseen message (or the queue's top) above which a
/// SELECT advances it: below, the walk it saves is not worth a write transaction.
const STALE_GAP: i64 = 1_000;

/// \Seen cleared on message ($2 case, $3 message) for user $1: each of the user's watermarks at
/// or above the message's UID in its queue (where it is now) goes just below it.
const LOWER: &str = "UPDATE mailbox_seen_through
     SET uid = (SELECT MIN(mc.uid) FROM message_cases mc
                WHERE mc.case_id = $2 AND mc.message_id = $3 AND mc.queue = mailbox_seen_through.queue) - 1
     WHERE user_id = $1
       AND uid >= (SELECT MIN(mc.uid) FROM message_cases mc
                   WHERE mc.case_id = $2 AND mc.message_id = $3 AND mc.queue = mailbox_seen_through.queue)";

/// The watermark ($1 user, $2 queue) set to $3 (only ever raised by `advance`).
const SET: &str = "INSERT INTO mailbox_seen_through (user_id, queue, uid) VALUES ($1, $2, $3)
     ON CONFLICT (user_id, queue) DO UPDATE SET uid = excluded.uid";

/// Lowers the user's watermarks below a message whose \Seen was cleared, in the writing transaction.
pub(super) async fn lower(tx: &mut Conn, user_id: i64, case_id: i64, message_id: i64) -> Result<(), StoreError> {
    on_conn!(tx, c => sqlx::query(LOWER).bind(user_id).bind(case_id).bind(message_id).execute(c).await.map(|_| ())?);
    Ok(())
}

/// Moves the user's watermark in `queue` up to just below the first unseen message above it
/// (the queue's largest UID when there is none), in the writing transaction: it walks only the
/// seen messages it passes over, each once while they stay seen.
pub(super) async fn advance(tx: &mut Conn, user_id: i64, queue: &str) -> Result<(), StoreError> {
    let (now, first): (i64, Option<i64>) = on_conn!(&mut *tx, c => sqlx::query_as(concat!(
        "SELECT ",
        through!(),
        ", (",
        unseen_above!("SELECT mc.uid", " ORDER BY mc.uid LIMIT 1"),
        ")"
    ))
    .bind(user_id)
    .bind(queue)
    .fetch_one(c)
    .await?);
    let next = match first {
        Some(uid) => uid - 1,
        None => on_conn!(&mut *tx, c => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(uid) FROM message_cases WHERE queue = $1")
            .bind(queue)
            .fetch_one(c)
            .await?)
        .unwrap_or(0),
    };
    if next > now {
        on_conn!(tx, c => sqlx::query(SET).bind(user_id).bind(queue).bind(next).execute(c).await.map(|_| ())?);
    }
    Ok(())
}

impl Store {
    /// The user's watermark in `queue`: every message in it with a UID up to this one is seen.
    pub async fn mailbox_seen_through(&self, queue: &str, user_id: i64) -> Result<i64, StoreError> {
        Ok(on_db!(self.db(), pool => sqlx::query_scalar(concat!("SELECT ", through!()))
            .bind(user_id)
            .bind(queue)
            .fetch_one(pool)
            .await?))
    }

    /// The smallest UID in `queue` that `user_id` has not seen (SELECT's UNSEEN). A watermark
    /// found far below it (the first unseen message left the queue, or a STORE changed nothing
    /// and so advanced nothing) is advanced here, once, in a write transaction of its own.
    pub async fn mailbox_first_unseen(&self, queue: &str, user_id: i64) -> Result<Option<u32>, StoreError> {
        let (through, first, top): (i64, Option<i64>, Option<i64>) = on_db!(self.db(), pool => sqlx::query_as(concat!(
            "SELECT ",
            through!(),
            ", (",
            unseen_above!("SELECT mc.uid", " ORDER BY mc.uid LIMIT 1"),
            "), (SELECT MAX(uid) FROM message_cases WHERE queue = $2)"
        ))
        .bind(user_id)
        .bind(queue)
        .fetch_one(pool)
        .await?);
        let reach = first.map(|u| u - 1).or(top).unwrap_or(0);
        if reach - through > STALE_GAP {
            let mut tx = self.db.begin_write().await?;
            advance(&mut tx, user_id, queue).await?;
            tx.commit().await?;
        }
        Ok(first.and_then(|u| u32::try_from(u).ok()).filter(|u| *u > 0))
    }

    /// The UIDs in `queue` that `user_id` has not seen, ascending (SEARCH UNSEEN).
    pub async fn mailbox_unseen_uids(&self, queue: &str, user_id: i64) -> Result<Vec<u32>, StoreError> {
        let rows: Vec<i64> = on_db!(self.db(), pool => sqlx::query_scalar(unseen_above!("SELECT mc.uid", " ORDER BY mc.uid"))
            .bind(user_id)
            .bind(queue)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().filter_map(|u| u32::try_from(u).ok()).filter(|u| *u > 0).collect())
    }

    /// MESSAGES of `queue` (STATUS): a count of the queue's `(queue, uid)` index.
    pub async fn mailbox_message_count(&self, queue: &str) -> Result<u32, StoreError> {
        let n: i64 = on_db!(self.db(), pool => sqlx::query_scalar("SELECT COUNT(*) FROM message_cases WHERE queue = $1")
            .bind(queue)
            .fetch_one(pool)
            .await?);
        Ok(n as u32)
    }

    /// UNSEEN of `queue` for `user_id` (STATUS): a count of the unseen messages above the watermark.
    pub async fn mailbox_unseen_count(&self, queue: &str, user_id: i64) -> Result<u32, StoreError> {
        let n: i64 = on_db!(self.db(), pool => sqlx::query_scalar(unseen_above!("SELECT COUNT(*)", ""))
            .bind(user_id)
            .bind(queue)
            .fetch_one(pool)
            .await?);
        Ok(n as u32)
    }

    /// MESSAGES and UNSEEN of `queue` for `user_id`.
    pub async fn mailbox_counts(&self, queue: &str, user_id: i64) -> Result<(u32, u32), StoreError> {
        Ok((self.mailbox_message_count(queue).await?, self.mailbox_unseen_count(queue, user_id).await?))
    }
}

#[cfg(test)]
#[path = "mailbox_seen_tests.rs"]
mod tests;
