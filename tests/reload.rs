//! Configuration reload on SIGHUP, over real sockets: `mailroom serve` with a rule, a reply
//! template and a role; the test rewrites its `mailroom.toml` and sends SIGHUP. The new rule
//! decides the next message (also one whose SMTP session was open across the reload), the new
//! template is offered, the new role exists; a broken file, a new queue and a changed listener
//! section are handled as an operator expects (refused with file/line/key, refused with
//! "restart", taken at the next restart) and the server never stops serving.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const PW: &str = "correct-horse-battery-staple";

/// The reloadable part of the config: where "invoice" mail goes, one template, roles.
fn extra(invoice_category: &str, template: &str, roles: &[&str]) -> String {
    let mut text = format!(
        r#"
[outbox]
smarthost = "127.0.0.1:9"
tls = "none"

[[categories]]
code = "BZZX"
name = "Business enquiry"

[[categories]]
code = "TSJJ"
name = "Complaint or suggestion"

[[rules]]
name = "invoices"
subject_contains = ["invoice"]
category = "{invoice_category}"

[[templates]]
name = "{template}"
body = "Dear customer, thank you."
"#
    );
    for role in roles {
        text.push_str(&format!("\n[[roles]]\nname = \"{role}\"\ngrants = {{ support = [\"read\", \"act\"] }}\n"));
    }
    text
}

fn opts(extra_toml: String) -> Opts {
    Opts { extra_toml, ..Default::default() }
}

/// Writes `opts`' config over the server's file and sends SIGHUP; waits until the log has one
/// more line containing `outcome` than before.
fn reload(server: &Server, opts: &Opts, outcome: &str) -> String {
    let before = server.log_text().matches(outcome).count();
    let mut text = opts.config_toml();
    if let Some(url) = database_url(server) {
        text = text.replace("database = \"mailroom.db\"", &format!("database = \"{url}\""));
    }
    std::fs::write(server.root().join("mailroom.toml"), text).unwrap();
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) }, 0, "kill -HUP");
    assert!(
        wait_until(Duration::from_secs(10), || server.log_text().matches(outcome).count() > before),
        "no {outcome:?} in the log after SIGHUP\n{}",
        server.log_text()
    );
    server.log_text()
}

/// The database line the harness wrote (PostgreSQL pass: a URL), kept when the test rewrites
/// the file.
fn database_url(server: &Server) -> Option<String> {
    let text = std::fs::read_to_string(server.root().join("mailroom.toml")).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("database = "))?;
    let value = line.split_once('=')?.1.trim().trim_matches('"').to_string();
    (value != "mailroom.db").then_some(value)
}

fn category_of(server: &Server, token: &str, number: &str) -> Value {
    let list = api_ok(server, "GET", "/api/queues/support/cases?status=all&limit=200", token, None);
    let item = list["items"].as_array().unwrap().iter().find(|i| i["opening"] == number).cloned();
    item.unwrap_or_else(|| panic!("{number} not listed: {list}"))["category"].clone()
}

fn send(server: &Server, subject: &str) -> String {
    let mut c = server.smtp_session();
    c.send_message("customer@client.example.org", &["support@example.com"], &simple_message(subject, "Hello."))
}

#[test]
fn sighup_reloads_rules_templates_and_roles_without_dropping_sessions() {
    let first = opts(extra("BZZX", "First template", &["support-agent"]));
    let server = Server::start(first.clone());
    server.add_user("anna", PW, &["support-agent"]);
    let token = bearer_login(&server, "anna", PW);
    let before = send(&server, "invoice 1");
    assert_eq!(category_of(&server, &token, &before), "BZZX");

    // A session in the middle of a transaction while the configuration changes.
    let mut open = server.smtp_session();
    open.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    open.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");

    let second = opts(extra("TSJJ", "Second template", &["support-agent", "night-shift"]));
    let log = reload(&server, &second, "configuration reloaded");
    assert!(!log.contains("keep their running values"), "nothing outside the reloadable sections changed:\n{log}");

    // The open session goes on; its message is decided by the rule in force at end of data.
    open.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    open.send(&data_wire(&simple_message("invoice 2", "Hello again.")));
    let during = registered(open.reply().line());
    assert_eq!(category_of(&server, &token, &during), "TSJJ", "the reloaded rule decides");
    assert_eq!(category_of(&server, &token, &before), "BZZX", "what was decided stays");

    // The reloaded template is offered on the reply page; the old one is gone.
    let case = api_ok(&server, "GET", "/api/queues/support/cases?status=all&limit=200", &token, None)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["opening"] == during.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (anna, _) = CurlBrowser::logged_in(&server, "anna", PW);
    let form = anna.get(&format!("/cases/{case}/reply"));
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("Second template") && !form.body.contains("First template"), "{}", form.body);

    // The new role was created.
    let roles = server.cli(&["role", "list", "--json"]);
    assert!(roles.stdout_str().contains("\"night-shift\""), "{}", roles.stdout_str());

    // A broken file: refused with file, line and key; the running configuration stays.
    let mut broken = second.clone();
    broken.extra_toml.push_str("\n[[rules]]\nname = \"broken\"\nsubject_contains = [\"x\"]\npriority = \"soonish\"\n");
    let log = reload(&server, &broken, "configuration reload refused");
    let refusal = log.lines().rev().find(|l| l.contains("configuration reload refused")).unwrap();
    assert!(refusal.contains("mailroom.toml:") && refusal.contains("rules[1].priority"), "file, line and key: {refusal}");
    assert_eq!(category_of(&server, &token, &send(&server, "invoice 3")), "TSJJ", "the previous rules stay in force");

    // A new queue needs a restart: refused, nothing changes.
    let mut queue = opts(extra("BZZX", "Second template", &["support-agent", "night-shift"]));
    queue.extra_toml.push_str("\n[[queues]]\nname = \"billing\"\naddresses = [\"billing@example.com\"]\n");
    let log = reload(&server, &queue, "configuration reload refused");
    assert!(log.contains("restart mailroom to apply"), "{log}");
    assert_eq!(category_of(&server, &token, &send(&server, "invoice 4")), "TSJJ");
    let mut c = server.smtp_session();
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<billing@example.com>", "550 5.1.1 Mailbox unknown");

    // Rules back to BZZX together with a listener-level limit: the rules take effect, the limit
    // waits for a restart and is named in the log.
    let mut limits = opts(extra("BZZX", "Second template", &["support-agent", "night-shift"]));
    limits.max_recipients = 1;
    let log = reload(&server, &limits, "configuration reloaded");
    let warning = log.lines().rev().find(|l| l.contains("keep their running values")).expect("a restart warning");
    assert!(warning.contains("limits"), "{warning}");
    assert_eq!(category_of(&server, &token, &send(&server, "invoice 5")), "BZZX");
    let mut c = server.smtp_session();
    let two = c.send_message("customer@client.example.org", &["support@example.com", "help@example.com"], &simple_message("two", "x"));
    assert!(!two.is_empty(), "max_recipients keeps its running value (100) until a restart");
}

/// The IMAP view's `X-Mailroom-Category` header (Python's imaplib over TLS) of the one message
/// in `support`, as `user` sees it.
fn imap_category_header(server: &Server, user: &str) -> String {
    let script = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conn = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx)
conn.login(sys.argv[2], sys.argv[3])
conn.select("support", readonly=True)
typ, data = conn.fetch("1", "(BODY.PEEK[HEADER.FIELDS (X-Mailroom-Category)])")
print(data[0][1].decode().strip())
conn.logout()
"#;
    let port = server.imaps_addr().port().to_string();
    let out = std::process::Command::new("python3").args(["-c", script, &port, user, PW]).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn imap_shows_the_reloaded_category_names() {
    let first = opts(extra("BZZX", "First template", &["support-agent"]));
    let server = Server::start(first.clone());
    server.add_user("anna", PW, &["support-agent"]);
    send(&server, "invoice 1");
    assert_eq!(imap_category_header(&server, "anna"), "X-Mailroom-Category: BZZX (Business enquiry)");

    let renamed = opts(first.extra_toml.replace("name = \"Business enquiry\"", "name = \"Business request\""));
    assert_ne!(renamed.extra_toml, first.extra_toml);
    reload(&server, &renamed, "configuration reloaded");
    assert_eq!(imap_category_header(&server, "anna"), "X-Mailroom-Category: BZZX (Business request)", "without a restart");
}
