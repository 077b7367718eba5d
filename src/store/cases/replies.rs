//! A reply's life after it was written, inside a [`CaseChange`]: what it replaced, its state
//! (withdrawn, awaiting review, returned), and taking its outbox row back within the undo window.

use sqlx::QueryBuilder;

use super::{CaseChange, EntryBody};
use crate::store::engine::{on_conn, on_db};
use crate::store::outbox;
use crate::store::{Store, StoreError};

/// A reply awaiting review, as a reviewer's list shows it (no content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingReview {
    pub case_id: i64,
    pub opening: String,
    pub queue: String,
    pub entry: i64,
    pub author: String,
    pub at: i64,
}

impl Store {
    /// Replies awaiting review in `queues`, oldest first.
    pub async fn awaiting_review(&self, queues: &[String]) -> Result<Vec<AwaitingReview>, StoreError> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, String, i64, String, i64)> = on_db!(self.db(), pool => {
            let mut b = QueryBuilder::new(
                "SELECT c.id, c.opening_number, c.queue, e.id, e.author, e.at FROM case_entries e JOIN cases c ON c.id = e.case_id \
                 WHERE e.kind = 'reply' AND e.state = 'awaiting-review' AND c.queue IN (",
            );
            let mut list = b.separated(", ");
            for q in queues {
                list.push_bind(q.as_str());
            }
            b.push(") ORDER BY e.id LIMIT 500");
            b.build_query_as().fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(case_id, opening, queue, entry, author, at)| AwaitingReview { case_id, opening, queue, entry, author, at })
            .collect())
    }
}

/// A reply entry of the case being changed, as an undo or a review needs it (no content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyEntry {
    pub id: i64,
    pub at: i64,
    pub author: String,
    pub outbox_id: Option<i64>,
    /// None: queued or sent (the outbox row tells); `withdrawn`, `awaiting-review`, `returned`,
    /// `resubmitted`.
    pub state: Option<String>,
    /// The case status the reply replaced.
    pub status_before: Option<String>,
}

/// Why an outbox row could not be withdrawn: its status then (sending, sent, failed, withdrawn,
/// or pending once its time has come).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLate(pub String);

impl CaseChange<'_> {
    /// The reply entry `entry` of this case (None: no such reply here).
    pub async fn reply_entry(&mut self, entry: i64) -> Result<Option<ReplyEntry>, StoreError> {
        type Columns = (i64, i64, String, Option<i64>, Option<String>, Option<String>);
        let row: Option<Columns> = on_conn!(&mut self.tx, c => sqlx::query_as(
            "SELECT id, at, author, outbox_id, state, status_before FROM case_entries WHERE id = $1 AND case_id = $2 AND kind = 'reply'",
        )
        .bind(entry)
        .bind(self.case.id)
        .fetch_optional(c)
        .await?);
        Ok(row.map(|(id, at, author, outbox_id, state, status_before)| ReplyEntry { id, at, author, outbox_id, state, status_before }))
    }

    /// Sets a reply's state and, when given, what it replaced and its outbox row.
    pub async fn set_reply_state(
        &mut self,
        entry: i64,
        state: Option<&str>,
        status_before: Option<&str>,
        outbox_id: Option<i64>,
    ) -> Result<(), StoreError> {
        on_conn!(&mut self.tx, c => sqlx::query(
            "UPDATE case_entries SET state = $1, status_before = COALESCE($2, status_before), outbox_id = COALESCE($3, outbox_id) WHERE id = $4",
        )
        .bind(state)
        .bind(status_before)
        .bind(outbox_id)
        .bind(entry)
        .execute(c)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Seals `body` anew for entry `entry` (a fresh data key), e.g. the Message-ID an approved
    /// reply really leaves with.
    pub async fn update_entry_body(&mut self, entry: i64, body: &EntryBody) -> Result<(), StoreError> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(body).expect("strings always serialise"));
        let row = self.store.keys.new_row()?;
        let body_ct = row.seal("entry", &plain)?;
        on_conn!(&mut self.tx, c => {
            sqlx::query("UPDATE case_entries SET uid = $1, key_id = $2, wrapped_key = $3, body_ct = $4 WHERE id = $5 AND case_id = $6")
                .bind(&row.uid[..])
                .bind(row.key_id as i64)
                .bind(&row.wrapped_key)
                .bind(&body_ct)
                .bind(entry)
                .bind(self.case.id)
                .execute(c)
                .await
                .map(|_| ())?
        });
        Ok(())
    }

    /// Takes the reply's outbox row back (see [`outbox::withdraw`]) or says why not.
    pub async fn withdraw_mail(&mut self, outbox_id: i64) -> Result<Result<(), TooLate>, StoreError> {
        if outbox::withdraw(&mut self.tx, outbox_id, self.now).await? {
            return Ok(Ok(()));
        }
        let status = outbox::status_of(&mut self.tx, outbox_id).await?.unwrap_or_else(|| "gone".into());
        Ok(Err(TooLate(status)))
    }
}
