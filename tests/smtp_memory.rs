//! `limits.message_memory`: the global budget for message bytes in flight. A flood of large
//! messages gets 250 (stored) or 452 4.3.1 (try later), never a 5xx or a dropped connection, and
//! the server's memory stays under the budget plus its baseline; a transaction's reservation is
//! given back by the reply, RSET and disconnect, so the next message fits. Growth goes by age:
//! a flood without SIZE= whose clients retry like MTAs is stored in full (no livelock), and while
//! the oldest grower waits for memory a new DATA without SIZE= gets its 452 before the data.

mod common;

use common::*;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// Budget bytes per message byte (`smtp::memory::FACTOR`).
const FACTOR: u64 = 4;
const REFUSED: &str = "452 4.3.1 Insufficient system storage, try again later";

fn server(max_message_size: u64, message_memory: u64) -> Server {
    server_with(max_message_size, message_memory, Opts::default())
}

fn server_with(max_message_size: u64, message_memory: u64, opts: Opts) -> Server {
    Server::start(Opts {
        max_message_size,
        max_connections: 200,
        limits_extra: format!("message_memory = {message_memory}\nmax_connections_per_source = 100"),
        // An open metrics listener: the tests watch mailroom_smtp_memory_waits_total.
        extra_toml: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
        ..opts
    })
}

/// The value of an unlabelled counter on the server's /metrics.
fn metric(s: &Server, name: &str) -> f64 {
    use std::io::{Read, Write};
    let listeners: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.data_dir.join("listeners.json")).unwrap()).unwrap();
    let addr = listeners["metrics"][0].as_str().expect("a metrics listener");
    let mut http = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    http.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).unwrap();
    let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("{name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Waits until some grower has waited for memory `n` times in all.
fn until_waits(s: &Server, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(s, "mailroom_smtp_memory_waits_total") < n {
        assert!(Instant::now() < deadline, "no grower waited for memory");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A message of about `n` bytes: a distinct Message-ID and base64-looking lines that do not
/// compress to nothing (xorshift), so every copy on the way costs its real size.
fn big_message(n: usize, tag: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut m = format!(
        "From: a@client.example.org\r\nTo: support@example.com\r\nSubject: flood {tag}\r\nMessage-ID: <{tag}@client.example.org>\r\n\r\n"
    )
    .into_bytes();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ tag.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    while m.len() < n {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.push(ALPHABET[(x % 64) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Peak and current resident memory of a process, in bytes (Linux /proc).
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in /proc/PID/status"));
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("a number of kB") * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// What one flooding session saw.
#[derive(Debug)]
enum Outcome {
    Stored(String, Vec<u8>),
    /// 452 4.3.1, and where: at MAIL, at the DATA command (before the data) or after the data.
    Refused(&'static str),
}

/// One session sending one message, declaring SIZE= or not.
fn send_one(s: &Server, content: Vec<u8>, tag: &str, declare: bool) -> Outcome {
    let mut c = s.smtp_session();
    c.set_read_timeout(Duration::from_secs(120));
    let mail = if declare {
        format!("MAIL FROM:<a@client.example.org> SIZE={}", content.len())
    } else {
        "MAIL FROM:<a@client.example.org>".into()
    };
    let r = c.cmd(&mail);
    if r.code == 452 {
        assert_eq!(r.line(), REFUSED, "{tag}: MAIL");
        c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
        return Outcome::Refused("mail");
    }
    assert_eq!(r.line(), "250 2.1.0 Sender OK", "{tag}: MAIL");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let r = c.cmd("DATA");
    if r.code == 452 {
        assert_eq!(r.line(), REFUSED, "{tag}: DATA");
        c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
        return Outcome::Refused("data_command");
    }
    assert_eq!(r.line(), "354 End data with <CR><LF>.<CR><LF>", "{tag}: DATA");
    c.send(&data_wire(&content));
    let r = c.reply();
    let outcome = if r.code == 452 {
        assert_eq!(r.line(), REFUSED, "{tag}: end of data");
        Outcome::Refused("data")
    } else {
        Outcome::Stored(registered(r.line()), content)
    };
    // The session is still in step after either answer.
    c.expect("QUIT", &format!("221 2.0.0 {HOST} closing connection"));
    outcome
}

/// `sessions` concurrent sessions each sending a message of 1 to 1.5 MiB.
fn flood(s: &Server, sessions: usize, declare: bool) -> Vec<Outcome> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..sessions)
            .map(|i| {
                let size = (MIB + (i as u64 * MIB / 2) / sessions as u64) as usize;
                let tag = format!("{}-{i}-{}", if declare { "sized" } else { "unsized" }, unique_token("m"));
                scope.spawn(move || send_one(s, big_message(size, &tag), &tag, declare))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a flooding session failed its checks")).collect()
    })
}

#[test]
fn a_flood_of_large_messages_gets_250_or_452_and_memory_stays_bounded() {
    let budget = 16 * MIB;
    let s = server(2 * MIB, budget);
    // Settle, then take the baseline: the peak so far (start-up included) and the resident set.
    std::thread::sleep(Duration::from_millis(500));
    let (baseline_peak, baseline) = rss(s.pid());
    let mut stored = Vec::new();
    for declare in [true, false] {
        let outcomes = flood(&s, 40, declare);
        let refused: Vec<&str> = outcomes.iter().filter_map(|o| if let Outcome::Refused(at) = o { Some(*at) } else { None }).collect();
        let accepted = outcomes.len() - refused.len();
        eprintln!("SIZE= declared: {declare}: {accepted} stored, refused at {refused:?}");
        assert!(accepted >= 1, "SIZE={declare}: some message of the flood gets through");
        assert!(!refused.is_empty(), "SIZE={declare}: 40 messages of 1–1.5 MiB cannot all fit a 16 MiB budget at once");
        if declare {
            assert!(refused.contains(&"mail"), "a declared SIZE= that does not fit is refused at MAIL, before the data: {refused:?}");
            assert!(!refused.contains(&"data"), "a declared SIZE= that fits is never refused after the data: {refused:?}");
        }
        stored.extend(outcomes.into_iter().filter_map(|o| if let Outcome::Stored(n, content) = o { Some((n, content)) } else { None }));
    }
    // Every 250 is stored, with the bytes sent.
    let listed: Vec<String> = s.list_messages().into_iter().map(|m| m.number).collect();
    assert_eq!(listed.len(), stored.len(), "every 250 and nothing else is registered");
    for (number, content) in &stored {
        assert!(listed.contains(number), "{number} was answered 250 but is not listed");
        assert!(s.stored_content(number) == *content, "{number}: the stored message is not the one sent");
    }
    // The budget is back: a message of the largest size allowed is accepted at once.
    let mut c = s.smtp_session();
    c.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={}", 2 * MIB), "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(&data_wire(&big_message((2 * MIB - 1024) as usize, &unique_token("after"))));
    registered(c.reply().line());
    // Memory: what the budget allows on top of the baseline, plus slack for 40 sessions' buffers
    // and the allocator (measured: see the eprintln; without the budget 40 messages of ~1.25 MiB
    // in several copies each would be well over 100 MiB), plus, on SQLite, the writer's page
    // cache (cache_size 64 MiB), which keeps what was written: since growers wait their turn by
    // age, about half of the flood is stored as it runs (~20 messages, ~25 MiB of sealed blobs).
    let (peak, now) = rss(s.pid());
    let written: u64 = stored.iter().map(|(_, content)| content.len() as u64).sum::<u64>() + 2 * MIB;
    let page_cache = if matches!(s.database, Database::Sqlite(_)) { written.min(64 * MIB) } else { 0 };
    let slack = 24 * MIB + page_cache;
    eprintln!(
        "RSS baseline {} MiB (peak {} MiB), peak during the floods {} MiB, now {} MiB; bound {} MiB (page cache {} MiB)",
        baseline / MIB,
        baseline_peak / MIB,
        peak / MIB,
        now / MIB,
        (baseline_peak + budget + slack) / MIB,
        page_cache / MIB
    );
    assert!(peak <= baseline_peak + budget + slack, "peak RSS {peak} over baseline {baseline_peak} + budget {budget} + slack {slack}");
}

/// Sends MAIL with SIZE= until it is accepted (the server notices a disconnect on its own time).
fn mail_until_accepted(c: &mut Client, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.cmd(&format!("MAIL FROM:<a@client.example.org> SIZE={size}"));
        if r.code == 250 {
            return;
        }
        assert_eq!(r.line(), REFUSED);
        assert!(Instant::now() < deadline, "the reservation was never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rset_disconnect_and_the_reply_give_the_reservation_back() {
    // Room for exactly one message of the largest size.
    let max = 2 * MIB;
    let s = server(max, max * FACTOR);
    let mut a = s.smtp_session();
    let mut b = s.smtp_session();
    a.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={max}"), "250 2.1.0 Sender OK");
    b.expect(&format!("MAIL FROM:<b@client.example.org> SIZE={max}"), REFUSED);
    b.expect("MAIL FROM:<b@client.example.org>", REFUSED);
    // A refusal at MAIL is not a protocol error and opens no transaction.
    b.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    a.expect("RSET", "250 2.0.0 OK");
    b.expect(&format!("MAIL FROM:<b@client.example.org> SIZE={max}"), "250 2.1.0 Sender OK");
    a.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={max}"), REFUSED);

    // B disconnects in the middle of its data: the server gives its share back.
    b.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    b.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let wire = data_wire(&big_message(MIB as usize, &unique_token("cut")));
    b.send(&wire[..wire.len() / 2]);
    drop(b);
    mail_until_accepted(&mut a, max);
    a.expect("RSET", "250 2.0.0 OK");

    // BDAT: a chunk kept in a transaction that is then reset gives its share back too.
    let mut c = s.smtp_session();
    c.expect("MAIL FROM:<c@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let chunk = big_message((MIB + MIB / 2) as usize, &unique_token("chunk"));
    c.send(format!("BDAT {}\r\n", chunk.len()).as_bytes());
    c.send(&chunk);
    c.expect_line(&format!("250 2.0.0 {} octets received", chunk.len()));
    a.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={max}"), REFUSED);
    c.expect("RSET", "250 2.0.0 OK");
    a.expect(&format!("MAIL FROM:<a@client.example.org> SIZE={max}"), "250 2.1.0 Sender OK");
    a.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let content = big_message((max - 4096) as usize, &unique_token("whole"));
    a.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    a.send(&data_wire(&content));
    let n = registered(a.reply().line());
    // The 250 gave it back: the next transaction of the largest size fits at once.
    c.expect(&format!("MAIL FROM:<c@client.example.org> SIZE={max}"), "250 2.1.0 Sender OK");
    c.expect("RSET", "250 2.0.0 OK");
    assert_eq!(s.stored_content(&n), content);
    assert_eq!(s.list_messages().len(), 1, "nothing of the cut, reset or refused messages is stored");
}

#[test]
fn data_bdat_and_lmtp_over_the_budget_get_452_after_the_data_and_can_retry() {
    let max = 2 * MIB;
    // Each of these is the oldest grower: it waits for memory up to data_timeout, then fails.
    let s = server_with(max, max * FACTOR, Opts { data_timeout: "2s".into(), ..Opts::default() });
    // H holds 1.5 MiB of the 2: what others may still receive is half a MiB.
    let mut h = s.smtp_session();
    h.expect(&format!("MAIL FROM:<h@client.example.org> SIZE={}", MIB + MIB / 2), "250 2.1.0 Sender OK");

    // DATA without SIZE=: accepted at MAIL, refused after the final dot, the session in step.
    let mut c = s.smtp_session();
    let content = big_message(MIB as usize, &unique_token("data"));
    c.expect("MAIL FROM:<c@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(&data_wire(&content));
    c.expect_line(REFUSED);

    // BDAT: the chunk that does not fit is read and refused; so is the last one.
    c.expect("MAIL FROM:<c@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.send(format!("BDAT {} LAST\r\n", content.len()).as_bytes());
    c.send(&content);
    c.expect_line(REFUSED);
    c.expect("MAIL FROM:<c@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.send(format!("BDAT {}\r\n", content.len()).as_bytes());
    c.send(&content);
    c.expect_line(REFUSED);
    c.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");

    // LMTP: one 452 per accepted recipient.
    let mut l = s.lmtp_session();
    l.expect("MAIL FROM:<l@client.example.org>", "250 2.1.0 Sender OK");
    l.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    l.expect("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK");
    l.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    l.send(&data_wire(&content));
    l.expect_line(REFUSED);
    l.expect_line(REFUSED);
    assert!(s.list_messages().is_empty(), "nothing refused is stored");

    // H lets go; the same message sent again is stored.
    h.expect("RSET", "250 2.0.0 OK");
    c.expect("MAIL FROM:<c@client.example.org>", "250 2.1.0 Sender OK");
    c.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    c.send(&data_wire(&content));
    let n = registered(c.reply().line());
    assert_eq!(s.stored_content(&n), content);
}

/// One client like an MTA: sends its message without SIZE= until it gets a 250, pausing a little
/// after each 452 (every attempt on a new connection).
fn send_until_stored(s: &Server, size: usize, tag: &str, deadline: Instant) -> (String, Vec<u8>, Vec<&'static str>) {
    let content = big_message(size, tag);
    let mut refused = Vec::new();
    let mut pause = (tag.bytes().map(u64::from).sum::<u64>() % 7) * 10;
    loop {
        match send_one(s, content.clone(), tag, false) {
            Outcome::Stored(number, content) => return (number, content, refused),
            Outcome::Refused(at) => refused.push(at),
        }
        assert!(Instant::now() < deadline, "{tag}: not stored in time after {} attempts: {refused:?}", refused.len() + 1);
        pause = (pause + 30) % 100;
        std::thread::sleep(Duration::from_millis(20 + pause));
    }
}

#[test]
fn a_flood_without_size_whose_clients_retry_is_stored_in_full() {
    // 60 sessions of 1.5–2 MiB (105 MiB in all) into an 8 MiB budget: room for one message of
    // the largest size at a time. Before growth by age this livelocked: every session grew
    // together, failed its next step, sent the rest for nothing and retried; main's code stored
    // 4 of the 60 in 120 s (56 clients gave up), this stores all in 45–120 s on a 2-core
    // machine loaded by other builds (see the eprintln). The bound is generous for that.
    let sessions = 60;
    let budget = 8 * MIB;
    let s = server(2 * MIB, budget);
    std::thread::sleep(Duration::from_millis(500));
    let (baseline_peak, _) = rss(s.pid());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..sessions)
            .map(|i| {
                let size = (MIB + MIB / 2 + (i as u64 * (MIB / 2 - 4096)) / sessions as u64) as usize;
                let tag = format!("retry-{i}-{}", unique_token("m"));
                let s = &s;
                scope.spawn(move || send_until_stored(s, size, &tag, deadline))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a flooding client failed its checks")).collect()
    });
    let elapsed = started.elapsed();
    let refused: Vec<&str> = results.iter().flat_map(|(_, _, r)| r.iter().copied()).collect();
    let at = |place: &str| refused.iter().filter(|r| **r == place).count();
    eprintln!(
        "{sessions} messages stored in {:.1} s after {} refusals (at MAIL {}, at DATA {}, after the data {})",
        elapsed.as_secs_f64(),
        refused.len(),
        at("mail"),
        at("data_command"),
        at("data")
    );
    // Every message is stored once, byte for byte, and nothing else.
    let listed: Vec<String> = s.list_messages().into_iter().map(|m| m.number).collect();
    assert_eq!(listed.len(), sessions, "every message once, nothing refused");
    for (number, content, _) in &results {
        assert!(listed.contains(number), "{number} was answered 250 but is not listed");
        assert!(s.stored_content(number) == *content, "{number}: the stored message is not the one sent");
    }
    assert!(metric(&s, "mailroom_smtp_memory_waits_total") >= 1.0, "the flood filled the budget: the oldest grower waited");
    // As in the flood above, plus, on SQLite, the writer's page cache (cache_size 64 MiB), which
    // keeps what was written: here every message is stored, ~40 MiB of sealed blobs.
    let (peak, _) = rss(s.pid());
    let stored: u64 = results.iter().map(|(_, content, _)| content.len() as u64).sum();
    let page_cache = if matches!(s.database, Database::Sqlite(_)) { stored.min(64 * MIB) } else { 0 };
    let slack = 24 * MIB + page_cache;
    eprintln!(
        "RSS baseline peak {} MiB, peak {} MiB, bound {} MiB (page cache {} MiB)",
        baseline_peak / MIB,
        peak / MIB,
        (baseline_peak + budget + slack) / MIB,
        page_cache / MIB
    );
    assert!(peak <= baseline_peak + budget + slack, "peak RSS {peak} over baseline {baseline_peak} + budget {budget} + slack {slack}");
}

#[test]
fn while_the_oldest_grower_waits_a_new_data_without_size_gets_452_before_its_data() {
    let max = 2 * MIB;
    let s = server(max, max * FACTOR);
    // H holds 1.5 MiB of the 2.
    let mut h = s.smtp_session();
    h.expect(&format!("MAIL FROM:<h@client.example.org> SIZE={}", MIB + MIB / 2), "250 2.1.0 Sender OK");
    // A (SMTP) and L (LMTP) open transactions without SIZE= while there is room.
    let mut a = s.smtp_session();
    a.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    a.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    let mut l = s.lmtp_session();
    l.expect("MAIL FROM:<l@client.example.org>", "250 2.1.0 Sender OK");
    l.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    // G sends 1 MiB without SIZE=: it grows into the last half MiB, then, the oldest grower,
    // waits (the server stops reading it) instead of failing.
    let content = big_message(MIB as usize, &unique_token("waiter"));
    let mut g = s.smtp_session();
    g.set_read_timeout(Duration::from_secs(60));
    g.expect("MAIL FROM:<g@client.example.org>", "250 2.1.0 Sender OK");
    g.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    g.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    let wire = data_wire(&content);
    let sender = std::thread::spawn(move || {
        g.send(&wire);
        g
    });
    until_waits(&s, 1.0);
    // Refused before any data is sent, the session in step; the transaction is over.
    a.expect("DATA", REFUSED);
    a.expect("RCPT TO:<support@example.com>", "503 5.5.1 Send MAIL first");
    l.expect("DATA", REFUSED);
    // A new MAIL, with or without SIZE=, is refused at once too: the memory goes to G.
    a.expect("MAIL FROM:<a@client.example.org>", REFUSED);
    a.expect("MAIL FROM:<a@client.example.org> SIZE=1000", REFUSED);
    // H lets go: G gets the memory it waited for and is stored.
    h.expect("RSET", "250 2.0.0 OK");
    let mut g = sender.join().expect("G's data was sent");
    let n = registered(g.reply().line());
    assert_eq!(s.stored_content(&n), content);
    // The same transactions again are accepted as usual.
    let small = big_message(64 * 1024, &unique_token("after"));
    a.expect("MAIL FROM:<a@client.example.org>", "250 2.1.0 Sender OK");
    a.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    a.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    a.send(&data_wire(&small));
    let m = registered(a.reply().line());
    assert_eq!(s.stored_content(&m), small);
    l.expect("MAIL FROM:<l@client.example.org>", "250 2.1.0 Sender OK");
    l.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    l.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    l.send(&data_wire(&big_message(64 * 1024, &unique_token("lmtp"))));
    let r = l.reply();
    assert!(r.line().starts_with("250 2.0.0 <support@example.com> Registered "), "{}", r.line());
    assert_eq!(s.list_messages().len(), 3, "nothing refused is stored");
    // G waited again after each small share given back (A's and L's) that it took and outgrew.
    assert!(metric(&s, "mailroom_smtp_memory_waits_total") >= 1.0);
}

#[test]
fn a_waiter_that_disconnects_passes_the_privilege_on() {
    let max = 2 * MIB;
    // A waiter does not read, yet it notices its client hanging up while it waits (it watches the
    // socket), not only when the wait ends after data_timeout: two minutes here, longer than the
    // test gives D below.
    let s = server_with(max, max * FACTOR, Opts { data_timeout: "120s".into(), ..Opts::default() });
    let mut h = s.smtp_session();
    h.expect(&format!("MAIL FROM:<h@client.example.org> SIZE={}", MIB + MIB / 2), "250 2.1.0 Sender OK");
    // G, the oldest grower, waits for memory; then its client goes away in the middle of the data.
    let mut g = s.smtp_session();
    g.expect("MAIL FROM:<g@client.example.org>", "250 2.1.0 Sender OK");
    g.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    g.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    // G's client sends a little more than the half MiB it can hold, then gives up: what it sent
    // beyond that waits in the server's socket buffer, and its FIN behind it. (A client that still
    // had unsent data behind a closed window could not be noticed before the wait ends: its FIN
    // cannot overtake that data.) A little: the server stops reading up to a 16 KiB chunk before
    // the half MiB, and the rest must fit the receive window a fresh loopback socket advertises
    // (about 64 KiB; with 48 KiB more, CI once had the FIN stuck behind data the window refused).
    let wire = data_wire(&big_message(MIB as usize, &unique_token("gone")));
    let mut writer = g.plain_clone();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let _ = writer.write_all(&wire[..(MIB / 2) as usize + 8 * 1024]);
    });
    until_waits(&s, 1.0);
    g.plain_clone().shutdown(std::net::Shutdown::Both).unwrap();
    drop(g);
    sender.join().unwrap();
    // D, without SIZE=, is accepted once G's session has ended and given everything back (while
    // G waits every MAIL gets 452).
    let content = big_message(MIB as usize, &unique_token("next"));
    let mut d = s.smtp_session();
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.cmd("MAIL FROM:<d@client.example.org>").code != 250 {
        assert!(Instant::now() < deadline, "the waiter that went away did not give its share back while it waited");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.expect("RCPT TO:<support@example.com>", "250 2.1.5 Recipient OK");
    d.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
    // D is the oldest grower now (had G's ticket leaked, D would fail at once): with H still
    // holding 1.5 MiB its 1 MiB does not fit, so it waits, and is stored once H lets go.
    d.set_read_timeout(Duration::from_secs(60));
    let wire = data_wire(&content);
    let sender = std::thread::spawn(move || {
        d.send(&wire);
        d
    });
    until_waits(&s, 2.0);
    h.expect("RSET", "250 2.0.0 OK");
    let mut d = sender.join().expect("D's data was sent");
    let n = registered(d.reply().line());
    assert_eq!(s.stored_content(&n), content);
    assert_eq!(s.list_messages().len(), 1, "nothing of G is stored");
}
