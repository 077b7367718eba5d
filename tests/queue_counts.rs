//! Queue counts come from counters the store keeps in the same transaction as every change of a
//! case (src/store/cases/counters.rs). Over real sockets, on both engines: a random sequence of
//! real operations (new mail and customer replies over SMTP; claim, assign, unassign, status,
//! transfer, priority, escalation through the JSON API; removing a user with the CLI), and after
//! every step `mailroom store counts` finds each counter row equal to a full count of the cases,
//! and `GET /api/queues` equals a count of the cases in the database. The sequence's seed is
//! printed; `QUEUE_COUNTS_SEED=N` replays one. A counter changed behind the store's back is found
//! (exit 1, the row named) and `--repair` rewrites it, audited.

mod common;

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";
const QUEUES: [&str; 2] = ["support", "sales"];

const EXTRA: &str = r#"
[[roles]]
name = "lead"
grants = { support = ["read", "act", "assign", "supervise"], sales = ["read", "act", "assign", "supervise"] }

[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "both-agent"
grants = { support = ["read", "act"], sales = ["read", "act"] }
"#;

/// A small deterministic generator (xorshift64*), so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

fn message(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Ann Customer <ann@client.example.org>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\r\nHello.\r\n",
        unique_token("m")
    )
    .into_bytes()
}

/// A case as the test knows it: its id and the registration number that opened it.
struct Case {
    id: i64,
    opening: String,
}

/// The maintained counters equal a full count, and the API's counts a count of the rows.
fn assert_counts_right(server: &Server, lead: &str, step: &str) {
    let out = server.cli(&["store", "counts"]);
    assert!(out.status.success(), "after {step}: `store counts` found a difference:\n{}{}", out.stdout_str(), out.stderr);
    assert!(out.stdout_str().contains("each equal to a full count"), "{}", out.stdout_str());
    let queues = api_ok(server, "GET", "/api/queues", lead, None);
    for q in queues["queues"].as_array().unwrap() {
        let name = q["name"].as_str().unwrap();
        let count = |filter: &str| server.sql_i64(&format!("SELECT COUNT(*) FROM cases WHERE queue = '{name}' AND {filter}"));
        for status in ["new", "open", "waiting"] {
            assert_eq!(q["by_status"][status].as_i64(), Some(count(&format!("status = '{status}'"))), "after {step}: {q}");
        }
        assert_eq!(q["active"].as_i64(), Some(count("status IN ('new', 'open', 'waiting')")), "after {step}: {q}");
    }
}

#[test]
fn counters_equal_a_full_count_after_every_step_of_a_random_sequence() {
    let seed: u64 = std::env::var("QUEUE_COUNTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("QUEUE_COUNTS_SEED={seed}");
    let mut rng = Rng(seed);
    let server = Server::start(Opts { extra_toml: EXTRA.into(), ..Default::default() });
    server.add_user("lead", PW, &["lead"]);
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("bob", PW, &["both-agent"]);
    let lead = bearer_login(&server, "lead", PW);
    let anna = bearer_login(&server, "anna", PW);
    let bob = bearer_login(&server, "bob", PW);
    let mut cases: Vec<Case> = Vec::new();
    let new_case = |server: &Server, queue: &str| -> Case {
        let opening = server.smtp_session().send_message(
            "ann@client.example.org",
            &[&format!("{queue}@example.com")],
            &message(&format!("{queue}@example.com"), "A question"),
        );
        let listed = api_ok(server, "GET", &format!("/api/queues/{queue}/cases?status=all&limit=200"), &lead, None);
        let id =
            listed["items"].as_array().unwrap().iter().find(|i| i["opening"] == opening.as_str()).expect("the new case is listed")["id"]
                .as_i64()
                .unwrap();
        Case { id, opening }
    };
    for queue in QUEUES {
        cases.push(new_case(&server, queue));
    }
    assert_counts_right(&server, &lead, "the first two cases");

    let mut kinds_done = std::collections::BTreeSet::new();
    for step in 0..48 {
        let pick = &cases[rng.below(cases.len())];
        let (id, opening) = (pick.id, pick.opening.clone());
        let path = |action: &str| format!("/api/cases/{id}/{action}");
        // Some changes are refused (a status the case cannot take, a user who may not read the
        // queue): a refusal must leave the counters as they were, so it is checked too.
        let (what, status): (String, u16) = match rng.below(10) {
            0 | 1 => {
                let queue = QUEUES[rng.below(2)];
                cases.push(new_case(&server, queue));
                (format!("new mail to {queue}"), 200)
            }
            2 => {
                // The customer writes again: a waiting, resolved or closed case opens again.
                let to = format!("{}@example.com", QUEUES[rng.below(2)]);
                server.smtp_session().send_message(
                    "ann@client.example.org",
                    &[&to],
                    &message(&to, &format!("Re: [{}] A question", opening)),
                );
                (format!("customer reply to case {id}"), 200)
            }
            3 => {
                let token = [&anna, &bob][rng.below(2)];
                (format!("claim {id}"), api(&server, "POST", &path("claim"), Some(token), Some(json!({}))).0)
            }
            4 => {
                let user: Value = [json!("anna"), json!("bob"), Value::Null][rng.below(3)].clone();
                (format!("assign {id} to {user}"), api(&server, "POST", &path("assign"), Some(&lead), Some(json!({ "user": user }))).0)
            }
            5 | 6 => {
                let to = ["open", "waiting", "resolved", "closed"][rng.below(4)];
                (format!("status {id} {to}"), api(&server, "POST", &path("status"), Some(&lead), Some(json!({ "status": to }))).0)
            }
            7 => {
                let queue = QUEUES[rng.below(2)];
                (
                    format!("transfer {id} to {queue}"),
                    api(&server, "POST", &path("transfer"), Some(&lead), Some(json!({ "queue": queue }))).0,
                )
            }
            8 => {
                let to = ["urgent", "normal", "low"][rng.below(3)];
                (format!("priority {id} {to}"), api(&server, "POST", &path("priority"), Some(&lead), Some(json!({ "priority": to }))).0)
            }
            _ => (format!("escalate {id}"), api(&server, "POST", &path("escalate"), Some(&lead), None).0),
        };
        assert!(status < 500, "step {step}, {what}: {status}");
        if status == 200 {
            kinds_done.insert(what.split(' ').next().unwrap().to_string());
        }
        assert_counts_right(&server, &lead, &format!("step {step} ({what}, {status}) of seed {seed}"));
    }
    eprintln!("kinds of change done: {kinds_done:?}");
    assert!(kinds_done.len() >= 5, "the sequence changed too few kinds of things: {kinds_done:?}");

    // Whatever the sequence did: a resolved case that the customer answers opens again.
    let last = cases.last().unwrap();
    api_ok(&server, "POST", &format!("/api/cases/{}/status", last.id), &lead, Some(json!({ "status": "resolved" })));
    assert_counts_right(&server, &lead, "resolve the last case");
    server.smtp_session().send_message(
        "ann@client.example.org",
        &["support@example.com"],
        &message("support@example.com", &format!("Re: [{}] A question", last.opening)),
    );
    assert_eq!(server.sql_opt(&format!("SELECT status FROM cases WHERE id = {}", last.id)).as_deref(), Some("open"));
    assert_counts_right(&server, &lead, "the customer answers the resolved case");

    // Removing a user unassigns his cases: they move to the unassigned counters.
    for case in &cases {
        api(&server, "POST", &format!("/api/cases/{}/assign", case.id), Some(&lead), Some(json!({ "user": "bob" })));
    }
    let out = server.cli(&["user", "remove", "bob"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_counts_right(&server, &lead, "user remove bob");
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM cases WHERE assignee IS NOT NULL"), 0);
}

#[test]
fn a_counter_changed_behind_the_stores_back_is_found_and_repaired() {
    let server = Server::start(Opts { extra_toml: EXTRA.into(), ..Default::default() });
    for queue in QUEUES {
        let to = format!("{queue}@example.com");
        server.smtp_session().send_message("ann@client.example.org", &[&to], &message(&to, "A question"));
    }
    let ok = server.cli(&["store", "counts"]);
    assert!(ok.status.success(), "{}", ok.stderr);
    assert!(ok.stdout_str().contains("queue counters: 10 rows"), "two counter rows and eight buckets: {}", ok.stdout_str());

    server.sql("UPDATE queue_counters SET n = n + 2 WHERE queue = 'sales'");
    server.sql("DELETE FROM queue_due_buckets WHERE queue = 'support' AND width = 60000");
    let bad = server.cli(&["store", "counts"]);
    assert!(!bad.status.success(), "a wrong counter must fail the check");
    let text = bad.stdout_str();
    assert!(text.contains("differs: count queue=sales status=new unassigned=1 kept=3 counted=1"), "{text}");
    assert!(text.contains("differs: due queue=support width_ms=60000") && text.contains("kept=0 counted=1"), "{text}");
    assert!(bad.stderr.contains("2 queue counter rows differ") && bad.stderr.contains("--repair"), "{}", bad.stderr);

    let repair = server.cli(&["store", "counts", "--repair"]);
    assert!(repair.status.success(), "{}", repair.stderr);
    assert!(repair.stdout_str().contains("rewritten from a full count: 10 rows (2 differed before)"), "{}", repair.stdout_str());
    assert!(server.cli(&["store", "counts"]).status.success());
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM audit WHERE action = 'store.recount' AND detail = 'rows=10 mismatches=2'"), 1);
    let verify = server.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", verify.stderr);
}
