//! The one accept loop every protocol uses: accepts until shutdown, backs off when accepting
//! fails (out of file descriptors), admits each connection through its pools and hands it to
//! the protocol, admitted with its guards or refused with the reason, so SMTP, IMAP and HTTP
//! each answer a refusal in their own words.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::pool::{Guard, Policy, Pool, Refusal};
use crate::shutdown::{Phase, Shutdown};

/// How long to wait after a failed accept (typically EMFILE) before trying again, instead of
/// spinning; sessions already open keep going.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Refusals being answered by a task of their own at once, per listener (a TLS handshake before
/// the answer, or reading the request before closing). Past this many, the protocol answers
/// what it can without waiting (one non-blocking write) or just closes, so a flood of refusals
/// cannot itself exhaust memory or descriptors.
const MAX_ANSWERING_REFUSALS: usize = 256;
/// At most one warning about refused connections per listener this often (a flood must not
/// flood the log too); each refusal is logged at debug level.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the protocol gets for each accepted connection.
pub enum Admission {
    /// One guard per gate, in the order the gates were added; the connection keeps them as long
    /// as it holds the slots.
    Admitted(Vec<Guard>),
    /// Answer the client (421, BYE, 503) and close.
    Refused(Refused),
}

pub struct Refused {
    pub why: Refusal,
    /// Present when the answer may take a task of its own (keep it in that task); absent, answer
    /// without waiting or not at all.
    pub answering: Option<OwnedSemaphorePermit>,
}

impl Refused {
    /// Writes a short answer without waiting (a fresh socket's send buffer has room for it),
    /// then the socket is closed when dropped.
    pub fn answer_now(&self, socket: &TcpStream, answer: &[u8]) {
        if let Err(e) = socket.try_write(answer) {
            tracing::debug!(error = %e, "refused connection: answer not written");
        }
    }
}

/// A bound listening socket and the pools its connections must be admitted to.
pub struct Listener {
    tcp: TcpListener,
    /// What the log calls it ("smtp", "imaps", …).
    name: &'static str,
    gates: Vec<(Arc<Pool>, Policy)>,
    answering: Arc<Semaphore>,
}

impl Listener {
    pub fn new(tcp: TcpListener, name: &'static str) -> Listener {
        Listener { tcp, name, gates: Vec::new(), answering: Arc::new(Semaphore::new(MAX_ANSWERING_REFUSALS)) }
    }

    /// Every connection must also get a slot in `pool` under `policy`.
    pub fn gate(mut self, pool: Arc<Pool>, policy: Policy) -> Listener {
        self.gates.push((pool, policy));
        self
    }

    /// Accepts until shutdown reaches `Draining`, calling `handle` for each connection (it
    /// should spawn the session and return at once).
    pub async fn run(self, mut shutdown: Shutdown, mut handle: impl FnMut(TcpStream, SocketAddr, Admission)) {
        let mut refusals = RefusalLog::default();
        loop {
            let accepted = tokio::select! {
                accepted = self.tcp.accept() => accepted,
                _ = shutdown.reached(Phase::Draining) => break,
            };
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            match self.admit(peer) {
                Ok(guards) => {
                    metrics::counter!("mailroom_connections_total", "listener" => self.name, "result" => "admitted").increment(1);
                    handle(socket, peer, Admission::Admitted(guards))
                }
                Err(why) => {
                    metrics::counter!("mailroom_connections_total", "listener" => self.name, "result" => "refused").increment(1);
                    refusals.note(self.name, why, peer);
                    let answering = self.answering.clone().try_acquire_owned().ok();
                    handle(socket, peer, Admission::Refused(Refused { why, answering }));
                }
            }
        }
    }

    /// A slot in every pool, or the first refusal (slots already taken are given back).
    fn admit(&self, peer: SocketAddr) -> Result<Vec<Guard>, Refusal> {
        self.gates.iter().map(|(pool, policy)| pool.try_acquire(peer.ip(), *policy)).collect()
    }
}

#[derive(Default)]
struct RefusalLog {
    since_last: u64,
    last: Option<Instant>,
}

impl RefusalLog {
    fn note(&mut self, listener: &'static str, why: Refusal, peer: SocketAddr) {
        tracing::debug!(listener, reason = why.as_str(), peer = %peer.ip(), "connection refused");
        self.since_last += 1;
        if self.last.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
            tracing::warn!(listener, reason = why.as_str(), refused = self.since_last, "connections refused (limits)");
            self.since_last = 0;
            self.last = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn admits_through_every_gate_refuses_with_the_reason_and_stops_at_shutdown() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        // Gate 1 has room for two, gate 2 (capped per source) for one per address.
        let (wide, narrow) = (Pool::new("wide", 2, 0), Pool::new("narrow", 10, 0));
        let listener = Listener::new(tcp, "test").gate(wide.clone(), Policy::trusted()).gate(narrow.clone(), Policy::capped(1));
        let (trigger, shutdown) = crate::shutdown::channel();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let accepting = tokio::spawn(listener.run(shutdown, move |socket, _, admission| {
            let outcome = match admission {
                Admission::Admitted(guards) => Ok(guards),
                Admission::Refused(refused) => {
                    refused.answer_now(&socket, refused.why.as_str().as_bytes());
                    Err(refused.why)
                }
            };
            tx.send((socket, outcome)).unwrap();
        }));

        let _c1 = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_, first) = rx.recv().await.unwrap();
        let first = first.expect("admitted");
        assert_eq!((first.len(), wide.in_use(), narrow.in_use()), (2, 1, 1), "one guard per gate");

        // Same address again: the second gate's cap refuses, and the first gate's slot taken
        // on the way is given back.
        let mut c2 = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (socket, second) = rx.recv().await.unwrap();
        assert_eq!(second.unwrap_err(), Refusal::PerSource);
        drop(socket);
        let mut answer = String::new();
        c2.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "per-source cap");
        assert_eq!((wide.in_use(), narrow.in_use()), (1, 1));

        // The guards released, the address is admitted again.
        drop(first);
        let _c3 = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(rx.recv().await.unwrap().1.is_ok());

        trigger.set(Phase::Draining);
        tokio::time::timeout(Duration::from_secs(5), accepting).await.expect("the loop ends at shutdown").unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listening socket is closed");
    }
}
