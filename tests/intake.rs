//! Intake end to end (issue #3): messages sent over SMTP land in the expected queue with the
//! expected category, priority, tags and due time; replies thread by registration tag and by
//! References; a reply re-opens a resolved case unless it is automatic; a message addressed to two
//! queues is registered once and opens a case in each.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const RULES: &str = r#"
[[categories]]
code = "BZZX"
name = "Business enquiry"

[[categories]]
code = "TSJJ"
name = "Complaint or suggestion"

[sla]
timezone = "UTC"
working_days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
urgent = "24h"
normal = "3 working days"
low = "5 working days"

[[rules]]
name = "complaint"
subject_contains = ["complaint"]
category = "TSJJ"
queue = "complaints"
priority = "urgent"
tags = ["complaint"]

[[rules]]
name = "sales"
to = ["sales@example.com"]
category = "BZZX"
priority = "low"
"#;

fn server() -> Server {
    Server::start(Opts { extra_toml: RULES.into(), ..Opts::default() })
}

fn message(from: &str, subject: &str, extra_headers: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\n{extra_headers}\r\nHello,\r\nthis is the body.\r\n")
        .into_bytes()
}

/// The cases of a registration, as `message list --json` shows them.
fn cases(s: &Server, number: &str) -> Vec<Value> {
    let listed = s.list_messages();
    let m = listed.iter().find(|m| m.number == number).unwrap_or_else(|| panic!("{number} not listed"));
    m.raw["cases"].as_array().cloned().unwrap_or_default()
}

fn message_tags(s: &Server, number: &str) -> Vec<String> {
    let listed = s.list_messages();
    let m = listed.iter().find(|m| m.number == number).unwrap();
    m.raw["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

fn case_ids(s: &Server, number: &str) -> Vec<i64> {
    cases(s, number).iter().map(|c| c["case"].as_i64().unwrap()).collect()
}

fn received_at(s: &Server, number: &str) -> chrono::DateTime<chrono::Utc> {
    let listed = s.list_messages();
    let m = listed.iter().find(|m| m.number == number).unwrap();
    m.raw["received_at"].as_str().unwrap().parse().unwrap()
}

fn set_status(s: &Server, opening: &str, status: &str) {
    s.sql(&format!("UPDATE cases SET status = {} WHERE opening_number = {};", sql_quote(status), sql_quote(opening)));
    s.recount_queues();
}

#[test]
fn classification_routes_with_category_priority_tags_and_due_time() {
    let s = server();
    let mut c = s.smtp_session();

    let complaint =
        c.send_message("ana@customer.org", &["support@example.com"], &message("ana@customer.org", "A complaint about my order", ""));
    let cs = cases(&s, &complaint);
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0]["queue"], "complaints", "the rule's queue wins over the recipient's");
    assert_eq!(cs[0]["category"], "TSJJ");
    assert_eq!(cs[0]["priority"], "urgent");
    assert_eq!(cs[0]["tags"], serde_json::json!(["complaint"]));
    assert_eq!(cs[0]["status"], "new");
    let due: chrono::DateTime<chrono::Utc> = cs[0]["due_at"].as_str().unwrap().parse().unwrap();
    let received = received_at(&s, &complaint);
    let urgent = due - received;
    assert!((urgent - chrono::Duration::hours(24)).num_seconds().abs() <= 1, "urgent = 24 h from acceptance, got {urgent}");

    let order = c.send_message("bob@client.org", &["sales@example.com"], &message("bob@client.org", "Quote please", ""));
    let cs = cases(&s, &order);
    assert_eq!(
        (cs[0]["queue"].as_str(), cs[0]["category"].as_str(), cs[0]["priority"].as_str()),
        (Some("sales"), Some("BZZX"), Some("low"))
    );
    let due: chrono::DateTime<chrono::Utc> = cs[0]["due_at"].as_str().unwrap().parse().unwrap();
    let low = due - received_at(&s, &order);
    // 5 working days of 8 hours can never take less than 40 elapsed hours, nor more than two weeks.
    assert!(low >= chrono::Duration::hours(40) && low <= chrono::Duration::days(14), "low priority due after {low}");

    // No rule: routed by recipient, normal priority, no category.
    let plain = c.send_message("cy@client.org", &["help@example.com"], &message("cy@client.org", "Hello", ""));
    let cs = cases(&s, &plain);
    assert_eq!((cs[0]["queue"].as_str(), cs[0]["priority"].as_str()), (Some("support"), Some("normal")));
    assert!(cs[0]["category"].is_null());
}

#[test]
fn two_queues_addressed_one_registration_two_cases() {
    let s = server();
    let mut c = s.smtp_session();
    let n = c.send_message(
        "ana@customer.org",
        &["support@example.com", "sales@example.com"],
        &message("ana@customer.org", "For both teams", ""),
    );
    let listed = s.list_messages();
    assert_eq!(listed.len(), 1, "registered and stored once");
    let mut queues: Vec<String> = cases(&s, &n).iter().map(|c| c["queue"].as_str().unwrap().to_string()).collect();
    queues.sort();
    assert_eq!(queues, vec!["sales".to_string(), "support".to_string()], "a case in each queue");
    assert!(cases(&s, &n).iter().all(|c| c["opening"] == n.as_str()));
}

#[test]
fn replies_thread_by_tag_and_by_references() {
    let s = server();
    let mut c = s.smtp_session();
    let first = c.send_message(
        "ana@customer.org",
        &["support@example.com"],
        &message("ana@customer.org", "Broken widget", "Message-ID: <first-1@customer.org>\r\n"),
    );
    let original = case_ids(&s, &first);

    // A reply carrying the registration tag joins the case; it still gets its own number.
    let reply = c.send_message(
        "ana@customer.org",
        &["support@example.com"],
        &message("ana@customer.org", &format!("Re: [{first}] Broken widget"), ""),
    );
    assert_ne!(reply, first);
    assert_eq!(case_ids(&s, &reply), original, "tagged reply joins the case");
    assert!(message_tags(&s, &reply).is_empty(), "the same sender is not a new participant");

    // A reply by References only (no tag), from someone new on the case.
    let by_reference = c.send_message(
        "boss@customer.org",
        &["support@example.com"],
        &message("boss@customer.org", "Re: Broken widget", "In-Reply-To: <first-1@customer.org>\r\nReferences: <first-1@customer.org>\r\n"),
    );
    assert_eq!(case_ids(&s, &by_reference), original, "References join the case");
    assert_eq!(message_tags(&s, &by_reference), vec!["new-participant".to_string()]);

    // A tag with a wrong check digit threads nothing and is flagged.
    let forged = c.send_message(
        "eve@elsewhere.org",
        &["support@example.com"],
        &message("eve@elsewhere.org", &format!("Re: [{}] hello", with_wrong_check(&first)), ""),
    );
    assert_ne!(case_ids(&s, &forged), original, "an invalid tag must not join the case");
    assert_eq!(message_tags(&s, &forged), vec!["invalid-registration-tag".to_string()]);
}

#[test]
fn human_reply_reopens_automatic_reply_does_not() {
    let s = server();
    let mut c = s.smtp_session();
    let first = c.send_message("ana@customer.org", &["support@example.com"], &message("ana@customer.org", "Invoice question", ""));
    let case = case_ids(&s, &first)[0];
    let status = |s: &Server| {
        let cs = cases(s, &first);
        cs.iter().find(|c| c["case"].as_i64() == Some(case)).unwrap()["status"].as_str().unwrap().to_string()
    };

    set_status(&s, &first, "closed");
    let auto = c.send_message(
        "ana@customer.org",
        &["support@example.com"],
        &message("ana@customer.org", &format!("Out of office: [{first}] Invoice question"), "Auto-Submitted: auto-replied\r\n"),
    );
    assert_eq!(case_ids(&s, &auto), vec![case], "an auto-reply is attached to the case");
    assert_eq!(status(&s), "closed", "an auto-reply re-opens nothing");

    set_status(&s, &first, "resolved");
    let human = c.send_message(
        "ana@customer.org",
        &["support@example.com"],
        &message("ana@customer.org", &format!("Re: [{first}] Invoice question"), ""),
    );
    assert_eq!(case_ids(&s, &human), vec![case]);
    assert_eq!(status(&s), "open", "a human reply re-opens a resolved case");
}

fn mailroom(args: &[&str]) -> CliOutput {
    run_bin(args, Duration::from_secs(30))
}

#[test]
fn rules_test_dry_run_explains_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailroom.toml");
    std::fs::write(&config, Opts { extra_toml: RULES.into(), ..Opts::default() }.config_toml()).unwrap();
    let eml = dir.path().join("complaint.eml");
    std::fs::write(&eml, message("ana@customer.org", "Formal complaint", "Message-ID: <c1@customer.org>\r\n")).unwrap();

    let out = mailroom(&["rules", "test", eml.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    let text = out.stdout_str();
    assert!(out.status.success(), "{text}\n{}", out.stderr);
    for needle in [
        "rule \"complaint\" matched: subject contains \"complaint\"",
        "category    TSJJ (Complaint or suggestion)",
        "priority    urgent",
        "queues      complaints",
        "tags        complaint",
        "acknowledge true",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let json = mailroom(&["rules", "test", eml.to_str().unwrap(), "--config", config.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["queues"], serde_json::json!(["complaints"]));
    assert_eq!(v["record"]["message_id"], "c1@customer.org");
    assert!(!Path::new(&dir.path().join("mailroom.db")).exists(), "a dry run stores nothing");
}

#[test]
fn bad_rules_stop_the_start_naming_file_line_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailroom.toml");
    let bad = format!("{RULES}\n[[rules]]\nname = \"broken\"\nsubject_regex = \"(unclosed\"\n");
    let text = Opts { extra_toml: bad, ..Opts::default() }.config_toml();
    let line = text.lines().position(|l| l.starts_with("subject_regex = \"(unclosed")).unwrap() + 1;
    std::fs::write(&config, &text).unwrap();
    let out = mailroom(&["config", "check", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let expected = format!("{}:{line}: rules[2].subject_regex: rule \"broken\": bad regex", config.display());
    assert!(out.stderr.contains(&expected), "expected {expected:?} in {:?}", out.stderr);

    let missing_queue = format!("{RULES}\n[[rules]]\nname = \"lost\"\nqueue = \"marketing\"\n");
    std::fs::write(&config, Opts { extra_toml: missing_queue, ..Opts::default() }.config_toml()).unwrap();
    let out = mailroom(&["config", "check", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success() && out.stderr.contains("rules[2].queue: rule \"lost\": no queue named \"marketing\""), "{}", out.stderr);
}

/// A server that checks SPF/DKIM/DMARC against the recorded DNS answers `records` (TOML);
/// `rules` come before RULES.
fn server_with_records(dir: &Path, records: &str, rules: &str) -> Server {
    let path = dir.join("dns.toml");
    std::fs::write(&path, records).unwrap();
    let extra = format!("{rules}\n{RULES}\n[authentication]\nverify = \"dns\"\nrecords = \"{}\"\n", path.display());
    // The harness turns checks off; this test's own [authentication] section must win, so drop it.
    let config = Opts { extra_toml: extra, ..Opts::default() }.config_toml().replace(
        "[authentication]\n# No network here: tests that need SPF/DKIM/DMARC give recorded DNS answers instead.\nverify = \"off\"\n",
        "",
    );
    Server::start(Opts { raw_config: Some(config), ..Opts::default() })
}

/// customer.org publishes SPF for 127.0.0.1 and a DMARC reject policy.
fn server_with_recorded_dns(dir: &Path, rules: &str) -> Server {
    let records = "[[txt]]\nname = \"customer.org\"\nvalue = \"v=spf1 ip4:127.0.0.1 -all\"\n\n[[txt]]\nname = \"_dmarc.customer.org\"\nvalue = \"v=DMARC1; p=reject\"\n";
    server_with_records(dir, records, rules)
}

#[test]
fn spf_dmarc_from_recorded_dns_decide_authenticated_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_recorded_dns(
        dir.path(),
        "[[rules]]\nname = \"verified\"\nauthenticated = true\ntags = [\"verified\"]\ncontinue = true\n",
    );
    let mut c = s.smtp_session();

    // Envelope and From: at customer.org, sent from the SPF-authorised address: DMARC passes.
    let good = c.send_message("ana@customer.org", &["support@example.com"], &message("ana@customer.org", "Hello", ""));
    let listed = s.list_messages();
    let m = listed.iter().find(|m| m.number == good).unwrap();
    assert_eq!(m.raw["auth"], "spf=pass dkim=none dmarc=pass", "{:?}", m.raw);
    assert_eq!(cases(&s, &good)[0]["tags"], serde_json::json!(["verified"]));
    let shown = String::from_utf8_lossy(&s.show_message(&good)).to_string();
    assert!(shown.contains("Authentication-Results: mx.example.com;") && shown.contains("dmarc=pass"), "{shown}");

    // A spoofed From: customer.org with a foreign envelope sender: DMARC fails, no "verified".
    let spoof = c.send_message("mallory@attacker.example", &["support@example.com"], &message("ceo@customer.org", "Pay this invoice", ""));
    let listed = s.list_messages();
    let m = listed.iter().find(|m| m.number == spoof).unwrap();
    assert!(m.raw["auth"].as_str().unwrap().contains("dmarc=fail"), "{:?}", m.raw);
    assert_eq!(cases(&s, &spoof)[0]["tags"], serde_json::json!([]));
}

#[test]
fn vip_tier_counts_only_for_an_authenticated_sender() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_recorded_dns(dir.path(), "[[rules]]\nname = \"vip\"\ntier = [\"vip\"]\npriority = \"urgent\"\ntags = [\"vip\"]\n");
    let csv = dir.path().join("customers.csv");
    std::fs::write(
        &csv,
        "address_or_domain,name,tier,tags\nana@customer.org,Ana Examplewoman,vip,key account\nbigcorp.example,Big Corp,long-term,\n",
    )
    .unwrap();
    let out = s.cli(&["customers", "import", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    // The server re-reads the directory every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    let mut c = s.smtp_session();

    let real = c.send_message("ana@customer.org", &["support@example.com"], &message("ana@customer.org", "Hello from a VIP", ""));
    let case = &cases(&s, &real)[0];
    assert_eq!((case["priority"].as_str(), case["tags"].clone()), (Some("urgent"), serde_json::json!(["vip"])), "{case:?}");
    assert_eq!(case["tier"], "vip", "the tier is kept on the case: {case:?}");
    assert!(message_tags(&s, &real).is_empty());

    // Same From:, but sent by someone else: DMARC fails, so no VIP treatment, and a warning tag.
    let spoof =
        c.send_message("mallory@attacker.example", &["support@example.com"], &message("ana@customer.org", "Urgent wire transfer", ""));
    let case = &cases(&s, &spoof)[0];
    assert_eq!(case["priority"], "normal", "{case:?}");
    assert_eq!(case["tier"], serde_json::Value::Null, "an unauthenticated sender's tier is not kept: {case:?}");
    assert!(!case["tags"].as_array().unwrap().contains(&serde_json::json!("vip")));
    assert_eq!(message_tags(&s, &spoof), vec!["unverified-sender".to_string()]);

    // Export gives the directory back; the database holds no name or address of it in clear.
    let out = s.cli(&["customers", "export"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout_str().contains("ana@customer.org,Ana Examplewoman,vip,key account"), "{}", out.stdout_str());
    for (file, bytes) in s.store_contents() {
        assert!(find(&bytes, b"Examplewoman").is_none() && find(&bytes, b"bigcorp.example").is_none(), "directory in clear in {file}");
    }
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "address_or_domain,name,tier,tags\nx@y.org,X,gold,\n").unwrap();
    let out = s.cli(&["customers", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success() && out.stderr.contains("line 2: tier \"gold\""), "{}", out.stderr);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Postfix's smtp-sink, dumping every transaction into `dir` (one file each).
fn smtp_sink(port: u16, dir: &Path) -> Option<std::process::Child> {
    let sink = Path::new("/usr/sbin/smtp-sink");
    if !sink.exists() {
        eprintln!("SKIPPED: /usr/sbin/smtp-sink not installed (Debian package postfix)");
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = Command::new(sink);
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "nobody"]);
    }
    cmd.arg("-d").arg(format!("{}/%M.", dir.display())).arg(format!("127.0.0.1:{port}")).arg("16");
    Some(cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("smtp-sink"))
}

fn dumped(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).to_string()).collect();
    files.sort();
    files
}

#[test]
fn acknowledgements_go_out_once_loop_safe_and_after_the_smarthost_returns() {
    let port = free_port();
    // Sales mail is categorised BZZX, whose own acknowledgement text wins over the global one.
    let rules = RULES.replace("code = \"BZZX\"\nname = \"Business enquiry\"\n", "code = \"BZZX\"\nname = \"Business enquiry\"\nacknowledgement = { subject = \"Your enquiry: {subject}\", body = \"Our sales team has your enquiry {number} and answers by {due}.\" }\n");
    let extra = format!(
        "{rules}\n[outbox]\nsmarthost = \"127.0.0.1:{port}\"\nretry_initial = \"200ms\"\nretry_max = \"500ms\"\nack_window = \"1h\"\n"
    );
    let s = Server::start(Opts { extra_toml: extra, ..Opts::default() });
    let mut c = s.smtp_session();

    let first = c.send_message(
        "ana@customer.org",
        &["support@example.com"],
        &message("ana@customer.org", "Where is my parcel?", "Message-ID: <parcel-1@customer.org>\r\n"),
    );
    let _again = c.send_message("ana@customer.org", &["support@example.com"], &message("ana@customer.org", "And another thing", ""));
    let _bounce = c.send_message("", &["support@example.com"], &message("MAILER-DAEMON@customer.org", "Undelivered Mail", ""));
    let _ooo = c.send_message(
        "bob@client.org",
        &["support@example.com"],
        &message("bob@client.org", "Out of office", "Auto-Submitted: auto-replied\r\n"),
    );
    let _list = c.send_message(
        "news@lists.example.org",
        &["support@example.com"],
        &message("news@lists.example.org", "Weekly digest", "List-Id: <digest.lists.example.org>\r\n"),
    );
    let _ours = c.send_message("sales@example.com", &["support@example.com"], &message("sales@example.com", "Internal note", ""));
    let second = c.send_message("dave@client.org", &["sales@example.com"], &message("dave@client.org", "Quote request", ""));

    // Only now does the smarthost come up: the queued acknowledgements must still arrive.
    std::thread::sleep(Duration::from_millis(800));
    let dir = tempfile::tempdir().unwrap();
    let Some(mut sink) = smtp_sink(port, dir.path()) else { return };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while dumped(dir.path()).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let mails = dumped(dir.path());
    let _ = sink.kill();
    let _ = sink.wait();

    assert_eq!(mails.len(), 2, "exactly two acknowledgements (ana once, dave once), got:\n{}", mails.join("\n-----\n"));
    let to_ana = mails.iter().find(|m| m.contains("ana@customer.org")).expect("ana acknowledged");
    let to_dave = mails.iter().find(|m| m.contains("dave@client.org")).expect("dave acknowledged");
    for (mail, number) in [(to_ana, &first), (to_dave, &second)] {
        assert!(mail.contains(&format!("Subject: [{number}]")), "tag first in the subject:\n{mail}");
        assert!(mail.contains("Auto-Submitted: auto-replied"), "{mail}");
        assert!(mail.contains(number.as_str()), "{mail}");
    }
    assert!(to_ana.contains("In-Reply-To: <parcel-1@customer.org>"), "{to_ana}");
    assert!(to_ana.contains("From: support@example.com") || to_ana.contains("From: <support@example.com>"), "{to_ana}");
    assert!(to_dave.contains("sales@example.com"), "from the queue the customer wrote to:\n{to_dave}");
    assert!(
        to_dave.contains("Your enquiry: Quote request") && to_dave.contains("Our sales team has your enquiry"),
        "the category's own text:\n{to_dave}"
    );
    assert!(!to_ana.contains("Our sales team"), "the global text for other mail:\n{to_ana}");
}

#[test]
fn dkim_signed_vip_is_trusted_tampered_copy_is_not() {
    use base64::Engine;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;

    let dir = tempfile::tempdir().unwrap();
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    // customer.org publishes its DKIM key and DMARC, but its SPF does not cover us (a relay sends).
    let records = format!(
        "[[txt]]\nname = \"customer.org\"\nvalue = \"v=spf1 ip4:192.0.2.1 -all\"\n\n[[txt]]\nname = \"mr2026._domainkey.customer.org\"\nvalue = \"v=DKIM1; k=ed25519; p={public}\"\n\n[[txt]]\nname = \"_dmarc.customer.org\"\nvalue = \"v=DMARC1; p=reject\"\n"
    );
    let s =
        server_with_records(dir.path(), &records, "[[rules]]\nname = \"vip\"\ntier = [\"vip\"]\npriority = \"urgent\"\ntags = [\"vip\"]\n");
    let csv = dir.path().join("customers.csv");
    std::fs::write(&csv, "address_or_domain,name,tier,tags\ncustomer.org,Customer Org,vip,\n").unwrap();
    assert!(s.cli(&["customers", "import", csv.to_str().unwrap()]).status.success());
    std::thread::sleep(Duration::from_millis(2500));

    let unsigned = b"From: Ana <ana@customer.org>\r\nTo: support@example.com\r\nSubject: Signed hello\r\nMessage-ID: <signed-1@customer.org>\r\n\r\nHello, signed body.\r\n".to_vec();
    let signature = DkimSigner::from_key(key)
        .domain("customer.org")
        .selector("mr2026")
        .headers(["From", "To", "Subject", "Message-ID"])
        .sign(&unsigned)
        .unwrap();
    let mut signed = signature.to_header().into_bytes();
    signed.extend_from_slice(&unsigned);

    let mut c = s.smtp_session();
    let good = c.send_message("bounces@relay.example", &["support@example.com"], &signed);
    let listed = s.list_messages();
    let auth = listed.iter().find(|m| m.number == good).unwrap().raw["auth"].as_str().unwrap().to_string();
    assert!(auth.contains("dkim=pass") && auth.contains("dmarc=pass"), "{auth}");
    let case = &cases(&s, &good)[0];
    assert_eq!(case["priority"], "urgent", "{case:?}");
    assert!(message_tags(&s, &good).is_empty());

    // The same signature over a body changed in transit: DKIM fails, so no VIP and a warning.
    let tampered = String::from_utf8(signed.clone()).unwrap().replace("Hello, signed body.", "Hello, please pay invoice 666.").into_bytes();
    let bad = c.send_message("bounces@relay.example", &["support@example.com"], &tampered);
    let listed = s.list_messages();
    let auth = listed.iter().find(|m| m.number == bad).unwrap().raw["auth"].as_str().unwrap().to_string();
    assert!(auth.contains("dkim=fail") && auth.contains("dmarc=fail"), "{auth}");
    assert_eq!(cases(&s, &bad)[0]["priority"], "normal");
    assert_eq!(message_tags(&s, &bad), vec!["unverified-sender".to_string()]);
}
