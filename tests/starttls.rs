//! STARTTLS (RFC 3207) with a rustls client: command injection (CVE-2011-0411 class), state
//! reset after the handshake, argument errors, TLS versions, TLS recorded with the message.

mod common;

use common::*;
use std::time::Duration;

fn server() -> Server {
    Server::start(Opts { max_errors: 100, ..Opts::default() })
}

/// `STARTTLS\r\nRSET\r\n` in one write: the RSET must never be answered (neither in clear
/// before the handshake nor inside TLS after it).
#[test]
fn pipelined_command_after_starttls_is_discarded() {
    let s = server();
    let mut c = s.smtp_session();
    c.send(b"STARTTLS\r\nRSET\r\n");
    c.expect_line("220 2.0.0 Ready to start TLS");
    // Nothing else in clear: the server now waits for our ClientHello.
    c.expect_silence(Duration::from_millis(400));
    c.handshake(None);
    // The first reply inside TLS must be the one to our EHLO, not the injected RSET's.
    let r = c.cmd("EHLO client.example.org");
    assert_eq!(r.code, 250, "first reply inside TLS: {r:?} (an injected command was executed?)");
    assert!(r.lines.len() > 1, "first reply inside TLS is not the EHLO reply: {r:?}");
    check_ehlo(&r, true, None);
    c.expect("NOOP", "250 2.0.0 OK");
    c.expect_silence(Duration::from_millis(300));
}

/// Injected envelope commands must not carry into the TLS session either.
#[test]
fn injected_mail_rcpt_after_starttls_not_executed() {
    let s = server();
    let mut c = s.smtp_session();
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@x.org>\r\nRCPT TO:<sales@example.com>\r\n");
    c.expect_line("220 2.0.0 Ready to start TLS");
    c.expect_silence(Duration::from_millis(400));
    c.handshake(None);
    c.ehlo("client.example.org");
    // Had the injected MAIL run, this would be 250 or 503 "Sender already specified".
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    c.expect("DATA", "503 5.5.1 Send MAIL first");
    assert!(s.list_messages().is_empty());
}

#[test]
fn state_dropped_after_tls_mail_needs_new_ehlo() {
    let s = server();
    let mut c = s.smtp_session();
    c.starttls();
    assert!(c.is_tls());
    c.expect("MAIL FROM:<a@client.example.org>", "503 5.5.1 Send EHLO first");
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send EHLO first");
    c.expect("DATA", "503 5.5.1 Send EHLO first");
    let caps = c.ehlo("client.example.org"); // checks: no STARTTLS after TLS
    assert!(!caps.iter().any(|x| x.eq_ignore_ascii_case("STARTTLS")), "{caps:?}");
    let content = simple_message("over tls", "secret stuff");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &content);
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));

    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert!(list[0].tls, "message received over TLS must be listed with tls=true: {list:?}");
    assert_eq!(s.stored_content(&n), content);
    let raw = s.show_message(&n);
    let (received, _) = split_received(&raw);
    let received = String::from_utf8_lossy(received).to_ascii_lowercase();
    assert!(received.contains("tls"), "Received: header must name the TLS details: {received}");
}

#[test]
fn transaction_before_starttls_is_forgotten() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let r = c.cmd("STARTTLS");
    if r.code == 220 {
        assert_eq!(r.line(), "220 2.0.0 Ready to start TLS");
        c.handshake(None);
        c.ehlo("client.example.org");
        c.expect("DATA", "503 5.5.1 Send MAIL first");
    } else {
        // Refusing STARTTLS inside a transaction is also acceptable, with a 503.
        assert!(r.line().starts_with("503 5.5.1 "), "STARTTLS during a transaction: {r:?}");
    }
    assert!(s.list_messages().is_empty());
}

#[test]
fn starttls_with_argument_gets_501() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("STARTTLS now", "501 5.5.4 Syntax: STARTTLS");
    // Still plain text and usable.
    c.expect("NOOP", "250 2.0.0 OK");
    assert!(!c.is_tls());
    c.starttls();
    c.ehlo("client.example.org");
    c.expect("NOOP", "250 2.0.0 OK");
}

#[test]
fn starttls_twice_gets_503() {
    let s = server();
    let mut c = s.smtp_session();
    c.starttls();
    c.ehlo("client.example.org");
    c.expect("STARTTLS", "503 5.5.1 TLS already active");
    c.expect("NOOP", "250 2.0.0 OK");
}

#[test]
fn tls12_and_tls13_both_work() {
    let s = server();
    for (v, want) in
        [(&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2), (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3)]
    {
        let mut c = s.smtp_session();
        c.expect("STARTTLS", "220 2.0.0 Ready to start TLS");
        c.handshake(Some(v));
        assert_eq!(c.tls_version(), Some(want));
        c.ehlo("client.example.org");
        let content = simple_message(&format!("{want:?}"), "x");
        let n = c.send_message("a@client.example.org", &["support@example.com"], &content);
        assert_eq!(s.stored_content(&n), content);
    }
    let list = s.list_messages();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|l| l.tls), "{list:?}");
}

#[test]
fn lmtp_starttls() {
    let s = server();
    let mut c = s.lmtp_session();
    c.send(b"STARTTLS\r\nRSET\r\n");
    c.expect_line("220 2.0.0 Ready to start TLS");
    c.expect_silence(Duration::from_millis(400));
    c.handshake(None);
    c.expect_any("MAIL FROM:<a@client.example.org>", LMTP_GREET_FIRST);
    let r = c.cmd("LHLO client.example.org");
    check_ehlo(&r, true, None);
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("lmtp tls", "x");
    c.send(&data_wire(&content));
    let line = c.reply().line().to_string();
    let n = line.strip_prefix("250 2.0.0 <support@example.com> Registered ").unwrap_or_else(|| panic!("LMTP reply: {line:?}")).to_string();
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert!(list[0].tls);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn tls_certificate_is_generated_and_reused() {
    let mut s = server();
    let certs = s.data_dir.join("certs");
    let files = all_files(&certs);
    assert!(!files.is_empty(), "a self-signed certificate must be generated into DATA_DIR/certs/");
    let before: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert_eq!(s.terminate_and_wait().code(), Some(0));
    s.restart();
    let after: Vec<Vec<u8>> = all_files(&certs).iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert_eq!(before, after, "the generated certificate must be reused after a restart");
    let mut c = s.smtp_session();
    c.starttls();
    c.ehlo("client.example.org");
}
