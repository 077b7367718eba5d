//! Master key rotation (`mailroom keys rotate`, `keys status`) against a live server:
//! * under an SMTP load, the rotation is killed with SIGKILL mid-way and run again; it completes,
//!   the key file then holds only the new version, and with that file alone (server restarted)
//!   everything opens: every acknowledged message (gap-free numbers), over the API and IMAP, case
//!   tags and notes, the outbox (a queued reply is sent), the directory, a TOTP login, a backup
//!   (SQLite); the audit chain verifies; every data key is counted under the new version;
//! * the running server wraps new data keys with the new version without a restart;
//! * several nodes (PostgreSQL): a version added to a copy of the key file and put in place on
//!   every node is taken over by the running nodes; one rotation re-wraps and retires;
//! * retirement is refused while a process that kept the old key file wrote a row under the old
//!   version (nothing removed), and a later run completes it; the old key file alone opens
//!   nothing re-wrapped.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";
const CUSTOMER: &str = "rotation-customer@client.example.org";

/// A role to work cases with, and an outbox that retries every second against `smarthost`.
fn opts(smarthost: u16) -> Opts {
    let extra = format!(
        r#"
[[roles]]
name = "support-agent"
grants = {{ support = ["read", "act"] }}

[outbox]
smarthost = "127.0.0.1:{smarthost}"
tls = "none"
retry_initial = "1s"
retry_max = "1s"
max_attempts = 1000
undo_seconds = 0
"#
    );
    Opts { extra_toml: extra, ..Default::default() }
}

/// A loopback port nothing listens on (the outbox's attempts are refused there).
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: Rotation Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\r\nHello.\r\n",
        unique_token("rot-")
    )
    .into_bytes()
}

fn key_file(server: &Server) -> PathBuf {
    server.data_dir.join("master.key")
}

/// The master key versions in a key file.
fn versions_in(path: &Path) -> Vec<i64> {
    let file: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file["keys"].as_array().unwrap().iter().map(|k| k["id"].as_integer().unwrap()).collect()
}

/// A config like the server's but with another key file: a process that never saw the rotation.
fn config_with_key_file(server: &Server, key: &Path) -> PathBuf {
    let text = std::fs::read_to_string(&server.config).unwrap();
    assert!(text.contains("master_key_file = \"master.key\""), "{text}");
    let stale = text.replace("master_key_file = \"master.key\"", &format!("master_key_file = \"{}\"", key.display()));
    let path = server.root().join(format!("{}.toml", key.file_stem().unwrap().to_string_lossy()));
    std::fs::write(&path, stale).unwrap();
    path
}

fn cli_with_config(server: &Server, config: &Path, args: &[&str]) -> CliOutput {
    let mut full: Vec<std::ffi::OsString> = args.iter().map(|a| a.into()).collect();
    full.extend(["--data-dir".into(), server.data_dir.clone().into_os_string(), "--config".into(), config.as_os_str().into()]);
    run_bin(&full, Duration::from_secs(60))
}

fn copy_private(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// `keys rotate` in the background, slowed down by `pause_ms` per batch, its stdout read line by line.
fn spawn_rotate(server: &Server, batch: u32, pause_ms: u64) -> (Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = Command::new(BIN)
        .args(["keys", "rotate", "--batch", &batch.to_string(), "--data-dir"])
        .arg(&server.data_dir)
        .arg("--config")
        .arg(&server.config)
        .env("MAILROOM_TEST_ROTATE_PAUSE_MS", pause_ms.to_string())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads the rotation's output until a line containing `wanted` (panics if it ends first).
fn read_until(lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>, wanted: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(wanted) {
            return seen;
        }
    }
    panic!("`keys rotate` ended without printing {wanted:?}: {seen:?}");
}

fn status(server: &Server) -> String {
    let out = server.cli(&["keys", "status"]);
    assert!(out.status.success(), "keys status: {}", out.stderr);
    out.stdout_str()
}

/// The TOTP code of `secret` for the time step `steps` away from now (tests/py/totp.py).
fn totp(secret: &str, steps: i64) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/totp.py");
    let out = Command::new("python3").arg(script).arg(secret).arg(steps.to_string()).output().expect("run python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Data keys per table that are not wrapped by `version`, straight from the store.
fn rows_not_under(server: &Server, version: i64) -> Vec<(String, i64)> {
    [
        ("messages", "key_id"),
        ("customers", "key_id"),
        ("outbox", "key_id"),
        ("case_entries", "key_id"),
        ("cases", "key_id"),
        ("user_totp", "key_id"),
        ("access_changes", "code_key_id"),
    ]
    .iter()
    .map(|(t, k)| (t.to_string(), server.sql_i64(&format!("SELECT COUNT(*) FROM {t} WHERE {k} IS NOT NULL AND {k} <> {version}"))))
    .filter(|(_, n)| *n > 0)
    .collect()
}

fn raw_message(server: &Server, token: &str, number: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "30", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{}/api/messages/{number}/raw", server.http_url()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every registration decrypts (with the server's key file); the numbers are exactly 1..=max;
/// every acknowledged number is stored with exactly the bytes its client sent. Besides the load's
/// messages the store holds the customer's first message and the registered staff reply.
fn verify_messages(load: &Load, server: &Server) -> usize {
    let list = server.list_messages();
    let mut seqs: Vec<u64> = list.iter().map(|l| parse_number(&l.number).seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=list.len() as u64).collect::<Vec<_>>(), "gap-free, no duplicates");
    let acked: std::collections::HashMap<String, String> = load.acked().into_iter().map(|a| (a.number, a.token)).collect();
    let listed: std::collections::HashSet<&str> = list.iter().map(|l| l.number.as_str()).collect();
    let lost: Vec<&String> = acked.keys().filter(|n| !listed.contains(n.as_str())).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let numbers: Vec<String> = list.iter().map(|l| l.number.clone()).collect();
    std::thread::scope(|scope| {
        for chunk in numbers.chunks(numbers.len().div_ceil(4)) {
            let acked = &acked;
            scope.spawn(move || {
                for number in chunk {
                    let content = server.stored_content(number);
                    if let Some(token) = acked.get(number) {
                        assert_eq!(show_bytes(&content), show_bytes(&load.sent(token).unwrap()), "{number}: not the message sent");
                    }
                }
            });
        }
    });
    list.len()
}

#[test]
fn a_rotation_killed_under_load_resumes_and_everything_opens_with_the_new_key_only() {
    let dead = dead_port();
    let mut server = Server::start(opts(dead));

    // Sealed rows of every kind under version 1: a message with its case's tags, a note and a
    // queued reply, a directory entry, a TOTP secret.
    let first = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message("rotation-subject-secret"));
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("ivan", PW, &["support-agent"]);
    let token = bearer_login(&server, "anna", PW);
    let list = api_ok(&server, "GET", "/api/queues/support/cases?status=all&limit=200", &token, None);
    let case = list["items"].as_array().unwrap().iter().find(|i| i["opening"] == first.as_str()).unwrap()["id"].as_i64().unwrap();
    api_ok(&server, "POST", &format!("/api/cases/{case}/claim"), &token, Some(json!({})));
    api_ok(&server, "POST", &format!("/api/cases/{case}/tags"), &token, Some(json!({ "add": ["rotation-tag-secret"] })));
    api_ok(&server, "POST", &format!("/api/cases/{case}/notes"), &token, Some(json!({ "text": "note-text-secret" })));
    api_ok(&server, "POST", &format!("/api/cases/{case}/reply"), &token, Some(json!({ "body": "Dear customer,\nreply-text-secret" })));
    let csv = server.root().join("customers.csv");
    std::fs::write(&csv, "address_or_domain,name,tier,tags\nvip-customer@client.example.org,Vera Vip,vip,key-account\n").unwrap();
    let out = server.cli(&["customers", "import", csv.to_str().unwrap()]);
    assert!(out.status.success(), "customers import: {}", out.stderr);
    let enrolled = api_ok(&server, "POST", "/api/me/totp", &token, None);
    let secret = enrolled["secret"].as_str().unwrap().to_string();
    api_ok(&server, "POST", "/api/me/totp/confirm", &token, Some(json!({ "code": totp(&secret, 0) })));

    let before = status(&server);
    assert!(before.contains("version 1: created ") && before.contains("(current)"), "{before}");
    assert!(before.contains("messages v1: ") && before.contains("user_totp v1: 1") && before.contains("customers v1: 1"), "{before}");
    assert!(before.contains("rotation: none in progress") && before.contains("index key: not rotatable"), "{before}");
    let old_key = server.root().join("old.key");
    copy_private(&key_file(&server), &old_key);

    // The rotation under load, killed after its second batch.
    let load_started = Instant::now();
    let load = Load::start(vec![server.smtp_addr()], 4, Duration::from_millis(5));
    assert!(load.wait_for_acks(0, load_started, 100, Duration::from_secs(120)), "the load got going");
    let (mut rotate, mut lines) = spawn_rotate(&server, 5, 150);
    let printed = read_until(&mut lines, "re-wrapped 10 of ");
    assert!(printed[0].contains("rotating to master key version 2 (older versions: 1)"), "{printed:?}");
    rotate.kill().unwrap();
    assert!(!rotate.wait().unwrap().success());
    assert_eq!(versions_in(&key_file(&server)), vec![1, 2], "killed before retiring: both versions stay");
    let during = status(&server);
    assert!(during.contains("rotation: in progress to version 2") && during.contains("v2: ") && during.contains("v1: "), "{during}");
    let killed_at = Instant::now();
    assert!(load.wait_for_acks(0, killed_at, 20, Duration::from_secs(60)), "mail keeps coming after the kill");

    // Run again: it continues the same rotation, completes it and retires version 1.
    let out = server.cli(&["keys", "rotate", "--batch", "50"]);
    assert!(out.status.success(), "keys rotate (resumed): {}{}", out.stdout_str(), out.stderr);
    let text = out.stdout_str();
    assert!(text.contains("resuming the rotation to master key version 2"), "{text}");
    assert!(text.contains("retired versions [1]; the key file holds only version 2"), "{text}");
    assert!(text.lines().all(|l| !l.contains('@')), "counts only: {text}");
    let rotated_at = Instant::now();
    assert!(load.wait_for_acks(0, rotated_at, 20, Duration::from_secs(60)), "mail keeps coming after the rotation");
    load.stop();
    assert_eq!(versions_in(&key_file(&server)), vec![2]);
    assert_eq!(file_mode(&key_file(&server)) & 0o777, 0o600, "the replaced key file stays private");
    assert!(!server.data_dir.join("master.new").exists(), "no temporary key file left");

    // Restart with the new key file alone, the outbox now pointed at a smarthost that accepts.
    server.terminate_and_wait();
    let (port, captured) = capture_smtp();
    let config = std::fs::read_to_string(&server.config).unwrap().replace(&format!("127.0.0.1:{dead}"), &format!("127.0.0.1:{port}"));
    std::fs::write(&server.config, config).unwrap();
    server.restart();

    let stored = verify_messages(&load, &server);
    assert!(stored > 120, "{stored} messages");
    assert_eq!(rows_not_under(&server, 2), vec![], "every data key is wrapped by version 2");
    let after = status(&server);
    assert!(after.contains("version 2: created ") && !after.contains("version 1"), "{after}");
    assert!(!after.contains(" v1: ") && after.contains(&format!("messages v2: {stored}")), "{after}");
    assert!(after.contains("rotation: none in progress"), "{after}");

    // Over the API, with a TOTP login: the message, the case's tags and note.
    let (status_code, v) = api(&server, "POST", "/api/login", None, Some(json!({ "user": "anna", "password": PW, "mode": "bearer" })));
    assert_eq!((status_code, v["error"].as_str()), (401, Some("code_required")), "{v}");
    let (status_code, v) = api(
        &server,
        "POST",
        "/api/login",
        None,
        Some(json!({ "user": "anna", "password": PW, "mode": "bearer", "code": totp(&secret, 1) })),
    );
    assert_eq!(status_code, 200, "TOTP login with the new key only: {v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert!(raw_message(&server, &token, &first).contains("rotation-subject-secret"));
    let acked = load.acked();
    let last = &acked.last().unwrap().number;
    assert!(raw_message(&server, &token, last).contains(LOAD_TOKEN_PREFIX), "a message of the load after the rotation");
    let case_view = api_ok(&server, "GET", &format!("/api/cases/{case}"), &token, None);
    assert_eq!(case_view["tags"], json!(["rotation-tag-secret"]), "{case_view}");
    assert!(case_view["entries"].to_string().contains("note-text-secret"), "{case_view}");
    let filtered = api_ok(&server, "GET", "/api/queues/support/cases?status=all&tag=rotation-tag-secret", &token, None);
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1, "the tag index still matches: {filtered}");

    // Over IMAP (STARTTLS, curl): the first message's body.
    let url = format!("imap://localhost:{}/support;MAILINDEX=1", server.imap_addr().port());
    let cert = server.cert_path();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--ssl-reqd", "--cacert", cert.to_str().unwrap(), "-u", &format!("ivan:{PW}"), &url])
        .output()
        .unwrap();
    let fetched = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(fetched.starts_with(&format!("X-Mailroom-Registration: {first}\r\n")), "{fetched}");
    assert!(fetched.contains("rotation-subject-secret") && fetched.ends_with("Hello.\r\n"), "{fetched}");

    // The directory, and the queued reply sent by the outbox.
    let exported = server.cli(&["customers", "export"]);
    assert!(exported.status.success() && exported.stdout_str().contains("vip-customer@client.example.org"), "{}", exported.stderr);
    assert!(
        wait_until(Duration::from_secs(30), || captured.lock().unwrap().iter().any(|m| m.data.contains("reply-text-secret"))),
        "the reply queued before the rotation is sent with the new key only\n{}",
        server.log_text()
    );

    // Audited; the chain verifies (its MAC key, the index key, did not change).
    let verify = server.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "audit verify: {}{}", verify.stdout_str(), verify.stderr);
    let of = |action: &str| {
        let audit = server.cli(&["audit", "list", "--action", action, "--json"]);
        assert!(audit.status.success(), "{}", audit.stderr);
        let entries: Vec<Value> = audit.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(entries.iter().all(|e| e["actor"].as_str().unwrap().starts_with("cli:")), "{entries:?}");
        entries.iter().map(|e| e["detail"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>()
    };
    assert_eq!(of("keys.rotate"), vec!["to=2 from=1 resumed=false", "to=2 from=1 resumed=true"]);
    assert_eq!(of("keys.retire"), vec!["keep=2 retired=1"]);

    // The old key file alone opens nothing any more.
    let stale = config_with_key_file(&server, &old_key);
    let out = cli_with_config(&server, &stale, &["message", "show", &first]);
    assert!(!out.status.success() && out.stderr.contains("master key 2 is not in the key file"), "{}", out.stderr);

    if server.sqlite_only("`backup verify` reads SQLite backups") {
        return;
    }
    let backup = server.root().join("after.db");
    let out = server.cli(&["backup", "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "backup: {}", out.stderr);
    let verified = server.cli(&["backup", "verify", backup.to_str().unwrap()]);
    assert!(verified.status.success(), "backup verify with the new key: {}{}", verified.stdout_str(), verified.stderr);
    let with_old =
        run_bin(&["backup", "verify", backup.to_str().unwrap(), "--key-file", old_key.to_str().unwrap()], Duration::from_secs(60));
    assert!(!with_old.status.success(), "a backup after the rotation does not open with the old key file");
}

#[test]
fn retirement_is_refused_while_a_row_needs_the_old_version_and_completes_later() {
    let server = Server::start(opts(dead_port()));
    for i in 0..3 {
        server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message(&format!("before-{i}")));
    }
    let stale_key = server.root().join("stale.key");
    copy_private(&key_file(&server), &stale_key);
    let stale = config_with_key_file(&server, &stale_key);

    // The rotation waits before its final check; meanwhile a process that still has only the
    // old key file writes a directory entry (under version 1), and the running server takes
    // a message (under version 2: it noticed the new key file by itself).
    let (mut rotate, mut lines) = spawn_rotate(&server, 100, 4000);
    read_until(&mut lines, "checking that no data key needs versions 1 any more");
    let csv = server.root().join("customers.csv");
    std::fs::write(&csv, "address_or_domain,name,tier,tags\nlate@client.example.org,Late Writer,long-term,\n").unwrap();
    let out = cli_with_config(&server, &stale, &["customers", "import", csv.to_str().unwrap()]);
    assert!(out.status.success(), "customers import with the old key file: {}", out.stderr);
    let during = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message("during"));
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = rotate.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut rotate.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!exit.success(), "retirement must be refused: {rest:?}");
    assert!(
        stderr.contains("1 data keys are still wrapped by master key versions other than 2 (customers v1: 1): nothing was retired"),
        "{stderr}"
    );
    assert_eq!(versions_in(&key_file(&server)), vec![1, 2], "nothing removed");
    assert_eq!(server.sql_i64("SELECT MAX(key_id) FROM messages WHERE id = (SELECT MAX(id) FROM messages)"), 2, "{during}");
    let text = status(&server);
    assert!(text.contains("customers v1: 1") && text.contains("rotation: in progress to version 2: 1 data keys"), "{text}");

    // The old key file alone does not open what was re-wrapped.
    let out = cli_with_config(&server, &stale, &["message", "show", &during]);
    assert!(!out.status.success() && out.stderr.contains("master key 2 is not in the key file"), "{}", out.stderr);

    // Later, the same command completes the rotation.
    let out = server.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "keys rotate again: {}{}", out.stdout_str(), out.stderr);
    assert!(out.stdout_str().contains("retired versions [1]"), "{}", out.stdout_str());
    assert_eq!(versions_in(&key_file(&server)), vec![2]);
    assert_eq!(rows_not_under(&server, 2), vec![]);
    let exported = server.cli(&["customers", "export"]);
    assert!(exported.status.success() && exported.stdout_str().contains("late@client.example.org"), "{}", exported.stderr);
    let verify = server.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "audit verify: {}", verify.stderr);
}

/// Puts `from` in place at `to` as an operator would: a private copy beside it, renamed over it.
fn install(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    copy_private(from, &tmp);
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn several_nodes_take_a_version_added_to_a_copy_then_one_rotation_retires_the_old() {
    if postgres_pass_only("several_nodes_take_a_version_added_to_a_copy_then_one_rotation_retires_the_old") {
        return;
    }
    let url = fresh_postgres_database();
    let dir = tempfile::tempdir().unwrap();
    let (key_a, key_b, next) = (dir.path().join("a.key"), dir.path().join("b.key"), dir.path().join("master.key.next"));
    let a = start_node_with(&url, &key_a, "node-a", opts(dead_port()));
    copy_private(&key_a, &key_b);
    let b = start_node_with(&url, &key_b, "node-b", opts(dead_port()));
    a.add_user("anna", PW, &["support-agent"]);
    let mut before = Vec::new();
    for (i, node) in [&a, &b, &a, &b].into_iter().enumerate() {
        before.push(node.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message(&format!("before-{i}"))));
    }

    // The version goes into a copy first; no node wraps with it until every node has it.
    copy_private(&key_a, &next);
    let out = run_bin(&["keys".as_ref(), "add".as_ref(), "--key-file".as_ref(), next.as_os_str()], Duration::from_secs(30));
    assert!(out.status.success(), "keys add --key-file: {}", out.stderr);
    assert_eq!((versions_in(&next), versions_in(&key_a)), (vec![1, 2], vec![1]));
    install(&next, &key_a);
    install(&next, &key_b);
    // A node looks at its key file at most every 200 ms (`KeyRing::refresh`): node b's last look
    // may have come just before the copy went in (CI once took both sends within that window).
    std::thread::sleep(Duration::from_millis(300));
    // Both running nodes wrap with it now (no restart), and read each other's mail.
    let new_a = a.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message("after-a"));
    let new_b = b.smtp_session().send_message(CUSTOMER, &["support@example.com"], &message("after-b"));
    for number in [&new_a, &new_b] {
        assert_eq!(a.sql_i64(&format!("SELECT key_id FROM messages WHERE number = {}", sql_quote(number))), 2, "{number}");
    }

    // One rotation on one node re-wraps and retires; its file goes to the other node.
    let out = a.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "keys rotate: {}{}", out.stdout_str(), out.stderr);
    assert!(out.stdout_str().contains("resuming the rotation to master key version 2"), "{}", out.stdout_str());
    assert!(out.stdout_str().contains("retired versions [1]"), "{}", out.stdout_str());
    install(&key_a, &key_b);
    assert_eq!((versions_in(&key_a), versions_in(&key_b)), (vec![2], vec![2]));
    assert_eq!(rows_not_under(&a, 2), vec![]);

    // Both running nodes read everything with version 2 alone.
    for node in [&a, &b] {
        let token = bearer_login(node, "anna", PW);
        for number in before.iter().chain([&new_a, &new_b]) {
            assert!(raw_message(node, &token, number).contains("Subject: "), "{number} on {:?}", node.opts.node);
        }
    }
    let verify = b.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "audit verify: {}", verify.stderr);
}
