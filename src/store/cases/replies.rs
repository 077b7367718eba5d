//! A reply's life after it was written, inside a [`CaseChange`]: what it replaced, its state
//! (withdrawn, awaiting review, returned), and taking its outbox row back within the undo window.

use sqlx::Row;

use super::CaseChange;
use crate::store::StoreError;
use crate::store::outbox;

/// A reply entry of the case being changed, as an undo or a review needs it (no content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyEntry {
    pub id: i64,
    pub at: i64,
    pub author: String,
    pub outbox_id: Option<i64>,
    /// None: queued or sent (the outbox row tells); `withdrawn`, `awaiting-review`, `returned`.
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
        let row = sqlx::query(
            "SELECT id, at, author, outbox_id, state, status_before FROM case_entries WHERE id = $1 AND case_id = $2 AND kind = 'reply'",
        )
        .bind(entry)
        .bind(self.case.id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| ReplyEntry {
            id: r.get(0),
            at: r.get(1),
            author: r.get(2),
            outbox_id: r.get(3),
            state: r.get(4),
            status_before: r.get(5),
        }))
    }

    /// Sets a reply's state and, when given, what it replaced and its outbox row.
    pub async fn set_reply_state(
        &mut self,
        entry: i64,
        state: Option<&str>,
        status_before: Option<&str>,
        outbox_id: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE case_entries SET state = $1, status_before = COALESCE($2, status_before), outbox_id = COALESCE($3, outbox_id) WHERE id = $4",
        )
        .bind(state)
        .bind(status_before)
        .bind(outbox_id)
        .bind(entry)
        .execute(&mut *self.tx)
        .await?;
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
