//! Two nodes on one PostgreSQL database ([`PgCluster`]), one of them killed with SIGKILL again and
//! again while SMTP clients keep sending to both ([`Load`]: every 250 recorded; a refused or cut
//! connection is not counted and the client moves to the other node). The other node serves
//! throughout. At the end: every acknowledged number is stored once with exactly the bytes sent,
//! the numbers are gap-free (none issued without a stored message), no message is half-stored,
//! and the audit chain verifies. Also: the surviving node's database connections terminated
//! under load (it serves on), and the session-purge lease passing from a killed node to the other.
//!
//! PostgreSQL pass only (see [`postgres_pass_only`]).

mod common;

use common::*;
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const KILLS: usize = 4;
/// Each registration also seals its case's tags (a rule tags every case): a kill must never
/// leave one without the other.
const TAGGING_RULE: &str = "[[rules]]\nname = \"tag everything\"\nsize_over = 0\ntags = [\"killed-node\"]\ncontinue = true\n";

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

#[test]
fn killing_one_of_two_nodes_mid_load_loses_nothing_and_leaves_no_gap() {
    if postgres_pass_only("killing_one_of_two_nodes_mid_load_loses_nothing_and_leaves_no_gap") {
        return;
    }
    let started = Instant::now();
    let pg = PgCluster::start();
    let url = pg.database("kill");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let mut a = start_node(&url, &key_file, "node-a", TAGGING_RULE);
    let b = start_node(&url, &key_file, "node-b", TAGGING_RULE);
    let load = Load::start(vec![a.smtp_addr(), b.smtp_addr()], CLIENTS, Duration::from_millis(50));

    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("pg_kill seed {seed}");
    let mut last_up = Instant::now();
    for kill in 1..=KILLS {
        std::thread::sleep(Duration::from_millis(400 + xorshift(&mut seed) % 1100));
        let acked_before = load.acked().len();
        a.kill9();
        let down = Instant::now();
        // Long enough that node-b must carry the load alone for a while.
        std::thread::sleep(Duration::from_millis(300));
        a.restart();
        last_up = Instant::now();
        load.retarget(0, a.smtp_addr());
        let by_b = load.acked_by(1, down, Some(last_up));
        eprintln!(
            "kill #{kill}: {acked_before} acknowledged before; node-a down {:?}, node-b acknowledged {by_b} meanwhile",
            last_up - down
        );
        assert!(by_b > 0, "node-b acknowledged nothing while node-a was down (kill #{kill})");
    }
    assert!(load.wait_for_acks(0, last_up, 5, Duration::from_secs(10)), "the restarted node-a takes mail again");
    // node-b's database connections cut under it (as by a network blip or an admin): the batches
    // in flight fail (451), its writer and listener carry on with new connections.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        pg.sql("kill", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'node-b'");
    }
    let cut = Instant::now();
    assert!(load.wait_for_acks(1, cut, 5, Duration::from_secs(10)), "node-b takes mail again after its connections were cut");
    load.stop();

    let acked = load.acked();
    let failures = load.failures();
    eprintln!(
        "load phase {:?}: {} attempts, {} acknowledged ({} by node-a, {} by node-b), {} not acknowledged",
        started.elapsed(),
        load.attempts(),
        acked.len(),
        acked.iter().filter(|a| a.node == 0).count(),
        acked.iter().filter(|a| a.node == 1).count(),
        failures.len()
    );
    assert!(acked.len() >= 100, "too little load got through to make the test meaningful: {}", acked.len());
    let permanent: Vec<&Failure> = failures.iter().filter(|f| f.is_permanent()).collect();
    assert!(permanent.is_empty(), "a sender was told to give up: {permanent:?}");

    // One more SIGKILL with nothing running; then read the store through the node that served on.
    a.kill9();
    let stored = load.verify_stored(&b);
    assert_rows_consistent(&b, stored);
    assert_eq!(b.sql("SELECT count(*) FROM cases WHERE tags_ct IS NULL"), "0", "every case's tags sealed with its message");
    let entries = assert_audit_verifies(&b, stored);
    eprintln!(
        "verified {stored} stored messages ({} acknowledged), {entries} audit entries, in {:?} total",
        acked.len(),
        started.elapsed()
    );
}

/// The session purge is a singleton job: node-a holds its lease and renews it each period; killed,
/// it renews no more, and node-b takes the job over once the lease has expired, not before.
#[test]
fn a_killed_nodes_session_purge_lease_passes_to_the_other_node_once_expired() {
    if postgres_pass_only("a_killed_nodes_session_purge_lease_passes_to_the_other_node_once_expired") {
        return;
    }
    let pg = PgCluster::start();
    let url = pg.database("lease");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    // Purge every second: the lease lasts five, so a takeover is due within about six.
    let fast_purge = || Opts { server_extra: "session_purge_every = \"1s\"".into(), ..Default::default() };
    let mut a = start_node_with(&url, &key_file, "node-a", fast_purge());
    let holder_a = format!("node-a/{}", a.pid());
    let lease = "SELECT holder || ' ' || until FROM leases WHERE name = 'session-purge'";
    let held = |text: &str, holder: &str| text.split(' ').next() == Some(holder);
    let first = pg.wait_for("lease", lease, |t| held(t, &holder_a), "node-a to take the purge lease");
    let b = start_node_with(&url, &key_file, "node-b", fast_purge());
    let holder_b = format!("node-b/{}", b.pid());

    // node-b starts and tries at its first tick and each second after; node-a keeps renewing.
    std::thread::sleep(Duration::from_millis(2500));
    let renewed = pg.sql("lease", lease);
    assert!(held(&renewed, &holder_a), "the live holder keeps its lease: {renewed} (was {first})");
    let until = |text: &str| -> i64 { text.split(' ').nth(1).unwrap().parse().unwrap() };
    assert!(until(&renewed) > until(&first), "renewed each period: {renewed} after {first}");

    a.kill9();
    let killed = Instant::now();
    let left = until(&pg.sql("lease", lease));
    let taken = pg.wait_for("lease", lease, |t| held(t, &holder_b), "node-b to take the lease over");
    let took = killed.elapsed();
    // node-b's lease runs five periods from the moment it took it: not before node-a's ran out.
    let taken_at = until(&taken) - 5_000;
    eprintln!("node-a killed with {left} on its lease; node-b took it {took:?} later (at {taken_at})");
    assert!(taken_at >= left, "taken over at {taken_at}, before node-a's lease ran out at {left}");
    assert!(took < Duration::from_secs(7), "taken over within about six periods: {took:?}");
    // node-b renews it from now on.
    std::thread::sleep(Duration::from_millis(1500));
    let later = pg.sql("lease", lease);
    assert!(held(&later, &holder_b) && until(&later) > until(&taken), "node-b renews: {later} after {taken}");
}
