//! Failure is temporary, never silent: when the store refuses (here: `storage.max_database_size`
//! reached, enforced by SQLite max_page_count) the reply is `451 4.3.0` (LMTP: one per recipient), nothing is stored, no number is
//! consumed, and the session stays usable.

mod common;

use common::*;

const TEMPFAIL: &str = "451 4.3.0 Temporary failure, message not stored; try again later";

fn filler(i: usize) -> Vec<u8> {
    // Incompressible-ish content so the database really grows.
    let mut body = String::new();
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ i as u64;
    for _ in 0..250 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push_str(&format!("{x:016x}{:016x}{:016x}{:016x}\r\n", x.rotate_left(7), x.rotate_left(19), x.rotate_left(41)));
    }
    simple_message(&format!("filler {i}"), &body)
}

#[test]
fn full_store_gets_451_and_stays_consistent() {
    if postgres_run() {
        // The cap is SQLite's own (`max_page_count`); the config refuses it with a PostgreSQL URL.
        // A failed or doubtful COMMIT on PostgreSQL answering 451 is tests/pg_ingest.rs's.
        eprintln!("SQLite only, skipped under PostgreSQL: storage.max_database_size is SQLite's cap");
        return;
    }
    let s = Server::start(Opts { max_database_size: Some(262_144), ..Opts::default() });
    let mut c = s.smtp_session();
    let mut stored = Vec::new();
    let mut tempfailed = false;
    for i in 0..100 {
        let content = filler(i);
        c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
        c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
        c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
        c.send(&data_wire(&content));
        let r = c.reply();
        if r.lines == [TEMPFAIL] {
            tempfailed = true;
            break;
        }
        stored.push((registered(r.line()), content));
    }
    assert!(tempfailed, "a 256 KiB database cap never produced {TEMPFAIL:?}");
    eprintln!("{} messages stored before the cap was reached", stored.len());
    // The session survives, and refuses a message of the same size again (the cap is still
    // reached; a much smaller message might legitimately still fit under it).
    c.expect("NOOP", "250 2.0.0 OK");
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let again = filler(999);
    let mut bdat = format!("BDAT {} LAST\r\n", again.len()).into_bytes();
    bdat.extend_from_slice(&again);
    c.send(&bdat);
    c.expect_line(TEMPFAIL);

    // LMTP: one 451 per accepted recipient.
    let mut l = s.lmtp_session();
    l.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    l.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    l.expect("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK");
    l.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    l.send(&data_wire(&filler(1000)));
    for _ in 0..2 {
        let r = l.reply();
        assert_eq!(r.code, 451, "LMTP per-recipient reply: {r:?}");
        assert!(r.line().starts_with("451 4.3.0 "), "{r:?}");
    }
    l.expect("NOOP", "250 2.0.0 OK");

    // Only the acknowledged messages are stored, numbered 1..=n.
    let list = s.list_messages();
    assert_eq!(list.len(), stored.len(), "{list:?}");
    for (i, (n, content)) in stored.iter().enumerate() {
        assert_eq!(parse_number(n).seq, i as u64 + 1);
        assert_eq!(&s.stored_content(n), content);
    }
}
