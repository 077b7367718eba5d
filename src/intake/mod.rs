//! Intake: everything between "the client sent the final dot" and "hand it to the writer".
//!
//! Parse (mail-parser), extract the basic record, compute the blind indexes and the retry
//! fingerprint, encrypt under a fresh data key. All of this runs in the session's task, so it is
//! spread over every core; only the numbering and the commit are serialised (`store::writer`).
//! Here too: SPF/DKIM/DMARC (`auth`), the customer tier (`Directory`), classification (`rules`),
//! the SLA due time (`sla`), threading keys and the acknowledgement decision. Registration itself
//! (`commit`) runs inside the writer's transaction: threading against the store, case placement,
//! the acknowledgement, our Received header.

pub mod auth;
mod commit;
pub mod config;
pub mod extract;
pub mod policy;
/// The record type is stored sealed, so it lives in the store; extraction is intake's.
pub mod record {
    pub use super::extract::{extract, extract_with_headers, full_parse};
    pub use super::structure::parse_headers;
    pub use crate::store::record::*;
}
pub mod regnum;
pub mod rules;
pub mod sla;
pub mod structure;
mod submission;

pub use policy::Policy;
pub use submission::{AckRequest, Outcome, Routing, Submission, Trace};

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::digest;

use crate::store::StoreError;
use crate::store::codec;
use crate::store::crypto::{CryptoError, KeyRing};
use crate::store::writer::WriterHandle;
use regnum::SubjectTag;

/// Messages above this size are parsed and sealed on the blocking pool, so one 25 MB message
/// cannot stall the sessions that share its worker thread.
const BLOCKING_THRESHOLD: usize = 512 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_checks() {
        let s = crate::config::Settings::from_str("t", crate::config::DEFAULT_CONFIG, std::path::Path::new("/tmp")).unwrap().policy;
        let accept = |q: &str| RecipientCheck::Accept(q.to_string());
        assert_eq!(check_recipient(&s, "support@example.com"), accept("support"));
        assert_eq!(check_recipient(&s, "Sales@Example.COM"), accept("sales"));
        assert_eq!(check_recipient(&s, "support+order42@example.com"), accept("support"));
        assert_eq!(check_recipient(&s, "postmaster"), accept("support"));
        assert_eq!(check_recipient(&s, "PostMaster@example.com"), accept("support"));
        assert_eq!(check_recipient(&s, "nobody@example.com"), RecipientCheck::UnknownMailbox);
        assert_eq!(check_recipient(&s, "nobody+support@example.com"), RecipientCheck::UnknownMailbox);
        assert_eq!(check_recipient(&s, "support@example.com.evil.org"), RecipientCheck::ForeignDomain);
        assert_eq!(check_recipient(&s, "support@other.org"), RecipientCheck::ForeignDomain);
        assert_eq!(check_recipient(&s, "\"support@example.com\"@other.org"), RecipientCheck::ForeignDomain);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        }
    }
}

/// The envelope of one transaction, as accepted by the session.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub mail_from: String,
    /// Accepted recipients in RCPT order, with the queue each one feeds.
    pub recipients: Vec<(String, String)>,
    pub helo: String,
    pub client_ip: IpAddr,
    pub protocol: Protocol,
    /// "TLSv1.3 TLS13_AES_256_GCM_SHA384" when the session is encrypted.
    pub tls: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("intake task failed: {0}")]
    Task(String),
}

/// The policy in force, shared by intake and the configuration reload.
pub type PolicySlot = Arc<arc_swap::ArcSwap<Policy>>;

#[derive(Clone)]
pub struct Intake {
    keys: Arc<KeyRing>,
    writer: WriterHandle,
    /// Swapped whole by a configuration reload (SIGHUP); each message is decided by the one
    /// in force when its DATA ended.
    policy: PolicySlot,
    /// None when `authentication.verify = "off"`.
    authenticator: Option<auth::Authenticator>,
    directory: Directory,
}

/// The customer directory as routing needs it: blind index of an address or domain → tier.
/// Refreshed from the store in the background, so no message waits for a directory query.
#[derive(Clone, Default)]
pub struct Directory(Arc<std::sync::RwLock<std::collections::HashMap<Vec<u8>, String>>>);

impl Directory {
    pub fn replace(&self, tiers: std::collections::HashMap<Vec<u8>, String>) {
        *self.0.write().expect("directory lock") = tiers;
    }

    /// The tier of an address: its own entry, else its domain's.
    pub fn tier(&self, keys: &KeyRing, address: &str) -> Option<String> {
        let map = self.0.read().expect("directory lock");
        if map.is_empty() {
            return None;
        }
        let address = address.trim().to_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d.to_string())?;
        map.get(&crate::store::directory::entry_key(keys, &address))
            .or_else(|| map.get(&crate::store::directory::entry_key(keys, &domain)))
            .cloned()
    }
}

/// The authenticator the configuration asks for.
/// `hostname` is ours; a relative records file is within `data_dir`.
pub fn authenticator(
    cfg: &config::AuthenticationConfig,
    hostname: &str,
    data_dir: &std::path::Path,
) -> Result<Option<auth::Authenticator>, auth::AuthError> {
    let resolve = |path: &std::path::Path| if path.is_absolute() { path.to_path_buf() } else { data_dir.join(path) };
    let authenticator = match (&cfg.records, cfg.verify.as_str()) {
        (_, "off") => return Ok(None),
        (Some(path), _) => auth::Authenticator::with_records(hostname, auth::StaticRecords::from_toml_file(resolve(path))?),
        (None, _) => auth::Authenticator::system(hostname)?,
    };
    Ok(Some(authenticator.with_timeout(cfg.timeout)))
}

impl Intake {
    pub fn new(
        keys: Arc<KeyRing>,
        writer: WriterHandle,
        policy: Arc<Policy>,
        authenticator: Option<auth::Authenticator>,
        directory: Directory,
    ) -> Intake {
        Intake { keys, writer, policy: Arc::new(arc_swap::ArcSwap::new(policy)), authenticator, directory }
    }

    /// Where a configuration reload puts a new policy, in force for the messages whose DATA ends
    /// from then on. Held apart from the intake itself, whose last clone closes the writer.
    pub fn policy_slot(&self) -> PolicySlot {
        self.policy.clone()
    }

    /// Checks a recipient against our routing ([`check_recipient`]).
    pub fn check_recipient(&self, address: &str) -> RecipientCheck {
        check_recipient(&self.policy.load(), address)
    }

    /// Registers one message: returns only after it is durably committed.
    pub async fn register(&self, envelope: &Envelope, data: Vec<u8>) -> Result<Outcome, IntakeError> {
        let received_at = chrono::Utc::now();
        let auth = match &self.authenticator {
            Some(a) => Some(a.verify(envelope.client_ip, &envelope.helo, &envelope.mail_from, &data).await),
            None => None,
        };
        let policy = self.policy.load_full();
        let submission = if data.len() > BLOCKING_THRESHOLD {
            let (keys, envelope, directory) = (self.keys.clone(), envelope.clone(), self.directory.clone());
            tokio::task::spawn_blocking(move || prepare(&keys, &policy, &directory, &envelope, &data, received_at, auth.as_ref()))
                .await
                .map_err(|e| IntakeError::Task(e.to_string()))??
        } else {
            prepare(&self.keys, &policy, &self.directory, envelope, &data, received_at, auth.as_ref())?
        };
        Ok(self.writer.submit(Box::new(submission)).await?.into())
    }
}

/// The verdict on one RCPT, made while the envelope is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientCheck {
    /// One of our addresses: the queue it feeds.
    Accept(String),
    /// Our domain, but no such address: 550 5.1.1.
    UnknownMailbox,
    /// Not our domain: 550 5.7.1 (we are never a relay).
    ForeignDomain,
}

/// Checks a recipient against the configured domains and queue addresses. `postmaster` (bare or
/// at any of our domains) is always accepted (RFC 5321 §4.5.1); `local+tag@domain` is
/// `local@domain` when a recipient delimiter is configured.
pub fn check_recipient(policy: &Policy, address: &str) -> RecipientCheck {
    let address = normalize_address(address);
    if address == "postmaster" {
        return RecipientCheck::Accept(policy.default_queue().to_string());
    }
    let Some((local, domain)) = address.rsplit_once('@') else { return RecipientCheck::UnknownMailbox };
    if !policy.domains.contains(domain) {
        return RecipientCheck::ForeignDomain;
    }
    if let Some(queue) = policy.addresses.get(&address) {
        return RecipientCheck::Accept(queue.clone());
    }
    if let Some(delimiter) = policy.recipient_delimiter.as_deref()
        && let Some((base, _tag)) = local.split_once(delimiter)
        && let Some(queue) = policy.addresses.get(&format!("{base}@{domain}"))
    {
        return RecipientCheck::Accept(queue.clone());
    }
    if local == "postmaster" {
        return RecipientCheck::Accept(policy.default_queue().to_string());
    }
    RecipientCheck::UnknownMailbox
}

/// Moved to the store, with the blind indexes that compare addresses.
pub use crate::store::crypto::normalize_address;

/// Classification and threading keys for one message (no clear customer data leaves here
/// except inside ciphertexts).
#[allow(clippy::too_many_arguments)]
pub fn classify(
    policy: &Policy,
    envelope: &Envelope,
    record: &record::Record,
    data: &[u8],
    received_at: chrono::DateTime<chrono::Utc>,
    auth: Option<&auth::AuthResults>,
    tier: Option<&str>,
    headers: Option<&mail_parser::Message>,
) -> (rules::Decision, Vec<SubjectTag>) {
    let mut routed: Vec<String> = Vec::new();
    for (_, queue) in &envelope.recipients {
        if !routed.contains(queue) {
            routed.push(queue.clone());
        }
    }
    let from: Vec<String> = record.from.iter().filter_map(|m| m.address.as_deref()).map(str::to_lowercase).collect();
    let recipients: Vec<String> = envelope.recipients.iter().map(|(a, _)| a.clone()).collect();
    let subject = record.subject.as_deref().unwrap_or("");
    let auth = match auth {
        Some(a) => rules::AuthFacts {
            spf: a.spf.as_str().into(),
            dkim: a.dkim.as_str().into(),
            dmarc: a.dmarc.as_str().into(),
            authenticated: a.sender_authenticated(),
        },
        None => rules::AuthFacts { spf: "none".into(), dkim: "none".into(), dmarc: "none".into(), authenticated: false },
    };
    let facts = rules::Facts::new(
        data,
        &envelope.mail_from,
        &from,
        &recipients,
        subject,
        tier,
        &auth,
        data.len(),
        !record.attachments.is_empty(),
        received_at,
    )
    .with_headers(headers);
    let decision = policy.rules.evaluate(&facts, routed, policy.acknowledge);
    (decision, policy.reg_format.find_tags(subject))
}

fn prepare(
    keys: &KeyRing,
    policy: &Arc<Policy>,
    directory: &Directory,
    envelope: &Envelope,
    data: &[u8],
    received_at: chrono::DateTime<chrono::Utc>,
    auth: Option<&auth::AuthResults>,
) -> Result<Submission, CryptoError> {
    let (hostname, compression) = (policy.hostname.as_str(), policy.compression);
    // Time-ordered prefix keeps the uid index append-mostly; the rest is random.
    let uid = crate::store::crypto::uid_at(received_at)?;

    // The header block is parsed once here and serves the record, the rules and the
    // acknowledgement decision.
    let parsed = record::parse_headers(data);
    let headers = parsed.message;
    let mut record = record::extract_with_headers(data, headers.as_ref(), parsed.body);
    record.envelope_from = envelope.mail_from.clone();
    record.envelope_to = envelope.recipients.iter().map(|(a, _)| a.clone()).collect();
    record.helo = envelope.helo.clone();
    record.client_ip = envelope.client_ip.to_string();

    // The customer is who the From: header says; a tier counts only if that is authenticated.
    let mut message_tags = Vec::new();
    let customer = record.from.iter().find_map(|m| m.address.as_deref()).unwrap_or(&envelope.mail_from);
    let tier = directory.tier(keys, customer).filter(|_| {
        let authenticated = auth.is_some_and(|a| a.sender_authenticated());
        if !authenticated {
            message_tags.push("unverified-sender".to_string());
        }
        authenticated
    });
    let (decision, subject_tags) = classify(policy, envelope, &record, data, received_at, auth, tier.as_deref(), headers.as_ref());
    let mut thread_numbers = Vec::new();
    for tag in subject_tags {
        match tag {
            SubjectTag::Valid { year, seq, .. } => thread_numbers.push((policy.reg_format.counter_year(year), seq)),
            SubjectTag::Invalid { .. } if !message_tags.iter().any(|t| t == "invalid-registration-tag") => {
                message_tags.push("invalid-registration-tag".to_string())
            }
            SubjectTag::Invalid { .. } => {}
        }
    }
    let mut reference_idx: Vec<Vec<u8>> = Vec::new();
    for id in record.in_reply_to.iter().chain(&record.references) {
        let idx = keys.blind_index("message-id", id.as_bytes());
        if !reference_idx.contains(&idx) {
            reference_idx.push(idx);
        }
    }
    let due_at = policy.calendar.due(received_at, decision.priority).timestamp_millis();
    let decision_ack = decision.acknowledge && !decision.spam && policy.ack_window.is_some();

    let row = keys.row_key(uid)?;
    let raw_ct = row.seal("raw", &codec::pack(data, compression))?;
    let fields = serde_json::to_vec(&record).expect("a record always serialises");
    let fields_ct = row.seal("fields", &fields)?;

    let sender = normalize_address(&envelope.mail_from);
    let sender_idx = (!sender.is_empty()).then(|| keys.blind_index("address", sender.as_bytes()));
    let msgid_idx = record.message_id.as_ref().map(|id| keys.blind_index("message-id", id.as_bytes()));
    let dedupe_idx = retry_fingerprint(keys, envelope, record.message_id.as_deref(), data);

    let tls = envelope.tls.is_some();
    let with = match (envelope.protocol, tls) {
        (Protocol::Smtp, false) => "ESMTP",
        (Protocol::Smtp, true) => "ESMTPS",
        (Protocol::Lmtp, false) => "LMTP",
        (Protocol::Lmtp, true) => "LMTPS",
    };
    Ok(Submission {
        uid,
        received_at,
        size: data.len(),
        protocol: envelope.protocol.name(),
        tls: envelope.tls.clone(),
        parsed: record.parsed,
        routing: Routing { decision, due_at, tier, thread_numbers, reference_idx, automatic: record.automatic, message_tags },
        ack: acknowledgement(policy, envelope, &record, headers.as_ref(), decision_ack),
        auth_summary: auth.map(|a| a.summary()),
        auth_header: auth.map(|a| a.header.clone()),
        data_key: row.key,
        key_id: row.key_id,
        wrapped_key: row.wrapped_key,
        raw_ct,
        fields_ct,
        sender_idx,
        msgid_idx,
        dedupe_idx,
        trace: Trace {
            helo: envelope.helo.clone(),
            client_ip: envelope.client_ip,
            with,
            hostname: hostname.to_string(),
            node: policy.node.clone(),
        },
        policy: policy.clone(),
    })
}

/// An acknowledgement request, if rules allow one and RFC 3834 loop safety does too.
fn acknowledgement(
    policy: &Policy,
    envelope: &Envelope,
    record: &record::Record,
    headers: Option<&mail_parser::Message>,
    allowed: bool,
) -> Option<AckRequest> {
    if !allowed {
        return None;
    }
    if let Some(reason) = crate::outbox::skip_reason(&envelope.mail_from, headers?, &policy.own_addresses) {
        tracing::debug!(reason, "no acknowledgement");
        return None;
    }
    Some(AckRequest {
        to: envelope.mail_from.clone(),
        subject: record.subject.clone().unwrap_or_default(),
        message_id: record.message_id.clone(),
    })
}

/// Same sender, same recipients (in any order), same Message-ID and same bytes: the same message,
/// sent again because the client never saw our 250.
fn retry_fingerprint(keys: &KeyRing, envelope: &Envelope, message_id: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut recipients: Vec<String> = envelope.recipients.iter().map(|(a, _)| normalize_address(a)).collect();
    recipients.sort();
    recipients.dedup();
    let body = digest::digest(&digest::SHA256, data);
    let mut material = Vec::with_capacity(256);
    for part in [
        normalize_address(&envelope.mail_from).as_bytes(),
        recipients.join("\n").as_bytes(),
        message_id.unwrap_or("").as_bytes(),
        body.as_ref(),
    ] {
        material.extend_from_slice(&(part.len() as u64).to_be_bytes());
        material.extend_from_slice(part);
    }
    keys.blind_index("retry", &material)
}
