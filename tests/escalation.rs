//! SLA escalation over real sockets: `mailroom serve` with a one-second sweep, customer mail by
//! SMTP, notifications leaving through `[outbox]` to a capture SMTP server on loopback, the API
//! and the web page through curl. Time passes by moving the cases' stored times in the database
//! (sqlite3 or psql, under the store's writer lock). A case near its due time warns its assignee
//! once; a case past it is escalated (priority, tag, flag) and its queue's supervisors get one
//! mail; a case waiting on the customer does not breach; a kill -9 and a restart send nothing
//! again; nothing goes to the customer; the audit log and the web list show what happened.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

const PW: &str = "correct-horse-battery-staple";
const CUSTOMER: &str = "customer@client.example.org";
const ANNA: &str = "anna@staff.example.org";
const LENA: &str = "lena@staff.example.org";

const SETUP: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "support-lead"
grants = { support = ["read", "act", "supervise"] }

[intake]
acknowledge = false

# Working time is clock time here, so the moved cases warn whatever the hour the test runs at
# (the working-time warning point is unit-tested in intake::sla).
[sla]
working_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
hours = "00:00-24:00"

[escalation]
warn_at = "80%"
breach_priority = "urgent"
breach_tag = "overdue"
notify_new = ["urgent"]
sweep_every = "1s"
web_url = "https://mailroom.example.org"
"#;

fn start() -> (Server, Arc<Mutex<Vec<Captured>>>) {
    let (port, captured) = capture_smtp();
    let extra = format!("{SETUP}\n[outbox]\nsmarthost = \"127.0.0.1:{port}\"\ntls = \"none\"\npoll_interval = \"100ms\"\n");
    let server = Server::start(Opts { extra_toml: extra, ..Default::default() });
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("lena", PW, &["support-lead"]);
    server.add_user("otto", PW, &["support-agent"]);
    (server, captured)
}

fn send(server: &Server, subject: &str) -> String {
    let message = format!(
        "From: Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello, please help.\r\n",
        unique_token("m")
    );
    server.smtp_session().send_message(CUSTOMER, &["support@example.com"], message.as_bytes())
}

fn case_of(server: &Server, number: &str) -> i64 {
    server.sql_i64(&format!("SELECT id FROM cases WHERE opening_number = {}", sql_quote(number)))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

const HOUR: i64 = 3_600_000;

/// Moves a case in time: opened `opened_ago` ms ago, due `due_in` ms from now (negative: past).
fn set_times(server: &Server, case: i64, opened_ago: i64, due_in: i64, extra: &str) {
    let now = now_ms();
    server.sql_write_transaction(&format!(
        "UPDATE cases SET opened_at = {}, due_at = {}{extra} WHERE id = {case};",
        now - opened_ago,
        now + due_in
    ));
}

/// One API call through curl with a bearer token; (status, JSON body or Null).
fn api(server: &Server, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "30", "-w", "\n%{http_code}", "-X", method, "-H", &format!("Authorization: Bearer {token}")]);
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", body]);
    }
    let out = cmd.arg(format!("{}{path}", server.http_url())).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn token(server: &Server, user: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!(r#"{{"user":"{user}","password":"{PW}","mode":"bearer"}}"#))
        .arg(format!("{}/api/login", server.http_url()))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["token"].as_str().unwrap_or_else(|| panic!("login of {user}: {v}")).to_string()
}

fn mails(captured: &Arc<Mutex<Vec<Captured>>>) -> Vec<Captured> {
    captured.lock().unwrap().clone()
}

fn header<'a>(data: &'a str, name: &str) -> &'a str {
    let head = &data[..data.find("\r\n\r\n").unwrap_or(data.len())];
    head.split("\r\n").find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": "))).unwrap_or_default()
}

#[test]
fn warnings_and_breaches_are_mailed_once_to_staff_escalated_and_listed() {
    let (mut server, captured) = start();
    // The host's CLI gives anna an address, the officer's API lena; otto has none.
    let out = server.cli(&["user", "email", "anna", ANNA]);
    assert!(out.status.success(), "{}", out.stdout_str());
    server.add_user("olga", PW, &["security-officer"]);
    let olga = token(&server, "olga");
    let (status, body) =
        api(&server, "POST", "/api/admin/users/lena/email", &token(&server, "anna"), Some(&format!(r#"{{"email":"{LENA}"}}"#)));
    assert_eq!(status, 403, "only an officer sets addresses: {body}");
    let (status, body) = api(&server, "POST", "/api/admin/users/lena/email", &olga, Some(r#"{"email":"lena at staff"}"#));
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid")), "{body}");
    let (status, body) = api(&server, "POST", "/api/admin/users/lena/email", &olga, Some(&format!(r#"{{"email":"{LENA}"}}"#)));
    assert_eq!(status, 204, "{body}");
    let (_, users) = api(&server, "GET", "/api/admin/users", &olga, None);
    let email_of = |name: &str| users["users"].as_array().unwrap().iter().find(|u| u["name"] == name).map(|u| u["email"].clone());
    assert_eq!((email_of("lena"), email_of("otto")), (Some(Value::from(LENA)), Some(Value::Null)), "{users}");
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM audit WHERE action = 'user.email' AND detail = 'set'"), 2);
    let (near, late, waiting) = (send(&server, "Near"), send(&server, "Late"), send(&server, "Waiting"));
    let (near_id, late_id, waiting_id) = (case_of(&server, &near), case_of(&server, &late), case_of(&server, &waiting));
    let anna_id = server.sql_i64("SELECT id FROM users WHERE name = 'anna'");
    // 90 % of the SLA time gone (warning point 80 %), assigned to anna; past due; past due but waiting.
    set_times(&server, near_id, 9 * HOUR, HOUR, &format!(", assignee = {anna_id}, status = 'open'"));
    set_times(&server, late_id, 10 * HOUR, -HOUR, "");
    set_times(&server, waiting_id, 10 * HOUR, -HOUR, ", status = 'waiting'");

    assert!(wait_until(Duration::from_secs(20), || mails(&captured).len() >= 2), "two notifications: {:?}", mails(&captured));
    std::thread::sleep(Duration::from_secs(3)); // three more sweeps: nothing more
    let sent = mails(&captured);
    assert_eq!(sent.len(), 2, "one warning, one breach: {sent:?}");
    let warning = sent.iter().find(|m| m.to == [ANNA]).expect("the warning went to the assignee's address");
    assert_eq!(header(&warning.data, "Subject"), format!("SLA warning: {near} (support)"));
    assert!(warning.data.contains(&format!("https://mailroom.example.org/cases/{near_id}")), "{}", warning.data);
    assert_eq!(warning.from, "", "the null sender: nothing bounces back");
    let breach = sent.iter().find(|m| m.to == [LENA]).expect("the breach went to the supervisor");
    assert_eq!(header(&breach.data, "Subject"), format!("SLA breached: {late} (support)"));
    assert!(sent.iter().all(|m| m.to.iter().all(|t| t != CUSTOMER) && !m.data.contains(CUSTOMER)), "nothing to the customer");

    // The breach escalated the case: priority, tag and flag over the API; the others did not change.
    let anna = token(&server, "anna");
    let (status, case) = api(&server, "GET", &format!("/api/cases/{late_id}"), &anna, None);
    assert_eq!(status, 200, "{case}");
    assert_eq!((case["priority"].as_str(), case["escalated"].as_bool()), (Some("urgent"), Some(true)), "{case}");
    assert!(case["tags"].as_array().unwrap().iter().any(|t| t == "overdue"), "{case}");
    let (_, case) = api(&server, "GET", &format!("/api/cases/{waiting_id}"), &anna, None);
    assert_eq!((case["priority"].as_str(), case["escalated"].as_bool()), (Some("normal"), Some(false)), "a waiting case does not breach");
    assert_eq!(server.sql_i64(&format!("SELECT COUNT(*) FROM escalation_events WHERE case_id = {waiting_id}")), 0);

    // The audit log: each event once, by the sweep, with a notification entry per user told.
    let audit = |action: &str| {
        server.sql_i64(&format!("SELECT COUNT(*) FROM audit WHERE actor = 'system:escalation' AND action = {}", sql_quote(action)))
    };
    assert_eq!((audit("case.sla-warning"), audit("case.sla-breach")), (1, 1));
    assert_eq!(audit("notification.create"), 2, "anna (assignee) and lena (supervisor)");

    // Crash and restart: the marks survived, nothing is sent again.
    server.kill9();
    server.restart();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(mails(&captured).len(), 2, "nothing repeated after kill -9 and restart");
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM escalation_events"), 2);
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM outbox WHERE kind = 'notice'"), 2);

    // The users' lists: anna the warning, lena the breach, otto nothing (the case is anna's).
    let anna = token(&server, "anna");
    let (status, list) = api(&server, "GET", "/api/notifications", &anna, None);
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["case_id"].as_i64(), items[0]["number"].as_str()),
        (Some("warning"), Some(near_id), Some(near.as_str()))
    );
    assert_eq!((items[0]["mailed"].as_bool(), list["unread"].as_i64()), (Some(true), Some(1)));
    let (_, list) = api(&server, "GET", "/api/notifications", &token(&server, "lena"), None);
    assert_eq!(list["items"][0]["kind"].as_str(), Some("breach"), "{list}");
    assert_eq!(list["items"][0]["case_id"].as_i64(), Some(late_id));
    let otto = token(&server, "otto");
    let (_, list) = api(&server, "GET", "/api/notifications", &otto, None);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    // Marking read: only one's own.
    let notification = items[0]["id"].as_i64().unwrap();
    let (_, marked) = api(&server, "POST", "/api/notifications/read", &otto, Some(&format!(r#"{{"ids":[{notification}]}}"#)));
    assert_eq!(marked["marked"].as_i64(), Some(0), "otto cannot mark anna's: {marked}");
    // An id written as a float with nothing after the point is still that id (JSON Schema's
    // integer); a fraction is a 422 naming it.
    let (status, marked) = api(&server, "POST", "/api/notifications/read", &anna, Some(&format!(r#"{{"ids":[{notification}.0, 1e3]}}"#)));
    assert_eq!((status, marked["marked"].as_i64(), marked["unread"].as_i64()), (200, Some(1), Some(0)), "{marked}");
    let (status, refused) = api(&server, "POST", "/api/notifications/read", &anna, Some(r#"{"ids":[1.5]}"#));
    assert!(status == 422 && refused["reason"].as_str().is_some_and(|r| r.contains("1.5 is not a whole number")), "{status} {refused}");
    let (status, marked) = api(&server, "POST", "/api/notifications/read", &anna, Some("{}"));
    assert_eq!((status, marked["marked"].as_i64(), marked["unread"].as_i64()), (200, Some(0), Some(0)), "already read: {marked}");
    let (_, list) = api(&server, "GET", "/api/notifications", &anna, None);
    assert!(list["items"][0]["read_at"].is_string(), "{list}");
}

#[test]
fn an_unassigned_case_warns_the_queue_staff_and_users_without_address_see_it_on_the_page_only() {
    let (server, captured) = start();
    assert!(server.cli(&["user", "email", "anna", ANNA]).status.success());
    let number = send(&server, "Nobody's");
    let id = case_of(&server, &number);
    set_times(&server, id, 9 * HOUR, HOUR, "");
    assert!(wait_until(Duration::from_secs(20), || server.sql_i64("SELECT COUNT(*) FROM notifications") == 3));
    // anna, lena and otto all act on support; only anna has an address. Lena works the queue too.
    let rows = server
        .sql_rows("SELECT u.name, n.kind, n.outbox_id IS NOT NULL FROM notifications n JOIN users u ON u.id = n.user_id ORDER BY u.name");
    let shown: Vec<(String, String, bool)> =
        rows.iter().map(|r| (r[0].clone(), r[1].clone(), r[2] == "1" || r[2] == "t" || r[2] == "true")).collect();
    assert_eq!(
        shown,
        [("anna".into(), "warning".into(), true), ("lena".into(), "warning".into(), false), ("otto".into(), "warning".into(), false)]
    );
    assert!(wait_until(Duration::from_secs(10), || mails(&captured).len() == 1));
    assert_eq!(mails(&captured)[0].to, [ANNA]);

    // The web page: the header's count and the list with a link to the case.
    let (browser, home) = CurlBrowser::at_home(&server, "otto", PW);
    assert!(home.body.contains("notifications-count"), "the header shows the unread count: {}", home.body);
    let page = browser.get("/notifications");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&number) && page.body.contains(&format!("/cases/{id}")), "{}", page.body);
    let page = browser.submit("/notifications", "/notifications/read", &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM notifications WHERE read_at IS NULL"), 2, "otto's own only");

    // Lena loses the queue: her unread warning leaves her count and her list with it.
    let (lena, home) = CurlBrowser::at_home(&server, "lena", PW);
    assert!(home.body.contains("notifications-count\" aria-label=\"unread notifications\">1<"), "{}", home.body);
    let out = server.cli(&["role", "revoke", "support-lead", "--user", "lena"]);
    assert!(out.status.success(), "{}", out.stderr);
    let home = lena.get("/notifications");
    assert!(!home.body.contains("notifications-count") && !home.body.contains(&number), "{}", home.body);
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM notifications WHERE read_at IS NULL"), 2, "kept, only not shown");

    // A bad address is refused by the CLI with a reason.
    let out = server.cli(&["user", "email", "otto", "not an address"]);
    assert!(!out.status.success());
}

#[test]
fn a_new_urgent_case_is_announced_to_the_queue_once() {
    let (server, captured) = start();
    assert!(server.cli(&["user", "email", "anna", ANNA]).status.success());
    let (urgent, normal) = (send(&server, "Urgent"), send(&server, "Normal"));
    let (urgent_id, normal_id) = (case_of(&server, &urgent), case_of(&server, &normal));
    server.sql_write_transaction(&format!("UPDATE cases SET priority = 'urgent' WHERE id = {urgent_id};"));
    assert!(wait_until(Duration::from_secs(20), || mails(&captured).len() == 1), "{:?}", mails(&captured));
    std::thread::sleep(Duration::from_secs(3));
    let sent = mails(&captured);
    assert_eq!(sent.len(), 1, "once: {sent:?}");
    assert_eq!(
        (sent[0].to.as_slice(), header(&sent[0].data, "Subject")),
        ([ANNA.to_string()].as_slice(), format!("New case: {urgent} (support)").as_str())
    );
    let told = server.sql_rows(&format!("SELECT u.name FROM notifications n JOIN users u ON u.id = n.user_id WHERE n.case_id = {urgent_id} AND n.kind = 'new' ORDER BY u.name"));
    assert_eq!(told, [["anna"], ["lena"], ["otto"]], "the queue's staff");
    assert_eq!(
        server.sql_i64(&format!("SELECT COUNT(*) FROM notifications WHERE case_id = {normal_id}")),
        0,
        "a normal case is not announced"
    );
}
