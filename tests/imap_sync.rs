//! The IMAP view on a big queue (issue #13), over real sockets: a mailbox of 20,000 messages is
//! listed completely and correctly, a session learns of new messages, flag changes and
//! transfers from an incremental view (IDLE), CONDSTORE (RFC 7162) returns exactly what changed,
//! and a staff action changes a message's keywords but never its bytes (imaplib; mbsync in
//! tests/imap.rs).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::json;

const PW: &str = "correct horse battery";

const STAFF: &str = r#"
[[categories]]
code = "BZZX"
name = "Business enquiry"

[[categories]]
code = "INV"
name = "Invoices"

[[rules]]
name = "offers"
subject_contains = ["offer"]
category = "BZZX"
priority = "urgent"

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

/// Messages in the big mailbox (the benchmark, bench/imap_big.py, goes to 1,000,000).
const BIG: usize = 20_000;

fn server() -> Server {
    let s = Server::start(Opts { extra_toml: STAFF.into(), ..Opts::default() });
    s.add_user("anna", PW, &["support-agent"]);
    s.add_user("sam", PW, &["supervisor"]);
    s.add_user("olga", PW, &["sales-agent"]);
    s
}

/// `n` messages to support@ through Postfix's smtp-source (20 sessions), each a new case.
fn fill(s: &Server, n: usize) {
    let out = Command::new("smtp-source")
        .args(["-s", "20", "-l", "300", "-m", &n.to_string(), "-f", "kim@customer.example", "-t", "support@example.com"])
        .arg(format!("127.0.0.1:{}", s.smtp_addr().port()))
        .output()
        .expect("smtp-source (postfix) runs");
    assert!(out.status.success(), "smtp-source: {}", String::from_utf8_lossy(&out.stderr));
}

fn deliver(s: &Server, subject: &str) -> String {
    let content = format!(
        "From: Kim <kim@customer.example>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@customer.example>\r\n\r\nbody\r\n",
        unique_token("m")
    );
    s.smtp_session().send_message("kim@customer.example", &["support@example.com"], content.as_bytes())
}

/// The UIDs of `* n FETCH (UID u …)` lines, checking that sequence numbers count up from 1.
fn fetched_uids(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let rest = l.strip_prefix(&format!("* {} FETCH (UID ", i + 1)).unwrap_or_else(|| panic!("line {i}: {l}"));
            rest.split(' ').next().unwrap().parse().unwrap()
        })
        .collect()
}

fn uid_of(line: &str) -> u32 {
    line.split("UID ").nth(1).and_then(|r| r.split([' ', ')']).next()).and_then(|u| u.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

fn modseq_of(resp: &Resp) -> u64 {
    let line = resp.lines.iter().find(|l| l.contains("[HIGHESTMODSEQ ")).unwrap_or_else(|| panic!("{resp:?}"));
    line.split("[HIGHESTMODSEQ ").nth(1).unwrap().split(']').next().unwrap().parse().unwrap()
}

/// The UIDs of the messages filed in `queue`, ascending, as the database has them.
fn uids_in(s: &Server, queue: &str) -> Vec<u32> {
    s.sql_rows(&format!("SELECT uid FROM message_cases WHERE queue = '{queue}' ORDER BY uid"))
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect()
}

fn case_of(s: &Server, uid: u32) -> i64 {
    s.sql_i64(&format!("SELECT case_id FROM message_cases WHERE uid = {uid}"))
}

/// Reads untagged lines during IDLE until `pred` holds for one; returns the lines read.
fn idle_until(c: &mut Imap, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = c.line();
        let done = pred(&line);
        seen.push(line);
        if done {
            return seen;
        }
        assert!(seen.len() < 50, "no {what} during IDLE: {seen:?}");
    }
}

#[test]
fn a_big_mailbox_is_complete_and_synced_incrementally() {
    let s = server();
    fill(&s, BIG);
    let stored = uids_in(&s, "support");
    assert_eq!(stored.len(), BIG);

    let mut c = Imap::login(&s, "anna", PW);
    let r = c.command("SELECT support");
    assert!(r.has(&format!("* {BIG} EXISTS")) && r.has("* OK [UNSEEN 1]") && r.has("[HIGHESTMODSEQ "), "{r:?}");
    // Every message, once, in UID order, streamed in chunks.
    let r = c.command("UID FETCH 1:* (FLAGS)");
    assert!(r.ok(), "{}", r.status);
    assert_eq!(fetched_uids(&r.lines), stored);
    assert!(r.lines.iter().all(|l| l.ends_with(" FLAGS ($new))")), "{:?}", &r.lines[..3]);
    let r = c.command(&format!("FETCH {}:{} (UID)", BIG - 1, BIG));
    assert_eq!(r.lines, vec![format!("* {} FETCH (UID {})", BIG - 1, stored[BIG - 2]), format!("* {BIG} FETCH (UID {})", stored[BIG - 1])]);

    // Another session of anna's watches with IDLE.
    let mut w = Imap::login(&s, "anna", PW);
    assert!(w.command("SELECT support").ok());
    w.send(b"i1 IDLE\r\n");
    assert!(w.line().starts_with("+ "));

    // A flag change in the first session: a FETCH with the new flags.
    assert!(c.command("STORE 5 +FLAGS.SILENT (\\Flagged)").ok());
    let got = idle_until(&mut w, "flag change", |l| l.starts_with("* 5 FETCH"));
    assert_eq!(got.last().unwrap(), &format!("* 5 FETCH (UID {} FLAGS (\\Flagged $new))", stored[4]));
    // A new message: EXISTS.
    deliver(&s, "One more");
    idle_until(&mut w, "EXISTS", |l| l == format!("* {} EXISTS", BIG + 1));
    // A transfer (HTTP API): message 3 leaves the mailbox.
    let sam = bearer_login(&s, "sam", PW);
    api_ok(&s, "POST", &format!("/api/cases/{}/transfer", case_of(&s, stored[2])), &sam, Some(json!({ "queue": "sales" })));
    idle_until(&mut w, "EXPUNGE", |l| l == "* 3 EXPUNGE");
    // A staff change of the case: its keywords.
    api_ok(&s, "POST", &format!("/api/cases/{}/priority", case_of(&s, stored[9])), &sam, Some(json!({ "priority": "urgent" })));
    // (message 10 is number 9 after the expunge)
    let got = idle_until(&mut w, "keyword change", |l| l.starts_with("* 9 FETCH"));
    assert_eq!(got.last().unwrap(), &format!("* 9 FETCH (UID {} FLAGS ($urgent $new))", stored[9]));
    w.send(b"DONE\r\n");
    assert!(w.finish("i1").ok());

    // The first session learns the same at its next command.
    let r = c.command("NOOP");
    assert!(r.has("* 3 EXPUNGE") && r.has(&format!("* {} EXISTS", BIG)), "{r:?}");
    let r = c.command("UID FETCH 1:* (FLAGS)");
    let mut now = stored.clone();
    now.remove(2);
    now.push(*fetched_uids(&r.lines).last().unwrap());
    assert_eq!(fetched_uids(&r.lines), now);

    // SEARCH UNSEEN and SEEN from the store's index.
    assert!(c.command("UID STORE 1:100 +FLAGS.SILENT (\\Seen)").ok());
    let r = c.command("UID SEARCH SEEN");
    let seen: Vec<u32> = r.lines[0].strip_prefix("* SEARCH ").unwrap().split(' ').map(|u| u.parse().unwrap()).collect();
    assert_eq!(seen, now.iter().copied().filter(|u| *u <= 100).collect::<Vec<_>>());
    let r = c.command("SEARCH UNSEEN");
    assert_eq!(r.lines[0].split(' ').count() - 2, now.len() - seen.len());
    let r = c.command("SEARCH KEYWORD $urgent");
    assert_eq!(r.lines, vec!["* SEARCH 9"]);
}

#[test]
fn condstore_returns_exactly_what_changed() {
    let s = server();
    fill(&s, 300);
    let mut c = Imap::login(&s, "anna", PW);
    let r = c.command("CAPABILITY");
    assert!(r.has(" CONDSTORE"), "{r:?}");
    let r = c.command("SELECT support (CONDSTORE)");
    assert!(r.ok(), "{r:?}");
    let since = modseq_of(&r);
    let r = c.command("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)");
    assert_eq!(r.lines.len(), 300, "everything changed since the start");
    assert!(r.lines[0].contains(" MODSEQ ("), "{}", r.lines[0]);
    let uids = fetched_uids(&r.lines);
    let r = c.command(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since})"));
    assert!(r.ok() && r.lines.is_empty(), "nothing changed yet: {r:?}");

    // Changes: another user's flags (not anna's: invisible to her), anna's flags in another
    // session, a staff action on a case.
    let mut other = Imap::login(&s, "anna", PW);
    assert!(other.command("SELECT support").ok());
    assert!(other.command("STORE 10,20 +FLAGS (\\Seen)").ok());
    let mut sam_imap = Imap::login(&s, "sam", PW);
    assert!(sam_imap.command("SELECT support").ok());
    assert!(sam_imap.command("STORE 30 +FLAGS (\\Flagged)").ok());
    let sam = bearer_login(&s, "sam", PW);
    api_ok(&s, "POST", &format!("/api/cases/{}/category", case_of(&s, uids[39])), &sam, Some(json!({ "category": "INV" })));
    let r = c.command(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since})"));
    let changed: BTreeSet<u32> = r.lines.iter().map(|l| uid_of(l)).collect();
    assert_eq!(changed, BTreeSet::from([uids[9], uids[19], uids[39]]), "{r:?}");
    assert!(r.has(&format!("UID {} FLAGS ($INV $new) MODSEQ (", uids[39])), "{r:?}");
    // SEARCH MODSEQ finds the same, with the highest mod-sequence.
    let r = c.command(&format!("UID SEARCH MODSEQ {}", since + 1));
    assert!(r.lines[0].starts_with(&format!("* SEARCH {} {} {} (MODSEQ ", uids[9], uids[19], uids[39])), "{r:?}");
    // Anywhere in the criteria, with RFC 7162's entry name: inside OR and NOT, twice.
    let r = c.command(&format!("UID SEARCH OR MODSEQ {} UID {}", since + 1, uids[0]));
    assert!(r.lines[0].starts_with(&format!("* SEARCH {} {} {} {} (MODSEQ ", uids[0], uids[9], uids[19], uids[39])), "{r:?}");
    let r = c.command(&format!("UID SEARCH UID {}:{} NOT MODSEQ \"/flags/\\\\seen\" all {}", uids[8], uids[10], since + 1));
    assert!(r.lines[0].starts_with(&format!("* SEARCH {} {} (MODSEQ ", uids[8], uids[10])), "{r:?}");
    let r = c.command(&format!("SEARCH (MODSEQ {} MODSEQ 1) SUBJECT \"MODSEQ 5\"", since + 1));
    assert!(r.ok() && r.lines == vec!["* SEARCH"], "no subject says MODSEQ 5: {r:?}");

    // STORE UNCHANGEDSINCE: message 10 changed after `since`, so it is not stored; 11 is.
    let r = c.command(&format!("STORE 10,11 (UNCHANGEDSINCE {since}) +FLAGS (\\Flagged)"));
    assert!(r.status.starts_with("OK [MODIFIED 10]"), "{r:?}");
    assert!(r.has("* 11 FETCH (FLAGS (\\Flagged $new) MODSEQ ("), "{r:?}");
    let r = c.command("FETCH 10:11 (FLAGS)");
    assert!(r.has("* 10 FETCH (FLAGS (\\Seen $new) MODSEQ (") && r.has("* 11 FETCH (FLAGS (\\Flagged $new) MODSEQ ("), "{r:?}");
    // STATUS (HIGHESTMODSEQ) and the next SELECT move on.
    let r = c.command("STATUS support (MESSAGES HIGHESTMODSEQ)");
    assert!(r.lines[0].starts_with("* STATUS support (MESSAGES 300 HIGHESTMODSEQ "), "{r:?}");
    assert!(modseq_of(&c.command("EXAMINE support")) > since);

    // A user without read on the queue gets nothing.
    let mut olga = Imap::login(&s, "olga", PW);
    assert!(olga.command("SELECT support (CONDSTORE)").status.starts_with("NO [NONEXISTENT]"));
    assert!(olga.command("STATUS support (HIGHESTMODSEQ)").status.starts_with("NO [NONEXISTENT]"));
    assert!(olga.command("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)").status.starts_with("BAD"), "no mailbox selected");
}

#[test]
fn staff_actions_change_keywords_not_the_message_imaplib() {
    let s = server();
    let offer = deliver(&s, "A special offer");
    let root = env!("CARGO_MANIFEST_DIR");
    let snapshot = || -> serde_json::Value {
        let out = Command::new("python3")
            .arg(Path::new(root).join("tests/py/imap_keywords.py"))
            .env("MAILROOM_IMAPS_PORT", s.imaps_addr().port().to_string())
            .env("MAILROOM_CERT", s.cert_path())
            .env("MAILROOM_PASSWORD", PW)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("run python3");
        assert!(out.status.success(), "imap_keywords.py: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let before = snapshot();
    assert_eq!(before["flags"], json!(["$BZZX", "$urgent", "$new"]), "{before}");
    let sam = bearer_login(&s, "sam", PW);
    let case = format!("/api/cases/{}", case_of(&s, before["uid"].as_u64().unwrap() as u32));
    api_ok(&s, "POST", &format!("{case}/category"), &sam, Some(json!({ "category": "INV" })));
    api_ok(&s, "POST", &format!("{case}/priority"), &sam, Some(json!({ "priority": "low" })));
    api_ok(&s, "POST", &format!("{case}/assign"), &sam, Some(json!({ "user": "anna" })));
    api_ok(&s, "POST", &format!("{case}/status"), &sam, Some(json!({ "status": "waiting" })));
    let after = snapshot();
    assert_eq!(after["flags"], json!(["$INV", "$low", "$waiting", "$mine"]), "{after}");
    // The same UID, the same bytes: the header still says what it said at delivery.
    assert_eq!(after["uid"], before["uid"]);
    assert_eq!(after["body_sha256"], before["body_sha256"]);
    assert!(
        after["header"].as_str().unwrap().starts_with(&format!(
            "X-Mailroom-Registration: {offer}\r\nX-Mailroom-Category: BZZX (Business enquiry)\r\nX-Mailroom-Priority: urgent\r\n"
        )),
        "{after}"
    );
    assert!(after["modseq"].as_u64().unwrap() > before["modseq"].as_u64().unwrap(), "{before} {after}");
}

/// `mailbox_expunged` is pruned every `imap.departures_kept` (here 1 s): a session that sent no
/// command while the record of a transfer was pruned still gets its EXPUNGE at the next command
/// (it re-reads the UID list), and an IDLE session that kept up needs no such re-read.
#[test]
fn a_session_that_slept_through_the_pruning_of_departures_still_gets_its_expunge() {
    let s = Server::start(Opts { extra_toml: STAFF.into(), imap_extra: "departures_kept = \"1s\"".into(), ..Opts::default() });
    s.add_user("anna", PW, &["support-agent"]);
    s.add_user("sam", PW, &["supervisor"]);
    for subject in ["first", "second", "third", "fourth"] {
        deliver(&s, subject);
    }
    let uids = uids_in(&s, "support");
    assert_eq!(uids.len(), 4);
    let mut sleeper = Imap::login(&s, "anna", PW);
    assert!(sleeper.command("SELECT support").has("* 4 EXISTS"));
    let mut watcher = Imap::login(&s, "anna", PW);
    assert!(watcher.command("SELECT support").ok());
    watcher.send(b"w1 IDLE\r\n");
    assert!(watcher.line().starts_with("+ "));

    let sam = bearer_login(&s, "sam", PW);
    api_ok(&s, "POST", &format!("/api/cases/{}/transfer", case_of(&s, uids[1])), &sam, Some(json!({ "queue": "sales" })));
    idle_until(&mut watcher, "EXPUNGE", |l| l == "* 2 EXPUNGE");
    watcher.send(b"DONE\r\n");
    assert!(watcher.finish("w1").ok());
    assert!(s.sql_i64("SELECT COUNT(*) FROM mailbox_expunged WHERE queue = 'support'") > 0, "the transfer is recorded");

    // Two prune periods: the first marks the record, the second forgets it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.sql_i64("SELECT COUNT(*) FROM mailbox_expunged") > 0 {
        assert!(std::time::Instant::now() < deadline, "the departure records were never pruned");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The session that slept learns of it all the same, and of a message delivered since.
    deliver(&s, "fifth");
    let r = sleeper.command("NOOP");
    assert!(r.has("* 2 EXPUNGE") && r.has("* 4 EXISTS"), "{r:?}");
    let r = sleeper.command("UID FETCH 1:* (UID)");
    let now: Vec<u32> = r.lines.iter().map(|l| uid_of(l)).collect();
    assert_eq!(now.len(), 4);
    assert_eq!(&now[..3], &[uids[0], uids[2], uids[3]]);
    assert!(now[3] > uids[3]);
    // A later transfer is recorded again and reported from the record.
    api_ok(&s, "POST", &format!("/api/cases/{}/transfer", case_of(&s, uids[0])), &sam, Some(json!({ "queue": "sales" })));
    let r = sleeper.command("NOOP");
    assert!(r.has("* 1 EXPUNGE") && !r.has("* 3 EXPUNGE"), "{r:?}");
}
