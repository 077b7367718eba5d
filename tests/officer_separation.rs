//! Issue #8, part 2: a security officer can no longer give himself customer mail.
//!
//! Against the real `mailroom serve`, through curl: an officer never changes his own account,
//! roles or grants; new accounts and resets get one-time enrolment codes (the officer never knows
//! a working password); a change that opens a queue's mail waits for a second person, who is
//! never the requester, never the account that gains the access, never an account the requester
//! enrolled; rejected changes never apply; `grant_approval = "none"` turns this off with a warning.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

const ROLES: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }

[[roles]]
name = "sales-lead"
grants = { sales = ["read", "supervise"] }

[[roles]]
name = "supervisor"
grants = { "*" = ["read", "act", "assign", "supervise"] }

[[roles]]
name = "night-shift"
description = "no grants yet"
"#;

fn start(access: &str) -> Server {
    let s = Server::start(Opts { extra_toml: format!("[access]\nfailure_delay = \"10ms\"\n{access}\n{ROLES}"), ..Default::default() });
    for (user, roles) in [
        ("olga", &["security-officer"][..]),
        ("otto", &["security-officer"]),
        ("sue", &["supervisor"]),
        ("leo", &["sales-lead"]),
        ("anna", &["support-agent"]),
    ] {
        s.add_user(user, PW, roles);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// A small curl client (bearer tokens: no cookies, no CSRF to carry)
// ---------------------------------------------------------------------------------------------

struct Resp {
    status: u16,
    body: Value,
}

impl Resp {
    /// Asserts the status and the `{error, reason}` shape; returns the reason.
    fn refused(&self, status: u16, what: &str) -> String {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert!(self.body["error"].is_string() && self.body["reason"].as_str().is_some_and(|r| r.len() > 10), "{what}: {}", self.body);
        self.body["reason"].as_str().unwrap().to_string()
    }

    fn ok(&self, status: u16, what: &str) -> &Value {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        &self.body
    }
}

struct Api {
    base: String,
}

impl Api {
    fn new(s: &Server) -> Api {
        Api { base: s.http_url() }
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        self.call_from("127.0.0.1", method, path, token, body)
    }

    /// From a given loopback source address (throttling counts per source).
    fn call_from(&self, source: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "--max-time", "60", "--interface", source, "-o", "-", "-w", "\n%{http_code}", "-X", method]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
        }
        let out = cmd.arg(format!("{}{path}", self.base)).output().expect("curl");
        assert!(out.status.success(), "curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
        };
        Resp { status: status.parse().unwrap(), body }
    }

    fn get(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, Some(token), None)
    }

    fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("POST", path, Some(token), Some(body))
    }

    fn login(&self, user: &str, password: &str) -> Result<String, u16> {
        self.login_from("127.0.0.1", user, password)
    }

    fn login_from(&self, source: &str, user: &str, password: &str) -> Result<String, u16> {
        let r = self.call_from(source, "POST", "/api/login", None, Some(json!({ "user": user, "password": password, "mode": "bearer" })));
        if r.status == 200 { Ok(r.body["token"].as_str().unwrap().to_string()) } else { Err(r.status) }
    }

    fn token(&self, user: &str) -> String {
        self.login(user, PW).unwrap_or_else(|status| panic!("login {user}: {status}"))
    }

    fn enrol(&self, name: &str, code: &str, password: &str) -> Resp {
        self.enrol_from("127.0.0.1", name, code, password)
    }

    fn enrol_from(&self, source: &str, name: &str, code: &str, password: &str) -> Resp {
        self.call_from(source, "POST", "/api/enrol", None, Some(json!({ "name": name, "code": code, "password": password })))
    }

    /// The queues a user may read, as the server says now.
    fn queues(&self, token: &str) -> Value {
        self.get("/api/me", token).ok(200, "me")["queues"].clone()
    }

    fn role(&self, officer: &str, name: &str) -> Value {
        let roles = self.get("/api/admin/roles", officer).ok(200, "roles")["roles"].clone();
        roles.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap().clone()
    }
}

/// The mailboxes a user sees over IMAP (TLS, Python's imaplib), or None when the login fails.
fn imap_mailboxes(s: &Server, user: &str, password: &str) -> Option<Vec<String>> {
    let script = r#"
import imaplib, json, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conn = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx)
try:
    conn.login(sys.argv[2], sys.argv[3])
except imaplib.IMAP4.error:
    print("null"); sys.exit(0)
typ, listed = conn.list('""', "*")
print(json.dumps(sorted(l.decode().rsplit(" ", 1)[-1].strip('"') for l in listed if l)))
conn.logout()
"#;
    let port = s.imaps_addr().port().to_string();
    let out = Command::new("python3").args(["-c", script, &port, user, password]).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn audit(s: &Server) -> Vec<Value> {
    let out = s.cli(&["audit", "list", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    out.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn entries<'a>(log: &'a [Value], action: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["action"] == action).collect()
}

/// The code printed by `mailroom user add|passwd` (the line `enrolment code: …`).
fn printed_code(out: &CliOutput) -> String {
    assert!(out.status.success(), "{}", out.stderr);
    let text = out.stdout_str();
    text.lines().find_map(|l| l.strip_prefix("enrolment code: ")).unwrap_or_else(|| panic!("no code in {text:?}")).to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn an_officer_never_changes_his_own_access() {
    let s = start("");
    assert!(s.cli(&["role", "grant", "night-shift", "--user", "olga"]).status.success());
    let api = Api::new(&s);
    let olga = api.token("olga");
    let me = || api.get("/api/me", &olga).ok(200, "me").clone();
    let before = me();
    assert_eq!(before["roles"], json!(["night-shift", "security-officer"]));

    let attempts: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/api/admin/roles/supervisor/members", Some(json!({ "user": "olga" }))),
        ("POST", "/api/admin/roles/support-agent/members", Some(json!({ "user": "olga" }))),
        ("DELETE", "/api/admin/roles/night-shift/members/olga", None),
        ("DELETE", "/api/admin/roles/security-officer/members/olga", None),
        ("POST", "/api/admin/roles/night-shift/grants", Some(json!({ "queue": "support", "permissions": ["read"] }))),
        ("POST", "/api/admin/roles/night-shift/grants", Some(json!({ "queue": "*", "permissions": ["act"] }))),
        ("DELETE", "/api/admin/roles/night-shift/grants", Some(json!({ "queue": "support" }))),
        ("POST", "/api/admin/users/olga/password", None),
        ("POST", "/api/admin/users/olga/password", Some(json!({ "password": "one I would choose" }))),
        ("POST", "/api/admin/users/olga/lock", None),
        ("POST", "/api/admin/users/olga/unlock", None),
        ("DELETE", "/api/admin/users/olga", None),
    ];
    for (method, path, body) in &attempts {
        let r = api.call(method, path, Some(&olga), body.clone());
        assert_eq!(r.body["error"], "forbidden", "{method} {path}");
        r.refused(403, &format!("{method} {path}"));
    }
    let after = me();
    assert_eq!((&after["roles"], &after["queues"], &after["grants"]), (&before["roles"], &json!([]), &json!({})), "nothing changed");
    assert!(api.role(&olga, "night-shift")["grants"] == json!({}));
    // Each refusal is audited under the officer's name.
    let log = audit(&s);
    let refused = entries(&log, "admin.refused");
    assert_eq!(refused.len(), attempts.len(), "{refused:?}");
    assert!(refused.iter().all(|e| e["actor"] == "user:olga" && e["detail"].as_str().unwrap().contains("reason=own-access")));
    // The same requests about someone else work (or wait): the rule is about oneself.
    let otto = api.token("otto");
    assert_eq!(api.post("/api/admin/users/olga/lock", &otto, json!({})).status, 204);
    assert_eq!(api.post("/api/admin/users/olga/unlock", &otto, json!({})).status, 204);
    assert_eq!(api.call("DELETE", "/api/admin/roles/night-shift/members/olga", Some(&otto), None).status, 204);
}

#[test]
fn changes_that_open_mail_wait_for_a_second_person() {
    // Room for the deliberate failed logins below (from one address) before any lockout.
    let s = start("max_failures = 10");
    let api = Api::new(&s);
    let (olga, otto, sue, leo) = (api.token("olga"), api.token("otto"), api.token("sue"), api.token("leo"));

    // A new account with the supervisor role: created at once, the role waits.
    let r = api.post("/api/admin/users", &olga, json!({ "name": "bob", "password": PW, "roles": ["supervisor"] }));
    assert!(r.refused(422, "an officer choosing a password").contains("enrolment code"));
    let r = api.post("/api/admin/users", &olga, json!({ "name": "bob", "roles": ["supervisor", "night-shift"] }));
    let created = r.ok(202, "user with a reading role").clone();
    assert_eq!(created["roles"], json!(["night-shift"]), "a role without grants applies at once");
    let change = created["pending"][0].clone();
    assert_eq!((&change["kind"], &change["role"], &change["user"]), (&json!("role.assign"), &json!("supervisor"), &json!("bob")));
    assert_eq!((&change["queues"], &change["requested_by"], &change["status"]), (&json!(["*"]), &json!("olga"), &json!("pending")));
    let id = change["id"].as_i64().unwrap();
    let code = created["enrolment"]["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 29, "{code}");

    // The officer knows no working password: not the code, not anything he might have chosen.
    for guess in [code.as_str(), PW, ""] {
        assert_eq!(api.login("bob", guess), Err(401), "bob with {guess:?}");
    }
    assert_eq!(imap_mailboxes(&s, "bob", &code), None, "nor over IMAP");
    // Bob sets his own password, logs in, and reads nothing until the change is approved.
    api.enrol("bob", &code, "bob's own passphrase").ok(200, "enrol");
    let bob = api.login("bob", "bob's own passphrase").unwrap();
    assert_eq!(api.queues(&bob), json!([]));
    assert_eq!(imap_mailboxes(&s, "bob", "bob's own passphrase"), Some(vec![]), "no mailbox over IMAP either");
    api.get("/api/queues", &bob).refused(403, "bob's queues before approval");
    api.get("/api/admin/changes", &bob).refused(403, "a user without supervise lists changes");

    // Who may not approve: the requester, a supervisor of another queue.
    assert!(api.post(&format!("/api/admin/changes/{id}/approve"), &olga, json!({})).refused(403, "own change").contains("you requested"));
    api.post(&format!("/api/admin/changes/{id}/approve"), &leo, json!({})).refused(403, "sales lead on a * change");
    let listed = |token: &str| -> Vec<i64> {
        api.get("/api/admin/changes", token).ok(200, "changes")["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(listed(&leo), Vec::<i64>::new(), "a supervisor sees only changes about his queues");
    assert_eq!(listed(&sue), vec![id]);
    assert_eq!(listed(&otto), vec![id]);
    assert_eq!(api.queues(&bob), json!([]), "still nothing");

    // The beneficiary never approves his own access: read on complaints for night-shift, of
    // which sue (a supervisor of every queue) is now a member.
    assert_eq!(api.post("/api/admin/roles/night-shift/members", &olga, json!({ "user": "sue" })).status, 204, "no grants: at once");
    let r = api.post("/api/admin/roles/night-shift/grants", &olga, json!({ "queue": "complaints", "permissions": ["read"] }));
    let grant_id = r.ok(202, "read for a role with members")["change"]["id"].as_i64().unwrap();
    assert!(api.post(&format!("/api/admin/changes/{grant_id}/approve"), &sue, json!({})).refused(403, "beneficiary").contains("gives you"));
    // A grant that does not include read applies at once.
    assert_eq!(
        api.post("/api/admin/roles/night-shift/grants", &olga, json!({ "queue": "complaints", "permissions": ["act"] })).status,
        204
    );

    // A second officer approves: it applies now, and the audit log names both.
    let approved = api.post(&format!("/api/admin/changes/{id}/approve"), &otto, json!({})).ok(200, "approve").clone();
    assert_eq!((&approved["change"]["status"], &approved["change"]["decided_by"]), (&json!("approved"), &json!("user:otto")));
    assert_eq!(api.queues(&bob), json!(["support", "sales", "complaints"]));
    assert_eq!(imap_mailboxes(&s, "bob", "bob's own passphrase").unwrap(), ["complaints", "sales", "support"]);
    api.post(&format!("/api/admin/changes/{id}/approve"), &otto, json!({})).refused(409, "approved twice");
    api.post("/api/admin/changes/999999/approve", &otto, json!({})).refused(404, "no such change");

    // Rejected: never applies.
    api.post(&format!("/api/admin/changes/{grant_id}/reject"), &otto, json!({})).ok(200, "reject");
    api.post(&format!("/api/admin/changes/{grant_id}/approve"), &otto, json!({})).refused(409, "approve after reject");
    assert_eq!(api.role(&olga, "night-shift")["grants"], json!({ "complaints": ["act"] }), "the rejected read never applied");

    // A supervisor of the queue concerned may approve: anna into sales-agent, by the sales lead.
    let r = api.post("/api/admin/roles/sales-agent/members", &olga, json!({ "user": "anna" }));
    let sales_id = r.ok(202, "anna into sales")["change"]["id"].as_i64().unwrap();
    assert_eq!(listed(&leo), vec![sales_id]);
    let anna = api.token("anna");
    assert_eq!(api.queues(&anna), json!(["support"]));
    api.post(&format!("/api/admin/changes/{sales_id}/approve"), &leo, json!({})).ok(200, "sales lead approves");
    assert_eq!(api.queues(&anna), json!(["support", "sales"]));

    // Removing access never waits.
    assert_eq!(api.call("DELETE", "/api/admin/roles/supervisor/members/bob", Some(&olga), None).status, 204);
    assert_eq!(api.queues(&bob), json!([]));
    let all = api.get("/api/admin/changes?status=all", &olga).ok(200, "all").clone();
    let statuses: Vec<&str> = all["changes"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["approved", "rejected", "approved"]);
    api.get("/api/admin/changes?status=maybe", &olga).refused(422, "bad status");

    // The audit log: requested by olga, decided by otto or leo, and the applied change names both.
    let log = audit(&s);
    assert_eq!(entries(&log, "change.requested").len(), 3);
    assert!(entries(&log, "change.requested").iter().all(|e| e["actor"] == "user:olga"));
    let approvals = entries(&log, "change.approved");
    assert_eq!(approvals[0]["actor"], "user:otto");
    assert_eq!(approvals[0]["object"], format!("change:{id}"));
    assert!(approvals[0]["detail"].as_str().unwrap().contains("requested_by=user:olga"), "{:?}", approvals[0]);
    assert_eq!(approvals[1]["actor"], "user:leo");
    let rejection = entries(&log, "change.rejected");
    assert_eq!((rejection.len(), &rejection[0]["actor"]), (1, &json!("user:otto")));
    let applied = entries(&log, "role.assign");
    let bob_supervisor = applied.iter().find(|e| e["object"] == "role:supervisor").unwrap();
    assert_eq!(bob_supervisor["actor"], "user:olga");
    assert!(bob_supervisor["detail"].as_str().unwrap().contains(&format!("user=bob approved_by=user:otto change={id}")));
    let refused = entries(&log, "admin.refused");
    assert_eq!(refused.len(), 3, "own change, other queue's supervisor, beneficiary: {refused:?}");
    assert!(s.cli(&["audit", "verify"]).status.success());
}

#[test]
fn an_officer_cannot_make_himself_a_second_officer() {
    let s = start("");
    let api = Api::new(&s);
    let (olga, otto, sue) = (api.token("olga"), api.token("otto"), api.token("sue"));

    // A new officer account waits for another officer (a supervisor does not decide it).
    let created = api.post("/api/admin/users", &olga, json!({ "name": "olga2", "roles": ["security-officer"] })).ok(202, "officer").clone();
    let id = created["pending"][0]["id"].as_i64().unwrap();
    assert_eq!(created["pending"][0]["queues"], json!([]));
    assert!(
        api.post(&format!("/api/admin/changes/{id}/approve"), &sue, json!({}))
            .refused(403, "supervisor on the officer role")
            .contains("officer")
    );
    api.post(&format!("/api/admin/changes/{id}/approve"), &otto, json!({})).ok(200, "otto approves");
    // Olga kept the code and enrols the account herself: it is an officer, but it never
    // approves olga's changes, because olga issued the code its password was set with.
    api.enrol("olga2", created["enrolment"]["code"].as_str().unwrap(), "olga's second self").ok(200, "enrol");
    let olga2 = api.login("olga2", "olga's second self").unwrap();
    let r = api.post("/api/admin/roles/supervisor/members", &olga, json!({ "user": "anna" }));
    let change = r.ok(202, "anna as supervisor")["change"]["id"].as_i64().unwrap();
    let reason = api.post(&format!("/api/admin/changes/{change}/approve"), &olga2, json!({})).refused(403, "sock puppet");
    assert!(reason.contains("enrolment code that olga issued"), "{reason}");
    // Nor can she reset another officer and act as him. The reset waits for a second officer:
    // not otto (it is his account), not olga2 (enrolled with olga's code), not a supervisor.
    let r = api.post("/api/admin/users/otto/password", &olga, json!({}));
    let reset = r.ok(202, "reset otto")["change"]["id"].as_i64().unwrap();
    for (who, token) in [("otto", &otto), ("olga2", &olga2), ("sue", &sue)] {
        api.post(&format!("/api/admin/changes/{reset}/approve"), token, json!({})).refused(403, &format!("{who} approves otto's reset"));
    }
    api.get("/api/me", &otto).ok(200, "otto's session lasts until the reset is approved");
    // Approved on the host, its code still goes to olga, who passes it on; but even when she
    // enrols otto herself, the account's new password is again one whose code she issued.
    let out = s.cli(&["change", "approve", &reset.to_string()]);
    assert!(out.status.success() && out.stdout_str().contains("code ready"), "{}", out.stderr);
    api.get("/api/me", &otto).refused(401, "otto's session ends with the reset");
    let collected = api.post(&format!("/api/admin/changes/{reset}/code"), &olga, json!({})).ok(200, "olga collects").clone();
    api.enrol("otto", collected["enrolment"]["code"].as_str().unwrap(), "olga as otto now").ok(200, "olga enrols otto");
    let fake_otto = api.login("otto", "olga as otto now").unwrap();
    api.post(&format!("/api/admin/changes/{change}/approve"), &fake_otto, json!({})).refused(403, "olga as otto");
    assert_eq!(api.queues(&api.token("anna")), json!(["support"]), "anna is still no supervisor");
    // The host can still decide (and sees everything): `mailroom change approve`.
    let out = s.cli(&["change", "approve", &change.to_string()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(api.queues(&api.token("anna")), json!(["support", "sales", "complaints"]));
    let log = audit(&s);
    assert!(entries(&log, "change.approved").iter().any(|e| e["actor"].as_str().unwrap().starts_with("cli:")));
    assert!(entries(&log, "user.enrol").iter().any(|e| e["object"] == "user:otto"), "the enrolment is on record");
}

#[test]
fn a_reset_ends_the_old_password_and_sessions_and_the_code_works_once() {
    let s = start("max_failures = 3");
    let api = Api::new(&s);
    let (olga, otto) = (api.token("olga"), api.token("otto"));
    let anna = api.token("anna");
    assert_eq!(api.queues(&anna), json!(["support"]));

    api.post("/api/admin/users/anna/password", &olga, json!({ "password": "olga's choice!!" })).refused(422, "a chosen password");
    api.post("/api/admin/users/nobody/password", &olga, json!({})).refused(404, "unknown user");
    // Anna reads a queue: the reset waits for a second person, then olga collects the code.
    let r = api.call("POST", "/api/admin/users/anna/password", Some(&olga), None);
    let id = r.ok(202, "reset")["change"]["id"].as_i64().unwrap();
    api.post(&format!("/api/admin/changes/{id}/approve"), &otto, json!({})).ok(200, "otto approves");
    let r = api.post(&format!("/api/admin/changes/{id}/code"), &olga, json!({}));
    let code = r.ok(200, "collect")["enrolment"]["code"].as_str().unwrap().to_string();
    api.get("/api/me", &anna).refused(401, "the reset ends anna's session");
    // Nothing the officer knows logs in as anna: not her old password, not the code. (Each
    // attempt from its own address: here the per-user count is under test.)
    assert_eq!(api.login_from("127.0.0.2", "anna", PW), Err(401));
    assert_eq!(api.login_from("127.0.0.3", "anna", &code), Err(401));
    let users = api.get("/api/admin/users", &olga).ok(200, "users").clone();
    let listed = users["users"].as_array().unwrap().iter().find(|u| u["name"] == "anna").unwrap().clone();
    assert_eq!(listed["enrolment_pending"], true);
    assert!(!users.to_string().contains(&code), "the code is shown once, never listed");

    // Wrong codes fail and are counted with the failed logins: the third failure (max_failures)
    // locks the account out, and then even the right code waits.
    api.enrol_from("127.0.0.4", "anna", &code, "short").refused(422, "a weak password (checked first, not counted)");
    api.enrol_from("127.0.0.4", "anna", "7K2QD-M9XHT-0CWPN-4RJ8A-VZ3EB", "anna's new passphrase").refused(401, "wrong code");
    api.enrol_from("127.0.0.5", "anna", &code, "anna's new passphrase").refused(429, "locked out");
    assert!(s.cli(&["user", "unlock", "anna"]).status.success());
    api.enrol_from("127.0.0.5", "anna", &code, "anna's new passphrase").ok(200, "the right code after the lockout");
    api.enrol_from("127.0.0.6", "anna", &code, "and once more please").refused(401, "a code works once");
    let anna = api.login("anna", "anna's new passphrase").unwrap();
    assert_eq!(api.queues(&anna), json!(["support"]), "roles are untouched by a reset");
    let log = audit(&s);
    assert_eq!(entries(&log, "user.reset").len(), 1);
    assert_eq!(entries(&log, "user.reset")[0]["actor"], "user:olga");
    let failed: Vec<&str> =
        entries(&log, "enrol.failed").iter().map(|e| e["detail"].as_str().unwrap().rsplit('=').next().unwrap()).collect();
    assert_eq!(failed, ["wrong-code", "user-locked-out", "no-code"]);
    assert!(entries(&log, "user.enrol")[0]["detail"].as_str().unwrap().contains("via=http"));
}

#[test]
fn a_readers_reset_waits_for_a_second_person_and_its_code_goes_to_the_requester_once() {
    let s = start("max_failures = 10");
    s.add_user("nina", PW, &["night-shift"]);
    let api = Api::new(&s);
    let (olga, otto, sue, leo) = (api.token("olga"), api.token("otto"), api.token("sue"), api.token("leo"));
    let anna = api.token("anna");

    // Olga resets anna, who reads support: held, and olga holds no code.
    let held = api.post("/api/admin/users/anna/password", &olga, json!({})).ok(202, "reset of a reader").clone();
    let change = &held["change"];
    assert_eq!(
        (&held["pending"], &change["kind"], &change["user"], &change["role"]),
        (&json!(true), &json!("user.reset"), &json!("anna"), &Value::Null)
    );
    assert_eq!((&change["queues"], &change["status"], &change["code"]), (&json!(["support"]), &json!("pending"), &Value::Null));
    assert!(held.get("enrolment").is_none() && !held.to_string().contains("code\":\""), "no code yet: {held}");
    let id = change["id"].as_i64().unwrap();
    let code_path = format!("/api/admin/changes/{id}/code");
    let approve = format!("/api/admin/changes/{id}/approve");
    assert!(api.post(&code_path, &olga, json!({})).refused(409, "no code before approval").contains("second person"));

    // Nothing happened: anna's session and password still work.
    api.get("/api/me", &anna).ok(200, "anna's session lasts");
    assert!(api.login_from("127.0.0.2", "anna", PW).is_ok(), "anna's password still works");
    assert_eq!(api.get("/api/admin/users", &olga).ok(200, "users")["users"][0]["enrolment_pending"], false);

    // Not the requester, not a supervisor of another queue, not the account itself.
    assert!(api.post(&approve, &olga, json!({})).refused(403, "requester approves his own reset").contains("you requested"));
    api.post(&approve, &leo, json!({})).refused(403, "sales lead on a support reader's reset");
    api.post(&approve, &anna, json!({})).refused(403, "anna is no approver");
    assert!(api.login_from("127.0.0.2", "anna", PW).is_ok(), "still nothing changed");

    // A second officer approves: applied now, and the approver's answer carries no code.
    let approved = api.post(&approve, &otto, json!({})).ok(200, "otto approves").clone();
    assert_eq!((&approved["change"]["status"], &approved["change"]["code"]), (&json!("approved"), &json!("ready")));
    assert!(approved.get("enrolment").is_none() && approved["change"].get("enrolment").is_none(), "{approved}");
    api.get("/api/me", &anna).refused(401, "the approved reset ends anna's session");
    assert_eq!(api.login_from("127.0.0.3", "anna", PW), Err(401), "the old password is void");
    // Only the requester collects it: not the approver, not a supervisor.
    assert!(api.post(&code_path, &otto, json!({})).refused(403, "the approver collects").contains("olga"));
    api.post(&code_path, &sue, json!({})).refused(403, "a supervisor collects");
    let collected = api.post(&code_path, &olga, json!({})).ok(200, "olga collects").clone();
    let code = collected["enrolment"]["code"].as_str().unwrap().to_string();
    assert_eq!((code.len(), &collected["name"], &collected["change"]["code"]), (29, &json!("anna"), &json!("collected")));
    assert!(api.post(&code_path, &olga, json!({})).refused(409, "a second collection").contains("shown once"));
    // The approver never sees it, in any answer.
    for text in [
        approved.to_string(),
        api.get("/api/admin/changes?status=all", &otto).ok(200, "otto's list").to_string(),
        api.get("/api/admin/changes?status=all", &sue).ok(200, "sue's list").to_string(),
        api.get("/api/admin/users", &otto).ok(200, "users").to_string(),
    ] {
        assert!(!text.contains(&code) && !text.contains(&code.replace('-', "")), "{text}");
    }
    api.enrol("anna", &code, "anna's new passphrase").ok(200, "anna enrols with the code olga passed on");
    assert_eq!(api.queues(&api.login("anna", "anna's new passphrase").unwrap()), json!(["support"]));
    // Nor is it in the database (only its MAC), the WAL or the log, once collected.
    for (file, bytes) in s.store_contents() {
        assert!(find(&bytes, code.as_bytes()).is_none() && find(&bytes, code.replace('-', "").as_bytes()).is_none(), "{file}");
    }
    assert!(!s.log_text().contains(&code));

    // Rejected: nothing changes, and there is never a code.
    let sue_reset = api.post("/api/admin/users/sue/password", &olga, json!({})).ok(202, "reset of a supervisor")["change"].clone();
    assert_eq!(sue_reset["queues"], json!(["*"]));
    let sue_id = sue_reset["id"].as_i64().unwrap();
    api.post(&format!("/api/admin/changes/{sue_id}/approve"), &leo, json!({})).refused(403, "a sales lead on a * reader");
    api.post(&format!("/api/admin/changes/{sue_id}/reject"), &otto, json!({})).ok(200, "otto rejects");
    api.get("/api/me", &sue).ok(200, "sue's session lasts");
    assert!(api.login_from("127.0.0.4", "sue", PW).is_ok(), "sue's password still works");
    api.post(&format!("/api/admin/changes/{sue_id}/code"), &olga, json!({})).refused(409, "no code for a rejected reset");
    api.post(&format!("/api/admin/changes/{sue_id}/approve"), &otto, json!({})).refused(409, "approve after reject");

    // An officer's reset: officers only (a supervisor of every queue is not enough).
    let otto_reset = api.post("/api/admin/users/otto/password", &olga, json!({})).ok(202, "reset of an officer")["change"]["id"].clone();
    let r = api.post(&format!("/api/admin/changes/{otto_reset}/approve"), &sue, json!({}));
    assert!(r.refused(403, "supervisor on an officer's reset").contains("security officer"));

    // An account that reads nothing (nina: night-shift has no grants) is reset at once.
    let nina = api.token("nina");
    let direct = api.post("/api/admin/users/nina/password", &olga, json!({})).ok(200, "reset of a non-reader").clone();
    let nina_code = direct["enrolment"]["code"].as_str().unwrap();
    api.get("/api/me", &nina).refused(401, "nina's session ends at once");
    api.enrol("nina", nina_code, "nina's new passphrase").ok(200, "nina enrols");
    // A code of a change that is not a reset: 409; unknown change: 404.
    let grant = api.post("/api/admin/roles/sales-agent/members", &olga, json!({ "user": "nina" })).ok(202, "grant")["change"]["id"].clone();
    api.post(&format!("/api/admin/changes/{grant}/code"), &olga, json!({})).refused(409, "not a reset");
    api.post("/api/admin/changes/999999/code", &olga, json!({})).refused(404, "no such change");

    // The audit log names both; refusals are on record.
    let log = audit(&s);
    let resets = entries(&log, "user.reset");
    assert_eq!(resets.len(), 2, "anna's (approved) and nina's (direct): {resets:?}");
    assert_eq!((&resets[0]["actor"], &resets[0]["object"]), (&json!("user:olga"), &json!("user:anna")));
    assert!(resets[0]["detail"].as_str().unwrap().contains(&format!("approved_by=user:otto change={id}")), "{:?}", resets[0]);
    let collected = entries(&log, "change.code-collected");
    assert_eq!((collected.len(), &collected[0]["actor"]), (1, &json!("user:olga")));
    let refused: Vec<&str> = entries(&log, "admin.refused").iter().map(|e| e["detail"].as_str().unwrap()).collect();
    assert_eq!(
        refused.iter().filter(|d| d.contains("attempt=change.code reason=not-requester")).count(),
        1,
        "otto (sue never gets past the officer check): {refused:?}"
    );
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&code) && !text.contains(nina_code), "no code in the audit log");
    assert!(s.cli(&["audit", "verify"]).status.success());
}

#[test]
fn a_collected_code_that_was_replaced_meanwhile_is_void() {
    let s = start("");
    let api = Api::new(&s);
    let (olga, otto) = (api.token("olga"), api.token("otto"));
    let id = api.post("/api/admin/users/anna/password", &olga, json!({})).ok(202, "reset")["change"]["id"].as_i64().unwrap();
    api.post(&format!("/api/admin/changes/{id}/approve"), &otto, json!({})).ok(200, "approve");
    // The host resets anna again before olga collects: the sealed code is worthless now.
    let host_code = printed_code(&s.cli(&["user", "passwd", "anna"]));
    let r = api.post(&format!("/api/admin/changes/{id}/code"), &olga, json!({}));
    assert!(r.refused(409, "replaced").contains("void"));
    let listed = api.get("/api/admin/changes?status=approved", &otto).ok(200, "list").clone();
    assert_eq!(listed["changes"][0]["code"], "void");
    api.post(&format!("/api/admin/changes/{id}/code"), &olga, json!({})).refused(409, "still void");
    api.enrol("anna", &host_code, "anna's own passphrase").ok(200, "the host's code works");
    assert_eq!(entries(&audit(&s), "change.code-void").len(), 1);
}

#[test]
fn codes_expire_work_from_the_cli_and_are_never_stored_in_clear() {
    let s = start("enrolment_lifetime = \"4s\"");
    let api = Api::new(&s);
    // `user add` without --password-stdin issues a code (host: the role applies at once).
    let first = printed_code(&s.cli(&["user", "add", "kim", "--role", "support-agent"]));
    std::thread::sleep(Duration::from_millis(4500));
    api.enrol("kim", &first, "kim's own passphrase").refused(401, "expired");
    // `user passwd` without --password-stdin is a reset with a fresh code.
    let second = printed_code(&s.cli(&["user", "passwd", "kim"]));
    assert_ne!(first, second);
    // `user enrol` reads the code and the new password from stdin.
    let out = s.cli_stdin(&["user", "enrol", "kim", "--stdin"], format!("{}\nkim's own passphrase\n", second.to_lowercase()).as_bytes());
    assert!(out.status.success(), "{}", out.stderr);
    let out = s.cli_stdin(&["user", "enrol", "kim", "--stdin"], format!("{second}\nkim's other passphrase\n").as_bytes());
    assert!(!out.status.success() && out.stderr.contains("invalid user name or enrolment code"), "{}", out.stderr);
    let kim = api.login("kim", "kim's own passphrase").unwrap();
    assert_eq!(api.queues(&kim), json!(["support"]));
    // Officers' codes too: none is in the database or its WAL.
    let olga = api.token("olga");
    let third = api.post("/api/admin/users", &olga, json!({ "name": "lou" })).ok(201, "no roles").clone();
    let third = third["enrolment"]["code"].as_str().unwrap().to_string();
    for (file, bytes) in s.store_contents() {
        for code in [&first, &second, &third] {
            for form in [code.clone(), code.replace('-', "")] {
                assert!(find(&bytes, form.as_bytes()).is_none(), "{code} in {file}");
            }
        }
    }
    assert!(!s.log_text().contains(&third), "nor in the log");
    // Guessing from one address: after max_failures (5) wrong tries, whatever the names, that
    // address is throttled.
    for name in ["x1", "x2", "x3", "x4", "x5"] {
        api.enrol_from("127.0.0.9", name, &third, "a long enough one").refused(401, "unknown user");
    }
    api.enrol_from("127.0.0.9", "lou", &third, "a long enough one").refused(429, "source throttled");
    api.enrol_from("127.0.0.10", "lou", &third, "a long enough one").ok(200, "another address");
}

#[test]
fn one_person_organisations_can_turn_approval_off_with_a_warning() {
    let s = start("grant_approval = \"none\"");
    let log = s.log_text();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("access.grant_approval = \"none\"")), "{log}");
    let api = Api::new(&s);
    let olga = api.token("olga");
    assert_eq!(api.post("/api/admin/roles/supervisor/members", &olga, json!({ "user": "anna" })).status, 204);
    assert_eq!(api.queues(&api.token("anna")), json!(["support", "sales", "complaints"]), "applied at once");
    let created = api.post("/api/admin/users", &olga, json!({ "name": "bob", "roles": ["supervisor"] })).ok(201, "applied").clone();
    assert_eq!((&created["roles"], &created["pending"]), (&json!(["supervisor"]), &json!([])));
    // Still never for oneself, and still no officer-chosen passwords.
    api.post("/api/admin/roles/supervisor/members", &olga, json!({ "user": "olga" })).refused(403, "self");
    api.post("/api/admin/users", &olga, json!({ "name": "carl", "password": PW })).refused(422, "chosen password");
    // A reader's reset applies at once too, with the code in the answer.
    let anna = api.token("anna");
    let reset = api.post("/api/admin/users/anna/password", &olga, json!({})).ok(200, "reset without approval").clone();
    assert_eq!(reset["enrolment"]["code"].as_str().unwrap().len(), 29);
    api.get("/api/me", &anna).refused(401, "applied at once");
    assert!(api.get("/api/admin/changes", &olga).ok(200, "changes")["changes"] == json!([]));
}
