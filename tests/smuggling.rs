//! SMTP smuggling (CVE-2023-51764/5/6 family). Policy (docs/smtp-replies.md): only CRLF.CRLF
//! ends DATA; bare CR / bare LF are message content, kept byte for byte, and never end a line
//! for end-of-data or dot-stuffing. So each sequence below must leave exactly ONE registered
//! message containing the "smuggled" commands as text, and exactly one 250 reply.

mod common;

use common::*;

const SMUGGLED: &[u8] = b"MAIL FROM:<evil@x.org>\r\nRCPT TO:<sales@example.com>\r\nDATA\r\nsmuggled\r\n";

/// Run one smuggling attempt over `proto` ("smtp" or "lmtp") and check reply + storage.
fn attempt(seq: &[u8], proto: &str) {
    let s = Server::start(Opts { max_errors: 100, ..Opts::default() });
    let mut c = if proto == "lmtp" { s.lmtp_session() } else { s.smtp_session() };
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");

    let mut wire =
        b"From: customer@client.example.org\r\nTo: support@example.com\r\nSubject: smuggling test\r\n\r\nfirst body line".to_vec();
    wire.extend_from_slice(seq);
    wire.extend_from_slice(SMUGGLED);
    // The real end of data.
    let content_wire = wire.clone();
    assert!(find(&content_wire, b"\r\n.\r\n").is_none(), "test bug: the sequence itself ends the data");
    wire.extend_from_slice(b".\r\n");
    // NOOP right behind the data: its reply must be the very next one after the single 250.
    wire.extend_from_slice(b"NOOP\r\n");
    c.send(&wire);

    let r = c.reply();
    let n = if proto == "lmtp" {
        let line = r.line();
        let rest = line
            .strip_prefix("250 2.0.0 <support@example.com> Registered ")
            .unwrap_or_else(|| panic!("seq {:?}: expected one LMTP 250 for the recipient, got {line:?}", show_bytes(seq)));
        parse_number(rest);
        rest.to_string()
    } else {
        assert!(
            r.lines.len() == 1 && r.lines[0].starts_with("250 2.0.0 Registered "),
            "seq {:?}: expected `250 2.0.0 Registered ...`, got {:?} (transcript {:?})",
            show_bytes(seq),
            r,
            c.transcript
        );
        registered(r.line())
    };
    let next = c.reply();
    assert_eq!(
        next.lines,
        vec!["250 2.0.0 OK".to_string()],
        "seq {:?}: the reply after the registration must be the NOOP's; something inside the \
         data was executed as a command (transcript {:?})",
        show_bytes(seq),
        c.transcript
    );
    c.expect_silence(std::time::Duration::from_millis(300));
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));

    let list = s.list_messages();
    assert_eq!(list.len(), 1, "seq {:?}: exactly one message must be stored, got {list:?}", show_bytes(seq));
    assert_eq!(list[0].number, n);
    let stored = s.stored_content(&n);
    let expected = unstuff(&content_wire);
    assert_eq!(show_bytes(&stored), show_bytes(&expected), "seq {:?}: stored message differs from the data received", show_bytes(seq));
    assert!(find(&stored, SMUGGLED).is_some(), "smuggled commands must be inside the message");
    // Sequences with no CRLF-dot in them must be kept byte for byte.
    if find(seq, b"\r\n.").is_none() {
        let mut kept = b"first body line".to_vec();
        kept.extend_from_slice(seq);
        kept.extend_from_slice(b"MAIL FROM:<evil@x.org>");
        assert!(find(&stored, &kept).is_some(), "seq {:?} not kept verbatim in {:?}", show_bytes(seq), show_bytes(&stored));
    }
}

macro_rules! smuggle_tests {
    ($($name:ident => $seq:expr),* $(,)?) => {
        mod smtp {
            $( #[test] fn $name() { super::attempt($seq, "smtp"); } )*
        }
        mod lmtp {
            $( #[test] fn $name() { super::attempt($seq, "lmtp"); } )*
        }
    };
}

smuggle_tests! {
    lf_dot_lf => b"\n.\n",
    lf_dot_crlf => b"\n.\r\n",
    crlf_dot_lf => b"\r\n.\n",
    cr_dot_cr => b"\r.\r",
    cr_dot_crlf => b"\r.\r\n",
    crlf_dot_cr => b"\r\n.\r",
    lf_dot_cr => b"\n.\r",
    cr_dot_lf => b"\r.\n",
    bare_lf_lines => b"\nbare lf line\n",
    bare_cr_lines => b"\rbare cr line\r",
    crlf_dot_lf_crlf => b"\r\n.\n\r\n",
    lf_dot_crlf_mix => b"\n.\r\n\r\n",
    lf_cr_dot_cr_lf => b"\n\r.\r\n",
    crlf_dot_space_crlf => b"\r\n. \r\n",
    crlf_dot_nul_crlf => b"\r\n.\x00\r\n",
    cr_crlf_dot_cr_crlf => b"\r\r\n.\r\r\n",
    lf_lf_dot_lf_lf => b"\n\n.\n\n",
    crlf_dot_dot_crlf => b"\r\n..\r\n",
    lf_crlf_dot_lf => b"\n\r\n.\n",
}

/// The same sequences through BDAT: taken byte for byte, never a command.
#[test]
fn bdat_carries_smuggling_sequences_verbatim() {
    let s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let mut body = b"Subject: bdat smuggling\r\n\r\nx".to_vec();
    for seq in [&b"\n.\n"[..], b"\r\n.\r\n", b"\r.\r", b"\n.\r\n"] {
        body.extend_from_slice(seq);
        body.extend_from_slice(SMUGGLED);
    }
    let mut w = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
    w.extend_from_slice(&body);
    w.extend_from_slice(b"NOOP\r\n");
    c.send(&w);
    let n = registered(c.reply().line());
    c.expect_line("250 2.0.0 OK");
    c.expect_silence(std::time::Duration::from_millis(300));
    assert_eq!(s.list_messages().len(), 1);
    assert_eq!(show_bytes(&s.stored_content(&n)), show_bytes(&body));
}
