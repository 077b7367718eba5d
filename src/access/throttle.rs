//! Login throttling by source address (the per-user counter lives in the `users` table, so an
//! officer's `user unlock` and a restart see it too). Each failure doubles the delay before the
//! answer, up to `max_failure_delay`; `max_failures` in a row lock the source out for `lockout`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::AccessConfig;

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

    /// Some(remaining) while the source is locked out.
    pub fn source_locked(&self, source: IpAddr) -> Option<Duration> {
        let sources = self.sources.lock().unwrap();
        let until = sources.get(&source)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure from `source`; returns its consecutive failures.
    pub fn source_failure(&self, source: IpAddr) -> u32 {
        let mut sources = self.sources.lock().unwrap();
        let now = Instant::now();
        if sources.len() >= MAX_TRACKED {
            let lockout = self.config.lockout;
            sources.retain(|_, s| now.duration_since(s.last_failure) < lockout);
        }
        let state = sources.entry(source).or_insert(SourceState { failures: 0, last_failure: now, locked_until: None });
        // A quiet period as long as the lockout forgives earlier failures.
        if now.duration_since(state.last_failure) >= self.config.lockout {
            state.failures = 0;
        }
        state.failures += 1;
        state.last_failure = now;
        if state.failures >= self.config.max_failures {
            state.locked_until = Some(now + self.config.lockout);
            state.failures = 0;
            return self.config.max_failures;
        }
        state.failures
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
        assert_eq!(t.source_failure(a), 1);
        assert_eq!(t.source_failure(a), 2);
        assert!(t.source_locked(a).is_none());
        t.source_failure(a);
        assert!(t.source_locked(a).is_some_and(|d| d > Duration::from_secs(50)));
        assert!(t.source_locked(b).is_none());
        t.source_success(a);
        assert!(t.source_locked(a).is_none());
    }
}
