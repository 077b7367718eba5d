//! mailroom: an SMTP-native front door for an organisation's customer mail.
//!
//! The data path reads straight down: `smtp` (receive) → `intake` (parse, extract, encrypt) →
//! `store::writer` (number, commit). `store` holds the database and the keys; `config`, `tls` and
//! `shutdown` serve everything; `server` wires it together and `cli` is the command line.

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
pub mod tls;
