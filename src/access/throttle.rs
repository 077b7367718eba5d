//! Login throttling by source address (the per-user counter lives in the `users` table, so an
//! officer's `user unlock`, a restart and other nodes see it too). Each failure doubles the delay
//! before the answer, up to `max_failure_delay`; `max_failures` in a row lock the source out for
//! `lockout`. Attempts are reserved before the password is checked, so concurrent guesses cannot
//! slip past the count; this per-source state is per node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::AccessConfig;

struct SourceState {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

pub struct Throttle {
    config: AccessConfig,
    sources: Mutex<HashMap<IpAddr, SourceState>>,
}

/// Beyond this many tracked sources, entries idle for longer than the lockout are dropped (a
/// spray from many addresses must not grow memory without bound).
const MAX_TRACKED: usize = 100_000;

impl Throttle {
    pub fn new(config: AccessConfig) -> Throttle {
        Throttle { config, sources: Mutex::new(HashMap::new()) }
    }

    /// Some(remaining) while the source is locked out (a cheap check before queueing for a
    /// password check; [`Throttle::reserve`] decides).
    pub fn source_locked(&self, source: IpAddr) -> Option<Duration> {
        let sources = self.sources.lock().unwrap();
        let until = sources.get(&source)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Reserves one attempt from `source` before its password is checked, counted as a failure
    /// until [`Throttle::source_success`] releases it. Ok(n): the n-th consecutive attempt, and
    /// the one that reaches `max_failures` locks the source out at once, so however many attempts
    /// arrive together, at most `max_failures` get through. Err(remaining) while locked out.
    pub fn reserve(&self, source: IpAddr) -> Result<u32, Duration> {
        let mut sources = self.sources.lock().unwrap();
        let now = Instant::now();
        if sources.len() >= MAX_TRACKED {
            let lockout = self.config.lockout;
            sources.retain(|_, s| now.duration_since(s.last_failure) < lockout || s.locked_until.is_some_and(|t| t > now));
        }
        let state = sources.entry(source).or_insert(SourceState { failures: 0, last_failure: now, locked_until: None });
        if let Some(remaining) = state.locked_until.and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero()) {
            return Err(remaining);
        }
        // An ended lockout, or a quiet period as long as the lockout, forgives earlier failures.
        if state.locked_until.take().is_some() || now.duration_since(state.last_failure) >= self.config.lockout {
            state.failures = 0;
        }
        state.failures += 1;
        state.last_failure = now;
        if state.failures >= self.config.max_failures {
            state.locked_until = Some(now + self.config.lockout);
            metrics::counter!("mailroom_login_lockouts_total", "scope" => "source").increment(1);
        }
        Ok(state.failures)
    }

    pub fn source_success(&self, source: IpAddr) {
        self.sources.lock().unwrap().remove(&source);
    }

    /// The answer delay after the n-th consecutive failure: failure_delay × 2^(n-1), capped.
    pub fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(16);
        self.config.failure_delay.saturating_mul(factor).min(self.config.max_failure_delay)
    }

    pub async fn delay(&self, failures: u32) {
        tokio::time::sleep(self.delay_for(failures)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(AccessConfig {
            failure_delay: Duration::from_millis(100),
            max_failure_delay: Duration::from_millis(700),
            max_failures: 3,
            lockout: Duration::from_secs(60),
            ..Default::default()
        })
    }

    #[test]
    fn delay_grows_and_is_capped() {
        let t = throttle();
        assert_eq!(t.delay_for(0), Duration::ZERO);
        assert_eq!(t.delay_for(1), Duration::from_millis(100));
        assert_eq!(t.delay_for(2), Duration::from_millis(200));
        assert_eq!(t.delay_for(3), Duration::from_millis(400));
        assert_eq!(t.delay_for(4), Duration::from_millis(700));
        assert_eq!(t.delay_for(40), Duration::from_millis(700));
    }

    #[test]
    fn a_source_is_locked_out_after_max_failures_and_others_are_not() {
        let t = throttle();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(t.reserve(a), Ok(1));
        assert_eq!(t.reserve(a), Ok(2));
        assert!(t.source_locked(a).is_none());
        assert_eq!(t.reserve(a), Ok(3), "the attempt that reaches max_failures still gets its check");
        assert!(t.source_locked(a).is_some_and(|d| d > Duration::from_secs(50)));
        assert!(t.reserve(a).is_err_and(|d| d > Duration::from_secs(50)));
        assert!(t.source_locked(b).is_none());
        t.source_success(a);
        assert!(t.source_locked(a).is_none());
    }

    #[test]
    fn concurrent_reservations_never_exceed_max_failures() {
        let t = std::sync::Arc::new(throttle());
        let source: IpAddr = "192.0.2.3".parse().unwrap();
        let granted: Vec<u32> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..50).map(|_| scope.spawn(|| t.reserve(source))).collect();
            handles.into_iter().filter_map(|h| h.join().unwrap().ok()).collect()
        });
        let mut sorted = granted.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 3], "exactly max_failures of 50 concurrent attempts are let through");
    }

    #[test]
    fn a_lockout_ends_and_the_count_starts_over() {
        let t = Throttle::new(AccessConfig { max_failures: 2, lockout: Duration::from_millis(50), ..Default::default() });
        let source: IpAddr = "192.0.2.4".parse().unwrap();
        assert_eq!((t.reserve(source), t.reserve(source)), (Ok(1), Ok(2)));
        assert!(t.reserve(source).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.source_locked(source).is_none());
        assert_eq!(t.reserve(source), Ok(1), "a fresh count after the lockout");
        assert_eq!(t.reserve(source), Ok(2));
        assert!(t.reserve(source).is_err(), "and a fresh lockout after max_failures again");
    }
}
