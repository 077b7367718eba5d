//! `mailroom backup --to FILE`, `backup verify FILE` and `restore FILE --data-dir DIR`.
//!
//! A server takes mail from several SMTP clients while `mailroom backup` runs; the backup is
//! restored into a new data dir with a copy of the key file and served again: every number
//! acknowledged before the backup started is there with its exact bytes, the numbering is
//! gap-free and continues, the audit chain verifies. How long the backup held deliveries up is
//! measured (the longest pause between two 250s while it ran) and printed. Damaged backups (wrong
//! key file, a flipped byte in a sealed column, a truncated file, a deleted audit entry) fail
//! `backup verify` naming the problem, and `restore` writes nothing for them. PostgreSQL stores
//! are refused with a pointer to PostgreSQL's tools, in both passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";
const CUSTOMER: &str = "customer@client.example.org";

/// A role to tag and annotate cases with, and an outbox whose smarthost refuses (its rows, the
/// acknowledgements and a reply, stay queued and sealed in the store).
const EXTRA: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[outbox]
smarthost = "127.0.0.1:9"
tls = "none"
"#;

fn opts() -> Opts {
    Opts { extra_toml: EXTRA.into(), ..Default::default() }
}

/// Staff work that leaves sealed rows of every kind: case tags, a note, a reply in the outbox.
fn staff_work(server: &Server, number: &str) {
    server.add_user("anna", PW, &["support-agent"]);
    let token = bearer_login(server, "anna", PW);
    let list = api_ok(server, "GET", "/api/queues/support/cases?status=all&limit=200", &token, None);
    let case =
        list["items"].as_array().unwrap().iter().find(|i| i["opening"] == number).unwrap_or_else(|| panic!("{number}: {list}"))["id"]
            .as_i64()
            .unwrap();
    api_ok(server, "POST", &format!("/api/cases/{case}/claim"), &token, Some(json!({})));
    api_ok(server, "POST", &format!("/api/cases/{case}/tags"), &token, Some(json!({ "add": ["backup-tag-secret"] })));
    api_ok(server, "POST", &format!("/api/cases/{case}/notes"), &token, Some(json!({ "text": "note-text-secret" })));
    api_ok(server, "POST", &format!("/api/cases/{case}/reply"), &token, Some(json!({ "body": "Dear customer,\nreply-text-secret" })));
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: Ann Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\r\nHello.\r\n",
        unique_token("m-")
    )
    .into_bytes()
}

fn key_file(server: &Server) -> PathBuf {
    server.data_dir.join("master.key")
}

fn copy_private(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

fn verify_with(file: &Path, key: &Path) -> CliOutput {
    run_bin(&["backup".as_ref(), "verify".as_ref(), file.as_os_str(), "--key-file".as_ref(), key.as_os_str()], Duration::from_secs(120))
}

fn assert_fails(out: &CliOutput, what: &str, reason: &str) {
    assert!(!out.status.success(), "{what}: must fail, printed {}", out.stdout_str());
    assert!(out.stderr.contains(reason), "{what}: expected {reason:?} in: {}", out.stderr);
}

/// Runs a Python snippet on the SQLite file `db` (`sqlite3` module, the file as `sys.argv[1]`).
fn python_sql(db: &Path, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n{script}\nc.commit()\n"))
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
}

/// The longest time without a 250 within [from, to] (counting from `from` and until `to`).
fn longest_pause(acks: &[Ack], from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = acks.iter().map(|a| a.at).filter(|at| *at >= from && *at <= to).collect();
    times.sort();
    let mut last = from;
    let mut longest = Duration::ZERO;
    for at in times.into_iter().chain([to]) {
        longest = longest.max(at - last);
        last = at;
    }
    longest
}

#[test]
fn a_backup_taken_under_load_restores_every_number_acknowledged_before_it() {
    let server = Server::start(opts());
    if server.sqlite_only("backup and restore copy a SQLite store (the refusal on PostgreSQL is tested below)") {
        return;
    }
    let first = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message("first-subject-secret"));
    staff_work(&server, &first);

    let load_started = Instant::now();
    let load = Load::start(vec![server.smtp_addr()], 4, Duration::from_millis(2));
    assert!(load.wait_for_acks(0, load_started, 300, Duration::from_secs(120)), "the load got going");
    let file = server.root().join("backup.db");
    let started = Instant::now();
    let out = server.cli(&["backup", "--to", file.to_str().unwrap()]);
    let finished = Instant::now();
    assert!(out.status.success(), "backup: {}{}", out.stdout_str(), out.stderr);
    // Mail keeps flowing after the backup, then the clients stop.
    assert!(load.wait_for_acks(0, finished, 50, Duration::from_secs(60)), "deliveries continue after the backup");
    load.stop();
    let acks = load.acked();
    let before: Vec<&Ack> = acks.iter().filter(|a| a.at < started).collect();
    let during = acks.iter().filter(|a| a.at >= started && a.at <= finished).count();
    let pause_during = longest_pause(&acks, started, finished);
    let baseline_from = started - (finished - started).max(Duration::from_secs(1));
    let pause_before = longest_pause(&acks, baseline_from, started);
    eprintln!(
        "backup under load: {} ms; {} 250s before it, {during} while it ran; longest pause between 250s while it ran {} ms \
         (in as long a time before it: {} ms); the command said:\n{}",
        (finished - started).as_millis(),
        before.len(),
        pause_during.as_millis(),
        pause_before.as_millis(),
        out.stdout_str()
    );
    assert!(pause_during < Duration::from_secs(2), "deliveries stalled for {pause_during:?} during the backup");
    let printed = out.stdout_str();
    assert!(printed.contains("backup written: ") && printed.contains("the key file is NOT in the backup"), "{printed}");

    // The backup holds ciphertext only, and no key.
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(file_mode(&file) & 0o077, 0, "the backup is private");
    for clear in ["first-subject-secret", "backup-tag-secret", "note-text-secret", "reply-text-secret", LOAD_TOKEN_PREFIX, CUSTOMER] {
        assert!(memchr::memmem::find(&bytes, clear.as_bytes()).is_none(), "{clear:?} in clear in the backup");
    }
    let key_text = std::fs::read_to_string(key_file(&server)).unwrap();
    for line in key_text.lines().filter_map(|l| l.split_once(" = ")).map(|(_, v)| v.trim_matches('"')).filter(|v| v.len() >= 40) {
        assert!(memchr::memmem::find(&bytes, line.as_bytes()).is_none(), "key material in the backup");
    }
    // Refused: an existing file, untouched.
    let again = server.cli(&["backup", "--to", file.to_str().unwrap()]);
    assert_fails(&again, "a second backup to the same file", "already exists");
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "the existing file is not replaced");
    // Audited on the live store.
    let audited = server.cli(&["audit", "list", "--action", "store.backup", "--json"]);
    let entries: Vec<Value> = audited.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 1, "one store.backup entry: {}", audited.stdout_str());
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("cli:"), "{}", entries[0]);
    assert!(entries[0]["detail"].as_str().unwrap().contains("backup.db"), "{}", entries[0]);

    let verified = server.cli(&["backup", "verify", file.to_str().unwrap()]);
    assert!(verified.status.success(), "backup verify: {}{}", verified.stdout_str(), verified.stderr);
    let text = verified.stdout_str();
    assert!(text.contains("audit chain intact") && text.contains("every one decrypted") && text.contains("1 with sealed tags"), "{text}");
    assert!(text.contains("case entries    2") || text.contains("case entries    1"), "the note (and the reply): {text}");

    // Restore into a new data dir: refused without the key file, then done with a copy of it.
    let mut restored = Server::prepare(opts());
    let refused = restored.cli(&["restore", file.to_str().unwrap()]);
    assert_fails(&refused, "restore without the key file", "no key file at");
    assert!(!restored.data_dir.join("mailroom.db").exists(), "a refused restore writes nothing");
    copy_private(&key_file(&server), &key_file(&restored));
    let out = restored.cli(&["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "restore: {}{}", out.stdout_str(), out.stderr);
    assert!(out.stdout_str().contains("verified and restored"), "{}", out.stdout_str());
    let twice = restored.cli(&["restore", file.to_str().unwrap()]);
    assert_fails(&twice, "a restore into a data dir with a store", "already holds a store");
    restored.restart();

    // Every number acknowledged before the backup started is there, with the bytes sent.
    let listed = restored.list_messages();
    let mut seqs: Vec<u64> = listed.iter().map(|l| parse_number(&l.number).seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "numbering gap-free in the restored store");
    let numbers: std::collections::HashSet<&str> = listed.iter().map(|l| l.number.as_str()).collect();
    let missing: Vec<&str> = before.iter().map(|a| a.number.as_str()).filter(|n| !numbers.contains(n)).collect();
    assert!(missing.is_empty(), "acknowledged before the backup started but not restored: {missing:?}");
    std::thread::scope(|scope| {
        for chunk in before.chunks(before.len().div_ceil(4)) {
            let (restored, load) = (&restored, &load);
            scope.spawn(move || {
                for ack in chunk {
                    let content = restored.stored_content(&ack.number);
                    assert_eq!(show_bytes(&content), show_bytes(&load.sent(&ack.token).unwrap()), "{}: restored content", ack.number);
                }
            });
        }
    });
    assert!(restored.stored_content(&first).ends_with(b"Hello.\r\n"));
    let audit = restored.cli(&["audit", "verify"]);
    assert!(audit.status.success() && audit.stdout_str().starts_with("audit chain intact"), "{}{}", audit.stdout_str(), audit.stderr);
    let counts = restored.cli(&["store", "counts"]);
    assert!(counts.status.success(), "the restored queue counters equal a full count: {}{}", counts.stdout_str(), counts.stderr);
    let restore_entry = restored.cli(&["audit", "list", "--action", "store.restore"]);
    assert!(restore_entry.stdout_str().contains("store.restore"), "{}", restore_entry.stdout_str());
    // The restored server takes mail and numbers on from the backup's last number.
    let next = restored.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message("after restore"));
    assert_eq!(parse_number(&next).seq, seqs.len() as u64 + 1, "{next} follows the restored numbering");
}

#[test]
fn damaged_backups_fail_verification_with_a_reason_and_are_not_restored() {
    let server = Server::start(opts());
    if server.sqlite_only("backups are SQLite files") {
        return;
    }
    let numbers: Vec<String> =
        (0..3).map(|i| server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message(&format!("m{i}")))).collect();
    staff_work(&server, &numbers[0]);
    let good = server.root().join("good.db");
    let out = server.cli(&["backup", "--to", good.to_str().unwrap()]);
    assert!(out.status.success(), "backup: {}{}", out.stdout_str(), out.stderr);
    let key = key_file(&server);
    let ok = verify_with(&good, &key);
    assert!(ok.status.success(), "{}{}", ok.stdout_str(), ok.stderr);
    assert!(ok.stdout_str().contains("year ") && ok.stdout_str().contains(": 1..=3"), "{}", ok.stdout_str());

    let variant = |name: &str| {
        let path = server.root().join(name);
        copy_private(&good, &path);
        path
    };
    // A key file that is not this store's (another data dir's).
    let other = Server::start(opts());
    assert_fails(&verify_with(&good, &key_file(&other)), "wrong key file", "does not open it");
    // No key file at all.
    assert_fails(&verify_with(&good, &server.root().join("nothing.key")), "missing key file", "nothing.key");

    // One byte flipped in a sealed column: the raw message, an outbox row, the case's tags.
    let flip = |column: &str, table: &str, row: &str| {
        format!(
            "v = bytearray(c.execute('SELECT {column} FROM {table} WHERE {row}').fetchone()[0])\nv[len(v) // 2] ^= 0x01\n\
             c.execute('UPDATE {table} SET {column} = ? WHERE {row}', (bytes(v),))"
        )
    };
    let raw = variant("raw.db");
    python_sql(&raw, &flip("raw_ct", "message_blobs", "message_id = 2"));
    assert_fails(&verify_with(&raw, &key), "flipped byte in a raw message", &format!("message {}: its raw bytes do not open", numbers[1]));
    let outbox = variant("outbox.db");
    python_sql(&outbox, &flip("mail_ct", "outbox", "id = (SELECT MAX(id) FROM outbox)"));
    assert_fails(&verify_with(&outbox, &key), "flipped byte in an outbox row", "outbox row ");
    let tags = variant("tags.db");
    python_sql(&tags, &flip("tags_ct", "cases", "tags_ct IS NOT NULL"));
    assert_fails(&verify_with(&tags, &key), "flipped byte in case tags", "tags of case ");

    // The tag index no longer matches the sealed tags (a listing filter would lie).
    let index = variant("index.db");
    python_sql(&index, "c.execute('DELETE FROM case_tags')");
    assert_fails(&verify_with(&index, &key), "a deleted tag index row", "its tag index does not match its sealed tags");

    // Truncated (as a copy cut short by a full disk).
    let truncated = variant("truncated.db");
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&truncated).unwrap().set_len(len / 2).unwrap();
    assert_fails(&verify_with(&truncated, &key), "truncated file", "truncated");

    // An audit entry deleted.
    let cut = variant("cut.db");
    python_sql(&cut, "c.execute('DELETE FROM audit WHERE id = 2')");
    assert_fails(&verify_with(&cut, &key), "deleted audit entry", "audit chain broken at entry 3: entries 2 to 2 are missing");

    // A message row deleted with its audit entry intact: the numbering has a gap.
    let gap = variant("gap.db");
    python_sql(
        &gap,
        "c.execute('DELETE FROM message_blobs WHERE message_id = 2')\nc.execute('DELETE FROM message_cases WHERE message_id = 2')\nc.execute('DELETE FROM messages WHERE id = 2')",
    );
    assert_fails(&verify_with(&gap, &key), "a missing message", "not gap-free");

    // The live database file copied as it is (WAL mode) is not a backup.
    assert_fails(&verify_with(&server.data_dir.join("mailroom.db"), &key), "the live file", "WAL mode");

    // Restore verifies first: a damaged backup leaves the data dir as it was.
    let target = Server::prepare(opts());
    copy_private(&key, &key_file(&target));
    let refused = target.cli(&["restore", raw.to_str().unwrap()]);
    assert_fails(&refused, "restore of a damaged backup", "raw.db fails verification");
    let left: Vec<String> =
        std::fs::read_dir(&target.data_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["master.key"], "nothing but the key file in the data dir");
}

#[test]
fn a_postgres_store_is_refused_pointing_to_postgres_tools() {
    let dir = tempfile::Builder::new().prefix("mailroom-backup-pg-").tempdir().unwrap();
    let data = dir.path().join("data");
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&data).unwrap();
    let config = dir.path().join("mailroom.toml");
    // Refused before connecting: nothing listens on port 1.
    let opts = Opts { postgres_url: Some("postgres://mailroom@127.0.0.1:1/mailroom".into()), ..Default::default() };
    std::fs::write(&config, opts.config_toml()).unwrap();
    let file = dir.path().join("backup.db");
    let location = ["--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap()];
    let check = |out: &CliOutput, what: &str| {
        assert_fails(out, what, "pg_basebackup");
        assert!(out.stderr.contains("pg_dump") && out.stderr.contains("docs/deploy-postgres.md"), "{what}: {}", out.stderr);
    };
    let backup = [&["backup", "--to", file.to_str().unwrap()][..], &location[..]].concat();
    check(&run_bin(&backup, Duration::from_secs(30)), "backup of a PostgreSQL store");
    assert!(!file.exists(), "no file written");
    let restore = [&["restore", file.to_str().unwrap()][..], &location[..]].concat();
    check(&run_bin(&restore, Duration::from_secs(30)), "restore into a PostgreSQL store");

    // In the PostgreSQL pass, also against a running node's store.
    if postgres_run() {
        let server = Server::start(Opts::default());
        let out = server.cli(&["backup", "--to", file.to_str().unwrap()]);
        check(&out, "backup of a running node's PostgreSQL store");
        assert!(!file.exists());
    }
}
