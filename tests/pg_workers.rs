//! Workers across nodes on PostgreSQL ([`PgCluster`]):
//!
//! * Two server processes (nodes) on one database, both running the outbox worker against one
//!   capture SMTP server, while customers deliver to both: every acknowledgement arrives exactly
//!   once (claims take rows with `FOR UPDATE SKIP LOCKED`; no row goes to two workers).
//! * The claim itself, by two stores ("nodes") in this process: disjoint rows under concurrent
//!   claims, and a row another transaction has locked is skipped, not waited for.
//! * Leases for singleton jobs, taken by two stores ("nodes") in this process on one database:
//!   never two holders at once, an expired lease is taken over.
//! * The SLA sweep on two nodes: one holds its lease, each breach is escalated and told once, and
//!   the other node takes over when the holder stops.

mod common;

use common::*;
use mailroom::config::Settings;
use mailroom::store::Store;
use mailroom::store::leases;
use std::collections::BTreeMap;
use std::time::Duration;

const CLIENTS: usize = 6;
const PER_CLIENT: usize = 20;

/// A node of `url` (key file shared at `key_file`) whose outbox sends to `smarthost_port` in
/// small batches, polling often, so that both nodes' workers claim at the same time.
fn node(url: &str, key_file: &std::path::Path, name: &str, smarthost_port: u16) -> Server {
    Server::start(Opts {
        postgres_url: Some(url.to_string()),
        master_key_file: Some(key_file.to_str().unwrap().to_string()),
        node: Some(name.to_string()),
        extra_toml: format!(
            "[outbox]\nsmarthost = \"127.0.0.1:{smarthost_port}\"\ntls = \"none\"\npoll_interval = \"20ms\"\nbatch = 3\nack_window = \"1h\"\n"
        ),
        ..Default::default()
    })
}

/// A customer message from its own sender (one acknowledgement per sender and window).
fn customer_message(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nPlease help.\r\n",
        unique_token("mid-")
    )
    .into_bytes()
}

/// The registration number an acknowledgement's subject starts with (`Subject: [NUMBER] …`).
fn acked_number(data: &str) -> Option<String> {
    let subject = data.split("\r\n").find_map(|l| l.strip_prefix("Subject: "))?;
    Some(subject.strip_prefix('[')?.split_once(']')?.0.to_string())
}

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    let head = &data[..data.find("\r\n\r\n").unwrap_or(data.len())];
    head.split("\r\n").find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

#[test]
fn two_nodes_send_each_acknowledgement_once() {
    let pg = PgCluster::start();
    let url = pg.database("workers");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let (port, captured) = capture_smtp();
    let a = node(&url, &key_file, "node-a", port);
    let b = node(&url, &key_file, "node-b", port);

    // Concurrent customers, half on each node, each message from its own sender: number → sender.
    let sent: BTreeMap<String, String> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let server = [&a, &b][i % 2];
                scope.spawn(move || {
                    let mut c = server.smtp_session();
                    c.set_read_timeout(Duration::from_secs(30));
                    (0..PER_CLIENT)
                        .map(|m| {
                            let from = format!("customer-{i}-{m}@client.example.org");
                            let number =
                                c.send_message(&from, &["support@example.com"], &customer_message(&from, &format!("Order {i}/{m}")));
                            (number, from)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().expect("client thread")).collect()
    });
    let total = CLIENTS * PER_CLIENT;
    assert_eq!(sent.len(), total, "every 250 names its own number");

    // Wait until every row is sent, then a while longer: a second copy would arrive meanwhile.
    pg.wait_for("workers", "SELECT count(*) FROM outbox WHERE status = 'sent'", |n| n == total.to_string(), "every acknowledgement sent");
    std::thread::sleep(Duration::from_millis(1500));

    let mails = captured.lock().unwrap().clone();
    let mut by_number: BTreeMap<String, Vec<&Captured>> = BTreeMap::new();
    for mail in &mails {
        let number = acked_number(&mail.data).unwrap_or_else(|| panic!("an acknowledgement names its number:\n{}", mail.data));
        by_number.entry(number).or_default().push(mail);
    }
    let twice: Vec<&String> = by_number.iter().filter(|(_, m)| m.len() > 1).map(|(n, _)| n).collect();
    assert!(twice.is_empty(), "acknowledged more than once: {twice:?}");
    assert_eq!(mails.len(), total, "one acknowledgement per message");
    assert_eq!(by_number.keys().collect::<Vec<_>>(), sent.keys().collect::<Vec<_>>(), "each registration acknowledged");
    for (number, mails) in &by_number {
        assert_eq!(mails[0].to, vec![sent[number].clone()], "{number} acknowledged to its sender");
    }
    let message_ids: std::collections::BTreeSet<&str> = mails.iter().map(|m| header(&m.data, "Message-ID").expect("Message-ID")).collect();
    assert_eq!(message_ids.len(), total, "each acknowledgement is its own message");
    // Sent at the first attempt, none left claimed or pending.
    assert_eq!(pg.sql("workers", "SELECT status, count(*), max(attempts) FROM outbox GROUP BY status"), format!("sent|{total}|1"));
    drop((a, b));
}

/// A store ("node") on `url`, key file in `dir`, as a server would open it.
async fn store_of(url: &str, dir: &std::path::Path, node: &str) -> Store {
    let toml = format!(
        "[server]\nhostname = \"mx.example.com\"\nnode = \"{node}\"\n\n[storage]\ndatabase = \"{url}\"\n\n[mail]\ndomains = [\"example.com\"]\n\n\
         [[queues]]\nname = \"support\"\naddresses = [\"support@example.com\"]\n"
    );
    let settings = Settings::from_str("pg-node.toml", &toml, dir).expect("test config is valid");
    Store::open_as(settings.store_options(), node).await.expect("store opens on PostgreSQL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_hold_one_lease_at_once() {
    let pg = PgCluster::start();
    let url = pg.database("leases");
    let dir = tempfile::tempdir().unwrap();
    let a = store_of(&url, dir.path(), "node-a").await;
    let b = store_of(&url, dir.path(), "node-b").await;
    let now = mailroom::store::now_millis();

    // Both nodes race for fresh leases: exactly one wins each, the other sees the winner's.
    let mut wins = [0usize; 2];
    for round in 0..100 {
        let name = format!("job-{round}");
        let (got_a, got_b) =
            tokio::join!(leases::acquire(&a, &name, "node-a/1", now, 60_000), leases::acquire(&b, &name, "node-b/2", now, 60_000));
        let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
        assert!(got_a != got_b, "round {round}: exactly one holder (a {got_a}, b {got_b})");
        let winner = if got_a { "node-a/1" } else { "node-b/2" };
        wins[usize::from(got_b)] += 1;
        assert_eq!(leases::holder(&a, &name).await.unwrap(), Some((winner.to_string(), now + 60_000)));
        // While it runs, renewing works for its holder only.
        let (renew_a, renew_b) = tokio::join!(
            leases::acquire(&a, &name, "node-a/1", now + 1_000, 60_000),
            leases::acquire(&b, &name, "node-b/2", now + 1_000, 60_000)
        );
        assert_eq!((renew_a.unwrap(), renew_b.unwrap()), (got_a, got_b), "round {round}: the holder renews, the other waits");
    }
    eprintln!("lease races won: node-a {}, node-b {}", wins[0], wins[1]);

    // A holder that stopped renewing (a dead node) loses the lease once it has expired.
    assert!(leases::acquire(&a, "purge", "node-a/1", now, 500).await.unwrap());
    assert!(!leases::acquire(&b, "purge", "node-b/2", now + 499, 500).await.unwrap(), "still running");
    assert!(leases::acquire(&b, "purge", "node-b/2", now + 500, 500).await.unwrap(), "expired: taken over");
    assert!(!leases::acquire(&a, "purge", "node-a/1", now + 600, 500).await.unwrap(), "the old holder does not get it back");
    assert_eq!(leases::holder(&a, "purge").await.unwrap(), Some(("node-b/2".to_string(), now + 1_000)));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_on_two_nodes_take_disjoint_rows() {
    use mailroom::store::outbox;
    let pg = PgCluster::start();
    let url = pg.database("claims");
    let dir = tempfile::tempdir().unwrap();
    let a = store_of(&url, dir.path(), "node-a").await;
    let b = store_of(&url, dir.path(), "node-b").await;
    let mut queued = std::collections::BTreeSet::new();
    for i in 0..200 {
        queued.insert(outbox::enqueue(&a, None, "ack", "", &[format!("c{i}@client.example.org")], b"x").await.unwrap());
    }
    // Both nodes claim small batches at once until nothing is due: every row is taken by one.
    let drain = |store: Store| async move {
        let mut taken = Vec::new();
        loop {
            let now = mailroom::store::now_millis();
            let rows = outbox::claim(&store, now, now + 600_000, 5).await.unwrap();
            if rows.is_empty() && outbox::next_due(&store).await.unwrap().is_none_or(|due| due > now) {
                return taken;
            }
            taken.extend(rows.iter().map(|r| r.id));
        }
    };
    let (by_a, by_b) = tokio::join!(tokio::spawn(drain(a.clone())), tokio::spawn(drain(b.clone())));
    let (by_a, by_b) = (by_a.unwrap(), by_b.unwrap());
    eprintln!("claimed: node-a {}, node-b {}", by_a.len(), by_b.len());
    let mut all: Vec<i64> = by_a.iter().chain(&by_b).copied().collect();
    all.sort();
    let unique: std::collections::BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "no row claimed twice");
    assert_eq!(unique, queued, "every row claimed");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_skips_rows_another_node_has_locked_instead_of_waiting() {
    use mailroom::store::outbox;
    let pg = PgCluster::start();
    let url = pg.database("skiplocked");
    let dir = tempfile::tempdir().unwrap();
    let a = store_of(&url, dir.path(), "node-a").await;
    let first = outbox::enqueue(&a, None, "ack", "", &["c1@client.example.org"], b"x").await.unwrap();
    let second = outbox::enqueue(&a, None, "ack", "", &["c2@client.example.org"], b"x").await.unwrap();
    // Another node's claim in progress: the oldest row locked in an open transaction.
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT id FROM outbox WHERE id = $1 FOR UPDATE").bind(first).execute(&mut *tx).await.unwrap();
    let now = mailroom::store::now_millis();
    let rows = tokio::time::timeout(Duration::from_secs(5), outbox::claim(&a, now, now + 600_000, 10))
        .await
        .expect("the claim does not wait for the locked row")
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![second], "the unlocked row is taken, the locked one skipped");
    tx.rollback().await.unwrap();
    let rows = outbox::claim(&a, now, now + 600_000, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![first], "once free, the skipped row is taken");
    other.close().await;
    a.close().await;
}

#[test]
fn the_session_purge_lease_is_held_by_one_node_and_released_when_it_stops() {
    let pg = PgCluster::start();
    let url = pg.database("purge");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let (port, _captured) = capture_smtp();
    let mut a = node(&url, &key_file, "node-a", port);
    let mut b = node(&url, &key_file, "node-b", port);
    // Each node purges at its first tick: whichever came first holds the lease, the other not.
    let row = pg.wait_for("purge", "SELECT holder FROM leases WHERE name = 'session-purge'", |h| !h.is_empty(), "the purge lease");
    let holders = [format!("node-a/{}", a.pid()), format!("node-b/{}", b.pid())];
    assert!(holders.contains(&row), "held by one node's process: {row:?}, nodes {holders:?}");
    let until: i64 = pg.sql("purge", "SELECT until FROM leases").parse().unwrap();
    let now = mailroom::store::now_millis();
    assert!(until > now + 200_000 && until <= now + 300_000, "held for its ttl: until {until}, now {now}");
    assert_eq!(pg.sql("purge", "SELECT count(*) FROM leases"), "1", "one row per job, whoever holds it");
    // Both nodes are past their first tick (every 200 ms): the other one asked and was refused.
    // (Stopping the holder sooner would let the other's first tick take the released lease.)
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pg.sql("purge", "SELECT holder FROM leases"), row, "the other node did not take a held lease");
    // A clean stop hands the lease back at once (another node need not wait for it to expire).
    let holder = if row == holders[0] { &mut a } else { &mut b };
    assert!(holder.terminate_and_wait().success());
    assert_eq!(pg.sql("purge", "SELECT holder, until FROM leases"), format!("{row}|0"));
}

/// Two nodes, both with `[escalation]`: the sweep runs on the one that holds the lease, every
/// overdue case is escalated and told to the supervisor once (one mark, one notification, one
/// mail per case), and when the holder stops the other node takes the lease over and handles the
/// cases that fall due after that.
#[test]
fn the_sla_sweep_runs_on_one_node_and_tells_each_breach_once() {
    const LENA: &str = "lena@staff.example.org";
    let pg = PgCluster::start();
    let url = pg.database("sla");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let (port, captured) = capture_smtp();
    let extra = format!(
        "[[roles]]\nname = \"support-lead\"\ngrants = {{ support = [\"read\", \"act\", \"supervise\"] }}\n\n\
         [intake]\nacknowledge = false\n\n\
         [sla]\nworking_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nhours = \"00:00-24:00\"\n\n\
         [escalation]\nsweep_every = \"1s\"\nbreach_priority = \"urgent\"\n\n\
         [outbox]\nsmarthost = \"127.0.0.1:{port}\"\ntls = \"none\"\npoll_interval = \"50ms\"\n"
    );
    let mut a = start_node(&url, &key_file, "node-a", &extra);
    let mut b = start_node(&url, &key_file, "node-b", &extra);
    a.add_user("lena", "correct-horse-battery-staple", &["support-lead"]);
    assert!(a.cli(&["user", "email", "lena", LENA]).status.success());

    // Overdue cases, delivered to both nodes.
    let overdue = |count: usize, tag: &str| -> Vec<String> {
        let numbers: Vec<String> = (0..count)
            .map(|i| {
                let node = if i % 2 == 0 { &a } else { &b };
                let from = format!("sla-{tag}-{i}@client.example.org");
                node.smtp_session().send_message(&from, &["support@example.com"], &customer_message(&from, &unique_token("Late ")))
            })
            .collect();
        let list = numbers.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",");
        let past = mailroom::store::now_millis() - 3_600_000;
        pg.sql("sla", &format!("UPDATE cases SET due_at = {past} WHERE opening_number IN ({list})"));
        numbers
    };
    let breaches = |n: usize| {
        pg.wait_for("sla", "SELECT count(*) FROM escalation_events WHERE kind = 'breach'", |c| c == n.to_string(), "the breaches")
    };
    let first = overdue(8, "a");
    breaches(first.len());
    let holder = pg.sql("sla", "SELECT holder FROM leases WHERE name = 'escalation'");
    let holders = [format!("node-a/{}", a.pid()), format!("node-b/{}", b.pid())];
    assert!(holders.contains(&holder), "one node's process holds the sweep's lease: {holder:?}");

    // The holder stops; the other node takes over (at once: a clean stop releases the lease).
    let (stopping, other) = if holder == holders[0] { (&mut a, &holders[1]) } else { (&mut b, &holders[0]) };
    assert!(stopping.terminate_and_wait().success());
    let running = if holder == holders[0] { &b } else { &a };
    let later: Vec<String> = {
        let from = "sla-later@client.example.org";
        let number = running.smtp_session().send_message(from, &["support@example.com"], &customer_message(from, &unique_token("Later ")));
        let past = mailroom::store::now_millis() - 3_600_000;
        pg.sql("sla", &format!("UPDATE cases SET due_at = {past} WHERE opening_number = '{number}'"));
        vec![number]
    };
    breaches(first.len() + later.len());
    pg.wait_for("sla", "SELECT holder FROM leases WHERE name = 'escalation'", |h| h == other, "the other node to hold the lease");

    // Each case once: one mark, one notification for lena, one mail to her, escalated once.
    let all: Vec<&String> = first.iter().chain(&later).collect();
    assert_eq!(pg.sql("sla", "SELECT count(*) FROM notifications WHERE kind = 'breach'"), all.len().to_string());
    assert_eq!(pg.sql("sla", "SELECT count(*) FROM cases WHERE escalated = 1 AND priority = 'urgent'"), all.len().to_string());
    let mails_for =
        |number: &str| captured.lock().unwrap().iter().filter(|m| m.to.iter().any(|r| r == LENA) && m.data.contains(number)).count();
    assert!(wait_until(Duration::from_secs(20), || all.iter().all(|n| mails_for(n) >= 1)), "a breach notice per case reaches lena");
    std::thread::sleep(Duration::from_secs(2));
    for number in &all {
        assert_eq!(mails_for(number), 1, "{number} was told once");
    }
    assert_eq!(pg.sql("sla", "SELECT count(*) FROM audit WHERE action = 'notification.create'"), all.len().to_string());
}
