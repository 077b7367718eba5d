//! The reply pages over real sockets: `mailroom serve`, `curl` posting forms as a browser without
//! JavaScript does, customer mail arriving by SMTP and replies leaving through `[outbox]` to a
//! capture SMTP server on loopback. Templates fill the form; an unresolved placeholder blocks
//! sending; the preview shows exactly what leaves; the undo window holds the mail back, and an
//! undo within it means nothing is ever sent.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const PW: &str = "correct-horse-battery-staple";
const CUSTOMER: &str = "customer@client.example.org";

const ROLES_AND_TEMPLATES: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }

[[roles]]
name = "vip-agent"
grants = { vip = ["read", "act"] }

[[roles]]
name = "vip-reviewer"
grants = { vip = ["read", "act", "review"] }

[[queues]]
name = "vip"
addresses = ["vip@example.com"]
review = true

[[templates]]
name = "thanks"
queues = ["support"]
body = "Dear {customer_name},\nthank you for writing to us about {number}.\nWe answer by {due}.\n{agent} ({queue}) {{ref}}"

[[templates]]
name = "sales only"
queues = ["sales"]
subject = "Your offer"
body = "Hello"
"#;

/// A server whose outbox sends to a capture server, replies held `undo` seconds.
fn start(undo: u64) -> (Server, Arc<Mutex<Vec<Captured>>>) {
    let (port, captured) = capture_smtp();
    let extra = format!(
        "{ROLES_AND_TEMPLATES}\n[intake]\nacknowledge = false\n\n[outbox]\nsmarthost = \"127.0.0.1:{port}\"\ntls = \"none\"\npoll_interval = \"100ms\"\nundo_seconds = {undo}\n"
    );
    let server = Server::start(Opts { extra_toml: extra, ..Default::default() });
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("sam", PW, &["sales-agent"]);
    (server, captured)
}

// ---------------------------------------------------------------------------------------------
// A browser without JavaScript, made of curl
// ---------------------------------------------------------------------------------------------

/// Logged in as `user`.
fn signed_in(server: &Server, user: &str) -> CurlBrowser {
    CurlBrowser::at_home(server, user, PW).0
}

// ---------------------------------------------------------------------------------------------
// Mail in and out
// ---------------------------------------------------------------------------------------------

/// Sends a customer message to `to`; `from` is the whole From: header value.
fn send(server: &Server, from: &str, to: &str, subject: &str) -> String {
    let message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello, please help.\r\n",
        unique_token("m")
    );
    server.smtp_session().send_message(CUSTOMER, &[to], message.as_bytes())
}

fn case_of(server: &Server, number: &str) -> i64 {
    let id = server.sql(&format!("SELECT id FROM cases WHERE opening_number = {}", sql_quote(number)));
    id.parse().unwrap_or_else(|_| panic!("no case opened by {number}: {id:?}"))
}

/// The `<li>` of the page that carries `marker`.
fn line_of<'a>(body: &'a str, marker: &str) -> &'a str {
    let at = body.find(marker).unwrap_or_else(|| panic!("no {marker} in {body}"));
    &body[at..at + body[at..].find("</li>").unwrap()]
}

fn subject_of(data: &str) -> String {
    let head = &data[..data.find("\r\n\r\n").unwrap_or(data.len())];
    head.split("\r\n").find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn a_template_fills_the_form_and_an_unresolved_placeholder_blocks_sending() {
    let (server, captured) = start(2);
    let number = send(&server, &format!("Ann Customer <{CUSTOMER}>"), "support@example.com", "Where is my parcel");
    let id = case_of(&server, &number);
    let anna = signed_in(&server, "anna");

    // Only the templates offered for this case's queue.
    let form = anna.get(&format!("/cases/{id}/reply"));
    assert_eq!(form.status, 200, "{form:?}");
    assert!(form.body.contains("<option value=\"thanks\">thanks</option>"), "{}", form.body);
    assert!(!form.body.contains("sales only"), "a template of another queue is not offered");
    assert!(form.textarea().is_empty());

    // Choosing one fills the body on the server (a plain GET form: no JavaScript needed).
    let filled = anna.get(&format!("/cases/{id}/reply?template=thanks"));
    assert_eq!(filled.status, 200, "{filled:?}");
    let body = filled.textarea();
    assert!(body.starts_with("Dear Ann Customer,\nthank you for writing to us about MR-"), "{body}");
    assert!(body.contains(&number), "{body}");
    assert!(body.contains("anna (support) {{ref}}"), "literal braces stay escaped in the form: {body}");
    assert!(!body.contains("{due}"), "the case has a due time: {body}");
    assert!(filled.body.contains("<option value=\"thanks\" selected>"), "{}", filled.body);
    let other = anna.get(&format!("/cases/{id}/reply?template=sales%20only"));
    assert_eq!(other.status, 422, "a template of another queue cannot be asked for either");
    assert!(other.body.contains("no reply template named"), "{}", other.body);

    // A placeholder left in the text blocks sending, with a message naming it.
    let from = format!("/cases/{id}/reply");
    for (text, expected) in [
        ("Hello {customer_nam}, see you", "{customer_nam} is not a placeholder"),
        ("Hello {customer name}", "not a placeholder"),
        ("A lone { brace", "not closed"),
    ] {
        let r = anna.submit(&from, &format!("/cases/{id}/reply/preview"), &[("body", text)]);
        assert_eq!(r.status, 422, "{text}: {r:?}");
        assert!(r.body.contains(expected), "{text}: {}", r.body);
        assert!(r.textarea().contains(text), "the form keeps the text: {}", r.body);
        let r = anna.submit(&from, &format!("/cases/{id}/reply/send"), &[("body", text)]);
        assert_eq!(r.status, 422, "sending refuses it as well: {text}");
    }

    // A customer who gave no name: {customer_name} stays visible in the form and blocks sending.
    let nameless = send(&server, CUSTOMER, "support@example.com", "No name here");
    let nameless = case_of(&server, &nameless);
    let filled = anna.get(&format!("/cases/{nameless}/reply?template=thanks"));
    assert!(filled.textarea().starts_with("Dear {customer_name},"), "{}", filled.textarea());
    let r = anna.submit(&format!("/cases/{nameless}/reply"), &format!("/cases/{nameless}/reply/send"), &[("body", &filled.textarea())]);
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.body.contains("the placeholder {customer_name} has no value for this case"), "{}", r.body);

    std::thread::sleep(Duration::from_millis(2500));
    assert!(captured.lock().unwrap().is_empty(), "nothing was sent");
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM outbox WHERE kind = 'reply'"), 0);
}

#[test]
fn preview_then_send_leaves_after_the_undo_window_with_the_tag_and_the_promise() {
    let (server, captured) = start(2);
    let number = send(&server, &format!("Ann Customer <{CUSTOMER}>"), "support@example.com", "Refund please");
    let id = case_of(&server, &number);
    let anna = signed_in(&server, "anna");
    let from = format!("/cases/{id}/reply");
    let text = "Dear {customer_name},\nwe need more time; expect an answer by {due}.\n{agent}";
    let fields = [("subject", ""), ("body", text), ("promise", "2099-01-02")];

    // The preview shows exactly what will leave.
    let preview = anna.submit(&from, &format!("/cases/{id}/reply/preview"), &fields);
    assert_eq!(preview.status, 200, "{preview:?}");
    assert_eq!(preview.draft("from"), "support@example.com");
    assert_eq!(preview.draft("to"), format!("Ann Customer &#60;{CUSTOMER}&#62;"));
    assert_eq!(preview.draft("subject"), format!("Re: [{number}] Refund please"));
    assert_eq!(preview.draft("body"), "Dear Ann Customer,\nwe need more time; expect an answer by 2099-01-02.\nanna");
    assert!(preview.body.contains("datetime=\"2099-01-02T"), "the promise is shown: {}", preview.body);
    // The agent's text travels on unrendered: Send prepares it again on the server.
    assert!(preview.body.contains("name=\"body\" value=\"Dear {customer_name},"), "{}", preview.body);

    // "Edit" goes back to the form with the text.
    let edit = anna.post(&from, &[("csrf", &preview.csrf()), ("body", text), ("promise", "2099-01-02")]);
    assert_eq!(edit.status, 200);
    assert_eq!(edit.textarea(), text);
    assert!(edit.body.contains("value=\"2099-01-02\""));

    // Send: queued, held for the undo window.
    let seen = preview.hidden("seen").expect("the preview carries the case's last event on");
    let sent = anna
        .post(&format!("/cases/{id}/reply/send"), &[("csrf", &preview.csrf()), ("seen", &seen), ("body", text), ("promise", "2099-01-02")]);
    assert_eq!(sent.status, 303, "{sent:?}");
    let location = sent.location().unwrap().to_string();
    assert!(location.starts_with(&format!("/cases/{id}/reply/")), "{location}");
    let queued = anna.get(&location);
    assert_eq!(queued.status, 200);
    assert!(queued.body.contains("Reply queued — it leaves at <time datetime="), "{}", queued.body);
    assert!(queued.body.contains(">Undo</button>"), "{}", queued.body);
    let sent_at = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    assert!(captured.lock().unwrap().is_empty(), "nothing leaves within the undo window");

    assert!(wait_until(Duration::from_secs(20), || !captured.lock().unwrap().is_empty()), "the reply never reached the smarthost");
    assert!(sent_at.elapsed() >= Duration::from_millis(1500), "it left after the window, not before");
    let mail = captured.lock().unwrap()[0].clone();
    assert_eq!(mail.to, vec![CUSTOMER.to_string()]);
    assert_eq!(subject_of(&mail.data), format!("Re: [{number}] Refund please"));
    assert!(mail.data.contains("expect an answer by 2099-01-02."), "{}", mail.data);

    // The promise is the case's follow-up, recorded in the same change; the case waits.
    let row = server.sql_rows(&format!("SELECT status, follow_up_at FROM cases WHERE id = {id}")).remove(0);
    let (status, follow_up) = (row[0].clone(), row[1].parse::<i64>().ok());
    assert_eq!(status, "waiting");
    assert!(follow_up.is_some_and(|at| at > 4_000_000_000_000), "follow-up in 2099: {follow_up:?}");
    let kinds: Vec<String> =
        server.sql(&format!("SELECT kind FROM case_entries WHERE case_id = {id} ORDER BY id")).lines().map(str::to_string).collect();
    assert_eq!(kinds, ["reply", "follow-up"]);

    // After sending, undo is refused with a clear reason.
    assert!(wait_until(Duration::from_secs(10), || anna.get(&location).body.contains("data-state=\"reply.sent\"")));
    let csrf = anna.get(&location).csrf();
    let undo = anna.post(&format!("{location}/undo"), &[("csrf", &csrf)]);
    assert_eq!(undo.status, 409, "{undo:?}");
    assert!(undo.body.contains("too late: the reply has already been sent"), "{}", undo.body);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(captured.lock().unwrap().len(), 1, "sent exactly once");
}

#[test]
fn undo_within_the_window_sends_nothing_and_the_reply_shows_withdrawn() {
    let (server, captured) = start(3);
    let number = send(&server, &format!("Ann Customer <{CUSTOMER}>"), "support@example.com", "Cancel my order");
    let id = case_of(&server, &number);
    let anna = signed_in(&server, "anna");
    let from = format!("/cases/{id}/reply");
    let sent = anna.submit(&from, &format!("/cases/{id}/reply/send"), &[("body", "Done, {customer_name}.")]);
    assert_eq!(sent.status, 303, "{sent:?}");
    let location = sent.location().unwrap().to_string();
    let queued = anna.get(&location);
    let status: String = server.sql(&format!("SELECT status FROM cases WHERE id = {id}"));
    assert_eq!(status, "waiting");

    // Without the CSRF token: refused, nothing withdrawn.
    let forged = anna.post(&format!("{location}/undo"), &[]);
    assert_eq!(forged.status, 403);

    // Another agent of the queue may not take anna's reply back.
    server.add_user("bert", PW, &["support-agent"]);
    let bert = signed_in(&server, "bert");
    let r = bert.submit(&from, &format!("{location}/undo"), &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("only its author (anna), a reviewer"), "{}", r.body);

    let undo = anna.post(&format!("{location}/undo"), &[("csrf", &queued.csrf())]);
    assert_eq!((undo.status, undo.location()), (303, Some(location.as_str())), "{undo:?}");
    let page = anna.get(&location);
    assert!(page.body.contains("data-state=\"reply.withdrawn\""), "{}", page.body);
    assert!(page.body.contains("Reply withdrawn — it was not sent."), "{}", page.body);
    assert!(!page.body.contains(">Undo</button>"));

    // The case is back to what it was; the entry stays, marked withdrawn; history and audit.
    let row = server.sql_rows(&format!("SELECT status, first_response_at FROM cases WHERE id = {id}")).remove(0);
    let (status, first_response) = (row[0].clone(), row[1].parse::<i64>().ok());
    assert_eq!((status.as_str(), first_response), ("new", None));
    let row =
        server.sql(&format!("SELECT e.state, o.status FROM case_entries e JOIN outbox o ON o.id = e.outbox_id WHERE e.case_id = {id}"));
    assert_eq!(row, "withdrawn|withdrawn", "entry state and outbox status");
    let actions: Vec<String> =
        server.sql(&format!("SELECT action FROM case_history WHERE case_id = {id} ORDER BY id")).lines().map(str::to_string).collect();
    assert_eq!(actions, ["reply", "reply-withdrawn"]);

    // Past the window and a few polls: nothing ever arrives. A second undo is refused.
    std::thread::sleep(Duration::from_millis(3000 + 1000));
    assert!(captured.lock().unwrap().is_empty(), "a withdrawn reply is never sent");
    let again = anna.post(&format!("{location}/undo"), &[("csrf", &queued.csrf())]);
    assert_eq!(again.status, 409);
    assert!(again.body.contains("already taken back"), "{}", again.body);
}

#[test]
fn reply_pages_need_a_session_the_csrf_token_and_the_queue() {
    let (server, _captured) = start(2);
    let number = send(&server, &format!("Ann Customer <{CUSTOMER}>"), "support@example.com", "Access");
    let id = case_of(&server, &number);
    let anna = signed_in(&server, "anna");

    // No session: the login page.
    let anonymous = CurlBrowser::new(&server);
    for path in [format!("/cases/{id}/reply"), format!("/cases/{id}/reply/1")] {
        let r = anonymous.get(&path);
        assert_eq!((r.status, r.location()), (303, Some("/login")), "{path}");
    }
    let r = anonymous.post(&format!("/cases/{id}/reply/send"), &[("body", "x")]);
    assert_eq!((r.status, r.location()), (303, Some("/login")));

    // No or a wrong CSRF token: refused, nothing queued.
    for csrf in [None, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
        for action in ["preview", "send"] {
            let mut form = vec![("body", "Hello")];
            if let Some(token) = csrf {
                form.push(("csrf", token));
            }
            let r = anna.post(&format!("/cases/{id}/reply/{action}"), &form);
            assert_eq!(r.status, 403, "{action} with {csrf:?}");
            assert!(r.body.contains("This request was refused"), "{}", r.body);
        }
    }
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM outbox WHERE kind = 'reply'"), 0);

    // An agent of another queue: the same 404 page as for a case that does not exist.
    let sam = signed_in(&server, "sam");
    for path in [format!("/cases/{id}/reply"), "/cases/999999/reply".to_string(), "/cases/x/reply".to_string()] {
        let r = sam.get(&path);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(r.body.contains("<html"), "a page, not JSON");
    }
    let r = sam.submit("/", &format!("/cases/{id}/reply/send"), &[("body", "Hello")]);
    assert_eq!(r.status, 404);
}

#[test]
fn review_the_author_cannot_approve_a_returned_reply_is_resent_and_an_approved_one_leaves() {
    let (server, captured) = start(1);
    server.add_user("val", PW, &["vip-agent"]);
    server.add_user("rita", PW, &["vip-reviewer"]);
    server.add_user("rolf", PW, &["vip-reviewer"]);
    let number = send(&server, &format!("Ann Customer <{CUSTOMER}>"), "vip@example.com", "Contract question");
    let id = case_of(&server, &number);
    let rita = signed_in(&server, "rita");
    let rolf = signed_in(&server, "rolf");
    let val = signed_in(&server, "val");
    let form = format!("/cases/{id}/reply");
    let replies = |server: &Server| server.sql_i64("SELECT COUNT(*) FROM outbox WHERE kind = 'reply'");

    // Rita writes: the reply awaits review, nothing is queued, the case is unchanged.
    let sent = rita.submit(&form, &format!("/cases/{id}/reply/send"), &[("body", "Dear {customer_name}, first draft.")]);
    assert_eq!(sent.status, 303, "{sent:?}");
    let location = sent.location().unwrap().to_string();
    let entry = location.rsplit('/').next().unwrap().to_string();
    let page = rita.get(&location);
    assert!(page.body.contains("data-state=\"reply.awaiting\""), "{}", page.body);
    assert_eq!(replies(&server), 0, "no outbox row while awaiting review");
    let status: String = server.sql(&format!("SELECT status FROM cases WHERE id = {id}"));
    assert_eq!(status, "new");

    // The author cannot approve her own reply (nor return it); no review permission, no approval.
    let own = rita.submit(&form, &format!("/cases/{id}/reply/{entry}/approve"), &[]);
    assert_eq!(own.status, 403, "{own:?}");
    assert!(own.body.contains("you wrote this reply"), "{}", own.body);
    assert!(!rita.get(&form).body.contains(&format!("/reply/{entry}/approve")), "no approve button for the author");
    let no_permission = val.submit(&form, &format!("/cases/{id}/reply/{entry}/approve"), &[]);
    assert_eq!(no_permission.status, 403, "{no_permission:?}");
    assert!(no_permission.body.contains("review permission"), "{}", no_permission.body);
    let forged = rolf.post(&format!("/cases/{id}/reply/{entry}/approve"), &[]);
    assert_eq!(forged.status, 403, "no CSRF token");
    assert_eq!(replies(&server), 0);

    // Rolf sees it in his list (Rita does not: it is her own) and returns it with a comment.
    assert!(rolf.get("/reviews").body.contains(&format!("data-review=\"{entry}\"")));
    assert!(!rita.get("/reviews").body.contains(&format!("data-review=\"{entry}\"")));
    let returned = rolf.submit(&form, &format!("/cases/{id}/reply/{entry}/return"), &[("comment", "Please mention clause 4.")]);
    assert_eq!((returned.status, returned.location()), (303, Some(form.as_str())), "{returned:?}");

    // Rita sees the comment, edits the returned text and sends it again.
    let mine = rita.get(&form);
    assert!(mine.body.contains("Comment from rolf: Please mention clause 4."), "{}", mine.body);
    let edit = rita.get(&format!("{form}?edit={entry}"));
    assert_eq!(edit.textarea(), "Dear Ann Customer, first draft.");
    assert!(edit.body.contains(&format!("name=\"replaces\" value=\"{entry}\"")), "{}", edit.body);
    let again =
        rita.submit(&form, &format!("/cases/{id}/reply/send"), &[("body", "Dear Ann Customer, see clause 4."), ("replaces", &entry)]);
    assert_eq!(again.status, 303);
    assert!(!rita.get(&form).body.contains(&format!("?edit={entry}")), "the returned reply was replaced");
    let old_state = server.sql(&format!("SELECT state FROM case_entries WHERE id = {}", sql_quote(&entry)));
    assert_eq!(old_state, "resubmitted");
    let second = again.location().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!(rolf.submit(&form, &format!("/cases/{id}/reply/{entry}/approve"), &[]).status, 409, "a returned reply cannot be approved");

    // Rolf approves: queued with the undo window, then sent with the tag.
    let approved = rolf.submit(&form, &format!("/cases/{id}/reply/{second}/approve"), &[]);
    assert_eq!(approved.status, 303, "{approved:?}");
    assert!(wait_until(Duration::from_secs(20), || !captured.lock().unwrap().is_empty()), "the approved reply never arrived");
    let mail = captured.lock().unwrap()[0].clone();
    assert_eq!(subject_of(&mail.data), format!("Re: [{number}] Contract question"));
    assert!(mail.data.contains("see clause 4."), "{}", mail.data);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(captured.lock().unwrap().len(), 1, "only the approved reply is sent");

    let actions: Vec<String> =
        server.sql(&format!("SELECT action FROM case_history WHERE case_id = {id} ORDER BY id")).lines().map(str::to_string).collect();
    assert_eq!(actions, ["reply.submitted", "reply.returned", "reply.submitted", "reply.approved"]);
    let status = server.sql(&format!("SELECT status FROM cases WHERE id = {id}"));
    assert_eq!(status, "waiting");

    // The header links the reviews for reviewers only.
    assert!(rolf.get("/").body.contains("<a href=\"/reviews\">Reviews</a>"));
    assert!(!val.get("/").body.contains("href=\"/reviews\""));

    // The case page tells the story in words, in the reader's language: the reviewer's comment
    // (internal), each reply's state, and history lines with statuses and authors translated.
    let case = rolf.get(&format!("/cases/{id}"));
    assert!(case.body.contains("Reviewer&#39;s comment — internal, not sent to the customer"), "{}", case.body);
    assert!(case.body.contains("data-state=\"reply_state.resubmitted\""), "{}", case.body);
    assert!(case.body.contains("data-state=\"reply_state.sent\">Sent</p>"), "{}", case.body);
    let approved_line = line_of(&case.body, "data-history=\"reply.approved\"");
    assert!(approved_line.contains("rolf approved a reply — written by rita; Status: New → Waiting"), "{approved_line}");
    let ru = rolf.request("GET", &format!("/cases/{id}"), &[], &["Accept-Language: ru"]);
    let approved_line = line_of(&ru.body, "data-history=\"reply.approved\"");
    assert!(approved_line.contains("rolf одобрил(а) ответ — автор: rita; Статус: Новое → Ожидание"), "{approved_line}");
    assert!(!ru.body.contains(" entry=") && !ru.body.contains("outbox="), "no internal ids on the page: {}", ru.body);
}

#[test]
fn a_reply_to_a_case_that_changed_meanwhile_is_not_sent_and_the_text_is_kept() {
    let (server, captured) = start(1);
    server.add_user("bert", PW, &["support-agent"]);
    let number = send(&server, &format!("Ann Customer <{CUSTOMER}>"), "support@example.com", "Where is my parcel");
    let id = case_of(&server, &number);
    let anna = signed_in(&server, "anna");
    let bert = signed_in(&server, "bert");

    // Anna starts her reply; meanwhile bert answers and the customer writes again.
    let form = anna.get(&format!("/cases/{id}/reply"));
    let (csrf, seen) = (form.csrf(), form.hidden("seen").expect("the reply form carries the case's last event"));
    let first = bert.submit(&format!("/cases/{id}/reply"), &format!("/cases/{id}/reply/send"), &[("body", "Bert here: it ships today.")]);
    assert_eq!(first.status, 303, "{first:?}");

    let text = "Anna here: it ships tomorrow.";
    let late = anna.post(&format!("/cases/{id}/reply/send"), &[("csrf", &csrf), ("seen", &seen), ("body", text)]);
    assert_eq!(late.status, 409, "{late:?}");
    assert!(late.body.contains("data-notice=\"reply-collision\""), "{}", late.body);
    assert!(late.body.contains("Bert here: it ships today."), "the case page shows what bert sent: {}", late.body);
    assert!(late.body.contains(&format!("name=\"body\" value=\"{text}\"")), "anna's text is kept: {}", late.body);
    let replies = server.sql_i64(&format!("SELECT count(*) FROM case_entries WHERE case_id = {id} AND kind = 'reply'"));
    assert_eq!(replies, 1, "only bert's reply was queued");

    // Without `seen` the form is not one of ours: refused, nothing sent.
    let bare = anna.post(&format!("/cases/{id}/reply/send"), &[("csrf", &csrf), ("body", text)]);
    assert_eq!(bare.status, 400, "{bare:?}");

    // "Continue my reply" brings the form back with her text and a fresh `seen`: now it goes.
    let again = anna.post(&format!("/cases/{id}/reply"), &[("csrf", &csrf), ("body", text)]);
    assert_eq!(again.status, 200, "{again:?}");
    let fresh = again.hidden("seen").unwrap();
    assert_ne!(fresh, seen);
    let sent = anna.post(&format!("/cases/{id}/reply/send"), &[("csrf", &csrf), ("seen", &fresh), ("body", text)]);
    assert_eq!(sent.status, 303, "{sent:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while captured.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(captured.lock().unwrap().len(), 2, "bert's and anna's replies left, nothing twice");
}
