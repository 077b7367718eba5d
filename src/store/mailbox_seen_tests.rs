//! The watermark advances over what is seen, drops below a message whose \Seen is cleared or
//! that enters the queue at an old UID, and the unseen reads agree with the flags.

use super::super::mailbox::FlagUpdate;
use super::super::{Store, testing};

/// Case 1 in `support` with messages 1..=10 (UID = id), case 2 in `sales`; user 1.
async fn store(dir: &std::path::Path) -> Store {
    let store = Store::open(testing::options(dir)).await.unwrap();
    let db = store.sqlite();
    sqlx::query("INSERT INTO users (id, name, password_hash, created_at, password_changed_at) VALUES (1, 'anna', 'x', 0, 0)")
        .execute(db)
        .await
        .unwrap();
    for (id, queue) in [(1, "support"), (2, "sales")] {
        sqlx::query(
            "INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, priority, tags) VALUES (?, 'MR-' || ?, ?, 'new', 0, 0, 'normal', '[]')",
        )
        .bind(id)
        .bind(id)
        .bind(queue)
        .execute(db)
        .await
        .unwrap();
    }
    for id in 1..=12i64 {
        let case = if id <= 10 { 1 } else { 2 };
        sqlx::query(
            "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, dedupe_idx)
             VALUES (?, x'00', 'MR-x', 2026, ?, 0, 0, 'smtp', 1, ?, 1, x'00', x'00', x'00', x'00')",
        )
        .bind(id)
        .bind(id)
        .bind(case)
        .execute(db)
        .await
        .unwrap();
        // The writer stamps the queue and modseq of a placement (migration 0020); so does this.
        sqlx::query(
            "INSERT INTO message_cases (message_id, case_id, uid, modseq, queue) SELECT ?, id, ?, 1, queue FROM cases WHERE id = ?",
        )
        .bind(id)
        .bind(id)
        .bind(case)
        .execute(db)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE counters SET value = 12 WHERE name = 'message'").execute(db).await.unwrap();
    store
}

async fn set(store: &Store, seen: bool, ids: impl IntoIterator<Item = i64>) {
    let flags: Vec<FlagUpdate> = ids.into_iter().map(|id| FlagUpdate { case_id: 1, message_id: id, seen, flagged: false }).collect();
    store.mailbox_commit(1, "support", &flags, &[], None).await.unwrap();
}

/// (watermark, first unseen, unseen UIDs, STATUS counts) of `support` for user 1.
async fn view(store: &Store) -> (i64, Option<u32>, Vec<u32>, (u32, u32)) {
    (
        store.mailbox_seen_through("support", 1).await.unwrap(),
        store.mailbox_first_unseen("support", 1).await.unwrap(),
        store.mailbox_seen_uids("support", 1, false).await.unwrap(),
        store.mailbox_counts("support", 1).await.unwrap(),
    )
}

#[tokio::test]
async fn the_watermark_advances_and_falls_with_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    assert_eq!(view(&store).await, (0, Some(1), (1..=10).collect(), (10, 10)));

    // Out of order: 2 and 3 seen, 1 not, so nothing is proven yet.
    set(&store, true, [2, 3]).await;
    assert_eq!(view(&store).await, (0, Some(1), vec![1, 4, 5, 6, 7, 8, 9, 10], (10, 8)));
    // 1 seen: the watermark walks over 1..=3 and stops below 4.
    set(&store, true, [1]).await;
    assert_eq!(view(&store).await, (3, Some(4), (4..=10).collect(), (10, 7)));
    // All seen (1:*): the watermark is the queue's largest UID.
    set(&store, true, 1..=10).await;
    assert_eq!(view(&store).await, (10, None, vec![], (10, 0)));
    // \Seen cleared on 6: below it, and 6 is found again (the rows above stay seen).
    set(&store, false, [6]).await;
    assert_eq!(view(&store).await, (5, Some(6), vec![6], (10, 1)));
    // A flag change that keeps \Seen cleared on an already unseen message changes nothing else.
    set(&store, false, [8]).await;
    assert_eq!(view(&store).await, (5, Some(6), vec![6, 8], (10, 2)));
    set(&store, true, [6, 8]).await;
    assert_eq!(view(&store).await.0, 10);

    // A message of another queue enters `support` at an old UID (no writer does that today:
    // a transfer takes a fresh UID): the trigger moves the watermark below it.
    sqlx::query("UPDATE message_cases SET queue = 'support', uid = 4 WHERE message_id = 11").execute(store.sqlite()).await.unwrap();
    let (w, first, unseen, counts) = view(&store).await;
    assert_eq!((w, first, unseen, counts), (3, Some(4), vec![4], (11, 1)));

    // The first unseen message leaves the queue (a purge) far below the rest: nothing is
    // written, so nothing advances, until a SELECT finds the watermark far below the top.
    sqlx::query("UPDATE message_cases SET uid = uid + 2000 WHERE message_id BETWEEN 5 AND 10").execute(store.sqlite()).await.unwrap();
    sqlx::query("DELETE FROM message_cases WHERE message_id = 11").execute(store.sqlite()).await.unwrap();
    assert_eq!(store.mailbox_seen_through("support", 1).await.unwrap(), 3);
    assert_eq!(store.mailbox_seen_uids("support", 1, false).await.unwrap(), Vec::<u32>::new());
    assert_eq!(store.mailbox_first_unseen("support", 1).await.unwrap(), None);
    assert_eq!(store.mailbox_seen_through("support", 1).await.unwrap(), 2010);

    // Another user's watermark is another row, untouched.
    assert_eq!(store.mailbox_seen_through("support", 2).await.unwrap(), 0);
}
