//! Logins under attack, against the real `mailroom serve` over real sockets (issue 8, part 1):
//! guesses sent at the same moment must not outrun the lockout (at most `max_failures` passwords
//! are checked, over HTTP and IMAP alike), and a crowd of logins must neither grow the server's
//! memory beyond its password-check slots nor leave any client without an answer.
//!
//! Clients bind to distinct loopback addresses (127.0.0.x, 127.0.1.x) to act as distinct
//! sources, so the per-user count is tested on its own as well as together with the per-source one.

mod common;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PW: &str = "correct horse battery";
const MAX_FAILURES: usize = 5;

/// Throttling as in production except for short delays (the lockout outlasts every test).
const ACCESS: &str = r#"
[access]
failure_delay = "10ms"
max_failure_delay = "50ms"
max_failures = 5
lockout = "10m"

[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }
"#;

fn start() -> Server {
    Server::start(Opts { extra_toml: ACCESS.into(), ..Opts::default() })
}

// ---------------------------------------------------------------------------------------------
// Clients from a chosen source address
// ---------------------------------------------------------------------------------------------

/// A TCP connection from `source` (any 127.0.0.0/8 address) to `to`.
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        socket.connect(to).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

/// What a login attempt got back.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    LoggedIn,
    Invalid,
    Throttled,
    Busy,
    /// Anything else (a protocol error, a closed connection, a timeout): a test failure.
    Other(String),
}

#[derive(Debug)]
struct HttpReply {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

/// `POST /api/login` (bearer mode) over raw HTTP/1.1 from `source`.
fn http_login(to: SocketAddr, source: Ipv4Addr, user: &str, password: &str) -> io::Result<HttpReply> {
    let mut stream = connect_from(source, to)?;
    let body = serde_json::json!({ "user": user, "password": password, "mode": "bearer" }).to_string();
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = find(&raw, b"\r\n\r\n").ok_or_else(|| io::Error::other(format!("no header block: {}", show_bytes(&raw))))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| io::Error::other(head.clone()))?;
    let retry_after = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse().ok());
    let body = serde_json::from_slice(&raw[split + 4..]).map_err(|e| io::Error::other(format!("{e}: {head}")))?;
    Ok(HttpReply { status, retry_after, body })
}

fn http_answer(reply: io::Result<HttpReply>) -> Answer {
    match reply {
        Ok(r) => match (r.status, r.body["error"].as_str()) {
            (200, _) if r.body["token"].is_string() => Answer::LoggedIn,
            (401, Some("invalid_credentials")) => Answer::Invalid,
            (429, Some("throttled")) if r.retry_after.is_some() => Answer::Throttled,
            (503, Some("busy")) if r.retry_after.is_some() => Answer::Busy,
            _ => Answer::Other(format!("{r:?}")),
        },
        Err(e) => Answer::Other(e.to_string()),
    }
}

/// Over implicit TLS from `source`: the greeting, then `a LOGIN user "password"`; the tagged
/// status line without the tag ("NO [UNAVAILABLE] …").
fn imap_login(to: SocketAddr, source: Ipv4Addr, user: &str, password: &str) -> io::Result<String> {
    imap_command(to, source, &format!("LOGIN {user} \"{password}\""))
}

/// The same with `AUTHENTICATE PLAIN` and the credentials as initial response (SASL-IR).
fn imap_authenticate(to: SocketAddr, source: Ipv4Addr, user: &str, password: &str) -> io::Result<String> {
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    imap_command(to, source, &format!("AUTHENTICATE PLAIN {plain}"))
}

/// Over implicit TLS from `source`: the greeting, then `a COMMAND`; the tagged status line
/// without the tag.
fn imap_command(to: SocketAddr, source: Ipv4Addr, command: &str) -> io::Result<String> {
    let tcp = connect_from(source, to)?;
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap().to_owned();
    let tls = rustls::ClientConnection::new(Arc::new(tls_client_config(None)), name).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    let greeting = read_line(&mut stream)?;
    if !greeting.starts_with("* OK") {
        return Err(io::Error::other(format!("greeting {greeting:?}")));
    }
    stream.write_all(format!("a {command}\r\n").as_bytes())?;
    stream.flush()?;
    loop {
        let line = read_line(&mut stream)?;
        if let Some(status) = line.strip_prefix("a ") {
            let _ = stream.write_all(b"z LOGOUT\r\n");
            return Ok(status.to_string());
        }
    }
}

/// One CRLF-terminated line, byte by byte (the reply is short; nothing is read past it).
fn read_line(stream: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("EOF after {:?}", show_bytes(&line))));
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn imap_answer(status: io::Result<String>) -> Answer {
    match status {
        Ok(s) if s.starts_with("OK ") => Answer::LoggedIn,
        Ok(s) if s == "NO [AUTHENTICATIONFAILED] Invalid credentials" => Answer::Invalid,
        Ok(s) if s == "NO [UNAVAILABLE] Too many failed logins, try again later" => Answer::Throttled,
        Ok(s) if s == "NO [UNAVAILABLE] Server busy, try again later" => Answer::Busy,
        Ok(s) => Answer::Other(s),
        Err(e) => Answer::Other(e.to_string()),
    }
}

/// Runs `attempt(i)` for i in 0..n on n threads released together.
fn at_once<T: Send>(n: usize, attempt: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, attempt) = (&barrier, &attempt);
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        barrier.wait();
                        attempt(i)
                    })
                    .unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn count(answers: &[Answer], which: &Answer) -> usize {
    answers.iter().filter(|a| *a == which).count()
}

// ---------------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------------

fn audit(server: &Server, action: &str) -> Vec<Value> {
    let out = server.cli(&["audit", "list", "--json", "--action", action, "--limit", "100000"]);
    assert!(out.status.success(), "audit list: {}", out.stderr);
    out.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The reasons of `user`'s failed logins, one per attempt.
fn failure_reasons(server: &Server, user: &str) -> Vec<String> {
    audit(server, "login.failed")
        .iter()
        .filter(|e| e["object"] == format!("user:{user}"))
        .map(|e| e["detail"].as_str().unwrap().rsplit_once("reason=").expect("a reason").1.to_string())
        .collect()
}

fn reason_count(reasons: &[String], reason: &str) -> usize {
    reasons.iter().filter(|r| *r == reason).count()
}

fn locked_out_entries(server: &Server, user: &str) -> usize {
    audit(server, "user.locked-out").iter().filter(|e| e["object"] == format!("user:{user}")).count()
}

/// 127.0.0.x, x from 10 (so never 127.0.0.1, the harness's own address).
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

// ---------------------------------------------------------------------------------------------
// Guesses at the same moment
// ---------------------------------------------------------------------------------------------

#[test]
fn http_guesses_at_once_are_checked_at_most_max_failures_times() {
    let server = start();
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("bert", PW, &["support-agent"]);
    let http = server.http_addr();

    // 50 wrong passwords for anna at once, each from its own address: only the per-user count
    // can stop them.
    let answers: Vec<Answer> = at_once(50, |i| http_answer(http_login(http, source(i), "anna", "a wrong guess")));
    assert!(answers.iter().all(|a| matches!(a, Answer::Invalid | Answer::Throttled)), "{answers:?}");
    assert_eq!((count(&answers, &Answer::Invalid), count(&answers, &Answer::Throttled)), (MAX_FAILURES, 50 - MAX_FAILURES));
    let reasons = failure_reasons(&server, "anna");
    assert_eq!(reasons.len(), 50, "one login.failed per attempt: {reasons:?}");
    assert_eq!(reason_count(&reasons, "wrong-password"), MAX_FAILURES, "passwords checked: {reasons:?}");
    assert_eq!(reason_count(&reasons, "user-locked-out"), 50 - MAX_FAILURES, "{reasons:?}");
    assert_eq!(locked_out_entries(&server, "anna"), 1);

    // The right password is refused while the lockout lasts: HTTP 429 with Retry-After, IMAP NO.
    let r = http_login(http, source(100), "anna", PW).unwrap();
    assert_eq!((r.status, r.body["error"].as_str()), (429, Some("throttled")), "{r:?}");
    assert!(r.retry_after.is_some_and(|s| (60..=600).contains(&s)), "Retry-After within the 10 min lockout: {r:?}");
    let status = imap_login(server.imaps_addr(), source(101), "anna", PW).unwrap();
    assert_eq!(status, "NO [UNAVAILABLE] Too many failed logins, try again later");
    let reasons = failure_reasons(&server, "anna");
    assert_eq!(reason_count(&reasons, "user-locked-out"), 50 - MAX_FAILURES + 2);
    assert_eq!(reason_count(&reasons, "wrong-password"), MAX_FAILURES, "the refused right password was never checked");
    assert!(audit(&server, "login").is_empty());

    // 50 wrong passwords for bert at once from one address: the per-source and the per-user
    // counts both allow max_failures checks, and together no more.
    let one = Ipv4Addr::new(127, 0, 0, 7);
    let answers: Vec<Answer> = at_once(50, |_| http_answer(http_login(http, one, "bert", "another wrong guess")));
    assert!(answers.iter().all(|a| matches!(a, Answer::Invalid | Answer::Throttled)), "{answers:?}");
    assert_eq!(count(&answers, &Answer::Invalid), MAX_FAILURES, "{answers:?}");
    let reasons = failure_reasons(&server, "bert");
    assert_eq!(reasons.len(), 50);
    assert_eq!(reason_count(&reasons, "wrong-password"), MAX_FAILURES, "{reasons:?}");
    let r = http_login(http, one, "bert", PW).unwrap();
    assert_eq!(r.status, 429, "{r:?}");

    // Other users and addresses are untouched, and the officer's unlock lifts anna's lockout.
    server.add_user("carl", PW, &["support-agent"]);
    assert_eq!(http_answer(http_login(http, source(102), "carl", PW)), Answer::LoggedIn);
    let out = server.cli(&["user", "unlock", "anna"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(http_answer(http_login(http, source(103), "anna", PW)), Answer::LoggedIn);
    assert_eq!(imap_answer(imap_login(server.imaps_addr(), source(104), "anna", PW)), Answer::LoggedIn);
    let out = server.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", out.stderr);
}

#[test]
fn imap_guesses_at_once_are_checked_at_most_max_failures_times() {
    let server = start();
    server.add_user("dora", PW, &["support-agent"]);
    let imaps = server.imaps_addr();

    let answers: Vec<Answer> = at_once(50, |i| imap_answer(imap_login(imaps, source(i), "dora", "a wrong guess")));
    assert!(answers.iter().all(|a| matches!(a, Answer::Invalid | Answer::Throttled)), "{answers:?}");
    assert_eq!((count(&answers, &Answer::Invalid), count(&answers, &Answer::Throttled)), (MAX_FAILURES, 50 - MAX_FAILURES));
    let reasons = failure_reasons(&server, "dora");
    assert_eq!(reasons.len(), 50, "{reasons:?}");
    assert_eq!(reason_count(&reasons, "wrong-password"), MAX_FAILURES, "passwords checked: {reasons:?}");
    assert_eq!(locked_out_entries(&server, "dora"), 1);

    // The right password is refused while locked: LOGIN, AUTHENTICATE PLAIN and HTTP alike.
    assert_eq!(imap_answer(imap_login(imaps, source(100), "dora", PW)), Answer::Throttled);
    assert_eq!(imap_answer(imap_authenticate(imaps, source(102), "dora", PW)), Answer::Throttled);
    let r = http_login(server.http_addr(), source(101), "dora", PW).unwrap();
    assert_eq!((r.status, r.body["error"].as_str()), (429, Some("throttled")), "{r:?}");
    let reasons = failure_reasons(&server, "dora");
    assert_eq!(
        (reason_count(&reasons, "wrong-password"), reason_count(&reasons, "user-locked-out")),
        (MAX_FAILURES, 50 - MAX_FAILURES + 3)
    );
    let out = server.cli(&["user", "unlock", "dora"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(imap_answer(imap_authenticate(imaps, source(103), "dora", PW)), Answer::LoggedIn);

    // 50 at once from a single address, for a name that does not exist: the source is locked
    // after max_failures (dummy) checks, and the answers look like those for a real name.
    let one = Ipv4Addr::new(127, 0, 0, 8);
    let answers: Vec<Answer> = at_once(50, |_| imap_answer(imap_login(imaps, one, "nobody", "a wrong guess")));
    assert_eq!((count(&answers, &Answer::Invalid), count(&answers, &Answer::Throttled)), (MAX_FAILURES, 50 - MAX_FAILURES), "{answers:?}");
    let reasons = failure_reasons(&server, "nobody");
    assert_eq!((reason_count(&reasons, "unknown-user"), reason_count(&reasons, "source-locked")), (MAX_FAILURES, 50 - MAX_FAILURES));
}

// ---------------------------------------------------------------------------------------------
// A crowd of logins: memory and answers
// ---------------------------------------------------------------------------------------------

/// VmRSS and VmHWM (peak) of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const MIB: u64 = 1024 * 1024;

/// The server's peak over this many concurrent password checks of 19 MiB each stays below
/// `PEAK_BASE + slots × 19 MiB`: 300 MB with the 8 slots a 2-core machine gets.
const PEAK_BASE: u64 = 300_000_000 - 8 * 19 * MIB;

#[test]
fn a_crowd_of_logins_keeps_memory_bounded_and_every_client_gets_an_answer() {
    let server = start();
    let users: Vec<String> = (0..8).map(|i| format!("staff{i}")).collect();
    for user in &users {
        server.add_user(user, PW, &["support-agent"]);
    }
    let log = server.log_text();
    let slots: u64 = log
        .lines()
        .find_map(|l| l.split_once("logins: at most ").and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok()))
        .unwrap_or_else(|| panic!("the server logs its password-check slots:\n{log}"));
    let (rss_before, _) = memory(server.pid());
    let (http, imaps) = (server.http_addr(), server.imaps_addr());

    // 200 clients at once from 200 addresses, half over HTTP and half over IMAP: right and wrong
    // passwords for eight users, and some names that do not exist.
    let started = Instant::now();
    let answers: Vec<(usize, Answer, Duration)> = at_once(200, |i| {
        let source = Ipv4Addr::new(127, 0, 1, 1 + i as u8);
        let user = if i % 10 == 7 { format!("ghost{i}") } else { users[i % users.len()].clone() };
        let password = if i % 4 == 3 { "not the password" } else { PW };
        let t = Instant::now();
        let answer = if i % 2 == 0 {
            http_answer(http_login(http, source, &user, password))
        } else {
            imap_answer(imap_login(imaps, source, &user, password))
        };
        (i, answer, t.elapsed())
    });
    let took = started.elapsed();
    let (rss_after, peak) = memory(server.pid());

    let slowest = answers.iter().map(|(_, _, d)| *d).max().unwrap();
    let others: Vec<_> = answers.iter().filter(|(_, a, _)| matches!(a, Answer::Other(_))).cloned().collect();
    let answers: Vec<Answer> = answers.into_iter().map(|(_, a, _)| a).collect();
    let tally = [Answer::LoggedIn, Answer::Invalid, Answer::Throttled, Answer::Busy].map(|a| count(&answers, &a));
    eprintln!(
        "200 logins in {took:?} (slowest answer {slowest:?}): logged in {}, invalid {}, throttled {}, busy {}; \
         {slots} slots; RSS {} MiB before, {} MiB after, peak {} MiB",
        tally[0],
        tally[1],
        tally[2],
        tally[3],
        rss_before / MIB,
        rss_after / MIB,
        peak / MIB
    );
    assert!(others.is_empty(), "every client gets success, invalid, throttled or busy: {others:?}");
    // Enough passwords were really checked for the bound to mean something.
    let checked = audit(&server, "login").len()
        + audit(&server, "login.failed")
            .iter()
            .filter(|e| e["detail"].as_str().is_some_and(|d| d.ends_with("reason=wrong-password") || d.ends_with("reason=unknown-user")))
            .count();
    assert!(checked >= 40, "only {checked} passwords checked");
    assert!(tally[0] >= 10, "right passwords log in: {tally:?}");
    // Nobody waits much longer than login_queue_timeout (5 s) plus a check and a TLS handshake.
    assert!(slowest < Duration::from_secs(30), "slowest answer after {slowest:?}");

    let bound = PEAK_BASE + slots * 19 * MIB;
    assert!(peak < bound, "peak RSS {} MiB over the bound {} MiB ({slots} slots)", peak / MIB, bound / MIB);
    // The checks' memory is given back once they are over.
    assert!(rss_after < rss_before + 64 * MIB, "RSS {} MiB after, {} MiB before", rss_after / MIB, rss_before / MIB);
}
