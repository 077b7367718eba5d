//! Slow and idle connections must not exhaust the listeners (issue #8, part 3): over real
//! sockets against the real binary, with attackers on distinct loopback source addresses
//! (127.0.0.x) and an honest client on another one that must still be served within 1 s.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const PW: &str = "correct horse battery";
const STAFF: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }
"#;

/// The tests here time an honest client against a flood on a 2-core machine: one at a time, so
/// that another test's flood is not what they measure.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A raw connection opened by an attacker, when it was opened, and everything read from it.
struct Conn {
    source: IpAddr,
    stream: TcpStream,
    opened: Instant,
    seen: Vec<u8>,
    closed: Option<Instant>,
}

impl Conn {
    /// Reads what there is until `deadline` (None: only what has arrived); notes the close.
    fn read_until(&mut self, deadline: Option<Instant>, stop_at_newline: bool) {
        let mut chunk = [0u8; 4096];
        while self.closed.is_none() {
            if stop_at_newline && self.seen.ends_with(b"\n") {
                break;
            }
            match deadline {
                None => self.stream.set_nonblocking(true).unwrap(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.stream.set_nonblocking(false).unwrap();
                    self.stream.set_read_timeout(Some(left)).unwrap();
                }
            }
            // Byte by byte for a line, so nothing after it is taken early.
            let want = if stop_at_newline { 1 } else { chunk.len() };
            match self.stream.read(&mut chunk[..want]) {
                Ok(0) => self.closed = Some(Instant::now()),
                Ok(n) => self.seen.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if deadline.is_none() {
                        break;
                    }
                }
                Err(_) => self.closed = Some(Instant::now()),
            }
        }
        self.stream.set_nonblocking(false).unwrap();
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Waits up to `limit` for the server to close; everything read, and when it closed.
    fn until_closed(&mut self, limit: Duration) -> (String, Option<Instant>) {
        self.read_until(Some(Instant::now() + limit), false);
        (self.text(), self.closed)
    }

    /// The next line (the greeting, or a refusal).
    fn line(&mut self, limit: Duration) -> String {
        let from = self.seen.len();
        self.read_until(Some(Instant::now() + limit), true);
        String::from_utf8_lossy(&self.seen[from..]).trim_end().to_string()
    }

    /// What has arrived so far, without waiting.
    fn available(&mut self) -> String {
        self.read_until(None, false);
        self.text()
    }
}

/// Opens `count` connections from each source, all through one runtime (fast enough for a
/// thousand).
fn open_many(addr: SocketAddr, sources: &[(IpAddr, usize)]) -> Vec<Conn> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut conns = Vec::new();
    for &(source, count) in sources {
        for _ in 0..count {
            let stream = rt
                .block_on(async {
                    let socket = tokio::net::TcpSocket::new_v4()?;
                    socket.bind(SocketAddr::new(source, 0))?;
                    socket.connect(addr).await
                })
                .unwrap_or_else(|e| panic!("connect {addr} from {source}: {e}"));
            let stream = stream.into_std().unwrap();
            stream.set_nonblocking(false).unwrap();
            conns.push(Conn { source, stream, opened: Instant::now(), seen: Vec::new(), closed: None });
        }
    }
    conns
}

/// Room for the attacking side's sockets in this test process.
fn raise_open_files(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
        assert!(limit.rlim_cur >= wanted, "need {wanted} open files, the hard limit is {}", limit.rlim_max);
    }
}

/// Writes one byte to every connection every `every`, cycling through `text`, until stopped.
fn trickle(conns: &[Conn], text: &'static [u8], every: Duration) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers: Vec<TcpStream> = conns.iter().map(|c| c.stream.try_clone().unwrap()).collect();
    for w in &writers {
        w.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    }
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                for w in &mut writers {
                    let _ = w.write_all(&text[i % text.len()..i % text.len() + 1]);
                }
                i += 1;
                std::thread::sleep(every);
            }
        })
    };
    (stop, handle)
}

// ---------------------------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------------------------

#[test]
fn smtp_slow_senders_cannot_lock_out_an_honest_sender() {
    let _serial = one_at_a_time();
    // 50 slots, 5 of them reserved for addresses without a connection, 10 per address; a command
    // line must be complete within 4 s however its bytes trickle in.
    let s = Server::start(Opts {
        max_connections: 50,
        command_timeout: "4s".into(),
        limits_extra: "max_connections_per_source = 10\nreserved_percent = 10\n".into(),
        ..Opts::default()
    });
    let addr = s.smtp_addr();
    // The attack: 20 connections from 127.0.0.1 and 10 from each of 127.0.0.2 … 127.0.0.5.
    let mut conns = open_many(addr, &[(ip(1), 20), (ip(2), 10), (ip(3), 10), (ip(4), 10), (ip(5), 10)]);
    let mut held = Vec::new();
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    for mut c in conns.drain(..) {
        let first = c.line(Duration::from_secs(5));
        if first == format!("220 {HOST} ESMTP mailroom") {
            held.push(c);
        } else {
            assert_eq!(first, format!("421 4.3.2 {HOST} Too many connections from your address, try again later"), "from {}", c.source);
            assert!(c.until_closed(Duration::from_secs(3)).1.is_some(), "closed after the 421");
            *refused.entry(c.source.to_string()).or_default() += 1;
        }
    }
    let per_source = |a: IpAddr| held.iter().filter(|c| c.source == a).count();
    // The per-source cap: 10 of 127.0.0.1's 20; the reserve: the attack stops at 45 of 50 slots,
    // so 127.0.0.5 gets only 5 of its 10 in (the last five slots are for new addresses).
    assert_eq!([1, 2, 3, 4, 5].map(|n| per_source(ip(n))), [10, 10, 10, 10, 5], "refused: {refused:?}");
    assert_eq!(refused, [("127.0.0.1".to_string(), 10), ("127.0.0.5".to_string(), 5)].into_iter().collect());

    // Every held connection trickles "EHLO …" one byte a second (the old idle timer, reset by
    // each byte, never fired).
    let (stop, writer) = trickle(&held, b"EHLO slow.attacker.example\r\n", Duration::from_secs(1));

    // An honest sender from another address: banner and EHLO within 1 s, and its message is
    // registered, while every attacking connection is still held.
    let started = Instant::now();
    let mut honest = Client::connect_from(ip(9), addr);
    honest.expect_line(&format!("220 {HOST} ESMTP mailroom"));
    honest.ehlo("honest.example.org");
    let greeted = started.elapsed();
    let number = honest.send_message("customer@example.org", &["support@example.com"], &simple_message("honest", "hello"));
    let registered_after = started.elapsed();
    eprintln!("honest sender during the attack: 220 + EHLO in {greeted:?}, registered {number} after {registered_after:?}");
    assert!(greeted < Duration::from_secs(1), "220 and EHLO took {greeted:?}");
    assert!(registered_after < Duration::from_secs(2), "registration took {registered_after:?}");
    honest.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    let mut again = Client::connect_from(ip(1), addr);
    again.expect_line(&format!("421 4.3.2 {HOST} Too many connections from your address, try again later"));

    // The deadline: every trickling connection is closed with 421 4.4.2 about 4 s after its
    // banner, although it kept sending.
    for c in &mut held {
        let (rest, closed) = c.until_closed(Duration::from_secs(10));
        let closed = closed.unwrap_or_else(|| panic!("a trickling connection from {} was never closed: {rest:?}", c.source));
        assert_eq!(rest, format!("220 {HOST} ESMTP mailroom\r\n421 4.4.2 {HOST} Timeout, closing connection\r\n"));
        let held_for = closed - c.opened;
        assert!(held_for >= Duration::from_millis(3500) && held_for < Duration::from_secs(7), "held for {held_for:?}");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    // The slots are free again, and nothing but the honest message was registered.
    let mut later = Client::connect_from(ip(1), addr);
    later.expect_line(&format!("220 {HOST} ESMTP mailroom"));
    let numbers: Vec<String> = s.list_messages().into_iter().map(|l| l.number).collect();
    assert_eq!(numbers, vec![number]);
}

#[test]
fn lmtp_from_one_trusted_address_is_not_capped_but_smtp_is() {
    let _serial = one_at_a_time();
    let s = Server::start(Opts { limits_extra: "max_connections_per_source = 2\n".into(), ..Opts::default() });
    let lmtp: Vec<Client> = (0..6)
        .map(|_| {
            let mut c = Client::connect_from(ip(1), s.lmtp_addr());
            c.expect_line(&format!("220 {HOST} LMTP mailroom"));
            c
        })
        .collect();
    let mut smtp: Vec<Client> = (0..3).map(|_| Client::connect_from(ip(1), s.smtp_addr())).collect();
    smtp[0].expect_line(&format!("220 {HOST} ESMTP mailroom"));
    smtp[1].expect_line(&format!("220 {HOST} ESMTP mailroom"));
    smtp[2].expect_line(&format!("421 4.3.2 {HOST} Too many connections from your address, try again later"));
    smtp[2].expect_closed();
    drop(lmtp);

    // Configured, LMTP is capped too.
    let s = Server::start(Opts { lmtp_extra: "max_connections_per_source = 2\n".into(), ..Opts::default() });
    let mut lmtp: Vec<Client> = (0..3).map(|_| Client::connect_from(ip(1), s.lmtp_addr())).collect();
    lmtp[0].expect_line(&format!("220 {HOST} LMTP mailroom"));
    lmtp[1].expect_line(&format!("220 {HOST} LMTP mailroom"));
    lmtp[2].expect_line(&format!("421 4.3.2 {HOST} Too many connections from your address, try again later"));
}

/// The client side of a transaction up to the point where data is expected.
fn open_transaction(addr: SocketAddr, source: IpAddr) -> Client {
    let mut c = Client::connect_from(source, addr);
    c.expect_line(&format!("220 {HOST} ESMTP mailroom"));
    c.ehlo("slow.example.org");
    c.expect("MAIL FROM:<slow@example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c
}

#[test]
fn smtp_data_below_the_minimum_rate_is_cut_and_nothing_is_registered() {
    let _serial = one_at_a_time();
    // Data must average 1,000 bytes/s after a 2 s grace; no pause may exceed 2 s either.
    let s = Server::start(Opts { data_timeout: "2s".into(), limits_extra: "min_data_rate = 1000\n".into(), ..Opts::default() });
    let addr = s.smtp_addr();
    let cut = format!("421 4.4.2 {HOST} Data rate too low, closing connection");

    // DATA: a header, then a byte every 100 ms (10 bytes/s): no pause is long, the rate is low.
    let mut c = open_transaction(addr, ip(2));
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"Subject: slow\r\n\r\n");
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut stream) = (stop.clone(), c.plain_clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && stream.write_all(b"x").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    c.set_read_timeout(Duration::from_secs(10));
    c.expect_line(&cut);
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(1800) && after < Duration::from_secs(5), "cut after {after:?}");
    c.expect_closed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    // BDAT: the same for a chunk.
    let mut c = open_transaction(addr, ip(3));
    c.send(b"BDAT 5000 LAST\r\nSubject: slow bdat\r\n\r\n");
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut stream) = (stop.clone(), c.plain_clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && stream.write_all(b"y").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    c.set_read_timeout(Duration::from_secs(10));
    c.expect_line(&cut);
    assert!(started.elapsed() < Duration::from_secs(5), "cut after {:?}", started.elapsed());
    c.expect_closed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(s.list_messages().is_empty(), "a message cut for its rate must not be registered");

    // A sender at an ordinary speed is not affected: 300 KB in one go, and a small message
    // whose data pauses 1.5 s once (under data_timeout, and the grace covers the rate).
    let mut c = open_transaction(addr, ip(4));
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let big = simple_message("fast", &"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(4700));
    c.send(&data_wire(&big));
    let fast = registered(c.reply().line());
    let mut c = open_transaction(addr, ip(4));
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"Subject: pause\r\n\r\nfirst half\r\n");
    std::thread::sleep(Duration::from_millis(1500));
    c.send(b"second half\r\n.\r\n");
    let paused = registered(c.reply().line());
    let numbers: Vec<String> = s.list_messages().into_iter().map(|l| l.number).collect();
    assert_eq!(numbers, vec![fast, paused]);
}

#[test]
fn smtp_session_time_limit_ends_even_a_busy_connection() {
    let _serial = one_at_a_time();
    // Each command arrives well within command_timeout, but the connection may last 4 s in all.
    let s = Server::start(Opts { command_timeout: "2s".into(), limits_extra: "max_session_time = \"4s\"\n".into(), ..Opts::default() });
    let started = Instant::now();
    let mut c = Client::connect_from(ip(2), s.smtp_addr());
    c.expect_line(&format!("220 {HOST} ESMTP mailroom"));
    let mut noops = 0;
    let last = loop {
        std::thread::sleep(Duration::from_millis(700));
        c.send(b"NOOP\r\n");
        let line = c.reply().lines.join("\n");
        if line != "250 2.0.0 OK" {
            break line;
        }
        noops += 1;
    };
    let after = started.elapsed();
    assert_eq!(last, format!("421 4.4.2 {HOST} Session time limit reached, closing connection"));
    c.expect_closed();
    assert!(noops >= 4, "each NOOP line arrived in time and was answered ({noops})");
    assert!(after >= Duration::from_millis(3800) && after < Duration::from_secs(6), "ended after {after:?}");
}

// ---------------------------------------------------------------------------------------------
// IMAP
// ---------------------------------------------------------------------------------------------

/// Sends a tagged IMAP command and reads up to its tagged answer.
fn imap(c: &mut Client, tag: &str, command: &str) -> Vec<String> {
    c.send(format!("{tag} {command}\r\n").as_bytes());
    let mut lines = Vec::new();
    loop {
        let line = c.try_line().unwrap_or_else(|e| panic!("{tag} {command}: {e:?} after {lines:?}"));
        let done = line.starts_with(&format!("{tag} "));
        lines.push(line);
        if done {
            return lines;
        }
    }
}

#[test]
fn imap_prelogin_exhaustion_does_not_lock_staff_out() {
    let _serial = one_at_a_time();
    raise_open_files(4096);
    // Defaults: imap.max_connections 1000, max_connections_per_source 50, max_unauthenticated 100.
    let s = Server::start(Opts { extra_toml: STAFF.into(), imap_extra: "prelogin_timeout = \"5s\"\n".into(), ..Opts::default() });
    s.add_user("anna", PW, &["support-agent"]);
    let addr = s.imap_addr();
    let greeting = "* OK [CAPABILITY IMAP4rev1";

    // The per-source cap: 55 from one address, 50 admitted, 5 told why not.
    let mut capped = Vec::new();
    let mut conns: Vec<Conn> = open_many(addr, &[(ip(2), 55)])
        .into_iter()
        .filter_map(|mut c| {
            let first = c.line(Duration::from_secs(5));
            if first.starts_with(greeting) {
                return Some(c);
            }
            capped.push(first);
            assert!(c.until_closed(Duration::from_secs(3)).1.is_some());
            None
        })
        .collect();
    assert_eq!(conns.len(), 50);
    assert_eq!(capped, vec!["* BYE Too many connections from your address, try again later"; 5]);

    // The flood: 950 more from 19 other addresses, none of which ever logs in.
    let sources: Vec<(IpAddr, usize)> = (3..=21).map(|n| (ip(n), 50)).collect();
    conns.extend(open_many(addr, &sources));
    assert_eq!(conns.len(), 1000);
    // The server has dealt with the burst (each got its greeting or its BYE); 100 are held.
    for c in &mut conns[50..] {
        let first = c.line(Duration::from_secs(10));
        assert!(first.starts_with(greeting) || first.starts_with("* BYE"), "{first:?}");
    }
    let flood_done = Instant::now();

    // Staff still get in: TLS, LOGIN and SELECT within 1 s, from yet another address.
    let started = Instant::now();
    let mut staff = Client::connect_from(ip(100), s.imaps_addr());
    staff.handshake(None);
    let hello = staff.try_line().unwrap();
    assert!(hello.starts_with(greeting), "{hello}");
    let greeted = started.elapsed();
    let login = imap(&mut staff, "a1", &format!("LOGIN anna \"{PW}\""));
    assert!(login.last().unwrap().starts_with("a1 OK"), "{login:?}");
    let logged_in = started.elapsed();
    let select = imap(&mut staff, "a2", "SELECT support");
    assert!(select.last().unwrap().starts_with("a2 OK"), "{select:?}");
    let served = started.elapsed();
    eprintln!(
        "staff during the flood: TLS + greeting {greeted:?}, LOGIN (argon2) done {logged_in:?}, SELECT done {served:?} \
         ({:?} after the flood was open)",
        flood_done.elapsed()
    );
    assert!(served < Duration::from_secs(1), "login and SELECT took {served:?}");

    // While the staff session is served, the pre-login pool is full of the flood.
    std::thread::sleep(Duration::from_millis(300));
    let waiting = conns.iter_mut().map(|c| c.available()).filter(|seen| !seen.contains("BYE")).count();
    let closed_silently = conns.iter().filter(|c| c.closed.is_some() && !c.text().contains("BYE")).count();
    assert_eq!(closed_silently, 0, "every refused or evicted connection is told so");
    assert!((90..=100).contains(&waiting), "{waiting} flood connections are held pre-login");

    // Every flood connection ends within the pre-login timeout: refused, evicted by a newer
    // one, or logged out when its 5 s were up.
    let mut why = std::collections::BTreeMap::<String, usize>::new();
    for c in &mut conns {
        let (rest, closed) = c.until_closed(Duration::from_secs(10));
        let closed = closed.unwrap_or_else(|| panic!("a connection from {} was never closed: {rest:?}", c.source));
        assert!(closed - c.opened < Duration::from_millis(6500), "held {:?}", closed - c.opened);
        let bye = rest.lines().find(|l| l.starts_with("* BYE")).unwrap_or_else(|| panic!("closed without BYE: {rest:?}"));
        *why.entry(bye.to_string()).or_default() += 1;
    }
    eprintln!("how the flood ended: {why:#?}");
    let autologout = why.get("* BYE Autologout; not logged in in time").copied().unwrap_or(0);
    assert!(autologout >= waiting - 1, "{why:?}");
    let known = [
        "* BYE Autologout; not logged in in time",
        "* BYE Too many connections not logged in; this one waited longest",
        "* BYE Too many connections from your address, try again later",
        "* BYE Too many connections, try again later",
    ];
    assert!(why.keys().all(|k| known.contains(&k.as_str())), "{why:?}");
    assert_eq!(why.values().sum::<usize>(), 1000, "each flood connection got one BYE");

    // The logged-in session left the pre-login pool: it outlives the pre-login timeout.
    let noop = imap(&mut staff, "a3", "NOOP");
    assert!(noop.last().unwrap().starts_with("a3 OK"), "{noop:?}");
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

fn curl_from(source: IpAddr, url: &str) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--interface"])
        .arg(source.to_string())
        .arg(url)
        .output()
        .expect("curl");
    (String::from_utf8_lossy(&out.stdout).into_owned(), started.elapsed())
}

#[test]
fn http_idle_connections_cannot_exhaust_the_api() {
    let _serial = one_at_a_time();
    raise_open_files(2048);
    let s = Server::start(Opts {
        http_extra: "max_connections = 200\nmax_connections_per_source = 50\nidle_timeout = \"3s\"\n".into(),
        ..Opts::default()
    });
    let addr = s.http_addr();
    let url = format!("{}/api/openapi.json", s.http_url());

    // Idle connections that never send a byte: 60 from one address, 50 from two more, 50 of
    // which from a fourth: the cap stops each address at 50, the reserve stops them all at
    // 180 of 200 slots.
    let mut conns = open_many(addr, &[(ip(2), 60), (ip(3), 50), (ip(4), 50), (ip(5), 50)]);
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    let mut held = Vec::new();
    for mut c in conns.drain(..) {
        let seen = c.available();
        if seen.is_empty() {
            held.push(c);
            continue;
        }
        assert!(seen.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{seen}");
        assert!(seen.contains(r#"{"error":"unavailable","reason":"too many connections from your address; try again later"}"#), "{seen}");
        *refused.entry(c.source.to_string()).or_default() += 1;
    }
    assert_eq!(held.len(), 180);
    assert_eq!(refused, [("127.0.0.2".to_string(), 10), ("127.0.0.5".to_string(), 20)].into_iter().collect());

    // An ordinary request from another address is served at once.
    let (status, took) = curl_from(ip(9), &url);
    assert_eq!(status, "200");
    assert!(took < Duration::from_secs(1), "served in {took:?}");

    // Keep-alive after a response, and headers trickled a byte at a time, are bounded too.
    let mut keep = open_many(addr, &[(ip(10), 1)]).pop().unwrap();
    keep.stream.write_all(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answered = Instant::now();
    let mut slow = open_many(addr, &[(ip(11), 1)]).pop().unwrap();
    let (stop, writer) = trickle(
        std::slice::from_ref(&slow),
        b"GET /api/openapi.json HTTP/1.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        Duration::from_millis(300),
    );

    // Every idle connection is closed about idle_timeout after it was opened.
    for c in &mut held {
        let (rest, closed) = c.until_closed(Duration::from_secs(10));
        let closed = closed.unwrap_or_else(|| panic!("an idle connection from {} was never closed", c.source));
        let held_for = closed - c.opened;
        assert!(held_for >= Duration::from_millis(2500) && held_for < Duration::from_secs(6), "held for {held_for:?}: {rest:?}");
    }
    let (rest, closed) = keep.until_closed(Duration::from_secs(10));
    assert!(rest.starts_with("HTTP/1.1 200 OK"), "{}", &rest[..rest.len().min(200)]);
    let idle_for = closed.expect("the idle keep-alive connection is closed") - answered;
    assert!(idle_for < Duration::from_secs(6), "kept alive idle for {idle_for:?}");
    let (_, closed) = slow.until_closed(Duration::from_secs(10));
    let slow_for = closed.expect("a trickled request head is cut off") - slow.opened;
    assert!(slow_for < Duration::from_secs(6), "trickled headers held the connection for {slow_for:?}");
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    // All slots free again: the address that was capped is served.
    let (status, _) = curl_from(ip(2), &url);
    assert_eq!(status, "200");
}
