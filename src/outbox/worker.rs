//! The outbox worker: delivers sealed outgoing mail through the smarthost, with retries.
//!
//! Rows are written in the same transaction as what they answer, so nothing is lost by a crash.
//! The worker claims the due rows (`pending` → `sending` in one statement, conditional on their
//! status, with a lease in `next_attempt_at`), decrypts them, sends them over one connection
//! and marks them `sent`; a temporary failure schedules another attempt with exponential
//! backoff, a permanent one (5xx) or the last allowed attempt marks the row `failed`. Outcomes
//! are committed together (at least every second), not one fsync per row. Rows whose worker
//! died while sending become due again when the lease runs out (at-least-once after a crash;
//! never twice in normal operation).
//!
//! Logs name rows by id and failures by kind (`RCPT: 550 5.1.1`): never an address or content.

use std::time::Duration;

use super::config::OutboxConfig;
use super::dkim::SignError;
use super::smarthost::{Connection, Delivery, Failure, Sender, crlf_lines};
use crate::shutdown::{Phase, Shutdown};
use crate::store::outbox::{self as rows, Attempt, Mail, OutboxError, OutboxRow, open_mail};
use crate::store::{Store, StoreError, now_millis};

/// Runs until shutdown: takes due rows, delivers them, records the outcome.
/// `hostname` is ours, for EHLO; with `dkim`, every message is signed just before it is sent.
pub async fn run(store: Store, config: OutboxConfig, hostname: String, dkim: super::DkimSlot, mut shutdown: Shutdown) {
    let smarthost = match config.smarthost(&hostname) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("outbox: smarthost {e}; outgoing mail stays queued");
            return;
        }
    };
    let sender = match Sender::new(smarthost, config.timeout) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("outbox: cannot set up TLS for the smarthost: {e}; outgoing mail stays queued");
            return;
        }
    };
    tracing::info!(
        smarthost = %format_args!("{}:{}", sender.smarthost.host, sender.smarthost.port),
        tls = ?sender.smarthost.tls,
        dkim = ?dkim.load().as_deref().map(|s| format!("{}._domainkey.{}", s.selector(), s.domain())),
        "outbox worker started"
    );
    let worker = Worker { store, config, sender, dkim };
    loop {
        if shutdown.is(Phase::Draining) {
            break;
        }
        let wait = match worker.pass(&shutdown).await {
            Ok(Pass::Stopped) => break,
            Ok(Pass::Done { processed }) => match worker.next_due().await {
                Ok(Some(due)) => {
                    let wait = Duration::from_millis(due.saturating_sub(now_millis()).max(0) as u64).min(worker.config.poll_interval);
                    // Rows due now but not taken (claimed elsewhere meanwhile): do not spin.
                    if processed == 0 && wait.is_zero() { Duration::from_millis(50) } else { wait }
                }
                Ok(None) => worker.config.poll_interval,
                Err(e) => {
                    tracing::warn!("outbox: {e}");
                    worker.config.poll_interval
                }
            },
            Err(e) => {
                tracing::warn!("outbox: {e}");
                worker.config.poll_interval
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.reached(Phase::Draining) => break,
        }
    }
    tracing::info!("outbox worker stopped");
}

/// Resolves at a forced shutdown (sends in progress are abandoned then, not at draining).
async fn forced(shutdown: &Shutdown) {
    shutdown.clone().reached(Phase::Forced).await
}

enum Pass {
    Done { processed: usize },
    Stopped,
}

struct Worker {
    store: Store,
    config: OutboxConfig,
    sender: Sender,
    dkim: super::DkimSlot,
}

/// What happened to one claimed row, waiting to be written.
struct Outcome {
    id: i64,
    kind: String,
    attempts: i64,
    result: Result<Delivery, Failure>,
}

/// Outcomes are written together (one commit for several rows, not one per row: the outbox shares
/// the database with the intake's writer), at the latest this long after the first of them.
const RECORD_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    /// How long claimed rows stay with this worker before another may take them over (a crash):
    /// enough for one connection and a whole batch of sends.
    fn lease(&self) -> Duration {
        self.config.timeout.saturating_mul(self.config.batch as u32 + 1) + Duration::from_secs(60)
    }

    /// A permanent failure, or the last allowed attempt, ends a row's tries.
    fn gives_up(&self, failure: &Failure, attempts: i64) -> bool {
        matches!(failure, Failure::Permanent(_)) || attempts >= self.config.max_attempts as i64
    }

    /// Earliest `next_attempt_at` of any row still to be sent (unix ms).
    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        rows::next_due(&self.store).await
    }

    /// One pass: claim the due rows (oldest first, up to `batch`), send them over one
    /// connection, record the outcomes.
    async fn pass(&self, shutdown: &Shutdown) -> Result<Pass, OutboxError> {
        let rows = self.claim().await?;
        let processed = rows.len();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(rows.len());
        let mut first_unrecorded: Option<std::time::Instant> = None;
        let mut conn: Option<Connection> = None;
        // A smarthost that cannot be reached is tried once per pass; the other rows share the failure.
        let mut connect_failure: Option<Failure> = None;
        let mut stopped = false;
        let mut rows = rows.into_iter();
        for row in rows.by_ref() {
            let mail = match open_mail(&self.store.keys, &row) {
                Ok(mail) => self.signed(mail),
                // The row can never be sent; keep it (for an operator) but stop trying.
                Err(OutboxError::Db(e)) => return Err(e.into()),
                Err(OutboxError::Crypto(e)) => Err(Failure::Permanent(format!("cannot decrypt: {e}"))),
                Err(OutboxError::Format(what)) => Err(Failure::Permanent(format!("cannot decode: {what}"))),
            };
            let result = match mail {
                Ok(mail) => {
                    if conn.is_none() && connect_failure.is_none() {
                        let connected = tokio::select! {
                            connected = self.sender.connect() => Some(connected),
                            _ = forced(shutdown) => None,
                        };
                        match connected {
                            Some(Ok(c)) => conn = Some(c),
                            Some(Err(f)) => connect_failure = Some(f),
                            None => {
                                self.release(&[row.id]).await?;
                                stopped = true;
                                break;
                            }
                        }
                    }
                    match (conn.as_mut(), &connect_failure) {
                        (Some(c), _) => {
                            let sent = tokio::select! {
                                sent = self.sender.send(c, &mail) => Some(sent),
                                _ = forced(shutdown) => None,
                            };
                            let Some((result, reusable)) = sent else {
                                // Forced shutdown mid-send: give the row back untouched (it may
                                // or may not have gone out; the next start sends it again).
                                self.release(&[row.id]).await?;
                                stopped = true;
                                break;
                            };
                            if !reusable {
                                conn = None;
                            }
                            result
                        }
                        (None, Some(failure)) => Err(failure.clone()),
                        (None, None) => unreachable!("either connected or a connect failure"),
                    }
                }
                Err(failure) => Err(failure),
            };
            outcomes.push(Outcome { id: row.id, kind: row.kind, attempts: row.attempts + 1, result });
            let since = *first_unrecorded.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= RECORD_EVERY {
                self.record(&mut outcomes).await?;
                first_unrecorded = None;
            }
            if shutdown.is(Phase::Draining) {
                stopped = true;
                break;
            }
        }
        // Rows claimed but not tried (shutdown) go back as they were.
        let untried: Vec<i64> = rows.map(|r| r.id).collect();
        if !untried.is_empty() {
            self.release(&untried).await?;
        }
        self.record(&mut outcomes).await?;
        if let Some(Connection::Plain(c)) = conn {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.quit()).await;
        } else if let Some(Connection::Tls(c)) = conn {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.quit()).await;
        }
        Ok(if stopped { Pass::Stopped } else { Pass::Done { processed } })
    }

    /// The message signed with the `[dkim]` key, when there is one (signed at each attempt: see
    /// `outbox::dkim`). A message without the fields to sign never will be (permanent); another
    /// signing failure is retried rather than the message sent unsigned, which the domain's DMARC
    /// policy may have receivers reject.
    fn signed(&self, mut mail: Mail) -> Result<Mail, Failure> {
        let signer = self.dkim.load();
        let Some(signer) = signer.as_deref() else { return Ok(mail) };
        match signer.sign(&crlf_lines(&mail.data)) {
            Ok(signed) => {
                mail.data = signed;
                Ok(mail)
            }
            Err(e @ SignError::Unsignable) => Err(Failure::Permanent(format!("DKIM: {e}"))),
            Err(e @ SignError::Failed(_)) => Err(Failure::Temporary(format!("DKIM: {e}"))),
        }
    }

    /// Takes the due rows for this worker, leased to it for [`Worker::lease`].
    async fn claim(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let now = now_millis();
        rows::claim(&self.store, now, now + self.lease().as_millis() as i64, self.config.batch).await
    }

    /// Hands claimed rows back, due now, without counting an attempt.
    async fn release(&self, ids: &[i64]) -> Result<(), StoreError> {
        rows::release(&self.store, ids).await
    }

    /// Writes (and drains) the outcomes in one transaction.
    async fn record(&self, outcomes: &mut Vec<Outcome>) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let attempts: Vec<(i64, i64, Attempt)> = outcomes
            .iter()
            .map(|o| {
                let attempt = match &o.result {
                    Ok(Delivery::Sent) => Attempt::Sent { note: None },
                    Ok(Delivery::Partial(note)) => Attempt::Sent { note: Some(note.as_str()) },
                    Err(failure) if self.gives_up(failure, o.attempts) => Attempt::Failed { error: failure.text() },
                    Err(failure) => Attempt::Retry {
                        error: failure.text(),
                        next_attempt_at: now + self.config.backoff(o.attempts as u32).as_millis() as i64,
                    },
                };
                (o.id, o.attempts, attempt)
            })
            .collect();
        rows::record(&self.store, &attempts, now).await?;
        for o in outcomes.drain(..) {
            let (id, kind, attempts) = (o.id, o.kind.as_str(), o.attempts);
            match o.result {
                Ok(Delivery::Sent) => tracing::debug!(id, kind, attempts, "outbox: sent"),
                Ok(Delivery::Partial(note)) => tracing::warn!(id, kind, attempts, "outbox: sent, but {note}"),
                Err(failure) if self.gives_up(&failure, attempts) => {
                    tracing::warn!(id, kind, attempts, error = failure.text(), "outbox: delivery failed, giving up")
                }
                Err(failure) => tracing::info!(id, kind, attempts, error = failure.text(), "outbox: delivery deferred, will retry"),
            }
        }
        Ok(())
    }
}
