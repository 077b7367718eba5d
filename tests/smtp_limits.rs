//! Limits: message size (SIZE=, DATA, BDAT), data line length, command line length, recipients
//! per transaction, errors per session, command/data timeouts, concurrent connections.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LIMIT: u64 = 10_000;

fn size_server() -> Server {
    Server::start(Opts { max_message_size: LIMIT, max_errors: 100, ..Opts::default() })
}

fn too_big() -> String {
    format!("552 5.3.4 Message size exceeds fixed limit of {LIMIT} bytes")
}

/// A message of about `n` bytes of content (CRLF-terminated lines of 78 chars).
fn message_of_size(n: usize, tag: &str) -> Vec<u8> {
    let mut m = format!("From: a@client.example.org\r\nSubject: size {tag}\r\n\r\n").into_bytes();
    while m.len() < n {
        m.extend_from_slice(&[b'x'; 76]);
        m.extend_from_slice(b"\r\n");
    }
    m
}

#[test]
fn size_param_over_limit_gets_552_at_mail() {
    let s = size_server();
    let mut c = s.smtp_session();
    c.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={}", LIMIT + 1), &too_big());
    c.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={}", 50 * LIMIT), &too_big());
    // Huge values must neither overflow into acceptance nor be mistaken for bad syntax:
    // RFC 1870 allows up to 20 digits (a valid size over the limit: 552); beyond 20 digits a
    // 501/555 syntax/parameter error is also fine. Never 250.
    let mut problems = Vec::new();
    for v in ["18446744073709551615", "18446744073709551616", "99999999999999999999"] {
        let r = c.cmd(&format!("MAIL FROM:<a@client.example.org> SIZE={v}"));
        if r.lines != [too_big()] {
            problems.push(format!("SIZE={v} ({} digits): {:?}, expected {:?}", v.len(), r.lines, too_big()));
        }
        if r.code == 250 {
            c.expect("RSET", "250 2.0.0 OK");
        }
    }
    for v in ["999999999999999999999", "99999999999999999999999"] {
        let r = c.cmd(&format!("MAIL FROM:<a@client.example.org> SIZE={v}"));
        if !(r.lines == [too_big()] || [501, 555].contains(&r.code)) {
            problems.push(format!("SIZE={v} ({} digits): {:?}, expected 552 (or 501/555)", v.len(), r.lines));
        }
        if r.code == 250 {
            c.expect("RSET", "250 2.0.0 OK");
        }
    }
    assert!(problems.is_empty(), "oversized SIZE= not refused correctly:\n{}", problems.join("\n"));
    // The session is fine and no transaction was opened.
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    c.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={LIMIT}"), "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("declared", "small");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn oversize_data_gets_552_after_dot_and_session_stays_usable() {
    let s = size_server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let big = message_of_size(3 * LIMIT as usize, "big");
    // Include something that looks like commands inside the oversize part: it must be swallowed.
    let mut wire = data_wire(&big);
    wire.truncate(wire.len() - 3);
    wire.extend_from_slice(b"MAIL FROM:<evil@x.org>\r\nQUIT\r\n.\r\n");
    c.send(&wire);
    c.expect_line(&too_big());
    // The transaction was reset; the session continues.
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    c.expect("NOOP", "250 2.0.0 OK");
    let small = simple_message("after oversize", "small one");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &small);
    assert_eq!(parse_number(&n).seq, 1, "the rejected message must not consume a number");
    let list = s.list_messages();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(s.stored_content(&n), small);
}

#[test]
fn oversize_bdat_gets_552_after_draining_chunk() {
    let s = size_server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let big = message_of_size(2 * LIMIT as usize, "bdat big");
    let mut w = format!("BDAT {} LAST\r\n", big.len()).into_bytes();
    w.extend_from_slice(&big);
    c.send(&w);
    c.expect_line(&too_big());
    // Whole chunk drained: the next bytes are a command again.
    c.expect("NOOP", "250 2.0.0 OK");
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");

    // Multi-chunk: the limit is crossed in the second chunk.
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let part = vec![b'y'; 6000];
    let mut w = b"BDAT 6000\r\n".to_vec();
    w.extend_from_slice(&part);
    c.send(&w);
    c.expect_line("250 2.0.0 6000 octets received");
    let mut w = b"BDAT 6000\r\n".to_vec();
    w.extend_from_slice(&part);
    c.send(&w);
    c.expect_line(&too_big());
    // The transaction is reset: a further BDAT is drained and refused.
    c.send(b"BDAT 10 LAST\r\nNOOP\r\nNOOP");
    c.expect_line("503 5.5.1 Send MAIL first");
    c.expect("NOOP", "250 2.0.0 OK");

    // A following message is registered.
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let small = simple_message("after bdat oversize", "ok");
    let mut w = format!("BDAT {} LAST\r\n", small.len()).into_bytes();
    w.extend_from_slice(&small);
    c.send(&w);
    let n = registered(c.reply().line());
    assert_eq!(parse_number(&n).seq, 1);
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), small);
}

#[test]
fn long_data_line_gets_554_after_dot() {
    let s = Server::start(Opts { max_data_line: 2000, ..Opts::default() });
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let mut content = b"Subject: long line\r\n\r\n".to_vec();
    content.extend_from_slice(&vec![b'z'; 5000]);
    content.extend_from_slice(b"\r\nmore\r\n");
    c.send(&data_wire(&content));
    c.expect_line("554 5.6.0 Message contains a line longer than 2000 bytes");
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    // A line just under the limit (1500 > RFC's 1000) is fine.
    let mut ok = b"Subject: long but fine\r\n\r\n".to_vec();
    ok.extend_from_slice(&vec![b'w'; 1500]);
    ok.extend_from_slice(b"\r\n");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &ok);
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), ok);
}

#[test]
fn long_command_line_gets_500_552() {
    let s = Server::start(Opts { max_command_line: 512, ..Opts::default() });
    let mut c = s.smtp_session();
    let mut w = b"XLONG ".to_vec();
    w.extend_from_slice(&vec![b'a'; 4000]);
    // The tail of the long line must be discarded, not run as a command.
    w.extend_from_slice(b" RSET\r\n");
    c.send(&w);
    c.expect_line("500 5.5.2 Line too long");
    c.expect("NOOP", "250 2.0.0 OK");
    // A MAIL with a path that makes the line too long.
    let long_local = "l".repeat(700);
    c.expect(&format!("MAIL FROM:<{long_local}@client.example.org>"), "500 5.5.2 Line too long");
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    // Be liberal below the configured limit: a 200-char local part (> RFC's 64) is accepted.
    let local = "m".repeat(200);
    let content = simple_message("long sender", "x");
    let n = c.send_message(&format!("{local}@client.example.org"), &["support@example.com"], &content);
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn too_many_recipients_get_452() {
    let s = Server::start(Opts { max_recipients: 3, ..Opts::default() });
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<complaints@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<help@example.com>", "452 4.5.3 Too many recipients");
    c.expect("RCPT TO:<postmaster@example.com>", "452 4.5.3 Too many recipients");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("three rcpts", "x");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    // Next transaction starts with a fresh count.
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<complaints@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RSET", "250 2.0.0 OK");
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn too_many_errors_get_421_and_close() {
    let max_errors = 3;
    let s = Server::start(Opts { max_errors, ..Opts::default() });
    let mut c = s.smtp_session();
    let expected_421 = format!("421 4.7.0 {HOST} Too many errors, closing connection");
    let mut errors = 0;
    let mut got_421 = false;
    for _ in 0..(max_errors + 3) {
        if c.try_send(b"XBOGUS\r\n").is_err() {
            break;
        }
        match c.try_reply() {
            Ok(r) if r.lines == ["500 5.5.1 Command unrecognized"] => errors += 1,
            Ok(r) if r.lines == [expected_421.clone()] => {
                got_421 = true;
                break;
            }
            Ok(r) => panic!("unexpected reply {r:?}"),
            Err(e) => panic!("connection ended without 421 after {errors} errors: {e:?}"),
        }
    }
    if !got_421 {
        // The 421 may follow the last 500 unsolicited.
        c.expect_line(&expected_421);
    }
    assert!(errors == max_errors || errors + 1 == max_errors, "421 after {errors} error replies with max_errors = {max_errors}");
    c.expect_closed();
    // Other sessions are unaffected.
    let mut c2 = s.smtp_session();
    c2.expect("NOOP", "250 2.0.0 OK");
}

#[test]
fn command_timeout_gets_421() {
    let s = Server::start(Opts { command_timeout: "2s".into(), ..Opts::default() });
    let mut c = s.smtp_session();
    let t = Instant::now();
    c.expect_line(&format!("421 4.4.2 {HOST} Timeout, closing connection"));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(1500), "timed out too early: {waited:?}");
    assert!(waited <= Duration::from_secs(8), "timed out too late: {waited:?}");
    c.expect_closed();
    // An open transaction (MAIL/RCPT, no data) also times out and stores nothing.
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect_line(&format!("421 4.4.2 {HOST} Timeout, closing connection"));
    c.expect_closed();
    assert!(s.list_messages().is_empty());
}

#[test]
fn data_timeout_gets_421_and_stores_nothing() {
    let s = Server::start(Opts { data_timeout: "2s".into(), ..Opts::default() });
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"Subject: stalled\r\n\r\npartial body\r\n");
    let t = Instant::now();
    c.expect_line(&format!("421 4.4.2 {HOST} Timeout, closing connection"));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(1500), "timed out too early: {waited:?}");
    c.expect_closed();

    // Same inside a BDAT chunk that never completes.
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.send(b"BDAT 100 LAST\r\nonly a few bytes");
    c.expect_line(&format!("421 4.4.2 {HOST} Timeout, closing connection"));
    c.expect_closed();
    assert!(s.list_messages().is_empty());
}

#[test]
fn max_connections_gets_421() {
    let s = Server::start(Opts { max_connections: 2, ..Opts::default() });
    let busy = format!("421 4.3.2 {HOST} Too many connections, try again later");
    let c1 = s.smtp_session();
    let mut c2 = s.connect_lmtp();
    // The limit is over all listeners: a third SMTP and a third LMTP session are refused.
    let mut c3 = Client::connect(s.smtp_addr());
    c3.expect_line(&busy);
    c3.expect_closed();
    let mut c4 = Client::connect(s.lmtp_addr());
    c4.expect_line(&busy);
    c4.expect_closed();
    // Freeing a slot lets a new session in.
    drop(c1);
    let ok = wait_until(Duration::from_secs(5), || {
        let mut c = Client::connect(s.smtp_addr());
        let r = c.reply();
        if r.lines == [format!("220 {HOST} ESMTP mailroom")] {
            true
        } else {
            assert_eq!(r.lines, vec![busy.clone()]);
            false
        }
    });
    assert!(ok, "a slot freed by a closed session was not reused within 5 s");
    c2.expect("NOOP", "250 2.0.0 OK");
}
