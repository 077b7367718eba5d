//! The ingest benchmark's load generator: like Postfix's smtp-source (one message per
//! connection, N sessions in parallel), but with realistic mail (see corpus.rs) and with RFC 2920
//! pipelining of MAIL, RCPT and DATA when the server offers it. The same generator drives
//! smtp-sink and mailroom in one run, so their rates compare.
//!
//!     loadgen -s SESSIONS -m MESSAGES [--mix 10k|full|x] [-l SIZE] [--seed N] HOST:PORT
//!
//! One blocking thread per session: a thread costs less CPU per message than an async runtime at
//! these connection counts, and the generator shares the cores with the server it measures.
//! Exits 1 at the first reply it does not expect, as smtp-source does. Prints one JSON object:
//! messages, bytes, wall seconds, the client-side end-of-data→250 latencies, and the messages and
//! bytes per kind.

mod corpus;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corpus::Corpus;

struct Args {
    sessions: usize,
    messages: u64,
    mix: String,
    size: usize,
    seed: u64,
    helo: String,
    from: String,
    to: String,
    target: String,
    no_pipelining: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen -s SESSIONS -m MESSAGES [--mix 10k|full|x] [-l SIZE (x only)] [--seed N] \
         [-M HELO] [-f FROM] [-t TO] [--no-pipelining] HOST:PORT"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        sessions: 1,
        messages: 1,
        mix: "10k".into(),
        size: 10240,
        seed: 1,
        helo: "client.example.org".into(),
        from: "sender@example.org".into(),
        to: "support@example.com".into(),
        target: String::new(),
        no_pipelining: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "-s" => a.sessions = value().parse().unwrap_or_else(|_| usage()),
            "-m" => a.messages = value().parse().unwrap_or_else(|_| usage()),
            "-l" => a.size = value().parse().unwrap_or_else(|_| usage()),
            "--mix" => a.mix = value(),
            "--seed" => a.seed = value().parse().unwrap_or_else(|_| usage()),
            "-M" => a.helo = value(),
            "-f" => a.from = value(),
            "-t" => a.to = value(),
            "--no-pipelining" => a.no_pipelining = true,
            "-h" | "--help" => usage(),
            s if !s.starts_with('-') && a.target.is_empty() => a.target = s.to_string(),
            _ => usage(),
        }
    }
    if a.target.is_empty() || a.sessions == 0 {
        usage()
    }
    a
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    bytes: u64,
    per_kind: Vec<(u64, u64)>,
}

struct Run {
    args: Args,
    corpus: Corpus,
    next: AtomicU64,
    failed: AtomicBool,
    /// Makes Message-IDs unique across runs against the same server (a retry is not new mail).
    nonce: String,
}

fn main() {
    let args = parse_args();
    let kinds = corpus::mix(&args.mix, args.size).unwrap_or_else(|e| {
        eprintln!("loadgen: {e}");
        std::process::exit(2)
    });
    let corpus = Corpus::new(kinds, args.seed);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let nonce = format!("{:x}.{:x}", now.as_millis(), std::process::id());
    let run = Arc::new(Run { args, corpus, next: AtomicU64::new(0), failed: AtomicBool::new(false), nonce });
    let start = Instant::now();
    let threads: Vec<_> = (0..run.args.sessions.min(run.args.messages as usize).max(1))
        .map(|_| {
            let run = run.clone();
            std::thread::spawn(move || worker(&run))
        })
        .collect();
    let mut total = Tally { per_kind: vec![(0, 0); run.corpus.kinds()], ..Tally::default() };
    let mut error = None;
    for t in threads {
        match t.join().expect("worker thread") {
            Ok(tally) => {
                total.latencies_us.extend(tally.latencies_us);
                total.bytes += tally.bytes;
                for (k, (n, b)) in tally.per_kind.into_iter().enumerate() {
                    total.per_kind[k].0 += n;
                    total.per_kind[k].1 += b;
                }
            }
            Err(e) => error = error.or(Some(e)),
        }
    }
    let wall = start.elapsed().as_secs_f64();
    if let Some(e) = error {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let v = &total.latencies_us;
        if v.is_empty() {
            return 0.0;
        }
        let k = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        f64::from(v[k]) / 1000.0
    };
    let kinds: Vec<serde_json::Value> = total
        .per_kind
        .iter()
        .enumerate()
        .map(|(k, (n, b))| serde_json::json!({"kind": run.corpus.kind(k).name(), "messages": n, "bytes": b}))
        .collect();
    let report = serde_json::json!({
        "messages": total.latencies_us.len(),
        "bytes": total.bytes,
        "wall": wall,
        "pipelining": !run.args.no_pipelining,
        "mix": run.args.mix,
        "latency_ms": {"p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "max": pct(100.0)},
        "kinds": kinds,
    });
    println!("{report}");
}

fn worker(run: &Run) -> Result<Tally, String> {
    let mut tally = Tally { per_kind: vec![(0, 0); run.corpus.kinds()], ..Tally::default() };
    let mut message = Vec::new();
    loop {
        if run.failed.load(Ordering::Relaxed) {
            return Ok(tally);
        }
        let i = run.next.fetch_add(1, Ordering::Relaxed);
        if i >= run.args.messages {
            return Ok(tally);
        }
        let (kind, body) = run.corpus.pick(i);
        message.clear();
        let date = chrono_like_date();
        write!(
            message,
            "From: <{from}>\r\nTo: <{to}>\r\nDate: {date}\r\nMessage-ID: <{nonce}.{i}@{helo}>\r\nX-Bench: {x}\r\n{headers}",
            from = run.args.from,
            to = run.args.to,
            nonce = run.nonce,
            helo = run.args.helo,
            x = "X".repeat(60),
            headers = body.headers
        )
        .expect("write to Vec");
        message.extend_from_slice(&body.bytes);
        message.extend_from_slice(b".\r\n");
        match session(run, &message) {
            Ok(latency) => {
                tally.latencies_us.push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
                tally.bytes += message.len() as u64;
                tally.per_kind[kind].0 += 1;
                tally.per_kind[kind].1 += message.len() as u64;
            }
            Err(e) => {
                run.failed.store(true, Ordering::Relaxed);
                return Err(format!("message {i}: {e}"));
            }
        }
    }
}

/// RFC 5322 date of now, UTC (no dependency for one header).
fn chrono_like_date() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// One connection, one message. Returns the end-of-data→250 time as this client saw it.
fn session(run: &Run, message: &[u8]) -> Result<Duration, String> {
    let a = &run.args;
    let stream = TcpStream::connect(&a.target).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(4096, stream);
    let mut line = String::new();
    expect(&mut reader, &mut line, "220", "banner")?;
    send(&mut writer, format!("EHLO {}\r\n", a.helo).as_bytes())?;
    let ehlo = expect(&mut reader, &mut line, "250", "EHLO")?;
    let pipelining = !a.no_pipelining && ehlo.iter().any(|l| l.eq_ignore_ascii_case("PIPELINING"));
    let size =
        if ehlo.iter().any(|l| l.to_ascii_uppercase().starts_with("SIZE")) { format!(" SIZE={}", message.len()) } else { String::new() };
    let mail = format!("MAIL FROM:<{}>{size}\r\n", a.from);
    let rcpt = format!("RCPT TO:<{}>\r\n", a.to);
    if pipelining {
        send(&mut writer, format!("{mail}{rcpt}DATA\r\n").as_bytes())?;
        expect(&mut reader, &mut line, "250", "MAIL")?;
        expect(&mut reader, &mut line, "250", "RCPT")?;
        expect(&mut reader, &mut line, "354", "DATA")?;
    } else {
        for (command, code, what) in [(mail.as_str(), "250", "MAIL"), (rcpt.as_str(), "250", "RCPT"), ("DATA\r\n", "354", "DATA")] {
            send(&mut writer, command.as_bytes())?;
            expect(&mut reader, &mut line, code, what)?;
        }
    }
    send(&mut writer, message)?;
    let sent = Instant::now();
    expect(&mut reader, &mut line, "250", "end of data")?;
    let latency = sent.elapsed();
    send(&mut writer, b"QUIT\r\n")?;
    expect(&mut reader, &mut line, "221", "QUIT")?;
    Ok(latency)
}

fn send(w: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    w.write_all(bytes).map_err(|e| format!("write: {e}"))
}

/// Reads one (possibly multi-line) reply; returns the text of its lines after the code.
fn expect(r: &mut BufReader<TcpStream>, line: &mut String, code: &str, what: &str) -> Result<Vec<String>, String> {
    let mut texts = Vec::new();
    loop {
        line.clear();
        let n = r.read_line(line).map_err(|e| format!("{what}: read: {e}"))?;
        if n == 0 {
            return Err(format!("{what}: connection closed"));
        }
        let l = line.trim_end();
        if !l.starts_with(code) {
            return Err(format!("{what}: expected {code}, got {:?}", l.chars().take(200).collect::<String>()));
        }
        texts.push(l.get(4..).unwrap_or("").to_string());
        if l.as_bytes().get(3) != Some(&b'-') {
            return Ok(texts);
        }
    }
}
