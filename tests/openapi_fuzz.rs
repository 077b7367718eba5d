//! schemathesis against a live `mailroom serve`: thousands of requests generated from the served
//! OpenAPI document, as a staff user with every queue permission. Every check is on: no 5xx, no
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
    // Logging out would end the one session every request uses.
    run(&st, &server, &token, &["--exclude-path", "/api/logout"], 60, 30);
}

/// Runs schemathesis with every check against `server` as the bearer of `token`; fails on any
/// finding, on fewer than `min_operations` operations tested, or on too few requests.
fn run(st: &Path, server: &Server, token: &str, filter: &[&str], seconds: u32, min_operations: usize) {
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
        .args(["--checks", "all", "--max-time", &seconds.to_string(), "--seed", "1", "-w", "2", "--no-color"])
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
