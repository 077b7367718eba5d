//! Crash safety: 16 concurrent clients send one message per connection while the server is
//! killed with SIGKILL several times and restarted. At the end:
//! * every number that got a 250 is listed and `message show` returns exactly what was sent;
//! * the numbers of the year are exactly 1..=max (no gaps, no duplicates);
//! * every stored message decrypts and is a complete message some client sent (nothing
//!   half-stored, nothing invented);
//! * the queue counters equal a full count of the cases (`mailroom store counts`).

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const KILLS: usize = 4;

struct Shared {
    addr: RwLock<SocketAddr>,
    stop: AtomicBool,
    /// token -> exact content sent (every attempt, acknowledged or not).
    attempts: Mutex<HashMap<String, Vec<u8>>>,
    /// number -> token, for every 250.
    acked: Mutex<Vec<(String, String)>>,
    failures: AtomicU64,
}

/// The tag the crash test's rule puts on every case.
const CRASH_TAG: &str = "crash-sealed";

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// One message over one connection. Ok(Some(number)) on 250; Ok(None)/Err on anything else.
fn send_one(addr: SocketAddr, token: &str, content: &[u8]) -> Result<String, String> {
    let mut c = Client::try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Duration::from_secs(20));
    let step = |c: &mut Client, cmd: Option<&[u8]>, want: &str| -> Result<String, String> {
        if let Some(b) = cmd {
            c.try_send(b).map_err(|e| format!("write: {e}"))?;
        }
        let r = c.try_reply().map_err(|e| format!("read: {e:?}"))?;
        let line = r.last().to_string();
        if line.starts_with(want) { Ok(line) } else { Err(format!("{token}: unexpected {line:?}")) }
    };
    // The greeting as a line, not a reply: a client still holding the killed server's address
    // may reach a port the restarted server now uses for another protocol (an IMAP "* OK").
    let greeting = c.try_line().map_err(|e| format!("read: {e:?}"))?;
    if !greeting.starts_with("220 ") {
        return Err(format!("{token}: not an SMTP greeting: {greeting:?}"));
    }
    step(&mut c, Some(b"EHLO crash.client.example.org\r\n"), "250 ")?;
    step(&mut c, Some(b"MAIL FROM:<crash@client.example.org>\r\n"), "250 2.1.0")?;
    step(&mut c, Some(b"RCPT TO:<support@example.com>\r\n"), "250 2.1.5")?;
    step(&mut c, Some(b"DATA\r\n"), "354 ")?;
    let line = step(&mut c, Some(&data_wire(content)), "250 2.0.0 Registered ")?;
    let _ = c.try_send(b"QUIT\r\n");
    Ok(registered(&line))
}

fn client_loop(id: usize, shared: Arc<Shared>) {
    let mut i = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let token = format!("crash-token-{id:02}-{i:06}-{}", unique_token(""));
        i += 1;
        let content = format!(
            "From: crash@client.example.org\r\nTo: support@example.com\r\nSubject: {token}\r\n\
             Message-ID: <{token}@client.example.org>\r\n\r\nclient {id} message {i}\r\n{}\r\n",
            "payload ".repeat(64)
        )
        .into_bytes();
        shared.attempts.lock().unwrap().insert(token.clone(), content.clone());
        let addr = *shared.addr.read().unwrap();
        match send_one(addr, &token, &content) {
            Ok(number) => shared.acked.lock().unwrap().push((number, token)),
            Err(_) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Keep the volume at a level the final verification (one CLI call per message) can
        // check within the time budget.
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn token_of(content: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(content);
    text.lines().find_map(|l| l.strip_prefix("Subject: ").map(|t| t.trim().to_string())).filter(|t| t.starts_with("crash-token-"))
}

#[test]
fn sigkill_during_load_loses_nothing_and_leaves_no_gaps() {
    let started = Instant::now();
    // Every message is tagged by a rule, so each registration also seals its case's tags under a
    // new case data key in the same transaction: a kill must never leave one without the other.
    let tagging_rule = format!("[[rules]]\nname = \"tag everything\"\nsize_over = 0\ntags = [\"{CRASH_TAG}\"]\ncontinue = true\n");
    let mut s = Server::start(Opts { max_connections: 1000, extra_toml: tagging_rule, ..Opts::default() });
    let shared = Arc::new(Shared {
        addr: RwLock::new(s.smtp_addr()),
        stop: AtomicBool::new(false),
        attempts: Mutex::new(HashMap::new()),
        acked: Mutex::new(Vec::new()),
        failures: AtomicU64::new(0),
    });
    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let sh = shared.clone();
            std::thread::spawn(move || client_loop(id, sh))
        })
        .collect();

    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    for k in 0..KILLS {
        let wait = 400 + xorshift(&mut seed) % 1100;
        std::thread::sleep(Duration::from_millis(wait));
        let acked_before = shared.acked.lock().unwrap().len();
        s.kill9();
        eprintln!("kill #{} after {wait} ms ({acked_before} acknowledged so far)", k + 1);
        s.restart();
        *shared.addr.write().unwrap() = s.smtp_addr();
    }
    std::thread::sleep(Duration::from_millis(800));
    shared.stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let acked: Vec<(String, String)> = shared.acked.lock().unwrap().clone();
    let attempts = shared.attempts.lock().unwrap().clone();
    eprintln!(
        "load phase {:?}: {} attempts, {} acknowledged, {} failed",
        started.elapsed(),
        attempts.len(),
        acked.len(),
        shared.failures.load(Ordering::Relaxed)
    );
    assert!(acked.len() >= 50, "too little load got through to make the test meaningful: {}", acked.len());

    // One more SIGKILL with nothing running, then verify on a restarted server.
    s.kill9();
    s.restart();

    // Every acknowledged number once, with one token.
    let mut by_number: HashMap<String, String> = HashMap::new();
    for (n, t) in &acked {
        if let Some(prev) = by_number.insert(n.clone(), t.clone()) {
            panic!("number {n} acknowledged twice (tokens {prev} and {t})");
        }
    }

    let list = s.list_messages();
    let mut seqs: BTreeMap<u64, String> = BTreeMap::new();
    let year = parse_number(&list.first().expect("nothing stored").number).year;
    for l in &list {
        let r = parse_number(&l.number);
        assert_eq!(r.year, year, "mixed years in the list: {}", l.number);
        if let Some(prev) = seqs.insert(r.seq, l.number.clone()) {
            panic!("sequence {} listed twice: {prev} and {}", r.seq, l.number);
        }
    }
    let max = *seqs.keys().last().unwrap();
    let missing: Vec<u64> = (1..=max).filter(|q| !seqs.contains_key(q)).collect();
    assert!(missing.is_empty(), "gaps in the numbering 1..={max}: {missing:?}");
    assert_eq!(seqs.len() as u64, max);

    // Every case's sealed tags open and hold the rule's tag.
    for l in &list {
        let cases = l.raw["cases"].as_array().unwrap_or_else(|| panic!("{}: no cases in {}", l.number, l.raw));
        assert!(!cases.is_empty(), "{}: registered without a case", l.number);
        for case in cases {
            assert_eq!(case["tags"], serde_json::json!([CRASH_TAG]), "{}: case tags after kill -9: {case}", l.number);
        }
    }

    // The queue counters committed with their cases: equal to a full count after every kill.
    let counts = s.cli(&["store", "counts"]);
    assert!(counts.status.success(), "queue counters after kill -9: {}{}", counts.stdout_str(), counts.stderr);

    let listed: std::collections::HashSet<&str> = list.iter().map(|l| l.number.as_str()).collect();
    let lost: Vec<&String> = by_number.keys().filter(|n| !listed.contains(n.as_str())).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    // Every stored message decrypts and is exactly one complete message a client sent;
    // acknowledged ones carry the token their client got the number for.
    let numbers: Vec<String> = list.iter().map(|l| l.number.clone()).collect();
    let chunks: Vec<Vec<String>> = numbers.chunks(numbers.len().div_ceil(4)).map(|c| c.to_vec()).collect();
    let s_ref = &s;
    let attempts_ref = &attempts;
    let by_number_ref = &by_number;
    let seen_tokens: Vec<Vec<String>> = std::thread::scope(|scope| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let mut tokens = Vec::new();
                    for n in chunk {
                        let content = s_ref.stored_content(n);
                        let token =
                            token_of(&content).unwrap_or_else(|| panic!("{n}: stored message without a token: {:?}", show_bytes(&content)));
                        let sent = attempts_ref.get(&token).unwrap_or_else(|| panic!("{n}: stored token {token} was never sent"));
                        assert_eq!(show_bytes(&content), show_bytes(sent), "{n}: stored content is not the complete message sent");
                        if let Some(acked_token) = by_number_ref.get(n) {
                            assert_eq!(&token, acked_token, "{n}: acknowledged for another message");
                        }
                        tokens.push(token);
                    }
                    tokens
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all_tokens: Vec<String> = seen_tokens.into_iter().flatten().collect();
    let total = all_tokens.len();
    all_tokens.sort();
    all_tokens.dedup();
    assert_eq!(all_tokens.len(), total, "one message stored under two numbers");
    eprintln!("verified {} stored messages ({} acknowledged) in {:?} total", total, by_number.len(), started.elapsed());
}
