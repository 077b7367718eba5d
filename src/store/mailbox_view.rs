//! The IMAP view's incremental reads (issue #13): a mailbox is a range of the (queue, uid) index
//! and its changes a range of (queue, modseq) and of `mailbox_expunged`, so a session that shows
//! a million messages pays for what changed, not for the mailbox. Mod-sequences come from the
//! `modseq` counter, stamped by the triggers of migrations/*/0018_imap_modseq.sql (placements,
//! transfers, purges, case changes) and by `mailbox_commit` (a user's flags).

use super::engine::{on_conn, on_db};
use super::mailbox::MailboxEntry;
use super::{Store, StoreError};

/// The columns of a `MailboxEntry`, for `user_id` = $1 and queue = $2.
macro_rules! entries {
    ($where:literal) => {
        concat!(
            "SELECT mc.uid, mc.message_id, mc.case_id, m.number, m.received_at, m.size,
                    COALESCE(f.seen, 0) <> 0 AS seen, COALESCE(f.flagged, 0) <> 0 AS flagged, c.spam <> 0 AS spam,
                    mc.x_category, COALESCE(mc.x_priority, c.priority) AS x_priority, mc.x_due,
                    c.category, c.priority, c.status, c.assignee,
                    COALESCE(mc.modseq, 1) AS modseq, COALESCE(f.modseq, 0) AS flags_modseq
             FROM message_cases mc
             JOIN cases c ON c.id = mc.case_id
             JOIN messages m ON m.id = mc.message_id
             LEFT JOIN mailbox_flags f ON f.user_id = $1 AND f.case_id = mc.case_id AND f.message_id = mc.message_id
             WHERE mc.queue = $2 AND ",
            $where,
            " ORDER BY mc.uid"
        )
    };
}

/// UIDs are read in pages of this many (a million-message SELECT holds one page of rows at a time).
const UID_PAGE: i64 = 50_000;

/// A UID as IMAP shows it (a UID beyond 32 bits would need 4 billion registrations).
fn uid32(uid: i64) -> Option<u32> {
    u32::try_from(uid).ok().filter(|u| *u > 0)
}

impl Store {
    /// The highest mod-sequence given out so far: HIGHESTMODSEQ of every mailbox (RFC 7162 allows
    /// a value above the mailbox's own highest; any later change gets a larger one).
    pub async fn mailbox_modseq(&self) -> Result<u64, StoreError> {
        let v: i64 =
            on_db!(self.db(), pool => sqlx::query_scalar("SELECT value FROM counters WHERE name = 'modseq'").fetch_one(pool).await?);
        Ok(v.max(1) as u64)
    }

    /// The UIDs in `queue` above `after`, ascending, read in pages (the client's view is just
    /// these numbers). Each page is one row of text (`MAILBOX_UID_PAGE`, in each engine's
    /// dialect): sqlx's cost per row, not the index read, is what a million rows take.
    pub async fn mailbox_uids_after(&self, queue: &str, after: u32) -> Result<Vec<u32>, StoreError> {
        let sql = match self.db() {
            super::engine::Db::Sqlite(_) => super::sqlite::MAILBOX_UID_PAGE,
            super::engine::Db::Postgres(_) => super::postgres::MAILBOX_UID_PAGE,
        };
        let mut uids: Vec<u32> = Vec::new();
        let mut from = i64::from(after);
        loop {
            let page: Option<String> = on_db!(self.db(), pool => sqlx::query_scalar(sql)
                .bind(queue)
                .bind(from)
                .bind(UID_PAGE)
                .fetch_one(pool)
                .await?);
            let Some(page) = page.filter(|p| !p.is_empty()) else { break };
            let (mut last, mut n) = (from, 0);
            for uid in page.split(',') {
                n += 1;
                let uid: i64 = uid.trim().parse().map_err(|_| StoreError::BatchFailed(format!("not a UID: {uid:?}")))?;
                last = last.max(uid);
                uids.extend(uid32(uid));
            }
            if n < UID_PAGE {
                break;
            }
            from = last;
        }
        // group_concat follows the subquery's order in practice; a sorted list is checked in O(n).
        if !uids.is_sorted() {
            uids.sort_unstable();
        }
        Ok(uids)
    }

    /// The messages of `queue` with UIDs in `lo..=hi`, with `user_id`'s flags, in UID order.
    pub async fn mailbox_range(&self, queue: &str, user_id: i64, lo: u32, hi: u32) -> Result<Vec<MailboxEntry>, StoreError> {
        Ok(on_db!(self.db(), pool => sqlx::query_as(entries!("mc.uid >= $3 AND mc.uid <= $4"))
            .bind(user_id)
            .bind(queue)
            .bind(i64::from(lo))
            .bind(i64::from(hi))
            .fetch_all(pool)
            .await?))
    }

    /// The messages of `queue` whose mod-sequence for `user_id` is above `since` (keywords,
    /// placement, or the user's flags changed), in UID order.
    pub async fn mailbox_changed(&self, queue: &str, user_id: i64, since: u64) -> Result<Vec<MailboxEntry>, StoreError> {
        Ok(on_db!(self.db(), pool => sqlx::query_as(entries!(
            "mc.uid IN (SELECT uid FROM message_cases WHERE queue = $2 AND modseq > $3
                        UNION
                        SELECT o.uid FROM mailbox_flags g JOIN message_cases o ON o.case_id = g.case_id AND o.message_id = g.message_id
                        WHERE g.user_id = $1 AND g.modseq > $3 AND o.queue = $2)"
        ))
        .bind(user_id)
        .bind(queue)
        .bind(since as i64)
        .fetch_all(pool)
        .await?))
    }

    /// UIDs that left `queue` (transfer, purge) with a mod-sequence above `since`, ascending;
    /// None when some of those records may have been pruned already
    /// ([`Store::prune_mailbox_departures`]): the caller then compares the mailbox's UID list with
    /// its own. One statement, so the records and the prune mark are read at one instant.
    pub async fn mailbox_departed(&self, queue: &str, since: u64) -> Result<Option<Vec<u32>>, StoreError> {
        let rows: Vec<i64> = on_db!(self.db(), pool => sqlx::query_scalar(
            "SELECT uid FROM mailbox_expunged WHERE queue = $1 AND modseq > $2
             UNION ALL
             SELECT -1 FROM counters WHERE name = 'expunged_pruned' AND value > $2",
        )
        .bind(queue)
        .bind(since as i64)
        .fetch_all(pool)
        .await?);
        if rows.contains(&-1) {
            return Ok(None);
        }
        let mut uids: Vec<u32> = rows.into_iter().filter_map(uid32).collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(Some(uids))
    }

    /// Forgets the departure records that the previous pass marked: deletes those up to the
    /// mod-sequence it noted, then notes the current one for the next pass. Run every
    /// `imap.departures_kept`, a record lives one to two periods; a session that last looked
    /// before what was pruned re-reads its UID list once ([`Store::mailbox_departed`] says so).
    /// The mark goes first, in the transaction of the first chunk; the chunks keep each write
    /// lock short. Returns how many records went.
    pub async fn prune_mailbox_departures(&self) -> Result<u64, StoreError> {
        const CHUNK: i64 = 10_000;
        let mut tx = self.db().begin_unsequenced().await?;
        let mark: i64 = on_conn!(&mut tx, c => sqlx::query_scalar(
            "SELECT COALESCE((SELECT value FROM counters WHERE name = 'expunged_mark'), 0)"
        )
        .fetch_one(c)
        .await?);
        on_conn!(&mut tx, c => sqlx::query(
            "INSERT INTO counters (name, value) VALUES ('expunged_pruned', $1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE excluded.value > counters.value"
        )
        .bind(mark)
        .execute(c)
        .await
        .map(|_| ())?);
        let mut deleted = 0;
        loop {
            let n = on_conn!(&mut tx, c => sqlx::query(
                "DELETE FROM mailbox_expunged WHERE (queue, modseq, uid) IN
                     (SELECT queue, modseq, uid FROM mailbox_expunged WHERE modseq <= $1 LIMIT $2)"
            )
            .bind(mark)
            .bind(CHUNK)
            .execute(c)
            .await?
            .rows_affected());
            deleted += n;
            if n < CHUNK as u64 {
                break;
            }
            tx.commit().await?;
            tx = self.db().begin_unsequenced().await?;
        }
        on_conn!(&mut tx, c => sqlx::query(
            "INSERT INTO counters (name, value) SELECT 'expunged_mark', value FROM counters WHERE name = 'modseq'
             ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        .execute(c)
        .await
        .map(|_| ())?);
        tx.commit().await?;
        Ok(deleted)
    }

    /// UIDs in `queue` that `user_id` has (`seen`) or has not seen, ascending (SEARCH SEEN/UNSEEN
    /// as one indexed read, without the rest of the rows). The unseen start at the user's
    /// watermark (store/mailbox_seen.rs); the seen are most of the mailbox anyway.
    pub async fn mailbox_seen_uids(&self, queue: &str, user_id: i64, seen: bool) -> Result<Vec<u32>, StoreError> {
        if !seen {
            return self.mailbox_unseen_uids(queue, user_id).await;
        }
        let rows: Vec<i64> = on_db!(self.db(), pool => sqlx::query_scalar(
            "SELECT mc.uid FROM message_cases mc
             LEFT JOIN mailbox_flags f ON f.user_id = $1 AND f.case_id = mc.case_id AND f.message_id = mc.message_id
             WHERE mc.queue = $2 AND COALESCE(f.seen, 0) <> 0 ORDER BY mc.uid",
        )
        .bind(user_id)
        .bind(queue)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().filter_map(uid32).collect())
    }
}
