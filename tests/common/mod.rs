//! Shared harness for mailroom's integration tests, one module per concern:
//!
//! * [`config`]: [`Opts`], the knobs written into the test's `mailroom.toml`.
//! * [`server`]: [`Server`] runs the real `mailroom serve` binary on a fresh temporary data dir with
//!   that config (port 0 listeners; the ports are read back from `DIR/listeners.json`).
//! * [`db`]: [`Server::sql`], the one way to read or edit a server's store (sqlite3 or psql).
//! * [`engine`]: `MAILROOM_TEST_DATABASE=postgres` puts every server on a fresh PostgreSQL
//!   database of one cluster per test binary.
//! * [`cli`]: the admin CLI and what it prints (`message list --json`, stored messages).
//! * [`smtp`]: [`Client`], a tiny raw-socket SMTP/LMTP client (plain or STARTTLS via rustls) that
//!   sends exact bytes and reads (multi-line) replies, for byte-level assertions.
//! * [`tls`]: a rustls client config that accepts the server's self-signed certificate.
//! * [`regnum`]: the registration-number oracle (format, Damm check digit).
//! * [`page`]: [`CurlBrowser`], the staff web page through `curl` (cookie jar, forms).
//! * [`api`]: the JSON API through curl ([`api`], [`api_ok`], [`bearer_login`]).
//! * [`capture`]: a capture SMTP server the outbox sends to ([`capture_smtp`]).
//! * [`imap`]: [`Imap`], a raw IMAP client for exact protocol checks.
//! * [`pg`]: [`PgCluster`], a throwaway PostgreSQL cluster (and its streaming standby) per test.
//! * [`nodes`]: server processes (nodes) on one PostgreSQL database and the checks of the failure
//!   tests; [`load`]: SMTP clients that keep sending to them, recording every 250 ([`Load`]).
//! * [`wire`], [`message`], [`files`], [`net`], [`wait`]: bytes, test messages, files on disk,
//!   connections from chosen sources, polling.
//!
//! Every test binary includes this module with `mod common;` and `use common::*;`, so not every
//! helper is used everywhere.
#![allow(dead_code)]

mod api;
mod capture;
mod cli;
mod config;
mod db;
mod engine;
mod files;
mod imap;
mod load;
mod message;
mod net;
mod nodes;
mod page;
mod pg;
mod regnum;
mod server;
mod smtp;
mod tls;
mod wait;
mod wire;

// Each binary uses only some of these, hence the allow.
#[allow(unused_imports)]
pub use self::{
    api::*, capture::*, cli::*, config::*, db::*, engine::*, files::*, imap::*, load::*, message::*, net::*, nodes::*, page::*, pg::*,
    regnum::*, server::*, smtp::*, tls::*, wait::*, wire::*,
};

pub const HOST: &str = "mx.example.com";
/// LMTP before LHLO: the table says "Send EHLO first"; "Send LHLO first" names the right verb.
pub const LMTP_GREET_FIRST: &[&str] = &["503 5.5.1 Send EHLO first", "503 5.5.1 Send LHLO first"];
pub const BIN: &str = env!("CARGO_BIN_EXE_mailroom");
