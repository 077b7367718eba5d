//! The metrics listener (`[metrics]`): `/metrics` counts real traffic (SMTP, LMTP, a refused
//! recipient, a failed staff login) by exactly the right amounts, its bearer token is enforced,
//! no address or subject ever appears in it, the Grafana dashboard queries only metrics it
//! exports; `/healthz` is alive and `/readyz` is ready, or 503 with the reason when the database
//! cap or the free-disk minimum is reached. Scraped with curl, as Prometheus would.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;

const TOKEN: &str = "scrape-token-0123456789abcdef";

/// A server with a metrics listener on a port of its own; `extra` goes into `[metrics]`.
fn start(extra: &str, opts: Opts) -> (Server, SocketAddr) {
    let opts = Opts { extra_toml: format!("{}\n[metrics]\nlisten = \"127.0.0.1:0\"\n{extra}\n", opts.extra_toml), ..opts };
    let s = Server::start(opts);
    let text = std::fs::read_to_string(s.data_dir.join("listeners.json")).unwrap();
    let listeners: serde_json::Value = serde_json::from_str(&text).unwrap();
    let addr = listeners["metrics"][0].as_str().unwrap_or_else(|| panic!("no metrics listener in {text}")).parse().unwrap();
    assert_ne!(addr, s.http_addr(), "the metrics listener is not the staff HTTP port");
    (s, addr)
}

/// GET `path` with curl: (status, body).
fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("http://{addr}{path}")).output().expect("run curl");
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics", &[&format!("Authorization: Bearer {TOKEN}")]);
    assert_eq!(status, 200, "{body}");
    body
}

/// The sum of the samples of `name` whose labels include `labels` (None: no such sample).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let have: BTreeSet<String> = series_labels.split(',').filter(|l| !l.is_empty()).map(str::to_string).collect();
        if labels.iter().all(|(k, v)| have.contains(&format!("{k}=\"{v}\""))) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    found
}

fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// Every metric name a panel of the dashboard queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/mailroom.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 10, "the dashboard has its panels: {exprs:?}");
    let name = regex::Regex::new(r"\bmailroom_[a-z_]+").unwrap();
    exprs.iter().flat_map(|e| name.find_iter(e).map(|m| m.as_str().to_string()).collect::<Vec<_>>()).collect()
}

#[test]
fn metrics_count_traffic_exactly_and_show_no_customer_data() {
    let (s, metrics) = start(&format!("bearer_token = \"{TOKEN}\"\nmin_free_disk = 1"), Opts::default());

    // The token: nothing without it, nor with another one or another scheme.
    for headers in [vec![], vec!["Authorization: Bearer wrong-token-0123456789abc"], vec![&*format!("Authorization: Basic {TOKEN}")]] {
        let (status, body) = get(metrics, "/metrics", &headers);
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert!(!body.contains("mailroom_"), "{body}");
    }
    let before = scrape(metrics);
    assert!(before.contains("# TYPE mailroom_logins_total counter"), "{before}");
    assert_eq!(sample(&before, "mailroom_login_lockouts_total", &[("scope", "user")]), Some(0.0), "fixed series start at 0");

    // SMTP: two messages (one with a refused recipient too), then QUIT.
    let subjects = [unique_token("Invoice-"), unique_token("Refund-")];
    let messages: Vec<Vec<u8>> = subjects.iter().map(|subject| simple_message(subject, "Dear support, see attached.")).collect();
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<customer@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("RCPT TO:<nobody-here@example.com>", "550 5.1.1 Mailbox unknown");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(&data_wire(&messages[0]));
    registered(c.reply().line());
    c.send_message("customer@client.example.org", &["help@example.com"], &messages[1]);
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    // LMTP: one message to two queues' recipients (two replies, one transaction).
    let lmtp_message = simple_message(&unique_token("Order-"), "Two departments, one message.");
    let mut l = s.lmtp_session();
    l.expect("MAIL FROM:<buyer@client.example.org>", "250 2.1.0 Sender OK");
    l.expect("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK");
    l.expect("RCPT TO:<complaints@example.com>", "250 2.1.5 Recipient OK");
    l.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    l.send(&data_wire(&lmtp_message));
    for _ in 0..2 {
        assert_eq!(l.reply().code, 250);
    }
    // One wrong staff login over the API.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "--data"])
        .arg(r#"{"user":"olga-the-agent","password":"not her password"}"#)
        .arg(format!("{}/api/login", s.http_url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

    // An IMAP client connected (and greeted) while the scrape happens.
    let mut imap = std::net::TcpStream::connect(s.imap_addr()).unwrap();
    let mut greeting = [0u8; 4];
    std::io::Read::read_exact(&mut imap, &mut greeting).unwrap();
    assert_eq!(&greeting, b"* OK");
    // The SMTP session's end is counted as it closes: wait for it.
    let mut after = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            after = scrape(metrics);
            sample(&after, "mailroom_smtp_sessions_total", &[("protocol", "smtp"), ("code", "221")]).is_some()
        }),
        "the QUIT session is counted: {after}"
    );
    // The store's counts are read at most once a second, however often scrapers come.
    std::thread::sleep(Duration::from_millis(1100));
    let after = scrape(metrics);
    let moved = |name: &str, labels: &[(&str, &str)]| count(&after, name, labels) - count(&before, name, labels);
    let smtp = [("protocol", "smtp")];
    let lmtp = [("protocol", "lmtp")];
    assert_eq!(moved("mailroom_smtp_sessions_total", &[("protocol", "smtp"), ("code", "221")]), 1.0);
    assert_eq!(moved("mailroom_smtp_transactions_total", &[("protocol", "smtp"), ("code", "250"), ("result", "registered")]), 2.0);
    assert_eq!(moved("mailroom_smtp_transactions_total", &smtp), 2.0, "no other SMTP transaction");
    assert_eq!(moved("mailroom_smtp_transactions_total", &[("protocol", "lmtp"), ("code", "250"), ("result", "registered")]), 1.0);
    assert_eq!(moved("mailroom_smtp_recipients_total", &[("protocol", "smtp"), ("code", "250")]), 2.0);
    assert_eq!(moved("mailroom_smtp_recipients_total", &[("protocol", "smtp"), ("code", "550")]), 1.0);
    assert_eq!(moved("mailroom_smtp_recipients_total", &[("protocol", "lmtp"), ("code", "250")]), 2.0);
    assert_eq!(moved("mailroom_smtp_received_bytes_total", &smtp), (messages[0].len() + messages[1].len()) as f64);
    assert_eq!(moved("mailroom_smtp_received_bytes_total", &lmtp), lmtp_message.len() as f64);
    assert_eq!(moved("mailroom_smtp_registration_duration_seconds_count", &smtp), 2.0);
    assert_eq!(moved("mailroom_smtp_registration_duration_seconds_bucket", &[("protocol", "smtp"), ("le", "+Inf")]), 2.0);
    assert!(moved("mailroom_smtp_registration_duration_seconds_sum", &smtp) > 0.0);
    assert_eq!(moved("mailroom_store_commit_messages_sum", &[]), 3.0, "three messages committed");
    let commits = moved("mailroom_store_commit_messages_count", &[]);
    assert!((1.0..=3.0).contains(&commits), "{commits} commits with messages");
    assert!(moved("mailroom_store_commit_duration_seconds_count", &[]) >= commits);
    assert_eq!(moved("mailroom_store_commits_total", &[("result", "failed")]), 0.0);
    assert_eq!(moved("mailroom_logins_total", &[("via", "http"), ("result", "invalid")]), 1.0);
    assert_eq!(moved("mailroom_logins_total", &[("result", "success")]), 0.0);
    assert_eq!(moved("mailroom_connections_total", &[("listener", "smtp"), ("result", "admitted")]), 1.0);
    assert_eq!(moved("mailroom_connections_total", &[("listener", "lmtp"), ("result", "admitted")]), 1.0);
    // Gauges: the queues' depth (every configured queue and status has a series), no overdue
    // case, no outbox (none configured), the LMTP session still open, the store's size.
    let gauge = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels).unwrap_or_else(|| panic!("{name} {labels:?}: {after}"));
    assert_eq!(gauge("mailroom_queue_cases", &[("queue", "support"), ("status", "new")]), 2.0);
    assert_eq!(gauge("mailroom_queue_cases", &[("queue", "sales"), ("status", "new")]), 1.0);
    assert_eq!(gauge("mailroom_queue_cases", &[("queue", "complaints"), ("status", "new")]), 1.0);
    assert_eq!(gauge("mailroom_queue_cases", &[("queue", "support"), ("status", "waiting")]), 0.0);
    assert_eq!(gauge("mailroom_queue_overdue_cases", &[("queue", "support")]), 0.0);
    assert_eq!(gauge("mailroom_outbox_messages", &[("status", "pending")]), 0.0);
    assert_eq!(gauge("mailroom_connections_open", &[("service", "smtp")]), 1.0, "the LMTP session");
    assert_eq!(gauge("mailroom_connections_open", &[("service", "imap")]), 1.0, "the IMAP client");
    assert_eq!(moved("mailroom_connections_total", &[("listener", "imap"), ("result", "admitted")]), 1.0);
    assert_eq!(moved("mailroom_connections_total", &[("listener", "http"), ("result", "admitted")]), 1.0, "the login");
    assert!(gauge("mailroom_store_size_bytes", &[]) > 0.0);
    assert!(gauge("mailroom_disk_free_bytes", &[]) > 0.0);
    l.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));

    // Nothing of the mail or of the login in it: no address, domain, subject or user name.
    for secret in ["example.org", "example.com", "customer", "buyer", "nobody-here", "olga", "Dear", &subjects[0], &subjects[1]] {
        assert!(!after.contains(secret), "{secret:?} appears in /metrics:\n{after}");
    }
    // Every metric the dashboard queries is exported (histograms as their _bucket/_sum/_count).
    for name in dashboard_metrics() {
        assert!(after.lines().any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))), "{name}: {after}");
    }
    let (status, body) = get(metrics, "/readyz", &[]);
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready", "{body}");
    let names: Vec<&str> = ready["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["writer", "store", "disk"], "{body}");
    assert_eq!(get(metrics, "/healthz", &[]), (200, "ok".to_string()));
    assert_eq!(get(metrics, "/nothing", &[]).0, 404);
    // The staff port does not serve them.
    assert_eq!(get(s.http_addr(), "/metrics", &[]).0, 404);
}

#[test]
fn readyz_is_not_ready_below_the_free_disk_minimum() {
    // More than any disk has: 4 EiB.
    let (mut s, metrics) = start("min_free_disk = 4611686018427387904", Opts::default());
    let (status, body) = get(metrics, "/readyz", &[]);
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "not ready", "{body}");
    assert!(ready["reason"].as_str().unwrap().contains("below metrics.min_free_disk (4611686018427387904 bytes)"), "{body}");
    let disk = ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "disk").unwrap();
    assert_eq!(disk["ok"], false, "{body}");
    let store = ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "store").unwrap();
    assert_eq!(store["ok"], true, "the store itself is fine: {body}");
    // Alive all the same; without a token /metrics is open.
    assert_eq!(get(metrics, "/healthz", &[]), (200, "ok".to_string()));
    assert_eq!(get(metrics, "/metrics", &[]).0, 200);
    // A scraper's keep-alive connection does not hold up the stop; then the port is closed.
    let _idle = std::net::TcpStream::connect(metrics).unwrap();
    assert!(s.terminate_and_wait().success());
    assert!(std::net::TcpStream::connect(metrics).is_err(), "the metrics listener is closed");
}

fn filler(i: usize) -> Vec<u8> {
    // Incompressible-ish content so the database really grows (as tests/storage_failure.rs).
    let mut body = String::new();
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ i as u64;
    for _ in 0..250 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push_str(&format!("{x:016x}{:016x}{:016x}{:016x}\r\n", x.rotate_left(7), x.rotate_left(19), x.rotate_left(41)));
    }
    simple_message(&format!("filler {i}"), &body)
}

#[test]
fn readyz_is_not_ready_once_the_database_cap_is_reached() {
    if postgres_run() {
        eprintln!("SQLite only, skipped under PostgreSQL: storage.max_database_size is SQLite's cap");
        return;
    }
    // Room for a few 17 KB messages; the largest accepted is 32 KiB.
    let opts = Opts { max_database_size: Some(393_216), max_message_size: 32_768, ..Opts::default() };
    let (s, metrics) = start("", opts);
    let (status, body) = get(metrics, "/readyz", &[]);
    assert_eq!(status, 200, "an empty database is ready: {body}");
    let mut c = s.smtp_session();
    let mut stored = 0;
    loop {
        assert!(stored < 100, "a 384 KiB database cap never produced 451");
        c.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
        c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
        c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
        c.send(&data_wire(&filler(stored)));
        let r = c.reply();
        if r.code == 451 {
            break;
        }
        registered(r.line());
        stored += 1;
    }
    assert!(stored >= 1, "at least one message fitted");
    let (status, body) = get(metrics, "/readyz", &[]);
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reason = ready["reason"].as_str().unwrap();
    assert!(reason.starts_with("storage.max_database_size reached") && reason.contains("of 393216 bytes in use"), "{body}");
    let size = ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "database_size").unwrap();
    assert_eq!(size["ok"], false, "{body}");
    assert_eq!(get(metrics, "/healthz", &[]), (200, "ok".to_string()), "alive, just full");
    let text = get(metrics, "/metrics", &[]).1;
    assert_eq!(sample(&text, "mailroom_store_max_bytes", &[]), Some(393_216.0), "{text}");
    assert_eq!(sample(&text, "mailroom_smtp_transactions_total", &[("code", "451"), ("result", "tempfail")]), Some(1.0), "{text}");
    assert!(sample(&text, "mailroom_store_commits_total", &[("result", "failed")]).unwrap() >= 1.0, "{text}");
}

#[test]
fn outbox_gauges_count_failed_and_pending_mail() {
    // Acknowledgements to a smarthost that refuses connections: with one attempt allowed, each
    // is given up (failed) at once.
    let outbox = "[outbox]\nsmarthost = \"127.0.0.1:9\"\ntls = \"none\"\nmax_attempts = 1\npoll_interval = \"50ms\"\n";
    let (s, metrics) = start("", Opts { extra_toml: outbox.into(), ..Opts::default() });
    let mut c = s.smtp_session();
    for sender in ["ann@client.example.org", "bob@client.example.org"] {
        let message = String::from_utf8(simple_message(&unique_token("Question-"), "Please call me back.")).unwrap();
        let message = message.replace("customer@client.example.org", sender).into_bytes();
        assert!(c.send_message(sender, &["support@example.com"], &message).starts_with("MR-"));
    }
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            std::thread::sleep(Duration::from_millis(1100));
            text = get(metrics, "/metrics", &[]).1;
            sample(&text, "mailroom_outbox_messages", &[("status", "failed")]) == Some(2.0)
        }),
        "both acknowledgements given up: {text}"
    );
    assert_eq!(sample(&text, "mailroom_outbox_messages", &[("status", "pending")]), Some(0.0), "{text}");
    assert_eq!(sample(&text, "mailroom_outbox_messages", &[("status", "sending")]), Some(0.0), "{text}");
    assert!(!text.contains("example.org"), "{text}");
}

#[test]
fn failed_logins_and_a_lockout_are_counted_by_result_and_scope() {
    let access = "[access]\nmax_failures = 2\nfailure_delay = \"10ms\"\nmax_failure_delay = \"20ms\"\nlockout = \"60s\"\n";
    let (s, metrics) = start("", Opts { extra_toml: access.into(), ..Opts::default() });
    let login = || {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "--data"])
            .arg(r#"{"user":"mallory-guess","password":"guess"}"#)
            .arg(format!("{}/api/login", s.http_url()))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    // Two wrong guesses from one address lock that address out; the third is refused unchecked.
    assert_eq!([login(), login(), login()], ["401", "401", "429"]);
    let text = get(metrics, "/metrics", &[]).1;
    let logins = |result| sample(&text, "mailroom_logins_total", &[("via", "http"), ("result", result)]);
    assert_eq!((logins("invalid"), logins("throttled"), logins("success")), (Some(2.0), Some(1.0), Some(0.0)), "{text}");
    assert_eq!(sample(&text, "mailroom_login_lockouts_total", &[("scope", "source")]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "mailroom_login_lockouts_total", &[("scope", "user")]), Some(0.0), "no such user to lock: {text}");
    assert!(!text.contains("mallory"), "{text}");
}

#[test]
fn the_memory_budget_is_a_gauge_and_its_refusals_are_counted() {
    let max: u64 = 1 << 20;
    let opts = Opts { max_message_size: max, limits_extra: format!("message_memory = {}", 4 * max), ..Opts::default() };
    let (s, metrics) = start("", opts);
    let before = scrape(metrics);
    assert_eq!(sample(&before, "mailroom_smtp_memory_in_flight_bytes", &[]), Some(0.0), "{before}");
    for at in ["mail", "data_command", "data", "bdat"] {
        assert_eq!(sample(&before, "mailroom_smtp_memory_refusals_total", &[("protocol", "smtp"), ("at", at)]), Some(0.0), "{before}");
    }
    assert_eq!(sample(&before, "mailroom_smtp_memory_waits_total", &[]), Some(0.0), "{before}");
    // A holds the whole budget (a message of the largest size counts 4 times); B is turned away.
    let mut a = s.smtp_session();
    a.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={max}"), "250 2.1.0 Sender OK");
    let mut b = s.smtp_session();
    b.expect("MAIL FROM:<b@client.example.org>", "452 4.3.1 Insufficient system storage, try again later");
    let during = scrape(metrics);
    assert_eq!(sample(&during, "mailroom_smtp_memory_in_flight_bytes", &[]), Some((4 * max) as f64), "{during}");
    assert_eq!(count(&during, "mailroom_smtp_memory_refusals_total", &[("protocol", "smtp"), ("at", "mail")]), 1.0, "{during}");
    a.expect("RSET", "250 2.0.0 OK");
    let after = scrape(metrics);
    assert_eq!(sample(&after, "mailroom_smtp_memory_in_flight_bytes", &[]), Some(0.0), "RSET gives it back: {after}");

    // A holds half; C, without SIZE=, grows into the rest and, the oldest grower, waits for
    // memory instead of failing; meanwhile B's DATA without SIZE= gets 452 before its data.
    a.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={}", max / 2), "250 2.1.0 Sender OK");
    b.expect("MAIL FROM:<b@client.example.org>", "250 2.1.0 Sender OK");
    b.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let mut c = s.smtp_session();
    c.set_read_timeout(Duration::from_secs(60));
    c.expect("MAIL FROM:<c@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let mut content = b"Subject: waits\r\n\r\n".to_vec();
    while content.len() < (max * 3 / 4) as usize {
        content.extend_from_slice(format!("{:076}\r\n", content.len()).as_bytes());
    }
    let wire = data_wire(&content);
    let sender = std::thread::spawn(move || {
        c.send(&wire);
        c
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&scrape(metrics), "mailroom_smtp_memory_waits_total", &[]) < 1.0 {
        assert!(std::time::Instant::now() < deadline, "C never waited");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.expect("DATA", "452 4.3.1 Insufficient system storage, try again later");
    let waiting = scrape(metrics);
    assert_eq!(count(&waiting, "mailroom_smtp_memory_refusals_total", &[("protocol", "smtp"), ("at", "data_command")]), 1.0, "{waiting}");
    assert_eq!(count(&waiting, "mailroom_smtp_memory_refusals_total", &[("at", "data")]), 0.0, "the waiter did not fail: {waiting}");
    a.expect("RSET", "250 2.0.0 OK");
    let mut c = sender.join().expect("C's data was sent");
    registered(c.reply().line());
    let done = scrape(metrics);
    assert!(count(&done, "mailroom_smtp_memory_waits_total", &[]) >= 1.0, "{done}");
    assert_eq!(sample(&done, "mailroom_smtp_memory_in_flight_bytes", &[]), Some(0.0), "the 250 gives it back: {done}");
}
