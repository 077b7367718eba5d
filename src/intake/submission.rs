//! What intake hands to the writer for one message, and what the session learns back.

use std::net::IpAddr;
use std::sync::Arc;

use super::Policy;
use crate::store::crypto::DataKey;

use super::rules::Decision;

/// Everything needed to register one message; the expensive work (parsing, encryption, hashing)
/// was done by the session, in parallel with other sessions. Registered by `intake::commit`
/// inside the writer's transaction.
pub struct Submission {
    /// Random row identity, bound into every ciphertext as associated data.
    pub uid: [u8; 16],
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub size: usize,
    pub protocol: &'static str,
    pub tls: Option<String>,
    pub parsed: bool,
    /// Classification and threading, decided by intake.
    pub routing: Routing,
    /// "spf=pass dkim=pass dmarc=pass" (no addresses), when checks ran.
    pub auth_summary: Option<String>,
    /// Our Authentication-Results header, stored (encrypted) with our Received header.
    pub auth_header: Option<String>,
    /// Set when the message may be acknowledged (rules allow it, loop-safe, not spam). One is
    /// sent only if the message opens a new case and the sender had none within the window.
    pub ack: Option<AckRequest>,
    /// Kept to seal the trace header, which needs the registration number.
    pub data_key: DataKey,
    pub key_id: u32,
    pub wrapped_key: Vec<u8>,
    pub raw_ct: Vec<u8>,
    pub fields_ct: Vec<u8>,
    pub sender_idx: Option<Vec<u8>>,
    pub msgid_idx: Option<Vec<u8>>,
    pub dedupe_idx: Vec<u8>,
    pub trace: Trace,
    /// Queue addresses, acknowledgement templates and the SLA calendar, for the acknowledgement.
    pub policy: Arc<Policy>,
}

/// Where a message goes: the classification decision and the keys that may join it to an
/// existing case. They are resolved inside the writer's transaction, so two messages of one
/// thread committed together still end up in the same case.
pub struct Routing {
    pub decision: Decision,
    /// SLA due time for a new case (unix ms).
    pub due_at: i64,
    /// The sender's customer tier (trusted: only for an authenticated sender), kept on a new case.
    pub tier: Option<String>,
    /// Valid registration tags from the subject: (counter year, sequence).
    pub thread_numbers: Vec<(i32, u64)>,
    /// Blind indexes of the In-Reply-To and References Message-IDs.
    pub reference_idx: Vec<Vec<u8>>,
    /// Auto-replies and reports join a case but never re-open it.
    pub automatic: bool,
    /// Tags on the message itself (invalid-registration-tag, …; new-participant is added here).
    pub message_tags: Vec<String>,
}

/// What an acknowledgement needs from the original message (in memory only; the rendered
/// acknowledgement is stored encrypted in the outbox).
pub struct AckRequest {
    pub to: String,
    pub subject: String,
    pub message_id: Option<String>,
}

/// What goes into our `Received:` header.
pub struct Trace {
    pub helo: String,
    pub client_ip: IpAddr,
    /// RFC 3848 protocol type: ESMTP, ESMTPS, LMTP, LMTPS…
    pub with: &'static str,
    pub hostname: String,
    /// The node that took the message (`[server] node`).
    pub node: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Registered(String),
    /// A retry of a message registered earlier: the earlier number, nothing stored again.
    Duplicate(String),
}

impl From<crate::store::writer::Answer> for Outcome {
    fn from(answer: crate::store::writer::Answer) -> Outcome {
        match answer {
            crate::store::writer::Answer::Registered(number) => Outcome::Registered(number),
            crate::store::writer::Answer::Duplicate(number) => Outcome::Duplicate(number),
        }
    }
}
