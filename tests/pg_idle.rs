//! IMAP IDLE across nodes on PostgreSQL: a client idling on node B hears of mail delivered to
//! node A through B's LISTEN connection (named `node-b-listener`), and still does after that
//! connection was killed with `pg_terminate_backend` (B reconnects and re-reads). The safety-net
//! poll is set to an hour there, so only the listener can make the deadline; the poll is tested
//! on its own with a commit that sends no NOTIFY.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const DEADLINE: Duration = Duration::from_secs(2);
const LISTENER: &str = "node-b-listener";

const ROLES: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }
"#;

fn node(url: &str, key_file: &std::path::Path, name: &str) -> Server {
    let opts = Opts {
        postgres_url: Some(url.to_string()),
        master_key_file: Some(key_file.to_str().unwrap().to_string()),
        node: Some(name.to_string()),
        extra_toml: ROLES.into(),
        ..Default::default()
    };
    let config = opts.config_toml();
    assert!(config.contains("[storage]\n"));
    let config = config.replace("[storage]\n", "[storage]\nchange_poll = \"1h\"\n");
    Server::start(Opts { raw_config: Some(config), ..opts })
}

/// Just enough IMAP over implicit TLS: send lines, read lines against a deadline.
struct Client {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    fn login(server: &Server, user: &str) -> Client {
        let mut sock = TcpStream::connect(server.imaps_addr()).expect("connect");
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap().to_owned();
        let mut tls = rustls::ClientConnection::new(Arc::new(tls_client_config(None)), name).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut sock).expect("TLS handshake");
        }
        let mut c = Client { tls: rustls::StreamOwned::new(tls, sock), buf: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        assert!(c.line(deadline).starts_with("* OK"));
        c.command("a1", &format!("LOGIN {user} \"{PW}\""));
        c
    }

    fn send(&mut self, line: &str) {
        self.tls.write_all(format!("{line}\r\n").as_bytes()).and_then(|_| self.tls.flush()).expect("send");
    }

    /// The next line (without CRLF); panics once `deadline` has passed.
    fn line(&mut self, deadline: Instant) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return line;
            }
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
            let left = left.unwrap_or_else(|| panic!("no complete line in time; have {:?}", String::from_utf8_lossy(&self.buf)));
            self.tls.sock.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.tls.read(&mut chunk) {
                Ok(0) => panic!("server closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Sends `tag command`, returns the untagged lines; asserts the tagged OK.
    fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = Vec::new();
        loop {
            let line = self.line(deadline);
            if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                assert!(status.starts_with("OK"), "{command}: {status} after {lines:?}");
                return lines;
            }
            lines.push(line);
        }
    }

    /// Waits (at most [`DEADLINE`] from `since`) for `* n EXISTS`, skipping other untagged lines.
    fn expect_exists(&mut self, n: usize, since: Instant) {
        let want = format!("* {n} EXISTS");
        let mut seen = Vec::new();
        while Instant::now() < since + DEADLINE {
            let line = self.line(since + DEADLINE);
            if line == want {
                return;
            }
            seen.push(line);
        }
        panic!("no {want:?} within {DEADLINE:?}: {seen:?}");
    }
}

fn deliver(server: &Server, subject: &str) -> String {
    let content = simple_message(subject, &unique_token("body-"));
    server.smtp_session().send_message("kim@customer.example", &["support@example.com"], &content)
}

#[test]
fn idle_on_one_node_sees_mail_delivered_to_another_also_after_the_listener_was_killed() {
    let pg = PgCluster::start();
    let url = pg.database("idle");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    let a = node(&url, &key_file, "node-a");
    let b = node(&url, &key_file, "node-b");
    b.add_user("anna", PW, &["support-agent"]);
    let first_listener = pg.listener_pid("idle", LISTENER, None);

    let mut c = Client::login(&b, "anna");
    let selected = c.command("a2", "SELECT support");
    assert!(selected.iter().any(|l| l == "* 0 EXISTS"), "{selected:?}");
    c.send("a3 IDLE");
    assert!(c.line(Instant::now() + Duration::from_secs(20)).starts_with("+ "));

    let started = Instant::now();
    let first = deliver(&a, "delivered to node A");
    c.expect_exists(1, started);

    // Kill B's LISTEN connection; the next delivery to A is still seen.
    let killed = pg.sql(
        "idle",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{LISTENER}' AND query LIKE 'LISTEN%'"),
    );
    assert_eq!(killed, "t", "exactly one listener connection, terminated");
    let started = Instant::now();
    let second = deliver(&a, "after the listener was killed");
    c.expect_exists(2, started);
    let second_listener = pg.listener_pid("idle", LISTENER, Some(&first_listener));
    assert_ne!(second_listener, first_listener);

    c.send("DONE");
    while !c.line(Instant::now() + Duration::from_secs(20)).starts_with("a3 OK") {}
    // The two messages B announced are the two A registered.
    let fetched = c.command("a4", "FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration)])");
    let text = fetched.join("\n");
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    let log = b.log_text();
    assert!(log.contains("other nodes' changes") && log.contains("reconnecting"), "B noticed and reconnected: {log}");
}

/// The safety net alone: a commit that sends no NOTIFY (here psql's) still wakes the node's
/// watchers within `change_poll`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_notices_a_commit_that_sent_no_notification() {
    let pg = PgCluster::start();
    let url = pg.database("poll");
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nhostname = \"mx.example.com\"\nnode = \"node-p\"\n\n[storage]\ndatabase = \"{url}\"\nchange_poll = \"200ms\"\n\n\
         [mail]\ndomains = [\"example.com\"]\n\n[[queues]]\nname = \"support\"\naddresses = [\"support@example.com\"]\n"
    );
    let settings = mailroom::config::Settings::from_str("poll.toml", &toml, dir.path()).expect("test config is valid");
    let store = mailroom::store::Store::open_as(settings.store_options(), "node-p").await.expect("store opens");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = store.watch_other_nodes(async move { drop(stopped.await) }).expect("a watcher on PostgreSQL");
    let mut changes = store.changes.subscribe();
    // The listener's first connect bumps once; wait for it, then for quiet.
    tokio::time::timeout(Duration::from_secs(10), changes.changed()).await.expect("bumped after connecting").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    changes.borrow_and_update();

    pg.sql("poll", "UPDATE counters SET value = value + 1 WHERE name = 'message'");
    tokio::time::timeout(Duration::from_secs(2), changes.changed()).await.expect("the poll saw the new message id").unwrap();

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops when told").unwrap();
    store.close().await;
}
