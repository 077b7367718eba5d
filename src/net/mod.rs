//! The network layer SMTP, LMTP, IMAP and HTTP share.
//!
//! * `listener`: the accept loop (back-off on accept errors, admission, refusals).
//! * `pool`: connection accounting: global limit, per-source cap, reserved share, guards.
//! * `stream`: a socket that starts in clear text and may be upgraded to TLS (STARTTLS).
//! * `deadline`: a write time limit for peers that stop reading (HTTP responses).

pub mod deadline;
pub mod drain;
pub mod listener;
pub mod pool;
pub mod stream;

pub use listener::{Admission, Listener, Refused};
pub use pool::{Guard, Policy, Pool, Refusal};
pub use stream::Stream;
