//! Outgoing mail: acknowledgements now, staff replies later.
//!
//! * [`ack`] decides whether a message may be acknowledged at all (RFC 3834 loop safety) and
//!   renders the acknowledgement; pure functions, used by the intake while it registers.
//! * [`worker`] owns the format of an outbox row (`seal_mail` / `open_mail`) and the task that
//!   delivers due rows through the configured smarthost with retries and backoff.
//!
//! Rows are written in the same transaction as the registration they answer, so a crash loses no
//! acknowledgement; the worker claims a row before sending it, so none goes out twice in normal
//! operation.

pub mod ack;
pub mod worker;

pub use ack::{AckTemplate, render, skip_reason};
pub use worker::{
    Mail, OutboxConfig, OutboxError, OutboxRow, SmarthostConfig, TlsMode, insert, new_uid, open_mail, rcpt_index, run, seal_mail,
};
