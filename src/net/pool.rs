//! Connection accounting shared by every listener: a global limit, a per-source-address cap,
//! and a reserved share of slots that only addresses with no connection yet may take, so one
//! address (or a few) can never fill every slot.
//!
//! A connection that is admitted holds a [`Guard`]; dropping it gives the slot back.
//!
//! An *evicting* pool (IMAP connections not logged in yet) never turns a newcomer away for
//! being full while some source holds more of it than the newcomer's: it evicts the oldest
//! connection of the source holding the most, whose session is told through
//! [`Guard::evicted`] and says goodbye. Idle pre-login connections from many addresses can
//! then delay a login but never lock everyone out (Dovecot drops the oldest pre-login
//! connection for the same reason).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Who counts as one source: an IPv4 address, or an IPv6 /64 (the smallest block a site or an
/// ISP customer is given, so counting single IPv6 addresses would cap nothing). IPv4-mapped
/// IPv6 addresses count as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    V6Net(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// How one listener is admitted into a pool.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// At most this many connections from one source (None: no cap).
    pub per_source: Option<usize>,
    /// Whether the reserved share is closed to sources that already have a connection. Off only
    /// for a trusted peer (LMTP behind our own MTA, which opens many connections from one
    /// address by design).
    pub reserve_applies: bool,
}

impl Policy {
    /// An untrusted listener: capped per source, reserve enforced.
    pub fn capped(per_source: usize) -> Policy {
        Policy { per_source: Some(per_source), reserve_applies: true }
    }

    /// A trusted listener: only the global limit applies.
    pub fn trusted() -> Policy {
        Policy { per_source: None, reserve_applies: false }
    }
}

/// Why a connection was not admitted; each protocol words its own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full,
    /// This source has its cap's worth of connections already.
    PerSource,
    /// Only the reserved share is left, and this source already has a connection.
    Reserved,
}

impl Refusal {
    /// Whether the client's own address is the reason (the per-source cap or the reserve).
    pub fn is_per_source(self) -> bool {
        matches!(self, Refusal::PerSource | Refusal::Reserved)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::PerSource => "per-source cap",
            Refusal::Reserved => "reserved share",
        }
    }
}

/// One limited set of slots (e.g. every SMTP and LMTP connection).
pub struct Pool {
    name: &'static str,
    max: usize,
    /// Slots above `max - reserved` go only to sources with no connection in this pool.
    reserved: usize,
    evicting: bool,
    state: Mutex<State>,
    /// Woken whenever the last connection leaves.
    empty: Notify,
}

#[derive(Default)]
struct State {
    total: usize,
    by_source: HashMap<Source, usize>,
    /// Evicting pools only: every connection, by guard id.
    entries: HashMap<u64, Entry>,
    next_id: u64,
}

struct Entry {
    source: Option<Source>,
    since: Instant,
    evicted: Arc<Notify>,
}

impl Pool {
    /// `reserved_percent` of `max` (rounded down) is the reserved share.
    pub fn new(name: &'static str, max: usize, reserved_percent: u8) -> Arc<Pool> {
        Self::build(name, max, reserved_percent, false)
    }

    /// A pool that evicts rather than refuses (see the module documentation).
    pub fn evicting(name: &'static str, max: usize, reserved_percent: u8) -> Arc<Pool> {
        Self::build(name, max, reserved_percent, true)
    }

    fn build(name: &'static str, max: usize, reserved_percent: u8, evicting: bool) -> Arc<Pool> {
        let reserved = max * usize::from(reserved_percent.min(100)) / 100;
        Arc::new(Pool { name, max, reserved, evicting, state: Mutex::new(State::default()), empty: Notify::new() })
    }

    pub fn reserved(&self) -> usize {
        self.reserved
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two counters updated together; a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a slot for a connection from `ip`, or says why not. A trusted connection (no cap,
    /// no reserve) counts only towards the total, not towards its address's share.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, policy: Policy) -> Result<Guard, Refusal> {
        let trusted = policy.per_source.is_none() && !policy.reserve_applies;
        let source = (!trusted).then(|| Source::from(ip));
        let mut state = self.lock();
        let mine = source.and_then(|s| state.by_source.get(&s).copied()).unwrap_or(0);
        if policy.per_source.is_some_and(|cap| mine >= cap) {
            return Err(Refusal::PerSource);
        }
        let refusal = if state.total >= self.max {
            Some(Refusal::Full)
        } else if policy.reserve_applies && mine > 0 && state.total >= self.max - self.reserved {
            Some(Refusal::Reserved)
        } else {
            None
        };
        if let Some(refusal) = refusal
            && (!self.evicting || !Self::evict_for(&mut state, mine))
        {
            return Err(refusal);
        }
        state.total += 1;
        if let Some(source) = source {
            *state.by_source.entry(source).or_insert(0) += 1;
        }
        let id = state.next_id;
        state.next_id += 1;
        let evicted = self.evicting.then(|| {
            let evicted = Arc::new(Notify::new());
            state.entries.insert(id, Entry { source, since: Instant::now(), evicted: evicted.clone() });
            evicted
        });
        Ok(Guard { pool: self.clone(), source, id, evicted })
    }

    /// Frees a slot for a newcomer whose source holds `mine`: evicts the oldest connection of
    /// the source holding the most, if that is more than `mine`. False when there is none.
    fn evict_for(state: &mut State, mine: usize) -> bool {
        let Some(most) = state.by_source.values().copied().max() else { return false };
        if most <= mine {
            return false;
        }
        let victim = state
            .entries
            .iter()
            .filter(|(_, e)| e.source.and_then(|s| state.by_source.get(&s)) == Some(&most))
            .min_by_key(|(_, e)| e.since)
            .map(|(id, _)| *id);
        let Some(entry) = victim.and_then(|id| state.entries.remove(&id)) else { return false };
        // notify_one keeps the wake-up for a session that is not waiting on it right now.
        entry.evicted.notify_one();
        Self::forget(state, entry.source);
        true
    }

    fn forget(state: &mut State, source: Option<Source>) {
        state.total -= 1;
        if let Some(count) = source.and_then(|s| state.by_source.get_mut(&s)) {
            *count -= 1;
            if *count == 0 {
                state.by_source.remove(&source.expect("counted"));
            }
        }
    }

    /// Connections holding a slot now.
    pub fn in_use(&self) -> usize {
        self.lock().total
    }

    /// Connections from `ip`'s source holding a slot now.
    pub fn in_use_by(&self, ip: IpAddr) -> usize {
        self.lock().by_source.get(&Source::from(ip)).copied().unwrap_or(0)
    }

    /// Waits until every connection has left, at most `limit`; true when they all did.
    pub async fn drained(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.empty.notified();
                tokio::pin!(notified);
                // Register before looking, so a release between the look and the wait is seen.
                notified.as_mut().enable();
                if self.in_use() == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    fn release(&self, id: u64, source: Option<Source>) {
        let mut state = self.lock();
        // An evicted connection's slot was given to its evictor already.
        if self.evicting && state.entries.remove(&id).is_none() {
            return;
        }
        Self::forget(&mut state, source);
        if state.total == 0 {
            self.empty.notify_waiters();
        }
    }
}

/// A slot in a pool, given back when dropped (when the connection ends).
pub struct Guard {
    pool: Arc<Pool>,
    /// None for a trusted connection (not counted per source).
    source: Option<Source>,
    id: u64,
    /// Evicting pools only: signalled when this connection was evicted.
    evicted: Option<Arc<Notify>>,
}

impl Guard {
    /// Resolves when the pool evicted this connection (never, in a pool that does not evict).
    /// The slot is already someone else's then: the session should say so and close.
    pub async fn evicted(&self) {
        match &self.evicted {
            Some(evicted) => evicted.notified().await,
            None => std::future::pending().await,
        }
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("pool", &self.pool.name).finish()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.pool.release(self.id, self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn global_limit_and_release() {
        let pool = Pool::new("t", 3, 0);
        let guards: Vec<Guard> =
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().map(|a| pool.try_acquire(ip(a), Policy::trusted()).unwrap()).collect();
        assert_eq!(pool.in_use(), 3);
        assert_eq!(pool.try_acquire(ip("10.0.0.4"), Policy::trusted()).unwrap_err(), Refusal::Full);
        drop(guards);
        assert_eq!(pool.in_use(), 0);
        assert!(pool.try_acquire(ip("10.0.0.4"), Policy::trusted()).is_ok());
    }

    #[test]
    fn per_source_cap_counts_each_source_apart() {
        let pool = Pool::new("t", 100, 0);
        let policy = Policy::capped(2);
        let a1 = pool.try_acquire(ip("10.0.0.1"), policy).unwrap();
        let _a2 = pool.try_acquire(ip("10.0.0.1"), policy).unwrap();
        assert_eq!(pool.try_acquire(ip("10.0.0.1"), policy).unwrap_err(), Refusal::PerSource);
        // Another address is not affected.
        let _b = pool.try_acquire(ip("10.0.0.2"), policy).unwrap();
        assert_eq!(pool.in_use_by(ip("10.0.0.1")), 2);
        // A trusted listener in the same pool is not capped, and does not count against the
        // address's share on the capped one.
        let _t = pool.try_acquire(ip("10.0.0.1"), Policy::trusted()).unwrap();
        assert_eq!((pool.in_use(), pool.in_use_by(ip("10.0.0.1"))), (4, 2));
        drop(a1);
        assert_eq!(pool.in_use_by(ip("10.0.0.1")), 1);
        let _a2b = pool.try_acquire(ip("10.0.0.1"), policy).unwrap();
        assert_eq!(pool.in_use_by(ip("10.0.0.1")), 2);
        let _a3 = pool.try_acquire(ip("10.0.0.1"), policy);
        assert_eq!(pool.try_acquire(ip("10.0.0.1"), policy).unwrap_err(), Refusal::PerSource);
    }

    #[test]
    fn reserved_share_only_for_sources_without_a_connection() {
        // 10 slots, 20% reserved: sources that already have a connection stop at 8.
        let pool = Pool::new("t", 10, 20);
        assert_eq!(pool.reserved(), 2);
        let policy = Policy::capped(100);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(pool.try_acquire(ip("10.0.0.1"), policy).unwrap());
        }
        assert_eq!(pool.try_acquire(ip("10.0.0.1"), policy).unwrap_err(), Refusal::Reserved);
        // New sources still get in, one connection each, until the pool is full.
        let b = pool.try_acquire(ip("10.0.0.2"), policy).unwrap();
        assert_eq!(pool.try_acquire(ip("10.0.0.2"), policy).unwrap_err(), Refusal::Reserved);
        let _c = pool.try_acquire(ip("10.0.0.3"), policy).unwrap();
        assert_eq!(pool.try_acquire(ip("10.0.0.4"), policy).unwrap_err(), Refusal::Full);
        // The trusted policy may use the reserve but not exceed the total.
        drop(b);
        let _t = pool.try_acquire(ip("10.0.0.1"), Policy::trusted()).unwrap();
        assert_eq!(pool.in_use(), 10);
        // Below the reserve line, a source with connections is admitted again.
        held.truncate(5);
        assert!(pool.try_acquire(ip("10.0.0.1"), policy).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let pool = Pool::new("t", 100, 0);
        let policy = Policy::capped(2);
        let _a = pool.try_acquire(ip("2001:db8:1:2::1"), policy).unwrap();
        let _b = pool.try_acquire(ip("2001:db8:1:2:ffff::9"), policy).unwrap();
        assert_eq!(pool.try_acquire(ip("2001:db8:1:2::77"), policy).unwrap_err(), Refusal::PerSource);
        assert!(pool.try_acquire(ip("2001:db8:1:3::1"), policy).is_ok(), "another /64 is another source");
        let _c = pool.try_acquire(ip("192.0.2.7"), policy).unwrap();
        let _d = pool.try_acquire(ip("::ffff:192.0.2.7"), policy).unwrap();
        assert_eq!(pool.try_acquire(ip("192.0.2.7"), policy).unwrap_err(), Refusal::PerSource);
    }

    #[test]
    fn guards_released_from_other_threads_and_the_map_shrinks() {
        let pool = Pool::new("t", 1000, 10);
        let guards: Vec<Guard> =
            (0..500).map(|i| pool.try_acquire(ip(&format!("10.0.{}.{}", i / 250, i % 250)), Policy::capped(1)).unwrap()).collect();
        let handles: Vec<_> = guards.into_iter().map(|g| std::thread::spawn(move || drop(g))).collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(pool.in_use(), 0);
        assert!(pool.lock().by_source.is_empty(), "sources with no connection are forgotten");
    }

    #[tokio::test]
    async fn evicting_pool_takes_the_oldest_slot_of_the_heaviest_source() {
        let pool = Pool::evicting("t", 6, 0);
        let policy = Policy::capped(10);
        let a: Vec<Guard> = (0..4).map(|_| pool.try_acquire(ip("10.0.0.1"), policy).unwrap()).collect();
        let b: Vec<Guard> = (0..2).map(|_| pool.try_acquire(ip("10.0.0.2"), policy).unwrap()).collect();
        assert_eq!(pool.in_use(), 6);
        // A newcomer evicts 10.0.0.1's oldest connection (it holds the most), which is told.
        let c = pool.try_acquire(ip("10.0.0.3"), policy).unwrap();
        tokio::time::timeout(Duration::from_secs(1), a[0].evicted()).await.expect("the oldest of the heaviest source is evicted");
        for guard in a[1..].iter().chain(&b) {
            assert!(tokio::time::timeout(Duration::from_millis(20), guard.evicted()).await.is_err(), "only one is evicted");
        }
        assert_eq!((pool.in_use(), pool.in_use_by(ip("10.0.0.1")), pool.in_use_by(ip("10.0.0.3"))), (6, 3, 1));
        // The evicted guard's drop gives back nothing: its slot is c's now.
        let mut a = a;
        drop(a.remove(0));
        assert_eq!(pool.in_use(), 6);
        // A source already holding as many as anyone else is refused, not allowed to evict.
        let _b3 = pool.try_acquire(ip("10.0.0.2"), policy).unwrap();
        assert_eq!(pool.in_use_by(ip("10.0.0.1")), 2, "10.0.0.2 (2) evicted from 10.0.0.1 (3)");
        assert_eq!(pool.try_acquire(ip("10.0.0.2"), policy).unwrap_err(), Refusal::Full, "10.0.0.2 holds the most: it may not evict");
        drop((a, b, c));
        assert_eq!(pool.in_use(), 1);
        // A pool that does not evict never signals.
        let plain = Pool::new("p", 1, 0);
        let g = plain.try_acquire(ip("10.0.0.1"), policy).unwrap();
        assert_eq!(plain.try_acquire(ip("10.0.0.2"), policy).unwrap_err(), Refusal::Full);
        assert!(tokio::time::timeout(Duration::from_millis(20), g.evicted()).await.is_err());
    }

    #[test]
    fn per_source_cap_holds_in_an_evicting_pool() {
        let pool = Pool::evicting("t", 4, 0);
        let policy = Policy::capped(2);
        let _x: Vec<Guard> = (0..2).map(|_| pool.try_acquire(ip("10.0.0.9"), policy).unwrap()).collect();
        assert_eq!(pool.try_acquire(ip("10.0.0.9"), policy).unwrap_err(), Refusal::PerSource);
    }

    #[tokio::test]
    async fn drained_waits_for_the_last_guard() {
        let pool = Pool::new("t", 10, 0);
        assert!(pool.drained(Duration::from_millis(10)).await, "an empty pool is drained");
        let guard = pool.try_acquire(ip("10.0.0.1"), Policy::trusted()).unwrap();
        assert!(!pool.drained(Duration::from_millis(50)).await);
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.drained(Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(guard);
        assert!(waiter.await.unwrap());
    }
}
