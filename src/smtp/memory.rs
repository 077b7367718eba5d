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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Budget bytes charged per message byte: the copies a message has at its peak (received data,
/// the compressed blob and the sealed blob during `intake::prepare`, plus allocator slack);
/// checked by bench/flood.py, whose RSS peak stays under `message_memory` plus the baseline.
pub const FACTOR: u64 = 4;

/// A reservation that has to grow grows by at least this many message bytes (one atomic update
/// and one gauge update per step, not per read). The first reservation is exact, so a small
/// message with `SIZE=` costs only its size.
const STEP: u64 = 256 * 1024;

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
}

impl MessageMemory {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> MessageMemory {
        MessageMemory { inner: Arc::new(Inner { limit, used: AtomicU64::new(0) }) }
    }

    /// A reservation covering `message_bytes` (at most `cap`, the largest message allowed), or
    /// None when the budget cannot hold it now.
    pub fn reserve(&self, message_bytes: u64, cap: u64) -> Option<Reservation> {
        let mut reservation = Reservation { inner: self.inner.clone(), charged: 0, cap };
        reservation.cover(message_bytes).then_some(reservation)
    }

    /// Budget bytes reserved now.
    pub fn in_flight(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Adds `bytes` if the total stays within the limit.
    fn take(&self, bytes: u64) -> bool {
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
    }
}

/// One transaction's share of the budget; given back when dropped.
pub struct Reservation {
    inner: Arc<Inner>,
    /// Budget bytes held (message bytes × FACTOR).
    charged: u64,
    /// The largest message allowed: a reservation never grows past it.
    cap: u64,
}

impl Reservation {
    /// Grows the reservation to cover `message_bytes` in all (never past the cap; by a step at
    /// least, once something is held); false when the budget cannot hold even the bytes asked
    /// for now (the reservation is then unchanged).
    pub fn cover(&mut self, message_bytes: u64) -> bool {
        let needed = message_bytes.min(self.cap);
        let held = self.charged / FACTOR;
        if needed <= held {
            return true;
        }
        let stepped = if held == 0 { needed } else { needed.max(held.saturating_add(STEP)).min(self.cap) };
        for target in [stepped, needed] {
            if self.inner.take((target - held) * FACTOR) {
                self.charged = target * FACTOR;
                return true;
            }
        }
        false
    }

    /// Gives everything back now (the data is being discarded); the reservation stays usable.
    pub fn release(&mut self) {
        if self.charged > 0 {
            self.inner.give(self.charged);
            self.charged = 0;
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
}
