//! intake's sections: `[mail]` (domains), `[[queues]]` (addresses), `[registration]`, `[intake]`,
//! `[authentication]`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
/// SPF/DKIM/DMARC checks of incoming mail (the customer tier counts only for authenticated senders).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticationConfig {
    /// "dns": check with the system resolver; "off": no checks (every sender counts as unverified).
    pub verify: String,
    /// A file of recorded DNS answers to use instead of the network (tests, air-gapped sites).
    pub records: Option<PathBuf>,
    /// Upper bound for the checks of one message; past it the results are temperror.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AuthenticationConfig {
    fn default() -> Self {
        Self { verify: "dns".into(), records: None, timeout: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Acknowledge new messages unless a rule says otherwise (loop-safety rules always apply).
    pub acknowledge: bool,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self { acknowledge: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    pub format: String,
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self { format: "MR-{year}-{seq:06}-{check}".into(), duplicate_window: Duration::from_secs(48 * 3600) }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub domains: Vec<String>,
    pub recipient_delimiter: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Mail that no address routes more specifically (postmaster) goes here; at most one queue
    /// is the default, otherwise the first queue is.
    #[serde(default)]
    pub default: bool,
    /// Acknowledgement text for this queue (wins over the global one).
    pub acknowledgement: Option<crate::outbox::AckTemplate>,
    /// Replies wait for a second person with the `review` permission here before they are sent.
    #[serde(default)]
    pub review: bool,
}

impl AuthenticationConfig {
    /// (key within `[authentication]`, reason) for the first value that is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !matches!(self.verify.as_str(), "dns" | "off") {
            return Err(("verify".into(), format!("{:?} is not \"dns\" or \"off\"", self.verify)));
        }
        Ok(())
    }
}

impl MailConfig {
    /// The accepted domains, lower-cased; or (key within `[mail]`, reason).
    pub fn validate(&self) -> Result<BTreeSet<String>, (String, String)> {
        let mut domains = BTreeSet::new();
        for (i, domain) in self.domains.iter().enumerate() {
            let d = domain.trim().to_ascii_lowercase();
            if d.is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
                return Err((format!("domains[{i}]"), format!("not a domain name: {domain:?}")));
            }
            domains.insert(d);
        }
        if let Some(delimiter) = &self.recipient_delimiter
            && (delimiter.chars().count() != 1 || delimiter == "@")
        {
            return Err(("recipient_delimiter".into(), "must be a single character other than '@'".into()));
        }
        Ok(domains)
    }
}

/// What the `[[queues]]` list routes to: lower-cased address → queue name, and the queue names.
pub struct Routes {
    pub addresses: HashMap<String, String>,
    pub names: BTreeSet<String>,
}

/// What the `[[queues]]` list routes: lower-cased address → queue name, and the queue names; or
/// (key such as `[1].addresses[0]`, reason) for the first wrong entry.
pub fn validate_queues(queues: &[QueueConfig], domains: &BTreeSet<String>) -> Result<Routes, (String, String)> {
    let mut addresses = HashMap::new();
    let mut names = BTreeSet::new();
    for (qi, queue) in queues.iter().enumerate() {
        if queue.name.is_empty() || !queue.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err((format!("[{qi}].name"), "must be letters, digits, '-' or '_'".into()));
        }
        if !names.insert(queue.name.clone()) {
            return Err((format!("[{qi}].name"), format!("queue {:?} is defined twice", queue.name)));
        }
        for (ai, address) in queue.addresses.iter().enumerate() {
            let key = format!("[{qi}].addresses[{ai}]");
            let lower = address.trim().to_lowercase();
            let Some((_, domain)) = lower.rsplit_once('@') else {
                return Err((key, format!("not an address: {address:?}")));
            };
            if !domains.contains(domain) {
                return Err((key, format!("domain {domain:?} is not in mail.domains")));
            }
            if let Some(other) = addresses.insert(lower.clone(), queue.name.clone()) {
                return Err((key, format!("address {address:?} already feeds queue {other:?}")));
            }
        }
        if let Some(template) = &queue.acknowledgement {
            template.validate().map_err(|reason| (format!("[{qi}].acknowledgement"), reason))?;
        }
    }
    if let Some(i) = queues.iter().enumerate().filter(|(_, q)| q.default).nth(1).map(|(i, _)| i) {
        return Err((format!("[{i}].default"), "only one queue can be the default".into()));
    }
    Ok(Routes { addresses, names })
}
