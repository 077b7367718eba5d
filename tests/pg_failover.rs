//! Database failover under load: two nodes on a PostgreSQL primary with a synchronous streaming
//! standby (`pg_basebackup -R`, `synchronous_standby_names = 'ANY 1 (s1)'`), SMTP clients sending
//! to both ([`Load`]: every 250 recorded). The primary dies (`pg_ctl -m immediate`), the standby
//! is promoted, and each node is RESTARTED with the standby's URL (node-b killed, node-a stopped
//! cleanly, which first answers the sessions waiting for the dead database): mailroom's PostgreSQL driver
//! (sqlx 0.9) takes one host per URL and ignores `target_session_attrs`, so a multi-host URL
//! cannot move it by itself; a restart (or Patroni's virtual IP / a proxy in front) is the answer.
//!
//! Every acknowledged message is on the promoted standby (a 250 means "on two machines"), the
//! numbers are gap-free, nothing is half-stored, the audit chain verifies, and new mail is
//! accepted after the switch. During the outage the clients saw temporary failures only (4xx or
//! a refused/cut connection), never a 5xx and never a 250 for something that is not stored.
//!
//! PostgreSQL pass only (see [`postgres_pass_only`]).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;

#[test]
fn promoting_the_synchronous_standby_loses_no_acknowledged_message() {
    if postgres_pass_only("promoting_the_synchronous_standby_loses_no_acknowledged_message") {
        return;
    }
    let started = Instant::now();
    let mut primary = PgCluster::start();
    let primary_url = primary.database("failover");
    let standby = PgCluster::standby_of(&primary, "s1");
    primary.sync_standby("s1");
    let standby_url = primary_url.replacen(&format!(":{}/", primary.port()), &format!(":{}/", standby.port()), 1);
    assert_ne!(standby_url, primary_url);

    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let mut nodes = [start_node(&primary_url, &key_file, "node-a", ""), start_node(&primary_url, &key_file, "node-b", "")];
    // Paced so that the final check (one `message show` per message) stays short.
    let load = Load::start(nodes.iter().map(Server::smtp_addr).collect(), CLIENTS, Duration::from_millis(100));
    let since_start = Instant::now();
    for node in 0..2 {
        assert!(load.wait_for_acks(node, since_start, 20, Duration::from_secs(20)), "node {node} takes mail on the primary");
    }
    std::thread::sleep(Duration::from_millis(500));

    let acked_before = load.acked().len();
    primary.stop_immediate();
    let down = Instant::now();
    // The outage as senders see it, before anyone has promoted anything.
    std::thread::sleep(Duration::from_millis(1500));
    standby.promote();
    let promoted = Instant::now();
    eprintln!("primary killed with {acked_before} acknowledged; standby promoted {:?} later", promoted - down);

    // node-b as after a crash or systemd's stop timeout (SIGKILL), node-a by a clean stop
    // (SIGTERM: it first answers the sessions waiting for the dead database, 451).
    let mut restarted_at = [promoted; 2];
    for i in [1, 0] {
        let node = &mut nodes[i];
        node.point_at(&standby_url);
        let stopping = Instant::now();
        if i == 1 {
            node.kill9();
        } else {
            let status = node.terminate_and_wait();
            assert!(status.success(), "a clean stop with the database gone: {status}");
        }
        eprintln!("{}: stopped in {:?} ({})", ["node-a", "node-b"][i], stopping.elapsed(), ["SIGTERM", "SIGKILL"][i]);
        node.restart();
        restarted_at[i] = Instant::now();
        load.retarget(i, node.smtp_addr());
    }
    for (i, since) in restarted_at.iter().enumerate() {
        assert!(load.wait_for_acks(i, *since, 20, Duration::from_secs(20)), "node {i} takes mail on the promoted standby");
        let first = load.acked().iter().filter(|a| a.node == i && a.at >= *since).map(|a| a.at).min().unwrap();
        eprintln!(
            "{}: restarted on the standby {:?} after the promotion, first 250 {:?} after its restart",
            ["node-a", "node-b"][i],
            *since - promoted,
            first - *since
        );
    }
    let restarted = restarted_at[0].max(restarted_at[1]);
    let first_after = load.acked().iter().filter(|a| a.at >= promoted).map(|a| a.at).min().unwrap();
    eprintln!("first 250 after the promotion {:?} after it ({:?} after the primary died)", first_after - promoted, first_after - down);
    load.stop();

    let acked = load.acked();
    let failures = load.failures();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for failure in &failures {
        // The reply code and enhanced status, or the kind of connection failure.
        let kind: String = failure.what.split([':', ' ']).take(2).collect::<Vec<_>>().join(" ");
        *seen.entry(kind).or_default() += 1;
    }
    eprintln!(
        "load phase {:?}: {} attempts, {} acknowledged ({} between the primary's death and the promotion), not acknowledged: {seen:?}",
        started.elapsed(),
        load.attempts(),
        acked.len(),
        acked.iter().filter(|a| a.at >= down && a.at < promoted).count()
    );
    let permanent: Vec<&Failure> = failures.iter().filter(|f| f.is_permanent()).collect();
    assert!(permanent.is_empty(), "a sender was told to give up during the failover: {permanent:?}");
    // Sessions waiting for the dead primary get their answer once taking a connection times out.
    assert!(failures.iter().any(|f| f.at >= down && f.at < restarted), "the outage was seen by the senders");
    assert_eq!(
        acked.iter().filter(|a| a.at >= down + Duration::from_millis(100) && a.at < promoted).count(),
        0,
        "no 250 without a database"
    );
    assert!(acked.iter().filter(|a| a.at >= restarted).count() >= 40, "new mail after the switch");

    // Read on the promoted standby (both nodes now point at it): no acknowledged message missing.
    let b = &nodes[1];
    assert_eq!(b.sql("SELECT pg_is_in_recovery()"), "f", "the nodes read the promoted standby");
    let stored = load.verify_stored(b);
    assert_rows_consistent(b, stored);
    let entries = assert_audit_verifies(b, stored);
    eprintln!(
        "verified {stored} stored messages ({} acknowledged), {entries} audit entries, in {:?} total",
        acked.len(),
        started.elapsed()
    );
}
