//! Classification rules from the configuration: an ordered list, first match wins unless the
//! rule says `continue = true`. A rule matches when ALL its conditions hold; its actions set the
//! category, priority and queue, add tags, and decide on acknowledgement and spam.
//!
//! Rules are compiled once at start (regexes, patterns, day/hour windows), so a bad rule stops the
//! start with FILE:LINE: rules[i].key: reason instead of misrouting mail at 3 a.m.

use std::cell::OnceCell;
use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use mail_parser::{Message, MessageParser};
use regex::Regex;
use serde::Deserialize;

use super::sla::Priority;

/// One `[[rules]]` entry as written in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    // Conditions (all must hold; an absent condition always holds).
    /// Sender address patterns (`*` wildcard), matched against the envelope sender and every
    /// From: address.
    #[serde(default)]
    pub from: Vec<String>,
    #[serde(default)]
    pub from_domain: Vec<String>,
    /// Recipient address patterns (any accepted recipient).
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub subject_contains: Vec<String>,
    pub subject_regex: Option<String>,
    #[serde(default)]
    pub body_contains: Vec<String>,
    pub body_regex: Option<String>,
    #[serde(default)]
    pub header: Vec<HeaderCondition>,
    /// Customer tiers (vip, long-term, prospect, or "none" for senders not in the directory).
    #[serde(default)]
    pub tier: Vec<String>,
    #[serde(default)]
    pub spf: Vec<String>,
    #[serde(default)]
    pub dkim: Vec<String>,
    #[serde(default)]
    pub dmarc: Vec<String>,
    /// DMARC pass or aligned DKIM.
    pub authenticated: Option<bool>,
    pub size_over: Option<u64>,
    pub size_under: Option<u64>,
    pub has_attachment: Option<bool>,
    /// Reception day/time window, in the SLA time zone: `days = ["sat", "sun"]`,
    /// `hours = "18:00-08:00"` (a window may wrap midnight).
    #[serde(default)]
    pub days: Vec<String>,
    pub hours: Option<String>,
    // Actions.
    pub category: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub priority: Option<Priority>,
    pub queue: Option<String>,
    pub acknowledge: Option<bool>,
    pub spam: Option<bool>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    pub name: String,
    pub exists: Option<bool>,
    pub equals: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
}

/// A category from `[[categories]]`: a name and its short code (e.g. BZZX, TSJJ).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub code: String,
    pub name: String,
    /// Acknowledgement text for this category (wins over the queue's and the global one).
    pub acknowledgement: Option<crate::outbox::AckTemplate>,
}

/// A rule problem, located by the config loader: `key` is relative to `rules[i]`.
#[derive(Debug)]
pub struct RuleError {
    pub index: usize,
    pub key: String,
    pub reason: String,
}

struct CompiledHeader {
    name: String,
    exists: Option<bool>,
    equals: Option<String>,
    contains: Option<String>,
    regex: Option<Regex>,
}

struct Rule {
    config: RuleConfig,
    from: Vec<String>,
    from_domain: Vec<String>,
    to: Vec<String>,
    subject_contains: Vec<String>,
    subject_regex: Option<Regex>,
    body_contains: Vec<String>,
    body_regex: Option<Regex>,
    header: Vec<CompiledHeader>,
    days: Vec<Weekday>,
    hours: Option<(NaiveTime, NaiveTime)>,
}

/// The compiled, validated rule list.
pub struct RuleSet {
    rules: Vec<Rule>,
    timezone: chrono_tz::Tz,
}

/// Authentication results as far as rules are concerned (no addresses).
#[derive(Debug, Clone, Default)]
pub struct AuthFacts {
    pub spf: String,
    pub dkim: String,
    pub dmarc: String,
    pub authenticated: bool,
}

/// What the rules look at. Body and headers are parsed only if a rule asks for them.
pub struct Facts<'a> {
    pub raw: &'a [u8],
    pub envelope_from: &'a str,
    pub from_addresses: &'a [String],
    pub recipients: &'a [String],
    pub subject: &'a str,
    pub tier: Option<&'a str>,
    pub auth: &'a AuthFacts,
    pub size: usize,
    pub has_attachment: bool,
    pub received: DateTime<Utc>,
    parsed: OnceCell<Option<Message<'a>>>,
    /// The header block, when the caller parsed it already.
    given_headers: Option<&'a Message<'a>>,
    headers: OnceCell<Option<Message<'a>>>,
    body: OnceCell<String>,
}

impl<'a> Facts<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        raw: &'a [u8],
        envelope_from: &'a str,
        from_addresses: &'a [String],
        recipients: &'a [String],
        subject: &'a str,
        tier: Option<&'a str>,
        auth: &'a AuthFacts,
        size: usize,
        has_attachment: bool,
        received: DateTime<Utc>,
    ) -> Facts<'a> {
        Facts {
            raw,
            envelope_from,
            from_addresses,
            recipients,
            subject,
            tier,
            auth,
            size,
            has_attachment,
            received,
            parsed: OnceCell::new(),
            given_headers: None,
            headers: OnceCell::new(),
            body: OnceCell::new(),
        }
    }

    /// Uses an already parsed header block instead of parsing it again.
    pub fn with_headers(mut self, headers: Option<&'a Message<'a>>) -> Facts<'a> {
        self.given_headers = headers;
        self
    }

    fn message(&self) -> Option<&Message<'a>> {
        self.parsed.get_or_init(|| MessageParser::default().parse(self.raw)).as_ref()
    }

    fn body(&self) -> &str {
        self.body.get_or_init(|| self.message().and_then(|m| m.body_text(0).map(|b| b.into_owned())).unwrap_or_default())
    }

    /// Header conditions need only the header block: no body decoding for them.
    fn header<'s>(&'s self, name: &'s str) -> Option<&'s str> {
        let headers = match self.given_headers {
            Some(given) => Some(given),
            None => self.headers.get_or_init(|| MessageParser::default().parse_headers(self.raw)).as_ref(),
        };
        headers.and_then(|m| m.header_raw(name)).map(str::trim)
    }
}

/// The outcome of classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Queues that get a case (routing by recipient, unless a rule names a queue).
    pub queues: Vec<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub priority: Priority,
    pub acknowledge: bool,
    pub spam: bool,
    /// Which rules matched, each with the reasons, for `mailroom rules test`.
    pub matched: Vec<(String, Vec<String>)>,
}

/// `*` matches any run of characters; everything else literally, case-insensitively.
fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || !value[first.len()..].ends_with(last) || value.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

fn parse_day(name: &str) -> Option<Weekday> {
    match name.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Some(Weekday::Mon),
        "tue" | "tuesday" => Some(Weekday::Tue),
        "wed" | "wednesday" => Some(Weekday::Wed),
        "thu" | "thursday" => Some(Weekday::Thu),
        "fri" | "friday" => Some(Weekday::Fri),
        "sat" | "saturday" => Some(Weekday::Sat),
        "sun" | "sunday" => Some(Weekday::Sun),
        _ => None,
    }
}

fn parse_window(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (a, b) = text.split_once('-')?;
    let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
    (start != end).then_some((start, end))
}

const VERDICTS: [&str; 7] = ["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"];
const TIERS: [&str; 4] = ["vip", "long-term", "prospect", "none"];

impl RuleSet {
    /// Compiles and validates the rules against the known queues and categories.
    pub fn compile(
        configs: &[RuleConfig],
        queues: &BTreeSet<String>,
        categories: &BTreeSet<String>,
        timezone: &str,
    ) -> Result<RuleSet, RuleError> {
        let timezone: chrono_tz::Tz =
            timezone.parse().map_err(|_| RuleError { index: 0, key: String::new(), reason: format!("unknown time zone {timezone:?}") })?;
        let mut rules = Vec::with_capacity(configs.len());
        let mut names = BTreeSet::new();
        for (index, c) in configs.iter().enumerate() {
            let fail =
                |key: &str, reason: String| RuleError { index, key: key.to_string(), reason: format!("rule {:?}: {reason}", c.name) };
            if c.name.trim().is_empty() {
                return Err(fail("name", "every rule needs a name".into()));
            }
            if !names.insert(c.name.clone()) {
                return Err(fail("name", "a rule with this name comes earlier".into()));
            }
            let regex = |key: &str, pattern: &Option<String>| -> Result<Option<Regex>, RuleError> {
                pattern
                    .as_deref()
                    .map(|p| {
                        Regex::new(p).map_err(|e| fail(key, format!("bad regex: {}", e.to_string().lines().last().unwrap_or("invalid"))))
                    })
                    .transpose()
            };
            let subject_regex = regex("subject_regex", &c.subject_regex)?;
            let body_regex = regex("body_regex", &c.body_regex)?;
            let mut header = Vec::new();
            for (hi, h) in c.header.iter().enumerate() {
                if h.name.trim().is_empty() || h.name.contains(':') {
                    return Err(fail(&format!("header[{hi}].name"), format!("not a header name: {:?}", h.name)));
                }
                let compiled = regex(&format!("header[{hi}].regex"), &h.regex)?;
                header.push(CompiledHeader {
                    name: h.name.trim().to_string(),
                    exists: h.exists,
                    equals: h.equals.clone(),
                    contains: h.contains.as_ref().map(|s| s.to_lowercase()),
                    regex: compiled,
                });
            }
            for (key, values, allowed) in [
                ("spf", &c.spf, &VERDICTS[..]),
                ("dkim", &c.dkim, &VERDICTS[..]),
                ("dmarc", &c.dmarc, &VERDICTS[..]),
                ("tier", &c.tier, &TIERS[..]),
            ] {
                if let Some(bad) = values.iter().find(|v| !allowed.contains(&v.to_ascii_lowercase().as_str())) {
                    return Err(fail(key, format!("{bad:?} is not one of {}", allowed.join(", "))));
                }
            }
            let mut days = Vec::new();
            for d in &c.days {
                days.push(parse_day(d).ok_or_else(|| fail("days", format!("{d:?} is not a day (mon..sun)")))?);
            }
            let hours = match &c.hours {
                Some(h) => Some(parse_window(h).ok_or_else(|| fail("hours", format!("{h:?} is not HH:MM-HH:MM")))?),
                None => None,
            };
            if let Some(q) = &c.queue
                && !queues.contains(q)
            {
                return Err(fail("queue", format!("no queue named {q:?}")));
            }
            if let Some(code) = &c.category
                && !categories.contains(code)
            {
                return Err(fail("category", format!("no category with code {code:?} in [[categories]]")));
            }
            if let (Some(over), Some(under)) = (c.size_over, c.size_under)
                && over >= under
            {
                return Err(fail("size_under", "size_under must be larger than size_over".into()));
            }
            let lower = |v: &Vec<String>| v.iter().map(|s| s.trim().to_lowercase()).collect::<Vec<_>>();
            rules.push(Rule {
                config: c.clone(),
                from: lower(&c.from),
                from_domain: lower(&c.from_domain).into_iter().map(|d| d.trim_start_matches('@').to_string()).collect(),
                to: lower(&c.to),
                subject_contains: lower(&c.subject_contains),
                subject_regex,
                body_contains: lower(&c.body_contains),
                body_regex,
                header,
                days,
                hours,
            });
        }
        Ok(RuleSet { rules, timezone })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the rules. `routed` are the queues the recipients feed, in RCPT order.
    pub fn evaluate(&self, facts: &Facts, routed: Vec<String>, acknowledge_by_default: bool) -> Decision {
        let mut d = Decision {
            queues: routed,
            category: None,
            tags: Vec::new(),
            priority: Priority::Normal,
            acknowledge: acknowledge_by_default,
            spam: false,
            matched: Vec::new(),
        };
        for rule in &self.rules {
            let Some(reasons) = self.matches(rule, facts) else { continue };
            let c = &rule.config;
            if let Some(category) = &c.category {
                d.category = Some(category.clone());
            }
            if let Some(priority) = c.priority {
                d.priority = priority;
            }
            if let Some(queue) = &c.queue {
                d.queues = vec![queue.clone()];
            }
            if let Some(ack) = c.acknowledge {
                d.acknowledge = ack;
            }
            if let Some(spam) = c.spam {
                d.spam = spam;
            }
            for tag in &c.tags {
                if !d.tags.contains(tag) {
                    d.tags.push(tag.clone());
                }
            }
            d.matched.push((c.name.clone(), reasons));
            if !c.continue_matching {
                break;
            }
        }
        if d.spam {
            d.acknowledge = false;
        }
        d
    }

    /// The reasons a rule matches, or None if any condition fails.
    fn matches(&self, rule: &Rule, f: &Facts) -> Option<Vec<String>> {
        let mut why = Vec::new();
        let sender = f.envelope_from.to_lowercase();
        let senders: Vec<&str> =
            std::iter::once(sender.as_str()).chain(f.from_addresses.iter().map(String::as_str)).filter(|s| !s.is_empty()).collect();
        if !rule.from.is_empty() {
            let hit = rule.from.iter().find(|p| senders.iter().any(|s| glob_match(p, s)))?;
            why.push(format!("sender matches {hit:?}"));
        }
        if !rule.from_domain.is_empty() {
            let hit = rule.from_domain.iter().find(|d| {
                senders.iter().any(|s| s.rsplit_once('@').is_some_and(|(_, dom)| dom == d.as_str() || dom.ends_with(&format!(".{d}"))))
            })?;
            why.push(format!("sender domain is {hit:?}"));
        }
        if !rule.to.is_empty() {
            let hit = rule.to.iter().find(|p| f.recipients.iter().any(|r| glob_match(p, &r.to_lowercase())))?;
            why.push(format!("recipient matches {hit:?}"));
        }
        if !rule.subject_contains.is_empty() {
            let subject = f.subject.to_lowercase();
            let hit = rule.subject_contains.iter().find(|w| subject.contains(w.as_str()))?;
            why.push(format!("subject contains {hit:?}"));
        }
        if let Some(re) = &rule.subject_regex {
            if !re.is_match(f.subject) {
                return None;
            }
            why.push(format!("subject matches /{}/", re.as_str()));
        }
        if !rule.body_contains.is_empty() {
            let body = f.body().to_lowercase();
            let hit = rule.body_contains.iter().find(|w| body.contains(w.as_str()))?;
            why.push(format!("body contains {hit:?}"));
        }
        if let Some(re) = &rule.body_regex {
            if !re.is_match(f.body()) {
                return None;
            }
            why.push(format!("body matches /{}/", re.as_str()));
        }
        for h in &rule.header {
            let value = f.header(&h.name);
            if let Some(exists) = h.exists {
                if value.is_some() != exists {
                    return None;
                }
                why.push(format!("header {} {}", h.name, if exists { "present" } else { "absent" }));
            }
            if let Some(equals) = &h.equals {
                if !value.is_some_and(|v| v.eq_ignore_ascii_case(equals)) {
                    return None;
                }
                why.push(format!("header {} = {equals:?}", h.name));
            }
            if let Some(contains) = &h.contains {
                if !value.is_some_and(|v| v.to_lowercase().contains(contains.as_str())) {
                    return None;
                }
                why.push(format!("header {} contains {contains:?}", h.name));
            }
            if let Some(re) = &h.regex {
                if !value.is_some_and(|v| re.is_match(v)) {
                    return None;
                }
                why.push(format!("header {} matches /{}/", h.name, re.as_str()));
            }
        }
        if !rule.config.tier.is_empty() {
            let tier = f.tier.unwrap_or("none");
            if !rule.config.tier.iter().any(|t| t.eq_ignore_ascii_case(tier)) {
                return None;
            }
            why.push(format!("customer tier is {tier}"));
        }
        for (name, wanted, got) in [
            ("spf", &rule.config.spf, &f.auth.spf),
            ("dkim", &rule.config.dkim, &f.auth.dkim),
            ("dmarc", &rule.config.dmarc, &f.auth.dmarc),
        ] {
            if !wanted.is_empty() {
                if !wanted.iter().any(|w| w.eq_ignore_ascii_case(got)) {
                    return None;
                }
                why.push(format!("{name}={got}"));
            }
        }
        if let Some(authenticated) = rule.config.authenticated {
            if f.auth.authenticated != authenticated {
                return None;
            }
            why.push(format!("sender {}authenticated", if authenticated { "" } else { "not " }));
        }
        if let Some(over) = rule.config.size_over {
            if f.size as u64 <= over {
                return None;
            }
            why.push(format!("size {} > {over}", f.size));
        }
        if let Some(under) = rule.config.size_under {
            if f.size as u64 >= under {
                return None;
            }
            why.push(format!("size {} < {under}", f.size));
        }
        if let Some(has) = rule.config.has_attachment {
            if f.has_attachment != has {
                return None;
            }
            why.push(format!("{} attachments", if has { "has" } else { "no" }));
        }
        if !rule.days.is_empty() || rule.hours.is_some() {
            let local = f.received.with_timezone(&self.timezone);
            if !rule.days.is_empty() && !rule.days.contains(&local.weekday()) {
                return None;
            }
            if let Some((start, end)) = rule.hours {
                let t = local.time();
                let inside = if start < end { t >= start && t < end } else { t >= start || t < end };
                if !inside {
                    return None;
                }
            }
            why.push(format!("received {} {}", local.format("%a %H:%M"), self.timezone));
        }
        if why.is_empty() {
            why.push("no conditions (always matches)".into());
        }
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rules: &str) -> Result<RuleSet, RuleError> {
        #[derive(Deserialize)]
        struct Wrapper {
            rules: Vec<RuleConfig>,
        }
        let w: Wrapper = toml::from_str(rules).unwrap();
        let queues = ["support", "sales", "complaints"].iter().map(|s| s.to_string()).collect();
        let categories = ["BZZX", "TSJJ"].iter().map(|s| s.to_string()).collect();
        RuleSet::compile(&w.rules, &queues, &categories, "Europe/Berlin")
    }

    struct Msg {
        raw: Vec<u8>,
        from: Vec<String>,
        rcpts: Vec<String>,
        subject: String,
        auth: AuthFacts,
        tier: Option<&'static str>,
        attachment: bool,
        at: DateTime<Utc>,
    }

    fn msg(subject: &str, body: &str) -> Msg {
        let raw =
            format!("From: Ana <ana@customer.org>\r\nTo: support@example.com\r\nSubject: {subject}\r\nX-Priority: 1\r\n\r\n{body}\r\n")
                .into_bytes();
        Msg {
            raw,
            from: vec!["ana@customer.org".into()],
            rcpts: vec!["support@example.com".into()],
            subject: subject.into(),
            auth: AuthFacts { spf: "pass".into(), dkim: "pass".into(), dmarc: "pass".into(), authenticated: true },
            tier: None,
            attachment: false,
            // Monday 23 Nov 2026, 10:00 in Berlin.
            at: "2026-11-23T09:00:00Z".parse().unwrap(),
        }
    }

    fn run(rules: &RuleSet, m: &Msg) -> Decision {
        let facts =
            Facts::new(&m.raw, "bounce@customer.org", &m.from, &m.rcpts, &m.subject, m.tier, &m.auth, m.raw.len(), m.attachment, m.at);
        rules.evaluate(&facts, vec!["support".into()], true)
    }

    const TABLE: &str = r#"
[[rules]]
name = "spam words"
subject_regex = "(?i)viagra|lottery"
spam = true
tags = ["spam"]

[[rules]]
name = "vip"
tier = ["vip"]
authenticated = true
priority = "urgent"
tags = ["vip"]
continue = true

[[rules]]
name = "complaint"
subject_contains = ["complaint", "Beschwerde"]
category = "TSJJ"
queue = "complaints"
tags = ["complaint"]

[[rules]]
name = "order"
body_contains = ["purchase order"]
category = "BZZX"
queue = "sales"
priority = "normal"

[[rules]]
name = "urgent header"
header = [{ name = "X-Priority", equals = "1" }]
from_domain = ["customer.org"]
priority = "urgent"
continue = true

[[rules]]
name = "weekend"
days = ["sat", "sun"]
tags = ["weekend"]

[[rules]]
name = "big attachments"
has_attachment = true
size_over = 50
tags = ["large"]
acknowledge = false
"#;

    #[test]
    fn table() {
        let rules = set(TABLE).unwrap();
        // (subject, body, tier, attachment, expected queue, category, priority, tags, ack, spam, matched)
        let d = run(&rules, &msg("I have a complaint", "hello"));
        assert_eq!(
            (d.queues.clone(), d.category.as_deref(), d.priority, d.tags.clone()),
            (vec!["complaints".to_string()], Some("TSJJ"), Priority::Normal, vec!["complaint".to_string()])
        );
        assert_eq!(d.matched.len(), 1);
        assert!(d.matched[0].1.iter().any(|r| r.contains("complaint")), "{:?}", d.matched);

        let d = run(&rules, &msg("WIN the LOTTERY", "x"));
        assert!(d.spam && !d.acknowledge, "spam is never acknowledged: {d:?}");
        assert_eq!(d.matched[0].0, "spam words");

        let d = run(&rules, &msg("Quote", "please see our Purchase Order 42"));
        assert_eq!((d.queues.clone(), d.category.as_deref()), (vec!["sales".to_string()], Some("BZZX")));

        // VIP continues into the complaint rule: both apply.
        let mut m = msg("Beschwerde", "x");
        m.tier = Some("vip");
        let d = run(&rules, &m);
        assert_eq!(d.priority, Priority::Urgent);
        assert_eq!(d.tags, vec!["vip".to_string(), "complaint".to_string()]);
        assert_eq!(d.queues, vec!["complaints".to_string()]);

        // A VIP that is not authenticated gets no VIP treatment from this rule.
        m.auth.authenticated = false;
        let d = run(&rules, &m);
        assert_eq!(d.priority, Priority::Normal);
        assert!(!d.tags.contains(&"vip".to_string()));

        // Header + domain, continuing; nothing else matches on a Monday: urgent, routed by recipient.
        let d = run(&rules, &msg("hello", "plain"));
        assert_eq!((d.priority, d.queues.clone()), (Priority::Urgent, vec!["support".to_string()]));
        assert_eq!(d.matched.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), vec!["urgent header"]);

        // Saturday in Berlin.
        let mut m = msg("hello", "plain");
        m.at = "2026-11-28T12:00:00Z".parse().unwrap();
        assert!(run(&rules, &m).tags.contains(&"weekend".to_string()));

        let mut m = msg("files", "see attached");
        m.attachment = true;
        let d = run(&rules, &m);
        assert!(!d.acknowledge && d.tags.contains(&"large".to_string()));
    }

    #[test]
    fn no_rules_routes_by_recipient() {
        let rules = set("rules = []").unwrap();
        let d = run(&rules, &msg("x", "y"));
        assert_eq!(
            d,
            Decision {
                queues: vec!["support".into()],
                category: None,
                tags: vec![],
                priority: Priority::Normal,
                acknowledge: true,
                spam: false,
                matched: vec![]
            }
        );
    }

    #[test]
    fn bad_rules_are_rejected_with_the_key() {
        for (rules, key, needle) in [
            ("[[rules]]\nname = \"a\"\nsubject_regex = \"(unclosed\"\n", "subject_regex", "regex"),
            ("[[rules]]\nname = \"a\"\nqueue = \"nowhere\"\n", "queue", "nowhere"),
            ("[[rules]]\nname = \"a\"\ncategory = \"XXXX\"\n", "category", "XXXX"),
            ("[[rules]]\nname = \"a\"\ndmarc = [\"maybe\"]\n", "dmarc", "maybe"),
            ("[[rules]]\nname = \"a\"\ndays = [\"someday\"]\n", "days", "someday"),
            ("[[rules]]\nname = \"a\"\nhours = \"9-5\"\n", "hours", "HH:MM"),
            ("[[rules]]\nname = \"a\"\nheader = [{ name = \"X:Y\" }]\n", "header[0].name", "header"),
            ("[[rules]]\nname = \"a\"\n\n[[rules]]\nname = \"a\"\n", "name", "earlier"),
        ] {
            let e = set(rules).err().unwrap_or_else(|| panic!("accepted: {rules}"));
            assert_eq!(e.key, key, "{rules}");
            assert!(e.reason.contains(needle) && e.reason.contains("rule \"a\""), "{}", e.reason);
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*@customer.org", "ana@customer.org"));
        assert!(!glob_match("*@customer.org", "ana@customer.org.evil"));
        assert!(glob_match("ana@*", "ana@x.y"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxc"));
        assert!(glob_match("exact@x.org", "exact@x.org"));
    }
}
