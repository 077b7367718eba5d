//! The listing against a full sort, its query plans, a change's transaction, sealing old tags.

use super::listing::{run_query, runs};
use super::tags::write_tags;
use super::*;
use sqlx::Row;

async fn store(dir: &std::path::Path) -> Store {
    Store::open(crate::store::testing::options(dir)).await.unwrap()
}

/// `n` cases spread over both queues, every status and priority, due times out of order.
async fn seed(store: &Store, n: i64) {
    sqlx::query(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
         INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, priority, due_at, tags, category, assignee)
         SELECT i, 'MR-' || i, CASE i % 2 WHEN 0 THEN 'support' ELSE 'sales' END,
                CASE (i / 2) % 5 WHEN 0 THEN 'new' WHEN 1 THEN 'open' WHEN 2 THEN 'waiting' WHEN 3 THEN 'resolved' ELSE 'closed' END,
                1000 + i, 2000 + (i * 7919) % 100003,
                CASE (i / 10) % 3 WHEN 0 THEN 'urgent' WHEN 1 THEN 'normal' ELSE 'low' END,
                CASE WHEN i % 97 = 0 THEN NULL ELSE 5000 + (i * 104729) % 1000003 END,
                '[]',
                CASE WHEN i % 3 = 0 THEN 'BZZX' ELSE NULL END, NULL
         FROM k",
    )
    .bind(n)
    .execute(store.sqlite())
    .await
    .unwrap();
    // Every 11th case is tagged vip, sealed as the API would store it.
    let mut tx = store.db().begin_write().await.unwrap();
    for id in (11..=n).step_by(11) {
        write_tags(&mut tx, &store.keys, id, None, &["vip".to_string()]).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// The active cases of queue `support` in `sort` order, 7 a page (also `engines_agree`'s).
pub(super) fn query(sort: &str) -> CaseQuery {
    CaseQuery {
        queue: "support".into(),
        statuses: ACTIVE.to_vec(),
        priorities: PRIORITIES.to_vec(),
        category: CategoryFilter::Any,
        tag_idx: None,
        assignee: AssigneeFilter::Anyone,
        overdue: None,
        sort: sort.parse().unwrap(),
        limit: 7,
        offset: 0,
        after: None,
    }
}

/// The same listing computed the slow way: every case, filtered and sorted in memory.
async fn reference(store: &Store, q: &CaseQuery, tag: Option<&str>, now: i64) -> Vec<i64> {
    let rows: Vec<CaseColumns> =
        sqlx::query_as(concat!("SELECT ", case_columns!(), " FROM cases c")).fetch_all(store.sqlite()).await.unwrap();
    let mut all: Vec<CaseRow> = rows
        .into_iter()
        .map(|r| store.open_case(r.into()).unwrap().0)
        .filter(|c| c.queue == q.queue && q.statuses.contains(&c.status.as_str()) && q.priorities.iter().any(|p| p.as_str() == c.priority))
        .filter(|c| match &q.category {
            CategoryFilter::Any => true,
            CategoryFilter::Uncategorised => c.category.is_none(),
            CategoryFilter::Code(code) => c.category.as_deref() == Some(code),
        })
        .filter(|c| tag.is_none_or(|t| c.tags.iter().any(|x| x == t)))
        .filter(|c| q.overdue.is_none_or(|o| is_overdue(&c.status, c.due_at, now) == o))
        .collect();
    all.sort_by(|a, b| q.sort.compare(a, b));
    all.iter().map(|c| c.id).collect()
}

#[tokio::test]
async fn listing_pages_match_a_full_sort_for_every_order_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    seed(&store, 3000).await;
    let now = 500_000;
    let mut variants = Vec::new();
    for sort in Sort::NAMES {
        variants.push((query(sort), None));
        let mut q = query(sort);
        q.statuses = STATUSES.to_vec();
        q.overdue = Some(true);
        variants.push((q, None));
        let mut q = query(sort);
        q.priorities = vec![Priority::Low, Priority::Urgent];
        q.tag_idx = Some(store.keys.tag_index("vip"));
        variants.push((q, Some("vip")));
        let mut q = query(sort);
        q.category = CategoryFilter::Code("BZZX".into());
        q.overdue = Some(false);
        q.statuses = vec!["waiting", "new"];
        variants.push((q, None));
    }
    for (q, tag) in variants {
        let expected = reference(&store, &q, tag, now).await;
        // By cursor, page after page…
        let mut got = Vec::new();
        let mut cursor_q = q.clone();
        loop {
            let page = store.list_cases(&cursor_q, now).await.unwrap();
            got.extend(page.cases.iter().map(|c| c.id));
            match page.next {
                Some(next) => cursor_q.after = Some(next),
                None => break,
            }
            assert!(got.len() <= expected.len(), "{:?}: more cases than exist", q.sort);
        }
        assert_eq!(got, expected, "cursor paging, sort {} statuses {:?} overdue {:?}", q.sort.name(), q.statuses, q.overdue);
        // …and by offset.
        let mut offset_q = q.clone();
        offset_q.offset = 20;
        let page = store.list_cases(&offset_q, now).await.unwrap();
        let want: Vec<i64> = expected.iter().skip(20).take(7).copied().collect();
        assert_eq!(page.cases.iter().map(|c| c.id).collect::<Vec<_>>(), want, "offset paging, sort {}", q.sort.name());
    }
}

/// Every run of a listing is read from an index in order: no table scan, no sort of the queue.
#[tokio::test]
async fn listing_reads_indexes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    seed(&store, 200).await;
    for sort in Sort::NAMES {
        let rank = if sort.ends_with("priority") { 1 } else { 0 };
        for cursor in [None, Some(Cursor { sort: sort.to_string(), rank, value: Some(9000), id: 40 })] {
            let mut q = query(sort);
            q.after = cursor;
            q.tag_idx = Some(store.keys.tag_index("vip"));
            for (status, priority) in runs(&q) {
                let Some(mut b) = run_query(&q, status, priority, 1, 8, "EXPLAIN QUERY PLAN ") else { continue };
                let sql = b.sql().as_str().to_string();
                let plan: Vec<String> = b.build().fetch_all(store.sqlite()).await.unwrap().iter().map(|r| r.get::<String, _>(3)).collect();
                let plan = plan.join(" | ");
                let index = if sort.contains("opened") {
                    "cases_queue_status"
                } else if sort.contains("updated") {
                    "cases_queue_updated"
                } else {
                    "cases_queue_priority_due"
                };
                assert!(plan.contains(&format!("USING INDEX {index}")), "sort {sort}: {plan}");
                assert!(!plan.contains("TEMP B-TREE"), "sort {sort} sorts instead of reading in order: {plan}");
                assert!(!plan.contains("SCAN c"), "sort {sort} scans the table: {plan}");
                if sql.contains(&format!("c.{} >= ", q.sort.column())) {
                    assert!(
                        plan.contains(&format!("{}>?", q.sort.column())),
                        "sort {sort} filters from the start of the run instead of seeking: {plan}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn transfer_gives_fresh_growing_uids_and_everything_commits_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    seed(&store, 4).await;
    sqlx::query("UPDATE counters SET value = 50 WHERE name = 'message'").execute(store.sqlite()).await.unwrap();
    // Two message links for case 2 (messages need not exist for the link table's uid logic,
    // but foreign keys are on: create minimal rows).
    for id in [7i64, 9] {
        sqlx::query(
            "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, dedupe_idx)
             VALUES (?, x'00', 'MR-x', 2026, ?, 0, 0, 'smtp', 1, 2, 1, x'00', x'00', x'00', x'00')",
        )
        .bind(id)
        .bind(id)
        .execute(store.sqlite())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO message_cases (message_id, case_id, uid, modseq, queue) SELECT ?, id, ?, 1, queue FROM cases WHERE id = 2",
        )
        .bind(id)
        .bind(id)
        .execute(store.sqlite())
        .await
        .unwrap();
    }
    let mut change = store.change_case(2).await.unwrap().unwrap();
    assert_eq!(change.case.queue, "support");
    change.transfer("sales").await.unwrap();
    let entry = change.add_entry("note", "anna", &EntryBody { text: "moved".into(), ..Default::default() }, None).await.unwrap();
    let case = change.commit("anna", "transfer", "queue support→sales").await.unwrap();
    assert_eq!(case.queue, "sales");
    let uids: Vec<i64> =
        sqlx::query_scalar("SELECT uid FROM message_cases WHERE case_id = 2 ORDER BY message_id").fetch_all(store.sqlite()).await.unwrap();
    assert_eq!(uids, vec![51, 52]);
    let counter: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'message'").fetch_one(store.sqlite()).await.unwrap();
    assert_eq!(counter, 52, "later messages get ids above the fresh uids");
    let entries = store.case_entries(2).await.unwrap();
    assert_eq!((entries[0].id, entries[0].body.text.as_str()), (entry, "moved"));
    let history = store.case_history(2).await.unwrap();
    assert_eq!((history[0].action.as_str(), history[0].detail.as_deref()), ("transfer", Some("queue support→sales")));
    let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE action = 'case.transfer' AND object = 'case:2'")
        .fetch_one(store.sqlite())
        .await
        .unwrap();
    assert_eq!(audited, 1);
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT body_ct FROM case_entries").fetch_one(store.sqlite()).await.unwrap();
    assert!(!sealed.windows(5).any(|w| w == b"moved"), "entries are sealed");

    // A change that is dropped leaves nothing behind.
    let mut change = store.change_case(2).await.unwrap().unwrap();
    change.transfer("support").await.unwrap();
    change.add_entry("note", "anna", &EntryBody { text: "lost".into(), ..Default::default() }, None).await.unwrap();
    drop(change);
    assert_eq!(store.case(2).await.unwrap().unwrap().queue, "sales");
    assert_eq!(store.case_entries(2).await.unwrap().len(), 1);
    let counter: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'message'").fetch_one(store.sqlite()).await.unwrap();
    assert_eq!(counter, 52);
    assert!(store.change_case(999).await.unwrap().is_none());
}

/// A store that an earlier version wrote (tags in clear) is sealed on the first open after
/// migration 0006: same tags, filterable by blind index, and no clear text left in the files.
#[tokio::test]
async fn clear_tags_written_before_0006_are_sealed_and_wiped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("clear-tag-marker-{}", std::process::id());
    {
        let options = crate::store::testing::options(dir.path());
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(crate::store::sqlite::connect_options(&options.database_path))
            .await
            .unwrap();
        crate::store::MIGRATOR.run_to(5, &pool).await.unwrap();
        for (id, tags) in [(1, format!("[\"{marker}\",\"vip\"]")), (2, "[]".to_string()), (3, "[\"vip\"]".to_string())] {
            sqlx::query("INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, priority, due_at, tags) VALUES (?, 'MR-1', 'support', 'new', 1, 1, 'normal', 10, ?)")
                .bind(id)
                .bind(tags)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
    let db_path = dir.path().join("mailroom.db");
    let raw = std::fs::read(&db_path).unwrap();
    assert!(raw.windows(marker.len()).any(|w| w == marker.as_bytes()), "the old database holds the tag in clear (control)");

    let store = store(dir.path()).await;
    assert_eq!(store.case(1).await.unwrap().unwrap().tags, vec![marker.clone(), "vip".to_string()]);
    assert!(store.case(2).await.unwrap().unwrap().tags.is_empty());
    let mut q = query("due");
    q.tag_idx = Some(store.keys.tag_index("vip"));
    let page = store.list_cases(&q, 0).await.unwrap();
    assert_eq!(page.cases.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 3]);
    let clear: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE tags != '[]'").fetch_one(store.sqlite()).await.unwrap();
    assert_eq!(clear, 0);
    assert_eq!(store.seal_clear_tags().await.unwrap(), 0, "done once");
    store.sqlite().close().await;
    for file in ["mailroom.db", "mailroom.db-wal", "mailroom.db-shm"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "{file} still holds the clear tag");
    }
}

#[tokio::test]
async fn queue_counts_match_a_count_in_memory_at_every_edge_of_the_day_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    seed(&store, 600).await;
    sqlx::query("INSERT INTO users (id, name, password_hash, created_at, password_changed_at) VALUES (1, 'anna', 'x', 0, 0)")
        .execute(store.sqlite())
        .await
        .unwrap();
    sqlx::query("UPDATE cases SET assignee = 1 WHERE id % 3 = 0").execute(store.sqlite()).await.unwrap();
    let rows: Vec<(String, String, Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT queue, status, due_at, assignee FROM cases").fetch_all(store.sqlite()).await.unwrap();
    // Both edges of the day ahead on open support cases: 10 (new) due exactly now, 2 (open) due
    // exactly a day later; 4 (new) due on a day's first millisecond, 6 (open) on a second's last.
    let due_times: Vec<i64> = rows.iter().filter_map(|r| r.2).collect();
    let now = due_times[due_times.len() / 2];
    for (id, due) in [(10, now), (2, now + DUE_SOON), (4, counters::bucket(now, DAY_MS) + DAY_MS), (6, counters::bucket(now, 1000) + 999)] {
        sqlx::query("UPDATE cases SET due_at = $1 WHERE id = $2").bind(due).bind(id).execute(store.sqlite()).await.unwrap();
    }
    // The rows were written by hand: counters from a full count, as migration 0017 fills them.
    store.recount_queue_counters("test").await.unwrap();
    assert!(store.check_queue_counters().await.unwrap().mismatches.is_empty());
    let rows: Vec<(String, String, Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT queue, status, due_at, assignee FROM cases").fetch_all(store.sqlite()).await.unwrap();
    // Every bucket edge (each width) around now, a day ahead and a due time, and a millisecond either side.
    let mut times = vec![now, 0, 1, i64::from(i32::MAX)];
    for t in [now, now + DUE_SOON, due_times[7], due_times[due_times.len() - 1]] {
        for width in counters::WIDTHS {
            let edge = counters::bucket(t, width);
            times.extend([edge - 1, edge, edge + 1, edge + width - 1, edge + width]);
        }
    }
    for queue in ["support", "sales"] {
        let mine: Vec<_> = rows.iter().filter(|r| r.0 == queue).collect();
        let active = |r: &&&(String, String, Option<i64>, Option<i64>)| ACTIVE.contains(&r.1.as_str());
        let running = |r: &&&(String, String, Option<i64>, Option<i64>)| CLOCK_RUNNING.contains(&r.1.as_str());
        for &now in &times {
            let counts = store.queue_counts(queue, now).await.unwrap();
            assert_eq!(counts, store.queue_counts_by_scan(queue, now).await.unwrap(), "{queue} at {now}");
            assert_eq!(counts.active, mine.iter().filter(active).count() as i64, "{queue}");
            assert_eq!(counts.unassigned, mine.iter().filter(active).filter(|r| r.3.is_none()).count() as i64, "{queue}");
            let overdue = mine.iter().filter(running).filter(|r| r.2.is_some_and(|d| d < now)).count() as i64;
            assert_eq!(counts.overdue, overdue, "{queue} at {now}");
            let due_soon = mine.iter().filter(running).filter(|r| r.2.is_some_and(|d| d >= now && d < now + DUE_SOON)).count() as i64;
            assert_eq!(counts.due_soon, due_soon, "{queue} at {now}");
            assert!(counts.unassigned > 0 && counts.unassigned < counts.active, "{queue}: the seed has both");
        }
    }
}

#[tokio::test]
async fn a_check_finds_a_counter_off_by_one_and_a_recount_sets_it_right() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    seed(&store, 60).await;
    // Written by hand, past the counters: the check sees every row missing.
    let check = store.check_queue_counters().await.unwrap();
    assert!(check.rows > 0 && check.mismatches.len() == check.rows, "{check:?}");
    store.recount_queue_counters("test").await.unwrap();
    assert!(store.check_queue_counters().await.unwrap().mismatches.is_empty());
    sqlx::query("UPDATE queue_counters SET n = n + 1 WHERE queue = 'support' AND status = 'open'").execute(store.sqlite()).await.unwrap();
    sqlx::query("DELETE FROM queue_due_buckets WHERE width = 1000 AND queue = 'sales'").execute(store.sqlite()).await.unwrap();
    let check = store.check_queue_counters().await.unwrap();
    assert!(
        check
            .mismatches
            .iter()
            .any(|m| matches!(&m.key, counters::Key::Count { queue, .. } if queue == "support") && m.kept == m.counted + 1)
    );
    assert!(check.mismatches.iter().any(|m| matches!(&m.key, counters::Key::Due { width: 1000, .. }) && m.kept == 0 && m.counted > 0));
    let fixed = store.recount_queue_counters("test").await.unwrap();
    assert_eq!(fixed.mismatches.len(), check.mismatches.len(), "the recount reports what it found");
    assert!(store.check_queue_counters().await.unwrap().mismatches.is_empty());
}

#[test]
fn sorts_parse_and_name_themselves() {
    for name in Sort::NAMES {
        assert_eq!(name.parse::<Sort>().unwrap().name(), name);
    }
    assert!("size".parse::<Sort>().is_err());
    assert!("--due".parse::<Sort>().is_err());
}

#[tokio::test]
async fn dashboard_figures_count_each_day_week_and_range_of_one_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    const D: i64 = DAY_MS;
    /// (id, queue, status, opened, due, first response, resolved, category, tier)
    type Seeded = (i64, &'static str, &'static str, i64, i64, Option<i64>, Option<i64>, Option<&'static str>, Option<&'static str>);
    let cases: [Seeded; 5] = [
        (1, "support", "new", 10 * D + 5, 10 * D + 1000, None, None, None, None),
        (2, "support", "resolved", 10 * D + 6, 10 * D + 1000, Some(10 * D + 100), Some(11 * D + 10), None, None),
        (3, "support", "waiting", 11 * D, 11 * D + 10, Some(11 * D + 5000), None, Some("BZZX"), Some("vip")),
        (4, "sales", "new", 11 * D, 11 * D + 10, None, None, None, None),
        (5, "support", "new", 2 * D, 2 * D + 10, None, None, None, None),
    ];
    for (id, queue, status, opened, due, responded, resolved, category, tier) in cases {
        sqlx::query(
            "INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, priority, due_at, tags, first_response_at, resolved_at, category, tier)
             VALUES ($1, 'MR-' || $1, $2, $3, $4, $4, 'normal', $5, '[]', $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(queue)
        .bind(status)
        .bind(opened)
        .bind(due)
        .bind(responded)
        .bind(resolved)
        .bind(category)
        .bind(tier)
        .execute(store.sqlite())
        .await
        .unwrap();
    }
    let ranges = DashboardRanges { now: 12 * D, days_since: 9 * D, weeks_since: 0, durations_since: 9 * D };
    let mut f = store.dashboard_figures("support", &ranges).await.unwrap();
    assert_eq!(f.opened_per_day, [(10, 2), (11, 1)].into(), "case 5 is older than the days asked, case 4 another queue's");
    assert_eq!(f.resolved_per_day, [(11, 1)].into());
    // Weeks start on Monday: day 2 (a Saturday) is week 0, day 10 week 1, day 11 (a Monday) week 2.
    assert_eq!(f.sla_per_week, [(0, (0, 1)), (1, (1, 1)), (2, (0, 1))].into(), "in time, late, or unanswered past due");
    f.response_ms.sort();
    assert_eq!(f.response_ms, [94, 5000]);
    assert_eq!(f.resolution_ms, [D + 4]);
    assert_eq!(f.by_category, [("none".to_string(), 2), ("BZZX".to_string(), 1)].into());
    assert_eq!(f.by_tier, [("none".to_string(), 2), ("vip".to_string(), 1)].into());
    let empty = store.dashboard_figures("complaints", &ranges).await.unwrap();
    assert!(empty.opened_per_day.is_empty() && empty.response_ms.is_empty() && empty.by_tier.is_empty());
}
