//! How every service ends at shutdown, the same way for SMTP, LMTP, IMAP and HTTP.
//!
//! `Phase::Draining` has stopped the accept loops; each session sees the same phase and ends at
//! its next safe point (SMTP after the running transaction with 421, IMAP with BYE, HTTP after
//! the request in progress). Every session holds a slot in its service's [`Pool`], so "all
//! pools empty" is "everything ended". Past the grace period, `Phase::Forced` ends what is
//! left (nothing in it was acknowledged yet, so senders retry and nothing is lost).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::pool::Pool;
use crate::shutdown::{Phase, ShutdownTrigger};

/// How long sessions get to close after `Phase::Forced` before the process stops waiting.
const FORCED_LIMIT: Duration = Duration::from_secs(10);

/// Waits for every pool to empty within `grace`, then forces the rest; true when everything
/// ended within the grace period.
pub async fn drain(pools: &[Arc<Pool>], grace: Duration, trigger: &ShutdownTrigger) -> bool {
    if all_drained(pools, grace).await {
        return true;
    }
    let open: usize = pools.iter().map(|p| p.in_use()).sum();
    tracing::warn!(sessions = open, "shutdown grace period over: closing the remaining sessions");
    trigger.set(Phase::Forced);
    all_drained(pools, FORCED_LIMIT).await;
    false
}

async fn all_drained(pools: &[Arc<Pool>], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    for pool in pools {
        if !pool.drained(deadline.saturating_duration_since(Instant::now())).await {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::net::Policy;

    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn empty_pools_drain_at_once_and_nothing_is_forced() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let pools = [Pool::new("a", 4, 0), Pool::new("b", 4, 0)];
        assert!(drain(&pools, Duration::from_secs(30), &trigger).await);
        assert!(!shutdown.is(Phase::Forced));
    }

    #[tokio::test]
    async fn a_session_that_ends_within_the_grace_period_is_waited_for() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let pools = [Pool::new("a", 4, 0), Pool::new("b", 4, 0)];
        let slot = pools[1].try_acquire(HERE, Policy::trusted()).unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(slot);
        });
        let started = Instant::now();
        assert!(drain(&pools, Duration::from_secs(30), &trigger).await);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(10), "{waited:?}");
        assert!(!shutdown.is(Phase::Forced));
    }

    #[tokio::test]
    async fn past_the_grace_period_the_rest_is_forced() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let pools = [Pool::new("a", 4, 0)];
        let slot = pools[0].try_acquire(HERE, Policy::trusted()).unwrap();
        // The session ends when it is told to stop now, as SMTP sessions do.
        let mut watching = shutdown.clone();
        tokio::spawn(async move {
            watching.reached(Phase::Forced).await;
            drop(slot);
        });
        assert!(!drain(&pools, Duration::from_millis(200), &trigger).await);
        assert!(shutdown.is(Phase::Forced));
        assert_eq!(pools[0].in_use(), 0);
    }
}
