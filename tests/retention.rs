//! Retention policies (`[[retention]]`, `mailroom retention run`, the server's leased job) and
//! legal hold (`mailroom case hold|release`), over a real server that took the mail by SMTP and
//! whose cases were closed through the API.
//!
//! A policy with `keep_days = 0` purges the closed cases of its queue at the next run; open cases,
//! other queues and a policy whose time has not come keep theirs; a dry run changes nothing; a
//! held case is skipped (and reported) by retention and by erasure until an officer releases it;
//! only an officer may hold; the officer's page shows policies, holds and runs (403 for others);
//! the server's own job purges under its lease; the audit chain verifies; a bad policy is refused
//! naming file, line and key.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";

const EXTRA: &str = r#"
[[roles]]
name = "lead"
grants = { "*" = ["read", "act", "assign", "supervise"] }

[[retention]]
name = "support-closed"
queue = "support"
keep_days = 0

[[retention]]
name = "sales-a-month"
queue = "sales"
keep_days = 30
"#;

fn server(retention_every: Option<&str>) -> Server {
    let mut opts = Opts { extra_toml: EXTRA.into(), ..Default::default() };
    if let Some(every) = retention_every {
        let config = opts.config_toml();
        assert!(config.contains("[server]\n"));
        opts.raw_config = Some(config.replace("[server]\n", &format!("[server]\nretention_every = \"{every}\"\n")));
    }
    let server = Server::start(opts);
    server.add_user("lena", PW, &["lead"]);
    server.add_user("olga", PW, &["security-officer"]);
    server
}

fn send(server: &Server, from: &str, to: &str, body: &str) -> String {
    let content = format!(
        "From: Customer <{from}>\r\nTo: {to}\r\nSubject: Question {}\r\nMessage-ID: <{}@customer.example>\r\n\r\n{body}\r\n",
        unique_token("s-"),
        unique_token("m-")
    );
    server.smtp_session().send_message(from, &[to], content.as_bytes())
}

fn case_of(server: &Server, token: &str, queue: &str, number: &str) -> i64 {
    let list = api_ok(server, "GET", &format!("/api/queues/{queue}/cases?status=all&limit=200"), token, None);
    list["items"].as_array().unwrap().iter().find(|i| i["opening"] == number).unwrap_or_else(|| panic!("{number}: {list}"))["id"]
        .as_i64()
        .unwrap()
}

fn close(server: &Server, token: &str, case: i64) {
    api_ok(server, "POST", &format!("/api/cases/{case}/status"), token, Some(json!({ "status": "closed" })));
}

fn raw_status(server: &Server, token: &str, number: &str) -> (u16, Value) {
    api(server, "GET", &format!("/api/messages/{number}/raw"), Some(token), None)
}

fn run_json(server: &Server, args: &[&str]) -> Vec<Value> {
    let out = server.cli(args);
    assert!(out.status.success(), "{args:?}: {}", out.stderr);
    out.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn closed_cases_of_a_policy_are_purged_and_held_ones_kept_until_released() {
    let server = server(None);
    let token = bearer_login(&server, "lena", PW);
    let closed = send(&server, "ann@customer.example", "support@example.com", "closed-one");
    let open = send(&server, "ann@customer.example", "support@example.com", "still-open");
    let held = send(&server, "hal@customer.example", "support@example.com", "held-one");
    let young = send(&server, "ann@customer.example", "sales@example.com", "sales-closed-recently");
    let other = send(&server, "ann@customer.example", "complaints@example.com", "no-policy");
    for (queue, number) in [("support", &closed), ("support", &held), ("sales", &young), ("complaints", &other)] {
        close(&server, &token, case_of(&server, &token, queue, number));
    }
    case_of(&server, &token, "support", &open);

    // Only an officer puts a case under hold.
    let refused = server.cli(&["case", "hold", &held, "--by", "lena", "--reason", "matter 2026-17"]);
    assert!(!refused.status.success() && refused.stderr.contains("not an active security officer"), "{}", refused.stderr);
    let out = server.cli(&["case", "hold", &held, "--by", "olga", "--reason", "matter 2026-17"]);
    assert!(out.status.success() && out.stdout_str().contains("1 case(s) under legal hold"), "{}{}", out.stdout_str(), out.stderr);
    let holds = run_json(&server, &["case", "holds", "--json"]);
    assert_eq!((holds.len(), holds[0]["opening"].as_str(), holds[0]["reason"].as_str()), (1, Some(held.as_str()), Some("matter 2026-17")));

    // A dry run says what would go and changes nothing.
    let dry = run_json(&server, &["retention", "run", "--dry-run", "--json"]);
    assert_eq!(dry.len(), 2, "one report per policy: {dry:?}");
    assert_eq!(
        (dry[0]["purged_by"].as_str(), &dry[0]["messages"], &dry[0]["held"]),
        (Some("support-closed"), &json!([closed]), &json!([held]))
    );
    assert_eq!(dry[1]["messages"], json!([]), "sales: closed too recently");
    assert_eq!(raw_status(&server, &token, &closed).0, 200, "a dry run changes nothing");

    let reports = run_json(&server, &["retention", "run", "--json"]);
    assert_eq!((&reports[0]["messages"], &reports[0]["held"], reports[0]["cases"].as_u64()), (&json!([closed]), &json!([held]), Some(1)));
    let (status, body) = raw_status(&server, &token, &closed);
    assert_eq!((status, body["error"].as_str()), (410, Some("purged")), "{body}");
    assert!(body["reason"].as_str().unwrap().contains("support-closed"), "{body}");
    for number in [&open, &held, &young, &other] {
        assert_eq!(raw_status(&server, &token, number).0, 200, "{number} is kept");
    }
    // Nothing new expired: a second run purges nothing.
    let again = run_json(&server, &["retention", "run", "--json"]);
    assert_eq!(again[0]["messages"], json!([]));

    // The officer's page lists the policies, the hold and the runs; anyone else gets 403.
    let (officer, _) = CurlBrowser::logged_in(&server, "olga", PW);
    let page = officer.get("/admin/retention");
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_page_headers("/admin/retention");
    for needle in ["data-policy=\"support-closed\"", "data-policy=\"sales-a-month\"", &format!("data-hold=\"{held}\""), "matter 2026-17"] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    assert!(page.body.contains("data-action=\"retention.run\"") && page.body.contains("data-action=\"retention.purge\""), "{}", page.body);
    assert!(page.body.contains("href=\"/admin/retention\""), "linked in the officer's navigation");
    let (lead, _) = CurlBrowser::logged_in(&server, "lena", PW);
    assert_eq!(lead.get("/admin/retention").status, 403);

    // Erasure skips the held case too, and says so.
    let erase = run_json(&server, &["erase", "--address", "hal@customer.example", "--by", "olga", "--json"]);
    assert_eq!((&erase[0]["messages"], &erase[0]["held"]), (&json!([]), &json!([held])), "{erase:?}");
    assert_eq!(raw_status(&server, &token, &held).0, 200);

    // Released, the case is purged by the next run.
    let refused = server.cli(&["case", "release", &held, "--by", "lena"]);
    assert!(!refused.status.success());
    let out = server.cli(&["case", "release", &held, "--by", "olga"]);
    assert!(out.status.success() && out.stdout_str().contains("released on 1 case(s)"), "{}{}", out.stdout_str(), out.stderr);
    let reports = run_json(&server, &["retention", "run", "--json"]);
    assert_eq!((&reports[0]["messages"], &reports[0]["held"]), (&json!([held]), &json!([])));
    assert_eq!(raw_status(&server, &token, &held).0, 410);

    // Gap-free numbering, every tombstone listed; the audit chain holds every step.
    let listed: Vec<String> = server.list_messages().into_iter().map(|m| m.number).collect();
    assert_eq!(listed, [&closed, &open, &held, &young, &other].map(|n| n.to_string()));
    let verify = server.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", verify.stderr);
    let actions: Vec<String> = run_json(&server, &["audit", "list", "--json"])
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .filter(|a| a.starts_with("retention") || a.starts_with("case.") || a.starts_with("erasure"))
        .collect();
    for expected in
        ["case.hold.refused", "case.hold", "retention.purge", "retention.run", "erasure", "case.release.refused", "case.release"]
    {
        assert!(actions.iter().any(|a| a == expected), "{expected} in {actions:?}");
    }
    if !server.sqlite_only("mailroom backup takes SQLite stores only") {
        let file = server.root().join("after-retention.backup");
        assert!(server.cli(&["backup", "--to", file.to_str().unwrap()]).status.success());
        let verified = server.cli(&["backup", "verify", file.to_str().unwrap()]);
        assert!(verified.status.success(), "backup verify: {}{}", verified.stdout_str(), verified.stderr);
    }
}

#[test]
fn the_servers_job_purges_under_its_lease() {
    let server = server(Some("1s"));
    let token = bearer_login(&server, "lena", PW);
    let closed = send(&server, "ann@customer.example", "support@example.com", "closed-one");
    let open = send(&server, "ann@customer.example", "support@example.com", "still-open");
    close(&server, &token, case_of(&server, &token, "support", &closed));
    let deadline = Instant::now() + Duration::from_secs(20);
    while raw_status(&server, &token, &closed).0 != 410 {
        assert!(Instant::now() < deadline, "the job did not purge {closed}:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(raw_status(&server, &token, &open).0, 200);
    let holder = server.sql("SELECT holder FROM leases WHERE name = 'retention'");
    assert!(holder.contains(&server.pid().to_string()), "the job ran under its lease: {holder:?}");
    let runs = run_json(&server, &["audit", "list", "--action", "retention.run", "--json"]);
    assert!(
        runs.iter().any(|e| e["actor"] == "system:retention" && e["detail"].as_str().unwrap().contains("support-closed=1")),
        "{runs:?}"
    );
}

#[test]
fn a_bad_policy_is_refused_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = Opts { extra_toml: EXTRA.into(), ..Default::default() }.config_toml();
    for (from, to, key) in [
        ("queue = \"sales\"", "queue = \"nowhere\"", "retention[1].queue"),
        ("name = \"sales-a-month\"", "name = \"support-closed\"", "retention[1].name"),
        ("keep_days = 30", "keep_days = 99999", "retention[1].keep_days"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, base.replacen(from, to, 1)).unwrap();
        let out = run_bin(&["config".as_ref(), "check".as_ref(), "--config".as_ref(), path.as_os_str()], Duration::from_secs(30));
        assert!(!out.status.success(), "{to} must be refused");
        let line = base.lines().position(|l| l == from).map(|i| i + 1).unwrap();
        assert!(out.stderr.contains(&format!("bad.toml:{line}: {key}:")), "{key} at line {line}: {}", out.stderr);
    }
}
