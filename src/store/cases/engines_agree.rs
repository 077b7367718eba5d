//! The cases side on both engines: one scenario (listing in every order and filter, counts,
//! statistics, dashboard, message reads, the IMAP view, a case change with a reply, its review and
//! undo, sealing old clear tags, the outbox worker, legal hold, retention and erasure) run on
//! SQLite and on PostgreSQL; the two transcripts must be the same.
//!
//! Needs a PostgreSQL server: `MAILROOM_TEST_PG_URL` (e.g. `postgres://postgres@localhost:5432/postgres`,
//! or `tests/common/pg.rs`'s cluster once unit tests can use it). The test makes its own schema
//! in that database from the files in `migrations/postgres/` (or `MAILROOM_TEST_PG_MIGRATIONS`),
//! and drops it at the end. Run: `cargo test --lib engines_agree -- --ignored`.

use std::fmt::Write;
use std::sync::Arc;

use super::tests::query;
use super::*;
use crate::store::engine::{Db, on_conn};
use crate::store::outbox;

/// A store on a fresh PostgreSQL schema of its own (`test`, this process), migrated from the
/// files, and the schema's name.
async fn pg_store(dir: &std::path::Path, url: &str, test: &str) -> (Store, String) {
    use sqlx::ConnectOptions;
    let schema = format!("{test}_{}", std::process::id());
    let base: sqlx::postgres::PgConnectOptions = url.parse().expect("MAILROOM_TEST_PG_URL");
    let mut admin = base.connect().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let options = base.options([("search_path", schema.as_str())]);
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect_with(options).await.unwrap();
    let migrations = std::env::var("MAILROOM_TEST_PG_MIGRATIONS").unwrap_or_else(|_| "migrations/postgres".into());
    let mut files: Vec<_> = std::fs::read_dir(&migrations).unwrap().map(|f| f.unwrap().path()).collect();
    files.sort();
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sql")) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(std::fs::read_to_string(file).unwrap())).execute(&pool).await.unwrap();
    }
    let options = crate::store::testing::options(dir);
    let keys = Arc::new(crate::store::crypto::KeyRing::load_or_create(&options.master_key_path).unwrap());
    let store = Store {
        db: Db::Postgres(pool),
        keys,
        options: Arc::new(options),
        changes: Arc::new(tokio::sync::watch::channel(0).0),
        writer: Arc::default(),
        presence: crate::store::presence::channel(),
    };
    (store, schema)
}

const STATUS_CYCLE: [&str; 5] = ["new", "open", "waiting", "resolved", "closed"];
const PRIORITY_CYCLE: [&str; 3] = ["urgent", "normal", "low"];

const INSERT_CASE: &str = "INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, priority, due_at, tags,
                                              category, assignee, first_response_at, resolved_at, tier)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]', $9, $10, $11, $12, $13)";
const INSERT_MESSAGE: &str = "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, parsed,
                                                    case_id, key_id, wrapped_key, trace_ct, fields_ct, dedupe_idx, automatic)
                              VALUES ($1, $2, $3, 2026, $1, $4, 100, 'smtp', 1, $5, $6, $7, $8, $9, $10, $11)";

/// Cases over two queues, every status and priority (due times out of order, some none), some
/// assigned, tagged, answered, resolved; six messages in cases 2 and 4; one case with a tag stored
/// in clear before 0006.
async fn seed(store: &Store, n: i64) {
    let mut tx = store.db().begin_write().await.unwrap();
    on_conn!(&mut tx, c => {
        sqlx::query("INSERT INTO users (id, name, password_hash, created_at, password_changed_at) VALUES (1, 'anna', 'x', 1, 1)")
            .execute(&mut *c)
            .await
            .unwrap();
        for i in 1..=n {
            sqlx::query(INSERT_CASE)
                .bind(i)
                .bind(format!("MR-{i}"))
                .bind(if i % 2 == 0 { "support" } else { "sales" })
                .bind(STATUS_CYCLE[((i / 2) % 5) as usize])
                .bind(1000 + i * 100_000)
                .bind(2000 + (i * 7919) % 100_003)
                .bind(PRIORITY_CYCLE[((i / 10) % 3) as usize])
                .bind((i % 97 != 0).then_some(5000 + (i * 104_729) % 1_000_003))
                .bind((i % 3 == 0).then_some("BZZX"))
                .bind((i % 5 == 0).then_some(1i64))
                .bind((i % 4 == 0).then_some(1000 + i * 100_000 + (i * 31) % 9000))
                .bind((i % 6 == 0).then_some(1000 + i * 100_000 + (i * 17) % 90_000_000))
                .bind((i % 7 == 0).then_some("vip"))
                .execute(&mut *c)
                .await
                .unwrap();
        }
    });
    for id in (11..=n).step_by(11) {
        super::tags::write_tags(&mut tx, &store.keys, id, None, &["vip".to_string(), format!("t{id}")]).await.unwrap();
    }
    for m in 1..=6i64 {
        let row = store.keys.new_row().unwrap();
        let record = crate::store::record::Record { subject: Some(format!("s{m}")), ..Default::default() };
        let fields_ct = row.seal("fields", &serde_json::to_vec(&record).unwrap()).unwrap();
        let raw_ct = row.seal("raw", &crate::store::codec::pack(b"Subject: hi\r\n\r\nbody", Default::default())).unwrap();
        let case_id = if m % 2 == 0 { 2i64 } else { 4 };
        on_conn!(&mut tx, c => {
            sqlx::query(INSERT_MESSAGE)
                .bind(m)
                .bind(&row.uid[..])
                .bind(format!("R-{m}"))
                .bind(m * 1000)
                .bind(case_id)
                .bind(i64::from(row.key_id))
                .bind(&row.wrapped_key)
                .bind(row.seal("trace", b"Received: x\r\n").unwrap())
                .bind(&fields_ct)
                .bind(vec![m as u8])
                .bind(i64::from(m % 3 == 0))
                .execute(&mut *c)
                .await
                .unwrap();
            sqlx::query("INSERT INTO message_blobs (message_id, raw_ct) VALUES ($1, $2)")
                .bind(m)
                .bind(&raw_ct)
                .execute(&mut *c)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO message_cases (message_id, case_id, uid, modseq, queue, x_category, x_priority, x_due)
                 SELECT $1, id, $1, 1, queue, category, priority, due_at FROM cases WHERE id = $2",
            )
                .bind(m)
                .bind(case_id)
                .execute(&mut *c)
                .await
                .unwrap();
        });
    }
    on_conn!(&mut tx, c => {
        sqlx::query("UPDATE counters SET value = 6 WHERE name = 'message'").execute(&mut *c).await.unwrap();
        sqlx::query("UPDATE cases SET tags = '[\"old\"]' WHERE id = 22").execute(&mut *c).await.unwrap();
        sqlx::query("INSERT INTO cases_clear_tags (case_id) VALUES (22)").execute(&mut *c).await.unwrap();
    });
    tx.commit().await.unwrap();
    // Rows written here by hand: the queue counters from a full count, as migration 0017 fills them.
    store.recount_queue_counters("test").await.unwrap();
}

async fn scenario(store: &Store) -> String {
    let mut out = String::new();
    seed(store, 600).await;
    writeln!(out, "sealed clear {}", store.seal_clear_tags().await.unwrap()).unwrap();
    writeln!(out, "case 22 {:?}", store.case(22).await.unwrap().unwrap().tags).unwrap();
    let now = 300_000;
    for sort in Sort::NAMES {
        let mut variants = vec![query(sort)];
        let mut v = query(sort);
        v.statuses = STATUSES.to_vec();
        v.overdue = Some(true);
        variants.push(v);
        let mut v = query(sort);
        v.priorities = vec![Priority::Low, Priority::Urgent];
        v.tag_idx = Some(store.keys.tag_index("vip"));
        variants.push(v);
        let mut v = query(sort);
        v.category = CategoryFilter::Code("BZZX".into());
        v.overdue = Some(false);
        v.statuses = vec!["waiting", "new"];
        variants.push(v);
        let mut v = query(sort);
        v.assignee = AssigneeFilter::User(1);
        variants.push(v);
        let mut v = query(sort);
        v.assignee = AssigneeFilter::Nobody;
        v.category = CategoryFilter::Uncategorised;
        variants.push(v);
        for v in variants {
            let mut got = Vec::new();
            let mut cq = v.clone();
            loop {
                let page = store.list_cases(&cq, now).await.unwrap();
                got.extend(page.cases.iter().map(|c| (c.id, c.assignee.clone(), c.tags.len())));
                match page.next {
                    Some(n) => cq.after = Some(n),
                    None => break,
                }
            }
            let mut oq = v.clone();
            oq.offset = 20;
            let off: Vec<i64> = store.list_cases(&oq, now).await.unwrap().cases.iter().map(|c| c.id).collect();
            writeln!(out, "list {sort} {:?}\n  off {:?}", got, off).unwrap();
        }
    }
    for queue in ["support", "sales"] {
        for now in [0, 5000, 300_000, 2_000_000] {
            let counts = store.queue_counts(queue, now).await.unwrap();
            assert_eq!(counts, store.queue_counts_by_scan(queue, now).await.unwrap(), "{queue} at {now}");
            writeln!(out, "counts {queue} {now} {counts:?}").unwrap();
            writeln!(out, "stats {:?}", store.queue_stats(queue, now).await.unwrap()).unwrap();
            writeln!(out, "since {}", store.cases_opened_since(queue, now * 10).await.unwrap()).unwrap();
        }
        let r = crate::store::cases::DashboardRanges { now: 90_000_000, days_since: 0, weeks_since: 0, durations_since: 0 };
        writeln!(out, "dash {:?}", store.dashboard_figures(queue, &r).await.unwrap()).unwrap();
        let r = crate::store::cases::DashboardRanges {
            now: 40_000_000,
            days_since: 10_000_000,
            weeks_since: 3_000_000,
            durations_since: 20_000_000,
        };
        writeln!(out, "dash {:?}", store.dashboard_figures(queue, &r).await.unwrap()).unwrap();
    }
    // Reads of messages.
    writeln!(out, "counts {:?}", {
        let mut v: Vec<_> = store.case_message_counts(&[2, 4, 6]).await.unwrap().into_iter().collect();
        v.sort();
        v
    })
    .unwrap();
    let many = store.open_fields_many(&[1, 2, 3, 99]).await.unwrap();
    let mut many: Vec<_> = many.into_iter().map(|(k, v)| (k, v.unwrap().subject)).collect();
    many.sort();
    writeln!(out, "fields {many:?}").unwrap();
    writeln!(
        out,
        "msgs {:?}",
        store
            .case_messages(2)
            .await
            .unwrap()
            .iter()
            .map(|m| (m.id, m.number.clone(), m.received_at, m.automatic, m.parsed))
            .collect::<Vec<_>>()
    )
    .unwrap();
    writeln!(out, "open {:?}", store.open_message(3).await.unwrap()).unwrap();
    writeln!(out, "open_fields {:?}", store.open_fields(3).await.unwrap().subject).unwrap();
    writeln!(out, "trace {}", store.trace_len(3).await.unwrap()).unwrap();
    writeln!(
        out,
        "by reg {:?} {:?}",
        store.message_id_by_registration(2026, 5).await.unwrap(),
        store.message_id_by_registration(2025, 5).await.unwrap()
    )
    .unwrap();
    writeln!(
        out,
        "queues {:?} user {:?} {:?}",
        store.message_queues(3).await.unwrap(),
        store.user_id("anna").await.unwrap(),
        store.user_id("x").await.unwrap()
    )
    .unwrap();
    writeln!(out, "read_raw {:?}", store.read_raw(2026, 4, "op").await.unwrap().map(|r| r.len())).unwrap();
    // Mailbox.
    let v1 = store.mailbox_uidvalidity("support").await.unwrap();
    assert_eq!(v1, store.mailbox_uidvalidity("support").await.unwrap());
    writeln!(out, "uidnext {}", store.mailbox_uid_next().await.unwrap()).unwrap();
    store
        .mailbox_commit(
            1,
            "support",
            &[crate::store::mailbox::FlagUpdate { case_id: 2, message_id: 2, seen: true, flagged: false }],
            &[],
            None,
        )
        .await
        .unwrap();
    store
        .mailbox_commit(
            1,
            "support",
            &[crate::store::mailbox::FlagUpdate { case_id: 2, message_id: 4, seen: true, flagged: true }],
            &[],
            Some(1),
        )
        .await
        .unwrap();
    writeln!(out, "mb {:?}", store.mailbox_range("support", 1, 1, u32::MAX).await.unwrap()).unwrap();
    let modseq = store.mailbox_modseq().await.unwrap();
    writeln!(out, "modseq {modseq} uids {:?}", store.mailbox_uids_after("support", 0).await.unwrap()).unwrap();
    writeln!(out, "changed {:?}", store.mailbox_changed("support", 1, 1).await.unwrap().iter().map(|e| e.uid).collect::<Vec<_>>()).unwrap();
    writeln!(
        out,
        "unseen {:?} first {:?}",
        store.mailbox_seen_uids("support", 1, false).await.unwrap(),
        store.mailbox_first_unseen("support", 1).await.unwrap()
    )
    .unwrap();
    writeln!(out, "mbc {:?} {:?}", store.mailbox_counts("support", 1).await.unwrap(), store.mailbox_counts("sales", 1).await.unwrap())
        .unwrap();
    // The "seen through" watermark: advanced by \Seen, lowered when it is cleared.
    let flag = |seen| [crate::store::mailbox::FlagUpdate { case_id: 2, message_id: 2, seen, flagged: false }];
    let through = store.mailbox_seen_through("support", 1).await.unwrap();
    store.mailbox_commit(1, "support", &flag(false), &[], None).await.unwrap();
    let lowered = (store.mailbox_seen_through("support", 1).await.unwrap(), store.mailbox_counts("support", 1).await.unwrap());
    store.mailbox_commit(1, "support", &flag(true), &[], None).await.unwrap();
    writeln!(out, "through {through} {lowered:?} {}", store.mailbox_seen_through("support", 1).await.unwrap()).unwrap();
    // A change.
    let mut ch = store.change_case(2).await.unwrap().unwrap();
    ch.now = 7_000_000;
    ch.transfer("sales").await.unwrap();
    writeln!(out, "newest {:?}", ch.messages_newest_first().await.unwrap()).unwrap();

    let body = EntryBody { text: "hello".into(), ..Default::default() };
    let ob = ch.enqueue_mail(2, "reply", "a@b", "c@d", b"data", 7_500_000).await.unwrap();
    let e = ch.add_entry("reply", "anna", &body, Some(ob)).await.unwrap();
    ch.set_reply_state(e, Some("awaiting-review"), Some("open"), None).await.unwrap();
    ch.case.tags = vec!["x".into(), "y".into()];
    ch.case.escalated = true;
    ch.commit("anna", "transfer", "to sales").await.unwrap();
    writeln!(
        out,
        "departed {:?} sales {:?}",
        store.mailbox_departed("support", modseq).await.unwrap(),
        store.mailbox_uids_after("sales", 0).await.unwrap()
    )
    .unwrap();
    // Pruning: the first pass only marks, the second forgets what the first marked, and then a
    // look from before the mark cannot be answered from the records (None), a later one can.
    let first = store.prune_mailbox_departures().await.unwrap();
    let second = store.prune_mailbox_departures().await.unwrap();
    writeln!(
        out,
        "pruned {first} {second} departed {:?} now {:?}",
        store.mailbox_departed("support", modseq).await.unwrap(),
        store.mailbox_departed("support", store.mailbox_modseq().await.unwrap()).await.unwrap()
    )
    .unwrap();
    writeln!(out, "case2 {:?}", {
        let mut c = store.case(2).await.unwrap().unwrap();
        c.updated_at = 0;
        c
    })
    .unwrap();
    writeln!(out, "review {:?}", store.awaiting_review(&["sales".into(), "support".into()]).await.unwrap()).unwrap();
    writeln!(out, "pending_until {:?}", outbox::pending_until(store, ob).await.unwrap()).unwrap();
    let mut ch = store.change_case(2).await.unwrap().unwrap();
    ch.now = 7_100_000;
    writeln!(out, "reply {:?}", ch.reply_entry(e).await.unwrap()).unwrap();
    ch.update_entry_body(e, &EntryBody { text: "hello2".into(), ..Default::default() }).await.unwrap();
    writeln!(out, "withdraw {:?}", ch.withdraw_mail(ob).await.unwrap()).unwrap();
    writeln!(out, "withdraw again {:?}", ch.withdraw_mail(ob).await.unwrap()).unwrap();
    ch.commit("anna", "undo", "").await.unwrap();
    writeln!(
        out,
        "entries {:?}",
        store
            .case_entries(2)
            .await
            .unwrap()
            .iter()
            .map(|e| (e.kind.clone(), e.outbox_status.clone(), e.state.clone(), e.body.text.clone()))
            .collect::<Vec<_>>()
    )
    .unwrap();
    writeln!(
        out,
        "history {:?}",
        store.case_history(2).await.unwrap().iter().map(|h| (h.actor.clone(), h.action.clone(), h.detail.clone())).collect::<Vec<_>>()
    )
    .unwrap();
    // The statistics of a period: the cases opened in a range, and the sent replies on them.
    let mut ch = store.change_case(3).await.unwrap().unwrap();
    ch.now = 7_200_000;
    ch.add_entry("reply", "ben", &body, None).await.unwrap();
    ch.commit("ben", "reply", "").await.unwrap();
    for queue in ["support", "sales"] {
        for (since, until) in [(0, 90_000_000), (10_000_000, 40_000_000)] {
            let (cases, truncated) = store.period_cases(queue, since, until).await.unwrap();
            writeln!(out, "period {queue} {since} {truncated} {cases:?}").unwrap();
            let ids: Vec<i64> = cases.iter().map(|c| c.id).collect();
            writeln!(out, "  replies {:?}", store.sent_replies(&ids).await.unwrap()).unwrap();
        }
    }
    writeln!(out, "tags many {:?}", {
        let mut v: Vec<_> = store.case_tags_many(&[2, 11, 22, 3]).await.unwrap().into_iter().collect();
        v.sort();
        v
    })
    .unwrap();
    writeln!(
        out,
        "list {:?}",
        store
            .list(10)
            .await
            .unwrap()
            .iter()
            .map(|m| (m.number.clone(), m.cases.iter().map(|c| (c.case, c.tags.clone())).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    )
    .unwrap();
    // Outbox worker.
    let a = outbox::enqueue(store, Some(1), "ack", "", &["x@y"], b"ack").await.unwrap();
    let claimed = outbox::claim(store, i64::MAX / 2, i64::MAX / 2 + 1, 10).await.unwrap();
    writeln!(out, "claimed {:?}", claimed.iter().map(|r| (r.id == a, r.kind.clone(), r.attempts)).collect::<Vec<_>>()).unwrap();
    outbox::record(store, &[(a, 1, outbox::Attempt::Retry { error: "451", next_attempt_at: 5 })], 3).await.unwrap();
    writeln!(out, "state {:?} due {:?}", outbox::state(store, a).await.unwrap(), outbox::next_due(store).await.unwrap()).unwrap();
    outbox::mark_sending(store, a, 9).await.unwrap();
    outbox::release(store, &[a]).await.unwrap();
    outbox::record(store, &[(a, 2, outbox::Attempt::Sent { note: Some("n") })], 3).await.unwrap();
    let claimed = outbox::claim(store, i64::MAX / 2, i64::MAX / 2 + 1, 10).await.unwrap();
    outbox::record(store, &[(claimed[0].id, 2, outbox::Attempt::Failed { error: "550" })], 4).await.unwrap();
    writeln!(
        out,
        "state {:?} attempts {} sealed {}",
        outbox::state(store, a).await.unwrap().status,
        outbox::total_attempts(store).await.unwrap(),
        outbox::sealed_mail(store, a).await.unwrap().len()
    )
    .unwrap();
    // Retention and erasure: a held case (2, moved to sales above) is reported, a closed one (4)
    // shredded, its tombstones read.
    let mut tx = store.db().begin_write().await.unwrap();
    on_conn!(&mut tx, c => sqlx::query("UPDATE cases SET status = 'closed' WHERE id IN (2, 4)").execute(&mut *c).await.map(|_| ()).unwrap());
    tx.commit().await.unwrap();
    writeln!(out, "hold {:?}", store.set_hold("MR-2", Some("matter"), "op").await.unwrap()).unwrap();
    let holds: Vec<_> = store.holds().await.unwrap().into_iter().map(|h| (h.case, h.opening, h.queue, h.reason)).collect();
    writeln!(out, "holds {holds:?}").unwrap();
    let scope = crate::store::purge::Scope::Closed { policy: "p".into(), queue: None, category: None, closed_before: i64::MAX / 4 };
    for dry in [true, false] {
        // The real run in transactions of two messages, [R-5].
        let r = if dry {
            store.purge(&scope, "op", "retention.purge", dry).await
        } else {
            store.purge_in_batches(&scope, "op", "retention.purge", 2).await
        };
        let r = r.unwrap();
        writeln!(out, "purge dry={dry} {:?} cases={} outbox={} held={:?}", r.messages, r.cases, r.outbox, r.held).unwrap();
    }
    let batches = crate::store::audit::list(store, 0, 100, Some("retention.purge"), None).await.unwrap();
    writeln!(out, "purge audited in {} entries", batches.len()).unwrap();
    writeln!(out, "tombstone {:?}", store.tombstone(1).await.unwrap().map(|t| (t.number, t.purged_by, t.queue))).unwrap();
    writeln!(out, "open purged {:?}", store.open_message(1).await.err().map(|e| e.to_string().contains("was purged"))).unwrap();
    writeln!(
        out,
        "case 4 messages {:?} entries {}",
        store.case_messages(4).await.unwrap().len(),
        store.case_entries(4).await.unwrap().len()
    )
    .unwrap();
    let r = store.purge(&crate::store::purge::Scope::Address("x@y".into()), "op", "erasure", false).await.unwrap();
    writeln!(out, "erase {:?} outbox={} customers={} held={:?}", r.messages, r.outbox, r.customers, r.held).unwrap();
    writeln!(out, "checkpoint {:?}", store.checkpoint().await.is_ok()).unwrap();
    out
}

#[tokio::test]
#[ignore = "needs MAILROOM_TEST_PG_URL (a PostgreSQL server) and migrations/postgres"]
async fn engines_agree_on_the_cases_side() {
    let url = std::env::var("MAILROOM_TEST_PG_URL").expect("MAILROOM_TEST_PG_URL");
    let lite_dir = tempfile::tempdir().unwrap();
    let lite = Store::open(crate::store::testing::options(lite_dir.path())).await.unwrap();
    let pg_dir = tempfile::tempdir().unwrap();
    let (pg, schema) = pg_store(pg_dir.path(), &url, "engines_agree").await;
    let on_sqlite = scenario(&lite).await;
    let on_postgres = scenario(&pg).await;
    pg.close().await;
    drop_schema(&url, &schema).await;
    assert!(on_sqlite.lines().count() > 100, "the scenario ran");
    for purged in ["purge dry=true [\"R-1\", \"R-3\", \"R-5\"] cases=1", "purge dry=false [\"R-1\", \"R-3\", \"R-5\"] cases=1"] {
        assert!(on_sqlite.lines().any(|l| l.starts_with(purged) && l.ends_with("held=[\"MR-2\"]")), "{purged}:\n{on_sqlite}");
    }
    assert!(on_sqlite.contains("open purged Some(true)") && on_sqlite.contains("case 4 messages 0 entries 0"), "{on_sqlite}");
    // The IMAP view's incremental reads: a flag change is a change, a transfer a departure.
    for start in ["changed [", "departed Some([", "unseen ["] {
        let line = on_sqlite.lines().find(|l| l.starts_with(start)).unwrap_or_default();
        assert!(!line.starts_with(&format!("{start}]")) && !line.is_empty(), "{start}: {line}\n{on_sqlite}");
    }
    // The departure log's prune: the first pass marks, the second forgets what it marked.
    assert!(on_sqlite.lines().any(|l| l.starts_with("pruned 0 ") && l.ends_with(" departed None now Some([])")), "{on_sqlite}");
    assert!(on_sqlite.contains("purge audited in 2 entries"), "two transactions, one audit entry each: {on_sqlite}");
    for (line, (a, b)) in on_sqlite.lines().zip(on_postgres.lines()).enumerate() {
        assert_eq!(a, b, "line {line}: SQLite, then PostgreSQL");
    }
    assert_eq!(on_sqlite.lines().count(), on_postgres.lines().count());
}

async fn drop_schema(url: &str, schema: &str) {
    let mut admin = sqlx::ConnectOptions::connect(&url.parse::<sqlx::postgres::PgConnectOptions>().unwrap()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut admin).await.unwrap();
}

/// PostgreSQL's counterpart of `tests::listing_reads_indexes_in_order`: with 5000 cases (about
/// 170 in each (status, priority) run of a queue), every run of every sort, first page and after
/// a cursor, reads about a page of rows, not its whole run: the rows its scans return or filter
/// out, as `EXPLAIN ANALYZE` counts them (but see the one exception below). Before migration 0012 the due-time order read every
/// case of the run and sorted them (its index kept NULLs last and equal times in heap order).
#[tokio::test]
#[ignore = "needs MAILROOM_TEST_PG_URL (a PostgreSQL server) and migrations/postgres"]
async fn postgres_reads_about_a_page_per_listing_run() {
    use super::listing::{Cursor, Sort, run_query, runs};
    use sqlx::Row;
    const PAGE: i64 = 8;
    let url = std::env::var("MAILROOM_TEST_PG_URL").expect("MAILROOM_TEST_PG_URL");
    let dir = tempfile::tempdir().unwrap();
    let (store, schema) = pg_store(dir.path(), &url, "listing_plans").await;
    seed(&store, 5000).await;
    let Db::Postgres(pool) = store.db() else { unreachable!() };
    sqlx::query("ANALYZE cases").execute(pool).await.unwrap();
    let mut failures = Vec::new();
    let mut runs_checked = 0;
    for sort in Sort::NAMES {
        let rank = if sort.ends_with("priority") { 1 } else { 0 };
        for cursor in [None, Some(Cursor { sort: sort.to_string(), rank, value: Some(500_000), id: 40 })] {
            let mut q = query(sort);
            q.after = cursor;
            for (status, priority) in runs(&q) {
                let prefix = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ";
                let Some(mut b) = run_query::<sqlx::Postgres>(&q, status, priority, 1, PAGE, prefix) else { continue };
                // Not yet: a descending due-time page after a cursor asks for `due_at IS NULL OR
                // (due_at <= v …)`, which no single index range gives (the NULLs are at the run's
                // other end), so it filters from the run's end (SQLite's plan test leaves it out too).
                if b.sql().as_str().contains("IS NULL OR (c.due_at <=") {
                    continue;
                }
                let plan: Vec<String> = b.build().fetch_all(pool).await.unwrap().iter().map(|r| r.get::<String, _>(0)).collect();
                let read = rows_read(&plan);
                runs_checked += 1;
                if read > 3 * PAGE as u64 {
                    failures.push(format!(
                        "sort {sort}, {status}/{priority:?}, cursor {}: {read} rows read\n{}",
                        q.after.is_some(),
                        plan.join("\n")
                    ));
                }
            }
        }
    }
    store.close().await;
    drop_schema(&url, &schema).await;
    assert!(runs_checked > 50, "{runs_checked} runs");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The rows a plan's table and index scans returned (a bitmap's heap scan counts, its index
/// scan not again) plus those they read and dropped.
fn rows_read(plan: &[String]) -> u64 {
    let number_after = |line: &str, key: &str| -> u64 {
        line.split(key).nth(1).and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    plan.iter()
        .map(|line| {
            if line.contains(" Scan") && !line.contains("Bitmap Index Scan") {
                number_after(line, "actual rows=") * number_after(line, " loops=").max(1)
            } else if line.contains("Rows Removed by") {
                number_after(line, ": ")
            } else {
                0
            }
        })
        .sum()
}
