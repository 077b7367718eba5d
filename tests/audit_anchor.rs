//! `mailroom audit anchor` and `audit verify --anchor FILE`: an anchor kept outside the database
//! reveals what the chain alone cannot (a cut-off tail, a rollback to an older state followed by
//! new activity, a forged anchor), naming the anchor's file and line; and, on PostgreSQL, an admin
//! command's connections are named after it in `pg_stat_activity`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const NODE: &str = "anchor-node";

fn server() -> Server {
    Server::start(Opts { node: Some(NODE.into()), ..Opts::default() })
}

fn deliver(s: &Server, count: usize) {
    let mut c = s.smtp_session();
    for i in 0..count {
        c.send_message("ana@customer.org", &["support@example.com"], &simple_message(&format!("anchor {i}"), "body"));
    }
}

/// `audit anchor` (with `extra` arguments): its one line.
fn anchor(s: &Server, extra: &[&str]) -> String {
    let out = s.cli(&[&["audit", "anchor"], extra].concat());
    assert!(out.status.success(), "audit anchor: {}", out.stderr);
    let text = out.stdout_str();
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    text.trim_end().to_string()
}

/// (id, hex MAC) of the newest audit entry.
fn head(s: &Server) -> (i64, String) {
    let id = s.sql_i64("SELECT MAX(id) FROM audit");
    (id, s.sql(&format!("SELECT {} FROM audit WHERE id = {id}", s.sql_hex("hash"))))
}

fn verify_with(s: &Server, file: &std::path::Path) -> CliOutput {
    s.cli(&["audit", "verify", "--anchor", file.to_str().unwrap()])
}

fn append(file: &std::path::Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file).unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn anchors_reveal_a_cut_tail_a_rollback_and_a_forged_head() {
    let s = server();
    deliver(&s, 3);
    let (first_id, first_head) = head(&s);
    let line = anchor(&s, &[]);
    let prefix = format!("audit-anchor id={first_id} head={first_head} taken=");
    assert!(line.starts_with(&prefix) && line.ends_with(&format!(" node={NODE}")), "{line}");
    let json: serde_json::Value = serde_json::from_str(&anchor(&s, &["--json"])).unwrap();
    assert_eq!(
        (json["id"].as_i64(), json["head"].as_str(), json["node"].as_str()),
        (Some(first_id), Some(first_head.as_str()), Some(NODE))
    );

    let file = s.root().join("anchors.log");
    append(&file, "# taken by cron on another host");
    append(&file, &line);
    append(&file, &json.to_string());
    deliver(&s, 2);
    let out = verify_with(&s, &file);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout_str().contains(&format!("2 anchors match (the latest at entry {first_id})")), "{}", out.stdout_str());

    let (second_id, second_head) = head(&s);
    assert!(second_id > first_id + 1);
    append(&file, &anchor(&s, &[])); // line 4
    assert!(verify_with(&s, &file).status.success());

    // Someone with database access cuts the log after the first anchor (as restoring an older
    // backup would): the rest still verifies on its own, the later anchor does not.
    s.sql(&format!("DELETE FROM audit WHERE id > {first_id}"));
    let plain = s.cli(&["audit", "verify"]);
    assert!(plain.status.success() && plain.stdout_str().contains(&format!("intact: {first_id} entries")), "{}", plain.stderr);
    let out = verify_with(&s, &file);
    let named = format!("anchor {}:4 (entry {second_id}, taken ", file.display());
    assert!(!out.status.success(), "{}", out.stdout_str());
    assert!(out.stderr.contains("1 of 3 anchors do not match"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&named) && out.stderr.contains(&format!("the log ends at entry {first_id}, so it was truncated")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(":2 (") && !out.stderr.contains(":3 ("), "the first anchors still match: {}", out.stderr);

    // New mail after the rollback fills the anchored ids again, with other MACs.
    deliver(&s, 3);
    assert!(head(&s).0 >= second_id && head(&s).1 != second_head);
    assert!(s.cli(&["audit", "verify"]).status.success(), "a rolled-back chain is intact on its own");
    let out = verify_with(&s, &file);
    assert!(!out.status.success() && out.stderr.contains(&named) && out.stderr.contains("so the log was rewritten"), "{}", out.stderr);

    // A forged MAC in an anchor line for an entry that exists.
    let forged = s.root().join("forged.log");
    let mut wrong = first_head.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    append(&forged, &format!("audit-anchor id={first_id} head={}", String::from_utf8(wrong).unwrap()));
    let out = verify_with(&s, &forged);
    assert!(!out.status.success() && out.stderr.contains(&format!("anchor {}:1 (entry {first_id})", forged.display())), "{}", out.stderr);
}

#[test]
fn a_malformed_anchor_file_is_named_with_its_line() {
    let s = server();
    deliver(&s, 1);
    let file = s.root().join("anchors.log");
    append(&file, &anchor(&s, &[]));
    append(&file, &format!("audit-anchor id=x head={}", "ab".repeat(32)));
    let out = verify_with(&s, &file);
    assert!(!out.status.success() && out.stderr.contains(&format!("{}:2: id \"x\" is not a number", file.display())), "{}", out.stderr);
    let empty = s.root().join("empty.log");
    append(&empty, "");
    let out = verify_with(&s, &empty);
    assert!(!out.status.success() && out.stderr.contains("no anchor lines"), "{}", out.stderr);
}

#[test]
fn an_admin_command_connects_to_postgresql_named_after_itself() {
    let s = server();
    let Database::Postgres(url) = s.database.clone() else {
        eprintln!("PostgreSQL only, skipped on SQLite: application_name");
        return;
    };
    // Hold a lock that makes the command wait while it is connected, then look at it.
    let mut locker = Command::new(pg_bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run psql");
    let mut locker_in = locker.stdin.take().unwrap();
    writeln!(locker_in, "BEGIN; LOCK TABLE audit IN ACCESS EXCLUSIVE MODE;").unwrap();
    let held = "SELECT COUNT(*) FROM pg_locks WHERE relation = 'audit'::regclass AND mode = 'AccessExclusiveLock' AND granted";
    assert!(wait_until(Duration::from_secs(10), || s.sql_i64(held) == 1), "the lock is held");

    let command = Command::new(BIN)
        .args(["audit", "anchor", "--data-dir"])
        .arg(&s.data_dir)
        .arg("--config")
        .arg(&s.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let named = wait_until(Duration::from_secs(10), || s.sql(waiting).lines().any(|name| name == "mailroom-cli:audit-anchor"));
    writeln!(locker_in, "COMMIT;").unwrap();
    drop(locker_in);
    assert!(locker.wait().unwrap().success());
    let out = command.wait_with_output().unwrap();
    assert!(named, "the waiting connection was named: {:?}", s.sql(waiting));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let others = "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name <> 'psql'";
    let nodes_only = || {
        let names = s.sql(others);
        names.lines().any(|name| name == NODE) && names.lines().all(|name| name.starts_with(NODE))
    };
    assert!(wait_until(Duration::from_secs(10), nodes_only), "the node's connections keep its name: {:?}", s.sql(others));
}
