//! Ingest on PostgreSQL, on a throwaway cluster ([`PgCluster`]). The database is read with SQL
//! directly (the staff read paths are converted separately): every registered number is stored,
//! numbers and message ids (IMAP UIDs) are gap-free and in the same order, the audit chain
//! verifies.
//!
//! * In process: two stores ("nodes") on one database, each with its own group-commit writer,
//!   fed through intake (the real registration code) by many concurrent senders.
//! * The real server: mail delivered by SMTP from concurrent clients to one node, then to two
//!   server processes (different `server.node`) on one database, every 250 recorded.

mod common;

use common::*;
use mailroom::config::Settings;
use mailroom::intake::{Directory, Envelope, Intake, Outcome, Protocol};
use mailroom::store::Store;
use mailroom::store::audit::{AuditEntry, GENESIS, chain_hash};
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// An SMTP envelope from `from` to the support queue, as a session hands it to intake.
fn envelope(from: &str) -> Envelope {
    Envelope {
        mail_from: from.into(),
        recipients: vec![("support@example.com".into(), "support".into())],
        helo: "client.example.org".into(),
        client_ip: [127, 0, 0, 1].into(),
        protocol: Protocol::Smtp,
        tls: None,
    }
}

/// Message `n` of a test's series `tag` (its own Message-ID, so never a retry of another).
fn numbered_message(tag: &str, n: u32) -> Vec<u8> {
    format!("From: <customer@client.example.org>\r\nSubject: {n}\r\nMessage-ID: <{tag}-{n}@client.example.org>\r\n\r\nhi\r\n").into_bytes()
}

/// A node in this process: its store on `url` (key file in `dir`, shared by every node) and its
/// intake, whose registrations go through the node's own writer thread.
async fn in_process_node(url: &str, dir: &std::path::Path, node: &str) -> (Store, Intake, std::thread::JoinHandle<()>) {
    let toml = format!(
        r#"
[server]
hostname = "mx.example.com"
node = "{node}"

[storage]
database = "{url}"
max_batch = 64

[mail]
domains = ["example.com"]

[[queues]]
name = "support"
addresses = ["support@example.com"]

[outbox]
smarthost = "127.0.0.1:9"
ack_window = "1h"
"#
    );
    let settings = Settings::from_str("pg-node.toml", &toml, dir).expect("test config is valid");
    let store = Store::open_as(settings.store_options(), node).await.expect("store opens on PostgreSQL");
    let (writer, thread) = mailroom::store::writer::spawn(
        store.clone(),
        Arc::new(settings.policy.reg_format.clone()),
        settings.config.registration.duplicate_window,
    )
    .expect("writer starts");
    let intake = Intake::new(store.keys.clone(), writer, settings.policy.clone(), None, Directory::default());
    (store, intake, thread)
}

/// Recomputes the audit chain from the rows (as `mailroom audit verify` does): (entries, actions).
async fn verify_chain(store: &Store, url: &str) -> (usize, Vec<String>) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows =
        sqlx::query("SELECT id, at, actor, action, object, detail, prev_hash, hash FROM audit ORDER BY id").fetch_all(&pool).await.unwrap();
    let mut prev = GENESIS.to_vec();
    let mut actions = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<i64, _>(0), i as i64 + 1, "audit ids consecutive from 1");
        let entry = AuditEntry { at: row.get(1), actor: row.get(2), action: row.get(3), object: row.get(4), detail: row.get(5) };
        assert_eq!(row.get::<Vec<u8>, _>(6), prev, "entry {} links to the one before", i + 1);
        let hash = chain_hash(&store.keys, &prev, &entry);
        assert_eq!(row.get::<Vec<u8>, _>(7), hash, "entry {} hashes to what is stored", i + 1);
        prev = hash;
        actions.push(entry.action);
    }
    pool.close().await;
    (rows.len(), actions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_in_process_nodes_number_gap_free_and_chain_the_audit_log() {
    const SENDERS: usize = 24;
    const EACH: usize = 10;
    let pg = PgCluster::start();
    let url = pg.database("inproc");
    let dir = tempfile::tempdir().unwrap();
    let (store_a, intake_a, thread_a) = in_process_node(&url, dir.path(), "node-a").await;
    let (store_b, intake_b, thread_b) = in_process_node(&url, dir.path(), "node-b").await;
    let intakes = [Arc::new(intake_a), Arc::new(intake_b)];

    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let intake = intakes[sender % 2].clone();
        tasks.push(tokio::spawn(async move {
            let envelope = envelope(&format!("customer{sender}@client.example.org"));
            let mut numbers = Vec::new();
            for m in 0..EACH {
                let content = format!(
                    "From: <customer{sender}@client.example.org>\r\nTo: support@example.com\r\nSubject: pg {sender}/{m}\r\nMessage-ID: <{}@client.example.org>\r\n\r\n{}\r\n",
                    unique_token("mid-"),
                    unique_token("body-")
                );
                match intake.register(&envelope, content.into_bytes()).await.expect("registered") {
                    Outcome::Registered(number) => numbers.push(number),
                    Outcome::Duplicate(number) => panic!("a new message was taken for a retry of {number}"),
                }
            }
            numbers
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap().into_iter().map(|number| (number, 0)));
    }
    let n = SENDERS * EACH;
    assert_eq!(acked.len(), n);
    assert_stored(&pg, "inproc", &acked);
    // One acknowledgement per sender within ack_window, although the sender's messages went to
    // both nodes' writers: the sequencer lock serialises the check across nodes.
    assert_eq!(
        pg.sql("inproc", "SELECT count(*), count(DISTINCT rcpt_idx) FROM outbox WHERE kind = 'ack'"),
        format!("{SENDERS}|{SENDERS}")
    );
    assert_eq!(pg.sql("inproc", "SELECT count(*) FROM cases"), n.to_string(), "each new message opened its case");

    let (entries, actions) = verify_chain(&store_a, &url).await;
    assert_eq!(actions.iter().filter(|a| *a == "message.registered").count(), n, "{actions:?}");
    assert!(entries >= n);

    // A retry through the other node finds the message and gets its number.
    let envelope = envelope("retry@client.example.org");
    let content =
        b"From: <retry@client.example.org>\r\nSubject: again\r\nMessage-ID: <retry-1@client.example.org>\r\n\r\nhello\r\n".to_vec();
    let Outcome::Registered(first) = intakes[0].register(&envelope, content.clone()).await.unwrap() else { panic!("new") };
    assert_eq!(intakes[1].register(&envelope, content).await.unwrap(), Outcome::Duplicate(first.clone()));
    assert_eq!(pg.sql("inproc", &format!("SELECT duplicate_count FROM messages WHERE number = '{first}'")), "1");
    let (_, actions) = verify_chain(&store_b, &url).await;
    assert_eq!(actions.last().map(String::as_str), Some("message.duplicate"));

    drop(intakes);
    for thread in [thread_a, thread_b] {
        tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
    }
    store_a.close().await;
    store_b.close().await;
}

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 25;

/// A node of `url`, its key file shared at `key_file` (every node needs the same master key).
fn node(url: &str, key_file: &std::path::Path, name: &str) -> Server {
    Server::start(Opts {
        postgres_url: Some(url.to_string()),
        master_key_file: Some(key_file.to_str().unwrap().to_string()),
        node: Some(name.to_string()),
        ..Default::default()
    })
}

/// `CLIENTS` concurrent clients, client `i` delivering `PER_CLIENT` messages over one connection
/// to `targets[i % targets.len()]`; the numbers of the 250s, with the node each came from.
fn deliver(targets: &[&Server]) -> Vec<(String, usize)> {
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let target = i % targets.len();
                let server = targets[target];
                scope.spawn(move || {
                    let mut c = server.smtp_session();
                    c.set_read_timeout(Duration::from_secs(30));
                    (0..PER_CLIENT)
                        .map(|m| {
                            let content = simple_message(&format!("pg ingest {i}/{m}"), &unique_token("body-"));
                            (c.send_message("customer@client.example.org", &["support@example.com"], &content), target)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().expect("client thread")).collect()
    })
}

/// What the promises say about the database after `acked`: each number stored once, sequences
/// 1..=N, message ids 1..=N in the same order (so IMAP UIDs follow registration order), one
/// `message.registered` audit entry each, and the chain's rows consecutive and linked.
fn assert_stored(pg: &PgCluster, db: &str, acked: &[(String, usize)]) {
    let n = acked.len();
    let acked: BTreeSet<&str> = acked.iter().map(|(number, _)| number.as_str()).collect();
    assert_eq!(acked.len(), n, "every 250 names a different number");
    let stored = pg.sql(db, "SELECT number FROM messages ORDER BY reg_seq");
    let stored: Vec<&str> = stored.lines().collect();
    assert_eq!(stored.len(), n, "exactly the acknowledged messages are stored");
    assert_eq!(stored.iter().copied().collect::<BTreeSet<_>>(), acked, "every acknowledged number is in the database");
    let seqs: Vec<u64> = stored.iter().map(|number| parse_number(number).seq).collect();
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>(), "numbers gap-free from 1");
    assert_eq!(
        pg.sql(db, "SELECT count(*), min(id), max(id), count(*) FILTER (WHERE id <> reg_seq) FROM messages"),
        format!("{n}|1|{n}|0"),
        "message ids gap-free and in registration order"
    );
    assert_eq!(pg.sql(db, "SELECT count(*) FROM message_blobs"), n.to_string(), "each message has its sealed body");
    assert_eq!(pg.sql(db, "SELECT count(*) FROM audit WHERE action = 'message.registered'"), n.to_string());
    assert_eq!(
        pg.sql(
            db,
            "SELECT count(*), min(id), max(id),
                    count(*) FILTER (WHERE prev_hash IS DISTINCT FROM (SELECT p.hash FROM audit p WHERE p.id = audit.id - 1) AND id > 1)
             FROM audit"
        ),
        {
            let entries: usize = pg.sql(db, "SELECT count(*) FROM audit").parse().unwrap();
            format!("{entries}|1|{entries}|0")
        },
        "audit ids consecutive, each entry linked to the one before"
    );
    assert_eq!(pg.sql(db, "SELECT last_seq FROM reg_counters"), n.to_string(), "the counter names the last number, nothing reserved");
}

#[test]
fn concurrent_smtp_clients_on_one_postgres_node() {
    let pg = PgCluster::start();
    // A password in the URL (the test cluster trusts loopback and never asks for it) is never logged.
    let url = pg.database("ingest").replacen("postgres@", "postgres:s3cret-pw@", 1);
    let keys = tempfile::tempdir().unwrap();
    let server = node(&url, &keys.path().join("master.key"), "node-a");

    let acked = deliver(&[&server]);
    assert_eq!(acked.len(), CLIENTS * PER_CLIENT);
    assert_stored(&pg, "ingest", &acked);
    assert_eq!(pg.sql("ingest", "SHOW synchronous_commit"), "on");
    let names = pg.sql("ingest", "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = 'ingest' ORDER BY 1");
    assert!(names.lines().any(|n| n == "node-a"), "the node's connections carry its name: {names:?}");
    // Retry de-duplication runs in the PostgreSQL batch too: the same message again gets its
    // first number and stores nothing.
    let content = simple_message("sent twice", "the sender did not see our 250");
    let mut c = server.smtp_session();
    let first = c.send_message("customer@client.example.org", &["support@example.com"], &content);
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(&data_wire(&content));
    let again = c.reply();
    assert_eq!(again.line(), format!("250 2.0.0 Registered {first} (duplicate, not stored again)"), "a retry gets the original number");
    assert_eq!(pg.sql("ingest", &format!("SELECT duplicate_count FROM messages WHERE number = '{first}'")), "1");
    assert_eq!(pg.sql("ingest", "SELECT count(*) FROM messages"), (CLIENTS * PER_CLIENT + 1).to_string());
    let log = server.log_text();
    assert!(log.contains("PostgreSQL connected database=postgres://postgres:***@127.0.0.1:"), "{log}");
    assert!(!log.contains("s3cret-pw"), "{log}");
    assert_audit_verifies(&server, CLIENTS * PER_CLIENT + 2);
}

#[test]
fn two_nodes_on_one_database_number_gap_free_across_both() {
    let pg = PgCluster::start();
    let url = pg.database("shared");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    // The first node creates the key file and the schema; the second starts on both.
    let a = node(&url, &key_file, "node-a");
    let b = node(&url, &key_file, "node-b");

    let acked = deliver(&[&a, &b]);
    assert_eq!(acked.len(), CLIENTS * PER_CLIENT);
    for target in 0..2 {
        assert_eq!(acked.iter().filter(|(_, t)| *t == target).count(), CLIENTS / 2 * PER_CLIENT, "both nodes took mail");
    }
    assert_stored(&pg, "shared", &acked);
    let names = pg.sql("shared", "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = 'shared' ORDER BY 1");
    for name in ["node-a", "node-b"] {
        assert!(names.lines().any(|n| n == name), "{name} is connected under its name: {names:?}");
    }
    // Each message names the node that took it in our Received header (read through the other).
    for (number, target) in [acked.iter().find(|(_, t)| *t == 0).unwrap(), acked.iter().find(|(_, t)| *t == 1).unwrap()] {
        let raw = [&b, &a][*target].show_message(number);
        let (received, _) = split_received(&raw);
        let received = String::from_utf8_lossy(received);
        let node = ["node-a", "node-b"][*target];
        assert!(received.contains(&format!("by {HOST} (mailroom {node}) with ESMTP")), "{number} from {node}: {received}");
    }
    // One chain across both nodes, checked through either.
    assert_audit_verifies(&a, CLIENTS * PER_CLIENT);
    assert_audit_verifies(&b, CLIENTS * PER_CLIENT);
}

/// A COMMIT whose wait for the synchronous standby is cancelled returns success with a WARNING
/// (committed on the primary only), and one whose connection is lost has an unknown outcome: the
/// batch must count as failed (451), and the sender's retry then finds the stored message and
/// gets its number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_with_a_cancelled_standby_wait_is_not_acknowledged() {
    let pg = PgCluster::start();
    let url = pg.database("syncwait");
    let dir = tempfile::tempdir().unwrap();
    let (store, intake, thread) = in_process_node(&url, dir.path(), "node-a").await;
    let envelope = envelope("customer@client.example.org");
    let message = |n: u32| numbered_message("sync", n);
    assert!(matches!(intake.register(&envelope, message(1)).await.unwrap(), Outcome::Registered(_)));

    let intake = Arc::new(intake);
    // The wait cancelled (COMMIT returns with a WARNING), then the connection killed during the
    // wait (the outcome cannot be known): neither is acknowledged; the retry gets the number.
    for (n, stop) in [(2, "pg_cancel_backend"), (3, "pg_terminate_backend")] {
        // A synchronous standby that never connects: every COMMIT waits for it.
        pg.sql("postgres", "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (nobody)'");
        pg.sql("postgres", "SELECT pg_reload_conf()");
        // The reload reaches the postmaster, then each backend (the writer's pooled one too)
        // before its next command: wait for the first, give the second a moment.
        pg.wait_for("postgres", "SHOW synchronous_standby_names", |v| v == "ANY 1 (nobody)", "the reload");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let waiting = {
            let (intake, envelope) = (intake.clone(), envelope.clone());
            tokio::spawn(async move { intake.register(&envelope, message(n)).await })
        };
        pg.wait_for(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND application_name = 'node-a-writer'",
            |count| count == "1",
            "the writer's COMMIT to wait for the standby",
        );
        pg.sql("postgres", &format!("SELECT {stop}(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"));
        let answer = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the stopped COMMIT returns").unwrap();
        let error = answer.expect_err("a COMMIT of unknown durability is not acknowledged").to_string();
        if stop == "pg_cancel_backend" {
            assert!(error.contains("durability unknown"), "{error}");
        }
        assert_eq!(pg.sql("syncwait", "SELECT count(*) FROM messages"), n.to_string(), "committed on the primary nevertheless");

        // The sender retries once the standby question is settled: same message, stored number.
        pg.sql("postgres", "ALTER SYSTEM RESET synchronous_standby_names");
        pg.sql("postgres", "SELECT pg_reload_conf()");
        let stored = pg.sql("syncwait", "SELECT number FROM messages ORDER BY id DESC LIMIT 1");
        assert_eq!(intake.register(&envelope, message(n)).await.unwrap(), Outcome::Duplicate(stored), "{stop}");
    }

    drop(intake);
    tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
    store.close().await;
}

/// One `curl` POST of JSON with a bearer token (or none); the status code.
fn post_json(base: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "90", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: application/json"]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.args(["--data-binary", body]).arg(format!("{base}{path}")).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// The writer commits through a connection of its own (`<node>-writer`): while staff requests
/// hold every pooled connection, each waiting for the sequencer lock that an outside session
/// keeps for longer than a pooled connection may be waited for, a delivery still gets its 250
/// once the lock is free. Through the shared pool it waited 10 s for a connection and got 451.
#[test]
fn a_delivery_never_waits_for_a_pooled_connection() {
    let pg = PgCluster::start();
    let url = pg.database("pool");
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(Opts {
        postgres_url: Some(url.clone()),
        master_key_file: Some(keys.path().join("master.key").to_str().unwrap().to_string()),
        node: Some("node-a".to_string()),
        extra_toml: "[[roles]]\nname = \"support-agent\"\ngrants = { support = [\"read\", \"act\"] }\n".to_string(),
        ..Default::default()
    });
    server.add_user("anna", "correct horse battery", &["support-agent"]);
    let mut c = server.smtp_session();
    c.send_message("customer@client.example.org", &["support@example.com"], &simple_message("first", "opens a case"));
    let case = pg.sql("pool", "SELECT case_id FROM messages");
    let (status, login) =
        post_json(&server.http_url(), "/api/login", None, r#"{"user":"anna","password":"correct horse battery","mode":"bearer"}"#);
    assert_eq!(status, 200, "{login}");
    let token = serde_json::from_str::<serde_json::Value>(&login).unwrap()["token"].as_str().unwrap().to_string();
    let held = Duration::from_secs(14);
    let waiting_on_lock =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'pool' AND application_name = 'node-a' AND wait_event_type = 'Lock'";
    std::thread::scope(|scope| {
        let outside = scope.spawn(|| {
            pg.sql("pool", &format!("BEGIN; SELECT id FROM sequencer WHERE id = 1 FOR UPDATE; SELECT pg_sleep({}); COMMIT", held.as_secs()))
        });
        pg.wait_for(
            "pool",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()",
            |n| n == "1",
            "the outside lock",
        );
        let started = std::time::Instant::now();
        let notes: Vec<_> = (0..24)
            .map(|i| {
                let (base, token, case) = (server.http_url(), token.clone(), case.clone());
                scope.spawn(move || {
                    post_json(&base, &format!("/api/cases/{case}/notes"), Some(&token), &format!(r#"{{"text":"note {i}"}}"#)).0
                })
            })
            .collect();
        pg.wait_for("pool", waiting_on_lock, |n| n.parse::<u32>().unwrap() >= 16, "every pooled connection waiting on the lock");
        let mut c = server.smtp_session();
        c.set_read_timeout(Duration::from_secs(60));
        let number =
            c.send_message("customer@client.example.org", &["support@example.com"], &simple_message("second", "while the pool is taken"));
        assert!(started.elapsed() > Duration::from_secs(10), "the pool stayed exhausted past its acquire timeout");
        assert_eq!(pg.sql("pool", &format!("SELECT count(*) FROM messages WHERE number = '{number}'")), "1");
        outside.join().unwrap();
        let statuses: Vec<u16> = notes.into_iter().map(|n| n.join().unwrap()).collect();
        assert!(statuses.contains(&200), "staff requests went through too: {statuses:?}");
    });
    let names = pg.sql("pool", "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = 'pool' ORDER BY 1");
    assert!(names.lines().any(|n| n == "node-a-writer"), "{names:?}");
}

/// A batch whose connection is lost in a statement before COMMIT (here: terminated while its
/// INSERT waits for a table lock) fails with 451 like any failed batch, and the writer lives on:
/// the next message is registered. (The writer runs on a thread of its own, where dropping the
/// failed transaction's pooled connection needs the runtime: sqlx spawns a task there to return
/// it to the pool, and outside the runtime that panicked and killed the writer, leaving the node
/// answering 451 "the store is shutting down" to every message until restarted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_connection_is_lost_before_commit_fails_and_the_writer_lives_on() {
    let pg = PgCluster::start();
    let url = pg.database("lostconn");
    let dir = tempfile::tempdir().unwrap();
    let (store, intake, thread) = in_process_node(&url, dir.path(), "node-a").await;
    let envelope = envelope("customer@client.example.org");
    let message = |n: u32| numbered_message("lost", n);
    assert!(matches!(intake.register(&envelope, message(1)).await.unwrap(), Outcome::Registered(_)));

    // Another session holds message_blobs: the writer's next batch waits in its INSERT.
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    let mut lock = other.begin().await.unwrap();
    sqlx::query("LOCK TABLE message_blobs IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let intake = Arc::new(intake);
    let waiting = {
        let (intake, envelope) = (intake.clone(), envelope.clone());
        tokio::spawn(async move { intake.register(&envelope, message(2)).await })
    };
    let blocked = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'node-a-writer'";
    pg.wait_for("postgres", blocked, |count| count == "1", "the writer's batch to wait for the table lock");
    pg.sql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'node-a-writer'",
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the failed batch answers").unwrap();
    let error = answer.expect_err("a batch that failed is not acknowledged").to_string();
    assert!(error.contains("rolled back"), "the batch failed, the writer did not: {error}");
    lock.rollback().await.unwrap();

    let next = tokio::time::timeout(Duration::from_secs(10), intake.register(&envelope, message(3))).await.expect("the writer answers");
    assert!(matches!(next, Ok(Outcome::Registered(_))), "the writer lives on: {next:?}");
    assert_eq!(pg.sql("lostconn", "SELECT count(*) FROM messages"), "2", "the failed batch stored nothing");

    other.close().await;
    drop(intake);
    tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
    store.close().await;
}
