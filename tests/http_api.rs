//! The staff HTTP API over real sockets with a real client: every request goes through the
//! `curl` binary (cookie jar, headers, bodies as a browser or script would send them) against
//! `mailroom serve`. Users come from the admin CLI, roles from the config; mail arrives by SMTP;
//! replies leave through the outbox to a capture SMTP server in this file.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";
const CUSTOMER: &str = "customer@client.example.org";

const ROLES: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "support-reader"
grants = { support = ["read"] }

[[roles]]
name = "support-lead"
grants = { support = ["read", "act", "assign", "supervise"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }

[[categories]]
code = "BZZX"
name = "Business enquiry"

[[categories]]
code = "TSJJ"
name = "Complaint or suggestion"
"#;

fn start(extra: &str) -> Server {
    Server::start(Opts { extra_toml: format!("{ROLES}\n{extra}"), ..Default::default() })
}

// ---------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): status {} {}", self.status, self.text()))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    /// Asserts the status and the error shape; returns the error code.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text());
        assert!(
            self.header("content-type").is_some_and(|t| t.starts_with("application/json")),
            "error without JSON content type: {self:?}"
        );
        let v = self.json();
        let obj = v.as_object().unwrap_or_else(|| panic!("error body is not an object: {v}"));
        assert_eq!(obj.len(), 2, "error body has exactly error and reason: {v}");
        assert!(v["reason"].as_str().is_some_and(|r| r.len() > 5), "error without a reason: {v}");
        v["error"].as_str().unwrap_or_else(|| panic!("error without a code: {v}")).to_string()
    }

    fn ok(&self) -> Value {
        assert!((200..300).contains(&self.status), "expected success, got {}: {}", self.status, self.text());
        if self.body.is_empty() { Value::Null } else { self.json() }
    }
}

#[derive(Clone, Debug)]
enum Auth {
    Anonymous,
    /// Cookie jar file and the CSRF token to send (empty: send none).
    Cookie {
        jar: PathBuf,
        csrf: String,
    },
    Bearer(String),
}

impl Auth {
    fn with_csrf(&self, csrf: &str) -> Auth {
        match self {
            Auth::Cookie { jar, .. } => Auth::Cookie { jar: jar.clone(), csrf: csrf.to_string() },
            other => other.clone(),
        }
    }

    fn bearer_token(&self) -> &str {
        match self {
            Auth::Bearer(t) => t,
            _ => panic!("not a bearer session"),
        }
    }
}

struct Api {
    base: String,
    dir: tempfile::TempDir,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api { base: server.http_url(), dir: tempfile::tempdir().unwrap() }
    }

    /// One request through curl. `body` is sent as JSON unless `headers` set a content type.
    fn call(&self, method: &str, path: &str, auth: &Auth, body: Option<&str>, headers: &[&str]) -> Resp {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "-i", "--max-time", "60", "-H", "Expect:", "-X", method]);
        match auth {
            Auth::Anonymous => {}
            Auth::Cookie { jar, csrf } => {
                cmd.arg("-b").arg(jar).arg("-c").arg(jar);
                if !csrf.is_empty() && method != "GET" {
                    cmd.args(["-H", &format!("X-CSRF-Token: {csrf}")]);
                }
            }
            Auth::Bearer(token) => {
                cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
            }
        }
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(body) = body {
            if !headers.iter().any(|h| h.to_ascii_lowercase().starts_with("content-type")) {
                cmd.args(["-H", "Content-Type: application/json"]);
            }
            cmd.args(["--data-binary", body]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = cmd.output().expect("run curl");
        assert!(out.status.success(), "curl {method} {path} failed: {}", String::from_utf8_lossy(&out.stderr));
        parse_response(&out.stdout)
    }

    fn get(&self, path: &str, auth: &Auth) -> Resp {
        self.call("GET", path, auth, None, &[])
    }

    fn post(&self, path: &str, auth: &Auth, body: Value) -> Resp {
        self.call("POST", path, auth, Some(&body.to_string()), &[])
    }

    fn delete(&self, path: &str, auth: &Auth, body: Option<Value>) -> Resp {
        self.call("DELETE", path, auth, body.map(|b| b.to_string()).as_deref(), &[])
    }

    fn login_cookie(&self, user: &str, password: &str) -> Auth {
        let jar = self.dir.path().join(unique_token("jar-"));
        let login = Auth::Cookie { jar: jar.clone(), csrf: String::new() };
        let r = self.post("/api/login", &login, json!({ "user": user, "password": password, "mode": "cookie" }));
        let v = r.ok();
        Auth::Cookie { jar, csrf: v["csrf_token"].as_str().expect("csrf_token").to_string() }
    }

    fn login_bearer(&self, user: &str, password: &str) -> Auth {
        let r = self.post("/api/login", &Auth::Anonymous, json!({ "user": user, "password": password, "mode": "bearer" }));
        Auth::Bearer(r.ok()["token"].as_str().expect("token").to_string())
    }

    /// The case ids of a queue listing (any query string).
    fn ids(&self, auth: &Auth, queue: &str, query: &str) -> Vec<i64> {
        let v = self.get(&format!("/api/queues/{queue}/cases?{query}"), auth).ok();
        v["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect()
    }

    /// The case a registration number opened.
    fn case_of(&self, auth: &Auth, queue: &str, number: &str) -> i64 {
        let v = self.get(&format!("/api/queues/{queue}/cases?status=all&limit=200"), auth).ok();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["opening"] == number)
            .unwrap_or_else(|| panic!("{number} not listed in {queue}: {v}"))["id"]
            .as_i64()
            .unwrap()
    }
}

/// The session token curl keeps in the jar (what the browser holds and scripts cannot read).
fn cookie_token(auth: &Auth) -> String {
    let Auth::Cookie { jar, .. } = auth else { panic!("not a cookie session") };
    let jar = std::fs::read_to_string(jar).unwrap();
    jar.lines()
        .find(|l| l.contains("mailroom_session"))
        .and_then(|l| l.split('\t').next_back())
        .expect("a session cookie in the jar")
        .to_string()
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = find(raw, b"\r\n\r\n").unwrap_or_else(|| panic!("no header block in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    Resp { status, headers, body: raw[split + 4..].to_vec() }
}

// ---------------------------------------------------------------------------------------------
// Mail and the database
// ---------------------------------------------------------------------------------------------

fn message(from: &str, to: &str, subject: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "From: Ann Customer <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n{extra_headers}\r\nHello, please help.\r\n",
        unique_token("m")
    )
    .into_bytes()
}

fn send(server: &Server, to: &str, subject: &str) -> String {
    server.smtp_session().send_message(CUSTOMER, &[to], &message(CUSTOMER, to, subject, ""))
}

/// The live database, for what the API deliberately does not show (ciphertext, UIDs, audit rows).
fn count(server: &Server, sql: &str) -> i64 {
    server.sql_i64(sql)
}

fn column_i64(server: &Server, sql: &str) -> Vec<i64> {
    server.sql(sql).lines().map(|v| v.parse().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

#[test]
fn cookie_login_requires_csrf_token_and_same_origin() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let number = send(&server, "support@example.com", "Where is my order?");
    let api = Api::new(&server);

    let jar = api.dir.path().join("jar");
    let r = api.post(
        "/api/login",
        &Auth::Cookie { jar: jar.clone(), csrf: String::new() },
        json!({ "user": "anna", "password": PW, "mode": "cookie" }),
    );
    let login = r.ok();
    let cookie = r.header("set-cookie").expect("a session cookie");
    for attribute in ["mailroom_session=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "cookie lacks {attribute}: {cookie}");
    }
    assert_eq!(login["user"], "anna");
    assert_eq!(login["mode"], "cookie");
    assert!(login.get("token").is_none(), "the cookie's token is not in the body: {login}");
    let csrf = login["csrf_token"].as_str().unwrap().to_string();
    let session = Auth::Cookie { jar, csrf: csrf.clone() };

    // Reads need no token.
    let me = api.get("/api/me", &session).ok();
    assert_eq!(me["user"], "anna");
    assert_eq!(me["session"], "cookie");
    assert_eq!(me["queues"], json!(["support"]));
    assert_eq!(me["csrf_token"], csrf.as_str());
    let case = api.case_of(&session, "support", &number);

    // Changes need the token, and only this session's.
    let claim = format!("/api/cases/{case}/claim");
    assert_eq!(api.call("POST", &claim, &session.with_csrf(""), None, &[]).error(403), "csrf");
    assert_eq!(api.call("POST", &claim, &session.with_csrf("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), None, &[]).error(403), "csrf");
    let other = api.login_cookie("anna", PW);
    let Auth::Cookie { csrf: other_csrf, .. } = &other else { unreachable!() };
    assert_ne!(other_csrf, &csrf);
    assert_eq!(api.call("POST", &claim, &session.with_csrf(other_csrf), None, &[]).error(403), "csrf");
    // A page on another origin cannot use the cookie even with the token.
    assert_eq!(api.call("POST", &claim, &session, None, &["Origin: https://evil.example"]).error(403), "csrf");
    assert_eq!(api.get(&format!("/api/cases/{case}"), &session).ok()["status"], "new", "nothing changed");
    let origin = format!("Origin: {}", server.http_url());
    let claimed = api.call("POST", &claim, &session, None, &[&origin]).ok();
    assert_eq!(claimed["case"]["assignee"], "anna");

    // Nobody logs a browser in from another site.
    let r = api.call(
        "POST",
        "/api/login",
        &Auth::Anonymous,
        Some(&json!({ "user": "anna", "password": PW }).to_string()),
        &["Origin: https://evil.example"],
    );
    assert_eq!(r.error(403), "csrf");
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn bearer_tokens_need_no_csrf_and_each_token_works_only_the_way_it_was_issued() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let number = send(&server, "support@example.com", "Bearer case");
    let api = Api::new(&server);
    let r = api.post("/api/login", &Auth::Anonymous, json!({ "user": "anna", "password": PW, "mode": "bearer" }));
    let body = r.ok();
    assert!(r.header("set-cookie").is_none(), "bearer login sets no cookie");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    let bearer = Auth::Bearer(body["token"].as_str().unwrap().to_string());
    assert_eq!(api.get("/api/me", &bearer).ok()["session"], "bearer");
    let case = api.case_of(&bearer, "support", &number);
    assert_eq!(api.post(&format!("/api/cases/{case}/claim"), &bearer, json!({})).ok()["case"]["status"], "open");

    // A bearer token in a cookie, or a cookie token as bearer, is refused.
    let token = bearer.bearer_token();
    let r = api.call("GET", "/api/me", &Auth::Anonymous, None, &[&format!("Cookie: mailroom_session={token}")]);
    assert_eq!(r.error(401), "unauthenticated");
    let cookie = api.login_cookie("anna", PW);
    assert_eq!(api.get("/api/me", &Auth::Bearer(cookie_token(&cookie))).error(401), "unauthenticated");
}

#[test]
fn logout_ends_the_session_and_unknown_or_forged_tokens_get_401() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let api = Api::new(&server);
    assert_eq!(api.get("/api/me", &Auth::Anonymous).error(401), "unauthenticated");
    assert_eq!(api.get("/api/me", &Auth::Bearer("forged-token-forged-token-forged-token-xx".into())).error(401), "unauthenticated");
    assert_eq!(
        api.call("GET", "/api/queues", &Auth::Anonymous, None, &["Cookie: mailroom_session=bm90LWEtc2Vzc2lvbg"]).error(401),
        "unauthenticated"
    );

    let cookie = api.login_cookie("anna", PW);
    let token = cookie_token(&cookie);
    let r = api.call("POST", "/api/logout", &cookie, None, &[]);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")), "logout clears the cookie: {r:?}");
    // The jar dropped the cookie; the token itself must be dead as well.
    assert_eq!(
        api.call("GET", "/api/me", &Auth::Anonymous, None, &[&format!("Cookie: mailroom_session={token}")]).error(401),
        "unauthenticated"
    );
    let bearer = api.login_bearer("anna", PW);
    assert_eq!(api.call("POST", "/api/logout", &bearer, None, &[]).status, 204);
    assert_eq!(api.get("/api/me", &bearer).error(401), "unauthenticated");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM audit WHERE action = 'logout' AND actor = 'user:anna'"), 2);
}

#[test]
fn an_expired_session_gets_401() {
    let server = start("[access]\nsession_lifetime = \"2s\"\n");
    server.add_user("anna", PW, &["support-agent"]);
    let api = Api::new(&server);
    let bearer = api.login_bearer("anna", PW);
    assert_eq!(api.get("/api/me", &bearer).status, 200);
    std::thread::sleep(Duration::from_millis(2300));
    let r = api.get("/api/me", &bearer);
    assert_eq!(r.error(401), "unauthenticated");
    assert!(r.json()["reason"].as_str().unwrap().contains("expired"), "{}", r.text());
}

#[test]
fn wrong_passwords_locked_users_and_throttling() {
    let server = start("[access]\nfailure_delay = \"10ms\"\nmax_failure_delay = \"20ms\"\nmax_failures = 3\nlockout = \"30s\"\n");
    server.add_user("anna", PW, &["support-agent"]);
    let api = Api::new(&server);
    let login =
        |password: &str| api.post("/api/login", &Auth::Anonymous, json!({ "user": "anna", "password": password, "mode": "bearer" }));
    assert_eq!(login("not-the-password").error(401), "invalid_credentials");
    assert_eq!(api.post("/api/login", &Auth::Anonymous, json!({ "user": "nobody", "password": PW })).error(401), "invalid_credentials");
    let session = api.login_bearer("anna", PW);

    // A lock ends the session at once, and the correct password no longer opens one.
    let out = server.cli(&["user", "lock", "anna"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(api.get("/api/queues", &session).error(401), "unauthenticated");
    assert_eq!(login(PW).error(401), "invalid_credentials");
    let out = server.cli(&["user", "unlock", "anna"]);
    assert!(out.status.success(), "{}", out.stderr);
    let session = api.login_bearer("anna", PW);
    assert_eq!(api.get("/api/me", &session).status, 200);

    // Guessing: after max_failures the source is locked out, even for the right password.
    for _ in 0..3 {
        assert_eq!(login("guess-guess-guess").error(401), "invalid_credentials");
    }
    let r = login(PW);
    assert_eq!(r.error(429), "throttled");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert!(count(&server, "SELECT COUNT(*) FROM audit WHERE action = 'login.failed'") >= 5);
}

// ---------------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------------

#[test]
fn queue_listing_filters_sorts_and_pages_and_is_audited() {
    let server = start("");
    server.add_user("lead", PW, &["support-lead"]);
    server.add_user("anna", PW, &["support-agent"]);
    let numbers: Vec<String> = (0..6).map(|i| send(&server, "support@example.com", &format!("Question {i}"))).collect();
    send(&server, "sales@example.com", "Sales question");
    let api = Api::new(&server);
    let lead = api.login_bearer("lead", PW);
    let anna = api.login_bearer("anna", PW);
    let c: Vec<i64> = numbers.iter().map(|n| api.case_of(&lead, "support", n)).collect();

    api.post(&format!("/api/cases/{}/priority", c[0]), &lead, json!({ "priority": "urgent" })).ok();
    api.post(&format!("/api/cases/{}/priority", c[1]), &lead, json!({ "priority": "low" })).ok();
    api.post(&format!("/api/cases/{}/category", c[1]), &lead, json!({ "category": "BZZX" })).ok();
    api.post(&format!("/api/cases/{}/tags", c[1]), &lead, json!({ "add": ["vip"] })).ok();
    api.post(&format!("/api/cases/{}/claim", c[2]), &anna, json!({})).ok();
    api.post(&format!("/api/cases/{}/status", c[3]), &lead, json!({ "status": "waiting" })).ok();
    api.post(&format!("/api/cases/{}/status", c[4]), &lead, json!({ "status": "resolved" })).ok();
    // Time passes: case 5 (new) and case 3 (waiting on the customer) are past their due time.
    server.sql(&format!("UPDATE cases SET due_at = 1000 WHERE id IN ({}, {})", c[5], c[3]));
    server.recount_queues();

    let queues = api.get("/api/queues", &anna).ok();
    assert_eq!(queues["queues"].as_array().unwrap().len(), 1, "anna reads support only: {queues}");
    let support = &queues["queues"][0];
    assert_eq!(
        (support["name"].as_str(), support["active"].as_i64(), support["overdue"].as_i64()),
        (Some("support"), Some(5), Some(1)),
        "{support}"
    );
    assert_eq!(support["by_status"], json!({ "new": 3, "open": 1, "waiting": 1 }));
    assert_eq!(support["permissions"], json!(["read", "act"]));
    assert_eq!(support["address"], "support@example.com");

    let set = |query: &str| {
        let mut ids = api.ids(&anna, "support", query);
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<i64>| {
        v.sort();
        v
    };
    // Filters.
    assert_eq!(set(""), sorted(vec![c[0], c[1], c[2], c[3], c[5]]), "active by default");
    assert_eq!(set("status=all").len(), 6);
    assert_eq!(set("status=resolved"), vec![c[4]]);
    assert_eq!(set("status=open,waiting"), sorted(vec![c[2], c[3]]));
    assert_eq!(set("priority=urgent"), vec![c[0]]);
    assert_eq!(set("priority=low,urgent"), sorted(vec![c[0], c[1]]));
    assert_eq!(set("category=BZZX"), vec![c[1]]);
    assert_eq!(set("category=none"), sorted(vec![c[0], c[2], c[3], c[5]]));
    assert_eq!(set("tag=vip"), vec![c[1]]);
    assert_eq!(set("assignee=me"), vec![c[2]]);
    assert_eq!(set("assignee=anna"), vec![c[2]]);
    assert_eq!(set("assignee=none"), sorted(vec![c[0], c[1], c[3], c[5]]));
    assert_eq!(set("overdue=true"), vec![c[5]], "a case waiting on the customer is not overdue");
    assert_eq!(set("overdue=false"), sorted(vec![c[0], c[1], c[2], c[3]]));
    assert_eq!(set("overdue=true&status=all&priority=normal"), vec![c[5]]);

    // Each item: metadata plus the opening message's subject and sender.
    let page = api.get("/api/queues/support/cases?status=all&sort=opened", &anna).ok();
    let first = &page["items"][0];
    assert_eq!(first["id"], c[0]);
    assert_eq!(first["opening"], numbers[0].as_str());
    assert_eq!(first["subject"], "Question 0");
    assert_eq!(first["from"], json!({ "name": "Ann Customer", "address": CUSTOMER }));
    assert_eq!(first["message_count"], 1);
    assert_eq!(first["priority"], "urgent");
    assert_eq!(page["items"][1]["tags"], json!(["vip"]));
    assert_eq!(page["items"][1]["category"], "BZZX");
    assert_eq!(page["items"][2]["assignee"], "anna");
    assert_eq!(page["items"][5]["overdue"], true);
    assert_eq!(page["next_cursor"], Value::Null);

    // Sorts.
    let items =
        |query: &str| api.get(&format!("/api/queues/support/cases?status=all&{query}"), &anna).ok()["items"].as_array().unwrap().clone();
    let by = |items: &[Value], key: &str| -> Vec<(String, i64)> {
        items.iter().map(|i| (i[key].as_str().unwrap().to_string(), i["id"].as_i64().unwrap())).collect()
    };
    let due = by(&items("sort=due"), "due");
    assert!(due.windows(2).all(|w| w[0] <= w[1]), "sort=due: {due:?}");
    assert_eq!(due.first().unwrap().1.min(due[1].1), c[3].min(c[5]), "the past-due cases come first");
    let mut rev = by(&items("sort=-due"), "due");
    rev.reverse();
    assert_eq!(rev, due, "-due is the reverse of due");
    let ids_of = |items: Vec<Value>| items.iter().map(|i| i["id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids_of(items("sort=opened")), c);
    assert_eq!(ids_of(items("sort=-opened")), c.iter().rev().copied().collect::<Vec<_>>());
    let updated = by(&items("sort=updated"), "updated_at");
    assert!(updated.windows(2).all(|w| w[0] <= w[1]), "sort=updated: {updated:?}");
    assert_eq!(updated.last().unwrap().1, c[4], "the last change was resolving case 4");
    let prio = items("sort=priority");
    assert_eq!(prio.first().unwrap()["id"], c[0]);
    assert_eq!(prio.last().unwrap()["id"], c[1], "low last");
    assert_eq!(ids_of(items("sort=-priority")).first(), Some(&c[1]));

    // Paging: by offset, and by cursor through the whole listing.
    let all = ids_of(items("sort=due"));
    assert_eq!(api.ids(&anna, "support", "status=all&sort=due&limit=2&offset=2"), all[2..4].to_vec());
    let mut paged = Vec::new();
    let mut query = "status=all&sort=due&limit=2".to_string();
    loop {
        let page = api.get(&format!("/api/queues/support/cases?{query}"), &anna).ok();
        paged.extend(ids_of(page["items"].as_array().unwrap().clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("status=all&sort=due&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let cursor = api.get("/api/queues/support/cases?status=all&sort=due&limit=1", &anna).ok()["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(api.get(&format!("/api/queues/support/cases?sort=opened&cursor={cursor}"), &anna).error(422), "invalid");
    assert_eq!(api.get(&format!("/api/queues/support/cases?offset=1&cursor={cursor}"), &anna).error(422), "invalid");
    assert_eq!(api.get("/api/queues/support/cases?cursor=garbage", &anna).error(422), "invalid");

    // Bad parameters are refused with a reason.
    for query in
        ["limit=201", "limit=0", "offset=10001", "status=bogus", "priority=extreme", "sort=size", "category=NOPE", "assignee=", "tag="]
    {
        let r = api.get(&format!("/api/queues/support/cases?{query}"), &anna);
        assert_eq!(r.error(422), "invalid", "{query}");
    }
    assert!(
        api.get("/api/queues/support/cases?status=bogus", &anna).json()["reason"].as_str().unwrap().contains("waiting"),
        "the reason names the known statuses"
    );
    assert_eq!(api.get("/api/queues/support/cases?limit=many", &anna).error(400), "bad_request");
    assert_eq!(api.get("/api/queues/support/cases?colour=red", &anna).error(400), "bad_request");
    // A queue that exists but is not anna's answers exactly like one that does not exist.
    let (theirs, unknown) = (api.get("/api/queues/sales/cases", &anna), api.get("/api/queues/nowhere/cases", &anna));
    assert_eq!((theirs.error(404), unknown.error(404)), ("not_found".to_string(), "not_found".to_string()));
    assert_eq!(theirs.text().replace("sales", "Q"), unknown.text().replace("nowhere", "Q"), "same body for both");
    // An assignee name that is no user lists what a user without cases here lists: nothing.
    let ghost = api.get("/api/queues/support/cases?assignee=ghost", &anna).ok();
    let lead_cases = api.get("/api/queues/support/cases?assignee=lead", &anna).ok();
    assert_eq!(ghost["items"], json!([]));
    assert_eq!(ghost, lead_cases, "an unknown name and a user with no case here look alike");

    // One audit entry per listing.
    let before = count(&server, "SELECT COUNT(*) FROM audit WHERE action = 'queue.list' AND actor = 'user:anna'");
    api.get("/api/queues/support/cases?sort=priority", &anna).ok();
    let after = count(&server, "SELECT COUNT(*) FROM audit WHERE action = 'queue.list' AND actor = 'user:anna'");
    assert_eq!(after, before + 1);
    let detail: String = server.sql("SELECT detail FROM audit WHERE action = 'queue.list' ORDER BY id DESC LIMIT 1");
    assert!(detail.contains("sort=priority") && !detail.contains("Question"), "{detail}");
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

#[test]
fn case_view_and_raw_download_are_authorised_and_audited() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("sam", PW, &["sales-agent"]);
    let multipart = format!(
        "From: Ann Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nCc: Boss <boss@client.example.org>\r\nSubject: Invoice attached\r\n\
         Message-ID: <{}@client.example.org>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n\
         --XX\r\nContent-Type: text/plain\r\n\r\nSee the invoice.\r\n--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n",
        unique_token("m")
    );
    let number = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], multipart.as_bytes());
    let api = Api::new(&server);
    let anna = api.login_bearer("anna", PW);
    let sam = api.login_bearer("sam", PW);
    let id = api.case_of(&anna, "support", &number);

    let case = api.get(&format!("/api/cases/{id}"), &anna).ok();
    assert_eq!(case["id"], id);
    assert_eq!(case["opening"], number.as_str());
    assert_eq!(case["queue"], "support");
    let m = &case["messages"][0];
    assert_eq!(m["number"], number.as_str());
    assert_eq!(m["subject"], "Invoice attached");
    assert_eq!(m["from"][0]["address"], CUSTOMER);
    assert_eq!(m["to"][0]["address"], "support@example.com");
    assert_eq!(m["cc"][0], json!({ "name": "Boss", "address": "boss@client.example.org" }));
    assert_eq!(m["attachments"], json!([{ "name": "invoice.pdf", "content_type": "application/pdf", "size": 9 }]));
    assert!(m["received_at"].as_str().unwrap().ends_with('Z'));
    assert!(m["date"].as_str().unwrap().starts_with("2026-03-02T10:00:00"));
    assert!(m["tags"].is_array() && m.get("auth").is_some());
    assert_eq!(case["entries"], json!([]));
    assert_eq!(case["history"], json!([]));
    assert_eq!(
        count(&server, &format!("SELECT COUNT(*) FROM audit WHERE action = 'case.read' AND object = 'case:{id}' AND actor = 'user:anna'")),
        1
    );

    let r = api.get(m["raw"].as_str().unwrap(), &anna);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("message/rfc822"));
    assert!(r.header("content-disposition").unwrap().contains(&format!("{number}.eml")));
    assert_eq!(r.body, server.show_message(&number), "the download is the stored message with our trace header");
    let detail: String = server.sql("SELECT detail FROM audit WHERE action = 'message.read' AND actor = 'user:anna' ORDER BY id LIMIT 1");
    assert_eq!(detail, "via=http");

    // Someone who cannot read the queue learns nothing, not even that the case exists.
    assert_eq!(api.get(&format!("/api/cases/{id}"), &sam).error(404), "not_found");
    assert_eq!(api.get(&format!("/api/cases/{}", id + 1000), &sam).error(404), "not_found");
    assert_eq!(api.get(&format!("/api/messages/{number}/raw"), &sam).error(404), "not_found");
    assert_eq!(api.get("/api/messages/MR-2026-999999/raw", &anna).error(404), "not_found");
    assert_eq!(api.get("/api/messages/garbage/raw", &anna).error(404), "not_found");
    assert_eq!(api.get("/api/cases/abc", &anna).error(400), "bad_request");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM audit WHERE actor = 'user:sam' AND action IN ('case.read', 'message.read')"), 0);
}

/// Every action with a valid body, for permission checks.
fn actions() -> Vec<(&'static str, Value)> {
    vec![
        ("claim", json!({})),
        ("assign", json!({ "user": null })),
        ("transfer", json!({ "queue": "sales" })),
        ("escalate", json!({})),
        ("status", json!({ "status": "open" })),
        ("priority", json!({ "priority": "low" })),
        ("category", json!({ "category": "BZZX" })),
        ("tags", json!({ "add": ["x"] })),
        ("notes", json!({ "text": "a note" })),
        ("reply", json!({ "body": "Dear customer" })),
        ("follow-up", json!({ "due": "2099-01-01T09:00:00Z" })),
    ]
}

#[test]
fn actions_change_the_case_and_need_their_permission() {
    let server = start("");
    for (user, role) in
        [("anna", "support-agent"), ("bob", "support-agent"), ("rita", "support-reader"), ("lead", "support-lead"), ("sam", "sales-agent")]
    {
        server.add_user(user, PW, &[role]);
    }
    let number = send(&server, "support@example.com", "Broken widget");
    let api = Api::new(&server);
    let [anna, bob, rita, lead, sam] = ["anna", "bob", "rita", "lead", "sam"].map(|u| api.login_bearer(u, PW));
    let id = api.case_of(&anna, "support", &number);
    let act = |auth: &Auth, action: &str, body: Value| api.post(&format!("/api/cases/{id}/{action}"), auth, body);

    // A reader may read but do nothing; someone from another queue gets "not found".
    for (action, body) in actions() {
        assert_eq!(act(&rita, action, body.clone()).error(403), "forbidden", "{action} by a reader");
        assert_eq!(act(&sam, action, body).error(404), "not_found", "{action} from another queue");
    }
    // Permission comes before validation: a refused caller learns nothing from the reason.
    assert_eq!(act(&rita, "status", json!({ "status": "bogus" })).error(403), "forbidden");
    assert_eq!(act(&sam, "transfer", json!({ "queue": "nowhere" })).error(404), "not_found");
    assert_eq!(act(&sam, "assign", json!({ "user": "ghost" })).error(404), "not_found");
    assert_eq!(act(&anna, "assign", json!({ "user": "bob" })).error(403), "forbidden", "assign needs assign");
    assert_eq!(act(&anna, "transfer", json!({ "queue": "sales" })).error(403), "forbidden", "transfer needs supervise");
    let untouched = api.get(&format!("/api/cases/{id}"), &anna).ok();
    assert_eq!(untouched["history"], json!([]), "refused actions leave no trace");

    // claim
    let case = act(&anna, "claim", json!({})).ok()["case"].clone();
    assert_eq!((case["assignee"].as_str(), case["status"].as_str()), (Some("anna"), Some("open")));
    assert_eq!(act(&bob, "claim", json!({})).ok()["case"]["assignee"], "bob", "claiming takes the case over");
    // assign
    assert_eq!(act(&lead, "assign", json!({ "user": "anna" })).ok()["case"]["assignee"], "anna");
    let (sam_reason, ghost_reason) = (act(&lead, "assign", json!({ "user": "sam" })), act(&lead, "assign", json!({ "user": "ghost" })));
    assert_eq!(sam_reason.error(422), "invalid", "sam cannot read support");
    assert_eq!(ghost_reason.error(422), "invalid");
    assert_eq!(sam_reason.text().replace("sam", "U"), ghost_reason.text().replace("ghost", "U"), "no user and no reader look alike");
    assert_eq!(act(&lead, "assign", json!({ "user": null })).ok()["case"]["assignee"], Value::Null);
    // escalate
    let due_before = case["due"].as_str().unwrap().to_string();
    let case = act(&anna, "escalate", json!({})).ok()["case"].clone();
    assert_eq!((case["priority"].as_str(), case["escalated"].as_bool()), (Some("urgent"), Some(true)));
    assert_eq!(case["tags"], json!(["escalated"]));
    assert!(case["due"].as_str().unwrap() < due_before.as_str(), "urgent is due sooner: {} vs {due_before}", case["due"]);
    // priority
    let case = act(&anna, "priority", json!({ "priority": "low" })).ok()["case"].clone();
    assert_eq!(case["priority"], "low");
    assert!(case["due"].as_str().unwrap() > due_before.as_str(), "low is due later");
    assert_eq!(act(&anna, "priority", json!({ "priority": "extreme" })).error(422), "invalid");
    // status
    let case = act(&anna, "status", json!({ "status": "resolved" })).ok()["case"].clone();
    assert_eq!(case["status"], "resolved");
    assert!(case["resolved_at"].is_string());
    let case = act(&anna, "status", json!({ "status": "waiting" })).ok()["case"].clone();
    assert_eq!((case["status"].as_str(), &case["resolved_at"]), (Some("waiting"), &Value::Null));
    let r = act(&anna, "status", json!({ "status": "pending" }));
    assert_eq!(r.error(422), "invalid");
    assert!(r.json()["reason"].as_str().unwrap().contains("closed"), "names the known statuses");
    assert_eq!(act(&anna, "status", json!({ "status": "new" })).error(409), "conflict", "refused: the case's state forbids it");
    // category
    assert_eq!(act(&anna, "category", json!({ "category": "TSJJ" })).ok()["case"]["category"], "TSJJ");
    assert_eq!(act(&anna, "category", json!({ "category": "NOPE" })).error(422), "invalid");
    assert_eq!(act(&anna, "category", json!({ "category": null })).ok()["case"]["category"], Value::Null);
    // tags
    assert_eq!(act(&anna, "tags", json!({ "add": ["callback", "vip"] })).ok()["case"]["tags"], json!(["escalated", "callback", "vip"]));
    assert_eq!(act(&anna, "tags", json!({ "remove": ["escalated", "vip"] })).ok()["case"]["tags"], json!(["callback"]));
    assert_eq!(act(&anna, "tags", json!({ "add": ["two words"] })).error(422), "invalid");
    // notes, sealed
    let secret = unique_token("note-text-");
    let note = act(&anna, "notes", json!({ "text": format!("Customer called: {secret}") })).ok();
    assert!(note["entry"].as_i64().is_some());
    assert_eq!(act(&anna, "notes", json!({ "text": "  " })).error(422), "invalid");
    let sealed = server.sql_blob("case_entries", "body_ct", "kind = 'note'");
    assert!(find(&sealed, secret.as_bytes()).is_none(), "notes are stored encrypted");
    // follow-up
    let case = act(&anna, "follow-up", json!({ "due": "2099-01-01T09:00:00+01:00", "note": "call back" })).ok()["case"].clone();
    assert_eq!(case["follow_up_at"], "2099-01-01T08:00:00.000Z");
    assert_eq!(act(&anna, "follow-up", json!({ "due": "2001-01-01T09:00:00Z" })).error(422), "invalid");
    assert_eq!(act(&anna, "follow-up", json!({ "due": "next tuesday" })).error(422), "invalid");
    // reply without an outbox
    let r = act(&anna, "reply", json!({ "body": "Dear customer" }));
    assert_eq!(r.error(503), "unavailable");
    assert!(r.json()["reason"].as_str().unwrap().contains("[outbox]"));
    // … but a bad request is refused as such first (401 → 404 → 403 → 422 → 503).
    assert_eq!(act(&anna, "reply", json!({ "body": " \n\t" })).error(422), "invalid");
    assert_eq!(act(&anna, "reply", json!({ "body": "" })).error(422), "invalid");
    assert_eq!(act(&anna, "reply", json!({})).error(422), "invalid");
    assert_eq!(act(&rita, "reply", json!({ "body": "" })).error(403), "forbidden", "permission before validation");

    // The case view shows the decrypted entries and the history of it all.
    let view = api.get(&format!("/api/cases/{id}"), &rita).ok();
    let entries = view["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0]["kind"].as_str(), entries[0]["author"].as_str()), (Some("note"), Some("anna")));
    assert_eq!(entries[0]["text"], format!("Customer called: {secret}"));
    assert_eq!(
        (entries[1]["kind"].as_str(), entries[1]["text"].as_str(), entries[1]["due"].as_str()),
        (Some("follow-up"), Some("call back"), Some("2099-01-01T08:00:00.000Z"))
    );
    let history: Vec<&str> = view["history"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(
        history,
        [
            "claim",
            "claim",
            "assign",
            "assign",
            "escalate",
            "priority",
            "status",
            "status",
            "category",
            "category",
            "tags",
            "tags",
            "note",
            "follow-up"
        ],
        "one history row per change"
    );
    assert_eq!((view["history"][1]["detail"].as_str(), view["history"][1]["actor"].as_str()), (Some("assignee anna→bob"), Some("bob")));
    assert_eq!((view["history"][2]["detail"].as_str(), view["history"][2]["actor"].as_str()), (Some("assignee bob→anna"), Some("lead")));
    let audited = count(
        &server,
        &format!("SELECT COUNT(*) FROM audit WHERE action LIKE 'case.%' AND action != 'case.read' AND object = 'case:{id}'"),
    );
    assert_eq!(audited, history.len() as i64, "one audit entry per change");
    assert_eq!(api.get("/api/admin/audit/verify", &lead).error(403), "forbidden");
}

/// Every file under `dir` (recursively) that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> (Vec<PathBuf>, usize) {
    let (mut hits, mut scanned) = (Vec::new(), 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let (h, n) = files_containing(&path, needle);
            hits.extend(h);
            scanned += n;
        } else {
            scanned += 1;
            if find(&std::fs::read(&path).unwrap_or_default(), needle).is_some() {
                hits.push(path);
            }
        }
    }
    (hits, scanned)
}

#[test]
fn case_tags_are_sealed_found_by_blind_index_and_never_in_clear_on_disk_or_in_the_log() {
    let mut server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let number = send(&server, "support@example.com", "Account question");
    send(&server, "support@example.com", "Another question");
    let api = Api::new(&server);
    let anna = api.login_bearer("anna", PW);
    let id = api.case_of(&anna, "support", &number);
    // A tag carrying customer information, as staff write them.
    let tag = unique_token("acct-Ann-Customer-");

    let case = api.post(&format!("/api/cases/{id}/tags"), &anna, json!({ "add": [tag, "callback"] })).ok()["case"].clone();
    assert_eq!(case["tags"], json!([tag, "callback"]));
    assert_eq!(api.ids(&anna, "support", &format!("tag={tag}")), vec![id], "the listing filters by the sealed tag");
    assert_eq!(api.ids(&anna, "support", "tag=callback"), vec![id]);
    assert_eq!(api.ids(&anna, "support", "tag=acct"), Vec::<i64>::new(), "exact match only, never a prefix");
    let view = api.get(&format!("/api/cases/{id}"), &anna).ok();
    assert_eq!(view["tags"], json!([tag, "callback"]));
    assert_eq!(view["history"][0]["detail"], "tags added=2 removed=0 count=2", "the history counts, it does not quote");
    let case = api.post(&format!("/api/cases/{id}/tags"), &anna, json!({ "remove": ["callback"] })).ok()["case"].clone();
    assert_eq!(case["tags"], json!([tag]));
    assert_eq!(api.ids(&anna, "support", "tag=callback"), Vec::<i64>::new(), "a removed tag no longer finds the case");

    // Stored sealed: no clear column, one blind index row per tag, nothing in history or audit.
    assert_eq!(count(&server, "SELECT COUNT(*) FROM cases WHERE tags != '[]'"), 0);
    assert_eq!(count(&server, &format!("SELECT COUNT(*) FROM cases WHERE id = {id} AND tags_ct IS NOT NULL")), 1);
    assert_eq!(count(&server, &format!("SELECT COUNT(*) FROM case_tags WHERE case_id = {id}")), 1);
    let details: Vec<String> = server
        .sql("SELECT COALESCE(detail, '') FROM audit UNION ALL SELECT COALESCE(detail, '') FROM case_history")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(details.iter().any(|d| d == "tags added=0 removed=1 count=1"), "{details:?}");
    assert!(!details.iter().any(|d| d.contains(&tag) || d.contains("callback")), "{details:?}");

    // Nowhere on disk (database, WAL, shm, certificates …) nor in the server log, live and after a crash.
    for when in ["running", "after SIGKILL"] {
        let (hits, scanned) = files_containing(&server.data_dir, tag.as_bytes());
        assert!(scanned >= 2, "scanned only {scanned} files");
        assert!(hits.is_empty(), "{when}: the tag in clear in {hits:?}");
        if server.is_postgres() {
            for (name, bytes) in server.store_contents() {
                assert!(find(&bytes, tag.as_bytes()).is_none(), "{when}: the tag in clear in the {name}");
            }
        }
        assert!(!server.log_text().contains(&tag), "{when}: the tag in the server log");
        server.kill9();
    }
}

/// What the OpenAPI document declares, the server enforces (schemathesis found each of these
/// answered differently from the document; tests/openapi_fuzz.rs runs it).
#[test]
fn requests_outside_the_documented_constraints_are_refused_and_inside_them_accepted() {
    let server = start("");
    server.add_user("lead", PW, &["support-lead"]);
    let number = send(&server, "support@example.com", "Constraints");
    let api = Api::new(&server);
    let lead = api.login_bearer("lead", PW);
    let id = api.case_of(&lead, "support", &number);
    let act = |action: &str, body: Value| api.post(&format!("/api/cases/{id}/{action}"), &lead, body);

    // Case ids are 1 ..= i64::MAX: outside that a 400 naming the rule, inside it a plain 404.
    for bad in ["0", "-1", "9223372036854775808", "419789444545890877440", "1.5"] {
        assert_eq!(api.get(&format!("/api/cases/{bad}"), &lead).error(400), "bad_request", "{bad}");
        assert_eq!(api.post(&format!("/api/cases/{bad}/claim"), &lead, json!({})).error(400), "bad_request", "{bad}");
    }
    assert_eq!(api.get("/api/cases/9223372036854775807", &lead).error(404), "not_found");
    // Lists are exact: known words, commas, no spaces, no empty items, no other spelling.
    for query in [
        "status=open,%20waiting",
        "status=open,,waiting",
        "status=open,",
        "priority=Urgent",
        "priority=urgent%20",
        "tag=two%20words",
        "tag=a,b",
    ] {
        assert_eq!(api.get(&format!("/api/queues/support/cases?{query}"), &lead).error(422), "invalid", "{query}");
    }
    assert_eq!(api.ids(&lead, "support", "status=new,open&priority=normal,urgent"), vec![id]);
    assert_eq!(api.ids(&lead, "support", "status=all&category=none"), vec![id]);
    // Fields the document marks required are required, null where it allows null, never absent.
    for (action, body) in [
        ("assign", json!({})),
        ("category", json!({})),
        ("follow-up", json!({ "due": "2099-01-01T09:00:00Z", "note": null })),
        ("follow-up", json!({ "due": " 2099-01-01T09:00:00Z" })),
        ("priority", json!({ "priority": "Urgent" })),
        ("notes", json!({ "text": "\u{3000}\u{feff}" })),
        ("tags", json!({ "add": ["nul\u{0}"] })),
        ("tags", json!({ "add": ["x".repeat(65)] })),
    ] {
        assert_eq!(act(action, body.clone()).error(422), "invalid", "{action} {body}");
    }
    assert_eq!(act("assign", json!({ "user": null })).ok()["case"]["assignee"], Value::Null);
    assert_eq!(act("category", json!({ "category": null })).ok()["case"]["category"], Value::Null);
    assert_eq!(act("notes", json!({ "text": "\u{85}" })).status, 200, "NEL is text, as in the document's pattern");
    assert_eq!(act("tags", json!({ "add": ["x".repeat(64), "ünïcödé"] })).ok()["case"]["tags"].as_array().unwrap().len(), 2);
    // The document says so too.
    let doc = api.get("/api/openapi.json", &Auth::Anonymous).ok();
    let id_schema = &doc["paths"]["/api/cases/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(
        (id_schema["format"].as_str(), id_schema["minimum"].as_i64(), id_schema["maximum"].as_i64()),
        (Some("int64"), Some(1), Some(i64::MAX))
    );
    let list = &doc["paths"]["/api/queues/{queue}/cases"]["get"]["parameters"];
    let param = |name: &str| list.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["schema"].clone();
    assert_eq!(param("category")["enum"], json!(["BZZX", "TSJJ", "none"]), "the configured codes");
    assert_eq!(param("tag")["maxLength"], 64);
    assert_eq!(param("assignee")["minLength"], 1);
    assert!(!doc.to_string().contains("\"complaints\""), "queue names are not listed in the public document");
}

/// PostgreSQL cannot store U+0000 in text, so it is refused before any query, on both engines:
/// 422 in a JSON body or query, 404 in a path (no name contains it); never a 500.
#[test]
fn text_with_nul_is_refused_as_invalid_on_every_engine() {
    let server = start("");
    server.add_user("lead", PW, &["support-lead"]);
    let number = send(&server, "support@example.com", "NUL");
    let api = Api::new(&server);
    let lead = api.login_bearer("lead", PW);
    let id = api.case_of(&lead, "support", &number);
    for (action, body) in [
        ("assign", json!({ "user": "le\u{0}ad" })),
        ("notes", json!({ "text": "a note \u{0} with NUL" })),
        ("tags", json!({ "add": ["ok", "n\u{0}"] })),
        ("transfer", json!({ "queue": "complaints\u{0}" })),
    ] {
        let r = api.post(&format!("/api/cases/{id}/{action}"), &lead, body.clone());
        assert_eq!(r.error(422), "invalid", "{action} {body}");
        assert!(r.json()["reason"].as_str().unwrap().contains("U+0000"), "{}", r.text());
    }
    let login = api.post("/api/login", &Auth::Anonymous, json!({ "user": "lead\u{0}", "password": PW, "mode": "bearer" }));
    assert_eq!(login.error(422), "invalid");
    assert_eq!(
        api.get("/api/queues/support/cases?assignee=le%00ad", &lead).error(400),
        "bad_request",
        "a NUL in a query is a malformed query"
    );
    assert_eq!(api.get("/api/queues/supp%00ort/cases", &lead).error(404), "not_found");
    // Nothing of it was written, and the server still answers.
    assert_eq!(api.get(&format!("/api/cases/{id}"), &lead).ok()["tags"], json!([]));
    assert_eq!(api.post(&format!("/api/cases/{id}/notes"), &lead, json!({ "text": "fine" })).status, 200);
}

#[test]
fn transfer_moves_the_case_between_queue_listings_with_fresh_uids() {
    let server = start("");
    server.add_user("lead", PW, &["support-lead"]);
    server.add_user("sam", PW, &["sales-agent"]);
    server.add_user("anna", PW, &["support-agent"]);
    let number = send(&server, "support@example.com", "Actually a sales question");
    let reply_number = server.smtp_session().send_message(
        CUSTOMER,
        &["support@example.com"],
        &message(CUSTOMER, "support@example.com", &format!("Re: [{number}] more"), ""),
    );
    let sales_before = send(&server, "sales@example.com", "Earlier sales mail");
    let api = Api::new(&server);
    let [lead, sam, anna] = ["lead", "sam", "anna"].map(|u| api.login_bearer(u, PW));
    let id = api.case_of(&lead, "support", &number);
    api.post(&format!("/api/cases/{id}/claim"), &anna, json!({})).ok();
    let uids_before = column_i64(&server, &format!("SELECT uid FROM message_cases WHERE case_id = {id} ORDER BY message_id"));
    assert_eq!(uids_before.len(), 2, "the reply joined the case");
    let max_sales_uid =
        count(&server, "SELECT MAX(mc.uid) FROM message_cases mc JOIN cases c ON c.id = mc.case_id WHERE c.queue = 'sales'");

    assert_eq!(api.post(&format!("/api/cases/{id}/transfer"), &lead, json!({ "queue": "nowhere" })).error(422), "invalid");
    assert_eq!(api.post(&format!("/api/cases/{id}/transfer"), &lead, json!({ "queue": "support" })).error(409), "conflict");
    let moved = api.post(&format!("/api/cases/{id}/transfer"), &lead, json!({ "queue": "sales" })).ok()["case"].clone();
    assert_eq!(moved["queue"], "sales");
    assert_eq!(moved["assignee"], Value::Null, "the assignment ends with the move");

    assert!(!api.ids(&lead, "support", "status=all").contains(&id), "gone from support");
    assert!(!api.ids(&anna, "support", "status=all").contains(&id));
    assert!(api.ids(&sam, "sales", "status=all").contains(&id), "listed in sales");
    assert_eq!(api.get(&format!("/api/cases/{id}"), &anna).error(404), "not_found", "support staff no longer see it");
    assert_eq!(api.get(&format!("/api/cases/{id}"), &sam).ok()["messages"].as_array().unwrap().len(), 2);
    assert_eq!(api.get(&format!("/api/messages/{reply_number}/raw"), &sam).status, 200);

    // IMAP UIDs: fresh values above everything the sales mailbox had, below anything newer.
    let uids_after = column_i64(&server, &format!("SELECT uid FROM message_cases WHERE case_id = {id} ORDER BY uid"));
    assert_eq!(uids_after.len(), 2);
    assert!(
        uids_after[0] > max_sales_uid && uids_after[0] > *uids_before.iter().max().unwrap(),
        "fresh UIDs {uids_after:?} after {uids_before:?}, sales max {max_sales_uid}"
    );
    assert_eq!(uids_after[1], uids_after[0] + 1);
    let later = send(&server, "sales@example.com", "Later sales mail");
    let later_uid =
        count(&server, &format!("SELECT mc.uid FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE m.number = '{later}'"));
    assert!(later_uid > uids_after[1], "a later message gets a higher UID ({later_uid} vs {uids_after:?})");
    assert!(api.ids(&sam, "sales", "status=all").len() >= 3, "{sales_before} and {later} are there too");
    let history = api.get(&format!("/api/cases/{id}"), &sam).ok()["history"].clone();
    assert_eq!(history[1]["detail"], "queue support→sales assignee anna→none");
}

// ---------------------------------------------------------------------------------------------
// Replies through the outbox
// ---------------------------------------------------------------------------------------------

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    let head = &data[..data.find("\r\n\r\n").unwrap_or(data.len())];
    head.split("\r\n").find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

#[test]
fn a_reply_goes_out_with_the_tag_and_the_customers_answer_joins_the_case() {
    let (port, captured) = capture_smtp();
    let server =
        start(&format!("[outbox]\nsmarthost = \"127.0.0.1:{port}\"\ntls = \"none\"\npoll_interval = \"50ms\"\nundo_seconds = 0\n"));
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("lead", PW, &["support-lead"]);
    let subject = unique_token("Refund for order ");
    let original = message(CUSTOMER, "support@example.com", &subject, "Reply-To: Ann Private <ann.private@client.example.org>\r\n");
    let customer_msgid =
        header(std::str::from_utf8(&original).unwrap(), "Message-ID").unwrap().trim_matches(|c| c == '<' || c == '>').to_string();
    let number = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &original);
    let api = Api::new(&server);
    let anna = api.login_cookie("anna", PW);
    let id = api.case_of(&anna, "support", &number);

    let text = "Dear Ann,\nyour refund is on its way.\n.\nKind regards";
    let r = api.post(&format!("/api/cases/{id}/reply"), &anna, json!({ "body": text })).ok();
    assert_eq!(r["case"]["status"], "waiting");
    assert!(r["case"]["first_response_at"].is_string());
    assert!(r["entry"].as_i64().is_some() && r["outbox"].as_i64().is_some());

    assert!(
        wait_until(Duration::from_secs(20), || captured.lock().unwrap().iter().any(|m| m.data.contains("Subject: Re: "))),
        "the reply never reached the smarthost"
    );
    let reply = captured.lock().unwrap().iter().find(|m| m.data.contains("Subject: Re: ")).cloned().unwrap();
    assert_eq!(reply.from, "support@example.com", "sent from the queue's address");
    assert_eq!(reply.to, vec!["ann.private@client.example.org".to_string()], "to the Reply-To address");
    let data = &reply.data;
    let reply_subject = header(data, "Subject").unwrap();
    assert_eq!(reply_subject, format!("Re: [{number}] {subject}"));
    assert!(header(data, "From").unwrap().contains("support@example.com"));
    assert!(header(data, "To").unwrap().contains("ann.private@client.example.org"));
    assert_eq!(header(data, "In-Reply-To"), Some(format!("<{customer_msgid}>").as_str()));
    assert!(header(data, "References").unwrap().contains(&customer_msgid));
    let reply_msgid = header(data, "Message-ID").unwrap().to_string();
    assert!(reply_msgid.contains(&number) && reply_msgid.ends_with("@mx.example.com>"), "{reply_msgid}");
    assert!(data.contains("your refund is on its way."), "{data}");
    assert!(header(data, "Auto-Submitted").is_none(), "a person's reply is not automatic");

    // The delivery shows in the case view.
    assert!(
        wait_until(Duration::from_secs(10), || api.get(&format!("/api/cases/{id}"), &anna).ok()["entries"][0]["outbox_status"] == "sent")
    );
    let view = api.get(&format!("/api/cases/{id}"), &anna).ok();
    assert_eq!(view["entries"][0]["kind"], "reply");
    assert_eq!(view["entries"][0]["state"], serde_json::Value::Null);

    // Undo after sending: refused with the reason (the JSON API calls the same service as the page).
    let entry = view["entries"][0]["id"].as_i64().unwrap();
    let refused = api.post(&format!("/api/cases/{id}/replies/{entry}/undo"), &anna, json!({}));
    assert_eq!(refused.error(409), "conflict");
    let no_reply = api.post(&format!("/api/cases/{id}/replies/999999/undo"), &anna, json!({}));
    assert_eq!(no_reply.error(422), "invalid");
    assert_eq!(view["entries"][0]["to"], "ann.private@client.example.org");
    assert_eq!(view["entries"][0]["subject"], reply_subject);

    // The customer answers the reply: it joins the same case.
    let answer = format!(
        "From: Ann Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: {reply_subject}\r\nIn-Reply-To: {reply_msgid}\r\nMessage-ID: <{}@client.example.org>\r\n\r\nThanks!\r\n",
        unique_token("answer")
    );
    let answer_number = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], answer.as_bytes());
    let view = api.get(&format!("/api/cases/{id}"), &anna).ok();
    let numbers: Vec<&str> = view["messages"].as_array().unwrap().iter().map(|m| m["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, vec![number.as_str(), answer_number.as_str()]);
    assert_eq!(api.ids(&anna, "support", "status=all").len(), 1, "no new case was opened");
    assert_eq!(view["status"], "open", "the customer's answer re-opens a case waiting on them: {view}");
    let history: Vec<&str> = view["history"].as_array().unwrap().iter().filter_map(|h| h["detail"].as_str()).collect();
    assert!(history.contains(&"status waiting→open (the customer wrote again)"), "{history:?}");

    // Supervisors see the first response in the statistics; agents see no statistics.
    let lead = api.login_bearer("lead", PW);
    let stats = api.get("/api/stats", &lead).ok();
    let support = &stats["queues"][0];
    assert_eq!(
        (support["queue"].as_str(), support["total"].as_i64(), support["responded"].as_i64()),
        (Some("support"), Some(1), Some(1)),
        "{stats}"
    );
    assert!(support["median_first_response_seconds"].as_f64().is_some_and(|s| s >= 0.0), "{stats}");
    assert_eq!(support["by_status"], json!({ "open": 1 }));
    assert_eq!(api.get("/api/stats", &anna).error(403), "forbidden");
    assert_eq!(api.get("/api/stats?queue=sales", &lead).error(403), "forbidden");

    // The log names neither the customer nor the subject.
    let log = server.log_text();
    for secret in [CUSTOMER, "ann.private@client.example.org", subject.as_str(), "refund is on its way"] {
        assert!(!log.contains(secret), "the server log contains {secret:?}");
    }
    assert!(log.contains("route=\"/api/cases/{id}/reply\""), "one line per request names the route");
}

// ---------------------------------------------------------------------------------------------
// Security officer
// ---------------------------------------------------------------------------------------------

#[test]
fn the_officer_manages_access_and_sees_no_customer_data() {
    // One officer alone: changes apply without a second person (tests/officer_separation.rs has
    // the approvals), and accounts are enrolled with the codes the officer passes on.
    let server = start("[access]\ngrant_approval = \"none\"");
    server.add_user("olga", PW, &["security-officer"]);
    server.add_user("anna", PW, &["support-agent"]);
    let subject = unique_token("Private matter ");
    let number = send(&server, "support@example.com", &subject);
    let api = Api::new(&server);
    let olga = api.login_cookie("olga", PW);
    let anna = api.login_bearer("anna", PW);
    let case = api.case_of(&anna, "support", &number);

    // Everyone else: 403 on every officer endpoint.
    let admin_calls: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/admin/users", None),
        ("POST", "/api/admin/users", Some(json!({ "name": "x", "password": PW }))),
        ("POST", "/api/admin/users/anna/password", Some(json!({ "password": PW }))),
        ("POST", "/api/admin/users/olga/lock", None),
        ("POST", "/api/admin/users/olga/unlock", None),
        ("POST", "/api/admin/users/olga/two-factor/reset", None),
        ("DELETE", "/api/admin/users/olga", None),
        ("GET", "/api/admin/roles", None),
        ("POST", "/api/admin/roles", Some(json!({ "name": "x" }))),
        ("POST", "/api/admin/roles/support-agent/grants", Some(json!({ "queue": "sales", "permissions": ["read"] }))),
        ("DELETE", "/api/admin/roles/support-agent/grants", Some(json!({ "queue": "support" }))),
        ("POST", "/api/admin/roles/security-officer/members", Some(json!({ "user": "anna" }))),
        ("DELETE", "/api/admin/roles/security-officer/members/olga", None),
        ("GET", "/api/admin/audit", None),
        ("GET", "/api/admin/audit/verify", None),
    ];
    for (method, path, body) in &admin_calls {
        let r = api.call(method, path, &anna, body.as_ref().map(|b| b.to_string()).as_deref(), &[]);
        assert_eq!(r.error(403), "forbidden", "{method} {path} by an agent");
    }
    assert_eq!(api.get("/api/me", &anna).ok()["roles"], json!(["support-agent"]), "nothing changed");

    // Users.
    let users = api.get("/api/admin/users", &olga).ok();
    let names: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["anna", "olga"]);
    assert_eq!(
        api.call("POST", "/api/admin/users", &olga.with_csrf(""), Some(&json!({ "name": "carl", "password": PW }).to_string()), &[])
            .error(403),
        "csrf"
    );
    let r = api.post("/api/admin/users", &olga, json!({ "name": "carl", "roles": ["support-agent"] }));
    assert_eq!(r.status, 201, "{}", r.text());
    let enrol = |code: &Value, password: &str| {
        let body = json!({ "name": "carl", "code": code, "password": password });
        assert_eq!(api.post("/api/enrol", &Auth::Anonymous, body).status, 200, "carl sets his own password");
    };
    enrol(&r.json()["enrolment"]["code"], PW);
    assert_eq!(api.post("/api/admin/users", &olga, json!({ "name": "carl" })).error(409), "conflict");
    assert_eq!(api.post("/api/admin/users", &olga, json!({ "name": "dora", "password": "short" })).error(422), "invalid");
    assert_eq!(api.post("/api/admin/users", &olga, json!({ "name": "dora", "roles": ["no-such-role"] })).error(404), "not_found");
    let carl = api.login_bearer("carl", PW);
    assert_eq!(api.ids(&carl, "support", "").len(), 1);
    assert_eq!(api.post("/api/admin/users/carl/lock", &olga, json!({})).status, 204);
    assert_eq!(api.get("/api/me", &carl).error(401), "unauthenticated", "a lock ends carl's session");
    assert_eq!(api.post("/api/login", &Auth::Anonymous, json!({ "user": "carl", "password": PW })).error(401), "invalid_credentials");
    assert!(
        api.get("/api/admin/users", &olga).ok()["users"].as_array().unwrap().iter().any(|u| u["name"] == "carl" && u["locked"] == true)
    );
    assert_eq!(api.post("/api/admin/users/carl/unlock", &olga, json!({})).status, 204);
    let carl = api.login_bearer("carl", PW);
    let new_password = "another-long-password-2";
    let reset = api.post("/api/admin/users/carl/password", &olga, json!({}));
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(api.get("/api/me", &carl).error(401), "unauthenticated", "a new password ends the sessions");
    enrol(&reset.json()["enrolment"]["code"], new_password);
    let carl = api.login_bearer("carl", new_password);
    assert_eq!(api.post("/api/admin/users/nobody/lock", &olga, json!({})).error(404), "not_found");
    assert_eq!(api.post("/api/admin/users/olga/lock", &olga, json!({})).error(403), "forbidden", "not your own account");

    // Roles, grants, members.
    assert_eq!(api.post("/api/admin/roles", &olga, json!({ "name": "night-shift", "description": "evenings" })).status, 201);
    assert_eq!(api.post("/api/admin/roles", &olga, json!({ "name": "night-shift" })).error(409), "conflict");
    assert_eq!(
        api.post("/api/admin/roles/night-shift/grants", &olga, json!({ "queue": "sales", "permissions": ["read", "act"] })).status,
        204
    );
    assert_eq!(
        api.post("/api/admin/roles/night-shift/grants", &olga, json!({ "queue": "nowhere", "permissions": ["read"] })).error(422),
        "invalid"
    );
    assert_eq!(
        api.post("/api/admin/roles/night-shift/grants", &olga, json!({ "queue": "sales", "permissions": ["fly"] })).error(422),
        "invalid"
    );
    assert_eq!(
        api.post("/api/admin/roles/security-officer/grants", &olga, json!({ "queue": "sales", "permissions": ["read"] })).error(422),
        "invalid"
    );
    assert_eq!(api.post("/api/admin/roles/night-shift/members", &olga, json!({ "user": "carl" })).status, 204);
    assert_eq!(api.get("/api/me", &carl).ok()["queues"], json!(["support", "sales"]), "the grant takes effect at once");
    let roles = api.get("/api/admin/roles", &olga).ok();
    let night = roles["roles"].as_array().unwrap().iter().find(|r| r["name"] == "night-shift").unwrap().clone();
    assert_eq!(night["grants"], json!({ "sales": ["read", "act"] }));
    assert_eq!(night["members"], json!(["carl"]));
    assert_eq!(
        api.delete("/api/admin/roles/night-shift/grants", &olga, Some(json!({ "queue": "sales", "permissions": ["act"] }))).status,
        204
    );
    assert_eq!(api.delete("/api/admin/roles/night-shift/members/carl", &olga, None).status, 204);
    assert_eq!(api.get("/api/me", &carl).ok()["queues"], json!(["support"]));
    assert_eq!(api.delete("/api/admin/users/carl", &olga, None).status, 204);
    assert_eq!(api.get("/api/me", &carl).error(401), "unauthenticated");
    assert_eq!(api.delete("/api/admin/users/olga", &olga, None).error(403), "forbidden", "not your own account");

    // Separation of duties: no queue role, no customer data.
    assert_eq!(api.get("/api/queues", &olga).error(403), "forbidden");
    assert_eq!(api.get("/api/queues/support/cases", &olga).error(404), "not_found", "like a queue that does not exist");
    assert_eq!(api.get(&format!("/api/cases/{case}"), &olga).error(404), "not_found");
    assert_eq!(api.get(&format!("/api/messages/{number}/raw"), &olga).error(404), "not_found");
    assert_eq!(api.post(&format!("/api/cases/{case}/claim"), &olga, json!({})).error(404), "not_found");
    assert_eq!(api.get("/api/stats", &olga).error(403), "forbidden");

    // The audit log: paged, verified, and free of customer data.
    let first = api.get("/api/admin/audit?limit=5", &olga).ok();
    assert_eq!(first["entries"].as_array().unwrap().len(), 5);
    let after = first["next_after"].as_i64().unwrap();
    let rest = api.get(&format!("/api/admin/audit?after={after}&limit=1000"), &olga);
    let rest_json = rest.ok();
    assert_eq!(rest_json["entries"][0]["id"], after + 1);
    let actions: Vec<&str> = rest_json["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in [
        "user.add",
        "user.lock",
        "user.unlock",
        "user.reset",
        "role.add",
        "role.grant",
        "role.revoke",
        "role.assign",
        "role.unassign",
        "user.remove",
        "queue.list",
        "audit.read",
    ] {
        assert!(actions.contains(&action), "audit log lacks {action}: {actions:?}");
    }
    for text in [rest.text(), first.to_string(), api.get("/api/admin/users", &olga).text(), api.get("/api/admin/roles", &olga).text()] {
        assert!(!text.contains(CUSTOMER) && !text.contains(&subject), "the officer saw customer data: {text}");
    }
    assert_eq!(api.get("/api/admin/audit?limit=0", &olga).error(422), "invalid");
    let verify = api.get("/api/admin/audit/verify", &olga).ok();
    assert_eq!(verify["intact"], true, "{verify}");
    assert!(verify["entries"].as_i64().unwrap() > 20);
}

// ---------------------------------------------------------------------------------------------
// The document and the error shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    let server = start("");
    let api = Api::new(&server);
    let r = api.get("/api/openapi.json", &Auth::Anonymous);
    let doc = r.ok();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = mailroom::http::openapi::operations(&doc);
    documented.sort();
    let mut routed: Vec<(String, String)> =
        mailroom::http::routes().list.into_iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    routed.sort();
    assert_eq!(documented, routed, "the served document and the router agree");
    assert!(routed.len() >= 35, "{routed:?}");

    // Every documented operation is really routed on the live server: nothing answers with the
    // unknown-route or wrong-method error.
    for (method, path) in &documented {
        let concrete = path
            .replace("{queue}", "support")
            .replace("{id}", "1")
            .replace("{number}", "MR-2026-000001")
            .replace("{name}", "someone")
            .replace("{role}", "support-agent")
            .replace("{user}", "someone");
        let r = api.call(&method.to_uppercase(), &concrete, &Auth::Anonymous, None, &[]);
        let code = if r.status == 200 { String::new() } else { r.json()["error"].as_str().unwrap_or_default().to_string() };
        assert!(r.status != 405 && code != "no_such_route", "{method} {path} is documented but not routed: {}", r.text());
        let public = path == "/api/openapi.json" || path == "/api/login" || path == "/api/enrol";
        if !public {
            assert_eq!(code, "unauthenticated", "{method} {path} without a session");
        }
    }
    assert_eq!(api.get("/api/nothing-here", &Auth::Anonymous).error(404), "no_such_route");
    // `/` is the web page (not in the document): anonymous goes to the login page, whose footer
    // points to the document.
    assert!(!routed.iter().any(|(_, p)| p == "/"), "the page is not an API route");
    let index = api.get("/", &Auth::Anonymous);
    assert_eq!((index.status, index.header("location").as_deref()), (303, Some("/login")));
    let login = api.get("/login", &Auth::Anonymous);
    assert_eq!(login.status, 200);
    assert!(login.text().contains("<a href=\"/api/openapi.json\">"), "{}", login.text());
}

#[test]
fn errors_are_json_with_the_right_status_and_shutdown_is_clean() {
    let mut server = Server::start(http_config("max_body = 2048"));
    server.add_user("anna", PW, &["support-agent"]);
    let number = send(&server, "support@example.com", "Errors");
    let api = Api::new(&server);
    let anna = api.login_bearer("anna", PW);
    let id = api.case_of(&anna, "support", &number);
    let notes = format!("/api/cases/{id}/notes");

    assert_eq!(api.call("PUT", "/api/me", &anna, None, &[]).error(405), "method_not_allowed");
    assert_eq!(api.get("/api/nope", &anna).error(404), "no_such_route");
    assert_eq!(
        api.call("POST", &notes, &anna, Some("{\"text\": \"x\"}"), &["Content-Type: text/plain"]).error(415),
        "unsupported_media_type"
    );
    assert_eq!(api.call("POST", &notes, &anna, None, &[]).error(415), "unsupported_media_type");
    assert_eq!(api.call("POST", &notes, &anna, Some("{\"text\": "), &[]).error(400), "bad_json");
    let r = api.call("POST", &notes, &anna, Some("{\"txt\": \"x\"}"), &[]);
    assert_eq!(r.error(422), "invalid");
    assert!(r.json()["reason"].as_str().unwrap().contains("txt"), "the serde reason names the field: {}", r.text());
    let r = api.call("POST", &notes, &anna, Some("{\"text\": 5}"), &[]);
    assert_eq!(r.error(422), "invalid");
    assert!(r.json()["reason"].as_str().unwrap().contains("invalid type"), "{}", r.text());
    let big = json!({ "text": "x".repeat(4000) }).to_string();
    assert_eq!(api.call("POST", &notes, &anna, Some(&big), &[]).error(413), "too_large");
    assert_eq!(api.post("/api/login", &Auth::Anonymous, json!({ "user": "anna" })).error(422), "invalid");
    assert_eq!(
        api.post("/api/login", &Auth::Anonymous, json!({ "user": "anna", "password": PW, "mode": "telepathy" })).error(422),
        "invalid"
    );
    assert_eq!(api.get(&format!("/api/cases/{id}"), &anna).ok()["entries"], json!([]), "nothing was stored");
    let r = api.get("/api/me", &anna);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    // Every API answer, JSON and errors alike, carries the restrictive CSP; plain HTTP no HSTS.
    for (what, r) in [
        ("JSON", api.get("/api/me", &anna)),
        ("the document", api.get("/api/openapi.json", &Auth::Anonymous)),
        ("401", api.get("/api/me", &Auth::Anonymous)),
        ("404 route", api.get("/api/nope", &anna)),
        ("405", api.call("PUT", "/api/me", &anna, None, &[])),
        ("413", api.call("POST", &notes, &anna, Some(&big), &[])),
        ("422", api.post("/api/login", &Auth::Anonymous, json!({ "user": "anna" }))),
    ] {
        let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no Content-Security-Policy: {r:?}"));
        assert_eq!(csp, mailroom::http::CONTENT_SECURITY_POLICY, "{what}");
        assert!(r.header("strict-transport-security").is_none(), "{what}: HSTS over plain HTTP");
    }
    // The web page has its own: scripts and styles from this server only, nothing inline.
    for (what, r) in [("the login page", api.get("/login", &Auth::Anonymous)), ("a page's 404", api.get("/nope", &Auth::Anonymous))] {
        assert_eq!(r.header("content-security-policy").as_deref(), Some(mailroom::http::web::headers::CONTENT_SECURITY_POLICY), "{what}");
        assert!(r.header("strict-transport-security").is_none(), "{what}: HSTS over plain HTTP");
    }

    let status = server.terminate_and_wait();
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(server.http_addr()).is_err(), "the HTTP listener is closed");
}

/// A config with extra keys in the harness's `[http]` table (extra_toml can only add tables).
fn http_config(keys: &str) -> Opts {
    let config =
        Opts::default().config_toml().replace("[http]\nlisten = [\"127.0.0.1:0\"]", &format!("[http]\nlisten = [\"127.0.0.1:0\"]\n{keys}"));
    assert!(config.contains(keys));
    Opts { raw_config: Some(format!("{config}\n{ROLES}")), ..Default::default() }
}

#[test]
fn https_serves_the_same_api_over_tls() {
    let server = Server::start(http_config("tls = true"));
    server.add_user("anna", PW, &["support-agent"]);
    let login = |extra: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "-i", "--max-time", "30", "--cacert"])
            .arg(server.cert_path())
            .args(["--resolve", &format!("{HOST}:{}:127.0.0.1", server.http_addr().port())]);
        cmd.args(extra).args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &json!({ "user": "anna", "password": PW, "mode": "bearer" }).to_string(),
        ]);
        cmd.arg(format!("https://{HOST}:{}/api/login", server.http_addr().port()));
        cmd.output().unwrap()
    };
    // Verified against the server's certificate, by its host name.
    let out = login(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = parse_response(&out.stdout).ok()["token"].as_str().unwrap().to_string();
    let https = |path: &str| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-i", "-k", "-H", &format!("Authorization: Bearer {token}")]).arg(format!("https://{}{path}", server.http_addr()));
        parse_response(&cmd.output().unwrap().stdout)
    };
    let me = https("/api/me");
    assert_eq!(me.ok()["user"], "anna");
    // Over TLS every answer, errors too, tells the browser to use nothing else for a year.
    for r in [&me, &https("/api/nope"), &https("/login"), &https("/"), &parse_response(&out.stdout)] {
        assert_eq!(r.header("strict-transport-security").as_deref(), Some("max-age=31536000"), "{r:?}");
        assert!(r.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")), "{r:?}");
    }
    // No plain HTTP on the TLS port.
    let plain = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://{}/api/openapi.json", server.http_addr()))
        .output()
        .unwrap();
    assert!(
        !plain.status.success() || !String::from_utf8_lossy(&plain.stdout).contains("openapi"),
        "plain HTTP answered on the TLS listener"
    );
}

#[test]
fn slow_clients_run_into_the_request_timeout() {
    use std::io::Read;
    let server = Server::start(http_config("request_timeout = \"1s\""));
    let connect = || {
        let s = std::net::TcpStream::connect(server.http_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // A body that never arrives: the request is abandoned with a JSON 503.
    let mut s = connect();
    s.write_all(b"POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\"")
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&answer, b"}").is_none() {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed without an answer: {:?}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let resp = parse_response(&answer);
    assert_eq!(resp.error(503), "unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // Headers that never end: the connection is closed.
    let mut s = connect();
    s.write_all(b"GET /api/me HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let result = s.read_to_end(&mut rest);
    let still_open = matches!(&result, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    assert!(!still_open && started.elapsed() < Duration::from_secs(8), "the connection stayed open for {:?}", started.elapsed());
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}
