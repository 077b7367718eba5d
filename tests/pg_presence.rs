//! Presence across nodes on PostgreSQL: a heartbeat on node A ("anna is viewing") shows on node
//! B's case page within 2 s, through a NOTIFY that B's listener (`node-b-listener`) hears and
//! forwards; a user who may not read the case's queue sees nothing of it; and after B's listener
//! connection was killed with `pg_terminate_backend`, B reconnects and hears A's heartbeats again.
//! Nothing else carries presence between nodes, so the test fails if the announce or the
//! forwarding is gone.
//!
//! PostgreSQL pass only (see [`postgres_pass_only`]).

mod common;

use common::*;
use std::time::{Duration, Instant};

const PW: &str = "correct-horse-battery-staple";
const DEADLINE: Duration = Duration::from_secs(2);
const LISTENER: &str = "node-b-listener";
const ROLES: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }
"#;

fn node(url: &str, key_file: &std::path::Path, name: &str) -> Server {
    // A short expiry, so the heartbeat seen after the listener came back is a new one.
    let opts =
        Opts { extra_toml: ROLES.into(), http_extra: "presence_expiry = \"3s\"\npresence_heartbeat = \"1s\"".into(), ..Default::default() };
    start_node_with(url, key_file, name, opts)
}

/// Reloads case `id` as `browser` until its "also here" line satisfies `want` (or `within` passes).
fn wait_for_line(browser: &CurlBrowser, id: i64, within: Duration, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let page = browser.get(&format!("/cases/{id}"));
        assert_eq!(page.status, 200, "{page:?}");
        let line = page.also_here();
        if want(&line) {
            return line;
        }
        assert!(Instant::now() < deadline, "not within {within:?}; the page says {line:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_colleague_on_another_node_shows_on_the_case_page_also_after_the_listener_was_killed() {
    if postgres_pass_only("a_colleague_on_another_node_shows_on_the_case_page_also_after_the_listener_was_killed") {
        return;
    }
    let pg = PgCluster::start();
    let url = pg.database("presence");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let a = node(&url, &key_file, "node-a");
    let b = node(&url, &key_file, "node-b");
    for user in ["anna", "bert"] {
        a.add_user(user, PW, &["support-agent"]);
    }
    a.add_user("sam", PW, &["sales-agent"]);
    let first_listener = pg.listener_pid("presence", LISTENER, None);

    let message = simple_message("Presence across nodes", &unique_token("body-"));
    let number = a.smtp_session().send_message("kim@customer.example", &["support@example.com"], &message);
    let id = a.sql_i64(&format!(
        "SELECT mc.case_id FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE m.number = {}",
        sql_quote(&number)
    ));

    // Anna opens the case on A and her page's heartbeat says "viewing".
    let (anna, _) = CurlBrowser::at_home(&a, "anna", PW);
    let (bert, _) = CurlBrowser::at_home(&b, "bert", PW);
    let (sam, sams_home) = CurlBrowser::at_home(&b, "sam", PW);
    let annas_page = anna.get(&format!("/cases/{id}"));
    assert_eq!(annas_page.status, 200, "{annas_page:?}");
    let beat = anna.post(&format!("/cases/{id}/presence"), &[("csrf", &annas_page.csrf()), ("kind", "viewing")]);
    assert_eq!(beat.status, 200, "{beat:?}");

    // Bert, on B, sees her.
    let line = wait_for_line(&bert, id, DEADLINE, |line| line.contains("anna is viewing"));
    assert!(!line.contains("bert"), "nobody is told about himself: {line}");
    // A's page shows bert in turn (B announces too).
    let annas_line = wait_for_line(&anna, id, DEADLINE, |line| line.contains("bert is viewing"));
    assert!(!annas_line.contains("anna"), "{annas_line}");

    // Sam may not read the support queue: on B, the case and its presence stay hidden.
    let sams = sam.get(&format!("/cases/{id}"));
    assert_eq!(sams.status, 404, "{sams:?}");
    assert!(!sams.body.contains("anna"), "{}", sams.body);
    let sams_beat = sam.post(&format!("/cases/{id}/presence"), &[("csrf", &sams_home.csrf()), ("kind", "viewing")]);
    assert_eq!(sams_beat.status, 404, "{sams_beat:?}");
    assert!(!sams_beat.body.contains("anna"), "{}", sams_beat.body);

    // Kill B's LISTEN connection, let anna's heartbeat expire on B, then a new one on A reaches B
    // once B has reconnected.
    let killed = pg.sql(
        "presence",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{LISTENER}' AND query LIKE 'LISTEN%'"),
    );
    assert_eq!(killed, "t", "exactly one listener connection, terminated");
    wait_for_line(&bert, id, Duration::from_secs(6), |line| !line.contains("anna"));
    let second_listener = pg.listener_pid("presence", LISTENER, Some(&first_listener));
    assert_ne!(second_listener, first_listener);
    let beat = anna.post(&format!("/cases/{id}/presence"), &[("csrf", &annas_page.csrf()), ("kind", "replying")]);
    assert_eq!(beat.status, 200, "{beat:?}");
    wait_for_line(&bert, id, Duration::from_secs(3), |line| line.contains("anna is replying"));

    let log = b.log_text();
    assert!(log.contains("other nodes' changes") && log.contains("reconnecting"), "B noticed and reconnected: {log}");
    for (name, node) in [("A", &a), ("B", &b)] {
        let log = node.log_text();
        assert!(!log.contains("kim@customer.example"), "node {name} logged an address: {log}");
    }
}
