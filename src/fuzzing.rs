//! Fuzzing entry points, shared by the cargo-fuzz targets in `fuzz/` (nightly, libFuzzer) and by
//! the corpus replay test `tests/fuzz_corpus.rs` (stable, plain `cargo test`), so every corpus
//! and crash file keeps running as a regression test without a nightly toolchain.
//!
//! Each function takes arbitrary bytes and panics when an invariant breaks; a panic anywhere,
//! also in a session task, is the finding (libFuzzer's panic hook aborts the process; the replay
//! test installs a hook that records it). The socket targets serve the input through the real
//! session code over loopback, with a real store in a temporary data dir (`server`).

mod config;
mod data;
mod extract;
mod imap;
mod reference;
mod replies;
mod server;
mod smtp;

/// Throws away the server the socket targets share (see [`server::restart`]).
pub fn restart_server() {
    server::restart()
}

/// The SMTP/LMTP session byte stream through `smtp::session::run` (see `smtp` for the input
/// layout and the invariants).
pub fn smtp_session(input: &[u8]) {
    smtp::run(input)
}

/// The DATA receiver and the BDAT path: end of data, unstuffing and limits against the reference
/// rule, whatever the split points (see `data`).
pub fn data_reader(input: &[u8]) {
    data::run(input)
}

/// The IMAP command stream through the real IMAP listener and session (see `imap`).
pub fn imap_command(input: &[u8]) {
    imap::run(input)
}

/// A message through extraction (mail-parser → the intake record), classification, the
/// acknowledgement and the IMAP rendering (see `extract`).
pub fn extract(input: &[u8]) {
    extract::run(input)
}

/// A configuration file through `Settings::from_str` and, when accepted, through what it
/// configures (see `config`).
pub fn config(input: &[u8]) {
    config::run(input)
}
