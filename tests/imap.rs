//! The staff IMAP view over real sockets: a raw client for exact protocol checks, and real
//! clients not written here (Python's imaplib in tests/py/imap_*.py, curl, mbsync).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

/// Roles (the harness config has none), and a category with a rule that sets it.
const STAFF: &str = r#"
[[categories]]
code = "BZZX"
name = "Business enquiry"

[[rules]]
name = "offers"
subject_contains = ["offer"]
category = "BZZX"
priority = "urgent"

[[rules]]
name = "junk"
subject_contains = ["casino"]
spam = true

[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }

[[roles]]
name = "supervisor"
grants = { "*" = ["read", "act", "assign", "supervise"] }
"#;

/// A server with the staff roles and anna (support-agent). `imap` adds keys to `[imap]`.
fn server_with(imap: &str) -> Server {
    let mut opts = Opts { extra_toml: STAFF.into(), ..Opts::default() };
    if !imap.is_empty() {
        let config = opts.config_toml();
        assert!(config.contains("[imap]\n"));
        opts.raw_config = Some(config.replace("[imap]\n", &format!("[imap]\n{imap}\n")));
    }
    let s = Server::start(opts);
    s.add_user("anna", PW, &["support-agent"]);
    s
}

fn server() -> Server {
    server_with("")
}

/// Delivers a message by SMTP; returns its registration number.
fn deliver(s: &Server, to: &str, subject: &str, body: &str) -> String {
    let content = format!(
        "From: Kim Customer <kim@customer.example>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <{}@customer.example>\r\n\r\n{body}",
        unique_token("m")
    );
    s.smtp_session().send_message("kim@customer.example", &[to], content.as_bytes())
}

const MULTIPART: &str = "From: Kim Customer <kim@customer.example>\r\nTo: support@example.com\r\nSubject: Invoice question\r\n\
Message-ID: <multi@customer.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWhere is my invoice?\r\n\
--b1\r\nContent-Type: application/pdf; name=\"inv.pdf\"\r\nContent-Disposition: attachment; filename=\"inv.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n\
--b1--\r\n";

// ---------------------------------------------------------------------------------------------
// A raw IMAP client
// ---------------------------------------------------------------------------------------------

fn audit_reads(s: &Server) -> Vec<serde_json::Value> {
    let out = s.cli(&["audit", "list", "--action", "message.read", "--json"]);
    assert!(out.status.success(), "audit list: {}", out.stderr);
    out.stdout_str().lines().map(|l| serde_json::from_str(l).expect("audit JSON")).collect()
}

fn audit_verify(s: &Server) {
    let out = s.cli(&["audit", "verify"]);
    assert!(out.status.success(), "audit verify: {} {}", out.stdout_str(), out.stderr);
}

// ---------------------------------------------------------------------------------------------
// TLS, login
// ---------------------------------------------------------------------------------------------

#[test]
fn login_is_refused_in_clear_and_works_after_starttls_with_literals() {
    let s = server();
    let mut c = Imap::connect(s.imap_addr());
    let greeting = c.line();
    for cap in ["IMAP4rev1", "STARTTLS", "LOGINDISABLED"] {
        assert!(greeting.contains(cap), "{cap} missing: {greeting}");
    }
    assert!(!greeting.contains("AUTH=PLAIN"), "{greeting}");
    let r = c.command(&format!("LOGIN anna \"{PW}\""));
    assert!(r.status.starts_with("NO [PRIVACYREQUIRED]"), "{r:?}");
    let r = c.command("AUTHENTICATE PLAIN AGFubmEAY29ycmVjdCBob3JzZSBiYXR0ZXJ5");
    assert!(r.status.starts_with("NO [PRIVACYREQUIRED]"), "{r:?}");
    assert!(c.command("SELECT support").status.starts_with("BAD"));

    let r = c.command("STARTTLS");
    assert!(r.ok(), "{r:?}");
    c.handshake();
    let r = c.command("CAPABILITY");
    assert!(r.has("AUTH=PLAIN") && !r.has("LOGINDISABLED") && !r.has("STARTTLS"), "{r:?}");
    assert!(c.command("STARTTLS").status.starts_with("BAD"), "STARTTLS inside TLS");
    // The password as a synchronising literal: the server asks for it with "+".
    c.send(format!("t100 LOGIN anna {{{}}}\r\n", PW.len()).as_bytes());
    let cont = c.line();
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(format!("{PW}\r\n").as_bytes());
    let r = c.finish("t100");
    assert!(r.status.starts_with("OK [CAPABILITY IMAP4rev1"), "{r:?}");
    assert!(c.command("NOOP").ok());
}

#[test]
fn authenticate_plain_with_initial_response_and_continuation() {
    let s = server();
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let mut c = Imap::tls(s.imaps_addr());
    let r = c.command(&format!("AUTHENTICATE PLAIN {}", b64(&format!("\0anna\0{PW}"))));
    assert!(r.ok(), "{r:?}");

    let mut c = Imap::tls(s.imaps_addr());
    c.send(b"a1 AUTHENTICATE PLAIN\r\n");
    assert_eq!(c.line(), "+ ");
    c.send(format!("{}\r\n", b64(&format!("anna\0anna\0{PW}"))).as_bytes());
    assert!(c.finish("a1").ok());

    let mut c = Imap::tls(s.imaps_addr());
    c.send(b"a1 AUTHENTICATE PLAIN\r\n");
    assert_eq!(c.line(), "+ ");
    c.send(b"*\r\n");
    assert!(c.finish("a1").status.starts_with("BAD"), "cancelled");
    let r = c.command(&format!("AUTHENTICATE PLAIN {}", b64("\0anna\0wrong password")));
    assert!(r.status.starts_with("NO [AUTHENTICATIONFAILED]"), "{r:?}");
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let s = server();
    let mut c = Imap::connect(s.imap_addr());
    c.line();
    // One write: the injected command arrives with STARTTLS, before the handshake.
    c.send(b"t1 STARTTLS\r\nx1 CAPABILITY\r\n");
    let r = c.finish("t1");
    assert!(r.ok(), "{r:?}");
    c.handshake();
    let r = c.command("NOOP");
    assert!(r.ok(), "{r:?}");
    assert!(r.lines.is_empty(), "a response to the injected command came inside TLS: {r:?}");
}

#[test]
fn failed_logins_look_alike_and_end_the_connection_after_three() {
    let s = server();
    s.add_user("bert", PW, &["support-agent"]);
    let out = s.cli(&["user", "lock", "bert"]);
    assert!(out.status.success(), "{}", out.stderr);
    let mut c = Imap::tls(s.imaps_addr());
    for (user, pw) in [("anna", "wrong password"), ("nobody", PW), ("bert", PW)] {
        let r = c.command(&format!("LOGIN {user} \"{pw}\""));
        assert_eq!(r.status, "NO [AUTHENTICATIONFAILED] Invalid credentials", "{user}");
    }
    let rest = c.closed();
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");
    // The right password still works on a new connection.
    let mut c = Imap::login(&s, "anna", PW);
    assert!(c.command("LOGOUT").ok());
}

#[test]
fn login_timeout_and_idle_timeout_close_with_bye() {
    let s = server_with("login_timeout = \"2s\"\nidle_timeout = \"2s\"");
    let mut c = Imap::connect(s.imap_addr());
    c.line();
    let started = Instant::now();
    let rest = c.closed();
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    let mut c = Imap::login(&s, "anna", PW);
    assert!(c.command("SELECT support").ok());
    c.send(b"i1 IDLE\r\n");
    assert!(c.line().starts_with("+ "));
    let rest = c.closed();
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "IDLE is bounded by idle_timeout too: {rest:?}");
}

#[test]
fn connections_over_the_limit_get_bye() {
    let s = server_with("max_connections = 2");
    let _a = Imap::tls(s.imaps_addr());
    let _b = Imap::tls(s.imaps_addr());
    let mut c = Imap::connect(s.imap_addr());
    let rest = c.closed();
    assert_eq!(rest, vec!["* BYE Too many connections, try again later"]);
}

#[test]
fn bye_on_shutdown() {
    let mut s = server();
    let mut c = Imap::login(&s, "anna", PW);
    assert!(c.command("SELECT support").ok());
    s.terminate();
    let rest = c.closed();
    assert!(rest.iter().any(|l| l == "* BYE Server shutting down"), "{rest:?}");
    assert!(s.wait_exit(Duration::from_secs(30)).success());
}

// ---------------------------------------------------------------------------------------------
// Mailboxes and permissions
// ---------------------------------------------------------------------------------------------

#[test]
fn mailboxes_are_the_queues_the_user_may_read() {
    let s = server();
    s.add_user("sam", PW, &["supervisor"]);
    let mut c = Imap::login(&s, "anna", PW);
    let r = c.command("LIST \"\" \"*\"");
    assert_eq!(r.lines, vec!["* LIST (\\HasNoChildren) \"/\" support"], "{r:?}");
    let r = c.command("LIST \"\" \"%\"");
    assert_eq!(r.lines, vec!["* LIST (\\HasNoChildren) \"/\" support"], "{r:?}");
    let r = c.command("LIST \"\" \"\"");
    assert_eq!(r.lines, vec!["* LIST (\\Noselect) \"/\" \"\""], "{r:?}");
    let r = c.command("LSUB \"\" \"*\"");
    assert_eq!(r.lines, vec!["* LSUB (\\HasNoChildren) \"/\" support"], "{r:?}");
    // A queue without a grant and a queue that does not exist get the same answer.
    for name in ["sales", "nosuchqueue"] {
        assert_eq!(c.command(&format!("SELECT {name}")).status, "NO [NONEXISTENT] No such mailbox");
        assert_eq!(c.command(&format!("EXAMINE {name}")).status, "NO [NONEXISTENT] No such mailbox");
        assert_eq!(c.command(&format!("STATUS {name} (MESSAGES)")).status, "NO [NONEXISTENT] No such mailbox");
    }
    deliver(&s, "sales@example.com", "For sales", "body\r\n");
    let r = c.command("STATUS support (MESSAGES UNSEEN)");
    assert_eq!(r.lines, vec!["* STATUS support (MESSAGES 0 UNSEEN 0)"]);

    let mut c = Imap::login(&s, "sam", PW);
    let r = c.command("LIST \"\" \"*\"");
    let names: Vec<&str> = r.lines.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(names, vec!["support", "sales", "complaints"], "{r:?}");
    let r = c.command("LIST \"\" \"s*\"");
    assert_eq!(r.lines.len(), 2, "{r:?}");
    let r = c.command("STATUS sales (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)");
    assert!(r.lines[0].starts_with("* STATUS sales (MESSAGES 1 UNSEEN 1 UIDNEXT 2 UIDVALIDITY "), "{r:?}");
}

#[test]
fn revoked_grant_and_locked_user_take_effect_at_the_next_command() {
    let s = server();
    deliver(&s, "support@example.com", "Hello", "body\r\n");
    let mut c = Imap::login(&s, "anna", PW);
    let r = c.command("SELECT support");
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    let out = s.cli(&["role", "revoke", "support-agent", "--queue", "support"]);
    assert!(out.status.success(), "{}", out.stderr);
    let r = c.command("FETCH 1 (BODY.PEEK[])");
    assert!(r.status.starts_with("NO [NOPERM]"), "{r:?}");
    assert!(r.has("* OK [CLOSED]"), "{r:?}");
    assert!(!r.has("FETCH"), "content after the grant was revoked: {r:?}");
    assert_eq!(c.command("SELECT support").status, "NO [NONEXISTENT] No such mailbox");
    assert!(c.command("LIST \"\" \"*\"").lines.is_empty());

    let out = s.cli(&["role", "grant", "support-agent", "--queue", "support", "--permission", "read"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(c.command("SELECT support").ok());
    let out = s.cli(&["user", "lock", "anna"]);
    assert!(out.status.success(), "{}", out.stderr);
    c.send(b"t99 NOOP\r\n");
    let rest = c.closed();
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");
    assert!(!rest.iter().any(|l| l.starts_with("t99 OK")), "{rest:?}");
}

#[test]
fn changes_are_refused_with_cannot() {
    let s = server();
    deliver(&s, "support@example.com", "Hello", "body\r\n");
    let mut c = Imap::login(&s, "anna", PW);
    assert!(c.command("SELECT support").ok());
    for cmd in [
        "COPY 1 support",
        "MOVE 1 support",
        "UID COPY 1 support",
        "EXPUNGE",
        "UID EXPUNGE 1",
        "STORE 1 +FLAGS (\\Deleted)",
        "STORE 1 +FLAGS ($Junk)",
        "CREATE archive",
        "DELETE support",
        "RENAME support old",
    ] {
        let r = c.command(cmd);
        assert!(r.status.starts_with("NO [CANNOT] "), "{cmd}: {r:?}");
    }
    assert_eq!(c.command("EXPUNGE").status, "NO [CANNOT] Registered mail cannot be deleted here; close the case through the HTTP API");
    // APPEND: refused before the message is sent (no "+").
    c.send(b"a1 APPEND support {20}\r\n");
    let r = c.finish("a1");
    assert!(r.status.starts_with("NO [CANNOT]") && r.lines.is_empty(), "{r:?}");
    c.send(b"a2 APPEND support {20+}\r\nSubject: x\r\n\r\nhello\r\n\r\n");
    assert!(c.finish("a2").status.starts_with("NO [CANNOT]"));
    assert!(c.command("FROBNICATE").status.starts_with("BAD"));
    assert!(c.command("FETCH 1 (BODY.PEEK[]").status.starts_with("BAD"));
    assert!(c.command("FETCH 7 (FLAGS)").status.starts_with("BAD"));
    // The mailbox is unchanged.
    let r = c.command("FETCH 1:* (FLAGS)");
    assert_eq!(r.lines, vec!["* 1 FETCH (FLAGS ($new))"]);
    assert!(c.command("SUBSCRIBE support").ok());
    assert!(c.command("EXAMINE support").status.starts_with("OK [READ-ONLY]"));
    assert!(c.command("STORE 1 +FLAGS (\\Seen)").status.starts_with("NO [READ-ONLY]"));
}

#[test]
fn limits_on_literals_lines_and_errors() {
    let s = server();
    let mut c = Imap::tls(s.imaps_addr());
    // Over imap.max_literal (64 KiB by default): refused without "+", the session goes on.
    c.send(b"l1 LOGIN anna {100000}\r\n");
    let r = c.finish("l1");
    assert!(r.status.starts_with("BAD [TOOBIG]") && r.lines.is_empty(), "{r:?}");
    assert!(c.command("NOOP").ok());
    // A non-synchronising literal over the limit: its data would be read as commands.
    c.send(b"l2 LOGIN anna {100000+}\r\n");
    let rest = c.closed();
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");

    let mut c = Imap::tls(s.imaps_addr());
    let long = format!("l3 NOOP {}\r\n", "x".repeat(70 * 1024));
    c.send(long.as_bytes());
    let rest = c.closed();
    assert!(rest.iter().any(|l| l.contains("BAD")) && rest.iter().any(|l| l.starts_with("* BYE")), "{rest:?}");

    let mut c = Imap::tls(s.imaps_addr());
    for i in 0..9 {
        assert!(c.command(&format!("BOGUS{i}")).status.starts_with("BAD"));
    }
    assert!(c.command("NOOP").ok(), "a good command resets the count");
    for i in 0..9 {
        assert!(c.command(&format!("BOGUS{i}")).status.starts_with("BAD"));
    }
    c.send(b"b10 BOGUS\r\n");
    let rest = c.closed();
    assert!(rest.iter().any(|l| l.starts_with("* BYE")), "max_errors BADs in a row: {rest:?}");
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

#[test]
fn fetch_shows_the_registration_and_audits_every_read() {
    let s = server();
    let offer = deliver(&s, "support@example.com", "A special offer", "Buy now.\r\n");
    let multi = s.smtp_session().send_message("kim@customer.example", &["support@example.com"], MULTIPART.as_bytes());
    let mut c = Imap::login(&s, "anna", PW);
    let r = c.command("SELECT support");
    assert!(r.has("* 2 EXISTS") && r.has("* OK [UNSEEN 1]") && r.has("[UIDVALIDITY ") && r.has("* OK [UIDNEXT 3]"), "{r:?}");
    // The keywords a message may show (the case: category, priority, assignee, status) are
    // announced, but only \Seen and \Flagged can be changed.
    assert!(r.has("* FLAGS (\\Seen \\Flagged $Junk $BZZX $urgent $low $mine $new $open $waiting $resolved $closed)"), "{r:?}");
    assert!(r.has("[PERMANENTFLAGS (\\Seen \\Flagged)]") && r.has("* OK [HIGHESTMODSEQ "), "{r:?}");
    assert!(r.status.starts_with("OK [READ-WRITE]"), "{r:?}");

    // Metadata only: nothing audited, nothing seen.
    let r = c.command("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)");
    assert_eq!(r.lines.len(), 2, "{r:?}");
    assert!(r.lines[0].starts_with("* 1 FETCH (UID 1 FLAGS ($BZZX $urgent $new) RFC822.SIZE "), "{r:?}");
    assert!(r.lines[0].ends_with(" +0000\")"), "INTERNALDATE: {r:?}");
    let size_of_2: usize = r.lines[1].split("RFC822.SIZE ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(audit_reads(&s).is_empty());

    let r = c.command("FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration X-Mailroom-Category X-Mailroom-Priority Subject)])");
    let header = String::from_utf8_lossy(fetched(
        &r.raw[0],
        "BODY[HEADER.FIELDS (X-Mailroom-Registration X-Mailroom-Category X-Mailroom-Priority Subject)]",
    ))
    .into_owned();
    assert_eq!(
        header,
        format!(
            "X-Mailroom-Registration: {offer}\r\nX-Mailroom-Category: BZZX (Business enquiry)\r\nX-Mailroom-Priority: urgent\r\nSubject: A special offer\r\n\r\n"
        )
    );
    let r = c.command("FETCH 1 (BODY.PEEK[HEADER])");
    let header = String::from_utf8_lossy(fetched(&r.raw[0], "BODY[HEADER]")).into_owned();
    assert!(header.starts_with(&format!("X-Mailroom-Registration: {offer}\r\n")), "{header}");
    assert!(header.contains("\r\nX-Mailroom-Due: ") && header.contains("\r\nReceived: "), "{header}");
    let r = c.command("FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Received X-Mailroom-Due Date Message-ID)])");
    assert!(!r.lines[0].contains("Received:") && r.lines[0].contains("X-Mailroom-Priority: urgent"), "{r:?}");

    // RFC822.SIZE, BODY[] and its parts agree.
    let r = c.command("UID FETCH 2 (RFC822.SIZE BODY.PEEK[])");
    let body = fetched(&r.raw[0], "BODY[]").to_vec();
    assert!(r.lines[0].contains(&format!("RFC822.SIZE {}", body.len())), "{}", r.lines[0]);
    assert_eq!(size_of_2, body.len(), "RFC822.SIZE without decrypting the message");
    assert!(body.starts_with(format!("X-Mailroom-Registration: {multi}\r\nX-Mailroom-Priority: normal\r\n").as_bytes()));
    assert!(body.ends_with(MULTIPART.as_bytes()));
    let r = c.command("FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[2] BODY.PEEK[TEXT]<0.4> BODY.PEEK[3])");
    let raw = &r.raw[0];
    assert_eq!(fetched(raw, "BODY[1]"), b"Where is my invoice?");
    assert!(fetched(raw, "BODY[2.MIME]").starts_with(b"Content-Type: application/pdf; name=\"inv.pdf\"\r\n"));
    assert_eq!(fetched(raw, "BODY[2]"), b"JVBERi0xLjQK");
    assert_eq!(fetched(raw, "BODY[TEXT]<0>"), b"--b1");
    assert!(r.lines[0].contains("BODY[3] NIL"), "{}", r.lines[0]);
    let r = c.command("FETCH 2 (BODYSTRUCTURE ENVELOPE)");
    let line = &r.lines[0];
    assert!(line.contains("(\"TEXT\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 20 1 "), "{line}");
    assert!(
        line.contains(
            "(\"application\" \"pdf\" (\"name\" \"inv.pdf\") NIL NIL \"BASE64\" 12 NIL (\"attachment\" (\"filename\" \"inv.pdf\"))"
        ),
        "{line}"
    );
    assert!(line.contains("\"mixed\" (\"boundary\" \"b1\")"), "{line}");
    assert!(line.contains("ENVELOPE (NIL \"Invoice question\" ((\"Kim Customer\" NIL \"kim\" \"customer.example\"))"), "{line}");
    assert!(line.contains("((NIL NIL \"support\" \"example.com\")) NIL NIL NIL \"<multi@customer.example>\")"), "{line}");

    // Peeking did not set \Seen; BODY[] and RFC822 do, and say so.
    assert_eq!(c.command("SEARCH UNSEEN").lines, vec!["* SEARCH 1 2"]);
    let r = c.command("FETCH 1 (BODY[TEXT])");
    assert!(r.lines[0].contains("FLAGS (\\Seen $BZZX $urgent $new)"), "{r:?}");
    assert_eq!(fetched(&r.raw[0], "BODY[TEXT]"), b"Buy now.\r\n");
    assert_eq!(c.command("SEARCH UNSEEN").lines, vec!["* SEARCH 2"]);
    let r = c.command("FETCH 2 (RFC822.HEADER)");
    assert!(!r.lines[0].contains("\\Seen"), "RFC822.HEADER is a peek: {r:?}");
    let r = c.command("FETCH 2 RFC822");
    assert_eq!(fetched(&r.raw[0], "RFC822"), &body[..]);
    assert!(r.lines[0].contains("FLAGS (\\Seen $new)"), "{r:?}");
    let r = c.command("FETCH 1:2 FULL");
    assert!(r.lines.len() == 2 && r.lines[1].contains("ENVELOPE") && r.lines[1].contains("BODY ("), "{r:?}");

    // One audit entry per message per content FETCH, with the queue.
    let reads = audit_reads(&s);
    let of = |n: &str| reads.iter().filter(|e| e.to_string().contains(n)).count();
    assert_eq!(of(&offer), 5, "{reads:#?}");
    assert_eq!(of(&multi), 6, "{reads:#?}");
    for e in &reads {
        let text = e.to_string();
        assert!(text.contains("via=imap queue=support") && text.contains("user:anna"), "{text}");
    }
    audit_verify(&s);
    // The reads are recorded in the database itself, where anyone can count them.
    assert_eq!(s.sql("SELECT count(*) FROM audit WHERE action = 'message.read' AND detail LIKE 'via=imap%';"), "11");
}

#[test]
fn flags_are_per_user_and_search_finds_messages() {
    let s = server();
    s.add_user("sam", PW, &["supervisor"]);
    let first = deliver(&s, "support@example.com", "Printer on fire", "It is burning.\r\n");
    deliver(&s, "support@example.com", "A special offer", "Cheap.\r\n");
    deliver(&s, "support@example.com", &format!("Long {}", "words ".repeat(10)), &"long body line\r\n".repeat(200));
    let mut c = Imap::login(&s, "anna", PW);
    assert!(c.command("SELECT support").ok());
    let r = c.command("STORE 1 +FLAGS (\\Flagged \\Seen)");
    assert_eq!(r.lines, vec!["* 1 FETCH (FLAGS (\\Seen \\Flagged $new))"]);
    let r = c.command("UID STORE 2 +FLAGS.SILENT (\\Seen)");
    assert!(r.ok() && r.lines.is_empty(), "{r:?}");
    let r = c.command("STORE 1 -FLAGS (\\Seen)");
    assert_eq!(r.lines, vec!["* 1 FETCH (FLAGS (\\Flagged $new))"]);
    let r = c.command("STORE 2 FLAGS (\\Flagged)");
    assert_eq!(r.lines, vec!["* 2 FETCH (FLAGS (\\Flagged $BZZX $urgent $new))"]);

    let search = |c: &mut Imap, q: &str| -> String {
        let r = c.command(q);
        assert!(r.ok(), "{q}: {r:?}");
        r.lines.iter().find(|l| l.starts_with("* SEARCH")).cloned().unwrap_or_default()
    };
    assert_eq!(search(&mut c, "SEARCH ALL"), "* SEARCH 1 2 3");
    assert_eq!(search(&mut c, "SEARCH FLAGGED"), "* SEARCH 1 2");
    assert_eq!(search(&mut c, "SEARCH UNFLAGGED"), "* SEARCH 3");
    assert_eq!(search(&mut c, "SEARCH SEEN"), "* SEARCH");
    assert_eq!(search(&mut c, "SEARCH UNSEEN NOT 2"), "* SEARCH 1 3");
    assert_eq!(search(&mut c, "SEARCH SUBJECT fire"), "* SEARCH 1");
    assert_eq!(search(&mut c, "SEARCH CHARSET UTF-8 SUBJECT OFFER"), "* SEARCH 2");
    assert_eq!(search(&mut c, "SEARCH OR SUBJECT fire SUBJECT offer"), "* SEARCH 1 2");
    assert_eq!(search(&mut c, "SEARCH FROM kim@customer.example TO support"), "* SEARCH 1 2 3");
    assert_eq!(search(&mut c, "SEARCH FROM nobody"), "* SEARCH");
    assert_eq!(search(&mut c, "SEARCH BODY burning"), "* SEARCH 1");
    assert_eq!(search(&mut c, &format!("SEARCH HEADER X-Mailroom-Registration {first}")), "* SEARCH 1");
    assert_eq!(search(&mut c, "SEARCH LARGER 2000"), "* SEARCH 3");
    assert_eq!(search(&mut c, "SEARCH SMALLER 2000"), "* SEARCH 1 2");
    assert_eq!(search(&mut c, "SEARCH 2:*"), "* SEARCH 2 3");
    assert_eq!(search(&mut c, "UID SEARCH UID 2:3 FLAGGED"), "* SEARCH 2");
    assert_eq!(search(&mut c, "SEARCH SINCE 1-Jan-2020 BEFORE 1-Jan-2100"), "* SEARCH 1 2 3");
    assert_eq!(search(&mut c, "SEARCH BEFORE 1-Jan-2020"), "* SEARCH");
    assert_eq!(search(&mut c, "SEARCH SENTON 2-Mar-2026"), "* SEARCH 1 2 3");
    let today = chrono::Utc::now().format("%-d-%b-%Y").to_string();
    assert_eq!(search(&mut c, &format!("SEARCH ON {today}")), "* SEARCH 1 2 3");
    assert!(c.command("SEARCH CHARSET KOI8-R SUBJECT x").status.starts_with("NO [BADCHARSET"));
    let out = s.cli(&["audit", "list", "--action", "mailbox.search", "--json"]);
    assert!(out.stdout_str().contains("via=imap queue=support"), "text searches are audited: {}", out.stdout_str());

    // A case flagged as spam carries $Junk, which cannot be changed here.
    deliver(&s, "support@example.com", "Casino bonus", "Win.\r\n");
    let r = c.command("NOOP");
    assert_eq!(r.lines, vec!["* 4 EXISTS"]);
    assert_eq!(c.command("FETCH 4 (FLAGS)").lines, vec!["* 4 FETCH (FLAGS ($Junk $new))"]);
    assert_eq!(search(&mut c, "SEARCH KEYWORD $Junk"), "* SEARCH 4");
    assert_eq!(search(&mut c, "SEARCH UNKEYWORD $Junk SUBJECT casino"), "* SEARCH");
    assert!(c.command("STORE 4 -FLAGS ($Junk)").status.starts_with("NO [CANNOT]"));

    // Flags are personal: sam sees none of anna's.
    let mut sam = Imap::login(&s, "sam", PW);
    assert!(sam.command("EXAMINE support").ok());
    assert_eq!(
        sam.command("FETCH 1:3 (FLAGS)").lines,
        vec!["* 1 FETCH (FLAGS ($new))", "* 2 FETCH (FLAGS ($BZZX $urgent $new))", "* 3 FETCH (FLAGS ($new))"]
    );
    let r = sam.command("FETCH 1 (BODY[])");
    assert!(!r.lines[0].contains("\\Seen"), "EXAMINE does not set \\Seen: {r:?}");
    // …but another session of anna's sees them change.
    let mut other = Imap::login(&s, "anna", PW);
    assert!(other.command("SELECT support").ok());
    assert!(c.command("STORE 3 +FLAGS (\\Seen)").ok());
    let r = other.command("NOOP");
    assert_eq!(r.lines, vec!["* 3 FETCH (UID 3 FLAGS (\\Seen $new))"]);
}

#[test]
fn new_mail_and_transferred_cases_are_reported() {
    let s = server();
    s.add_user("sam", PW, &["supervisor"]);
    let first = deliver(&s, "support@example.com", "First", "one\r\n");
    deliver(&s, "support@example.com", "Second", "two\r\n");
    let mut c = Imap::login(&s, "anna", PW);
    assert!(c.command("SELECT support").ok());

    // IDLE: a new delivery shows up at once.
    c.send(b"i1 IDLE\r\n");
    assert!(c.line().starts_with("+ "));
    let started = Instant::now();
    let third = deliver(&s, "support@example.com", "Third", "three\r\n");
    c.set_read_timeout(Duration::from_secs(5));
    assert_eq!(c.line(), "* 3 EXISTS");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    c.send(b"DONE\r\n");
    assert!(c.finish("i1").ok());
    c.set_read_timeout(Duration::from_secs(20));

    // The first case is transferred to sales (as the HTTP API does: new queue, fresh UID).
    s.sql_write_transaction(
        "UPDATE counters SET value = value + 1 WHERE name = 'message';
        UPDATE message_cases SET uid = (SELECT value FROM counters WHERE name = 'message') WHERE message_id = 1;
        UPDATE cases SET queue = 'sales' WHERE id = (SELECT case_id FROM message_cases WHERE message_id = 1);",
    );
    // FETCH may not report the EXPUNGE; the message is not served any more either.
    let r = c.command("FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration)])");
    assert!(r.status.starts_with("NO [EXPUNGEISSUED]"), "{r:?}");
    assert!(!r.has(&first), "{r:?}");
    let r = c.command("NOOP");
    assert_eq!(r.lines, vec!["* 1 EXPUNGE"]);
    let r = c.command("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration)])");
    assert_eq!(r.lines.len(), 2, "{r:?}");
    assert!(r.lines[0].starts_with("* 1 FETCH (UID 2 ") && r.lines[1].starts_with("* 2 FETCH (UID 3 ") && r.has(&third), "{r:?}");

    let mut sam = Imap::login(&s, "sam", PW);
    let r = sam.command("SELECT sales");
    assert!(r.has("* 1 EXISTS") && r.has("[UIDNEXT 5]"), "{r:?}");
    let r = sam.command("FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration)])");
    assert!(r.lines[0].starts_with("* 1 FETCH (UID 4 ") && r.has(&first), "{r:?}");
}

#[test]
fn id_enable_and_unselect() {
    let s = server();
    let mut c = Imap::tls(s.imaps_addr());
    let r = c.command("ID (\"name\" \"test\")");
    assert_eq!(r.lines, vec![format!("* ID (\"name\" \"mailroom\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION"))]);
    assert!(r.ok());
    let mut c = Imap::login(&s, "anna", PW);
    let r = c.command("ENABLE CONDSTORE UTF8=ACCEPT");
    assert_eq!(r.lines, vec!["* ENABLED CONDSTORE"]);
    assert!(c.command("SELECT support").ok());
    assert!(c.command("UNSELECT").ok());
    assert!(c.command("FETCH 1 (FLAGS)").status.starts_with("BAD"), "no mailbox selected");
    assert!(c.command("EXAMINE support").ok());
    assert!(c.command("CHECK").ok());
    assert!(c.command("CLOSE").ok());
    let r = c.command("LOGOUT");
    assert!(r.ok() && r.has("* BYE"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------------

#[test]
fn python_imaplib() {
    let s = server();
    s.add_user("sam", PW, &["sales-agent"]);
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(Path::new(root).join("tests/py/imap_imaplib.py"))
        .current_dir(root)
        .env("MAILROOM_HOST", "127.0.0.1")
        .env("MAILROOM_SMTP_PORT", s.smtp_addr().port().to_string())
        .env("MAILROOM_LMTP_PORT", s.lmtp_addr().port().to_string())
        .env("MAILROOM_IMAP_PORT", s.imap_addr().port().to_string())
        .env("MAILROOM_IMAPS_PORT", s.imaps_addr().port().to_string())
        .env("MAILROOM_CERT", s.cert_path())
        .env("MAILROOM_PASSWORD", PW)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "imap_imaplib.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The script reports what it read; the audit log must name each of those messages.
    let read: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("READ ")).collect();
    assert!(read.len() >= 2, "{stdout}");
    let reads = audit_reads(&s);
    for n in read {
        assert!(
            reads.iter().any(|e| e.to_string().contains(n) && e.to_string().contains("via=imap")),
            "no audited read of {n}: {reads:#?}"
        );
    }
    audit_verify(&s);
}

fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "20"]).args(args).output().expect("run curl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn curl_fetches_over_starttls_and_imaps() {
    let s = server();
    let first = deliver(&s, "support@example.com", "Curl one", "first body\r\n");
    let second = deliver(&s, "support@example.com", "Curl two", "second body\r\n");
    let cert = s.cert_path();
    let cert = cert.to_str().unwrap();
    let user = format!("anna:{PW}");
    // STARTTLS on the plain port (the certificate is for localhost and mx.example.com).
    let url = format!("imap://localhost:{}/support;MAILINDEX=1", s.imap_addr().port());
    let (ok, out, err) = curl(&["--ssl-reqd", "--cacert", cert, "-u", &user, &url]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("X-Mailroom-Registration: {first}\r\n")), "{out}");
    assert!(out.ends_with("first body\r\n"), "{out}");
    // Implicit TLS, by UID, with the certificate's other name.
    let port = s.imaps_addr().port();
    let url = format!("imaps://{HOST}:{port}/support;UID=2");
    let (ok, out, err) = curl(&["--cacert", cert, "--connect-to", &format!("{HOST}:{port}:127.0.0.1:{port}"), "-u", &user, &url]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("X-Mailroom-Registration: {second}\r\n")) && out.contains("X-Mailroom-Priority: normal\r\n"), "{out}");
    // The mailbox listing.
    let url = format!("imap://localhost:{}/", s.imap_addr().port());
    let (ok, out, err) = curl(&["--ssl-reqd", "--cacert", cert, "-u", &user, &url]);
    assert!(ok, "{err}");
    assert_eq!(out.trim_end(), "* LIST (\\HasNoChildren) \"/\" support");
    // A wrong password is refused; without TLS curl's LOGIN is refused too.
    let (ok, _, _) =
        curl(&["--ssl-reqd", "--cacert", cert, "-u", "anna:wrong", &format!("imap://localhost:{}/support;UID=1", s.imap_addr().port())]);
    assert!(!ok);
    let (ok, _, _) = curl(&["-u", &user, &format!("imap://127.0.0.1:{}/support;UID=1", s.imap_addr().port())]);
    assert!(!ok, "a password in clear text must not work");
    assert_eq!(audit_reads(&s).len(), 2);
}

fn mbsync(config: &Path) -> String {
    let out = Command::new("mbsync").arg("-c").arg(config).arg("-V").arg("support").output();
    let out = match out {
        Ok(out) => out,
        Err(e) => panic!("mbsync not runnable ({e}): install isync (apt-get install isync)"),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mbsync failed:\n{text}");
    text
}

/// The messages of a Maildir folder in UID order (mbsync names files `…,U=<uid>:2,<flags>`).
fn maildir_messages(dir: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<(u32, Vec<u8>)> = ["cur", "new"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let uid = name
                .split(",U=")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .and_then(|u| u.parse().ok())
                .unwrap_or_else(|| panic!("no UID in {name}"));
            (uid, std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, b)| b).collect()
}

#[test]
fn mbsync_syncs_a_queue_and_then_only_what_is_new() {
    let mut s = server();
    let first = deliver(&s, "support@example.com", "A special offer", "one\r\n");
    let second = s.smtp_session().send_message("kim@customer.example", &["support@example.com"], MULTIPART.as_bytes());
    deliver(&s, "sales@example.com", "Not for anna", "sales\r\n");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mbsyncrc");
    let maildir = dir.path().join("mail");
    std::fs::create_dir(&maildir).unwrap();
    let write_config = |s: &Server| {
        std::fs::write(
            &config,
            format!(
                "IMAPAccount mailroom\nHost localhost\nPort {}\nUser anna\nPass \"{PW}\"\nSSLType IMAPS\nCertificateFile {}\n\n\
                 IMAPStore remote\nAccount mailroom\n\n\
                 MaildirStore local\nPath {}/\nInbox {}/INBOX\n\n\
                 Channel support\nFar :remote:support\nNear :local:support\nCreate Near\nSync Pull\nExpunge None\nSyncState *\n",
                s.imaps_addr().port(),
                s.cert_path().display(),
                maildir.display(),
                maildir.display()
            ),
        )
        .unwrap();
    };
    write_config(&s);
    let log = mbsync(&config);
    let box_dir = maildir.join("support");
    // mbsync stores lines with LF and adds its own X-TUID field to the header.
    let got = maildir_messages(&box_dir);
    assert_eq!(got.len(), 2, "{log}");
    assert!(got[0].starts_with(format!("X-Mailroom-Registration: {first}\nX-Mailroom-Category: BZZX (Business enquiry)\nX-Mailroom-Priority: urgent\nX-Mailroom-Due: ").as_bytes()), "{:?}", show_bytes(&got[0]));
    assert!(got[0].ends_with(b"\n\none\n"), "{:?}", show_bytes(&got[0]));
    let multipart_body = &MULTIPART[MULTIPART.find("\r\n\r\n").unwrap() + 4..].replace("\r\n", "\n");
    assert!(
        got[1].starts_with(format!("X-Mailroom-Registration: {second}\nX-Mailroom-Priority: normal\n").as_bytes()),
        "{:?}",
        show_bytes(&got[1])
    );
    assert!(got[1].ends_with(multipart_body.as_bytes()), "{:?}", show_bytes(&got[1]));
    let reads = audit_reads(&s).len();
    assert_eq!(reads, 2);

    // A restart keeps UIDVALIDITY (mbsync would refuse to sync otherwise); the next run
    // fetches just the new message.
    assert!(s.terminate_and_wait().success());
    s.restart();
    write_config(&s);
    let third = deliver(&s, "support@example.com", "Follow-up", "three\r\n");
    let log = mbsync(&config);
    let got = maildir_messages(&box_dir);
    assert_eq!(got.len(), 3, "{log}");
    assert!(
        got[2].starts_with(format!("X-Mailroom-Registration: {third}\nX-Mailroom-Priority: normal\n").as_bytes()),
        "{:?}",
        show_bytes(&got[2])
    );
    assert_eq!(audit_reads(&s).len(), reads + 1, "only the new message was fetched");
    let log = mbsync(&config);
    assert_eq!(maildir_messages(&box_dir).len(), 3, "{log}");
    assert_eq!(audit_reads(&s).len(), reads + 1, "nothing fetched twice");

    // A staff action changes the case (and so the keywords a client sees), never the message:
    // mbsync fetches nothing again and its copies stay as they are.
    let before = maildir_messages(&box_dir);
    s.add_user("sam", PW, &["supervisor"]);
    let sam = bearer_login(&s, "sam", PW);
    let case = s.sql_i64("SELECT case_id FROM message_cases WHERE message_id = 1");
    api_ok(&s, "POST", &format!("/api/cases/{case}/priority"), &sam, Some(serde_json::json!({ "priority": "low" })));
    api_ok(&s, "POST", &format!("/api/cases/{case}/status"), &sam, Some(serde_json::json!({ "status": "waiting" })));
    let log = mbsync(&config);
    assert_eq!(maildir_messages(&box_dir), before, "{log}");
    assert_eq!(audit_reads(&s).len(), reads + 1, "nothing fetched again");
    let mut c = Imap::login(&s, "anna", PW);
    assert!(c.command("EXAMINE support").ok());
    let r = c.command("FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (X-Mailroom-Priority)])");
    assert!(r.has("FLAGS ($BZZX $low $waiting)") && r.has("X-Mailroom-Priority: urgent"), "{r:?}");
}
