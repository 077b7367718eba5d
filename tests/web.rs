//! The staff web page over real sockets: `mailroom serve` and the `curl` binary posting forms
//! the way a browser without JavaScript does (cookie jar, form bodies, `Origin` and
//! `Sec-Fetch-Site` where a browser sends them). Mail arrives by SMTP. Also the scan of
//! `templates/`: no inline script, style attribute or `on…=` handler, and no text outside the
//! catalogs.

mod common;
// The case page's tests (branch case), in their own file.
#[path = "web/case.rs"]
mod case;
// The settings page and the keyboard script (branch keys).
#[path = "web/settings.rs"]
mod settings;
// Presence markers and the "N new" banner (branch presence).
#[path = "web/presence.rs"]
mod presence;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const PW: &str = "correct-horse-battery-staple";
const CUSTOMER: &str = "customer@client.example.org";
const ROLES: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }
"#;

fn start(extra: &str) -> Server {
    Server::start(Opts { extra_toml: format!("{ROLES}\n{extra}"), ..Default::default() })
}

// ---------------------------------------------------------------------------------------------
// A browser without JavaScript, made of curl
// ---------------------------------------------------------------------------------------------

type Browser = CurlBrowser;

/// Logged in as `user` and on "My queues".
fn signed_in(server: &Server, user: &str) -> (Browser, Page) {
    CurlBrowser::at_home(server, user, PW)
}

fn send(server: &Server, to: &str, subject: &str) -> String {
    let message = format!(
        "From: Ann Customer <{CUSTOMER}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello, please help.\r\n",
        unique_token("m")
    );
    server.smtp_session().send_message(CUSTOMER, &[to], message.as_bytes())
}

/// The count in the "My queues" row of `queue`, column `column` (data-count attribute).
fn count_in(page: &Page, queue: &str, column: &str) -> i64 {
    let row_start = page.body.find(&format!("<tr data-queue=\"{queue}\">")).unwrap_or_else(|| panic!("no row for {queue}: {}", page.body));
    let row = &page.body[row_start..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cell = row.find(&format!("data-count=\"{column}\">")).unwrap_or_else(|| panic!("no {column} in {row}"));
    row[cell..].split('>').nth(1).unwrap().split('<').next().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Login and logout
// ---------------------------------------------------------------------------------------------

#[test]
fn the_login_page_speaks_the_readers_language() {
    let server = start("");
    let browser = Browser::new(&server);
    let en = browser.get("/login");
    assert_eq!(en.status, 200);
    en.assert_html_in("en");
    en.assert_page_headers("the login page");
    for text in [">User name</label>", ">Password</label>", "<button type=\"submit\">Log in</button>", "<h1>Log in</h1>"] {
        assert!(en.body.contains(text), "{text} in {}", en.body);
    }
    assert!(en.body.contains("<a href=\"/api/openapi.json\">"), "the footer points to the API document");
    assert!(!en.body.contains("Log out"), "nobody to log out");
    assert!(en.body.contains("\"historyCacheSize\":0") && en.body.contains("\"allowEval\":false"), "htmx is configured");

    let zh = browser.get_with("/login", &["Accept-Language: zh-CN,zh;q=0.9,en;q=0.5"]);
    zh.assert_html_in("zh-CN");
    assert!(zh.body.contains(">用户名</label>") && zh.body.contains(">密码</label>"), "{}", zh.body);
    let ru = browser.get_with("/login", &["Accept-Language: ru"]);
    ru.assert_html_in("ru");
    assert!(ru.body.contains(">Имя пользователя</label>") && ru.body.contains(">Войти</button>"), "{}", ru.body);
    let other = browser.get_with("/login", &["Accept-Language: de-DE, fr;q=0.8"]);
    other.assert_html_in("en");
}

#[test]
fn login_sets_the_api_session_cookie_and_logout_ends_it() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let browser = Browser::new(&server);

    let wrong = browser.log_in("anna", "not-the-password");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    wrong.assert_html_in("en");
    assert!(wrong.body.contains("User name or password is wrong."), "{}", wrong.body);
    assert!(wrong.body.contains("value=\"anna\""), "the name is kept");
    assert!(!wrong.body.contains("not-the-password"), "never the password");
    assert!(wrong.header("set-cookie").is_none());
    let unknown = browser.log_in("nobody", PW);
    assert_eq!(unknown.status, 401, "an unknown name reads like a wrong password");
    assert!(unknown.body.contains("User name or password is wrong."));
    let empty = browser.log_in("anna", "");
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("Enter a user name and a password."));

    let ok = browser.log_in("anna", PW);
    assert_eq!((ok.status, ok.location()), (303, Some("/")), "{ok:?}");
    ok.assert_page_headers("the login answer");
    let cookie = ok.header("set-cookie").unwrap();
    for part in ["mailroom_session=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    let home = browser.get("/");
    assert_eq!(home.status, 200, "{home:?}");
    home.assert_html_in("en");
    home.assert_page_headers("my queues");
    assert!(home.body.contains("<h1>My queues</h1>"));
    assert!(home.body.contains("<strong>anna</strong>") && home.body.contains(">Log out</button>"), "{}", home.body);
    let again = browser.get("/login");
    assert_eq!((again.status, again.location()), (303, Some("/")), "logged in already");
    // Logging in again replaces the session: the first one ends.
    let first = browser.session_token().unwrap();
    assert_eq!(browser.log_in("anna", PW).status, 303);
    assert_ne!(browser.session_token().unwrap(), first);
    let replaced = Browser::new(&server).get_with("/", &[&format!("Cookie: mailroom_session={first}")]);
    assert_eq!((replaced.status, replaced.location()), (303, Some("/login")), "the replaced session ended");
    let home = browser.get("/");
    assert_eq!(home.status, 200);

    // The page's session is the API's cookie session: the API accepts it too.
    let token = browser.session_token().unwrap();
    let me = Command::new("curl")
        .args(["-s", "-H", &format!("Cookie: mailroom_session={token}")])
        .arg(format!("{}/api/me", server.http_url()))
        .output()
        .unwrap();
    let me: serde_json::Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!((me["user"].as_str(), me["session"].as_str()), (Some("anna"), Some("cookie")), "{me}");
    assert_eq!(me["csrf_token"].as_str().unwrap(), home.csrf(), "one CSRF token for page and API");

    let out = browser.post("/logout", &[("csrf", &home.csrf())]);
    assert_eq!((out.status, out.location()), (303, Some("/login")), "{out:?}");
    assert!(out.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")), "{out:?}");
    let after = browser.get("/");
    assert_eq!((after.status, after.location()), (303, Some("/login")), "logged out");
    // The ended session's cookie, sent again, leads to the login page and is cleared.
    let replay = browser.get_with("/", &[&format!("Cookie: mailroom_session={token}")]);
    assert_eq!((replay.status, replay.location()), (303, Some("/login")));
    assert!(replay.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")));
    let audit = server.sql_i64("SELECT COUNT(*) FROM audit WHERE action = 'logout' AND detail = 'via=web'");
    assert_eq!(audit, 1);
}

#[test]
fn no_or_expired_session_leads_to_the_login_page() {
    let server = start("[access]\nsession_lifetime = \"2s\"\n");
    server.add_user("anna", PW, &["support-agent"]);
    let anonymous = Browser::new(&server);
    let r = anonymous.get("/");
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    r.assert_page_headers("the redirect");
    let r = anonymous.get_with("/", &["Cookie: mailroom_session=made-up-token"]);
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    // A bearer token is not a cookie session.
    let bearer = Command::new("curl")
        .args(["-s", "-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("{{\"user\":\"anna\",\"password\":\"{PW}\",\"mode\":\"bearer\"}}"))
        .arg(format!("{}/api/login", server.http_url()))
        .output()
        .unwrap();
    let bearer: serde_json::Value = serde_json::from_slice(&bearer.stdout).unwrap();
    let r = anonymous.get_with("/", &[&format!("Cookie: mailroom_session={}", bearer["token"].as_str().unwrap())]);
    assert_eq!((r.status, r.location()), (303, Some("/login")), "a bearer token in a cookie");

    let (browser, _) = signed_in(&server, "anna");
    std::thread::sleep(Duration::from_millis(2500));
    let r = browser.get("/");
    assert_eq!((r.status, r.location()), (303, Some("/login")), "the session expired");
}

#[test]
fn lockout_and_a_locked_account_are_told_clearly() {
    let server = start("[access]\nfailure_delay = \"10ms\"\nmax_failure_delay = \"20ms\"\nmax_failures = 3\nlockout = \"30s\"\n");
    server.add_user("anna", PW, &["support-agent"]);
    let browser = Browser::new(&server);
    for _ in 0..3 {
        assert_eq!(browser.log_in("anna", "wrong password").status, 401);
    }
    // Locked out: even the right password waits, and the page says how long.
    let r = browser.log_in("anna", PW);
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("Too many failed logins. Try again in "), "{}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert!(r.header("set-cookie").is_none());
    let ru = browser.request("POST", "/login", &[("user", "anna"), ("password", PW)], &["Accept-Language: ru"]);
    assert!(ru.body.contains("Слишком много неудачных попыток входа"), "{}", ru.body);

    // A locked account: only the right password learns why. (Another server: this source
    // address is locked out on the first.)
    let server = start("");
    server.add_user("bert", PW, &["support-agent"]);
    assert!(server.cli(&["user", "lock", "bert"]).status.success());
    let other = Browser::new(&server);
    let r = other.log_in("bert", PW);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("This account is locked. Ask a security officer to unlock it."), "{}", r.body);
    let r = other.log_in("bert", "wrong password");
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("locked"), "a wrong password does not learn the account is locked");
}

// ---------------------------------------------------------------------------------------------
// CSRF, Origin, Sec-Fetch-Site
// ---------------------------------------------------------------------------------------------

#[test]
fn page_posts_need_the_sessions_csrf_token_from_our_own_origin() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("bert", PW, &["support-agent"]);
    let (browser, home) = signed_in(&server, "anna");
    let csrf = home.csrf();
    let (_, bert_home) = signed_in(&server, "bert");
    let ours = format!("Origin: {}", browser.base);

    let refused = |r: Page, what: &str| {
        assert_eq!(r.status, 403, "{what}: {r:?}");
        r.assert_html_in("en");
        r.assert_page_headers(what);
        assert!(r.body.contains("This request was refused"), "{what}: {}", r.body);
        assert!(r.header("set-cookie").is_none(), "{what}: the session stays");
    };
    refused(browser.request("POST", "/logout", &[], &[&ours]), "no csrf field");
    refused(browser.request("POST", "/logout", &[("csrf", "")], &[&ours]), "an empty csrf field");
    refused(browser.request("POST", "/logout", &[("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")], &[&ours]), "a wrong token");
    refused(browser.request("POST", "/logout", &[("csrf", &bert_home.csrf())], &[&ours]), "another session's token");
    refused(browser.request("POST", "/logout", &[("csrf", &csrf)], &["Origin: http://evil.example"]), "a foreign Origin");
    refused(browser.request("POST", "/logout", &[("csrf", &csrf)], &["Origin: null"]), "an opaque Origin");
    refused(browser.request("POST", "/logout", &[("csrf", &csrf)], &["Sec-Fetch-Site: cross-site"]), "Sec-Fetch-Site cross-site");
    refused(browser.request("POST", "/logout", &[("csrf", &csrf)], &["Sec-Fetch-Site: same-site"]), "Sec-Fetch-Site same-site");
    // What chromium sends for our own form under Referrer-Policy: no-referrer is `Origin: null`
    // with `Sec-Fetch-Site: same-origin` (accepted below); null with any other site is refused.
    for site in ["cross-site", "same-site", "none"] {
        let headers = ["Origin: null", &format!("Sec-Fetch-Site: {site}")];
        refused(browser.request("POST", "/logout", &[("csrf", &csrf)], &headers), &format!("an opaque Origin from {site}"));
    }
    refused(browser.request("POST", "/logout", &[], &["Origin: null", "Sec-Fetch-Site: same-origin"]), "opaque, same-origin, no csrf");
    let ru = browser.request("POST", "/logout", &[], &[&ours, "Accept-Language: ru"]);
    assert_eq!(ru.status, 403);
    ru.assert_html_in("ru");
    assert_eq!(browser.get("/").status, 200, "after all that the session still stands");

    // Login CSRF: no other site may log a browser in.
    let login = Browser::new(&server);
    let form = [("user", "anna"), ("password", PW)];
    refused(login.request("POST", "/login", &form, &["Origin: http://evil.example"]), "login from a foreign Origin");
    refused(login.request("POST", "/login", &form, &["Sec-Fetch-Site: cross-site"]), "login from another site");
    refused(login.request("POST", "/login", &form, &["Origin: null"]), "login from an opaque Origin");
    refused(login.request("POST", "/login", &form, &["Origin: null", "Sec-Fetch-Site: cross-site"]), "opaque login from another site");
    assert_eq!(login.get("/").status, 303, "not logged in");
    // A client that sends neither header (curl, a script) may log in; the check is the browser's.
    assert_eq!(login.request("POST", "/login", &form, &[]).status, 303);
    // Chromium's own login form under Referrer-Policy: no-referrer.
    let chromium = Browser::new(&server);
    assert_eq!(chromium.request("POST", "/login", &form, &["Origin: null", "Sec-Fetch-Site: same-origin"]).status, 303);

    // Without any session a POST just leads to the login page.
    let anonymous = Browser::new(&server);
    let r = anonymous.request("POST", "/logout", &[("csrf", &csrf)], &[&ours]);
    assert_eq!((r.status, r.location()), (303, Some("/login")));

    // Both checks passed: logged out.
    let r = browser.request("POST", "/logout", &[("csrf", &csrf)], &[&ours, "Sec-Fetch-Site: same-origin"]);
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    // The same as chromium sends it.
    let (chromium, home) = signed_in(&server, "bert");
    let r = chromium.request("POST", "/logout", &[("csrf", &home.csrf())], &["Origin: null", "Sec-Fetch-Site: same-origin"]);
    assert_eq!((r.status, r.location()), (303, Some("/login")));
}

// ---------------------------------------------------------------------------------------------
// My queues
// ---------------------------------------------------------------------------------------------

#[test]
fn my_queues_shows_exactly_my_queues_with_their_counts() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("sam", PW, &["sales-agent"]);
    server.add_user("olga", PW, &["security-officer"]);
    let subjects = ["Overdue one", "Due soon", "Due later", "Waiting on the customer"];
    for subject in subjects {
        send(&server, "support@example.com", subject);
    }
    send(&server, "sales@example.com", "A sales question");

    // Shape the cases: one overdue, one due within 24 h (and assigned), one due in 3 days, one
    // waiting (its clock stopped, so past due is not overdue).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let ids = case_ids(&server, "support");
    assert_eq!(ids.len(), 4);
    let hour = 3_600_000;
    let set = |sql: String| assert_eq!(server.sql_changes(&sql), 1, "{sql}");
    set(format!("UPDATE cases SET due_at = {} WHERE id = {}", now - hour, ids[0]));
    set(format!("UPDATE cases SET due_at = {} WHERE id = {}", now + 2 * hour, ids[1]));
    set(format!("UPDATE cases SET due_at = {} WHERE id = {}", now + 72 * hour, ids[2]));
    set(format!("UPDATE cases SET due_at = {}, status = 'waiting' WHERE id = {}", now - hour, ids[3]));
    let anna_id = server.sql_i64("SELECT id FROM users WHERE name = 'anna'");
    set(format!("UPDATE cases SET assignee = {anna_id} WHERE id = {}", ids[1]));
    server.recount_queues();

    let (_, anna) = signed_in(&server, "anna");
    assert!(anna.body.contains("<a href=\"/queues/support\">support</a>"), "{}", anna.body);
    assert!(!anna.body.contains("/queues/sales") && !anna.body.contains("/queues/complaints"), "only my queues: {}", anna.body);
    let counts: Vec<i64> = ["open", "unassigned", "overdue", "due-soon"].iter().map(|c| count_in(&anna, "support", c)).collect();
    assert_eq!(counts, [4, 3, 1, 1], "open, unassigned, overdue, due in 24 h");
    for subject in subjects {
        assert!(!anna.body.contains(subject), "the overview shows counts, not mail");
    }
    for header in [">Queue</th>", ">Open</th>", ">Unassigned</th>", ">Overdue</th>", ">Due in 24 h</th>"] {
        assert!(anna.body.contains(header), "{header}");
    }

    let (_, sam) = signed_in(&server, "sam");
    assert!(sam.body.contains("<a href=\"/queues/sales\">sales</a>") && !sam.body.contains("/queues/support"), "{}", sam.body);
    assert_eq!(count_in(&sam, "sales", "open"), 1);
    assert_eq!(count_in(&sam, "sales", "unassigned"), 1);

    // The officer reads no mail: no queue, a pointer to where the officer's work is.
    let (_, olga) = signed_in(&server, "olga");
    assert!(!olga.body.contains("/queues/"), "{}", olga.body);
    assert!(olga.body.contains("As a security officer you manage users, roles, pending access changes and the audit log"), "{}", olga.body);
    assert!(olga.body.contains("<li><a href=\"/admin/users\">Users</a></li>"), "the pointer links the officer pages: {}", olga.body);
    assert!(!olga.body.contains("A sales question") && !olga.body.contains(CUSTOMER));
}

// ---------------------------------------------------------------------------------------------
// The queue list and its bulk actions
// ---------------------------------------------------------------------------------------------

const CATEGORIES: &str = r#"
[[categories]]
code = "BZZX"
name = "Business enquiry"
"#;

/// The ids of the cases the list shows, in order (`<tr data-case="…">`).
fn listed_cases(page: &Page) -> Vec<i64> {
    page.body.split("<tr data-case=\"").skip(1).map(|rest| rest.split('"').next().unwrap().parse().unwrap()).collect()
}

fn case_ids(server: &Server, queue: &str) -> Vec<i64> {
    let ids = server.sql(&format!("SELECT id FROM cases WHERE queue = {} ORDER BY id", sql_quote(queue)));
    ids.lines().map(|id| id.parse().unwrap()).collect()
}

fn opening_number(server: &Server, id: i64) -> String {
    server.sql(&format!("SELECT opening_number FROM cases WHERE id = {id}"))
}

#[test]
fn the_queue_list_shows_exactly_the_queues_cases_with_their_columns() {
    let server = start(CATEGORIES);
    server.add_user("anna", PW, &["support-agent"]);
    let subjects = ["Later one", "Overdue one", "Soon one"];
    for subject in subjects {
        send(&server, "support@example.com", subject);
    }
    send(&server, "sales@example.com", "A sales question");
    let ids = case_ids(&server, "support");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let hour = 3_600_000;
    let set = |sql: String| assert_eq!(server.sql_changes(&sql), 1, "{sql}");
    set(format!("UPDATE cases SET due_at = {} WHERE id = {}", now + 50 * hour, ids[0]));
    set(format!("UPDATE cases SET due_at = {}, priority = 'urgent', category = 'BZZX' WHERE id = {}", now - 2 * hour - 60_000, ids[1]));
    set(format!("UPDATE cases SET due_at = {} WHERE id = {}", now + 3 * hour + 60_000, ids[2]));
    server.recount_queues();

    let (anna, _) = signed_in(&server, "anna");
    let page = anna.get("/queues/support");
    assert_eq!(page.status, 200, "{page:?}");
    page.assert_page_headers("queue list");
    page.assert_html_in("en");
    assert_eq!(listed_cases(&page), [ids[1], ids[2], ids[0]], "by due time, soonest first");
    for subject in subjects {
        assert!(page.body.contains(subject), "{subject}");
    }
    assert!(!page.body.contains("A sales question"), "only this queue's cases");
    for header in [
        "<caption>",
        ">Number</th>",
        ">Due</th>",
        ">Priority</th>",
        ">Category</th>",
        ">Customer</th>",
        ">Subject</th>",
        ">Status</th>",
        ">Assignee</th>",
    ] {
        assert!(page.body.contains(header), "{header}: {}", page.body);
    }
    let number = opening_number(&server, ids[1]);
    assert!(page.body.contains(&format!("<a href=\"/cases/{}\" data-open>{number}</a>", ids[1])), "{}", page.body);
    assert!(page.body.contains("class=\"overdue\">overdue by 2 h</time>"), "{}", page.body);
    assert!(page.body.contains(">in 3 h</time>") && page.body.contains(">in 2 d</time>"), "{}", page.body);
    assert!(page.body.contains("<time datetime=\""));
    assert!(page.body.contains(">Urgent</td>") && page.body.contains("<span class=\"code\">BZZX</span> Business enquiry"));
    assert!(page.body.contains("Ann Customer") && page.body.contains(CUSTOMER), "the opening message's sender");
    assert!(page.body.contains(">New</td>") && page.body.contains(">Unassigned</td>"));

    // In Russian, the same list.
    let ru = anna.get_with("/queues/support", &["Accept-Language: ru"]);
    assert!(ru.body.contains("<html lang=\"ru\">") && ru.body.contains("просрочено на 2 ч"), "{}", ru.body);

    // Another queue and no queue: the same 404 page, as in the API.
    let other = anna.get("/queues/sales");
    let none = anna.get("/queues/nosuch");
    assert_eq!((other.status, none.status), (404, 404));
    other.assert_html_in("en");
    assert_eq!(other.body, none.body, "a queue I may not read looks like one that does not exist");
    assert!(!other.body.contains("A sales question"));

    // htmx asks for the rows alone.
    let rows = anna.get_with("/queues/support?priority=urgent", &["HX-Request: true"]);
    assert_eq!(rows.status, 200);
    assert!(rows.body.trim_start().starts_with("<div id=\"rows\">") && !rows.body.contains("<html"), "{}", rows.body);
    assert_eq!(listed_cases(&rows), [ids[1]]);
    // A refused filter too: htmx swaps only 2xx answers by default, so the reason comes with 200.
    let bad = anna.get_with("/queues/support?overdue=maybe", &["HX-Request: true"]);
    assert_eq!(bad.status, 200);
    assert!(bad.body.trim_start().starts_with("<div id=\"rows\">") && bad.body.contains("overdue must be yes or no"), "{}", bad.body);
}

#[test]
fn queue_filters_bad_values_and_paging() {
    let server = start(CATEGORIES);
    server.add_user("anna", PW, &["support-agent"]);
    for i in 0..5 {
        send(&server, "support@example.com", &format!("Question {i}"));
    }
    let ids = case_ids(&server, "support");
    server.sql(&format!("UPDATE cases SET priority = 'low', category = 'BZZX' WHERE id = {}", ids[0]));
    server.sql(&format!("UPDATE cases SET due_at = 1000 WHERE id = {}", ids[1]));
    server.sql(&format!("UPDATE cases SET status = 'resolved' WHERE id = {}", ids[2]));
    server.recount_queues();
    let (anna, _) = signed_in(&server, "anna");

    let only = |query: &str| -> Vec<i64> {
        let page = anna.get(&format!("/queues/support?{query}"));
        assert_eq!(page.status, 200, "{query}: {}", page.body);
        let mut cases = listed_cases(&page);
        cases.sort();
        cases
    };
    assert_eq!(only("priority=low"), [ids[0]]);
    assert_eq!(only("category=BZZX"), [ids[0]]);
    assert_eq!(only("overdue=yes"), [ids[1]]);
    assert_eq!(only("status=resolved"), [ids[2]]);
    assert_eq!(only("status="), [ids[0], ids[1], ids[3], ids[4]], "empty means the default: active");
    assert_eq!(only("assignee=me"), Vec::<i64>::new());
    assert_eq!(only("assignee=none&status=all").len(), 5);

    // Bad values: the form again with the reason, no rows, no JSON.
    for (query, reason) in [
        ("status=sleeping", "status"),
        ("priority=high", "priority"),
        ("category=NOPE", "no category is coded"),
        ("overdue=maybe", "overdue must be yes or no"),
        ("sort=random", "sort"),
        ("limit=lots", "limit must be a whole number"),
        ("cursor=garbage", "the cursor is malformed"),
    ] {
        let page = anna.get(&format!("/queues/support?{query}"));
        assert_eq!(page.status, 422, "{query}: {}", page.body);
        page.assert_html_in("en");
        assert!(page.body.contains("These filters cannot be applied:") && page.body.contains(reason), "{query}: {}", page.body);
        assert!(page.body.contains("<form class=\"filters\"") && listed_cases(&page).is_empty(), "{query}");
    }

    // Paging by cursor: two, two, then the last active one; the link keeps the filters.
    let mut seen = Vec::new();
    let mut path = "/queues/support?limit=2&sort=opened".to_string();
    loop {
        let page = anna.get(&path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        seen.extend(listed_cases(&page));
        let Some(at) = page.body.find("<a rel=\"next\" href=\"") else { break };
        let href = page.body[at + 20..].split('"').next().unwrap().replace("&#38;", "&");
        assert!(href.contains("limit=2") && href.contains("sort=opened") && href.contains("cursor="), "{href}");
        assert!(page.body.contains(">Next page</a>"));
        path = href;
    }
    assert_eq!(seen, [ids[0], ids[1], ids[3], ids[4]], "every active case once, in opening order");
}

#[test]
fn bulk_claim_reports_each_case_and_needs_the_csrf_token() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    for subject in ["First", "Second"] {
        send(&server, "support@example.com", subject);
    }
    let ids = case_ids(&server, "support");
    let numbers: Vec<String> = ids.iter().map(|id| opening_number(&server, *id)).collect();
    let (anna, _) = signed_in(&server, "anna");
    let page = anna.get("/queues/support");
    assert_eq!(listed_cases(&page).len(), 2);
    let csrf = page.csrf();
    let tick: Vec<(String, String)> = ids.iter().zip(&numbers).map(|(id, n)| (format!("case-{id}"), n.clone())).collect();
    let mut form: Vec<(&str, &str)> = tick.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form.push(("action", "claim"));

    // Refused: without the token, with a wrong one, from another site. Nothing changes.
    let refused = [
        anna.post("/queues/support/bulk", &form),
        anna.post("/queues/support/bulk", &[form.clone(), vec![("csrf", "wrong")]].concat()),
        anna.request(
            "POST",
            "/queues/support/bulk",
            &[form.clone(), vec![("csrf", csrf.as_str())]].concat(),
            &["Origin: https://evil.example", "Sec-Fetch-Site: cross-site"],
        ),
    ];
    for r in &refused {
        assert_eq!(r.status, 403, "{r:?}");
        r.assert_html_in("en");
    }
    let assigned = server.sql_i64("SELECT count(*) FROM cases WHERE assignee IS NOT NULL");
    assert_eq!(assigned, 0, "a refused POST claims nothing");

    // Nothing ticked or no action: the reason, nothing done.
    let empty = anna.post("/queues/support/bulk", &[("csrf", csrf.as_str()), ("action", "claim")]);
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("Select at least one case."), "{}", empty.body);

    // The second case left this queue after the page was shown: claimed one, refused the other.
    server.sql(&format!("UPDATE cases SET queue = 'sales' WHERE id = {}", ids[1]));
    server.recount_queues();
    let done = anna.post("/queues/support/bulk", &[form.clone(), vec![("csrf", csrf.as_str()), ("keep_assignee", "me")]].concat());
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains(&format!("<li class=\"done\" data-result=\"done\"><strong>{}</strong>: done</li>", numbers[0])),
        "{}",
        done.body
    );
    assert!(
        done.body.contains(&format!("<strong>{}</strong>: refused: no case {} in a queue you may read", numbers[1], ids[1])),
        "{}",
        done.body
    );
    let assignee = server.sql_opt(&format!("SELECT (SELECT name FROM users WHERE id = assignee) FROM cases WHERE id = {}", ids[0]));
    assert_eq!(assignee.as_deref(), Some("anna"));
    assert_eq!(listed_cases(&done), [ids[0]], "then the list again");
    assert!(
        done.body.contains("<input id=\"f-assignee\" name=\"assignee\" value=\"me\">")
            && done.body.contains("<input type=\"hidden\" name=\"keep_assignee\" value=\"me\">"),
        "with the filters it had: {}",
        done.body
    );
    assert!(done.body.contains(">anna</td>"));

    // Another queue's bulk form: 404, as its list.
    let other = anna.post("/queues/sales/bulk", &[form.clone(), vec![("csrf", csrf.as_str())]].concat());
    assert_eq!(other.status, 404);
}

// ---------------------------------------------------------------------------------------------
// Headers, errors, assets
// ---------------------------------------------------------------------------------------------

#[test]
fn every_page_answer_has_the_page_headers_and_the_api_keeps_its_own() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let (browser, _) = signed_in(&server, "anna");
    let not_found = browser.get_with("/no/such/page", &["Accept-Language: zh-CN"]);
    assert_eq!(not_found.status, 404);
    not_found.assert_html_in("zh-CN");
    not_found.assert_page_headers("the 404 page");
    assert!(not_found.body.contains("没有这个页面。"), "{}", not_found.body);
    let wrong_method = browser.request("PUT", "/login", &[], &[]);
    assert_eq!(wrong_method.status, 405);
    wrong_method.assert_html_in("en");
    wrong_method.assert_page_headers("405");
    for path in ["/", "/login", "/queues/support"] {
        browser.get(path).assert_page_headers(path);
    }
    // The API's answers keep their stricter policy and their JSON errors.
    let api = browser.get("/api/no-such-route");
    assert_eq!(api.status, 404);
    assert!(api.body.contains("\"no_such_route\""), "{}", api.body);
    assert_eq!(api.header("content-security-policy"), Some(mailroom::http::CONTENT_SECURITY_POLICY));
    assert_eq!(browser.get("/api/me").header("content-security-policy"), Some(mailroom::http::CONTENT_SECURITY_POLICY));
}

#[test]
fn assets_are_served_immutable_under_their_content_hash() {
    let server = start("");
    let browser = Browser::new(&server);
    let login = browser.get("/login");
    let url_of = |prefix: &str, ext: &str| {
        let start = login.body.find(&format!("\"/assets/{prefix}-")).unwrap_or_else(|| panic!("no {prefix} asset in {}", login.body)) + 1;
        let url = login.body[start..].split('"').next().unwrap().to_string();
        assert!(url.ends_with(ext), "{url}");
        url
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (url, content_type, file) in [
        (url_of("htmx", ".js"), "text/javascript; charset=utf-8", root.join("assets/htmx-2.0.11.min.js")),
        (url_of("app", ".css"), "text/css; charset=utf-8", root.join("assets/app.css")),
    ] {
        let r = browser.get(&url);
        assert_eq!(r.status, 200, "{url}");
        assert_eq!(r.header("content-type"), Some(content_type), "{url}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=31536000, immutable"), "{url}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.body, std::fs::read_to_string(&file).unwrap(), "{url} is {}", file.display());
        // The hash is the content's: 16 hex digits of SHA-256.
        let hash = url.rsplit('-').next().unwrap().split('.').next().unwrap();
        assert_eq!(hash.len(), 16);
        let out = Command::new("sha256sum").arg(&file).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(hash), "{url}");
    }
    // A browser that accepts gzip gets it (curl unpacks it again); no page is compressed.
    let htmx = url_of("htmx", ".js");
    let packed = browser.request("GET", &htmx, &[], &["Accept-Encoding: gzip"]);
    assert_eq!((packed.header("content-encoding"), packed.header("vary")), (Some("gzip"), Some("accept-encoding")), "{packed:?}");
    let out = Command::new("curl").args(["-s", "--compressed", "-o", "-"]).arg(format!("{}{htmx}", server.http_url())).output().unwrap();
    assert_eq!(out.stdout, std::fs::read(root.join("assets/htmx-2.0.11.min.js")).unwrap(), "gzip unpacks to the file");
    let page = browser.request("GET", "/login", &[], &["Accept-Encoding: gzip"]);
    assert_eq!(page.header("content-encoding"), None, "pages hold the CSRF token: never compressed");
    for stale in ["/assets/app-0000000000000000.css", "/assets/htmx-2.0.11.min.js", "/assets/app.css", "/assets/..%2FCargo.toml"] {
        let r = browser.get(stale);
        assert_eq!(r.status, 404, "{stale}");
        r.assert_html_in("en");
        r.assert_page_headers(stale);
    }
}

// ---------------------------------------------------------------------------------------------
// The template scan
// ---------------------------------------------------------------------------------------------

/// What is wrong with one template: inline script, style, event handlers, `javascript:` URLs,
/// and text a reader sees that does not come from a catalog (`{{ chrome.t("key") }}` or a value).
fn template_faults(text: &str) -> Vec<String> {
    let mut faults = Vec::new();
    let script = regex::Regex::new(r"(?is)<script\b([^>]*)>(.*?)</script\s*>").unwrap();
    for found in script.captures_iter(text) {
        if !found[1].contains("src=") || !found[2].trim().is_empty() {
            faults.push(format!("inline script: {}", &found[0]));
        }
    }
    let checks = [
        (r"(?i)<style\b", "a <style> element"),
        (r"(?i)\sstyle\s*=", "a style attribute"),
        (r"(?i)\son[a-z]+\s*=", "an on… handler"),
        (r"(?i)javascript:", "a javascript: URL"),
        (r#"(?i)\s(title|alt|aria-label|aria-description|placeholder)\s*=\s*["'][^"'{]*\p{L}"#, "attribute text without a catalog key"),
    ];
    for (pattern, what) in checks {
        if let Some(m) = regex::Regex::new(pattern).unwrap().find(text) {
            faults.push(format!("{what}: {}", m.as_str()));
        }
    }
    // Bare text: strip template syntax, then tags; no letter may remain.
    let template_syntax = regex::Regex::new(r"(?s)\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}").unwrap();
    let tags = regex::Regex::new(r"(?s)<[^>]*>").unwrap();
    let stripped = tags.replace_all(&template_syntax.replace_all(text, " "), " ").into_owned();
    for word in stripped.split_whitespace().filter(|w| w.chars().any(char::is_alphabetic)) {
        faults.push(format!("text outside the catalog: {word:?}"));
    }
    faults
}

#[test]
fn templates_have_no_inline_script_style_handler_or_uncatalogued_text() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut scanned = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "html") {
            let faults = template_faults(&std::fs::read_to_string(&path).unwrap());
            assert!(faults.is_empty(), "{}: {faults:#?}", path.display());
            scanned += 1;
        }
    }
    assert!(scanned >= 4, "base, login, my queues, error: {scanned}");

    // The scan finds what it looks for.
    for bad in [
        "<script>alert(1)</script>",
        "<script src=\"/a.js\">x()</script>",
        "<p style=\"color: red\">{{ x }}</p>",
        "<style>p {}</style>",
        "<button onclick=\"go()\">{{ x }}</button>",
        "<a href=\"javascript:go()\">{{ x }}</a>",
        "<p>{{ chrome.t(\"a\") }} Hello</p>",
        "<img alt=\"Logo\" src=\"/x\">",
        "<p>用户名</p>",
    ] {
        assert!(!template_faults(bad).is_empty(), "missed: {bad}");
    }
    assert!(template_faults("<p class=\"x\">{{ chrome.t(\"a\") }} · <a href=\"/\">{{ name }}</a></p>").is_empty());
}
