//! Why a case operation was refused. Each variant carries what the caller is told; `src/http`
//! maps them to statuses in one place. A case or message in a queue the caller may not read is
//! "not found": its existence is not revealed.

use crate::access::Permission;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case {0} in a queue you may read")]
    NotFound(i64),
    #[error("no message {0:?} in a queue you may read")]
    NoSuchMessage(String),
    #[error("no queue named {0:?} that you may read")]
    NoSuchQueue(String),
    /// The caller may read the queue but holds none of `permissions` there.
    #[error("this needs the {} permission on queue {queue:?}", names(permissions))]
    Forbidden { permissions: Vec<Permission>, queue: String },
    /// Refused for a reason other than one missing permission on one queue (statistics, no queue).
    #[error("{0}")]
    Refused(String),
    /// Well-formed but not acceptable (unknown status, unknown queue, user who may not read …).
    #[error("{0}")]
    Invalid(String),
    /// At odds with the case's state.
    #[error("{0}")]
    Conflict(String),
    /// Cannot be done on this server as configured (a reply without an outbox).
    #[error("{0}")]
    Unavailable(String),
    /// Something that should not happen; logged, not shown.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn names(permissions: &[Permission]) -> String {
    permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" or ")
}

impl CaseError {
    pub(crate) fn forbidden(permissions: &[Permission], queue: &str) -> CaseError {
        CaseError::Forbidden { permissions: permissions.to_vec(), queue: queue.to_string() }
    }
}
