//! The `[escalation]` section: when the SLA sweep warns, what a breach does, which new cases tell
//! their queue, how often it runs and who the notifications come from.

use std::time::Duration;

use serde::Deserialize;

use crate::store::directory::TIERS;
use crate::store::priority::Priority;

/// `[escalation]` as written; [`EscalationConfig::validate`] turns it into [`Escalation`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// false: no sweep (no warnings, breaches or notifications).
    pub enabled: bool,
    /// The share of the SLA time (from opening to due) after which the assignee, or else the
    /// queue's staff, is warned: "80%".
    pub warn_at: String,
    /// The priority a breached case is raised to (never lowered); "" keeps its priority.
    pub breach_priority: String,
    /// The tag a breached case gets; "" adds none.
    pub breach_tag: String,
    /// New cases of these priorities (urgent, normal, low) or customer tiers (vip, long-term,
    /// prospect) notify the queue's staff.
    pub notify_new: Vec<String>,
    /// How often the sweep runs (one node at a time, under a lease).
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
    /// Events handled per kind and sweep (the rest wait for the next one).
    pub batch: usize,
    /// From: of notification mails; default `mailroom@` the server's host name.
    pub from: Option<String>,
    /// The web page's address, for links in the mails (e.g. "https://mailroom.example.org").
    pub web_url: Option<String>,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            enabled: true,
            warn_at: "80%".into(),
            breach_priority: "urgent".into(),
            breach_tag: "overdue".into(),
            notify_new: Vec::new(),
            sweep_every: Duration::from_secs(60),
            batch: 100,
            from: None,
            web_url: None,
        }
    }
}

/// The validated policy the sweep runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub enabled: bool,
    /// The warning point in thousandths of the SLA time.
    pub warn_permille: i64,
    pub breach_priority: Option<Priority>,
    pub breach_tag: Option<String>,
    pub new_priorities: Vec<String>,
    pub new_tiers: Vec<String>,
    pub sweep_every: Duration,
    pub batch: usize,
    pub from: String,
    pub web_url: Option<String>,
}

impl EscalationConfig {
    /// Checks the section; or (key within `[escalation]`, reason). `hostname` makes the default
    /// From: address.
    pub fn validate(&self, hostname: &str) -> Result<Escalation, (String, String)> {
        let bad = |key: &str, reason: &str| (key.to_string(), reason.to_string());
        let warn_permille =
            parse_share(&self.warn_at).ok_or_else(|| bad("warn_at", "must be a share of the SLA time from 1% to 99%, e.g. \"80%\""))?;
        let breach_priority = match self.breach_priority.trim() {
            "" => None,
            p => Some(p.parse::<Priority>().map_err(|_| bad("breach_priority", "must be urgent, normal, low or \"\""))?),
        };
        let tag = self.breach_tag.trim();
        if tag.len() > 64 || tag.chars().any(char::is_control) {
            return Err(bad("breach_tag", "must be at most 64 characters, no control characters"));
        }
        let (mut new_priorities, mut new_tiers) = (Vec::new(), Vec::new());
        for (i, item) in self.notify_new.iter().enumerate() {
            let item = item.trim().to_lowercase();
            if item.parse::<Priority>().is_ok() {
                new_priorities.push(item);
            } else if TIERS.contains(&item.as_str()) {
                new_tiers.push(item);
            } else {
                return Err((
                    format!("notify_new[{i}]"),
                    format!("{item:?} is neither a priority (urgent, normal, low) nor a tier ({})", TIERS.join(", ")),
                ));
            }
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&self.sweep_every) {
            return Err(bad("sweep_every", "must be between 1s and 24h"));
        }
        if !(1..=10_000).contains(&self.batch) {
            return Err(bad("batch", "must be between 1 and 10000"));
        }
        let from = match &self.from {
            Some(from) if from.contains('@') && !from.contains(['\r', '\n']) => from.trim().to_string(),
            Some(_) => return Err(bad("from", "must be an address, e.g. mailroom@example.org or \"Mailroom <mailroom@example.org>\"")),
            None => format!("mailroom@{hostname}"),
        };
        let web_url = match &self.web_url {
            Some(url) if (url.starts_with("https://") || url.starts_with("http://")) && !url.contains(char::is_whitespace) => {
                Some(url.trim_end_matches('/').to_string())
            }
            Some(_) => return Err(bad("web_url", "must be an http:// or https:// address without spaces")),
            None => None,
        };
        Ok(Escalation {
            enabled: self.enabled,
            warn_permille,
            breach_priority,
            breach_tag: (!tag.is_empty()).then(|| tag.to_string()),
            new_priorities,
            new_tiers,
            sweep_every: self.sweep_every,
            batch: self.batch,
            from,
            web_url,
        })
    }
}

/// "80%" (or "80 %", "12.5%") → thousandths, within 1 %..99 %.
fn parse_share(text: &str) -> Option<i64> {
    let number = text.trim().strip_suffix('%')?.trim();
    let value: f64 = number.parse().ok()?;
    (1.0..=99.0).contains(&value).then(|| (value * 10.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values_are_checked() {
        let policy = EscalationConfig::default().validate("mx.example.org").unwrap();
        assert_eq!(
            (policy.warn_permille, policy.breach_priority, policy.from.as_str()),
            (800, Some(Priority::Urgent), "mailroom@mx.example.org")
        );
        assert_eq!(policy.breach_tag.as_deref(), Some("overdue"));
        let with = |f: fn(&mut EscalationConfig)| {
            let mut c = EscalationConfig::default();
            f(&mut c);
            c.validate("h").map(|_| ()).map_err(|(key, _)| key)
        };
        assert_eq!(with(|c| c.warn_at = "80".into()), Err("warn_at".into()));
        assert_eq!(with(|c| c.warn_at = "100%".into()), Err("warn_at".into()));
        assert_eq!(with(|c| c.warn_at = "12.5 %".into()), Ok(()));
        assert_eq!(with(|c| c.breach_priority = "asap".into()), Err("breach_priority".into()));
        assert_eq!(with(|c| c.notify_new = vec!["urgent".into(), "gold".into()]), Err("notify_new[1]".into()));
        assert_eq!(with(|c| c.sweep_every = Duration::ZERO), Err("sweep_every".into()));
        assert_eq!(with(|c| c.from = Some("nobody".into())), Err("from".into()));
        let policy = EscalationConfig { notify_new: vec!["urgent".into(), "VIP".into()], ..Default::default() }.validate("h").unwrap();
        assert_eq!((policy.new_priorities, policy.new_tiers), (vec!["urgent".to_string()], vec!["vip".to_string()]));
    }
}
