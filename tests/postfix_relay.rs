//! deploy/postfix: a real Postfix, configured from those example files, relays a domain to
//! mailroom over LMTP. UTF-8 mail to several recipients arrives registered; recipients and
//! messages mailroom refuses come back as Postfix bounces (which reach mailroom's postmaster),
//! never lost.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const POSTFIX: &str = "/usr/sbin/postfix";

/// A Postfix instance of the test's own: config, queue and log in a temp dir, SMTP on a free
/// loopback port, the example's `mailroom` transport pointed at the test server's LMTP listener.
/// Stopped when dropped, also when the test fails.
struct Postfix {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    log: PathBuf,
    port: u16,
}

/// The services a Postfix instance needs (Debian's master.cf without chroot, SMTP on loopback).
fn base_master_cf(port: u16) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         pickup    unix  n - n 60    1 pickup\n\
         cleanup   unix  n - n -     0 cleanup\n\
         qmgr      unix  n - n 300   1 qmgr\n\
         rewrite   unix  - - n -     - trivial-rewrite\n\
         bounce    unix  - - n -     0 bounce\n\
         defer     unix  - - n -     0 bounce\n\
         trace     unix  - - n -     0 bounce\n\
         verify    unix  - - n -     1 verify\n\
         flush     unix  n - n 1000? 0 flush\n\
         proxymap  unix  - - n -     - proxymap\n\
         smtp      unix  - - n -     - smtp\n\
         relay     unix  - - n -     - smtp\n\
         showq     unix  n - n -     - showq\n\
         error     unix  - - n -     - error\n\
         retry     unix  - - n -     - error\n\
         discard   unix  - - n -     - discard\n\
         lmtp      unix  - - n -     - lmtp\n\
         anvil     unix  - - n -     1 anvil\n\
         scache    unix  - - n -     1 scache\n\
         postlog   unix-dgram n - n - 1 postlogd\n"
    )
}

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postfix").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced by `to`, which must occur (a changed example fails here, loudly).
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the example no longer contains {from:?}:\n{text}");
    text.replace(from, to)
}

impl Postfix {
    /// None (with a message) when Postfix is not installed.
    fn start(lmtp: SocketAddr) -> Option<Postfix> {
        if !Path::new(POSTFIX).exists() {
            eprintln!("SKIPPED: {POSTFIX} not installed (Debian package postfix; scripts/test.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        // Postfix's daemons run as `postfix` and must reach their queue below the temp dir.
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let conf = root.join("conf");
        let data = root.join("data");
        for d in [&conf, &root.join("queue"), &data] {
            std::fs::create_dir(d).unwrap();
        }
        let owned = Command::new("chown").arg("postfix").arg(&data).status().unwrap();
        assert!(owned.success(), "chown postfix {}: is there a `postfix` user?", data.display());
        let port = free_port();
        let log = root.join("maillog");
        let r = root.display();
        let base = format!(
            "# the test's own instance\n\
             compatibility_level = 3.6\n\
             queue_directory = {r}/queue\n\
             data_directory = {r}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = relay.test\n\
             mydomain = relay.test\n\
             myorigin = relay.test\n\
             mydestination =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             alias_maps =\n\
             alias_database =\n\
             maillog_file = {r}/maillog\n\
             maillog_file_prefixes = {r}\n\
             delay_warning_time = 0\n\
             # retry deferred mail within seconds, not minutes\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 1s\n\n\
             # deploy/postfix/main.cf\n"
        );
        let transport_file = conf.join("mailroom_transport");
        let main_cf = substitute(&example("main.cf"), "/etc/postfix/mailroom_transport", &transport_file.display().to_string());
        std::fs::write(conf.join("main.cf"), base + &main_cf).unwrap();
        std::fs::write(conf.join("master.cf"), base_master_cf(port) + "\n# deploy/postfix/master.cf\n" + &example("master.cf")).unwrap();
        std::fs::write(&transport_file, substitute(&example("mailroom_transport"), "127.0.0.1:2424", &lmtp.to_string())).unwrap();
        let pf = Postfix { _dir: dir, conf, log, port };
        let out = pf.postfix(&["start"]);
        assert!(out.status.success(), "postfix start failed: {}\n{}", String::from_utf8_lossy(&out.stderr), pf.log_text());
        assert!(
            wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "Postfix does not listen on 127.0.0.1:{port}:\n{}",
            pf.log_text()
        );
        Some(pf)
    }

    fn postfix(&self, args: &[&str]) -> std::process::Output {
        Command::new(POSTFIX).arg("-c").arg(&self.conf).args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one message to Postfix with Python's smtplib (8BITMIME, SMTPUTF8); Postfix's reply must be 250.
    fn send(&self, from: &str, rcpts: &[&str], message: &[u8]) {
        let script = r#"
import smtplib, sys
port, sender, rcpts = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
refused = s.sendmail(sender, rcpts, sys.stdin.buffer.read(), mail_options=["BODY=8BITMIME", "SMTPUTF8"])
assert not refused, refused
s.quit()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script, &self.port.to_string(), from, &rcpts.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "sending to Postfix failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The log line of the final delivery status for `rcpt` (sent or bounced), waiting for it.
    fn final_status(&self, rcpt: &str) -> String {
        self.wait_status(rcpt, &["status=sent", "status=bounced"])
    }

    /// The first log line about `rcpt` with one of these statuses, waiting for it.
    fn wait_status(&self, rcpt: &str, statuses: &[&str]) -> String {
        self.wait_status_while(rcpt, statuses, || {})
    }

    /// The final status for `rcpt`, asking Postfix every two seconds to retry its deferred mail
    /// now (`postfix flush`, as an operator does once mailroom is back). Left to itself Postfix
    /// retries too, but a queue scan that meets the message while the failed attempt still holds
    /// its lock parks it for 60 seconds (qmgr's "skipped, still being delivered").
    fn final_status_flushing(&self, rcpt: &str) -> String {
        let mut last_flush: Option<std::time::Instant> = None;
        self.wait_status_while(rcpt, &["status=sent", "status=bounced"], || {
            if last_flush.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                let out = self.postfix(&["flush"]);
                assert!(out.status.success(), "postfix flush: {}", String::from_utf8_lossy(&out.stderr));
                last_flush = Some(std::time::Instant::now());
            }
        })
    }

    /// The first log line about `rcpt` with one of these statuses, calling `meanwhile` between looks.
    fn wait_status_while(&self, rcpt: &str, statuses: &[&str], mut meanwhile: impl FnMut()) -> String {
        let needle = format!("to=<{rcpt}>");
        let mut found = None;
        let done = wait_until(Duration::from_secs(60), || {
            found = self.log_text().lines().find(|l| l.contains(&needle) && statuses.iter().any(|s| l.contains(s))).map(str::to_string);
            if found.is_none() {
                meanwhile();
            }
            found.is_some()
        });
        assert!(done, "no {statuses:?} for {rcpt} in Postfix's log:\n{}", self.log_text());
        found.unwrap()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let out = self.postfix(&["stop"]);
        if !out.status.success() {
            let _ = self.postfix(&["abort"]);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The registration number in a `status=sent (250 2.0.0 <rcpt> Registered MR-…)` line.
fn registered_number(status_line: &str) -> String {
    assert!(status_line.contains("status=sent"), "not delivered: {status_line}");
    let rest = status_line.split(" Registered ").nth(1).unwrap_or_else(|| panic!("no registration number in {status_line:?}"));
    let number: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    parse_number(&number);
    number
}

fn utf8_message(token: &str) -> Vec<u8> {
    format!(
        "From: Jürgen Kunde <kunde@client.example.org>\r\n\
         To: support@example.com, sales@example.com\r\n\
         Subject: Reklamation {token}: Größe falsch – 订单 42\r\n\
         Date: Mon, 30 Nov 2026 10:00:00 +0100\r\n\
         Message-ID: <{token}@client.example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Grüße aus Köln, こんにちは.\r\n"
    )
    .into_bytes()
}

#[test]
fn utf8_mail_to_several_recipients_arrives_registered() {
    let s = Server::start(Opts::default());
    let Some(postfix) = Postfix::start(s.lmtp_addr()) else { return };
    let token = unique_token("postfix");
    let message = utf8_message(&token);
    postfix.send("kunde@client.example.org", &["support@example.com", "sales@example.com"], &message);

    let mut numbers: Vec<String> =
        ["support@example.com", "sales@example.com"].iter().map(|r| registered_number(&postfix.final_status(r))).collect();
    numbers.dedup();
    let listed = s.list_messages();
    for n in &numbers {
        assert!(listed.iter().any(|l| &l.number == n), "{n} (from Postfix's log) not in mailroom's list {listed:?}");
        let stored = s.stored_content(n);
        // Postfix prepends its Received: header and passes the 8-bit message on unchanged.
        assert!(stored.starts_with(b"Received: from "), "no Received: header from Postfix: {}", String::from_utf8_lossy(&stored));
        assert!(stored.ends_with(&message), "stored message differs from what was sent:\n{}", String::from_utf8_lossy(&stored));
        assert!(listed.iter().find(|l| &l.number == n).unwrap().protocol.to_ascii_lowercase().contains("lmtp"));
    }
}

#[test]
fn mailroom_rejections_come_back_as_postfix_bounces() {
    let s = Server::start(Opts { max_message_size: 200_000, ..Opts::default() });
    let Some(postfix) = Postfix::start(s.lmtp_addr()) else { return };

    // One recipient mailroom does not know, one it does: the known one is delivered, the unknown
    // one bounced with mailroom's reply.
    let token = unique_token("unknown");
    let message = format!("From: postmaster@example.com\r\nTo: nobody@example.com\r\nSubject: {token}\r\n\r\nhello\r\n");
    postfix.send("postmaster@example.com", &["nobody@example.com", "support@example.com"], message.as_bytes());
    let bounced = postfix.final_status("nobody@example.com");
    assert!(bounced.contains("status=bounced") && bounced.contains("550 5.1.1"), "{bounced}");
    let delivered = registered_number(&postfix.final_status("support@example.com"));

    // Too large for mailroom (200 kB) but not for Postfix (25 MiB): Postfix reads mailroom's SIZE
    // in the LHLO reply and bounces the message without sending it (5.3.4).
    let big_token = unique_token("oversize");
    let big = format!("Subject: {big_token}\r\n\r\n{}", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(5000));
    postfix.send("postmaster@example.com", &["sales@example.com"], big.as_bytes());
    let too_big = postfix.final_status("sales@example.com");
    assert!(too_big.contains("status=bounced") && too_big.contains("exceeds size limit 200000"), "{too_big}");

    // Both bounces go to the sender, postmaster@example.com, which Postfix relays to mailroom.
    let bounces = |listed: &[Listed]| -> Vec<String> {
        listed
            .iter()
            .filter(|l| l.number != delivered)
            .map(|l| String::from_utf8_lossy(&s.stored_content(&l.number)).into_owned())
            .collect()
    };
    let mut found = Vec::new();
    let arrived = wait_until(Duration::from_secs(60), || {
        found = bounces(&s.list_messages());
        found.len() >= 2
    });
    assert!(arrived, "bounces did not reach mailroom: {found:?}\n{}", postfix.log_text());
    assert_eq!(found.len(), 2, "{found:?}");
    let unknown = found.iter().find(|b| b.contains(&token)).unwrap_or_else(|| panic!("no bounce names {token}: {found:?}"));
    assert!(unknown.contains("Undelivered Mail Returned to Sender"), "{unknown}");
    assert!(unknown.contains("Final-Recipient: rfc822; nobody@example.com") && unknown.contains("5.1.1"), "{unknown}");
    let oversize = found.iter().find(|b| b.contains(&big_token)).unwrap_or_else(|| panic!("no bounce names {big_token}: {found:?}"));
    assert!(oversize.contains("Final-Recipient: rfc822; sales@example.com") && oversize.contains("Status: 5.3.4"), "{oversize}");
}

#[test]
fn mail_waits_in_postfix_while_mailroom_is_down() {
    // mailroom's LMTP on a fixed port, so that it comes back where Postfix's transport points.
    let port = free_port();
    let config = substitute(
        &Opts::default().config_toml(),
        "[lmtp]\nlisten = [\"127.0.0.1:0\"]",
        &format!("[lmtp]\nlisten = [\"127.0.0.1:{port}\"]"),
    );
    let mut s = Server::start(Opts { raw_config: Some(config), ..Opts::default() });
    assert_eq!(s.lmtp_addr().port(), port);
    s.terminate_and_wait();
    let Some(postfix) = Postfix::start(s.lmtp_addr()) else { return };

    let token = unique_token("deferred");
    let message = format!(
        "From: kunde@client.example.org\r\nTo: support@example.com\r\nSubject: {token}\r\nDate: Mon, 30 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{token}@client.example.org>\r\n\r\nstill there?\r\n"
    );
    postfix.send("kunde@client.example.org", &["support@example.com"], message.as_bytes());
    let deferred = postfix.wait_status("support@example.com", &["status=deferred"]);
    assert!(deferred.contains("Connection refused"), "{deferred}");

    s.restart();
    let number = registered_number(&postfix.final_status_flushing("support@example.com"));
    assert!(s.stored_content(&number).ends_with(message.as_bytes()), "{number} is not the deferred message");
}
