//! Queues: which ones I may read (with counts), a queue's cases (filtered, sorted, paged), and
//! the supervisors' statistics. The rules and the paging are the case service's
//! ([`crate::cases::queues`]); the JSON shapes are here.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};

use super::HttpContext;
use super::auth::Auth;
use super::cases::answers::{Case, CaseListItem, Mailbox, Sorted};
use super::error::{ApiError, Path, Query};
use super::openapi::doc::{BadRequest, Forbidden, Invalid, NotFound, Unauthenticated};
use super::validate::{list_pattern, list_regex, tag_schema};
use crate::cases::period::{Period, PeriodStats};
use crate::cases::queues::ListRequest;
pub use crate::cases::queues::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
use crate::store::cases::{QueueStats, STATUSES, Sort};

/// The queues I may read.
#[derive(Serialize, ToSchema)]
pub struct QueueList {
    queues: Vec<QueueEntry>,
}

// Fields in alphabetical order, as on the wire.
/// One queue I may read, with counts.
#[derive(Serialize, ToSchema)]
#[schema(as = QueueList_queues)]
pub struct QueueEntry {
    active: i64,
    address: Option<String>,
    by_status: std::collections::BTreeMap<String, i64>,
    name: String,
    overdue: i64,
    #[schema(value_type = Vec<String>)]
    permissions: Vec<crate::access::Permission>,
}

/// `GET /api/queues`.
#[utoipa::path(
    get,
    path = "/api/queues",
    operation_id = "listQueues",
    tag = "queues",
    summary = "The queues I may read, with counts",
    description = "Counts of active cases (new, open, waiting) and of overdue ones (new or open past their due time). 403 when the caller may read no queue.",
    responses(
        (status = 200, description = "queues", body = QueueList),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list_queues(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<axum::Json<QueueList>, ApiError> {
    let queues = ctx
        .cases
        .queues(&auth.principal)
        .await?
        .into_iter()
        .map(|q| QueueEntry {
            active: q.counts.active,
            address: q.address,
            by_status: q.counts.by_status,
            name: q.name,
            overdue: q.counts.overdue,
            permissions: q.permissions,
        })
        .collect();
    Ok(axum::Json(QueueList { queues }))
}

/// The filters, order and page of a queue's cases (`cases::queues` checks them).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    overdue: Option<bool>,
    tag: Option<String>,
    assignee: Option<String>,
    sort: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    cursor: Option<String>,
}

// Written out rather than derived: a derived parameter with its own schema loses its description.
impl IntoParams for ListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query("status", "comma-separated statuses (no spaces), or active (default: new, open, waiting) or all", status_filter_schema()),
            query("priority", "comma-separated priorities (no spaces)", priority_filter_schema()),
            query("category", "a configured category code, or none", category_filter_schema()),
            query(
                "overdue",
                "only overdue cases (true) or only the others (false)",
                ObjectBuilder::new().schema_type(Type::Boolean).build(),
            ),
            query("tag", "cases carrying this tag (exact match)", tag_schema()),
            query("assignee", "me, none, or a user name (a name that is no user matches no case)", non_empty_schema()),
            query("sort", "order (a leading - reverses it); priority means urgent first, then by due time", sort_schema()),
            query("limit", "page size", limit_schema()),
            query("offset", "cases to skip (for deep pages use the cursor)", offset_schema()),
            query(
                "cursor",
                "next_cursor of the previous page, as it is (same sort and filters); anything else is refused with 422",
                cursor_schema(),
            ),
        ]
    }
}

/// An optional query parameter.
pub(super) fn query(name: &str, description: &str, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn status_filter_schema() -> Object {
    string().pattern(Some(format!("^(active|all|{})$", list_regex(&STATUSES)))).examples(["open,waiting"]).build()
}

fn priority_filter_schema() -> Object {
    string().pattern(Some(list_pattern(&["urgent", "normal", "low"]))).examples(["urgent"]).build()
}

/// The configured codes and "none" are filled in by `openapi::document_for`.
fn category_filter_schema() -> Object {
    string().build()
}

fn non_empty_schema() -> Object {
    string().min_length(Some(1)).build()
}

fn sort_schema() -> Object {
    string().enum_values(Some(Sort::NAMES)).default(Some("due".into())).build()
}

fn limit_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_LIMIT as f64))
        .default(Some(DEFAULT_LIMIT.into()))
        .build()
}

fn offset_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(MAX_OFFSET as f64)).default(Some(0.into())).build()
}

fn cursor_schema() -> Object {
    string().min_length(Some(1)).pattern(Some("^[A-Za-z0-9_-]+$")).build()
}

impl From<ListParams> for ListRequest {
    fn from(p: ListParams) -> ListRequest {
        ListRequest {
            status: p.status,
            priority: p.priority,
            category: p.category,
            overdue: p.overdue,
            tag: p.tag,
            assignee: p.assignee,
            sort: p.sort,
            limit: p.limit,
            offset: p.offset,
            cursor: p.cursor,
        }
    }
}

// Fields in alphabetical order, as on the wire.
/// A page of a queue's cases.
#[derive(Serialize, ToSchema)]
pub struct CaseList {
    #[schema(value_type = Vec<CaseListItem>)]
    items: Vec<Sorted<CaseListItem>>,
    limit: usize,
    next_cursor: Option<String>,
    offset: usize,
    queue: String,
    sort: String,
}

/// `GET /api/queues/{queue}/cases`.
#[utoipa::path(
    get,
    path = "/api/queues/{queue}/cases",
    operation_id = "listCases",
    tag = "queues",
    summary = "A queue's cases",
    description = "Filtered, sorted and paged straight from an index. Each item shows the subject and sender of the case's opening message (decrypted for the page only). \
             Audited as queue.list. Unknown filter values are rejected with 422 naming the known ones.",
    params(("queue" = String, Path, description = "queue name", min_length = 1), ListParams),
    responses(
        (status = 200, description = "a page of cases", body = CaseList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
    ),
)]
pub async fn list_cases(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(queue): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<CaseList>, ApiError> {
    let list = ctx.cases.list(&auth.principal, &queue, params.into()).await?;
    let items = list
        .items
        .iter()
        .map(|listed| {
            Sorted(CaseListItem {
                case: Case::new(&listed.case, list.now),
                from: listed.from.as_ref().map(Mailbox::from),
                message_count: listed.message_count,
                subject: listed.subject.clone(),
            })
        })
        .collect();
    Ok(axum::Json(CaseList {
        items,
        limit: list.limit,
        next_cursor: list.next_cursor,
        offset: list.offset,
        queue: list.queue,
        sort: list.sort,
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    queue: Option<String>,
}

impl IntoParams for StatsParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query("queue", "only this queue", non_empty_schema())]
    }
}

/// `GET /api/stats`'s parameters: a queue, and a period for [`crate::cases::period`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PeriodParams {
    queue: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl IntoParams for PeriodParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let date =
            || string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))).pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$")).build();
        vec![
            query("queue", "only this queue", non_empty_schema()),
            query("from", "first day of the period (YYYY-MM-DD, in the SLA calendar's time zone); with `to`", date()),
            query("to", "last day of the period, included (YYYY-MM-DD); with `from`, at most 366 days after it", date()),
        ]
    }
}

/// Statistics of the queues I supervise.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    #[schema(format = DateTime)]
    generated_at: String,
    queues: Vec<QueueStatistics>,
    /// The period's statistics when `from` and `to` are given, else null.
    #[schema(required = true)]
    period: Option<PeriodStats>,
}

// The store's `QueueStats`, field for field and in its order (the wire's).
/// Statistics of one queue (no customer data).
#[derive(Serialize, ToSchema)]
#[schema(as = Stats_queues)]
pub struct QueueStatistics {
    queue: String,
    total: i64,
    by_status: std::collections::BTreeMap<String, i64>,
    by_priority: std::collections::BTreeMap<String, i64>,
    by_category: std::collections::BTreeMap<String, i64>,
    active: i64,
    overdue: i64,
    breached: i64,
    responded: i64,
    median_first_response_seconds: Option<f64>,
    resolved: i64,
    median_resolution_seconds: Option<f64>,
}

impl From<QueueStats> for QueueStatistics {
    fn from(s: QueueStats) -> Self {
        QueueStatistics {
            queue: s.queue,
            total: s.total,
            by_status: s.by_status,
            by_priority: s.by_priority,
            by_category: s.by_category,
            active: s.active,
            overdue: s.overdue,
            breached: s.breached,
            responded: s.responded,
            median_first_response_seconds: s.median_first_response_seconds,
            resolved: s.resolved,
            median_resolution_seconds: s.median_resolution_seconds,
        }
    }
}

/// `GET /api/stats`: the queues where I supervise (or the one named), no customer data.
#[utoipa::path(
    get,
    path = "/api/stats",
    operation_id = "stats",
    tag = "queues",
    summary = "Statistics of the queues I supervise",
    description = "Counts by status, priority and category, active, overdue and breached cases, median first-response and resolution times \
                   (elapsed seconds from opening). With `from` and `to` (local dates of the SLA calendar, `to` included, at most 366 days): \
                   `period` holds the statistics of the cases opened in that period: volume by day, queue, category and customer tier; \
                   first-response and resolution time (median, p90) in working hours on the SLA calendar; SLA met, breached (first \
                   reply after the due time, or none yet and past due while not waiting on the customer) and pending; per agent the \
                   cases replied to, replies sent and first-response times. 400 names a malformed or impossible period.",
    params(PeriodParams),
    responses(
        (status = 200, description = "statistics", body = Stats),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn stats(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Query(params): Query<PeriodParams>,
) -> Result<axum::Json<Stats>, ApiError> {
    // Permission first (403), then the period's validity (400).
    let stats = ctx.cases.stats(&auth.principal, params.queue.as_deref()).await?;
    let period = match (params.from.as_deref(), params.to.as_deref()) {
        (None, None) => None,
        (Some(from), Some(to)) => {
            let period = Period::parse(from, to).map_err(ApiError::bad_request)?;
            Some(ctx.cases.period_stats(&auth.principal, params.queue.as_deref(), period).await?)
        }
        _ => return Err(ApiError::bad_request("give both from and to (YYYY-MM-DD), or neither")),
    };
    let generated_at = crate::store::millis_to_rfc3339(stats.generated_at);
    Ok(axum::Json(Stats { generated_at, queues: stats.queues.into_iter().map(QueueStatistics::from).collect(), period }))
}

/// `GET /api/stats/dashboard`: the supervisors' dashboard, the same figures as `GET /dashboard`.
#[utoipa::path(
    get,
    path = "/api/stats/dashboard",
    operation_id = "dashboard",
    tag = "queues",
    summary = "Dashboard of the queues I supervise",
    description = "Backlog per queue (new and open, unassigned, waiting), overdue and due in the next 24 h; cases opened and resolved per UTC \
                   day (last 14 days); first-response and resolution time, median and 90th percentile in hours, of the cases answered or \
                   resolved in the last 30 days; SLA met per ISO week (cases opened in the last 8 weeks); cases opened in the last 30 days \
                   by category and by customer tier. No customer data.",
    params(StatsParams),
    responses(
        (status = 200, description = "the dashboard", body = crate::cases::dashboard::Dashboard),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn dashboard(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Query(params): Query<StatsParams>,
) -> Result<axum::Json<crate::cases::dashboard::Dashboard>, ApiError> {
    Ok(axum::Json(ctx.cases.dashboard(&auth.principal, params.queue.as_deref()).await?))
}
