//! The access matrix: every role × every queue × every IMAP and HTTP entry point, asserting allow
//! or deny; zero leaks. One Python client (`tests/py/access_probe.py`, imaplib + urllib) probes
//! everything as one user; this driver knows what each role should be allowed and compares.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

const PW: &str = "correct horse battery";
const QUEUES: [&str; 3] = ["support", "sales", "complaints"];

/// Roles under test: name → (queue or "*", permissions).
const ROLES: &str = r#"
[access]
max_failures = 50

[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }

[[roles]]
name = "complaints-handler"
grants = { complaints = ["read", "act"] }

[[roles]]
name = "support-reader"
grants = { support = ["read"] }

[[roles]]
name = "sales-dispatcher"
grants = { sales = ["read", "assign"] }

[[roles]]
name = "supervisor"
grants = { "*" = ["read", "act", "assign", "supervise"] }
"#;

/// What a user may do on one queue.
#[derive(Clone, Copy, Default, Debug)]
struct May {
    read: bool,
    act: bool,
    assign: bool,
    supervise: bool,
}

struct Subject {
    user: &'static str,
    roles: &'static [&'static str],
    officer: bool,
    can_log_in: bool,
    may: fn(&str) -> May,
}

fn none(_: &str) -> May {
    May::default()
}

fn subjects() -> Vec<Subject> {
    vec![
        Subject {
            user: "sam",
            roles: &["support-agent"],
            officer: false,
            can_log_in: true,
            may: |q| if q == "support" { May { read: true, act: true, ..May::default() } } else { May::default() },
        },
        Subject {
            user: "sally",
            roles: &["sales-agent"],
            officer: false,
            can_log_in: true,
            may: |q| if q == "sales" { May { read: true, act: true, ..May::default() } } else { May::default() },
        },
        Subject {
            user: "carl",
            roles: &["complaints-handler"],
            officer: false,
            can_log_in: true,
            may: |q| if q == "complaints" { May { read: true, act: true, ..May::default() } } else { May::default() },
        },
        Subject {
            user: "rita",
            roles: &["support-reader"],
            officer: false,
            can_log_in: true,
            may: |q| if q == "support" { May { read: true, ..May::default() } } else { May::default() },
        },
        Subject {
            user: "dan",
            roles: &["sales-dispatcher"],
            officer: false,
            can_log_in: true,
            may: |q| if q == "sales" { May { read: true, assign: true, ..May::default() } } else { May::default() },
        },
        Subject {
            user: "sue",
            roles: &["supervisor"],
            officer: false,
            can_log_in: true,
            may: |_| May { read: true, act: true, assign: true, supervise: true },
        },
        Subject { user: "olga", roles: &["security-officer"], officer: true, can_log_in: true, may: none },
        Subject {
            user: "otto",
            roles: &["security-officer", "sales-agent"],
            officer: true,
            can_log_in: true,
            may: |q| if q == "sales" { May { read: true, act: true, ..May::default() } } else { May::default() },
        },
        Subject { user: "nora", roles: &[], officer: false, can_log_in: true, may: none },
        Subject { user: "lars", roles: &["supervisor"], officer: false, can_log_in: false, may: none },
    ]
}

fn probe(s: &Server, user: &str, password: &str, cases: &serde_json::Value, own_role: Option<&str>) -> serde_json::Value {
    let spec = serde_json::json!({
        "own_role": own_role,
        "imap_port": s.imap_addr().port(),
        "imaps_port": s.imaps_addr().port(),
        "http": s.http_url(),
        "user": user,
        "password": password,
        "queues": cases,
        "assignee": "sue",
    });
    let mut child = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/access_probe.py"))
        // mrtest.py (shared helpers) reads the SMTP and LMTP ports when imported.
        .env("MAILROOM_SMTP_PORT", s.smtp_addr().port().to_string())
        .env("MAILROOM_LMTP_PORT", s.lmtp_addr().port().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "probe as {user} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("probe output: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn is_success(code: &serde_json::Value) -> bool {
    code.as_u64().is_some_and(|c| (200..300).contains(&c))
}

#[test]
fn every_role_sees_and_does_exactly_what_it_may() {
    let s = Server::start(Opts { extra_toml: ROLES.into(), ..Default::default() });
    for subject in subjects() {
        s.add_user(subject.user, PW, subject.roles);
    }
    assert!(s.cli(&["user", "lock", "lars"]).status.success());

    // One message per queue, each with a marker no other queue's message contains.
    let mut c = s.smtp_session();
    let mut cases = serde_json::Map::new();
    let mut markers = Vec::new();
    for q in QUEUES {
        let marker = unique_token(&format!("marker-{q}"));
        let number = c.send_message(
            "customer@client.example.org",
            &[&format!("{q}@example.com")],
            &simple_message(&format!("question for {q}"), &format!("body {marker}")),
        );
        let listed = s.list_messages().into_iter().find(|m| m.number == number).unwrap();
        let case = listed.raw["cases"][0]["case"].as_i64().unwrap();
        assert_eq!(listed.raw["cases"][0]["queue"], q);
        cases.insert(q.to_string(), serde_json::json!({"case": case, "number": number, "marker": marker}));
        markers.push(marker);
    }
    let cases = serde_json::Value::Object(cases);

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut expect = |who: &str, what: String, ok: bool| {
        checked += 1;
        if !ok {
            failures.push(format!("{who}: {what}"));
        }
    };
    for subject in subjects() {
        let own_role = subject.roles.iter().copied().find(|r| *r != "security-officer");
        let got = probe(&s, subject.user, PW, &cases, own_role);
        let who = subject.user;
        expect(who, format!("imap login = {}", got["imap_login"]), got["imap_login"] == subject.can_log_in);
        expect(who, format!("http login = {}", got["http_login"]), got["http_login"] == subject.can_log_in);
        if !subject.can_log_in {
            continue;
        }
        let mut any_supervise = false;
        for q in QUEUES {
            let may = (subject.may)(q);
            any_supervise |= may.supervise;
            let r = &got["queues"][q];
            for label in ["imap", "imaps"] {
                for probe in ["list", "status", "examine", "select", "search", "fetch"] {
                    let key = format!("{label}_{probe}");
                    expect(who, format!("{q} {key} = {} (may read: {})", r[&key], may.read), r[&key] == may.read);
                }
            }
            expect(who, format!("{q} in GET /api/queues = {}", r["http_queues"]), r["http_queues"] == may.read);
            let read_probes = ["http_cases", "http_case", "http_raw"];
            for key in read_probes {
                let code = &r[key];
                let ok = if may.read { is_success(code) } else { code == 404 || (key == "http_cases" && code == 403) };
                expect(who, format!("{q} {key} = {code} (may read: {})", may.read), ok);
            }
            expect(who, format!("{q} raw content returned = {}", r["http_raw_content"]), r["http_raw_content"] == may.read);
            // Refusals: 403 when the user can see the case but not do this, 404 when they
            // cannot see it at all (its existence is not revealed).
            let denied = |code: &serde_json::Value| if may.read { code == 403 } else { code == 404 };
            for key in ["http_note", "http_status", "http_priority", "http_tags", "http_claim"] {
                let code = &r[key];
                expect(who, format!("{q} {key} = {code} (may act: {})", may.act), if may.act { is_success(code) } else { denied(code) });
            }
            let code = &r["http_assign"];
            expect(
                who,
                format!("{q} http_assign = {code} (may assign: {})", may.assign),
                if may.assign { is_success(code) } else { denied(code) },
            );
            let code = &r["http_transfer"];
            expect(
                who,
                format!("{q} http_transfer = {code} (may supervise: {})", may.supervise),
                if may.supervise { code == 422 } else { denied(code) },
            );
        }
        let g = &got["global"];
        let code = &g["http_stats"];
        expect(who, format!("GET /api/stats = {code}"), if any_supervise { is_success(code) } else { code == 403 });
        for key in ["http_admin_users", "http_admin_roles", "http_admin_audit", "http_admin_add_role"] {
            let code = &g[key];
            expect(
                who,
                format!("{key} = {code} (officer: {})", subject.officer),
                if subject.officer { is_success(code) } else { code == 403 },
            );
        }
        expect(who, format!("after logout = {}", g["http_after_logout"]), g["http_after_logout"] == 401);
        // Issue #8: nobody changes his own access or account (officers included: 403 either way).
        for key in ["http_self_supervisor", "http_self_reset", "http_self_lock"] {
            expect(who, format!("{key} = {}", g[key]), g[key] == 403);
        }
        if own_role.is_some() {
            expect(who, format!("http_grant_own_role = {}", g["http_grant_own_role"]), g["http_grant_own_role"] == 403);
        }
        // An officer's new account with a reading role waits (202); a chosen password is refused.
        let (add, pw) = (&g["http_add_supervisor_user"], &g["http_add_password_user"]);
        expect(who, format!("http_add_supervisor_user = {add}"), if subject.officer { add == 202 } else { add == 403 });
        expect(who, format!("http_add_password_user = {pw}"), if subject.officer { pw == 422 } else { pw == 403 });
        // Pending changes: officers and supervisors see and decide them.
        let approver = subject.officer || any_supervise;
        let (list, approve) = (&g["http_changes"], &g["http_approve_unknown"]);
        expect(who, format!("http_changes = {list}"), if approver { list == 200 } else { list == 403 });
        expect(who, format!("http_approve_unknown = {approve}"), if approver { approve == 404 } else { approve == 403 });
    }

    // Wrong passwords and unknown users get nowhere, on any protocol.
    for (user, password) in [("sue", "not the password"), ("nobody", PW)] {
        let got = probe(&s, user, password, &cases, None);
        expect(user, format!("wrong credentials: imap login = {}", got["imap_login"]), got["imap_login"] == false);
        expect(user, format!("wrong credentials: http login = {}", got["http_login"]), got["http_login"] == false);
    }
    assert!(failures.is_empty(), "{} of {checked} access checks failed:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 500, "only {checked} checks ran");

    // Every read was audited under the reader's name, and the log is intact.
    let audit = s.cli(&["audit", "list", "--action", "message.read", "--json"]);
    let reads: Vec<serde_json::Value> = audit.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for who in ["sam", "sue", "otto"] {
        assert!(
            reads.iter().any(|e| e["actor"] == format!("user:{who}") && e["detail"].as_str().unwrap_or("").contains("via=imap")),
            "no IMAP read by {who} audited"
        );
        assert!(
            reads.iter().any(|e| e["actor"] == format!("user:{who}") && e["detail"].as_str().unwrap_or("").contains("via=http")),
            "no HTTP read by {who} audited"
        );
    }
    // Nobody's audited reads go beyond their queues: the officer and the user without a role read
    // nothing, the support reader only the support message.
    for (user, allowed) in [("olga", None), ("nora", None), ("rita", Some(&cases["support"]["number"]))] {
        let leaked: Vec<_> = reads.iter().filter(|e| e["actor"] == format!("user:{user}") && Some(&e["object"]) != allowed).collect();
        assert!(leaked.is_empty(), "{user} read something outside their queues: {leaked:?}");
    }
    // The officers' new supervisor accounts wait for a second person: no one gained the role,
    // and the officers hold what they held.
    let roles: Vec<serde_json::Value> =
        s.cli(&["role", "list", "--json"]).stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let members = |role: &str| roles.iter().find(|r| r["name"] == role).unwrap()["members"].clone();
    assert_eq!(members("supervisor"), serde_json::json!(["lars", "sue"]));
    assert_eq!(members("security-officer"), serde_json::json!(["olga", "otto"]));
    assert_eq!(members("sales-agent"), serde_json::json!(["otto", "sally"]));
    let pending = s.cli(&["change", "list", "--json"]).stdout_str();
    assert_eq!(pending.lines().count(), 2, "probe-new-olga and probe-new-otto wait: {pending}");
    assert!(pending.contains("probe-new-olga") && pending.contains("probe-new-otto"));
    let verify = s.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", verify.stderr);

    // The officer (without a queue role) never saw a marker through any channel: checked above
    // per probe; and the markers never reached the log.
    let log = s.log_text();
    for marker in &markers {
        assert!(!log.contains(marker.as_str()), "customer content in the server log");
    }
}
