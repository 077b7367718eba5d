//! What intake decides by: the routing, numbering and acknowledgement state derived from the
//! configuration once, at start (built by `config`), shared by every session.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::config::QueueConfig;
use super::regnum::RegFormat;
use super::rules::{CategoryConfig, RuleSet};
use super::sla::Calendar;
use crate::outbox::AckTemplate;
use crate::store::codec::Compression;

pub struct Policy {
    pub reg_format: RegFormat,
    /// Lower-cased accepted domains.
    pub domains: BTreeSet<String>,
    /// Lower-cased address → queue name.
    pub addresses: HashMap<String, String>,
    /// Every address of ours, lower-cased: never acknowledged (no loops between our own queues).
    pub own_addresses: HashSet<String>,
    /// `[mail] recipient_delimiter`: `local+tag@domain` is `local@domain`.
    pub recipient_delimiter: Option<String>,
    pub rules: Arc<RuleSet>,
    pub calendar: Arc<Calendar>,
    pub queues: Vec<QueueConfig>,
    pub categories: Vec<CategoryConfig>,
    /// The global acknowledgement text.
    pub acknowledgement: AckTemplate,
    /// `[intake] acknowledge`: whether rules acknowledge by default.
    pub acknowledge: bool,
    /// `[outbox] ack_window`, None without an outbox (then nothing is acknowledged).
    pub ack_window: Option<Duration>,
    /// Ours, for the Received header and acknowledgements.
    pub hostname: String,
    /// This node's name (`[server] node`), in the Received header: which of several nodes took
    /// the message.
    pub node: String,
    pub compression: Compression,
}

impl Policy {
    /// Where mail without a more specific queue goes (postmaster): the queue marked `default`,
    /// else the first configured queue.
    pub fn default_queue(&self) -> &str {
        let queues = &self.queues;
        queues.iter().find(|q| q.default).or(queues.first()).map_or("inbox", |q| q.name.as_str())
    }

    /// The acknowledgement text for a case: its category's, else its queue's, else the global one.
    pub fn acknowledgement_for(&self, queue: &str, category: Option<&str>) -> &AckTemplate {
        let by_category =
            category.and_then(|code| self.categories.iter().find(|c| c.code == code)).and_then(|c| c.acknowledgement.as_ref());
        let by_queue = self.queues.iter().find(|q| q.name == queue).and_then(|q| q.acknowledgement.as_ref());
        by_category.or(by_queue).unwrap_or(&self.acknowledgement)
    }

    /// The address a queue is reached at (its first), for the From: of acknowledgements.
    pub fn queue_address(&self, queue: &str) -> Option<&str> {
        self.queues.iter().find(|q| q.name == queue).and_then(|q| q.addresses.first()).map(String::as_str)
    }
}
