//! The rows behind the statistics of a period: the cases opened in it and their sent replies.
//! Times and names of queues, categories, tiers and staff only; no customer data.

use sqlx::QueryBuilder;

use super::{MAX_DURATIONS, STATUSES};
use crate::store::engine::on_db;
use crate::store::{Store, StoreError};

/// One case opened in a period, as the statistics need it (unix ms).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PeriodCase {
    pub id: i64,
    pub queue: String,
    pub status: String,
    pub category: Option<String>,
    pub tier: Option<String>,
    pub opened_at: i64,
    pub due_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
}

/// A reply sent (queued or delivered, not withdrawn nor waiting for review) on a case.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PeriodReply {
    pub case_id: i64,
    pub author: String,
    pub at: i64,
}

/// How many case ids go into one `IN (…)` list (well under either engine's bind limit).
const IDS_PER_QUERY: usize = 1000;

impl Store {
    /// The cases of `queue` opened in `[since, until)`, oldest first, at most [`MAX_DURATIONS`];
    /// the flag says whether there were more. Every status is named, so SQLite reads one
    /// `opened_at` range of (queue, status, opened_at) per status.
    pub async fn period_cases(&self, queue: &str, since: i64, until: i64) -> Result<(Vec<PeriodCase>, bool), StoreError> {
        let statuses = STATUSES.map(|s| format!("'{s}'")).join(", ");
        let sql = format!(
            "SELECT id, queue, status, category, tier, opened_at, due_at, first_response_at, resolved_at FROM cases
             WHERE queue = $1 AND status IN ({statuses}) AND opened_at >= $2 AND opened_at < $3 ORDER BY opened_at, id LIMIT $4"
        );
        let mut rows: Vec<PeriodCase> = on_db!(self.db(), pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(queue).bind(since).bind(until).bind(MAX_DURATIONS + 1).fetch_all(pool).await?
        });
        let truncated = rows.len() as i64 > MAX_DURATIONS;
        rows.truncate(MAX_DURATIONS as usize);
        Ok((rows, truncated))
    }

    /// The sent replies on these cases, oldest first (by case_entries' index on case_id).
    pub async fn sent_replies(&self, case_ids: &[i64]) -> Result<Vec<PeriodReply>, StoreError> {
        let mut out = Vec::new();
        for chunk in case_ids.chunks(IDS_PER_QUERY) {
            let rows: Vec<PeriodReply> = on_db!(self.db(), pool => {
                let mut b = QueryBuilder::new("SELECT case_id, author, at FROM case_entries WHERE kind = 'reply' AND state IS NULL AND case_id IN (");
                let mut list = b.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                b.push(")");
                b.build_query_as().fetch_all(pool).await?
            });
            out.extend(rows);
        }
        out.sort_by_key(|r| (r.at, r.case_id));
        Ok(out)
    }
}
