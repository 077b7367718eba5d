//! Presence ("olga is viewing") on the case page and the queue list, its heartbeat, and the
//! queue list's "N new — refresh" banner, with the curl browser of `tests/web.rs`.

use super::*;

/// Expiry short enough to watch a marker disappear without a long sleep.
fn start_quick() -> Server {
    Server::start(Opts {
        extra_toml: ROLES.to_string(),
        http_extra: "presence_expiry = \"3s\"\npresence_heartbeat = \"1s\"\nnew_cases_poll = \"1s\"".into(),
        ..Default::default()
    })
}

/// Sends a mail to support@ and returns its case id.
fn new_case(server: &Server, subject: &str) -> i64 {
    let number = send(server, "support@example.com", subject);
    server.sql_i64(&format!(
        "SELECT mc.case_id FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE m.number = {}",
        sql_quote(&number)
    ))
}

/// The `<tr>` of case `id` in a queue list.
fn row_of(page: &Page, id: i64) -> String {
    let start = page.body.find(&format!("<tr data-case=\"{id}\" ")).unwrap_or_else(|| panic!("no row {id}: {}", page.body));
    page.body[start..].split("</tr>").next().unwrap().to_string()
}

#[test]
fn colleagues_see_who_views_or_replies_until_it_expires() {
    let server = start_quick();
    for user in ["anna", "bert"] {
        server.add_user(user, PW, &["support-agent"]);
    }
    server.add_user("sam", PW, &["sales-agent"]);
    let id = new_case(&server, "Presence please");
    let (anna, _) = signed_in(&server, "anna");
    let (bert, _) = signed_in(&server, "bert");
    let (sam, sams_home) = signed_in(&server, "sam");

    let first = anna.get(&format!("/cases/{id}"));
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.also_here(), "", "alone on the case");
    assert!(first.body.contains("hx-trigger=\"every 1s\""), "the heartbeat interval comes from [http]: {}", first.body);

    // Bert opens the case: the page itself recorded anna's "viewing" without any script.
    let page = bert.get(&format!("/cases/{id}"));
    assert!(page.also_here().contains("anna is viewing"), "{}", page.also_here());
    assert!(!page.also_here().contains("bert"), "nobody is told about himself");
    let list = bert.get("/queues/support");
    let row = row_of(&list, id);
    assert!(row.contains("viewing: anna") && !row.contains("bert"), "{row}");

    // The heartbeat says "replying"; anna sees it on her page and in her list.
    let csrf = page.csrf();
    let beat = bert.post(&format!("/cases/{id}/presence"), &[("csrf", &csrf), ("kind", "replying")]);
    assert_eq!(beat.status, 200, "{beat:?}");
    assert!(beat.body.contains("data-colleagues><span class=\"colleague\" data-user=\"anna\">anna is viewing</span>"), "{}", beat.body);
    assert!(!beat.body.contains("<html"), "the fragment alone: {}", beat.body);
    assert!(anna.get(&format!("/cases/{id}")).also_here().contains("bert is replying"));
    assert!(row_of(&anna.get("/queues/support"), id).contains("replying: bert"));

    // Refusals: no CSRF token, a wrong kind, a case of a queue sam may not read (as if none).
    assert_eq!(bert.post(&format!("/cases/{id}/presence"), &[("kind", "viewing")]).status, 403);
    assert_eq!(bert.post(&format!("/cases/{id}/presence"), &[("csrf", &csrf), ("kind", "typing")]).status, 400);
    let sams = sam.post(&format!("/cases/{id}/presence"), &[("csrf", &sams_home.csrf()), ("kind", "viewing")]);
    assert_eq!(sams.status, 404, "{sams:?}");
    assert_eq!(sam.post("/cases/999999/presence", &[("csrf", &sams_home.csrf()), ("kind", "viewing")]).status, 404);
    assert!(!row_of(&anna.get("/queues/support"), id).contains("sam"), "a refused heartbeat records nothing");

    // Three seconds without a heartbeat: the markers are gone.
    std::thread::sleep(Duration::from_millis(3300));
    let row = row_of(&bert.get("/queues/support"), id);
    assert!(!row.contains("data-presence"), "expired: {row}");
    assert_eq!(anna.get(&format!("/cases/{id}")).also_here(), "", "bert's heartbeat expired");
}

#[test]
fn the_queue_list_counts_cases_that_came_after_it_was_read() {
    let server = start_quick();
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("sam", PW, &["sales-agent"]);
    new_case(&server, "Before the list");
    let (anna, _) = signed_in(&server, "anna");
    let list = anna.get("/queues/support?status=all");
    let since: String = {
        let start = list.body.find("data-since=\"").unwrap_or_else(|| panic!("no data-since: {}", list.body)) + 12;
        list.body[start..].split('"').next().unwrap().to_string()
    };
    assert!(
        list.body.contains(&format!("hx-get=\"/queues/support/new?since={since}&amp;status=all\" hx-trigger=\"every 1s\"")),
        "{}",
        list.body
    );
    let poll = format!("/queues/support/new?since={since}&status=all");
    let nothing = anna.get(&poll);
    assert_eq!(nothing.status, 200);
    assert!(nothing.body.trim().is_empty(), "nothing new yet: {}", nothing.body);

    std::thread::sleep(Duration::from_millis(5));
    new_case(&server, "After the list");
    new_case(&server, "After the list, again");
    send(&server, "sales@example.com", "Another queue");
    let banner = anna.get(&poll);
    assert_eq!(banner.status, 200, "{banner:?}");
    assert!(banner.body.contains("href=\"/queues/support?status=all\" data-new=\"2\">2 new cases — refresh</a>"), "{}", banner.body);
    banner.assert_page_headers("the banner fragment");
    // The list itself did not change under the reader: the banner only links to the fresh list.
    assert_eq!(listed_cases(&anna.get("/queues/support?status=all")).len(), 3);

    let (sam, _) = signed_in(&server, "sam");
    assert_eq!(sam.get(&poll).status, 404, "another queue's count is not told");
    assert_eq!(anna.get("/queues/nope/new?since=0").status, 404);
    assert_eq!(anna.get("/queues/support/new?since=yesterday").status, 400);
    let ru = anna.get_with(&format!("/queues/support/new?since={since}"), &["Accept-Language: ru"]);
    assert!(ru.body.contains("Новых обращений: 2 — обновить"), "{}", ru.body);
}

/// The sessions' `last_seen_at`, as the database holds them (oldest session first).
fn last_seen(server: &Server) -> String {
    server.sql("SELECT last_seen_at FROM sessions ORDER BY created_at, token_hash")
}

#[test]
fn heartbeats_and_polls_do_not_keep_an_idle_session_alive() {
    let server = start_quick();
    server.add_user("anna", PW, &["support-agent"]);
    let id = new_case(&server, "Left open in a tab");
    let (anna, _) = signed_in(&server, "anna");
    let page = anna.get(&format!("/cases/{id}"));
    let csrf = page.csrf();
    // Two minutes without the user: more than the interval at which a request counts.
    server.sql("UPDATE sessions SET last_seen_at = last_seen_at - 120000");
    let before = last_seen(&server);

    let beat = anna.post(&format!("/cases/{id}/presence"), &[("csrf", &csrf), ("kind", "viewing")]);
    assert_eq!(beat.status, 200, "{beat:?}");
    let poll = anna.get("/queues/support/new?since=0");
    assert_eq!(poll.status, 200, "{poll:?}");
    assert_eq!(last_seen(&server), before, "the page's own requests are not the user's activity");

    // Opening a page is.
    assert_eq!(anna.get("/queues/support").status, 200);
    assert_ne!(last_seen(&server), before);
}

#[test]
fn the_reply_page_tells_colleagues_someone_is_replying() {
    let server = start_quick();
    for user in ["anna", "bert"] {
        server.add_user(user, PW, &["support-agent"]);
    }
    let id = new_case(&server, "Who answers this one");
    let (anna, _) = signed_in(&server, "anna");
    let (bert, _) = signed_in(&server, "bert");
    let reply = anna.get(&format!("/cases/{id}/reply"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("name=\"kind\" value=\"replying\""), "the reply page's heartbeat says replying: {}", reply.body);
    let page = bert.get(&format!("/cases/{id}"));
    assert!(page.also_here().contains("anna is replying"), "{}", page.also_here());
    let row = row_of(&bert.get("/queues/support"), id);
    assert!(row.contains("replying: anna"), "{row}");
}
