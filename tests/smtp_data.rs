//! Message data: DATA dot-unstuffing, empty messages, BDAT exact byte counts, BDAT 0 LAST,
//! DATA after BDAT, BDAT after LAST, retry de-duplication.

mod common;

use common::*;

fn server() -> Server {
    Server::start(Opts { max_errors: 100, ..Opts::default() })
}

fn open_tx(c: &mut Client) {
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
}

fn bdat(c: &mut Client, chunk: &[u8], last: bool) -> Reply {
    let mut w = format!("BDAT {}{}\r\n", chunk.len(), if last { " LAST" } else { "" }).into_bytes();
    w.extend_from_slice(chunk);
    c.send(&w);
    c.reply()
}

#[test]
fn dot_unstuffing_on_data() {
    let s = server();
    let mut c = s.smtp_session();
    open_tx(&mut c);
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    // Exact wire bytes (already stuffed by "the client").
    let wire: &[u8] = b"..first line starts with a dot\r\n\
Subject: dots\r\n\
\r\n\
..one dot\r\n\
...two dots\r\n\
.. \r\n\
..\r\n\
.x not stuffed by a sloppy client\r\n\
middle.dot\r\n\
.\r\n";
    c.send(wire);
    let n = registered(c.reply().line());
    let expected: &[u8] = b".first line starts with a dot\r\n\
Subject: dots\r\n\
\r\n\
.one dot\r\n\
..two dots\r\n\
. \r\n\
.\r\n\
x not stuffed by a sloppy client\r\n\
middle.dot\r\n";
    let got = s.stored_content(&n);
    assert_eq!(show_bytes(&got), show_bytes(expected));
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
}

#[test]
fn data_stuffing_roundtrip_helper() {
    // Sanity check of the harness helpers the smuggling tests rely on.
    let content = b".a\r\nb\r\n..c\r\n".to_vec();
    let wire = data_wire(&content);
    assert_eq!(wire, b"..a\r\nb\r\n...c\r\n.\r\n".to_vec());
    assert_eq!(unstuff(&wire[..wire.len() - 3]), content);
    assert_eq!(unstuff(b"a\n.b\r.c\r\n.d"), b"a\n.b\r.c\r\nd".to_vec());
}

#[test]
fn empty_message_via_data() {
    let s = server();
    let mut c = s.smtp_session();
    open_tx(&mut c);
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(b".\r\n");
    let n = registered(c.reply().line());
    c.expect("NOOP", "250 2.0.0 OK");
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].number, n);
    assert_eq!(show_bytes(&s.stored_content(&n)), "", "empty message must be stored empty");
}

#[test]
fn message_without_headers_is_stored_raw() {
    // Not an RFC 5322 message at all: still registered and stored byte for byte.
    let s = server();
    let mut c = s.smtp_session();
    open_tx(&mut c);
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = b"\x00\x01binary\xff\xfe garbage\r\n: no header name\r\n\r\n\r\n".to_vec();
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(show_bytes(&s.stored_content(&n)), show_bytes(&content));
}

#[test]
fn bdat_exact_byte_counts_stored_verbatim() {
    let s = server();
    let mut c = s.smtp_session();
    open_tx(&mut c);
    // No dot-stuffing, no end-of-data detection inside BDAT: CRLF.CRLF, dot-leading lines,
    // bare CR/LF, and a chunk boundary in the middle of a line are all plain bytes.
    let chunk1: &[u8] =
        b"Subject: bdat\r\n\r\nline one\r\n.\r\nMAIL FROM:<evil@x.org>\r\n..two dots\r\n.leading\rbare cr\nbare lf\r\nsplit li";
    let chunk2: &[u8] = b"ne\r\n.\r\n";
    let chunk3: &[u8] = b"QUIT\r\nlast line\r\n";
    let r = bdat(&mut c, chunk1, false);
    assert_eq!(r.lines, vec![format!("250 2.0.0 {} octets received", chunk1.len())]);
    let r = bdat(&mut c, chunk2, false);
    assert_eq!(r.lines, vec![format!("250 2.0.0 {} octets received", chunk2.len())]);
    let r = bdat(&mut c, chunk3, true);
    let n = registered(r.line());
    c.expect("NOOP", "250 2.0.0 OK");
    let expected = [chunk1, chunk2, chunk3].concat();
    assert_eq!(show_bytes(&s.stored_content(&n)), show_bytes(&expected));
    assert_eq!(s.list_messages().len(), 1);
}

#[test]
fn bdat_pipelined_in_one_write() {
    let s = server();
    let mut c = s.connect_smtp();
    let body1 = b"Subject: pipelined bdat\r\n\r\n";
    let body2 = b"hello\r\n";
    let mut w = b"EHLO client.example.org\r\nMAIL FROM:<a@client.example.org>\r\nRCPT TO:<support@example.com>\r\n".to_vec();
    w.extend_from_slice(format!("BDAT {}\r\n", body1.len()).as_bytes());
    w.extend_from_slice(body1);
    w.extend_from_slice(format!("BDAT {} LAST\r\n", body2.len()).as_bytes());
    w.extend_from_slice(body2);
    w.extend_from_slice(b"NOOP\r\n");
    c.send(&w);
    check_ehlo(&c.reply(), false, None);
    c.expect_line("250 2.1.0 Sender OK");
    c.expect_line("250 2.1.5 Recipient OK");
    c.expect_line(&format!("250 2.0.0 {} octets received", body1.len()));
    let n = registered(c.reply().line());
    c.expect_line("250 2.0.0 OK");
    assert_eq!(s.stored_content(&n), [&body1[..], &body2[..]].concat());
}

#[test]
fn bdat_zero_last() {
    let s = server();
    let mut c = s.smtp_session();
    // After a chunk.
    open_tx(&mut c);
    let chunk = b"Subject: zero last\r\n\r\nbody\r\n";
    let r = bdat(&mut c, chunk, false);
    assert_eq!(r.lines, vec![format!("250 2.0.0 {} octets received", chunk.len())]);
    c.send(b"BDAT 0 LAST\r\n");
    let n1 = registered(c.reply().line());
    // As the only chunk: an empty message.
    open_tx(&mut c);
    c.send(b"BDAT 0 LAST\r\n");
    let n2 = registered(c.reply().line());
    c.expect("NOOP", "250 2.0.0 OK");
    let list = s.list_messages();
    assert_eq!(list.len(), 2);
    assert_eq!(s.stored_content(&n1), chunk.to_vec());
    assert_eq!(show_bytes(&s.stored_content(&n2)), "");
}

#[test]
fn data_after_bdat_gets_503() {
    let s = server();
    let mut c = s.smtp_session();
    open_tx(&mut c);
    let r = bdat(&mut c, b"hello", false);
    assert_eq!(r.lines, vec!["250 2.0.0 5 octets received".to_string()]);
    c.expect("DATA", "503 5.5.1 DATA not allowed after BDAT");
    // Any further BDAT of that transaction is drained and refused too.
    // ("503 too": the table gives no text; the transaction may already have been reset.)
    c.send(b"BDAT 6 LAST\r\nNOOP\r\n");
    let r = c.reply();
    assert!(
        r.lines == ["503 5.5.1 DATA not allowed after BDAT"] || r.lines == ["503 5.5.1 Send MAIL first"],
        "BDAT after a refused DATA: {r:?}"
    );
    c.expect("NOOP", "250 2.0.0 OK");
    c.expect("RSET", "250 2.0.0 OK");
    assert!(s.list_messages().is_empty(), "nothing may be stored from the failed transaction");
    // A fresh transaction works.
    open_tx(&mut c);
    let content = b"Subject: after\r\n\r\nok\r\n";
    let n = registered(bdat(&mut c, content, true).line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content.to_vec());
}

#[test]
fn bdat_after_last_gets_503() {
    let s = server();
    let mut c = s.smtp_session();
    open_tx(&mut c);
    let n = registered(bdat(&mut c, b"Subject: x\r\n\r\ny\r\n", true).line());
    c.send(b"BDAT 6\r\nNOOP\r\n");
    c.expect_line("503 5.5.1 Send MAIL first");
    c.expect("NOOP", "250 2.0.0 OK");
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.list_messages()[0].number, n);
}

#[test]
fn bdat_bad_syntax() {
    let s = server();
    let mut c = s.smtp_session();
    open_tx(&mut c);
    for bad in ["BDAT", "BDAT x", "BDAT -1", "BDAT 5 FIRST"] {
        let r = c.cmd(bad);
        assert_eq!(r.code, 501, "{bad:?} must be a 501 syntax error: {r:?}");
        assert!(r.line().starts_with("501 5.5.4 "), "{r:?}");
    }
    c.expect("NOOP", "250 2.0.0 OK");
    let n = registered(bdat(&mut c, b"Subject: fine\r\n\r\n", true).line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.list_messages()[0].number, n);
}

#[test]
fn retry_of_registered_message_is_not_stored_twice() {
    let s = server();
    let content = b"From: customer@client.example.org\r\nTo: support@example.com\r\nSubject: retry me\r\nMessage-ID: <retry-1@client.example.org>\r\n\r\nsame body\r\n".to_vec();

    let mut c = s.smtp_session();
    let n1 = c.send_message("customer@client.example.org", &["support@example.com"], &content);
    drop(c);
    // The retry comes in a new session, as after a client timeout.
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(&data_wire(&content));
    c.expect_line(&format!("250 2.0.0 Registered {n1} (duplicate, not stored again)"));

    // Same via BDAT: the body bytes are what count, not the transfer method.
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let r = bdat(&mut c, &content, true);
    assert_eq!(r.lines, vec![format!("250 2.0.0 Registered {n1} (duplicate, not stored again)")]);

    let list = s.list_messages();
    assert_eq!(list.len(), 1, "a retry must not be stored again: {list:?}");
    assert_eq!(list[0].number, n1);
    assert_eq!(list[0].duplicate_count, 2, "{list:?}");

    // Not duplicates: different body, different envelope sender, different recipient.
    let mut other_body = content.clone();
    other_body.extend_from_slice(b"P.S. changed\r\n");
    let n2 = c.send_message("customer@client.example.org", &["support@example.com"], &other_body);
    let n3 = c.send_message("other@client.example.org", &["support@example.com"], &content);
    let n4 = c.send_message("customer@client.example.org", &["sales@example.com"], &content);
    let all = [&n1, &n2, &n3, &n4];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b, "distinct messages got the same number");
        }
    }
    let list = s.list_messages();
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!(s.stored_content(&n1), content);
    assert_eq!(s.stored_content(&n2), other_body);

    // Without a Message-ID the fingerprint alone finds the retry (another index, another query).
    let bare = b"From: customer@client.example.org\r\nTo: support@example.com\r\nSubject: no id\r\n\r\nbare body\r\n".to_vec();
    let n5 = c.send_message("customer@client.example.org", &["support@example.com"], &bare);
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(&data_wire(&bare));
    c.expect_line(&format!("250 2.0.0 Registered {n5} (duplicate, not stored again)"));
    let mut other_bare = bare.clone();
    other_bare.extend_from_slice(b"P.S.\r\n");
    let n6 = c.send_message("customer@client.example.org", &["support@example.com"], &other_bare);
    assert_ne!(n5, n6, "another body without a Message-ID is a new message");
    let list = s.list_messages();
    assert_eq!(list.len(), 6, "{list:?}");
    assert_eq!(list.iter().find(|m| m.number == n5).map(|m| m.duplicate_count), Some(1), "{list:?}");
}

#[test]
fn client_disconnect_mid_data_stores_nothing() {
    let s = server();
    // Mid-DATA (even right after a CRLF that could look like a line end).
    let mut c = s.smtp_session();
    open_tx(&mut c);
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"Subject: cut off\r\n\r\nhalf a message\r\n");
    c.shutdown_write();
    drop(c);
    // Mid-BDAT chunk.
    let mut c = s.smtp_session();
    open_tx(&mut c);
    c.send(b"BDAT 1000 LAST\r\nSubject: cut off too\r\n");
    c.shutdown_write();
    drop(c);
    // After a complete non-LAST chunk.
    let mut c = s.smtp_session();
    open_tx(&mut c);
    let r = bdat(&mut c, b"Subject: first chunk only\r\n\r\n", false);
    assert_eq!(r.code, 250, "{r:?}");
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(s.list_messages().is_empty(), "an unfinished message must not be stored");
    // The server is fine and the next message gets number 1.
    let mut c = s.smtp_session();
    let content = simple_message("complete", "x");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &content);
    assert_eq!(parse_number(&n).seq, 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn duplicate_window_expires() {
    let s = Server::start(Opts { duplicate_window: "1s".into(), ..Opts::default() });
    let content =
        b"From: customer@client.example.org\r\nSubject: late retry\r\nMessage-ID: <late-retry@client.example.org>\r\n\r\nbody\r\n".to_vec();
    let mut c = s.smtp_session();
    let n1 = c.send_message("customer@client.example.org", &["support@example.com"], &content);
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let n2 = c.send_message("customer@client.example.org", &["support@example.com"], &content);
    assert_ne!(n1, n2, "outside the duplicate window a resend is a new registration");
    let list = s.list_messages();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|l| l.duplicate_count == 0), "{list:?}");
}
