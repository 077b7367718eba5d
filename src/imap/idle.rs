//! IDLE: waits for DONE while telling the client what changes in the selected mailbox.

use std::io;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::input::{Input, MAX_LINE};
use super::session::{Flow, Handled, Session};
use crate::shutdown::Phase;

/// IDLE re-checks the user and the mailbox this often even without a change notification (a
/// safety net: commits wake it through `store.changes`, on PostgreSQL also other nodes' through
/// LISTEN and `change_poll`), plus up to `IDLE_JITTER`, so that 10,000 idling sessions do not
/// all query the store in the same second.
const IDLE_RECHECK: Duration = Duration::from_secs(60);
const IDLE_JITTER_MS: u64 = 20_000;
/// … and at most this often, however many commits are notified.
const IDLE_MIN_INTERVAL: Duration = Duration::from_millis(500);

impl Session {
    pub(super) async fn idle(&mut self, tag: &str) -> Handled {
        enum Wake {
            Read(io::Result<usize>),
            Timeout,
            Changed(bool),
            Recheck,
            Shutdown,
        }
        self.out.line(b"+ idling");
        self.flush().await?;
        // An idling session may wait for hours: it keeps no rendered messages and no output
        // buffer grown by an earlier FETCH (10,000 of them must fit in 1 GiB).
        self.cache.clear();
        self.trace_lens = Default::default();
        self.out.buf = Vec::new();
        if self.buf.capacity() > 4096 {
            self.buf = bytes::BytesMut::from(&self.buf[..]);
        }
        let recheck = IDLE_RECHECK + Duration::from_millis(jitter(self.peer.port()));
        let mut changes = self.ctx.access.store.changes.subscribe();
        let mut changes_open = true;
        let mut shutdown = self.ctx.shutdown.clone();
        let deadline = Instant::now() + self.ctx.settings.imap.idle_timeout;
        let mut next_check = Instant::now() + recheck;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf) {
                let line = self.buf.split_to(pos + 1);
                if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
                    self.out.ok(tag, None, "IDLE terminated");
                } else {
                    self.bad(Some(tag), "Expected DONE");
                }
                return Ok(Flow::Continue);
            }
            if self.buf.len() >= MAX_LINE {
                self.close_with(Input::TooLong).await?;
                return Ok(Flow::Close);
            }
            let wake = {
                let Session { stream, buf, .. } = &mut *self;
                tokio::select! {
                    read = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => read.map_or(Wake::Timeout, Wake::Read),
                    changed = changes.changed(), if changes_open => Wake::Changed(changed.is_ok()),
                    _ = tokio::time::sleep_until(next_check) => Wake::Recheck,
                    _ = shutdown.reached(Phase::Draining) => Wake::Shutdown,
                }
            };
            match wake {
                Wake::Read(Ok(0)) => return Ok(Flow::Close),
                Wake::Read(Ok(_)) => continue,
                Wake::Read(Err(e)) => return Err(e.into()),
                Wake::Timeout => {
                    self.close_with(Input::Timeout).await?;
                    return Ok(Flow::Close);
                }
                Wake::Shutdown => {
                    self.close_with(Input::Shutdown).await?;
                    return Ok(Flow::Close);
                }
                Wake::Changed(open) => {
                    changes_open = open;
                    // Commits come in bursts: one re-read for all of them.
                    tokio::time::sleep(IDLE_MIN_INTERVAL).await;
                    changes.borrow_and_update();
                }
                Wake::Recheck => {}
            }
            next_check = Instant::now() + recheck;
            if !self.refresh_principal().await? {
                self.flush().await?;
                return Ok(Flow::Close);
            }
            if self.selected.is_none() && std::mem::take(&mut self.revoked) {
                // The mailbox being watched is gone for this user; IDLE cannot answer otherwise.
                self.out.bye(None, "Access to the selected mailbox was revoked");
                self.flush().await?;
                return Ok(Flow::Close);
            }
            self.sync(true).await?;
            self.flush().await?;
        }
    }
}

/// A session's share of `IDLE_JITTER_MS`, spread by its client port.
fn jitter(port: u16) -> u64 {
    u64::from(port).wrapping_mul(7919) % IDLE_JITTER_MS
}
