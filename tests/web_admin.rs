//! The security officer's pages (`/admin/…`) over real sockets: `mailroom serve` and curl posting
//! the forms a browser without JavaScript posts. Each action is checked by its effect (a code
//! that enrols, a login that fails while locked, a queue that appears on "My queues", a chain
//! that verifies and then does not), each refusal by its status and the service's reason.

mod common;

use common::*;

const PW: &str = "correct-horse-battery-staple";
const OFFICER: &str = "olga";
const SECOND_OFFICER: &str = "oleg";
const AGENT: &str = "anna";

const ROLES: &str = r#"
[access]
failure_delay = "10ms"

[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "helpers"
description = "Helps out where needed"
"#;

const PAGES: [&str; 4] = ["/admin/users", "/admin/roles", "/admin/changes", "/admin/audit"];

/// A server with two officers and an agent of support.
fn start() -> Server {
    let server = Server::start(Opts { extra_toml: ROLES.into(), ..Default::default() });
    server.add_user(OFFICER, PW, &["security-officer"]);
    server.add_user(SECOND_OFFICER, PW, &["security-officer"]);
    server.add_user(AGENT, PW, &["support-agent"]);
    server
}

/// The notice an action left on the page: (outcome, its text).
fn notice(page: &Page) -> (String, String) {
    let start = page.body.find("data-outcome=\"").unwrap_or_else(|| panic!("no notice: {}", page.body)) + 14;
    let outcome = page.body[start..].split('"').next().unwrap().to_string();
    let text = page.body[start..].split("</section>").next().unwrap().to_string();
    (outcome, text)
}

/// The one-time code a page shows.
fn shown_code(page: &Page) -> String {
    let start = page.body.find("<code>").unwrap_or_else(|| panic!("no code shown: {}", page.body)) + 6;
    page.body[start..].split('<').next().unwrap().to_string()
}

/// The user's row of the users table.
fn user_row<'a>(page: &'a Page, user: &str) -> &'a str {
    let start = page.body.find(&format!("<tr data-user=\"{user}\">")).unwrap_or_else(|| panic!("no row for {user}: {}", page.body));
    let row = &page.body[start..];
    &row[..row.find("</tr>").unwrap()]
}

/// The page CSP and headers (`http::web::headers`), on the officer's pages too.
fn assert_page_headers(page: &Page) {
    assert!(page.header("content-security-policy").is_some_and(|csp| csp.starts_with("default-src 'none'; script-src 'self'")), "{page:?}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
}

fn enrol(server: &Server, user: &str, code: &str, password: &str) {
    let out = server.cli_stdin(&["user", "enrol", user, "--stdin"], format!("{code}\n{password}\n").as_bytes());
    assert!(out.status.success(), "enrol {user}: {}", out.stderr);
}

#[test]
fn every_officer_page_renders_for_an_officer_and_refuses_everyone_else() {
    let server = start();
    let (officer, csrf) = CurlBrowser::logged_in(&server, OFFICER, PW);
    let home = officer.get("/");
    for (href, name) in [("/admin/users", "Users"), ("/admin/roles", "Roles"), ("/admin/changes", "Changes"), ("/admin/audit", "Audit log")]
    {
        assert!(home.body.contains(&format!("<a href=\"{href}\">{name}</a>")), "header and My queues link {href}: {}", home.body);
    }
    let users = officer.get("/admin/users");
    assert_eq!(users.status, 200, "{users:?}");
    users.assert_html();
    assert_page_headers(&users);
    assert!(users.body.contains("<h1>Users</h1>"));
    for user in [OFFICER, SECOND_OFFICER, AGENT] {
        assert!(users.body.contains(&format!("<tr data-user=\"{user}\">")), "{user}: {}", users.body);
    }
    assert!(user_row(&users, AGENT).contains("support-agent") && user_row(&users, AGENT).contains("active"));
    assert!(users.body.contains("name=\"role-helpers\""), "the add form offers every role");
    let roles = officer.get("/admin/roles");
    assert_eq!(roles.status, 200);
    assert!(roles.body.contains("data-role=\"support-agent\"") && roles.body.contains("Helps out where needed"), "{}", roles.body);
    assert!(roles.body.contains("<tr data-grant=\"support\"><th scope=\"row\">support</th><td>read, act</td>"), "{}", roles.body);
    assert!(roles.body.contains("<li data-member=\"anna\">"), "{}", roles.body);
    let changes = officer.get("/admin/changes");
    assert_eq!(changes.status, 200);
    assert!(changes.body.contains("No change is waiting."), "{}", changes.body);
    let audit = officer.get("/admin/audit");
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("data-action=\"role.add\"") && audit.body.contains("data-action=\"user.add\""), "{}", audit.body);
    let ru = officer.request("GET", "/admin/users", &[], &["Accept-Language: ru"]);
    assert!(ru.body.contains("<html lang=\"ru\">") && ru.body.contains("Пользователи"), "{}", ru.body);

    // An agent: the API's 403, as a page that says why, on every page and every form; no links.
    let (agent, agent_csrf) = CurlBrowser::logged_in(&server, AGENT, PW);
    assert!(!agent.get("/").body.contains("/admin/"), "no officer links for an agent");
    for path in PAGES.into_iter().chain(["/admin/users/anna/remove"]) {
        let r = agent.get(path);
        assert_eq!(r.status, 403, "{path}: {r:?}");
        r.assert_html();
        assert_page_headers(&r);
        assert!(
            r.body.contains("Only a security officer manages users, roles and the audit log.")
                || r.body.contains("Only security officers and supervisors see and decide pending access changes."),
            "{path}: {}",
            r.body
        );
    }
    for path in ["/admin/users", "/admin/users/olga/lock", "/admin/roles/helpers/grants", "/admin/changes/1/approve", "/admin/audit/verify"]
    {
        let r = agent.post(path, &[("csrf", &agent_csrf), ("name", "mallory"), ("queue", "support"), ("perm-read", "on")]);
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert!(!r.body.contains("data-outcome"), "{path}: nothing was done");
    }
    assert!(!officer.get("/admin/users").body.contains("mallory"), "the agent added nobody");

    // No session: the login page. No or a wrong CSRF token: 403 and nothing changes.
    let anonymous = CurlBrowser::new(&server);
    for path in PAGES {
        let r = anonymous.get(path);
        assert_eq!((r.status, r.location()), (303, Some("/login")), "{path}");
    }
    let r = officer.post("/admin/users/anna/lock", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("it did not come from this site"), "{}", r.body);
    let r = officer.post("/admin/users/anna/lock", &[("csrf", "not-the-token")]);
    assert_eq!(r.status, 403);
    let r = officer.request(
        "POST",
        "/admin/users/anna/lock",
        &[("csrf", &csrf)],
        &["Origin: http://evil.example", "Sec-Fetch-Site: cross-site"],
    );
    assert_eq!(r.status, 403);
    assert!(user_row(&officer.get("/admin/users"), AGENT).contains("data-state=\"admin.users.state_active\""), "anna is not locked");
}

#[test]
fn a_new_user_gets_a_code_that_enrols_and_lock_unlock_and_remove_work() {
    let server = start();
    let (officer, csrf) = CurlBrowser::logged_in(&server, OFFICER, PW);

    // Add a user without roles: done at once, with the one-time code on this answer only.
    let r = officer.post("/admin/users", &[("csrf", &csrf), ("name", "carl")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(notice(&r).0, "done", "{}", r.body);
    assert!(r.body.contains("User carl added.") && r.body.contains("data-code=\"carl\""), "{}", r.body);
    let code = shown_code(&r);
    assert_eq!(code.len(), 29, "five groups of five: {code}");
    assert!(user_row(&r, "carl").contains("waiting for enrolment"), "{}", user_row(&r, "carl"));
    assert!(!officer.get("/admin/users").body.contains(&code), "the code is shown once");
    enrol(&server, "carl", &code, "carl's own passphrase");
    let carl = CurlBrowser::new(&server);
    assert_eq!(carl.log_in("carl", "carl's own passphrase").status, 303);

    // A user with a queue role: the account and its code at once, the role waits.
    let r = officer.post("/admin/users", &[("csrf", &csrf), ("name", "dora"), ("role-support-agent", "on")]);
    assert_eq!(r.status, 202, "{r:?}");
    let (outcome, text) = notice(&r);
    assert_eq!(outcome, "pending");
    assert!(text.contains("the roles support-agent wait for a second person"), "{text}");
    assert!(r.body.contains("data-code=\"dora\""), "the code is shown even while the role waits");

    // Lock: carl's login fails with the locked message; unlock: it works again.
    let r = officer.post("/admin/users/carl/lock", &[("csrf", &csrf)]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"), "{r:?}");
    assert!(user_row(&r, "carl").contains("/admin/users/carl/unlock"), "{}", user_row(&r, "carl"));
    let r = CurlBrowser::new(&server).log_in("carl", "carl's own passphrase");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("This account is locked. Ask a security officer to unlock it."), "{}", r.body);
    let r = officer.post("/admin/users/carl/unlock", &[("csrf", &csrf)]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"));
    assert_eq!(CurlBrowser::new(&server).log_in("carl", "carl's own passphrase").status, 303);

    // An officer's own account: refused with the service's reason, and audited.
    let r = officer.post(&format!("/admin/users/{OFFICER}/lock"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 403, "{r:?}");
    let (outcome, text) = notice(&r);
    assert_eq!(outcome, "refused");
    assert!(text.contains("you cannot reset, lock, unlock or remove your own account"), "{text}");
    assert!(officer.get("/admin/audit?action=admin.refused").body.contains("attempt=user.lock reason=own-access"));

    // Reset a user who reads no queue: the code at once; the old password stops working.
    let r = officer.post("/admin/users/carl/password", &[("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{r:?}");
    let code = shown_code(&r);
    assert_eq!(CurlBrowser::new(&server).log_in("carl", "carl's own passphrase").status, 401);
    enrol(&server, "carl", &code, "carl's second passphrase");
    // Reset an agent: it waits for a second person, nothing changes yet.
    let r = officer.post("/admin/users/anna/password", &[("csrf", &csrf)]);
    assert_eq!(r.status, 202, "{r:?}");
    assert!(notice(&r).1.contains("The password reset of anna waits for a second person"), "{}", r.body);
    assert!(!r.body.contains("<code>"), "no code before the approval");
    assert!(user_row(&r, AGENT).contains("password reset waiting for approval"), "{}", user_row(&r, AGENT));
    assert_eq!(CurlBrowser::new(&server).log_in(AGENT, PW).status, 303, "anna's password still works");

    // Remove: a confirmation page first; the POST without the confirmation only shows it again.
    let confirm = officer.get("/admin/users/carl/remove");
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("<strong data-user=\"carl\">carl</strong>") && confirm.body.contains("name=\"confirm\" value=\"yes\""));
    let r = officer.post("/admin/users/carl/remove", &[("csrf", &csrf)]);
    assert!(r.status == 200 && r.body.contains("Yes, remove this user") && !r.body.contains("data-outcome"), "{r:?}");
    let r = officer.post("/admin/users/carl/remove", &[("csrf", &csrf), ("confirm", "yes")]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"), "{r:?}");
    assert!(!r.body.contains("<tr data-user=\"carl\">"));
    let r = officer.post("/admin/users/carl/lock", &[("csrf", &csrf)]);
    assert_eq!(r.status, 404);
    assert!(notice(&r).1.contains("no user is named &#34;carl&#34;"), "{}", r.body);
}

#[test]
fn a_grant_waits_for_a_second_officer_and_then_opens_the_queue_on_my_queues() {
    let server = start();
    server.add_user("dave", PW, &["helpers"]);
    let (olga, csrf) = CurlBrowser::logged_in(&server, OFFICER, PW);
    let (dave, _) = CurlBrowser::logged_in(&server, "dave", PW);
    assert!(!dave.get("/").body.contains("href=\"/queues/support\""));

    // Granting read to a role with members waits; the roles page says so.
    let r = olga.post("/admin/roles/helpers/grants", &[("csrf", &csrf), ("op", "grant"), ("queue", "support"), ("perm-read", "on")]);
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(notice(&r).0, "pending");
    assert!(r.body.contains("<li data-pending>read on support (change #"), "{}", r.body);
    assert!(!dave.get("/").body.contains("href=\"/queues/support\""), "nothing applied yet");

    // The requester cannot approve his own change: the service's reason.
    let changes = olga.get("/admin/changes");
    let id: i64 = changes.body.split("<tr data-change=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert!(changes.body.contains("role helpers gets read on support"), "{}", changes.body);
    let r = olga.post(&format!("/admin/changes/{id}/approve"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(notice(&r).0, "refused");
    assert!(notice(&r).1.contains(&format!("you requested change {id}: another security officer")), "{}", r.body);

    // A second officer approves: the queue appears on dave's "My queues".
    let (oleg, oleg_csrf) = CurlBrowser::logged_in(&server, SECOND_OFFICER, PW);
    let r = oleg.post(&format!("/admin/changes/{id}/approve"), &[("csrf", &oleg_csrf)]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"), "{r:?}");
    assert!(r.body.contains(&format!("Change #{id} approved and applied.")));
    assert!(dave.get("/").body.contains("<a href=\"/queues/support\">support</a>"), "dave reads support now");
    let r = oleg.post(&format!("/admin/changes/{id}/approve"), &[("csrf", &oleg_csrf)]);
    assert_eq!(r.status, 409, "already decided: {r:?}");

    // Revoke never waits; the officer role takes no grants (the service's reason).
    let r = olga.post("/admin/roles/helpers/grants", &[("csrf", &csrf), ("op", "revoke"), ("queue", "support")]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"), "{r:?}");
    assert!(!dave.get("/").body.contains("href=\"/queues/support\""));
    let r = olga.post("/admin/roles/security-officer/grants", &[("csrf", &csrf), ("op", "grant"), ("queue", "*"), ("perm-read", "on")]);
    assert_eq!(r.status, 422, "{r:?}");
    assert!(notice(&r).1.contains("the security-officer role gets no queue permissions"), "{}", r.body);

    // Roles and members: a new role, a member (no grants: at once), taken away again; yourself refused.
    let r = olga.post("/admin/roles", &[("csrf", &csrf), ("name", "night-shift"), ("description", "After hours")]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"), "{r:?}");
    assert!(r.body.contains("data-role=\"night-shift\""));
    let r = olga.post("/admin/roles/night-shift/members", &[("csrf", &csrf), ("user", "dave")]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"), "{r:?}");
    assert!(r.body.contains("action=\"/admin/roles/night-shift/members/dave/remove\""), "{}", r.body);
    let r = olga.post("/admin/roles/night-shift/members/dave/remove", &[("csrf", &csrf)]);
    assert_eq!((r.status, notice(&r).0.as_str()), (200, "done"), "{r:?}");
    let r = olga.post("/admin/roles/night-shift/members", &[("csrf", &csrf), ("user", OFFICER)]);
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn an_approved_reset_s_code_is_collected_once_by_its_requester() {
    let server = start();
    let (olga, csrf) = CurlBrowser::logged_in(&server, OFFICER, PW);
    let r = olga.post("/admin/users/anna/password", &[("csrf", &csrf)]);
    assert_eq!(r.status, 202, "{r:?}");
    let (oleg, oleg_csrf) = CurlBrowser::logged_in(&server, SECOND_OFFICER, PW);
    let changes = oleg.get("/admin/changes");
    let id: i64 = changes.body.split("<tr data-change=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    let r = oleg.post(&format!("/admin/changes/{id}/approve"), &[("csrf", &oleg_csrf)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.body.contains(&format!("action=\"/admin/changes/{id}/code\"")), "only the requester collects");
    let r = oleg.post(&format!("/admin/changes/{id}/code"), &[("csrf", &oleg_csrf)]);
    assert_eq!(r.status, 403, "{r:?}");

    let changes = olga.get("/admin/changes");
    assert!(changes.body.contains(&format!("action=\"/admin/changes/{id}/code\"")), "{}", changes.body);
    let r = olga.post(&format!("/admin/changes/{id}/code"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("data-code=\"anna\""));
    let code = shown_code(&r);
    let r = olga.post(&format!("/admin/changes/{id}/code"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 409, "once: {r:?}");
    enrol(&server, AGENT, &code, "anna's new passphrase");
    assert_eq!(CurlBrowser::new(&server).log_in(AGENT, "anna's new passphrase").status, 303);
}

fn actions(page: &Page) -> Vec<String> {
    page.body.split("data-action=\"").skip(1).map(|rest| rest.split('"').next().unwrap().to_string()).collect()
}

fn entry_ids(page: &Page) -> Vec<i64> {
    page.body.split("<tr data-entry=\"").skip(1).map(|rest| rest.split('"').next().unwrap().parse().unwrap()).collect()
}

#[test]
fn the_audit_log_filters_pages_and_verifies_its_chain() {
    let server = start();
    let (olga, csrf) = CurlBrowser::logged_in(&server, OFFICER, PW);
    for _ in 0..2 {
        olga.post("/admin/users/anna/lock", &[("csrf", &csrf)]);
        olga.post("/admin/users/anna/unlock", &[("csrf", &csrf)]);
    }
    let all = olga.get("/admin/audit");
    let everything = actions(&all);
    assert!(everything.contains(&"user.lock".to_string()) && everything.contains(&"user.unlock".to_string()), "{everything:?}");
    let ids = entry_ids(&all);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // By action: exactly the two locks.
    let locks = olga.get("/admin/audit?action=user.lock");
    assert_eq!(actions(&locks), ["user.lock", "user.lock"], "{}", locks.body);
    assert!(locks.body.contains("name=\"action\" value=\"user.lock\""), "the form shows the filter");
    // By actor, and by time: nothing before the server started, everything since.
    let by_config = actions(&olga.get("/admin/audit?actor=config"));
    assert!(!by_config.is_empty() && by_config.iter().all(|a| a == "role.add"), "{by_config:?}");
    assert!(olga.get("/admin/audit?to=2000-01-01").body.contains("No entry matches."));
    assert_eq!(actions(&olga.get("/admin/audit?action=user.lock&from=2000-01-01T00:00")).len(), 2);
    let r = olga.get("/admin/audit?from=yesterday");
    assert_eq!(r.status, 422);
    assert!(notice(&r).1.contains("The start time does not read as a date and time."));

    // Paging: more than a page of entries; "Older entries" continues below the last id.
    for _ in 0..30 {
        olga.post("/admin/users/anna/lock", &[("csrf", &csrf)]);
        olga.post("/admin/users/anna/unlock", &[("csrf", &csrf)]);
    }
    let first = olga.get("/admin/audit");
    let first_ids = entry_ids(&first);
    assert_eq!(first_ids.len(), 50);
    let older = first.body.split("href=\"/admin/audit?").nth(1).unwrap().split('"').next().unwrap().replace("&#38;", "&");
    assert_eq!(older, format!("before={}", first_ids.last().unwrap()));
    let second_ids = entry_ids(&olga.get(&format!("/admin/audit?{older}")));
    assert!(!second_ids.is_empty() && second_ids[0] < *first_ids.last().unwrap(), "{second_ids:?}");
    let filtered = olga.get("/admin/audit?action=user.unlock");
    assert_eq!(entry_ids(&filtered).len(), 32, "two and thirty unlocks");

    // Verify: intact, then the entry altered with database access alone is named.
    let r = olga.post("/admin/audit/verify", &[("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{r:?}");
    let (outcome, text) = notice(&r);
    assert_eq!(outcome, "done");
    assert!(text.contains("Chain intact, ") && text.contains(" entries."), "{text}");
    let r = olga.post("/admin/audit/verify", &[]);
    assert_eq!(r.status, 403, "verify needs the CSRF token");
    server.sql("UPDATE audit SET detail = 'tampered' WHERE id = 2;");
    let r = olga.post("/admin/audit/verify", &[("csrf", &csrf)]);
    let (outcome, text) = notice(&r);
    assert_eq!(outcome, "alarm", "{}", r.body);
    assert!(text.contains("The chain is broken at entry #2: its content does not match its hash"), "{text}");
}

#[test]
fn no_officer_page_shows_customer_content() {
    let server = start();
    let subject = unique_token("Officer never sees this subject ");
    let customer = format!("{}@secret-customer.example.org", unique_token("zed"));
    let message = format!(
        "From: Zed Customer <{customer}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nPlease help.\r\n",
        unique_token("m")
    );
    server.smtp_session().send_message(&customer, &["support@example.com"], message.as_bytes());
    // The agent logs in and reads the case: the log records who did what, never what the mail says.
    let (agent, _) = CurlBrowser::logged_in(&server, AGENT, PW);
    let list = agent.get("/queues/support");
    assert!(list.body.contains(&subject), "the agent sees the mail: {}", list.body);
    let id = list.body.split("<tr data-case=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let case = agent.get(&format!("/api/cases/{id}"));
    assert_eq!(case.status, 200, "{case:?}");
    assert!(case.body.contains(&subject));

    let (officer, csrf) = CurlBrowser::logged_in(&server, OFFICER, PW);
    let mut pages: Vec<Page> = PAGES.iter().map(|p| officer.get(p)).collect();
    pages.push(officer.get("/"));
    pages.push(officer.post("/admin/audit/verify", &[("csrf", &csrf)]));
    let audit = officer.get("/admin/audit");
    assert!(audit.body.contains("user:anna"), "the agent's actions are in the log: {}", audit.body);
    pages.push(audit);
    for page in &pages {
        assert_eq!(page.status, 200);
        for secret in [subject.as_str(), customer.as_str(), "secret-customer", "Zed Customer"] {
            assert!(!page.body.contains(secret), "customer content {secret:?} on an officer's page: {}", page.body);
        }
    }
}
