//! Queues: which ones the caller may read (with counts), a queue's cases (filtered, sorted,
//! paged), and the supervisors' statistics.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::input::{check_tag, priority, split_list};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::intake::record::Mailbox;
use crate::store::cases::{
    ACTIVE, AssigneeFilter, CaseQuery, CaseRow, CategoryFilter, Cursor, PRIORITIES, QueueCounts, QueueStats, STATUSES, Sort, status_name,
};
use crate::store::now_millis;

pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 50;
/// Deeper pages go by cursor: an offset costs reading every case before it.
pub const MAX_OFFSET: usize = 10_000;

/// A queue the caller may read.
#[derive(Debug, Clone)]
pub struct QueueSummary {
    pub name: String,
    pub address: Option<String>,
    /// What the caller may do there.
    pub permissions: Vec<Permission>,
    pub counts: QueueCounts,
}

/// A listing as asked for: every field optional, in the words the caller used (each is checked
/// after the permission, so a caller who may not read the queue learns nothing from a reason).
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Comma-separated statuses, or `active` (the default) / `all`.
    pub status: Option<String>,
    /// Comma-separated priorities.
    pub priority: Option<String>,
    /// A category code, or `none`.
    pub category: Option<String>,
    pub overdue: Option<bool>,
    pub tag: Option<String>,
    /// `me`, `none`, or a user name.
    pub assignee: Option<String>,
    /// One of [`Sort::NAMES`] (default `due`).
    pub sort: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// `next_cursor` of the previous page, as it was given.
    pub cursor: Option<String>,
}

/// One case of a listing: its metadata and, from its opening message, the subject and sender.
#[derive(Debug, Clone)]
pub struct ListedCase {
    pub case: CaseRow,
    pub message_count: i64,
    pub subject: Option<String>,
    pub from: Option<Mailbox>,
}

/// A page of a queue's cases.
#[derive(Debug, Clone)]
pub struct CaseList {
    pub queue: String,
    pub sort: String,
    pub limit: usize,
    /// 0 when paged by cursor.
    pub offset: usize,
    pub items: Vec<ListedCase>,
    /// Set when more cases follow: give it as `cursor` for the next page.
    pub next_cursor: Option<String>,
    /// When it was listed (unix ms): what "overdue" is measured against.
    pub now: i64,
}

/// Statistics of the queues asked for (no customer data).
#[derive(Debug, Clone)]
pub struct Statistics {
    pub generated_at: i64,
    pub queues: Vec<QueueStats>,
}

impl Cases {
    /// The configured queues `who` may read, with counts. Refused when there is none.
    pub async fn queues(&self, who: &Principal) -> Result<Vec<QueueSummary>, CaseError> {
        let now = now_millis();
        let mut queues = Vec::new();
        for queue in &self.settings().queues {
            if !who.can(&queue.name, Permission::Read) {
                continue;
            }
            let counts = self.store().queue_counts(&queue.name, now).await?;
            let permissions: Vec<Permission> = Permission::ALL.into_iter().filter(|p| who.can(&queue.name, *p)).collect();
            queues.push(QueueSummary { name: queue.name.clone(), address: queue.address.clone(), permissions, counts });
        }
        if queues.is_empty() {
            return Err(CaseError::Refused("you may read no queue (a security officer needs a queue role as well to read mail)".into()));
        }
        Ok(queues)
    }

    /// How many cases were opened in `queue` after `since` (unix ms, a listing's `now`): the
    /// queue page's "N new — refresh". Counts only, no customer data, so not audited.
    pub async fn opened_since(&self, who: &Principal, queue: &str, since: i64) -> Result<i64, CaseError> {
        if self.settings().queue(queue).is_none() || !who.can(queue, Permission::Read) {
            return Err(CaseError::NoSuchQueue(queue.to_string()));
        }
        Ok(self.store().cases_opened_since(queue, since).await?)
    }

    /// A page of `queue`'s cases. Only the page's opening messages are decrypted, and only their
    /// subject and sender shown; the listing is audited (`queue.list`).
    pub async fn list(&self, who: &Principal, queue: &str, request: ListRequest) -> Result<CaseList, CaseError> {
        // A queue that exists but is not yours answers exactly like one that does not exist: the
        // listing must not tell queue names to someone who may not read them.
        if self.settings().queue(queue).is_none() || !who.can(queue, Permission::Read) {
            return Err(CaseError::NoSuchQueue(queue.to_string()));
        }
        let store = self.store();
        let q = self.case_query(who, queue, request).await?;
        let now = now_millis();
        let page = store.list_cases(&q, now).await?;
        let ids: Vec<i64> = page.cases.iter().map(|c| c.id).collect();
        let counts = store.case_message_counts(&ids).await?;
        let first_messages: Vec<i64> = counts.values().map(|(_, first)| *first).collect();
        let records = store.open_fields_many(&first_messages).await?;
        let items: Vec<ListedCase> = page.cases.into_iter().map(|case| listed(case, &counts, &records)).collect();
        let statuses = q.statuses.join(",");
        let detail = format!(
            "items={} sort={} status={statuses} offset={}{}",
            items.len(),
            q.sort.name(),
            q.offset,
            if q.after.is_some() { " cursor" } else { "" }
        );
        self.access.audit(&who.actor(), "queue.list", Some(format!("queue:{queue}")), Some(detail)).await?;
        let next_cursor = page.next.map(|c| B64.encode(serde_json::to_vec(&c).expect("cursor serialises")));
        Ok(CaseList {
            queue: queue.to_string(),
            sort: q.sort.name(),
            limit: q.limit,
            offset: if q.after.is_some() { 0 } else { q.offset },
            items,
            next_cursor,
            now,
        })
    }

    /// Statistics of the queues where `who` supervises, or of the one named.
    pub async fn stats(&self, who: &Principal, queue: Option<&str>) -> Result<Statistics, CaseError> {
        let settings = self.settings();
        let supervised: Vec<&str> = settings.queues.iter().map(|q| q.name.as_str()).filter(|q| who.can(q, Permission::Supervise)).collect();
        if supervised.is_empty() {
            return Err(CaseError::Refused("statistics need the supervise permission on a queue".into()));
        }
        let queues: Vec<&str> = match queue {
            None => supervised,
            Some(q) if supervised.contains(&q) => vec![q],
            Some(q) => return Err(CaseError::Refused(format!("you do not supervise queue {q:?}"))),
        };
        let now = now_millis();
        let mut out = Vec::new();
        for queue in queues {
            out.push(self.store().queue_stats(queue, now).await?);
        }
        Ok(Statistics { generated_at: now, queues: out })
    }

    /// Turns a listing request into a store query; everything unknown is invalid, naming what is known.
    async fn case_query(&self, who: &Principal, queue: &str, p: ListRequest) -> Result<CaseQuery, CaseError> {
        let statuses = match p.status.as_deref() {
            None | Some("active") => ACTIVE.to_vec(),
            Some("all") => STATUSES.to_vec(),
            Some(list) => split_list(list, status_name, "status", "new, open, waiting, resolved, closed, or active / all")?,
        };
        let priorities = match p.priority.as_deref() {
            None => PRIORITIES.to_vec(),
            Some(list) => split_list(list, priority, "priority", "urgent, normal, low")?,
        };
        let categories = &self.settings().categories;
        let category = match p.category.as_deref() {
            None => CategoryFilter::Any,
            Some("none") => CategoryFilter::Uncategorised,
            Some(code) if categories.iter().any(|c| c.code == code) => CategoryFilter::Code(code.to_string()),
            Some(code) => {
                let known: Vec<&str> = categories.iter().map(|c| c.code.as_str()).collect();
                return Err(CaseError::Invalid(format!("no category is coded {code:?} (known: {}, or none)", known.join(", "))));
            }
        };
        let assignee = match p.assignee.as_deref() {
            None => AssigneeFilter::Anyone,
            Some("none") => AssigneeFilter::Nobody,
            Some("me") => AssigneeFilter::User(who.user_id),
            Some("") => return Err(CaseError::Invalid("assignee must not be empty (me, none, or a user name)".into())),
            // A name that is no user is assigned no case: the same empty answer as a user who has
            // none here, so the filter cannot be used to find out who has an account.
            Some(name) => self.store().user_id(name).await?.map_or(AssigneeFilter::NoOne, AssigneeFilter::User),
        };
        let sort: Sort = p.sort.as_deref().unwrap_or("due").parse().map_err(CaseError::Invalid)?;
        let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(CaseError::Invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let offset = p.offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(CaseError::Invalid(format!("offset must be at most {MAX_OFFSET}; page further with the cursor")));
        }
        let after = match p.cursor.as_deref() {
            None => None,
            Some(_) if offset > 0 => return Err(CaseError::Invalid("give either offset or cursor, not both".into())),
            Some(text) => {
                let cursor: Cursor = B64.decode(text).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or_else(|| {
                    CaseError::Invalid("the cursor is malformed (use next_cursor from the previous page as it is)".into())
                })?;
                if cursor.sort != sort.name() {
                    return Err(CaseError::Invalid(format!("the cursor belongs to sort {:?}, not {:?}", cursor.sort, sort.name())));
                }
                Some(cursor)
            }
        };
        if let Some(tag) = &p.tag {
            check_tag(tag)?;
        }
        Ok(CaseQuery {
            queue: queue.to_string(),
            statuses,
            priorities,
            category,
            tag_idx: p.tag.as_deref().map(|t| self.store().keys.tag_index(t)),
            assignee,
            overdue: p.overdue,
            sort,
            limit,
            offset,
            after,
        })
    }
}

/// A case of a page with its message count and its opening message's subject and sender.
fn listed(
    case: CaseRow,
    counts: &HashMap<i64, (i64, i64)>,
    records: &HashMap<i64, Result<crate::intake::record::Record, crate::store::StoreError>>,
) -> ListedCase {
    let (message_count, first_message) = counts.get(&case.id).copied().unwrap_or((0, 0));
    // Cases may share an opening message (one registration, several queues, then a transfer).
    let record = match records.get(&first_message) {
        Some(Ok(record)) => Some(record),
        Some(Err(e)) => {
            tracing::warn!(case = case.id, error = %e, "cases: opening message of a case unreadable");
            None
        }
        None => None,
    };
    ListedCase { message_count, subject: record.and_then(|r| r.subject.clone()), from: record.and_then(|r| r.from.first().cloned()), case }
}
