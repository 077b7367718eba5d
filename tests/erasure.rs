//! `mailroom erase --address ADDR --by OFFICER`: crypto-shredding of one customer, over a real
//! server that took the mail by SMTP. Two customers write (one case shared by both); one is
//! erased. Then nothing of hers opens any more (the API answers 410 purged, `message show`
//! fails, IMAP no longer lists her messages), the other customer's messages are intact and
//! readable, the registration numbers are still all there (tombstones keep theirs), the audit
//! chain verifies and names no address, the directory entry and queued mail to her are gone,
//! and the store's bytes (SQLite file + WAL, or a pg_dump) no longer hold her messages' wrapped
//! keys nor their ciphertexts. A backup of the store verifies and `store copy` takes the
//! tombstones to PostgreSQL (SQLite). A dry run changes
//! nothing; a non-officer is refused; an unknown address erases nothing.

mod common;

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";
const ANA: &str = "ana.erased@customer-a.example";
const BOB: &str = "bob.kept@customer-b.example";

/// An agent role, and an outbox whose smarthost refuses: acknowledgements and replies stay
/// queued (and sealed) in the store.
const EXTRA: &str = r#"
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[outbox]
smarthost = "127.0.0.1:9"
tls = "none"
"#;

fn send(server: &Server, from: &str, subject: &str, body: &str) -> String {
    let content = format!(
        "From: Customer <{from}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@customer.example>\r\n\r\n{body}\r\n",
        unique_token("m-")
    );
    server.smtp_session().send_message(from, &["support@example.com"], content.as_bytes())
}

/// The id of the case opened by registration `number` in the support queue.
fn case_of(server: &Server, token: &str, number: &str) -> i64 {
    let list = api_ok(server, "GET", "/api/queues/support/cases?status=all&limit=200", token, None);
    list["items"].as_array().unwrap().iter().find(|i| i["opening"] == number).unwrap_or_else(|| panic!("{number}: {list}"))["id"]
        .as_i64()
        .unwrap()
}

/// The sealed bytes of one registration: wrapped key, and slices of each ciphertext (long enough
/// never to occur by chance, taken from the middle, past any common prefix).
fn sealed_bytes(server: &Server, number: &str) -> Vec<(String, Vec<u8>)> {
    let cond = format!("number = {}", sql_quote(number));
    let id = server.sql_i64(&format!("SELECT id FROM messages WHERE {cond}"));
    let mut out = vec![(format!("{number} wrapped_key"), server.sql_blob("messages", "wrapped_key", &cond))];
    for column in ["trace_ct", "fields_ct"] {
        out.push((format!("{number} {column}"), middle(&server.sql_blob("messages", column, &cond))));
    }
    out.push((format!("{number} raw_ct"), middle(&server.sql_blob("message_blobs", "raw_ct", &format!("message_id = {id}")))));
    out
}

fn middle(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() >= 48, "a ciphertext of {} bytes", bytes.len());
    let start = (bytes.len() - 24) / 2;
    bytes[start..start + 24].to_vec()
}

/// Which of `secrets` the store's bytes still hold: the SQLite file and its WAL as bytes, or a
/// pg_dump (blobs as hex there).
fn found_in_store(server: &Server, secrets: &[(String, Vec<u8>)]) -> Vec<String> {
    let contents = server.store_contents();
    let mut found = Vec::new();
    for (what, bytes) in secrets {
        let needle: Vec<u8> =
            if server.is_postgres() { bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes() } else { bytes.clone() };
        for (file, hay) in &contents {
            if let Some(at) = find(hay, &needle) {
                found.push(format!("{what} in {file} at {at}"));
            }
        }
    }
    found
}

fn imap_uids(server: &Server) -> Vec<u32> {
    let url = format!("imap://localhost:{}/support", server.imap_addr().port());
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--ssl-reqd", "--cacert", server.cert_path().to_str().unwrap()])
        .args(["-u", &format!("anna:{PW}"), "-X", "UID SEARCH ALL", &url])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl IMAP: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("* SEARCH")).unwrap_or_else(|| panic!("no SEARCH answer: {text}"));
    line.trim_start_matches("* SEARCH").split_whitespace().map(|u| u.parse().unwrap()).collect()
}

fn imap_fetch(server: &Server, uid: u32) -> (bool, String) {
    let url = format!("imap://localhost:{}/support;UID={uid}", server.imap_addr().port());
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--ssl-reqd", "--cacert", server.cert_path().to_str().unwrap()])
        .args(["-u", &format!("anna:{PW}"), &url])
        .output()
        .expect("run curl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A minimal IMAP client over implicit TLS (commands without literals; a response's literal
/// lines are kept as lines, none starts with the tag).
struct Imap {
    tls: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    buf: Vec<u8>,
    tag: u32,
}

impl Imap {
    fn login(server: &Server) -> Imap {
        use std::sync::Arc;
        let tcp = std::net::TcpStream::connect(server.imaps_addr()).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap().to_owned();
        let conn = rustls::ClientConnection::new(Arc::new(tls_client_config(None)), name).unwrap();
        let mut imap = Imap { tls: rustls::StreamOwned::new(conn, tcp), buf: Vec::new(), tag: 0 };
        assert!(imap.line().starts_with("* OK"));
        let (_, status) = imap.command(&format!("LOGIN anna \"{PW}\""));
        assert!(status.starts_with("OK"), "{status}");
        imap
    }

    fn line(&mut self) -> String {
        use std::io::Read;
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            let mut chunk = [0u8; 16384];
            let n = self.tls.read(&mut chunk).expect("IMAP read");
            assert!(n > 0, "IMAP connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// (untagged lines, tagged status without the tag).
    fn command(&mut self, command: &str) -> (Vec<String>, String) {
        use std::io::Write;
        self.tag += 1;
        let tag = format!("e{} ", self.tag);
        self.tls.write_all(format!("{tag}{command}\r\n").as_bytes()).unwrap();
        self.tls.flush().unwrap();
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if let Some(status) = line.strip_prefix(&tag) {
                return (lines, status.to_string());
            }
            lines.push(line);
        }
    }
}

fn raw(server: &Server, token: &str, number: &str) -> (u16, Value) {
    api(server, "GET", &format!("/api/messages/{number}/raw"), Some(token), None)
}

#[test]
fn erasing_an_address_shreds_its_messages_and_keeps_the_registrations() {
    let mut server = Server::start(Opts { extra_toml: EXTRA.into(), ..Default::default() });
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("olga", PW, &["security-officer"]);
    let directory = server.root().join("directory.csv");
    std::fs::write(&directory, format!("address_or_domain,name,tier,tags\n{ANA},Ana A,vip,\n{BOB},Bob B,long-term,\n")).unwrap();
    let out = server.cli(&["customers", "import", directory.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);

    // Ana writes three times (the third into her first case), Bob twice (his second into Ana's
    // first case, which both now share).
    let a1 = send(&server, ANA, "Order question", "ana-secret-one");
    let b1 = send(&server, BOB, "Invoice", "bob-kept-one");
    let a2 = send(&server, ANA, "Another matter", "ana-secret-two");
    let b2 = send(&server, BOB, &format!("Re: [{a1}] me too"), "bob-kept-two");
    let a3 = send(&server, ANA, &format!("Re: [{a1}] again"), "ana-secret-three");
    let token = bearer_login(&server, "anna", PW);
    let shared = case_of(&server, &token, &a1);
    let ana_only = case_of(&server, &token, &a2);
    api_ok(&server, "POST", &format!("/api/cases/{ana_only}/notes"), &token, Some(json!({ "text": "note about ana" })));
    api_ok(&server, "POST", &format!("/api/cases/{ana_only}/reply"), &token, Some(json!({ "body": "Dear Ana,\nreply" })));
    let entry_key = server.sql_blob("case_entries", "wrapped_key", &format!("case_id = {ana_only} AND kind = 'note'"));
    let detail = api_ok(&server, "GET", &format!("/api/cases/{shared}"), &token, None);
    assert_eq!(detail["messages"].as_array().unwrap().len(), 3, "{detail}");
    assert_eq!(imap_uids(&server).len(), 5);

    // A staff session that has the queue open while the erasure happens.
    let mut session = Imap::login(&server);
    let (lines, status) = session.command("SELECT support");
    assert!(status.starts_with("OK") && lines.iter().any(|l| l == "* 5 EXISTS"), "{lines:?} {status}");

    let mut erased: Vec<(String, Vec<u8>)> = [&a1, &a2, &a3].iter().flat_map(|n| sealed_bytes(&server, n)).collect();
    erased.push(("note's wrapped key".into(), entry_key));
    let kept: Vec<(String, Vec<u8>)> = [&b1, &b2].iter().flat_map(|n| sealed_bytes(&server, n)).collect();
    assert!(kept.iter().all(|k| !found_in_store(&server, std::slice::from_ref(k)).is_empty()), "the scan sees sealed bytes");

    // A non-officer is refused (and the refusal audited); an unknown address erases nothing.
    let refused = server.cli(&["erase", "--address", ANA, "--by", "anna"]);
    assert!(!refused.status.success() && refused.stderr.contains("not an active security officer"), "{}", refused.stderr);
    let refused = server.cli(&["erase", "--address", ANA, "--by", "nobody"]);
    assert!(!refused.status.success(), "an unknown user is no officer");
    let nothing = server.cli(&["erase", "--address", "nobody@nowhere.example", "--by", "olga", "--json"]);
    assert!(nothing.status.success(), "{}", nothing.stderr);
    let report: Value = serde_json::from_str(&nothing.stdout_str()).unwrap();
    assert_eq!((report["messages"].as_array().unwrap().len(), report["customers"].as_u64()), (0, Some(0)), "{report}");
    // A dry run tells what would go, and changes nothing.
    let dry = server.cli(&["erase", "--address", ANA, "--by", "olga", "--dry-run"]);
    assert!(dry.status.success(), "{}", dry.stderr);
    let text = dry.stdout_str();
    assert!(text.contains("dry run") && text.contains(&format!("messages purged     3: {a1}, {a2}, {a3}")), "{text}");
    assert_eq!(raw(&server, &token, &a1).0, 200, "a dry run changed nothing");
    assert!(!found_in_store(&server, &erased[..1]).is_empty());

    let out = server.cli(&["erase", "--address", &ANA.to_uppercase(), "--by", "olga", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout_str()).unwrap();
    assert_eq!(report["messages"], json!([a1, a2, a3]), "{report}");
    assert_eq!((report["cases"].as_u64(), report["customers"].as_u64()), (Some(1), Some(1)), "{report}");
    assert!(report["outbox"].as_u64().unwrap() >= 2, "the acknowledgement and the reply to Ana: {report}");
    assert!(report["participants"].as_u64().unwrap() >= 1, "{report}");

    // Nothing of Ana's opens; Bob's does.
    for number in [&a1, &a2, &a3] {
        let (status, body) = raw(&server, &token, number);
        assert_eq!((status, body["error"].as_str()), (410, Some("purged")), "{number}: {body}");
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.contains(number.as_str()) && reason.contains("erasure") && reason.contains("received"), "{reason}");
        let show = server.cli(&["message", "show", number]);
        assert!(!show.status.success() && show.stderr.contains("purged"), "{}", show.stderr);
    }
    for (number, body) in [(&b1, "bob-kept-one"), (&b2, "bob-kept-two")] {
        let (status, _) = raw(&server, &token, number);
        assert_eq!(status, 200, "{number}");
        assert!(String::from_utf8_lossy(&server.show_message(number)).contains(body));
    }
    let detail = api_ok(&server, "GET", &format!("/api/cases/{shared}"), &token, None);
    let numbers: Vec<&str> = detail["messages"].as_array().unwrap().iter().map(|m| m["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, [b2.as_str()], "{detail}");
    let detail = api_ok(&server, "GET", &format!("/api/cases/{ana_only}"), &token, None);
    assert!(detail["messages"].as_array().unwrap().is_empty() && detail["entries"].as_array().unwrap().is_empty(), "{detail}");
    api_ok(&server, "GET", "/api/queues/support/cases?status=all&limit=200", &token, None);
    // The web page too: the shared case with Bob's message, Ana's own case empty, the list.
    let (browser, _) = CurlBrowser::logged_in(&server, "anna", PW);
    for (case, expect) in [(shared, Some(&b2)), (ana_only, None)] {
        let page = browser.get(&format!("/cases/{case}"));
        assert_eq!(page.status, 200, "case page {case}: {}", page.body);
        assert!(expect.is_none_or(|n| page.body.contains(n.as_str())), "{}", page.body);
        assert!(!page.body.contains("ana-secret"), "{}", page.body);
    }
    assert_eq!(browser.get("/queues/support").status, 200);

    // The open session: Ana's first message (sequence 1) is no longer served, the next NOOP
    // expunges her three, and what is left is Bob's.
    let (lines, status) = session.command("FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration)])");
    assert!(status.starts_with("NO [EXPUNGEISSUED]") && !lines.iter().any(|l| l.contains(&a1)), "{lines:?} {status}");
    let (lines, status) = session.command("NOOP");
    assert!(status.starts_with("OK"), "{status}");
    assert_eq!(lines.iter().filter(|l| l.ends_with(" EXPUNGE")).count(), 3, "{lines:?}");
    let (lines, status) = session.command("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (X-Mailroom-Registration)])");
    assert!(status.starts_with("OK"), "{status}");
    let text = lines.join("\n");
    assert!(text.contains(&b1) && text.contains(&b2) && !text.contains(&a2) && !text.contains(&a3), "{text}");

    // IMAP lists Bob's two messages only, and both open.
    let uids = imap_uids(&server);
    assert_eq!(uids.len(), 2, "{uids:?}");
    for uid in uids {
        let (ok, text) = imap_fetch(&server, uid);
        assert!(ok && text.contains("bob-kept"), "UID {uid}: {text}");
    }

    // Every registration is still listed, in order: the numbering has no gap; tombstones say so.
    let listed = server.list_messages();
    let numbers: Vec<String> = listed.iter().map(|m| m.number.clone()).collect();
    assert_eq!(numbers, [&a1, &b1, &a2, &b2, &a3].map(|n| n.to_string()));
    let purged: Vec<bool> = listed.iter().map(|m| m.raw["purged_by"] == "erasure").collect();
    assert_eq!(purged, [true, false, true, false, true], "{:?}", listed.iter().map(|m| &m.raw).collect::<Vec<_>>());
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM messages WHERE purged_by = 'erasure' AND key_id = 0 AND sender_idx IS NULL"), 3);

    // The directory entry and queued mail to Ana are gone.
    let export = server.cli(&["customers", "export"]);
    assert!(export.status.success(), "{}", export.stderr);
    assert!(!export.stdout_str().contains(ANA) && export.stdout_str().contains(BOB), "{}", export.stdout_str());
    assert!(server.sql_i64("SELECT COUNT(*) FROM outbox WHERE status = 'purged' AND key_id = 0") >= 2);
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM outbox WHERE key_id = 0 AND status IN ('pending', 'sending')"), 0);

    // The audit chain verifies; the receipt is in it, without the address.
    let verify = server.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", verify.stderr);
    let audit = server.cli(&["audit", "list", "--action", "erasure", "--json"]);
    let entries: Vec<Value> = audit.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 2, "the empty erasure and Ana's: {entries:?}");
    let last = entries.last().unwrap().to_string();
    assert!(last.contains(&a3) && last.contains("user:olga") && !last.to_lowercase().contains("ana.erased"), "{last}");
    let audit = server.cli(&["audit", "list", "--action", "erasure.refused", "--json"]);
    assert_eq!(audit.stdout_str().lines().count(), 2);

    // No wrapped key nor ciphertext of Ana's messages is left in the store's bytes; Bob's are.
    assert_eq!(found_in_store(&server, &erased), Vec::<String>::new());
    assert!(kept.iter().all(|k| !found_in_store(&server, std::slice::from_ref(k)).is_empty()), "Bob's sealed bytes are still there");
    assert!(!server.log_text().contains(ANA), "the log names no address");

    // A master key rotation afterwards passes over the tombstones (no key left to re-wrap) and
    // retires the old version; Bob's messages still open.
    let rotated = server.cli(&["keys", "rotate"]);
    assert!(rotated.status.success(), "keys rotate after an erasure: {}{}", rotated.stdout_str(), rotated.stderr);
    assert_eq!(server.sql_i64("SELECT COUNT(*) FROM messages WHERE key_id NOT IN (0, 2)"), 0, "live rows on version 2, tombstones 0");
    let (status, _) = raw(&server, &token, &b2);
    assert_eq!(status, 200, "Bob's message opens with the new key");

    // A fresh backup of the store with tombstones verifies (backups are SQLite's).
    if !server.sqlite_only("mailroom backup takes SQLite stores only") {
        let file = server.root().join("after-erasure.backup");
        let out = server.cli(&["backup", "--to", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", out.stderr);
        let verified = server.cli(&["backup", "verify", file.to_str().unwrap()]);
        assert!(verified.status.success(), "backup verify: {}{}", verified.stdout_str(), verified.stderr);
        assert!(verified.stdout_str().contains("purged          3"), "{}", verified.stdout_str());

        // `store copy` takes the tombstones along as they are.
        server.terminate_and_wait();
        let pg = PgCluster::start();
        let url = pg.database("copied");
        let (dir, config) = (server.data_dir.to_str().unwrap(), server.config.to_str().unwrap());
        let out = run_bin(&["store", "copy", "--from", dir, "--config", config, "--to", &url], std::time::Duration::from_secs(120));
        assert!(out.status.success(), "store copy: {}{}", out.stdout_str(), out.stderr);
        let copied = Database::Postgres(url);
        let tombstones = copied.sql("SELECT number FROM messages WHERE purged_by = 'erasure' AND key_id = 0 ORDER BY id");
        assert_eq!(tombstones, [a1.as_str(), a2.as_str(), a3.as_str()].join("\n"));
        assert_eq!(copied.sql_i64("SELECT COUNT(*) FROM message_blobs"), 2, "Bob's two messages only");
    }
}
