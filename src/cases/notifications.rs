//! A staff user's notifications (from the SLA sweep, `escalation`): his list, the unread count
//! for the page header, marking them read. Only cases in queues he can still read are shown.

use crate::access::{Permission, Principal};
use crate::store::notifications::{self, Notification};
use crate::store::now_millis;

use super::{CaseError, Cases};

/// The most notifications a list shows.
pub const LIST_LIMIT: i64 = 200;

impl Cases {
    /// My notifications, newest first.
    pub async fn notifications(&self, who: &Principal) -> Result<Vec<Notification>, CaseError> {
        let mut list = notifications::list(self.store(), who.user_id, LIST_LIMIT).await?;
        list.retain(|n| who.can(&n.queue, Permission::Read));
        Ok(list)
    }

    /// How many of my notifications are unread (the header's badge): of the queues I can still
    /// read, as in the list, so a revoked grant leaves no count that opens to nothing.
    pub async fn unread_notifications(&self, who: &Principal) -> Result<i64, CaseError> {
        let per_queue = notifications::unread_by_queue(self.store(), who.user_id).await?;
        Ok(per_queue.into_iter().filter(|(queue, _)| who.can(queue, Permission::Read)).map(|(_, n)| n).sum())
    }

    /// Marks my notifications `ids` read (all of mine with None); returns how many changed.
    pub async fn mark_notifications_read(&self, who: &Principal, ids: Option<&[i64]>) -> Result<u64, CaseError> {
        Ok(notifications::mark_read(self.store(), who.user_id, ids, now_millis()).await?)
    }
}
