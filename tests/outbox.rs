//! The outbox worker against a real (test-local) SMTP listener: delivery after the smarthost was
//! down at first, exactly once; a permanent refusal fails the row at once; retries stop after
//! `max_attempts`; two workers never send one row twice; nothing readable at rest.
//!
//! The capture server below speaks just enough SMTP (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
//! and records every message it accepts; it can be started late on a port chosen in advance.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use mailroom::config::Settings;
use mailroom::outbox::{self, AckTemplate, OutboxConfig, TlsMode};
use mailroom::shutdown::{self, Phase, ShutdownTrigger};
use mailroom::store::Store;
use mailroom::store::outbox as rows;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use common::{Database, Sql, in_process_storage};

const CUSTOMER: &str = "jane.customer@customer.example";

// ---------------------------------------------------------------------------------------------
// Capture server
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Accept,
    /// `550 5.1.1 <address>: Recipient address rejected` to every RCPT (the reply quotes the
    /// address, as Postfix does, so the test can check it does not end up in `last_error`).
    RejectRcpt,
}

#[derive(Clone, Debug)]
struct Captured {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    /// Received after STARTTLS.
    secure: bool,
}

struct Capture {
    messages: Arc<Mutex<Vec<Captured>>>,
    task: JoinHandle<()>,
}

impl Capture {
    /// With `tls`, STARTTLS is offered (and then required for nothing: the client decides).
    async fn start(port: u16, mode: Mode, tls: Option<Arc<rustls::ServerConfig>>) -> Capture {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("capture server binds");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match session(stream, mode, acceptor.is_some(), false, &sink).await {
                        Ok(End::StartTls(stream)) => {
                            if let Ok(tls) = acceptor.expect("offered").accept(stream).await {
                                let _ = session(tls, mode, false, true, &sink).await;
                            }
                        }
                        Ok(End::Closed) | Err(_) => {}
                    }
                });
            }
        });
        Capture { messages, task }
    }

    fn messages(&self) -> Vec<Captured> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn angle_addr(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_string()
}

enum End<S> {
    Closed,
    /// The client asked for STARTTLS and got 220: hand the stream over for the handshake.
    StartTls(S),
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    mode: Mode,
    offer_starttls: bool,
    secure: bool,
    sink: &Mutex<Vec<Captured>>,
) -> std::io::Result<End<S>> {
    let mut io = BufReader::new(stream);
    if !secure {
        io.get_mut().write_all(b"220 capture.test ESMTP ready\r\n").await?;
    }
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Ok(End::Closed);
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let reply: Vec<u8> = if upper.starts_with("EHLO") {
            let starttls = if offer_starttls { "250-STARTTLS\r\n" } else { "" };
            format!("250-capture.test\r\n{starttls}250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n").into_bytes()
        } else if upper.starts_with("HELO") {
            b"250 capture.test\r\n".to_vec()
        } else if upper == "STARTTLS" && offer_starttls {
            io.get_mut().write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
            return Ok(End::StartTls(io.into_inner()));
        } else if upper.starts_with("MAIL FROM:") {
            from = Some(angle_addr(&text[10..]));
            to.clear();
            b"250 2.1.0 Ok\r\n".to_vec()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = angle_addr(&text[8..]);
            match mode {
                Mode::Accept => {
                    to.push(rcpt);
                    b"250 2.1.5 Ok\r\n".to_vec()
                }
                Mode::RejectRcpt => format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n").into_bytes(),
            }
        } else if upper == "DATA" {
            if from.is_none() || to.is_empty() {
                b"503 5.5.1 Error: need RCPT command\r\n".to_vec()
            } else {
                io.get_mut().write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if io.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(End::Closed);
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
                    data.extend_from_slice(unstuffed);
                }
                sink.lock().unwrap().push(Captured { from: from.take().unwrap_or_default(), to: std::mem::take(&mut to), data, secure });
                b"250 2.0.0 Ok: queued\r\n".to_vec()
            }
        } else if upper == "RSET" {
            from = None;
            to.clear();
            b"250 2.0.0 Ok\r\n".to_vec()
        } else if upper == "NOOP" {
            b"250 2.0.0 Ok\r\n".to_vec()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(End::Closed);
        } else {
            b"502 5.5.2 Error: command not recognized\r\n".to_vec()
        };
        io.get_mut().write_all(&reply).await?;
    }
}

/// A port on which nothing listens (yet).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// Store and worker
// ---------------------------------------------------------------------------------------------

async fn open_store(dir: &Path) -> Store {
    open_store_on(dir).await.0
}

/// The store in `dir` (or, in the PostgreSQL pass, on a fresh database) and which it is.
async fn open_store_on(dir: &Path) -> (Store, Database) {
    let (storage, database) = in_process_storage(dir);
    let toml = r#"
[server]
hostname = "mx.example.com"

[mail]
domains = ["example.com"]

[[queues]]
name = "support"
addresses = ["support@example.com"]
"#;
    let toml = format!("{toml}\n{storage}");
    let settings = Settings::from_str("outbox-test.toml", &toml, dir).expect("test config is valid");
    (Store::open(settings.store_options()).await.expect("store opens"), database)
}

fn config(port: u16) -> OutboxConfig {
    OutboxConfig {
        smarthost: format!("127.0.0.1:{port}"),
        tls: TlsMode::None,
        retry_initial: Duration::from_millis(200),
        retry_max: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(100),
        ..OutboxConfig::default()
    }
}

struct Running {
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
}

fn start_worker(store: &Store, config: OutboxConfig) -> Running {
    let (trigger, shutdown) = shutdown::channel();
    let task = tokio::spawn(outbox::run(store.clone(), config, "mx.example.com".into(), Default::default(), shutdown));
    Running { trigger, task }
}

impl Running {
    async fn stop(self) {
        self.trigger.set(Phase::Draining);
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("worker stops on shutdown").unwrap();
    }
}

#[derive(Debug)]
struct OutboxState {
    status: String,
    attempts: i64,
    last_error: Option<String>,
    sent_at: Option<i64>,
}

async fn state(store: &Store, id: i64) -> OutboxState {
    let row = rows::state(store, id).await.unwrap();
    OutboxState { status: row.status, attempts: row.attempts, last_error: row.last_error, sent_at: row.sent_at }
}

async fn wait_for(store: &Store, id: i64, what: &str, within: Duration, done: impl Fn(&OutboxState) -> bool) -> OutboxState {
    let deadline = Instant::now() + within;
    loop {
        let s = state(store, id).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "row {id}: not {what} within {within:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_status(store: &Store, id: i64, status: &str, within: Duration) -> OutboxState {
    wait_for(store, id, status, within, |s| s.status == status).await
}

fn acknowledgement(number: &str) -> Vec<u8> {
    let due = Utc.with_ymd_and_hms(2026, 3, 4, 15, 30, 0).unwrap();
    outbox::compose::acknowledgement(
        &AckTemplate::default(),
        number,
        "Where is my order?",
        due,
        "support",
        "Support <support@example.com>",
        CUSTOMER,
        Some("order-1@customer.example"),
        "mx.example.com",
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_exactly_once_after_the_smarthost_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (store, database) = open_store_on(dir.path()).await;
    let data = acknowledgement("MR-2026-000123-7");
    // Null reverse-path, as RFC 3834 recommends for automatic responses.
    let id = mailroom::store::outbox::enqueue(&store, None, "ack", "", &[CUSTOMER], &data).await.unwrap();

    // At rest: neither the recipient nor the content is readable, in the row or anywhere in the
    // database files.
    let ct: Vec<u8> = rows::sealed_mail(&store, id).await.unwrap();
    assert!(!contains(&ct, CUSTOMER.as_bytes()) && !contains(&ct, b"customer.example"), "mail_ct holds the recipient in clear");
    assert!(!contains(&ct, b"Where is my order"), "mail_ct holds the subject in clear");

    let port = free_port();
    let worker = start_worker(&store, config(port));

    // The smarthost is down: attempts fail and are rescheduled, nothing is lost.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let down = state(&store, id).await;
    assert_ne!(down.status, "sent", "{down:?}");
    assert_ne!(down.status, "failed", "a connection refused is temporary: {down:?}");
    assert!(down.attempts >= 1, "{down:?}");
    let error = down.last_error.clone().unwrap_or_default();
    assert!(error.contains("connect"), "{down:?}");
    assert!(!error.contains('@'), "last_error names no address: {error}");

    // It comes back.
    let capture = Capture::start(port, Mode::Accept, None).await;
    let sent = wait_for_status(&store, id, "sent", Duration::from_secs(10)).await;
    assert!(sent.attempts > 1, "the first attempts failed: {sent:?}");
    assert!(sent.sent_at.is_some(), "{sent:?}");
    assert_eq!(sent.last_error, None, "a successful delivery clears the error: {sent:?}");

    // Exactly once, even after more polls.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let messages = capture.messages();
    assert_eq!(messages.len(), 1, "delivered exactly once");
    let m = &messages[0];
    assert_eq!(m.from, "", "null reverse-path");
    assert_eq!(m.to, vec![CUSTOMER.to_string()]);
    assert_eq!(m.data, data, "the bytes arrive unchanged");

    let parsed = mail_parser::MessageParser::default().parse(&m.data).unwrap();
    assert!(parsed.subject().unwrap().starts_with("[MR-2026-000123-7] "), "{:?}", parsed.subject());
    assert_eq!(parsed.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
    assert_eq!(parsed.in_reply_to().as_text(), Some("order-1@customer.example"));

    worker.stop().await;
    // The database, its WAL (while open) and everything else in the data dir; again after close.
    assert_nothing_in_clear(dir.path(), &database);
    store.close().await;
    assert_nothing_in_clear(dir.path(), &database);
}

/// Neither the files in `dir` nor the database (its SQLite file is among them; a PostgreSQL
/// database is dumped) hold the recipient or the subject.
fn assert_nothing_in_clear(dir: &Path, database: &Database) {
    if database.is_postgres() {
        for (name, bytes) in database.store_contents() {
            assert!(!contains(&bytes, CUSTOMER.as_bytes()), "the {name} holds the recipient in clear");
            assert!(!contains(&bytes, b"Where is my order"), "the {name} holds the subject in clear");
        }
    }
    let mut scanned = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(bytes) = std::fs::read(&path) else { continue }; // e.g. -shm removed at close
        scanned += 1;
        assert!(!contains(&bytes, CUSTOMER.as_bytes()), "{} holds the recipient in clear", path.display());
        assert!(!contains(&bytes, b"Where is my order"), "{} holds the subject in clear", path.display());
    }
    assert!(scanned > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_fails_the_row_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let port = free_port();
    let capture = Capture::start(port, Mode::RejectRcpt, None).await;
    let id = mailroom::store::outbox::enqueue(&store, None, "ack", "", &[CUSTOMER], &acknowledgement("MR-2026-000124-5")).await.unwrap();
    let worker = start_worker(&store, config(port));

    let failed = wait_for_status(&store, id, "failed", Duration::from_secs(10)).await;
    assert_eq!(failed.attempts, 1, "no retry after a 5xx: {failed:?}");
    assert_eq!(failed.sent_at, None);
    let error = failed.last_error.unwrap();
    assert!(error.contains("550") && error.contains("5.1.1"), "{error}");
    assert!(!error.contains('@') && !error.contains("customer"), "the smarthost's reply text (with the address) is not stored: {error}");

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state(&store, id).await.attempts, 1, "still no retry");
    assert!(capture.messages().is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let id = mailroom::store::outbox::enqueue(&store, None, "ack", "", &[CUSTOMER], &acknowledgement("MR-2026-000125-3")).await.unwrap();
    let config = OutboxConfig {
        max_attempts: 3,
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(100),
        ..config(free_port())
    };
    let worker = start_worker(&store, config);

    let failed = wait_for_status(&store, id, "failed", Duration::from_secs(10)).await;
    assert_eq!(failed.attempts, 3, "{failed:?}");
    assert_eq!(failed.last_error.as_deref(), Some("connect: connection refused"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_send_a_row_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let port = free_port();
    let capture = Capture::start(port, Mode::Accept, None).await;
    const ROWS: usize = 40;
    let mut ids = Vec::new();
    for i in 0..ROWS {
        let number = format!("MR-2026-{:06}-0", 1000 + i);
        let rcpt = format!("customer{i}@customer.example");
        ids.push(
            mailroom::store::outbox::enqueue(&store, None, "ack", "support@example.com", &[rcpt], &acknowledgement(&number)).await.unwrap(),
        );
    }
    let batch = OutboxConfig { batch: 4, ..config(port) };
    let a = start_worker(&store, batch.clone());
    let b = start_worker(&store, batch);
    for id in &ids {
        wait_for_status(&store, *id, "sent", Duration::from_secs(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.stop().await;
    b.stop().await;

    let messages = capture.messages();
    assert_eq!(messages.len(), ROWS, "every row sent once, none twice");
    let mut recipients: Vec<String> = messages.iter().map(|m| m.to.join(",")).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), ROWS, "no duplicates");
    assert!(messages.iter().all(|m| m.from == "support@example.com"));
    let attempts: i64 = rows::total_attempts(&store).await.unwrap();
    assert_eq!(attempts, ROWS as i64, "one attempt each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_wakes_an_idle_worker() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let config = OutboxConfig { poll_interval: Duration::from_secs(600), ..config(free_port()) };
    let worker = start_worker(&store, config);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    worker.trigger.set(Phase::Draining);
    tokio::time::timeout(Duration::from_secs(2), worker.task).await.expect("an idle worker stops at once").unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_used_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let tls = mailroom::tls::server_config(&Default::default(), dir.path(), "mx.example.com").expect("self-signed certificate");
    let port = free_port();
    let capture = Capture::start(port, Mode::Accept, Some(tls)).await;
    let id = mailroom::store::outbox::enqueue(&store, None, "ack", "", &[CUSTOMER], &acknowledgement("MR-2026-000126-1")).await.unwrap();
    let worker = start_worker(&store, OutboxConfig { tls: TlsMode::Starttls, allow_invalid_certs: true, ..config(port) });

    let sent = wait_for_status(&store, id, "sent", Duration::from_secs(10)).await;
    assert_eq!(sent.attempts, 1, "{sent:?}");
    let messages = capture.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].secure, "sent after STARTTLS");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_required_never_falls_back_to_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let tls = mailroom::tls::server_config(&Default::default(), dir.path(), "mx.example.com").expect("self-signed certificate");
    let plain_port = free_port();
    let plain = Capture::start(plain_port, Mode::Accept, None).await;
    let tls_port = free_port();
    let untrusted = Capture::start(tls_port, Mode::Accept, Some(tls)).await;
    let a = mailroom::store::outbox::enqueue(&store, None, "ack", "", &[CUSTOMER], &acknowledgement("MR-2026-000127-0")).await.unwrap();
    let no_starttls = start_worker(&store, OutboxConfig { tls: TlsMode::Starttls, ..config(plain_port) });
    wait_for(&store, a, "attempted", Duration::from_secs(10), |s| s.last_error.is_some() && s.status != "sending").await;
    no_starttls.stop().await;
    let s = state(&store, a).await;
    assert_eq!(s.status, "pending", "a smarthost without STARTTLS is a temporary failure: {s:?}");
    assert_eq!(s.last_error.as_deref(), Some("connect: smarthost does not offer STARTTLS"));
    assert!(plain.messages().is_empty(), "nothing sent in plain text");

    // A certificate that does not verify (self-signed) is refused unless allowed.
    let bad_cert = start_worker(&store, OutboxConfig { tls: TlsMode::Starttls, ..config(tls_port) });
    wait_for(&store, a, "attempted again", Duration::from_secs(10), |s| s.attempts >= 2 && s.status != "sending").await;
    bad_cert.stop().await;
    let s = state(&store, a).await;
    assert_eq!(s.status, "pending", "{s:?}");
    assert_eq!(s.last_error.as_deref(), Some("connect: TLS handshake failed"));
    assert!(untrusted.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_left_sending_by_a_dead_worker_is_sent_after_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let port = free_port();
    let capture = Capture::start(port, Mode::Accept, None).await;
    let orphan =
        mailroom::store::outbox::enqueue(&store, None, "ack", "", &[CUSTOMER], &acknowledgement("MR-2026-000128-8")).await.unwrap();
    let held = mailroom::store::outbox::enqueue(&store, None, "ack", "", &["other@customer.example"], &acknowledgement("MR-2026-000129-6"))
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // A worker claimed both and died: one lease has run out, the other has not.
    for (id, lease_until) in [(orphan, now - 1), (held, now + 3_600_000)] {
        rows::mark_sending(&store, id, lease_until).await.unwrap();
    }
    let worker = start_worker(&store, config(port));
    let sent = wait_for_status(&store, orphan, "sent", Duration::from_secs(10)).await;
    assert_eq!(sent.attempts, 1, "{sent:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state(&store, held).await.status, "sending", "a row under a live lease is left alone");
    assert_eq!(capture.messages().len(), 1);
    worker.stop().await;
}
