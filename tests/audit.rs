//! `mailroom audit verify`: the audit chain is intact after normal operation, and editing,
//! deleting or forging an entry with database access alone is detected, naming the entry.

mod common;

use common::*;

fn sql(s: &Server, statement: &str) -> String {
    s.sql(statement)
}

#[test]
fn audit_chain_detects_edits_deletions_and_forgeries() {
    let s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    let mut numbers = Vec::new();
    for i in 0..4 {
        numbers.push(c.send_message("ana@customer.org", &["support@example.com"], &simple_message(&format!("audit {i}"), "body")));
    }
    s.show_message(&numbers[0]); // an audited read adds an entry too

    let ok = s.cli(&["audit", "verify"]);
    assert!(ok.status.success(), "{}", ok.stderr);
    assert!(ok.stdout_str().starts_with("audit chain intact: 5 entries, head "), "{}", ok.stdout_str());

    // Edit one field of entry 2: detected at entry 2.
    let original = sql(&s, "SELECT detail FROM audit WHERE id = 2;");
    sql(&s, "UPDATE audit SET detail = 'size=1' WHERE id = 2;");
    let out = s.cli(&["audit", "verify"]);
    assert!(
        !out.status.success() && out.stderr.contains("audit chain broken at entry 2") && out.stderr.contains("altered"),
        "{}",
        out.stderr
    );
    sql(&s, &format!("UPDATE audit SET detail = {} WHERE id = 2;", sql_quote(&original)));
    assert!(s.cli(&["audit", "verify"]).status.success(), "restoring the row restores the chain");

    // Forge entry 3 with a new hash: without the key file no value can be right.
    let forged: Vec<u8> = unique_token("forged").bytes().cycle().take(32).collect();
    sql(&s, &format!("UPDATE audit SET actor = 'nobody', hash = {} WHERE id = 3;", s.sql_blob_literal(&forged)));
    let out = s.cli(&["audit", "verify"]);
    assert!(!out.status.success() && out.stderr.contains("broken at entry 3"), "{}", out.stderr);
}

#[test]
fn audit_chain_detects_a_removed_entry() {
    let s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    for i in 0..3 {
        c.send_message("ana@customer.org", &["support@example.com"], &simple_message(&format!("audit {i}"), "body"));
    }
    sql(&s, "DELETE FROM audit WHERE id = 2;");
    let out = s.cli(&["audit", "verify"]);
    assert!(!out.status.success() && out.stderr.contains("audit chain broken at entry 3: entries 2 to 2 are missing"), "{}", out.stderr);
}

/// `serve` stops before writing anything when the key file is not the database's: the newest
/// audit entry's MAC does not verify under it (a node given a fresh key instead of a copy).
#[test]
fn serve_refuses_a_key_file_the_database_was_not_written_with() {
    let mut s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    c.send_message("ana@customer.org", &["support@example.com"], &simple_message("keyed", "body"));
    drop(c);
    assert_eq!(s.terminate_and_wait().code(), Some(0));
    let key = s.data_dir.join("master.key");
    let original = std::fs::read(&key).unwrap();
    let entries = sql(&s, "SELECT COUNT(*) FROM audit;");
    // Another server's key: a valid key file, just not this database's.
    let other = Server::start(Opts::default());
    std::fs::write(&key, std::fs::read(other.data_dir.join("master.key")).unwrap()).unwrap();
    let out = s.cli(&["serve"]);
    assert!(!out.status.success(), "serve ran with another key file");
    assert!(
        out.stderr.contains(&key.display().to_string()) && out.stderr.contains("is not the one this database was written with"),
        "the error names the key file and the reason: {}",
        out.stderr
    );
    assert_eq!(sql(&s, "SELECT COUNT(*) FROM audit;"), entries, "nothing was written with the wrong key");
    // With its own key file back, it starts and its chain is intact.
    std::fs::write(&key, original).unwrap();
    s.restart();
    let ok = s.cli(&["audit", "verify"]);
    assert!(ok.status.success(), "{}{}", ok.stdout_str(), ok.stderr);
}
