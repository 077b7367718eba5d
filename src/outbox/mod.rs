//! Outgoing mail: acknowledgements and staff replies.
//!
//! * [`ack`] decides whether a message may be acknowledged at all (RFC 3834 loop safety) and what
//!   the acknowledgement says (its template); pure functions, used by the intake while it registers.
//! * [`compose`] turns an acknowledgement or a reply into RFC 5322 bytes: one composer, so both
//!   carry the registration tag, Message-ID and threading headers the same way.
//! * [`config`] is the `[outbox]` section; [`smarthost`] one SMTP client transaction; [`worker`]
//!   the task that delivers due rows with retries and backoff.
//!
//! The rows themselves (sealing, the INSERT, claiming) are the store's (`store::outbox`). They are
//! written in the same transaction as what they answer, so a crash loses no mail; the worker
//! claims a row before sending it, so none goes out twice in normal operation.

pub mod ack;
pub mod compose;
pub mod config;
mod smarthost;
pub mod worker;

pub use ack::{AckTemplate, skip_reason};
pub use compose::acknowledgement as render;
pub use config::{OutboxConfig, SmarthostConfig, TlsMode};
pub use worker::run;

// Transitional paths for `store::writer::enqueue_ack` and `store::cases` (see `store::outbox::seal_mail`).
pub use crate::store::crypto::new_uid;
pub use crate::store::outbox::{Mail, OutboxError, OutboxRow, enqueue as insert, open_mail, seal_mail};

/// Blind index of a recipient for the outbox's `rcpt_idx` (the same as the messages' `sender_idx`).
pub fn rcpt_index(keys: &crate::store::crypto::KeyRing, address: &str) -> Vec<u8> {
    keys.address_index(address)
}
