//! The global budget for message bytes in flight (`limits.message_memory`), shared by every SMTP
//! and LMTP session.
//!
//! A message is held in memory from its first data byte until its reply is sent, and in several
//! copies on the way (the received buffer, the parsed headers, the compressed and the sealed
//! blob, the writer's batch), so each message byte is charged [`FACTOR`] bytes of the budget.
//! A transaction reserves what `SIZE=` declares at MAIL, then grows its reservation as data
//! arrives; what does not fit gets `452 4.3.1` (the sender retries later) instead of the server
//! growing. The reservation is a guard: dropping the transaction (reply sent, RSET, STARTTLS,
//! disconnect) gives it back.
//!
//! Growth goes by age, so a flood without `SIZE=` cannot livelock (every session growing
//! together until none can finish) and wastes few transfers: a transaction takes a ticket from a
//! monotonic counter when it first grows past its MAIL reservation. A grower whose step does not
//! fit WAITS ([`Reservation::grow`], its session not reading, so TCP holds the sender back) until
//! enough is given back, up to the session's data timeout, and waiters are served in ticket order
//! (a younger one never takes what an older one waits for); while anyone waits, new transactions
//! get 452 before their data. The OLDEST ticket never fails for lack of memory: when it has to wait
//! itself, and for as long as what is free does not cover its step, a younger grower that comes
//! to grow fails at once and the waiters give way one at a time, the youngest first (each
//! discards its message and gives its share back at once); so the budget drains towards it and
//! only as many transfers are thrown away as it needs. A ticket leaves when its transaction finishes, fails or is dropped, and the
//! next-oldest becomes the privileged one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Budget bytes charged per message byte: the copies a message has at its peak (received data,
/// the compressed blob and the sealed blob during `intake::prepare`, plus allocator slack);
/// checked by bench/flood.py, whose RSS peak stays under `message_memory` plus the baseline.
pub const FACTOR: u64 = 4;

/// A reservation that has to grow grows by at least this many message bytes (one atomic update
/// and one gauge update per step, not per read). The first reservation is exact, so a small
/// message with `SIZE=` costs only its size. A DATA without `SIZE=` must be able to take one
/// step before its 354 (see `smtp::session`).
pub const STEP: u64 = 256 * 1024;

/// The reply to a transaction the budget cannot hold now (RFC 1870 §6.1, RFC 3463 X.3.1).
pub const REPLY: &str = "452 4.3.1 Insufficient system storage, try again later";

/// The shared budget; clones share one counter.
#[derive(Clone)]
pub struct MessageMemory {
    inner: Arc<Inner>,
}

struct Inner {
    limit: u64,
    used: AtomicU64,
    /// Growers waiting for memory now (a copy of `growers.waiting.len()` for the lock-free
    /// checks): while any waits, no new transaction may take.
    waiting: AtomicUsize,
    /// The tickets of the transactions growing now and of those waiting; the first is the oldest.
    growers: Mutex<Growers>,
    /// Signalled when memory is given back, a ticket leaves or a wait starts or ends.
    changed: Notify,
}

#[derive(Default)]
struct Growers {
    next: u64,
    tickets: BTreeSet<u64>,
    /// The waiting tickets, each with the budget bytes it waits for.
    waiting: BTreeMap<u64, u64>,
}

impl Growers {
    fn oldest(&self) -> Option<u64> {
        self.tickets.first().copied()
    }

    /// What the oldest grower waits for, when it waits.
    fn starved(&self) -> Option<u64> {
        let (first, short) = self.waiting.first_key_value()?;
        (self.oldest() == Some(*first)).then_some(*short)
    }

    /// Whether `ticket` may take now: the oldest always; another only while the oldest is not
    /// waiting and no older grower waits (waiters are served in ticket order).
    fn may_take(&self, ticket: u64) -> bool {
        self.oldest() == Some(ticket)
            || (self.starved().is_none() && self.waiting.first_key_value().is_none_or(|(first, _)| *first >= ticket))
    }

    /// Whether `ticket`, which could not take, must fail instead of waiting: only while the oldest
    /// waits for more than is free, and then a grower not waiting yet at once, a waiter when it
    /// is the youngest one (one at a time: each gives its share back before the next looks).
    fn gives_way(&self, ticket: u64, free: u64) -> bool {
        self.starved().is_some_and(|short| short > free)
            && self.oldest() != Some(ticket)
            && (!self.waiting.contains_key(&ticket) || self.waiting.last_key_value().is_some_and(|(last, _)| *last == ticket))
    }
}

impl MessageMemory {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> MessageMemory {
        let inner = Inner {
            limit,
            used: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            growers: Mutex::new(Growers::default()),
            changed: Notify::new(),
        };
        MessageMemory { inner: Arc::new(inner) }
    }

    /// A reservation covering `message_bytes` (at most `cap`, the largest message allowed), or
    /// None when the budget cannot hold it now (or a grower is waiting for memory).
    pub fn reserve(&self, message_bytes: u64, cap: u64) -> Option<Reservation> {
        let mut reservation = Reservation { inner: self.inner.clone(), charged: 0, cap, ticket: None };
        reservation.cover(message_bytes).then_some(reservation)
    }

    /// Budget bytes reserved now.
    pub fn in_flight(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// True while a grower waits for memory: the budget is exhausted, so a new transaction is
    /// better refused before its data than after.
    pub fn exhausted(&self) -> bool {
        self.inner.waiting.load(Ordering::Acquire) > 0
    }
}

impl Inner {
    /// Adds `bytes` if the total stays within the limit and `ticket` may take now: a grower by
    /// age ([`Growers::may_take`]), a new transaction (no ticket) only while no one waits.
    fn take(&self, bytes: u64, ticket: Option<u64>) -> bool {
        let allowed = match ticket {
            None => self.waiting.load(Ordering::Acquire) == 0,
            Some(ticket) => self.growers().may_take(ticket),
        };
        if !allowed {
            return false;
        }
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| used.checked_add(bytes).filter(|total| *total <= self.limit));
        match taken {
            Ok(before) => {
                metrics::gauge!("mailroom_smtp_memory_in_flight_bytes").set((before + bytes) as f64);
                true
            }
            Err(_) => false,
        }
    }

    fn give(&self, bytes: u64) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        metrics::gauge!("mailroom_smtp_memory_in_flight_bytes").set((before - bytes) as f64);
        self.changed.notify_waiters();
    }

    fn growers(&self) -> std::sync::MutexGuard<'_, Growers> {
        // The lock guards only a counter and a set: a panic cannot leave them half-updated.
        self.growers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enter(&self) -> u64 {
        let mut growers = self.growers();
        let ticket = growers.next;
        growers.next += 1;
        growers.tickets.insert(ticket);
        ticket
    }

    /// Runs `change` on the growers, then publishes how many wait and wakes the waiters to look
    /// again.
    fn regroup(&self, change: impl FnOnce(&mut Growers)) {
        {
            let mut growers = self.growers();
            change(&mut growers);
            self.waiting.store(growers.waiting.len(), Ordering::Release);
        }
        self.changed.notify_waiters();
    }

    fn leave(&self, ticket: u64) {
        // The next-oldest may be waiting to learn that it is now first.
        self.regroup(|growers| {
            growers.tickets.remove(&ticket);
        });
    }
}

/// Marks a grower as waiting for as long as it waits, also when its future is dropped
/// (disconnect, shutdown): a leaked mark would refuse every other take for ever.
struct Waiting {
    inner: Arc<Inner>,
    ticket: u64,
}

impl Waiting {
    fn start(inner: &Arc<Inner>, ticket: u64, short: u64) -> Waiting {
        inner.regroup(|growers| {
            growers.waiting.insert(ticket, short);
        });
        metrics::counter!("mailroom_smtp_memory_waits_total").increment(1);
        Waiting { inner: inner.clone(), ticket }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // Takes refused while it waited may succeed now.
        let ticket = self.ticket;
        self.inner.regroup(|growers| {
            growers.waiting.remove(&ticket);
        });
    }
}

/// One transaction's share of the budget; given back when dropped.
pub struct Reservation {
    inner: Arc<Inner>,
    /// Budget bytes held (message bytes × FACTOR).
    charged: u64,
    /// The largest message allowed: a reservation never grows past it.
    cap: u64,
    /// Its place among the growers, from its first growth until it is released.
    ticket: Option<u64>,
}

impl Reservation {
    /// Grows the reservation to cover `message_bytes` in all (never past the cap; by a step at
    /// least, once something is held); false when the budget cannot hold even the bytes asked
    /// for now (the reservation is then unchanged). Never waits.
    pub fn cover(&mut self, message_bytes: u64) -> bool {
        self.try_grow(message_bytes).unwrap_or(true)
    }

    /// [`cover`](Self::cover) by age: takes a ticket at the first growth and waits up to
    /// `patience`, in ticket order, for memory to be given back; the oldest ticket never gives
    /// way, a younger one does while the oldest waits ([`Growers::gives_way`]). False: the budget
    /// cannot hold it (the caller discards and releases, which also passes its place on).
    pub async fn grow(&mut self, message_bytes: u64, patience: Duration) -> bool {
        if self.covers(message_bytes) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + patience;
        let mut waiting = None;
        let inner = self.inner.clone();
        loop {
            // Registered before looking, so a give between the look and the wait is not missed.
            let changed = inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.covers(message_bytes) {
                return true;
            }
            let ticket = *self.ticket.get_or_insert_with(|| self.inner.enter());
            if self.try_grow(message_bytes) != Some(false) {
                return true;
            }
            let free = self.inner.limit.saturating_sub(self.inner.used.load(Ordering::Acquire));
            if self.inner.growers().gives_way(ticket, free) {
                // At once, not when the caller gets to it: the next waiter to look must see it.
                drop(waiting);
                self.release();
                return false;
            }
            let short = (message_bytes.min(self.cap) - self.charged / FACTOR) * FACTOR;
            waiting.get_or_insert_with(|| Waiting::start(&self.inner, ticket, short));
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    /// Whether `message_bytes` are covered already (nothing to take).
    pub fn covers(&self, message_bytes: u64) -> bool {
        message_bytes.min(self.cap) <= self.charged / FACTOR
    }

    /// None when nothing more is needed, else whether the growth was taken.
    fn try_grow(&mut self, message_bytes: u64) -> Option<bool> {
        let needed = message_bytes.min(self.cap);
        let held = self.charged / FACTOR;
        if needed <= held {
            return None;
        }
        let stepped = if held == 0 { needed } else { needed.max(held.saturating_add(STEP)).min(self.cap) };
        for target in [stepped, needed] {
            if self.inner.take((target - held) * FACTOR, self.ticket) {
                self.charged = target * FACTOR;
                return Some(true);
            }
        }
        Some(false)
    }

    /// Gives everything back now (the data is being discarded), and the ticket with it; the
    /// reservation stays usable.
    pub fn release(&mut self) {
        if self.charged > 0 {
            self.inner.give(self.charged);
            self.charged = 0;
        }
        if let Some(ticket) = self.ticket.take() {
            self.inner.leave(ticket);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn reservations_share_the_budget_and_give_it_back_when_dropped() {
        let memory = MessageMemory::new(10 * MIB * FACTOR);
        let a = memory.reserve(6 * MIB, 8 * MIB).expect("fits");
        assert_eq!(memory.in_flight(), 6 * MIB * FACTOR);
        assert!(memory.reserve(5 * MIB, 8 * MIB).is_none(), "6 + 5 MiB exceed 10 MiB");
        assert_eq!(memory.in_flight(), 6 * MIB * FACTOR, "a refused reservation holds nothing");
        let b = memory.reserve(4 * MIB, 8 * MIB).expect("6 + 4 MiB fit exactly");
        drop(a);
        assert_eq!(memory.in_flight(), 4 * MIB * FACTOR);
        drop(b);
        assert_eq!(memory.in_flight(), 0);
    }

    #[test]
    fn cover_grows_in_steps_up_to_the_cap_and_fails_without_changing() {
        let memory = MessageMemory::new(2 * MIB * FACTOR);
        let mut r = memory.reserve(0, MIB).expect("nothing fits");
        assert_eq!(memory.in_flight(), 0);
        assert!(r.cover(1000));
        assert_eq!(memory.in_flight(), 1000 * FACTOR, "the first reservation is exact");
        assert!(r.cover(1001));
        assert_eq!(memory.in_flight(), (1000 + STEP) * FACTOR, "then it grows by a step");
        assert!(r.cover(STEP), "still within the step");
        assert_eq!(memory.in_flight(), (1000 + STEP) * FACTOR);
        assert!(r.cover(10 * MIB), "a size over the cap is charged as the cap");
        assert_eq!(memory.in_flight(), MIB * FACTOR);
        let mut other = memory.reserve(MIB, MIB).expect("the second MiB");
        assert!(other.cover(MIB + 1), "capped at the largest message: nothing more to take");
        let mut third = memory.reserve(0, MIB).expect("empty");
        assert!(!third.cover(1), "the budget is full");
        let mut edge = MessageMemory::new((STEP + 10) * FACTOR).reserve(STEP, MIB).expect("one step");
        assert!(edge.cover(STEP + 10), "a full step does not fit, the bytes asked for do");
        assert!(!edge.cover(STEP + 11));
        assert_eq!(memory.in_flight(), 2 * MIB * FACTOR);
        r.release();
        assert_eq!(memory.in_flight(), MIB * FACTOR);
        assert!(third.cover(1), "released room is usable at once");
        drop((r, other, third));
        assert_eq!(memory.in_flight(), 0);
    }

    /// Long enough never to end in a test: a grower that should not wait would hang it.
    const PATIENCE: Duration = Duration::from_secs(3600);

    /// Polls until `memory` has a grower waiting (the spawned task got to its wait).
    async fn until_waiting(memory: &MessageMemory) {
        while !memory.exhausted() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// No ticket, no waiter and no byte left behind.
    fn assert_empty(memory: &MessageMemory) {
        assert_eq!(memory.in_flight(), 0);
        assert!(!memory.exhausted());
        assert!(memory.inner.growers().tickets.is_empty(), "a ticket leaked");
    }

    #[tokio::test]
    async fn the_oldest_grower_waits_for_what_a_younger_one_gives_back_and_a_younger_one_fails_at_once() {
        let memory = MessageMemory::new(2 * MIB * FACTOR);
        let mut old = memory.reserve(STEP, 2 * MIB).expect("fits");
        let mut young = memory.reserve(STEP, 2 * MIB).expect("fits");
        assert!(old.grow(MIB, PATIENCE).await, "room: no wait");
        assert!(young.grow(MIB, PATIENCE).await);
        assert_eq!(memory.in_flight(), 2 * MIB * FACTOR, "full");
        let waiter = tokio::spawn(async move { (old.grow(MIB + 1, PATIENCE).await, old) });
        until_waiting(&memory).await;
        assert!(memory.reserve(1, MIB).is_none(), "while the oldest waits nobody else takes");
        assert!(!waiter.is_finished(), "the oldest is still waiting");
        assert!(!young.grow(MIB + 1, PATIENCE).await, "younger: fails at once, never waits, and gives its share back");
        let (grown, old) = waiter.await.expect("the waiter");
        assert!(grown, "the oldest got what the younger one gave back");
        assert_eq!(memory.in_flight(), (MIB + STEP) * FACTOR, "a full step");
        assert!(!memory.exhausted());
        assert!(young.grow(STEP, PATIENCE).await, "released, the younger one may start again");
        drop((old, young));
        assert_empty(&memory);
    }

    /// `N` reservations (of at most 4 MiB), each grown to `each` bytes in turn: tickets in order.
    async fn growers<const N: usize>(memory: &MessageMemory, each: u64) -> [Reservation; N] {
        let mut all = std::array::from_fn(|_| memory.reserve(0, 4 * MIB).expect("empty"));
        for r in &mut all {
            assert!(r.grow(each, PATIENCE).await);
        }
        all
    }

    #[tokio::test]
    async fn the_privilege_passes_to_the_next_oldest_when_the_oldest_is_dropped_while_waiting() {
        let memory = MessageMemory::new(3 * MIB * FACTOR);
        let [mut a, mut b, mut c] = growers(&memory, MIB).await;
        // A waits, then its session ends (a disconnect drops the task in the middle of the wait).
        let waiter = tokio::spawn(async move { a.grow(2 * MIB, PATIENCE).await });
        until_waiting(&memory).await;
        waiter.abort();
        assert!(waiter.await.is_err(), "aborted");
        assert!(!memory.exhausted(), "the dropped waiter is no longer counted");
        assert_eq!(memory.in_flight(), 2 * MIB * FACTOR, "A's share is back");
        // B is the oldest now: it waits rather than fail; C, younger, fails at once.
        let waiter = tokio::spawn(async move { (b.grow(2 * MIB + STEP, PATIENCE).await, b) });
        until_waiting(&memory).await;
        assert!(!c.grow(MIB + 1, PATIENCE).await);
        drop(c);
        let (grown, b) = waiter.await.expect("the waiter");
        assert!(grown);
        assert_eq!(memory.in_flight(), (2 * MIB + STEP) * FACTOR);
        // B finishes; a newcomer is then the oldest and may use the whole budget.
        drop(b);
        let mut d = memory.reserve(0, 4 * MIB).expect("empty");
        assert!(d.grow(3 * MIB, PATIENCE).await);
        drop(d);
        assert_empty(&memory);
    }

    /// Polls until `n` growers wait for memory.
    async fn until_waiting_n(memory: &MessageMemory, n: usize) {
        while memory.inner.growers().waiting.len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn younger_growers_wait_in_age_order_while_the_oldest_goes_on() {
        let memory = MessageMemory::new(3 * MIB * FACTOR);
        let [old, mut y1, mut y2] = growers(&memory, MIB).await;
        // Full. The younger ones wait (their sessions stop reading) instead of throwing their
        // transfers away; new transactions are refused meanwhile.
        let first = tokio::spawn(async move { (y1.grow(MIB + 3 * MIB / 4, PATIENCE).await, y1) });
        until_waiting_n(&memory, 1).await;
        let second = tokio::spawn(async move { (y2.grow(MIB + MIB / 2, PATIENCE).await, y2) });
        until_waiting_n(&memory, 2).await;
        assert!(memory.exhausted());
        assert!(memory.reserve(1, MIB).is_none(), "while growers wait no new transaction takes");
        // The oldest finishes: its MiB goes to the elder waiter first, though the younger one's
        // smaller step would have fitted too.
        drop(old);
        let (grown, y1) = first.await.expect("the elder waiter");
        assert!(grown);
        assert_eq!(memory.in_flight(), (MIB + 3 * MIB / 4 + MIB) * FACTOR);
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the younger waiter still waits: a quarter MiB is not its half");
        drop(y1);
        let (grown, y2) = second.await.expect("the younger waiter");
        assert!(grown);
        drop(y2);
        assert_empty(&memory);
    }

    #[tokio::test]
    async fn when_the_oldest_must_wait_the_youngest_waiter_gives_way_first() {
        let memory = MessageMemory::new(4 * MIB * FACTOR);
        let [mut old, mut y1, mut y2] = growers(&memory, MIB).await;
        let [y3] = growers(&memory, MIB / 2).await;
        // Half a MiB free: y1 and y2 wait for more than that, y1 first.
        let first = tokio::spawn(async move { (y1.grow(2 * MIB, PATIENCE).await, y1) });
        until_waiting_n(&memory, 1).await;
        let second = tokio::spawn(async move { (y2.grow(MIB + 3 * MIB / 4, PATIENCE).await, y2) });
        until_waiting_n(&memory, 2).await;
        // The oldest needs a MiB more: it waits, and the youngest waiter, y2, gives way.
        let oldest = tokio::spawn(async move { (old.grow(2 * MIB, PATIENCE).await, old) });
        let (grown, mut y2) = second.await.expect("the youngest waiter");
        assert!(!grown, "the youngest waiter gives way to the oldest");
        assert_eq!((y2.charged, y2.ticket), (0, None), "and gives its share and its ticket back at once");
        assert!(!first.is_finished(), "the elder waiter still waits");
        y2.release();
        let (grown, old) = oldest.await.expect("the oldest");
        assert!(grown, "what y2 gave back went to the oldest");
        assert!(!first.is_finished(), "y1 kept its place and its share");
        // The oldest finishes: y1, now the oldest, gets its MiB.
        drop(old);
        let (grown, y1) = first.await.expect("y1");
        assert!(grown);
        drop((y1, y2, y3));
        assert_empty(&memory);
    }

    #[tokio::test]
    async fn the_oldest_gives_up_after_its_patience_and_nothing_leaks() {
        let memory = MessageMemory::new(MIB * FACTOR);
        let hog = memory.reserve(MIB, MIB).expect("all of it");
        let mut old = memory.reserve(0, MIB).expect("empty");
        assert!(!old.grow(1, Duration::from_millis(50)).await, "nothing was given back in time");
        assert!(!memory.exhausted(), "no longer waiting");
        old.release();
        drop(hog);
        assert_empty(&memory);
        // The same through cover, which never waits and takes no ticket.
        let mut r = memory.reserve(0, MIB).expect("empty");
        assert!(r.cover(MIB));
        assert!(!memory.reserve(0, MIB).expect("empty").cover(1));
        drop(r);
        assert_empty(&memory);
    }
}
