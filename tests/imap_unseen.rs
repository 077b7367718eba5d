//! SEARCH UNSEEN, SELECT's [UNSEEN n] and STATUS (UNSEEN) start at each user's "seen through"
//! watermark (issue #13, store/mailbox_seen.rs): a randomized run (seed printed; set
//! MAILROOM_TEST_SEED to replay) over real sockets, a few hundred messages, two users, STORE
//! +/-FLAGS \Seen on sets and ranges, 1:* marked seen (the watermark jumps to the top) and then
//! single messages unmarked below it, \Flagged changes, FETCH BODY[] (the implicit \Seen),
//! transfers out of and into the queue (HTTP API), new mail and an erasure (CLI). After every
//! step the three answers of both users equal the naive definition, computed from FETCH FLAGS
//! of every message.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

const PW: &str = "correct horse battery";
const ERASED: &str = "erin.erased@customer-e.example";

const STAFF: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "supervisor"
grants = { "*" = ["read", "act", "assign", "supervise"] }
"#;

const MESSAGES: usize = 300;
const STEPS: usize = 80;

/// xorshift64*: enough randomness for a replayable sequence of operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn deliver(s: &Server, from: &str) {
    let content = format!(
        "From: Kim <{from}>\r\nTo: support@example.com\r\nSubject: Question\r\nMessage-ID: <{}@customer.example>\r\n\r\nbody\r\n",
        unique_token("u")
    );
    s.smtp_session().send_message(from, &["support@example.com"], content.as_bytes());
}

/// One user's view of `support`, as the server answers and as the flags define it.
#[derive(Debug)]
struct View {
    /// (UID, seen) of every message, in sequence order (FETCH FLAGS).
    messages: Vec<(u32, bool)>,
    select_unseen: Option<usize>,
    uid_search: Vec<u32>,
    seq_search: Vec<usize>,
    status: (usize, usize),
}

fn numbers<T: std::str::FromStr>(line: &str, prefix: &str) -> Vec<T> {
    let rest = line.strip_prefix(prefix).unwrap_or_else(|| panic!("{line:?}"));
    rest.split(' ').filter(|w| !w.is_empty()).map(|w| w.parse().ok().unwrap_or_else(|| panic!("{line:?}"))).collect()
}

fn search_line(r: &Resp) -> &str {
    r.lines.iter().find(|l| l.starts_with("* SEARCH")).unwrap_or_else(|| panic!("{r:?}"))
}

fn view(c: &mut Imap) -> View {
    let r = c.command("SELECT support");
    assert!(r.ok(), "{r:?}");
    let select_unseen =
        r.lines.iter().find_map(|l| l.strip_prefix("* OK [UNSEEN ")).map(|rest| rest.split(']').next().unwrap().parse().unwrap());
    let r = c.command("FETCH 1:* (UID FLAGS)");
    let mut messages = Vec::new();
    for (i, l) in r.lines.iter().filter(|l| l.contains(" FETCH ")).enumerate() {
        assert!(l.starts_with(&format!("* {} FETCH (UID ", i + 1)), "{l}");
        let uid = l.split("UID ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        messages.push((uid, l.contains("\\Seen")));
    }
    let r = c.command("UID SEARCH UNSEEN");
    let uid_search = numbers(search_line(&r), "* SEARCH");
    let r = c.command("SEARCH UNSEEN");
    let seq_search = numbers(search_line(&r), "* SEARCH");
    let r = c.command("STATUS support (MESSAGES UNSEEN)");
    let line = r.lines.iter().find(|l| l.starts_with("* STATUS")).unwrap_or_else(|| panic!("{r:?}"));
    let inner = line.split('(').nth(1).unwrap().trim_end_matches(')');
    let words: Vec<&str> = inner.split(' ').collect();
    let status = (words[1].parse().unwrap(), words[3].parse().unwrap());
    assert_eq!((words[0], words[2]), ("MESSAGES", "UNSEEN"), "{line}");
    View { messages, select_unseen, uid_search, seq_search, status }
}

/// The naive definition against the server's answers.
fn check(who: &str, step: usize, op: &str, v: &View) {
    let unseen: Vec<(usize, u32)> =
        v.messages.iter().enumerate().filter(|(_, (_, seen))| !seen).map(|(i, (uid, _))| (i + 1, *uid)).collect();
    let ctx = format!("{who}, step {step} ({op})");
    assert_eq!(v.uid_search, unseen.iter().map(|(_, u)| *u).collect::<Vec<_>>(), "UID SEARCH UNSEEN, {ctx}");
    assert_eq!(v.seq_search, unseen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), "SEARCH UNSEEN, {ctx}");
    assert_eq!(v.select_unseen, unseen.first().map(|(i, _)| *i), "[UNSEEN n], {ctx}");
    assert_eq!(v.status, (v.messages.len(), unseen.len()), "STATUS, {ctx}");
}

/// A random set of UIDs of the mailbox: a range `a:b` or a list.
fn some_uids(rng: &mut Rng, uids: &[u32]) -> String {
    if uids.is_empty() {
        return "1".into();
    }
    if rng.below(2) == 0 {
        let a = rng.below(uids.len());
        let b = (a + rng.below(60)).min(uids.len() - 1);
        format!("{}:{}", uids[a], uids[b])
    } else {
        (0..1 + rng.below(5)).map(|_| uids[rng.below(uids.len())].to_string()).collect::<Vec<_>>().join(",")
    }
}

fn sql_ids(s: &Server, statement: &str) -> Vec<i64> {
    s.sql_rows(statement).into_iter().map(|r| r[0].parse().unwrap()).collect()
}

fn watermark(s: &Server, user: &str) -> i64 {
    s.sql_i64(&format!(
        "SELECT COALESCE(MAX(w.uid), 0) FROM mailbox_seen_through w JOIN users u ON u.id = w.user_id WHERE u.name = '{user}' AND w.queue = 'support'"
    ))
}

#[test]
fn unseen_answers_equal_the_flags_through_random_changes() {
    let seed = std::env::var("MAILROOM_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    println!("MAILROOM_TEST_SEED={seed}");
    let mut rng = Rng(seed);

    let s = Server::start(Opts { extra_toml: STAFF.into(), ..Opts::default() });
    s.add_user("anna", PW, &["support-agent"]);
    s.add_user("sam", PW, &["supervisor"]);
    s.add_user("olga", PW, &["security-officer"]);
    for _ in 0..4 {
        deliver(&s, ERASED);
    }
    let out = Command::new("smtp-source")
        .args(["-s", "10", "-l", "200", "-m", &MESSAGES.to_string(), "-f", "kim@customer.example", "-t", "support@example.com"])
        .arg(format!("127.0.0.1:{}", s.smtp_addr().port()))
        .output()
        .expect("smtp-source (postfix) runs");
    assert!(out.status.success(), "smtp-source: {}", String::from_utf8_lossy(&out.stderr));
    let sam_token = bearer_login(&s, "sam", PW);

    let users = ["anna", "sam"];
    let mut sessions: Vec<Imap> = users.iter().map(|u| Imap::login(&s, u, PW)).collect();
    let mut erased = false;

    // Fixed first: anna reads everything (the watermark is the top), then unreads one in the
    // middle (it must come down, or SEARCH UNSEEN misses it).
    let uids: Vec<u32> = view(&mut sessions[0]).messages.iter().map(|(u, _)| *u).collect();
    assert!(sessions[0].command("STORE 1:* +FLAGS.SILENT (\\Seen)").ok());
    assert_eq!(watermark(&s, "anna"), i64::from(*uids.last().unwrap()));
    let middle = uids[uids.len() / 2];
    assert!(sessions[0].command(&format!("UID STORE {middle} -FLAGS.SILENT (\\Seen)")).ok());
    assert_eq!(watermark(&s, "anna"), i64::from(middle) - 1);
    for (i, user) in users.iter().enumerate() {
        check(user, 0, "1:* seen, one unseen", &view(&mut sessions[i]));
    }
    let mut lowered = 0;
    for step in 0..STEPS {
        let who = rng.below(2);
        let current = view(&mut sessions[who]);
        let uids: Vec<u32> = current.messages.iter().map(|(u, _)| *u).collect();
        let c = &mut sessions[who];
        let roll = rng.below(100);
        let op = match roll {
            0..=24 => format!("UID STORE {} +FLAGS.SILENT (\\Seen)", some_uids(&mut rng, &uids)),
            25..=44 => format!("UID STORE {} -FLAGS.SILENT (\\Seen)", some_uids(&mut rng, &uids)),
            45..=56 => "STORE 1:* +FLAGS.SILENT (\\Seen)".to_string(),
            57..=62 => format!("UID STORE {} {}FLAGS.SILENT (\\Flagged)", some_uids(&mut rng, &uids), ["+", "-"][rng.below(2)]),
            63..=69 if !uids.is_empty() => format!("UID FETCH {} (BODY[])", uids[rng.below(uids.len())]),
            70..=79 => "transfer out".to_string(),
            80..=87 => "transfer in".to_string(),
            88..=93 => "new mail".to_string(),
            _ if !erased && step > STEPS / 2 => "erase".to_string(),
            _ => "UID STORE 1:* -FLAGS.SILENT (\\Seen)".to_string(),
        };
        if op.starts_with("UID ") || op.starts_with("STORE ") {
            let before = watermark(&s, users[who]);
            let r = c.command(&op);
            assert!(r.ok(), "{op}: {r:?}");
            if op == "STORE 1:* +FLAGS.SILENT (\\Seen)" && current.messages.iter().any(|(_, seen)| !seen) {
                // The STORE wrote: the watermark jumps to the queue's largest UID.
                let top = s.sql_i64("SELECT COALESCE(MAX(uid), 0) FROM message_cases WHERE queue = 'support'");
                assert_eq!(watermark(&s, users[who]), top, "step {step}: {op}");
            }
            if op.contains("-FLAGS.SILENT (\\Seen)") && watermark(&s, users[who]) < before {
                lowered += 1;
            }
        } else if op == "transfer out" {
            if let Some(&uid) = uids.get(rng.below(uids.len())) {
                let case = s.sql_i64(&format!("SELECT case_id FROM message_cases WHERE uid = {uid}"));
                api_ok(&s, "POST", &format!("/api/cases/{case}/transfer"), &sam_token, Some(json!({ "queue": "sales" })));
            }
        } else if op == "transfer in" {
            let away = sql_ids(&s, "SELECT id FROM cases WHERE queue = 'sales' ORDER BY id");
            if let Some(case) = away.get(rng.below(away.len())) {
                api_ok(&s, "POST", &format!("/api/cases/{case}/transfer"), &sam_token, Some(json!({ "queue": "support" })));
            }
        } else if op == "new mail" {
            deliver(&s, "kim@customer.example");
        } else if op == "erase" {
            let out = s.cli(&["erase", "--address", ERASED, "--by", "olga"]);
            assert!(out.status.success(), "{}", out.stderr);
            erased = true;
        }
        for (i, user) in users.iter().enumerate() {
            let v = view(&mut sessions[i]);
            check(user, step, &op, &v);
            // The watermark's rule itself: nothing unseen at or below it.
            let below = s.sql_i64(&format!(
                "SELECT COUNT(*) FROM message_cases mc
                 LEFT JOIN mailbox_flags f ON f.case_id = mc.case_id AND f.message_id = mc.message_id
                   AND f.user_id = (SELECT id FROM users WHERE name = '{user}')
                 WHERE mc.queue = 'support' AND mc.uid <= {} AND COALESCE(f.seen, 0) = 0",
                watermark(&s, user)
            ));
            assert_eq!(below, 0, "{user}, step {step} ({op}): unseen messages at or below the watermark");
        }
    }
    println!("{lowered} random \\Seen removals lowered a watermark");
    let out = s.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", out.stderr);
}
