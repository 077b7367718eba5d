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

    /// How many of my notifications are unread (the header's badge).
    pub async fn unread_notifications(&self, who: &Principal) -> Result<i64, CaseError> {
        Ok(notifications::unread(self.store(), who.user_id).await?)
    }

    /// Marks my notifications `ids` read (all of mine with None); returns how many changed.
    pub async fn mark_notifications_read(&self, who: &Principal, ids: Option<&[i64]>) -> Result<u64, CaseError> {
        Ok(notifications::mark_read(self.store(), who.user_id, ids, now_millis()).await?)
    }
}
