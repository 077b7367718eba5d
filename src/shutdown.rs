//! Graceful shutdown in two phases, broadcast to every task through a watch channel.
//!
//! Draining: listeners stop accepting; sessions waiting for a command send 421 and close; sessions
//! in the middle of a transaction finish it first. Forced (after `limits.shutdown_grace`): every
//! session still open sends 421 and closes, even mid-transaction (nothing was acknowledged, so the
//! sender retries and nothing is lost).

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Forced,
}

#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Phase>,
}

pub struct ShutdownTrigger {
    tx: watch::Sender<Phase>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(Phase::Running);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn set(&self, phase: Phase) {
        self.tx.send_if_modified(|p| {
            let advance = phase > *p;
            if advance {
                *p = phase;
            }
            advance
        });
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown { rx: self.tx.subscribe() }
    }
}

impl Shutdown {
    /// Resolves once the phase is at least `phase` (immediately if it already is).
    pub async fn reached(&mut self, phase: Phase) {
        // An error means the trigger is gone, which only happens when the process is ending.
        let _ = self.rx.wait_for(|p| *p >= phase).await;
    }

    pub fn is(&self, phase: Phase) -> bool {
        *self.rx.borrow() >= phase
    }
}
