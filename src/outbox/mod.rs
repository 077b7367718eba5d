//! Outgoing mail: acknowledgements and staff replies.
//!
//! * [`ack`] decides whether a message may be acknowledged at all (RFC 3834 loop safety) and what
//!   the acknowledgement says (its template); pure functions, used by the intake while it registers.
//! * [`compose`] turns an acknowledgement or a reply into RFC 5322 bytes: one composer, so both
//!   carry the registration tag, Message-ID and threading headers the same way.
//! * [`config`] is the `[outbox]` section; [`smarthost`] one SMTP client transaction; [`worker`]
//!   the task that delivers due rows with retries and backoff; [`dkim`] signs each message the
//!   worker submits (`[dkim]`).
//!
//! The rows themselves (sealing, the INSERT, claiming) are the store's (`store::outbox`). They are
//! written in the same transaction as what they answer, so a crash loses no mail; the worker
//! claims a row before sending it, so none goes out twice in normal operation.

pub mod ack;
pub mod compose;
pub mod config;
pub mod dkim;
mod smarthost;
pub mod worker;

pub use ack::{AckTemplate, skip_reason};
pub use config::{OutboxConfig, SmarthostConfig, TlsMode};
pub use dkim::{DkimConfig, Signer as DkimSigner};
pub use worker::run;

/// The `[dkim]` signer in force: the worker loads it for each message, a configuration reload
/// (SIGHUP) swaps it (a new selector and key take over without a restart; None stops signing).
pub type DkimSlot = std::sync::Arc<arc_swap::ArcSwapOption<DkimSigner>>;
