//! Graceful shutdown on SIGTERM: idle sessions get 421 4.3.2, running transactions may finish,
//! the process exits 0, listeners.json is removed, and everything acknowledged is kept.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn sigterm_idle_sessions_get_421_and_exit_0() {
    let mut s = Server::start(Opts { shutdown_grace: "5s".into(), ..Opts::default() });
    let smtp = s.smtp_addr();
    let content = simple_message("before shutdown", "keep me");
    let mut c0 = s.smtp_session();
    let n = c0.send_message("a@client.example.org", &["support@example.com"], &content);
    let mut c1 = s.smtp_session(); // idle after EHLO
    let mut c2 = s.connect_lmtp(); // idle right after the banner
    s.terminate();
    let bye = format!("421 4.3.2 {HOST} Service shutting down");
    for c in [&mut c0, &mut c1, &mut c2] {
        c.set_read_timeout(Duration::from_secs(10));
        c.expect_line(&bye);
        c.expect_closed();
    }
    let st = s.wait_exit(Duration::from_secs(15));
    assert_eq!(st.code(), Some(0), "SIGTERM must exit 0, got {st}");
    assert!(!s.data_dir.join("listeners.json").exists(), "listeners.json must be removed at shutdown");
    assert!(std::net::TcpStream::connect_timeout(&smtp, Duration::from_secs(1)).is_err(), "still accepting connections after exit");
    // The CLI works without a running server.
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn sigterm_lets_a_running_transaction_finish() {
    let mut s = Server::start(Opts { shutdown_grace: "10s".into(), ..Opts::default() });
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("in flight", "finishing during shutdown");
    let wire = data_wire(&content);
    let (a, b) = wire.split_at(wire.len() / 2);
    c.send(a);
    std::thread::sleep(Duration::from_millis(300));
    s.terminate();
    std::thread::sleep(Duration::from_millis(500));
    c.send(b);
    let n = registered(c.reply().line());
    c.set_read_timeout(Duration::from_secs(10));
    // Then the session is closed with 421 (now or in reply to the next command).
    let _ = c.try_send(b"NOOP\r\n");
    c.expect_line(&format!("421 4.3.2 {HOST} Service shutting down"));
    c.expect_closed();
    let st = s.wait_exit(Duration::from_secs(20));
    assert_eq!(st.code(), Some(0), "SIGTERM must exit 0, got {st}");
    assert_eq!(s.stored_content(&n), content);
    // And it is still there after a restart.
    s.restart();
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn restart_continues_numbering() {
    let mut s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    let n1 = c.send_message("a@client.example.org", &["support@example.com"], &simple_message("one", "1"));
    drop(c);
    assert_eq!(s.terminate_and_wait().code(), Some(0));
    s.restart();
    let mut c = s.smtp_session();
    let n2 = c.send_message("a@client.example.org", &["support@example.com"], &simple_message("two", "2"));
    let (r1, r2) = (parse_number(&n1), parse_number(&n2));
    assert_eq!((r1.seq, r2.seq), (1, 2), "{n1} {n2}");
    s.kill9();
    s.restart();
    let mut c = s.smtp_session();
    let n3 = c.send_message("a@client.example.org", &["support@example.com"], &simple_message("three", "3"));
    assert_eq!(parse_number(&n3).seq, 3, "{n3}");
    assert_eq!(s.list_messages().len(), 3);
}

/// One drain for every service: at SIGTERM an IMAP session says BYE, an idle HTTP keep-alive
/// connection is closed, an SMTP session gets 421, and the process exits long before the grace
/// period because nothing is left running.
#[test]
fn sigterm_drains_imap_and_http_the_same_way() {
    use std::io::{Read, Write};
    let mut s = Server::start(Opts { shutdown_grace: "60s".into(), ..Opts::default() });
    let mut imap = Client::connect(s.imap_addr());
    assert!(imap.try_line().unwrap().starts_with("* OK"), "IMAP greeting");
    let mut http = std::net::TcpStream::connect(s.http_addr()).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    http.write_all(b"GET /api/openapi.json HTTP/1.1\r\nHost: mailroom\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    http.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200", "the keep-alive connection served a request");
    let mut smtp = s.smtp_session();
    let started = std::time::Instant::now();
    s.terminate();
    imap.set_read_timeout(Duration::from_secs(10));
    let bye = imap.try_line().unwrap();
    assert!(bye.starts_with("* BYE"), "IMAP at shutdown: {bye:?}");
    imap.expect_closed();
    smtp.set_read_timeout(Duration::from_secs(10));
    smtp.expect_line(&format!("421 4.3.2 {HOST} Service shutting down"));
    // The rest of the response, then EOF: the idle keep-alive connection was closed.
    let mut rest = Vec::new();
    let read = http.read_to_end(&mut rest);
    assert!(read.is_ok(), "the HTTP connection ended cleanly: {read:?}");
    let st = s.wait_exit(Duration::from_secs(20));
    assert_eq!(st.code(), Some(0), "SIGTERM must exit 0, got {st}");
    assert!(started.elapsed() < Duration::from_secs(20), "exit waited for the grace period: {:?}", started.elapsed());
}
