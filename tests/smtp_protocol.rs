//! Byte-level SMTP protocol tests: greeting, command sequencing (503), syntax (501), parameters
//! (555), recipient checks (550), SMTPUTF8 (553), informational commands. Each test asserts the
//! exact reply text from docs/smtp-replies.md and what got stored.

mod common;

use common::*;

fn server() -> Server {
    // Many tests here send several bad commands in one session: don't trip max_errors.
    Server::start(Opts { max_errors: 100, ..Opts::default() })
}

#[test]
fn banner_ehlo_helo() {
    let s = Server::start(Opts { max_message_size: 123456, ..Opts::default() });
    let mut c = s.connect_smtp(); // asserts "220 mx.example.com ESMTP mailroom"
    let r = c.cmd("EHLO client.example.org");
    check_ehlo(&r, false, Some(123456));
    // A second EHLO is fine and resets nothing harmful.
    let r = c.cmd("EHLO client.example.org");
    check_ehlo(&r, false, Some(123456));
    c.expect("HELO client.example.org", &format!("250 {HOST}"));
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    c.expect_closed();

    // HELO alone is enough to start a transaction.
    let mut c = s.connect_smtp();
    c.expect("HELO client.example.org", &format!("250 {HOST}"));
    let n = c.send_message("a@client.example.org", &["support@example.com"], &simple_message("helo", "hi"));
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.list_messages()[0].number, n);
}

#[test]
fn plain_message_is_registered_and_stored_verbatim() {
    let s = server();
    let mut c = s.smtp_session();
    let content = simple_message("Order 42", "Hello, where is my order?");
    let n1 = c.send_message("customer@client.example.org", &["support@example.com"], &content);
    let r1 = parse_number(&n1);
    assert_eq!(r1.seq, 1, "first registration must be sequence 1: {n1}");
    let content2 = simple_message("Second", "another one");
    let n2 = c.send_message("customer@client.example.org", &["sales@example.com"], &content2);
    let r2 = parse_number(&n2);
    assert_eq!((r2.year, r2.seq), (r1.year, 2), "numbers must be consecutive: {n1} then {n2}");
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));

    let list = s.list_messages();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list.iter().map(|l| l.number.clone()).collect::<Vec<_>>(), vec![n1.clone(), n2.clone()]);
    for l in &list {
        assert!(l.protocol.to_ascii_lowercase().contains("smtp"), "protocol: {l:?}");
        assert!(!l.protocol.to_ascii_lowercase().contains("lmtp"), "protocol: {l:?}");
        assert!(!l.tls, "tls must be false: {l:?}");
        assert!(l.parsed, "a well-formed message must parse: {l:?}");
        assert_eq!(l.duplicate_count, 0);
        assert!(l.size > 0);
    }
    assert_eq!(s.stored_content(&n1), content);
    assert_eq!(s.stored_content(&n2), content2);
    let raw = s.show_message(&n1);
    let (received, _) = split_received(&raw);
    let received = String::from_utf8_lossy(received);
    assert!(received.contains(HOST), "Received: should name our host: {received}");
}

#[test]
fn quit_closes() {
    let s = server();
    let mut c = s.connect_smtp();
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    c.expect_closed();
}

// --- 503 sequencing ------------------------------------------------------------------------

#[test]
fn commands_before_ehlo_get_503() {
    let s = server();
    let mut c = s.connect_smtp();
    c.expect("MAIL FROM:<a@client.example.org>", "503 5.5.1 Send EHLO first");
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send EHLO first");
    c.expect("DATA", "503 5.5.1 Send EHLO first");
    // BDAT: the chunk is drained before the error reply.
    c.send(b"BDAT 5 LAST\r\nhello");
    c.expect_line("503 5.5.1 Send EHLO first");
    c.expect("NOOP", "250 2.0.0 OK");
    // After EHLO everything works.
    c.ehlo("client.example.org");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &simple_message("after", "x"));
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].number, n);
}

#[test]
fn rcpt_and_data_before_mail_get_503() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    c.expect("DATA", "503 5.5.1 Send MAIL first");
    c.send(b"BDAT 3 LAST\r\nabc");
    c.expect_line("503 5.5.1 Send MAIL first");
    c.expect("NOOP", "250 2.0.0 OK");
    assert!(s.list_messages().is_empty());
}

#[test]
fn data_without_recipient_gets_503() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("DATA", "503 5.5.1 Send RCPT first");
    c.send(b"BDAT 4 LAST\r\nabcd");
    c.expect_line("503 5.5.1 Send RCPT first");
    // The transaction is still open: a recipient can still be added.
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("late rcpt", "ok");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn second_mail_gets_503() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("MAIL FROM:<b@client.example.org>", "503 5.5.1 Sender already specified");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("MAIL FROM:<b@client.example.org>", "503 5.5.1 Sender already specified");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("two mails", "x");
    c.send(&data_wire(&content));
    registered(c.reply().line());
    // After the transaction, MAIL is allowed again.
    c.expect("MAIL FROM:<b@client.example.org>", "250 2.1.0 Sender OK");
    assert_eq!(s.list_messages().len(), 1);
}

// --- 501 syntax / 555 parameters ------------------------------------------------------------

#[test]
fn mail_and_rcpt_syntax_errors_get_501() {
    let s = server();
    let mut c = s.smtp_session();
    let mail_syntax = "501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]";
    let rcpt_syntax = "501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]";
    c.expect("MAIL", mail_syntax);
    c.expect("MAIL TO:<a@client.example.org>", mail_syntax);
    c.expect("MAIL FROM", mail_syntax);
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT", rcpt_syntax);
    c.expect("RCPT FROM:<support@example.com>", rcpt_syntax);
    c.expect("RCPT TO", rcpt_syntax);
    // The transaction survives syntax errors.
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("syntax", "x");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn commands_with_forbidden_arguments_get_501() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("RSET now", "501 5.5.4 Syntax: RSET");
    c.expect("QUIT now", "501 5.5.4 Syntax: QUIT");
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA now", "501 5.5.4 Syntax: DATA");
    // Still in the transaction; a proper DATA works.
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("args", "x");
    c.send(&data_wire(&content));
    registered(c.reply().line());
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    c.expect_closed();
    assert_eq!(s.list_messages().len(), 1);
}

#[test]
fn unknown_parameters_get_555() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org> XFOO=1", "555 5.5.4 Unsupported parameter");
    c.expect("MAIL FROM:<a@client.example.org> BODY=8BITMIME", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com> XFOO=1", "555 5.5.4 Unsupported parameter");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("params", "x");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].number, n);
}

#[test]
fn known_parameters_accepted() {
    let s = server();
    let mut c = s.smtp_session();
    // Keywords are case-insensitive (Python's smtplib sends "size=N").
    c.expect("MAIL FROM:<a@client.example.org> size=100 BODY=8BITMIME SMTPUTF8", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RSET", "250 2.0.0 OK");
    c.expect("MAIL FROM:<a@client.example.org> BODY=7BIT", "250 2.1.0 Sender OK");
    c.expect("RSET", "250 2.0.0 OK");
    assert!(s.list_messages().is_empty());
}

#[test]
fn bad_addresses() {
    let s = server();
    let mut c = s.smtp_session();
    // A reverse-path that is not an address at all.
    let r = c.cmd("MAIL FROM:<not an address>");
    assert!(
        r.lines == ["553 5.1.7 Invalid sender address"] || r.lines == ["501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]"],
        "MAIL with a malformed address: {r:?}"
    );
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    let r = c.cmd("RCPT TO:<not an address>");
    assert!(
        r.lines == ["501 5.1.3 Invalid recipient address"] || r.lines == ["501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]"],
        "RCPT with a malformed address: {r:?}"
    );
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RSET", "250 2.0.0 OK");
    assert!(s.list_messages().is_empty());
}

// --- recipients -----------------------------------------------------------------------------

#[test]
fn unknown_local_part_gets_550_511() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1 Mailbox unknown");
    c.expect("RCPT TO:<support-x@example.com>", "550 5.1.1 Mailbox unknown");
    c.expect("DATA", "503 5.5.1 Send RCPT first");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("mixed rcpts", "x");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn foreign_domain_gets_550_571() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<someone@other.org>", "550 5.7.1 Relay access denied");
    c.expect("RCPT TO:<support@example.com.evil.org>", "550 5.7.1 Relay access denied");
    c.expect("RCPT TO:<support@sub.example.com>", "550 5.7.1 Relay access denied");
    // Source-route/percent tricks must not relay either.
    let r = c.cmd("RCPT TO:<victim%other.org@example.com>");
    assert!(r.code >= 500, "percent-hack recipient must be rejected, got {r:?}");
    c.expect("DATA", "503 5.5.1 Send RCPT first");
    c.expect("RSET", "250 2.0.0 OK");
    assert!(s.list_messages().is_empty());
}

#[test]
fn all_queue_addresses_and_delimiter_accepted() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    for r in ["support@example.com", "help@example.com", "sales@example.com", "complaints@example.com", "support+order42@example.com"] {
        c.expect(&format!("RCPT TO:<{r}>"), "250 2.1.5 Recipient OK");
    }
    c.expect("RCPT TO:<nobody+support@example.com>", "550 5.1.1 Mailbox unknown");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("many queues", "x");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1, "one message, however many recipients");
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn postmaster_accepted() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<postmaster>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<postmaster@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("to postmaster", "x");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());

    // <postmaster> alone is a complete transaction.
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<postmaster>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content2 = simple_message("bare postmaster", "x");
    c.send(&data_wire(&content2));
    let n2 = registered(c.reply().line());

    let list = s.list_messages();
    assert_eq!(list.len(), 2);
    assert_eq!(s.stored_content(&n), content);
    assert_eq!(s.stored_content(&n2), content2);
}

#[test]
fn postmaster_is_case_insensitive() {
    // RFC 5321 §4.5.1: "Postmaster" is matched case-insensitively.
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<Postmaster>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<POSTMASTER@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RSET", "250 2.0.0 OK");
}

#[test]
fn null_sender_accepted() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = b"From: MAILER-DAEMON@client.example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nbounce\r\n".to_vec();
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

// --- SMTPUTF8 ---------------------------------------------------------------------------------

#[test]
fn non_ascii_address_without_smtputf8_gets_553() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<josé@client.example.org>", "553 5.6.7 Non-ASCII address requires SMTPUTF8");
    c.expect("MAIL FROM:<jose@exämple.org>", "553 5.6.7 Non-ASCII address requires SMTPUTF8");
    c.expect("MAIL FROM:<jose@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<suppört@example.com>", "553 5.6.7 Non-ASCII address requires SMTPUTF8");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = simple_message("ascii", "x");
    c.send(&data_wire(&content));
    registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1);
}

#[test]
fn non_ascii_address_with_smtputf8_accepted() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<josé@client.example.org> SMTPUTF8", "250 2.1.0 Sender OK");
    // A UTF-8 local part at our domain is simply unknown, not a 553.
    c.expect("RCPT TO:<suppört@example.com>", "550 5.1.1 Mailbox unknown");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let content = "From: José <josé@client.example.org>\r\nTo: support@example.com\r\nSubject: Grüße aus Köln\r\n\r\nÇa va très bien.\r\n"
        .as_bytes()
        .to_vec();
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

// --- informational commands -------------------------------------------------------------------

#[test]
fn vrfy_expn_help_noop_rset_auth_unknown() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("VRFY support", "252 2.5.0 Cannot verify user; will accept message and attempt delivery");
    c.expect("VRFY <nobody@example.com>", "252 2.5.0 Cannot verify user; will accept message and attempt delivery");
    c.expect("EXPN staff", "502 5.5.1 EXPN not supported");
    c.expect("HELP", "214 2.0.0 mailroom: see https://www.rfc-editor.org/rfc/rfc5321");
    c.expect("NOOP", "250 2.0.0 OK");
    c.expect("NOOP anything", "250 2.0.0 OK");
    c.expect("RSET", "250 2.0.0 OK");
    c.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "502 5.5.1 AUTH not supported");
    c.expect("XYZZY", "500 5.5.1 Command unrecognized");
    c.expect("LHLO client.example.org", "500 5.5.1 Command unrecognized");
    // Lower-case verbs are the same commands.
    c.expect("noop", "250 2.0.0 OK");
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    c.expect_closed();
    assert!(s.list_messages().is_empty());
}

#[test]
fn rset_drops_the_transaction() {
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RSET", "250 2.0.0 OK");
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    c.expect("DATA", "503 5.5.1 Send MAIL first");
    // EHLO state survives RSET.
    let content = simple_message("after rset", "x");
    let n = c.send_message("a@client.example.org", &["sales@example.com"], &content);
    assert_eq!(parse_number(&n).seq, 1);
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(s.stored_content(&n), content);
}

#[test]
fn ehlo_resets_the_transaction() {
    // RFC 5321 §4.1.4: EHLO in the middle of a transaction clears it like RSET.
    let s = server();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.ehlo("client.example.org");
    c.expect("DATA", "503 5.5.1 Send MAIL first");
    assert!(s.list_messages().is_empty());
}

#[test]
fn pipelined_commands_replied_in_order() {
    let s = server();
    let mut c = s.connect_smtp();
    // Everything up to DATA in one write, mixing accepted and rejected recipients.
    c.send(
        b"EHLO client.example.org\r\n\
          MAIL FROM:<a@client.example.org>\r\n\
          RCPT TO:<nobody@example.com>\r\n\
          RCPT TO:<support@example.com>\r\n\
          RCPT TO:<x@other.org>\r\n\
          RCPT TO:<sales@example.com>\r\n\
          DATA\r\n",
    );
    check_ehlo(&c.reply(), false, None);
    c.expect_line("250 2.1.0 Sender OK");
    c.expect_line("550 5.1.1 Mailbox unknown");
    c.expect_line("250 2.1.5 Recipient OK");
    c.expect_line("550 5.7.1 Relay access denied");
    c.expect_line("250 2.1.5 Recipient OK");
    c.expect_line("354 End data with <CR><LF>.<CR><LF>");
    // Message, next transaction and QUIT in one write (allowed after the data).
    let m1 = simple_message("pipe 1", "one");
    let m2 = simple_message("pipe 2", "two");
    let mut burst = data_wire(&m1);
    burst.extend_from_slice(b"MAIL FROM:<b@client.example.org>\r\nRCPT TO:<complaints@example.com>\r\nDATA\r\n");
    c.send(&burst);
    let n1 = registered(c.reply().line());
    c.expect_line("250 2.1.0 Sender OK");
    c.expect_line("250 2.1.5 Recipient OK");
    c.expect_line("354 End data with <CR><LF>.<CR><LF>");
    let mut burst = data_wire(&m2);
    burst.extend_from_slice(b"NOOP\r\nQUIT\r\n");
    c.send(&burst);
    let n2 = registered(c.reply().line());
    c.expect_line("250 2.0.0 OK");
    c.expect_line(&format!("221 2.0.0 {HOST} closing connection"));
    c.expect_closed();
    assert_eq!(s.list_messages().len(), 2);
    assert_eq!(s.stored_content(&n1), m1);
    assert_eq!(s.stored_content(&n2), m2);
}

#[test]
fn lhlo_on_smtp_and_ehlo_on_lmtp_get_500() {
    let s = server();
    let mut c = s.connect_smtp();
    c.expect("LHLO client.example.org", "500 5.5.1 Command unrecognized");
    c.expect("MAIL FROM:<a@client.example.org>", "503 5.5.1 Send EHLO first");

    let mut l = s.connect_lmtp();
    l.expect("EHLO client.example.org", "500 5.5.1 Use LHLO in LMTP");
    l.expect("HELO client.example.org", "500 5.5.1 Use LHLO in LMTP");
    l.expect_any("MAIL FROM:<a@client.example.org>", LMTP_GREET_FIRST);
    let r = l.cmd("LHLO client.example.org");
    check_ehlo(&r, false, None);
    l.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    l.expect("RSET", "250 2.0.0 OK");
    assert!(s.list_messages().is_empty());
}
