//! Presence notes between nodes on PostgreSQL: who is viewing or replying to which case, so staff
//! on one node see colleagues on another. Nothing is stored: a note is a NOTIFY on
//! [`PRESENCE_CHANNEL`] sent in its own autocommit statement (never a write transaction, so it
//! never waits for the sequencer), and each node's listener (`listener.rs`) hands other nodes'
//! notes to [`Store::presence_notes`] subscribers. A note lost while a listener reconnects is
//! made good by the next heartbeat. SQLite is one node: nothing to send or hear.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::engine::Db;
use super::postgres::PRESENCE_CHANNEL;
use super::{Store, StoreError};

/// Notes kept for a subscriber that falls behind (it then skips to the newest; the next
/// heartbeats refill what it missed).
const BACKLOG: usize = 1024;

/// One heartbeat as other nodes hear it. Never customer data: the case id, its queue (so only
/// the queue's readers are told), the staff login name, the activity and the sending node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceNote {
    pub case: i64,
    pub queue: String,
    pub user: String,
    /// "viewing" or "replying" (the cases module parses it).
    pub activity: String,
    pub node: String,
}

/// The sender a store keeps for the notes its listener hears.
pub(crate) fn channel() -> broadcast::Sender<PresenceNote> {
    broadcast::channel(BACKLOG).0
}

impl Store {
    /// Tells the other nodes about a heartbeat (no-op on SQLite). `note.node` is replaced by
    /// this node's name, which is what listeners compare to skip their own notes.
    pub async fn announce_presence(&self, note: &PresenceNote) -> Result<(), StoreError> {
        let Db::Postgres(pool) = &self.db else { return Ok(()) };
        let note = PresenceNote { node: super::postgres::node_name(pool), ..note.clone() };
        let payload = serde_json::to_string(&note).expect("a presence note serialises");
        sqlx::query("SELECT pg_notify($1, $2)").bind(PRESENCE_CHANNEL).bind(payload).execute(pool).await?;
        Ok(())
    }

    /// Other nodes' presence notes from now on (none on SQLite).
    pub fn presence_notes(&self) -> broadcast::Receiver<PresenceNote> {
        self.presence.subscribe()
    }

    /// Hands a note heard by the listener to the subscribers unless this node sent it; a
    /// malformed payload is dropped.
    pub(super) fn heard_presence(&self, own_node: &str, payload: &str) {
        match serde_json::from_str::<PresenceNote>(payload) {
            Ok(note) if note.node == own_node => {}
            // No subscriber (yet) is not an error.
            Ok(note) => drop(self.presence.send(note)),
            Err(e) => tracing::debug!(error = %e, "ignoring a malformed presence note"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_other_nodes_well_formed_notes_reach_subscribers() {
        let (_dir, store) = crate::store::testing::store().await;
        let mut notes = store.presence_notes();
        let note = |node: &str| PresenceNote {
            case: 7,
            queue: "support".into(),
            user: "anna".into(),
            activity: "viewing".into(),
            node: node.into(),
        };
        store.heard_presence("node-b", &serde_json::to_string(&note("node-b")).unwrap());
        store.heard_presence("node-b", "{\"case\":\"seven\"}");
        store.heard_presence("node-b", "not json");
        store.heard_presence("node-b", &serde_json::to_string(&note("node-a")).unwrap());
        assert_eq!(notes.try_recv().unwrap(), note("node-a"), "its own and the malformed ones are dropped");
        assert!(notes.try_recv().is_err());
        // SQLite is one node: announcing sends nothing and never fails.
        store.announce_presence(&note("")).await.unwrap();
        assert!(notes.try_recv().is_err());
    }

    #[test]
    fn the_payload_is_the_documented_json() {
        let note = PresenceNote { case: 7, queue: "support".into(), user: "anna".into(), activity: "replying".into(), node: "mx1".into() };
        assert_eq!(
            serde_json::to_string(&note).unwrap(),
            r#"{"case":7,"queue":"support","user":"anna","activity":"replying","node":"mx1"}"#
        );
    }
}
