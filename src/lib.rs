//! mailroom: an SMTP-native front door for an organisation's customer mail.
//!
//! The data path reads straight down: `net` (accept) → `smtp` (receive) → `intake` (parse,
//! classify, seal; `intake::commit` threads and places inside the writer's transaction) →
//! `store` (the only SQL: number, commit). Staff come in through `imap` and `http`, which call
//! `access` and `cases`; `outbox` composes and sends. docs/architecture.md states who may use whom
//! (checked by tests/architecture.rs).

pub mod access;
pub mod cases;
pub mod cli;
pub mod config;
pub mod fuzzing;
pub mod http;
pub mod imap;
pub mod intake;
pub mod net;
pub mod outbox;
pub mod server;
pub mod shutdown;
pub mod smtp;
pub mod store;
pub mod telemetry;
pub mod tls;
