//! Who is looking at which case right now: presence heartbeats ("viewing", "replying") that
//! expire, so colleagues see each other without any lock being taken. Nothing here stops anyone
//! acting; collision detection (`last_event`) does that at the moment of the change.
//!
//! Kept in memory on each node and bounded: at most [`CAP`] entries, expired ones dropped on every
//! write, the oldest dropped when still full. On PostgreSQL every heartbeat is also announced to
//! the other nodes (`store::presence`, a NOTIFY: no table, no lock) and each node records the
//! others' notes as they arrive ([`Cases::follow_other_nodes`]), so a colleague on another node is
//! shown too.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;

use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::store::presence::PresenceNote;

/// Entries kept at most (a heartbeat per user and open case page).
pub const CAP: usize = 10_000;

/// What a colleague is doing on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Activity {
    Viewing,
    Replying,
}

impl Activity {
    pub fn parse(text: &str) -> Option<Activity> {
        match text {
            "viewing" => Some(Activity::Viewing),
            "replying" => Some(Activity::Replying),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Viewing => "viewing",
            Activity::Replying => "replying",
        }
    }
}

struct Seen {
    /// The case's queue at the heartbeat: only its readers are told (no store read per lookup).
    queue: String,
    at: Instant,
}

/// The heartbeats of one node: (case, user, activity) → last seen.
pub struct Presence {
    expiry: Duration,
    cap: usize,
    entries: Mutex<HashMap<(i64, String, Activity), Seen>>,
}

impl Presence {
    pub fn new(expiry: Duration) -> Presence {
        Presence::with_cap(expiry, CAP)
    }

    fn with_cap(expiry: Duration, cap: usize) -> Presence {
        Presence { expiry, cap: cap.max(1), entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String, Activity), Seen>> {
        // A panic elsewhere while holding it leaves a map that is still consistent.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that `user` is doing `activity` on case `id` (in `queue`) at `now`.
    pub fn record(&self, id: i64, queue: &str, user: &str, activity: Activity, now: Instant) {
        let mut entries = self.lock();
        entries.retain(|_, seen| now.saturating_duration_since(seen.at) < self.expiry);
        let key = (id, user.to_string(), activity);
        if !entries.contains_key(&key)
            && entries.len() >= self.cap
            && let Some(oldest) = entries.iter().min_by_key(|(_, seen)| seen.at).map(|(key, _)| key.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(key, Seen { queue: queue.to_string(), at: now });
    }

    /// Who else is on each of `ids` at `now`, for `who` (only cases of queues `who` may read):
    /// sorted by user, one line per user (replying wins over viewing).
    pub fn others(&self, who: &Principal, ids: &[i64], now: Instant) -> HashMap<i64, Vec<(String, Activity)>> {
        let entries = self.lock();
        let mut found: HashMap<i64, BTreeMap<String, Activity>> = HashMap::new();
        for ((id, user, activity), seen) in entries.iter() {
            let live = now.saturating_duration_since(seen.at) < self.expiry;
            if live && user != &who.name && ids.contains(id) && who.can(&seen.queue, Permission::Read) {
                let slot = found.entry(*id).or_default().entry(user.clone()).or_insert(*activity);
                *slot = (*slot).max(*activity);
            }
        }
        found.into_iter().map(|(id, users)| (id, users.into_iter().collect())).collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Cases {
    /// `who` is doing `activity` on case `id`: recorded until the expiry passes without another
    /// heartbeat. A case `who` may not read is not found, as everywhere.
    pub async fn heartbeat(&self, who: &Principal, id: i64, activity: Activity) -> Result<(), CaseError> {
        let case = self.readable_case(who, id).await?;
        self.presence.record(id, &case.queue, &who.name, activity, Instant::now());
        let note = PresenceNote {
            case: id,
            queue: case.queue,
            user: who.name.clone(),
            activity: activity.as_str().to_string(),
            node: String::new(),
        };
        // The other nodes miss one heartbeat at worst: the page sends the next one soon.
        if let Err(e) = self.store().announce_presence(&note).await {
            tracing::debug!(error = %e, "announcing presence to the other nodes failed");
        }
        Ok(())
    }

    /// Records the other nodes' heartbeats as they arrive, until `stop` resolves (None on
    /// SQLite: one node, nothing to hear). Await the handle to know it has stopped.
    pub fn follow_other_nodes(&self, stop: impl Future<Output = ()> + Send + 'static) -> Option<tokio::task::JoinHandle<()>> {
        if self.store().engine() != "postgres" {
            return None;
        }
        let (mut notes, presence) = (self.store().presence_notes(), self.presence.clone());
        Some(tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                let note = tokio::select! {
                    _ = &mut stop => return,
                    note = notes.recv() => note,
                };
                match note {
                    Ok(note) => match Activity::parse(&note.activity) {
                        Some(activity) => presence.record(note.case, &note.queue, &note.user, activity, Instant::now()),
                        None => tracing::debug!("ignoring a presence note with an unknown activity"),
                    },
                    // Fell behind: the skipped heartbeats are repeated soon.
                    Err(RecvError::Lagged(skipped)) => tracing::debug!(skipped, "presence notes skipped"),
                    Err(RecvError::Closed) => return,
                }
            }
        }))
    }

    /// Who else is viewing or replying to each of `ids` (the caller excluded): one call per page.
    pub fn present(&self, who: &Principal, ids: &[i64]) -> HashMap<i64, Vec<(String, Activity)>> {
        self.presence.others(who, ids, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Principal;

    fn reader(name: &str) -> Principal {
        let grants = [("support".to_string(), [Permission::Read].into_iter().collect())].into_iter().collect();
        Principal { user_id: 1, name: name.to_string(), roles: vec![], officer: false, grants, two_factor_missing: false }
    }

    #[test]
    fn a_heartbeat_shows_until_it_expires_and_never_to_its_sender() {
        let presence = Presence::new(Duration::from_secs(60));
        let t0 = Instant::now();
        presence.record(7, "support", "olga", Activity::Viewing, t0);
        presence.record(7, "support", "ivan", Activity::Viewing, t0);
        presence.record(7, "support", "ivan", Activity::Replying, t0);
        let seen = presence.others(&reader("anna"), &[7, 8], t0 + Duration::from_secs(59));
        assert_eq!(seen[&7], vec![("ivan".to_string(), Activity::Replying), ("olga".to_string(), Activity::Viewing)]);
        assert!(!seen.contains_key(&8));
        let olga = presence.others(&reader("olga"), &[7], t0);
        assert_eq!(olga[&7], vec![("ivan".to_string(), Activity::Replying)], "the caller is left out");
        assert!(presence.others(&reader("anna"), &[7], t0 + Duration::from_secs(60)).is_empty(), "expired");
    }

    #[test]
    fn only_readers_of_the_queue_are_told() {
        let presence = Presence::new(Duration::from_secs(60));
        let t0 = Instant::now();
        presence.record(7, "complaints", "olga", Activity::Viewing, t0);
        assert!(presence.others(&reader("anna"), &[7], t0).is_empty());
    }

    #[test]
    fn expired_entries_go_on_write_and_the_oldest_when_full() {
        let presence = Presence::with_cap(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        for (i, user) in ["a", "b", "c"].iter().enumerate() {
            presence.record(1, "support", user, Activity::Viewing, t0 + Duration::from_secs(i as u64));
        }
        presence.record(1, "support", "d", Activity::Viewing, t0 + Duration::from_secs(10));
        assert_eq!(presence.len(), 3, "capped");
        let users: Vec<String> =
            presence.others(&reader("x"), &[1], t0 + Duration::from_secs(10)).remove(&1).unwrap().into_iter().map(|(u, _)| u).collect();
        assert_eq!(users, ["b", "c", "d"], "the oldest went");
        presence.record(2, "support", "e", Activity::Viewing, t0 + Duration::from_secs(200));
        assert_eq!(presence.len(), 1, "the expired ones were dropped on write");
    }
}
