//! Hearing of other nodes' commits on PostgreSQL, so their new mail and case actions wake this
//! node's watchers (IMAP IDLE) as this node's own commits do through [`Store::changed`].
//!
//! Every such commit sends a NOTIFY inside its transaction (`postgres::notify_changes`). One task
//! per node LISTENs on its own connection (named `<node>-listener`, so operators can tell it
//! apart) and bumps the local `changes` watch on each notification. Notifications sent while the
//! connection is down are lost, so after every (re)connect it bumps once; and a cheap poll of the
//! newest message id and case event catches whatever still slipped through.
//!
//! The same connection LISTENs for presence notes (`store::presence`): other nodes' ones go to
//! the store's presence subscribers; none is re-read after a reconnect (heartbeats repeat).

use std::future::Future;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::Store;
use super::engine::Db;
use super::postgres::{CHANGES_CHANNEL, PRESENCE_CHANNEL};

/// First wait after a failed connect; doubled after each further failure, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the poll compares: the last allocated message id and the newest case event.
const POLL: &str = "SELECT (SELECT value FROM counters WHERE name = 'message'), (SELECT MAX(id) FROM case_history)";

impl Store {
    /// Starts this node's listener and poll on PostgreSQL (None on SQLite: one node, nothing to
    /// hear). They run until `stop` resolves; await the handle to know they have.
    pub fn watch_other_nodes(&self, stop: impl Future<Output = ()> + Send + 'static) -> Option<tokio::task::JoinHandle<()>> {
        let Db::Postgres(pool) = &self.db else { return None };
        let (listener_pool, pool) = (super::postgres::own_connection(pool, "listener"), pool.clone());
        let (store, poll_every, node) = (self.clone(), self.options.storage.change_poll, super::postgres::node_name(&pool));
        Some(tokio::spawn(async move {
            tokio::select! {
                _ = stop => {}
                _ = listen(&store, &listener_pool, &node) => {}
                _ = poll(&store, &pool, poll_every) => {}
            }
            listener_pool.close().await;
        }))
    }
}

/// Connects, LISTENs, bumps once (anything may have been missed before), then bumps on every
/// notification; forwards presence notes not sent by `node`; on any failure starts over after a
/// growing pause. Never returns.
async fn listen(store: &Store, pool: &PgPool, node: &str) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen_all([CHANGES_CHANNEL, PRESENCE_CHANNEL]).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for other nodes' changes");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        tracing::debug!("listening for other nodes' changes");
        backoff = MIN_BACKOFF;
        store.changed();
        // `try_recv` answers None when the connection is lost; start over on a fresh one rather
        // than let sqlx reconnect behind our back, so the bump above follows every reconnect.
        loop {
            match listener.try_recv().await {
                Ok(Some(note)) if note.channel() == PRESENCE_CHANNEL => store.heard_presence(node, note.payload()),
                Ok(Some(_)) => store.changed(),
                Ok(None) => {
                    tracing::warn!("lost the connection listening for other nodes' changes; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other nodes' changes failed; reconnecting");
                    tokio::time::sleep(MIN_BACKOFF).await;
                    break;
                }
            }
        }
    }
}

/// Bumps whenever the newest message id or case event moved since the last look. Never returns.
async fn poll(store: &Store, pool: &PgPool, every: Duration) {
    let mut seen: Option<(Option<i64>, Option<i64>)> = None;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sqlx::query_as::<_, (Option<i64>, Option<i64>)>(POLL).fetch_one(pool).await {
            Ok(now) => {
                if seen.is_some_and(|before| before != now) {
                    store.changed();
                }
                seen = Some(now);
            }
            Err(e) => tracing::warn!(error = %e, "polling for other nodes' changes failed"),
        }
    }
}
