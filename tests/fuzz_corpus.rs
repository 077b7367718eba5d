//! Replays every fuzz input kept in the repository through the same functions the cargo-fuzz
//! targets call (`mailroom::fuzzing`), on stable Rust: the minimised corpus
//! (`fuzz/corpus/<target>/`), the crashes found and fixed (`fuzz/regressions/<target>/`), and
//! any fresh crash of a local run (`fuzz/artifacts/<target>/`). A panic anywhere, also inside a
//! session task of the server the socket targets start, fails the file.
//!
//! The socket targets keep a SQLite store of their own whatever the suite's engine, so the file
//! runs in the SQLite pass only (`sqlite_pass_only`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// Panic messages seen since the current file started (from any thread).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// One target at a time: the panic record is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.lock().unwrap_or_else(|e| e.into_inner()).push(info.to_string());
            default(info);
        }));
    });
}

fn files(target: &str) -> (Vec<PathBuf>, usize) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    let mut corpus = 0;
    for kind in ["corpus", "regressions", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        let mut found: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        found.sort();
        if kind == "corpus" {
            corpus = found.len();
        }
        files.extend(found);
    }
    (files, corpus)
}

fn replay(target: &str, run: fn(&[u8])) {
    if common::sqlite_pass_only(target) {
        return;
    }
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Each target starts on a fresh store, as under the fuzzer: the IMAP inputs would otherwise
    // read mailboxes holding whatever the SMTP and DATA inputs registered before them.
    mailroom::fuzzing::restart_server();
    record_panics();
    let (files, corpus) = files(target);
    assert!(corpus > 0, "fuzz/corpus/{target}/ is empty: nothing would be replayed");
    let mut failures = Vec::new();
    for file in &files {
        let input = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        PANICS.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let returned = std::panic::catch_unwind(|| run(&input));
        let panics = std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()));
        if returned.is_err() || !panics.is_empty() {
            failures.push(format!("{}: {}", file.display(), panics.join(" | ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} {target} inputs fail:\n{}", failures.len(), files.len(), failures.join("\n"));
    eprintln!("{target}: {} inputs replayed ({corpus} corpus)", files.len());
}

#[test]
fn smtp_session() {
    replay("smtp_session", mailroom::fuzzing::smtp_session);
}

#[test]
fn data_reader() {
    replay("data_reader", mailroom::fuzzing::data_reader);
}

#[test]
fn imap_command() {
    replay("imap_command", mailroom::fuzzing::imap_command);
}

#[test]
fn extract() {
    replay("extract", mailroom::fuzzing::extract);
}

#[test]
fn config() {
    replay("config", mailroom::fuzzing::config);
}
