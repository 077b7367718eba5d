//! LMTP (RFC 2033): LHLO only, one reply per accepted recipient after the data, in RCPT order.

mod common;

use common::*;

fn lmtp_reply_number(line: &str, rcpt: &str) -> String {
    let prefix = format!("250 2.0.0 <{rcpt}> Registered ");
    let rest = line.strip_prefix(&prefix).unwrap_or_else(|| panic!("expected {prefix:?}..., got {line:?}"));
    parse_number(rest);
    rest.to_string()
}

#[test]
fn banner_and_lhlo() {
    let s = Server::start(Opts { max_message_size: 4242, ..Opts::default() });
    let mut c = s.connect_lmtp(); // "220 mx.example.com LMTP mailroom"
    let r = c.cmd("LHLO client.example.org");
    check_ehlo(&r, false, Some(4242));
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    c.expect_closed();
}

#[test]
fn one_reply_per_recipient_in_order() {
    let s = Server::start(Opts::default());
    let mut c = s.lmtp_session();
    let rcpts = ["sales@example.com", "support@example.com", "complaints@example.com"];
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    for r in rcpts {
        c.expect(&format!("RCPT TO:<{r}>"), "250 2.1.5 Recipient OK");
    }
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("lmtp three", "x");
    let mut w = data_wire(&content);
    w.extend_from_slice(b"NOOP\r\n");
    c.send(&w);
    let mut numbers = Vec::new();
    for r in rcpts {
        numbers.push(lmtp_reply_number(c.reply().line(), r));
    }
    c.expect_line("250 2.0.0 OK");
    let list = s.list_messages();
    let mut distinct = numbers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(list.len(), distinct.len(), "stored registrations {list:?} vs numbers in the LMTP replies {numbers:?}");
    for n in &distinct {
        assert!(list.iter().any(|l| &l.number == n), "{n} missing from the list");
        assert_eq!(s.stored_content(n), content);
    }
    for l in &list {
        assert!(l.protocol.to_ascii_lowercase().contains("lmtp"), "protocol: {l:?}");
    }
}

#[test]
fn rejected_recipient_gets_no_reply_after_data() {
    let s = Server::start(Opts::default());
    let mut c = s.lmtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1 Mailbox unknown");
    c.expect("RCPT TO:<x@other.org>", "550 5.7.1 Relay access denied");
    c.expect("RCPT TO:<postmaster>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("lmtp mixed", "x");
    let mut w = data_wire(&content);
    w.extend_from_slice(b"NOOP\r\n");
    c.send(&w);
    let n1 = lmtp_reply_number(c.reply().line(), "support@example.com");
    let n2 = lmtp_reply_number(c.reply().line(), "postmaster");
    c.expect_line("250 2.0.0 OK");
    for n in [n1, n2] {
        assert_eq!(s.stored_content(&n), content);
    }
}

#[test]
fn lmtp_pipelined_burst_and_bdat() {
    let s = Server::start(Opts::default());
    let mut c = s.connect_lmtp();
    let body = b"Subject: lmtp bdat\r\n\r\nline\r\n.\r\nnot the end\r\n";
    let mut w =
        b"LHLO client.example.org\r\nMAIL FROM:<a@client.example.org>\r\nRCPT TO:<support@example.com>\r\nRCPT TO:<sales@example.com>\r\n"
            .to_vec();
    w.extend_from_slice(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
    w.extend_from_slice(body);
    w.extend_from_slice(b"QUIT\r\n");
    c.send(&w);
    check_ehlo(&c.reply(), false, None);
    c.expect_line("250 2.1.0 Sender OK");
    c.expect_line("250 2.1.5 Recipient OK");
    c.expect_line("250 2.1.5 Recipient OK");
    let n1 = lmtp_reply_number(c.reply().line(), "support@example.com");
    let n2 = lmtp_reply_number(c.reply().line(), "sales@example.com");
    c.expect_line(&format!("221 2.0.0 {HOST} closing connection"));
    c.expect_closed();
    assert_eq!(s.stored_content(&n1), body.to_vec());
    assert_eq!(s.stored_content(&n2), body.to_vec());
}
