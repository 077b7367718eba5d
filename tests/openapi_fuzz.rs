//! schemathesis against a live `mailroom serve`: thousands of requests generated from the served
//! OpenAPI document, as a staff user with every queue permission, then the admin group as a
//! security officer. For the staff user every check is on: no 5xx, no
//! answer outside the document, schema-valid requests accepted and schema-violating ones refused
//! (the document is exactly as strict as the server), no request that works without the token.
//! `tests/openapi/schemathesis.toml` lists the business rules no schema can state.
//!
//! schemathesis comes from PyPI (`.ci/run` installs it into `target/schemathesis-venv`); set
//! `MAILROOM_SCHEMATHESIS` to use another one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const PW: &str = "correct-horse-battery-staple";

const CONFIG: &str = r#"
[[roles]]
name = "boss"
grants = { "*" = ["read", "act", "assign", "supervise"] }

[[categories]]
code = "BZZX"
name = "Business enquiry"

[[categories]]
code = "TSJJ"
name = "Complaint or suggestion"

# Replies queue up for a smarthost that is not there: the API answers as it would in production.
[outbox]
smarthost = "127.0.0.1:9"
tls = "none"
"#;

/// The schemathesis command: `MAILROOM_SCHEMATHESIS`, the CI venv, a venv in the worktree, or PATH.
fn schemathesis() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("MAILROOM_SCHEMATHESIS")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("target/schemathesis-venv/bin/schemathesis"), root.join(".venv/bin/schemathesis"), "schemathesis".into()])
        .collect();
    for candidate in &candidates {
        if Command::new(candidate).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return candidate.clone();
        }
    }
    panic!(
        "schemathesis not found (tried {candidates:?}): python3 -m venv target/schemathesis-venv && \
         target/schemathesis-venv/bin/pip install schemathesis==4.32.5 (what .ci/run does)"
    );
}

fn login(server: &Server, user: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "30", "-H", "Content-Type: application/json", "--data-binary"])
        .arg(serde_json::json!({ "user": user, "password": PW, "mode": "bearer" }).to_string())
        .arg(format!("{}/api/login", server.http_url()))
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("login answers JSON");
    v["token"].as_str().unwrap_or_else(|| panic!("no token: {v}")).to_string()
}

#[test]
fn schemathesis_finds_nothing_the_document_does_not_allow() {
    let st = schemathesis();
    let server = Server::start(Opts { extra_toml: CONFIG.into(), ..Default::default() });
    server.add_user("lead", PW, &["boss"]);
    // Cases in both queues for the generated requests to reach.
    for (i, to) in ["support@example.com", "sales@example.com", "support@example.com", "sales@example.com"].iter().enumerate() {
        let body = format!(
            "From: Ann <ann@client.example.org>\r\nTo: {to}\r\nSubject: question {i}\r\nMessage-ID: <q{i}.{}@client.example.org>\r\n\r\nHello\r\n",
            unique_token("m")
        );
        server.smtp_session().send_message("ann@client.example.org", &[to], body.as_bytes());
    }
    let token = login(&server, "lead");
    // The officer logs in now: the run below tries logins that lock this source address out.
    server.add_user("olga", PW, &["security-officer"]);
    for user in ["anna", "bert"] {
        server.add_user(user, PW, &[]);
    }
    let officer = login(&server, "olga");
    // Logging out would end the one session every request uses.
    run(&st, &server, &token, &["--exclude-path", "/api/logout"], ALL_CHECKS, 60, 30);

    // The admin group as a security officer, so its success answers are generated too (above, its
    // operations only answered 401/403). Access rules (a grant on an unknown queue, a member that
    // is no user, a second person's approval) refuse many well-formed requests, as documented:
    // every check but positive_data_acceptance. Without the coverage phase: schemathesis 4.32.5
    // sometimes fails there with an internal KeyError (its own error, not a finding) on the
    // approve and code operations; the lead's run above covers their boundaries.
    let officer_filter = ["--include-path-regex", "^/api/admin/", "--phases", "examples,fuzzing,stateful"];
    run(&st, &server, &officer, &officer_filter, OFFICER_CHECKS, 45, 15);
    // The point of this run: success answers, checked against their schemas.
    let log = server.log_text();
    let succeeded: std::collections::BTreeSet<&str> = log
        .lines()
        .filter(|l| l.contains("user=\"olga\"") && l.contains(" status=2"))
        .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
        .collect();
    eprintln!("admin routes the officer reached with success: {succeeded:?}");
    assert!(succeeded.len() >= 8, "the officer's run reached only these admin routes with success: {succeeded:?}");
}

/// Every check schemathesis has.
const ALL_CHECKS: &str = "all";

/// Every check but positive_data_acceptance (see the officer run).
const OFFICER_CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
     response_schema_conformance,negative_data_rejection,ignored_auth";

/// Runs schemathesis with `checks` against `server` as the bearer of `token`; fails on any
/// finding, on fewer than `min_operations` operations tested, or on too few requests.
fn run(st: &Path, server: &Server, token: &str, filter: &[&str], checks: &str, seconds: u32, min_operations: usize) {
    let work = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/schemathesis.toml");
    let started = std::time::Instant::now();
    let out = Command::new(st)
        .current_dir(work.path())
        .env("MAILROOM_TOKEN", token)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/api/openapi.json", server.http_url())])
        .args(filter)
        .args(["--checks", checks, "--max-time", &seconds.to_string(), "--seed", "1", "-w", "2", "--no-color"])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis ran {:?}:\n{}",
        started.elapsed(),
        report.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    let tested: usize = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no operation count in the report:\n{report}"));
    assert!(tested >= min_operations, "only {tested} operations were tested:\n{report}");
    let passed = report.lines().find(|l| l.contains(" generated, ") && l.contains(" passed")).unwrap_or_else(|| panic!("{report}"));
    let generated: usize = passed.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(generated >= 300, "too few requests to mean anything: {passed}");
    assert!(!server.log_text().contains("panicked"), "the server panicked:\n{}", server.log_text());
}
