//! The case workflow, for every staff view (the HTTP API now; the web page and IMAP next): reading
//! a case with its messages, entries and history, the raw message, the queues and their listings
//! and statistics, and the actions (claim, assign, transfer, escalate, status, priority,
//! category, tags, note, follow-up, reply).
//!
//! Every operation takes the acting [`Principal`] and applies the same rules whoever calls: a
//! case in a queue the caller cannot read is "not found" (its existence is not revealed);
//! permission comes before validation, so a refused caller learns nothing from the reason
//! (not found, then forbidden, then invalid). Reads of customer data are audited; each action
//! commits its change with its `case_history` row and audit entry in one transaction
//! ([`crate::store::cases::CaseChange`]).
//!
//! * `workflow`: the actions on a case.
//! * `reply`: the reply to the customer through the outbox: prepared (a draft to preview), sent.
//! * `reply_form`: the templates offered for a case, one filled in for the reply form.
//! * `review`: four eyes: approving or returning a reply in a queue with `review = true`.
//! * `templates`: reply templates and the placeholder language of a reply.
//! * `undo`: taking a reply back within the undo window.
//! * `view`: a case with everything in it; the raw message.
//! * `queues`: the queues I may read with their counts, a queue's listing, statistics.
//! * `dashboard`: the supervisors' dashboard (backlog, flow, times, SLA, volumes).
//! * `period`: statistics of a period (volumes, working-time response and resolution, SLA, agents).
//! * `period_export`: those statistics as a text table and as CSV.
//! * `escalation`: the SLA sweep (warnings, breaches, new urgent cases) and staff notifications.
//! * `notifications`: a staff user's notifications (list, unread count, mark read).
//! * `presence`: who is viewing or replying to which case (heartbeats that expire, no locks).
//! * `input`: the rules for what staff type in.
//! * `error`: why an operation was refused.

pub mod dashboard;
pub mod error;
pub mod escalation;
pub mod input;
pub mod notifications;
pub mod period;
pub mod period_export;
pub mod presence;
pub mod queues;
pub mod reply;
pub mod reply_form;
pub mod retention;
pub mod review;
pub mod templates;
pub mod undo;
pub mod view;
pub mod workflow;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::access::Access;
use crate::intake::regnum::RegFormat;
use crate::intake::sla::Calendar;
use crate::store::Store;
pub use error::CaseError;
pub use presence::Activity;
pub use queues::{CaseList, ListRequest, ListedCase, QueueSummary, Statistics};
pub use view::{CaseView, RawMessage, last_event, parse_last_event};
pub use workflow::Outcome;

/// A configured queue, as the case service needs it.
#[derive(Debug, Clone)]
pub struct QueueSetting {
    pub name: String,
    /// The address the queue is reached at (its first): the From: of replies.
    pub address: Option<String>,
    /// Replies wait for review (four eyes) before they are sent.
    pub review: bool,
}

/// A configured category: code and name.
#[derive(Debug, Clone)]
pub struct Category {
    pub code: String,
    pub name: String,
}

/// What the service needs from the configuration, built at start by whoever wires it and again
/// at each configuration reload.
#[derive(Debug, Clone)]
pub struct CaseSettings {
    /// In configuration order.
    pub queues: Vec<QueueSetting>,
    pub categories: Vec<Category>,
    /// Due times follow a change of priority.
    pub calendar: Arc<Calendar>,
    /// The right-hand side of reply Message-IDs.
    pub hostname: String,
    /// Replies go out through the outbox; without one they are refused.
    pub outbox_configured: bool,
    /// Every address of ours, lower-cased: never replied to.
    pub own_addresses: HashSet<String>,
    /// How registration numbers are written (for the raw message by number).
    pub reg_format: RegFormat,
    /// Reply templates (`[[templates]]`), in configuration order.
    pub templates: Vec<templates::ReplyTemplate>,
    /// How long a reply waits in the outbox, withdrawable, before it may be sent (`[outbox]
    /// undo_seconds`; zero: sent at once).
    pub undo_window: std::time::Duration,
    /// A presence heartbeat counts this long (`[http] presence_expiry`).
    pub presence_expiry: Duration,
}

impl CaseSettings {
    pub(crate) fn queue(&self, name: &str) -> Option<&QueueSetting> {
        self.queues.iter().find(|q| q.name == name)
    }

    fn queue_address(&self, name: &str) -> Option<&str> {
        self.queue(name).and_then(|q| q.address.as_deref())
    }
}

/// The case service: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Cases {
    access: Access,
    /// Swapped whole by a configuration reload (SIGHUP); a request reads it once.
    settings: Arc<arc_swap::ArcSwap<CaseSettings>>,
    presence: Arc<presence::Presence>,
}

impl Cases {
    pub fn new(access: Access, settings: CaseSettings) -> Cases {
        let presence = Arc::new(presence::Presence::new(settings.presence_expiry));
        Cases { access, settings: Arc::new(arc_swap::ArcSwap::from_pointee(settings)), presence }
    }

    /// The settings in force now (a reload replaces them; what a caller holds stays consistent).
    pub fn settings(&self) -> Arc<CaseSettings> {
        self.settings.load_full()
    }

    /// Puts reloaded settings in force for the requests that start from now on.
    pub fn replace_settings(&self, settings: CaseSettings) {
        self.settings.store(Arc::new(settings));
    }

    fn store(&self) -> &Store {
        &self.access.store
    }
}
