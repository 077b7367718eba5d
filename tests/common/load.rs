//! [`Load`]: SMTP client threads that keep sending to a set of nodes while a test kills things,
//! one message per connection, each with a unique token in its Subject. Every attempt's exact
//! bytes are kept, every 250 is recorded with its number, node and instant, and every other
//! outcome (a refused or cut connection, a 4xx/5xx reply) too: such a message is never counted.
//! Each client sends to the nodes in turn, so when one is down its next message goes elsewhere. [`Load::verify_stored`] then checks the
//! store against the record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::{Client, Server, data_wire, parse_number, registered, show_bytes, unique_token};

/// A 250 a client saw.
#[derive(Clone, Debug)]
pub struct Ack {
    pub number: String,
    pub token: String,
    /// Index of the node in [`Load::start`]'s targets.
    pub node: usize,
    pub at: Instant,
}

/// An attempt that got no 250: what the client saw instead.
#[derive(Clone, Debug)]
pub struct Failure {
    pub node: usize,
    pub at: Instant,
    /// The reply line (`451 4.3.0 …`), or `io: …` for a refused, cut or silent connection.
    pub what: String,
}

impl Failure {
    /// A reply telling the sender to give up (a bounce): never acceptable for a failure of ours.
    pub fn is_permanent(&self) -> bool {
        self.what.starts_with('5')
    }
}

/// The Subject prefix of every message a [`Load`] sends.
pub const LOAD_TOKEN_PREFIX: &str = "load-token-";

pub struct Load {
    targets: RwLock<Vec<SocketAddr>>,
    stop: AtomicBool,
    /// token -> exact content sent (every attempt, acknowledged or not).
    attempts: Mutex<HashMap<String, Vec<u8>>>,
    acked: Mutex<Vec<Ack>>,
    failures: Mutex<Vec<Failure>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Load {
    /// `clients` threads, client `i` starting on node `i % targets.len()` and taking the nodes in
    /// turn, each pausing `pace`
    /// after every message (to keep the final per-message verification affordable).
    pub fn start(targets: Vec<SocketAddr>, clients: usize, pace: Duration) -> Arc<Load> {
        let load = Arc::new(Load {
            targets: RwLock::new(targets),
            stop: AtomicBool::new(false),
            attempts: Mutex::new(HashMap::new()),
            acked: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        for id in 0..clients {
            let me = load.clone();
            let thread = std::thread::spawn(move || me.client_loop(id, pace));
            load.threads.lock().unwrap().push(thread);
        }
        load
    }

    /// Points node `node`'s clients at its new address (after a restart).
    pub fn retarget(&self, node: usize, addr: SocketAddr) {
        self.targets.write().unwrap()[node] = addr;
    }

    /// Stops the clients (each finishes its message in flight) and waits for them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap());
        for thread in threads {
            thread.join().expect("load client thread");
        }
    }

    pub fn acked(&self) -> Vec<Ack> {
        self.acked.lock().unwrap().clone()
    }

    pub fn failures(&self) -> Vec<Failure> {
        self.failures.lock().unwrap().clone()
    }

    /// The exact content sent with `token` (acknowledged or not).
    pub fn sent(&self, token: &str) -> Option<Vec<u8>> {
        self.attempts.lock().unwrap().get(token).cloned()
    }

    pub fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }

    /// 250s from `node` at or after `since` (and before `until`, if given).
    pub fn acked_by(&self, node: usize, since: Instant, until: Option<Instant>) -> usize {
        self.acked.lock().unwrap().iter().filter(|a| a.node == node && a.at >= since && until.is_none_or(|u| a.at < u)).count()
    }

    /// Waits (at most `limit`) until `node` has given `count` more 250s after `since`.
    pub fn wait_for_acks(&self, node: usize, since: Instant, count: usize, limit: Duration) -> bool {
        super::wait_until(limit, || self.acked_by(node, since, None) >= count)
    }

    fn client_loop(&self, id: usize, pace: Duration) {
        let mut node = id % self.targets.read().unwrap().len();
        let mut i = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let token = format!("{LOAD_TOKEN_PREFIX}{id:02}-{i:06}-{}", unique_token(""));
            i += 1;
            let content = format!(
                "From: load@client.example.org\r\nTo: support@example.com\r\nSubject: {token}\r\n\
                 Message-ID: <{token}@client.example.org>\r\n\r\nclient {id} message {i}\r\n{}\r\n",
                "payload ".repeat(64)
            )
            .into_bytes();
            self.attempts.lock().unwrap().insert(token.clone(), content.clone());
            let addr = self.targets.read().unwrap()[node];
            match send_one(addr, &content) {
                Ok(number) => self.acked.lock().unwrap().push(Ack { number, token, node, at: Instant::now() }),
                Err(what) => {
                    self.failures.lock().unwrap().push(Failure { node, at: Instant::now(), what });
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // Nodes in turn, as senders spread over MX hosts of equal preference (so a failed
            // attempt's next message goes elsewhere too).
            node = (node + 1) % self.targets.read().unwrap().len();
            std::thread::sleep(pace);
        }
    }

    /// What the promises say about the store `server` reads, after the load: each acknowledged
    /// number listed once, with exactly the bytes its client sent; the numbers of the year are
    /// exactly 1..=max (none issued without a stored message); every stored message decrypts to
    /// one complete message some client sent (nothing half-stored, nothing invented), each under
    /// one number. Returns how many messages are stored.
    pub fn verify_stored(&self, server: &Server) -> usize {
        let acked = self.acked();
        let attempts = self.attempts.lock().unwrap().clone();
        let mut by_number: HashMap<String, String> = HashMap::new();
        for ack in &acked {
            if let Some(previous) = by_number.insert(ack.number.clone(), ack.token.clone()) {
                panic!("number {} acknowledged twice (tokens {previous} and {})", ack.number, ack.token);
            }
        }

        let list = server.list_messages();
        let mut seqs: BTreeMap<u64, String> = BTreeMap::new();
        let year = parse_number(&list.first().expect("nothing stored").number).year;
        for listed in &list {
            let number = parse_number(&listed.number);
            assert_eq!(number.year, year, "mixed years in the list: {}", listed.number);
            if let Some(previous) = seqs.insert(number.seq, listed.number.clone()) {
                panic!("sequence {} listed twice: {previous} and {}", number.seq, listed.number);
            }
        }
        let max = *seqs.keys().last().unwrap();
        let missing: Vec<u64> = (1..=max).filter(|seq| !seqs.contains_key(seq)).collect();
        assert!(missing.is_empty(), "gaps in the numbering 1..={max}: {missing:?}");
        for listed in &list {
            let cases = listed.raw["cases"].as_array().unwrap_or_else(|| panic!("{}: no cases in {}", listed.number, listed.raw));
            assert!(!cases.is_empty(), "{}: registered without a case", listed.number);
        }
        let listed: HashSet<&str> = list.iter().map(|l| l.number.as_str()).collect();
        let lost: Vec<&String> = by_number.keys().filter(|n| !listed.contains(n.as_str())).collect();
        assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

        // One `message show` per message, in 4 threads.
        let numbers: Vec<String> = list.iter().map(|l| l.number.clone()).collect();
        let (attempts, by_number) = (&attempts, &by_number);
        let tokens: Vec<String> = std::thread::scope(|scope| {
            let checkers: Vec<_> = numbers
                .chunks(numbers.len().div_ceil(4))
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|number| {
                                let content = server.stored_content(number);
                                let token = token_of(&content)
                                    .unwrap_or_else(|| panic!("{number}: stored message without a token: {:?}", show_bytes(&content)));
                                let sent = attempts.get(&token).unwrap_or_else(|| panic!("{number}: stored token {token} was never sent"));
                                assert_eq!(show_bytes(&content), show_bytes(sent), "{number}: stored content is not the message sent");
                                if let Some(acked_token) = by_number.get(number) {
                                    assert_eq!(&token, acked_token, "{number}: acknowledged for another message");
                                }
                                token
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            checkers.into_iter().flat_map(|c| c.join().unwrap()).collect()
        });
        let distinct: HashSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len(), "one message stored under two numbers");
        tokens.len()
    }
}

/// One message over one connection: the number of its 250, or what came instead.
fn send_one(addr: SocketAddr, content: &[u8]) -> Result<String, String> {
    let mut c = Client::try_connect(addr).map_err(|e| format!("io: connect: {e}"))?;
    c.set_read_timeout(Duration::from_secs(20));
    let mut step = |command: Option<&[u8]>, want: &str| -> Result<String, String> {
        if let Some(bytes) = command {
            c.try_send(bytes).map_err(|e| format!("io: write: {e}"))?;
        }
        let line = c.try_reply().map_err(|e| format!("io: read: {e:?}"))?.last().to_string();
        if line.starts_with(want) { Ok(line) } else { Err(line) }
    };
    step(None, "220 ")?;
    step(Some(b"EHLO load.client.example.org\r\n"), "250 ")?;
    step(Some(b"MAIL FROM:<load@client.example.org>\r\n"), "250 2.1.0")?;
    step(Some(b"RCPT TO:<support@example.com>\r\n"), "250 2.1.5")?;
    step(Some(b"DATA\r\n"), "354 ")?;
    let line = step(Some(&data_wire(content)), "250 2.0.0 Registered ")?;
    let _ = c.try_send(b"QUIT\r\n");
    Ok(registered(&line))
}

fn token_of(content: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(content);
    text.lines().find_map(|l| l.strip_prefix("Subject: ").map(|t| t.trim().to_string())).filter(|t| t.starts_with(LOAD_TOKEN_PREFIX))
}
