//! Mailroom nodes on one PostgreSQL database, for the failure tests: [`start_node`] (a server
//! process on a database URL, sharing a key file), [`Server::point_at`] (another database for its
//! next start, as after a failover), the checks every such test ends with ([`assert_rows_consistent`],
//! [`assert_audit_verifies`]), and [`postgres_pass_only`].

use std::path::Path;

use super::{Database, Opts, Server, Sql, postgres_run};

/// A node of the PostgreSQL database `url` named `name`, its key file shared at `key_file` (the
/// first node creates it), with `extra_toml` appended to the config.
pub fn start_node(url: &str, key_file: &Path, name: &str, extra_toml: &str) -> Server {
    start_node_with(url, key_file, name, Opts { extra_toml: extra_toml.to_string(), ..Default::default() })
}

/// As [`start_node`], with the other knobs of `opts`.
pub fn start_node_with(url: &str, key_file: &Path, name: &str, opts: Opts) -> Server {
    let mut server = Server::start(Opts {
        postgres_url: Some(url.to_string()),
        master_key_file: Some(key_file.to_str().unwrap().to_string()),
        node: Some(name.to_string()),
        ..opts
    });
    server.database = Database::Postgres(url.to_string());
    server
}

impl Server {
    /// Rewrites the config's `[storage] database` from the current URL to `url` (taking effect at
    /// the next start) and reads the store there from now on.
    pub fn point_at(&mut self, url: &str) {
        let Database::Postgres(old) = &self.database else { panic!("point_at: this server is not on PostgreSQL") };
        let text = std::fs::read_to_string(&self.config).unwrap();
        let line = format!("database = \"{old}\"");
        assert!(text.contains(&line), "the config names {old}: {text}");
        std::fs::write(&self.config, text.replacen(&line, &format!("database = \"{url}\""), 1)).unwrap();
        self.database = Database::Postgres(url.to_string());
    }
}

/// `mailroom audit verify` through `server`'s config: passes, over at least `at_least` entries.
/// Returns the number of entries.
pub fn assert_audit_verifies(server: &Server, at_least: usize) -> usize {
    let out = server.cli(&["audit", "verify"]);
    assert!(out.status.success(), "audit verify: {}{}", out.stdout_str(), out.stderr);
    let text = out.stdout_str();
    let entries: usize = text
        .strip_prefix("audit chain intact: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("audit verify: {text}"));
    assert!(entries >= at_least, "{text}");
    entries
}

/// The rows of `stored` registered messages (and nothing else: no staff actions) hang together:
/// each message has its sealed body, its case link and its `message.registered` audit entry;
/// message ids are 1..=N; the counter names the last number (none reserved); every case was
/// opened by a stored message.
pub fn assert_rows_consistent(server: &Server, stored: usize) {
    let n = stored.to_string();
    assert_eq!(server.sql("SELECT count(*), min(id), max(id) FROM messages"), format!("{n}|1|{n}"), "message ids gap-free");
    assert_eq!(
        server.sql("SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM message_blobs b WHERE b.message_id = m.id)"),
        "0",
        "a message without its body"
    );
    assert_eq!(
        server.sql("SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM message_cases c WHERE c.message_id = m.id AND c.case_id = m.case_id)"),
        "0",
        "a message without its case link"
    );
    assert_eq!(server.sql("SELECT count(*) FROM message_blobs"), n, "a body without its message");
    assert_eq!(server.sql("SELECT count(*) FROM cases c WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.case_id = c.id)"), "0");
    assert_eq!(server.sql("SELECT count(*) FROM audit WHERE action = 'message.registered'"), n, "one audit entry per message");
    assert_eq!(server.sql("SELECT sum(last_seq) FROM reg_counters"), n, "the counter names the last number, nothing reserved");
}

/// For tests whose work does not depend on the engine under test (they keep no store of the
/// suite's, or always a SQLite one of their own): they run in the SQLite pass only, since the
/// PostgreSQL pass would repeat the same work. True (with the reason printed) when skipped.
pub fn sqlite_pass_only(test: &str) -> bool {
    if !postgres_run() {
        return false;
    }
    eprintln!("{test}: skipped in the PostgreSQL pass; it does not use the engine under test and ran in the SQLite pass");
    true
}

/// For tests that start PostgreSQL clusters of their own and do the same in both passes of the
/// suite: they run in the PostgreSQL pass only. True (with the reason printed) when skipped.
pub fn postgres_pass_only(test: &str) -> bool {
    if postgres_run() {
        return false;
    }
    eprintln!(
        "{test}: skipped in the SQLite pass; it starts PostgreSQL clusters of its own and runs in the \
         PostgreSQL pass (MAILROOM_TEST_DATABASE=postgres)"
    );
    true
}
