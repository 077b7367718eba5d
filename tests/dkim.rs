//! DKIM signing of outgoing mail, end to end: `mailroom dkim generate` writes a key and prints
//! its DNS record; a server configured with it signs the acknowledgement of a new case and a staff
//! reply sent through the API; the captured messages verify with mail-auth against the printed
//! record (served from mail-auth's TXT cache, no network), and fail once altered. A key file that
//! is missing, garbled, of an unsupported type or readable by everyone is refused naming file,
//! line and key; a signing domain that does not cover our From domain is a warning.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{AuthenticatedMessage, DkimResult, DnsError, MessageAuthenticator, Parameters, ResolverCache, Txt};

const PW: &str = "correct-horse-battery-staple";
const CUSTOMER: &str = "customer@client.example.org";
const ROLES: &str = "[[roles]]\nname = \"support-agent\"\ngrants = { support = [\"read\", \"act\"] }\n";

/// What `dkim generate` / `dkim show` printed: the zone-file line, split into its strings.
struct Printed {
    name: String,
    strings: Vec<String>,
    /// The `[dkim]` lines to paste (generate only).
    config: String,
}

impl Printed {
    fn parse(stdout: &str) -> Printed {
        let line = stdout.lines().find(|l| l.contains(" IN TXT ")).unwrap_or_else(|| panic!("no TXT record printed: {stdout}"));
        let (name, rest) = line.split_once(" IN TXT ").unwrap();
        let strings: Vec<String> =
            rest.trim().strip_prefix('"').unwrap().strip_suffix('"').unwrap().split("\" \"").map(String::from).collect();
        let config = stdout.find("[dkim]").map(|at| stdout[at..].to_string()).unwrap_or_default();
        Printed { name: name.trim_end_matches('.').to_string(), strings, config }
    }

    fn value(&self) -> String {
        self.strings.concat()
    }
}

/// mail-auth's TXT cache holding the one recorded key; every other name is NXDOMAIN.
struct RecordedTxt(HashMap<Box<str>, Txt>);

impl RecordedTxt {
    fn new(name: &str, value: &str) -> RecordedTxt {
        let key = DomainKey::parse(value.as_bytes()).expect("the printed record parses as a DKIM key");
        RecordedTxt(HashMap::from([(name.to_fqdn().into_owned().into_boxed_str(), Txt::from(key))]))
    }
}

impl ResolverCache<Box<str>, Txt> for RecordedTxt {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        Some(self.0.get(name).cloned().unwrap_or(Txt::Error(mail_auth::Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)))))
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// mail-auth's verdict on each DKIM signature of `message`, with the signing domain and selector.
fn verify(message: &[u8], record: &Printed) -> Vec<(DkimResult, String, String)> {
    let cache = RecordedTxt::new(&record.name, &record.value());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // Never asked: every lookup is answered from the cache.
        let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
        let parsed = AuthenticatedMessage::parse(message).expect("the captured message parses");
        authenticator
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(&cache))
            .await
            .into_iter()
            .map(|o| {
                let (d, s) = o.signature().map(|s| (s.d.clone(), s.s.clone())).unwrap_or_default();
                (o.result().clone(), d, s)
            })
            .collect()
    })
}

fn passes(message: &[u8], record: &Printed) -> bool {
    let results = verify(message, record);
    assert_eq!(results.len(), 1, "one signature: {results:?}");
    matches!(results[0].0, DkimResult::Pass)
}

/// The message with one byte of its body changed.
fn body_altered(message: &str) -> String {
    let (head, body) = message.split_once("\r\n\r\n").unwrap();
    let mut body = body.to_string();
    let at = body.find(|c: char| c.is_ascii_alphabetic()).expect("a letter in the body");
    let c = body.as_bytes()[at];
    body.replace_range(at..at + 1, &((if c == b'x' { b'y' } else { b'x' }) as char).to_string());
    format!("{head}\r\n\r\n{body}")
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    message.lines().find(|l| l.to_ascii_lowercase().starts_with(&prefix)).map(|l| l[prefix.len()..].trim())
}

/// A prepared (not started) server whose outbox sends to a capture server; returns both.
fn prepared() -> (Server, std::sync::Arc<std::sync::Mutex<Vec<Captured>>>) {
    let (port, captured) = capture_smtp();
    let extra =
        format!("{ROLES}\n[outbox]\nsmarthost = \"127.0.0.1:{port}\"\ntls = \"none\"\npoll_interval = \"50ms\"\nundo_seconds = 0\n");
    (Server::prepare(Opts { extra_toml: extra, ..Default::default() }), captured)
}

/// Runs `dkim generate` for the server's data dir and config, adds the printed `[dkim]` lines to
/// its config and starts it.
fn generate_and_start(server: &mut Server, args: &[&str]) -> Printed {
    let mut full = vec!["dkim", "generate"];
    full.extend_from_slice(args);
    let out = server.cli(&full);
    assert!(out.status.success(), "dkim generate: {}", out.stderr);
    let stdout = out.stdout_str();
    let printed = Printed::parse(&stdout);
    assert!(!printed.config.is_empty(), "the [dkim] lines are printed: {stdout}");
    let mut config = std::fs::read_to_string(&server.config).unwrap();
    config.push_str(&format!("\n{}\n", printed.config));
    std::fs::write(&server.config, config).unwrap();
    server.restart();
    printed
}

fn wait_for(captured: &std::sync::Mutex<Vec<Captured>>, what: &str, f: impl Fn(&Captured) -> bool) -> Captured {
    assert!(wait_until(Duration::from_secs(30), || captured.lock().unwrap().iter().any(&f)), "{what} never reached the smarthost");
    captured.lock().unwrap().iter().find(|m| f(m)).cloned().unwrap()
}

/// A staff reply through the HTTP API (bearer login), for the case `number` opened.
fn reply_through_api(server: &Server, number: &str, body: &str) {
    let curl = |method: &str, path: &str, token: Option<&str>, json: Option<String>| -> serde_json::Value {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "--fail-with-body", "--max-time", "60", "-X", method]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if let Some(json) = json {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", &json]);
        }
        let out = cmd.arg(format!("{}{path}", server.http_url())).output().unwrap();
        assert!(out.status.success(), "{method} {path}: {}", String::from_utf8_lossy(&out.stdout));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    server.add_user("anna", PW, &["support-agent"]);
    let login = curl("POST", "/api/login", None, Some(serde_json::json!({ "user": "anna", "password": PW, "mode": "bearer" }).to_string()));
    let token = login["token"].as_str().unwrap().to_string();
    let cases = curl("GET", "/api/queues/support/cases?status=all&limit=200", Some(&token), None);
    let id =
        cases["items"].as_array().unwrap().iter().find(|c| c["opening"] == number).expect("the case is listed")["id"].as_i64().unwrap();
    curl("POST", &format!("/api/cases/{id}/reply"), Some(&token), Some(serde_json::json!({ "body": body }).to_string()));
}

#[test]
fn acknowledgements_and_replies_are_signed_and_verify_against_the_printed_record() {
    let (mut server, captured) = prepared();
    let printed = generate_and_start(&mut server, &["--selector", "mr2026"]);

    // The key: where the default puts it, private, PKCS#8 PEM; the record: 255-byte strings.
    let key_file = server.data_dir.join("dkim-mr2026.pem");
    let pem = std::fs::read_to_string(&key_file).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8 PEM");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(printed.name, "mr2026._domainkey.example.com", "the domain defaults to the config's mail domain");
    assert!(printed.value().starts_with("v=DKIM1; k=rsa; p="), "{}", printed.value());
    assert!(printed.strings.len() >= 2 && printed.strings.iter().all(|s| s.len() <= 255), "a 2048-bit key needs two strings");
    assert_eq!(printed.strings[0].len(), 255);
    assert!(printed.config.contains("domain = \"example.com\"") && printed.config.contains("selector = \"mr2026\""));
    let again = server.cli(&["dkim", "generate", "--selector", "mr2026"]);
    assert!(!again.status.success() && again.stderr.contains("refusing to overwrite"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), pem, "the key is untouched");
    // `dkim show` prints the same record from the configured key.
    let shown = server.cli(&["dkim", "show"]);
    assert!(shown.status.success(), "{}", shown.stderr);
    assert_eq!(Printed::parse(&shown.stdout_str()).strings, printed.strings);
    assert!(!shown.stdout_str().contains(pem.lines().nth(1).unwrap()), "the private key is never printed");

    // The acknowledgement of a new case.
    let subject = unique_token("Order ");
    let number = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &simple_message(&subject, "Where is it?"));
    let ack = wait_for(&captured, "the acknowledgement", |m| m.data.contains(&number) && m.data.contains("Auto-Submitted"));
    let signature = header(&ack.data, "DKIM-Signature").expect("the acknowledgement is signed");
    assert!(signature.contains("d=example.com") && signature.contains("s=mr2026"), "{signature}");
    assert!(ack.data.contains("c=relaxed/relaxed") && ack.data.contains("a=rsa-sha256"), "{}", ack.data);
    let results = verify(ack.data.as_bytes(), &printed);
    assert_eq!(results, vec![(DkimResult::Pass, "example.com".into(), "mr2026".into())]);

    // Altered after capture: one body byte, or a signed header.
    assert!(!passes(body_altered(&ack.data).as_bytes(), &printed), "a changed body byte must fail");
    let resubjected = ack.data.replacen("Subject: ", "Subject: X", 1);
    assert!(!passes(resubjected.as_bytes(), &printed), "a changed Subject must fail");
    // A record with another key does not verify it either.
    let other = Printed { name: printed.name.clone(), strings: vec![other_key_record()], config: String::new() };
    assert!(!passes(ack.data.as_bytes(), &other), "a signature verifies only against its own key");

    // A staff reply through the API.
    reply_through_api(&server, &number, "Dear customer,\nit is on its way.\n\nKind regards");
    let reply = wait_for(&captured, "the reply", |m| m.data.contains(&format!("Subject: Re: [{number}]")));
    assert!(header(&reply.data, "DKIM-Signature").is_some(), "the reply is signed: {}", reply.data);
    assert!(passes(reply.data.as_bytes(), &printed), "the reply verifies");
    assert!(!passes(body_altered(&reply.data).as_bytes(), &printed), "an altered reply fails");
    let log = server.log_text();
    assert!(!log.contains(&pem.lines().nth(1).unwrap()[..40]), "the key never reaches the log");
    assert!(log.contains("mr2026._domainkey.example.com"), "the worker names the key it signs with");
}

/// The record of a key generated apart (another selector's), for the wrong-key check.
fn other_key_record() -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["dkim", "generate", "--selector", "other", "--domain", "example.com", "--key-file"])
        .arg(dir.path().join("other.pem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Printed::parse(&String::from_utf8_lossy(&out.stdout)).value()
}

#[test]
fn an_ed25519_key_signs_too() {
    let (mut server, captured) = prepared();
    let printed = generate_and_start(&mut server, &["--selector", "ed", "--algorithm", "ed25519"]);
    assert!(printed.value().starts_with("v=DKIM1; k=ed25519; p="), "{}", printed.value());
    assert_eq!(printed.strings.len(), 1, "an Ed25519 key fits one string");
    let subject = unique_token("Ed ");
    let number = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &simple_message(&subject, "Hello"));
    let ack = wait_for(&captured, "the acknowledgement", |m| m.data.contains(&number));
    assert!(ack.data.contains("a=ed25519-sha256"), "{}", ack.data);
    assert!(passes(ack.data.as_bytes(), &printed));
    assert!(!passes(body_altered(&ack.data).as_bytes(), &printed));
}

/// Signing happens at sending, not when the message is queued: an acknowledgement queued while
/// the smarthost was down, then a crash (kill -9) and a restart with a new key, goes out signed
/// with the new key — a valid signature, never one of a key no longer configured.
#[test]
fn a_message_queued_before_a_crash_is_signed_when_it_is_finally_sent() {
    let (capture_port, captured) = capture_smtp();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let outbox = |port: u16| {
        format!(
            "[outbox]\nsmarthost = \"127.0.0.1:{port}\"\ntls = \"none\"\npoll_interval = \"50ms\"\nretry_initial = \"100ms\"\nretry_max = \"200ms\"\n"
        )
    };
    let mut server = Server::prepare(Opts { extra_toml: format!("{ROLES}\n{}", outbox(dead_port)), ..Default::default() });
    let first = generate_and_start(&mut server, &["--selector", "old"]);
    let subject = unique_token("Queued ");
    let number = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &simple_message(&subject, "Hello"));
    assert!(wait_until(Duration::from_secs(20), || server.log_text().contains("delivery deferred")), "the smarthost is down: retried");
    server.kill9();

    // A new key and a smarthost that answers; the old [dkim] lines are replaced.
    let out = server.cli(&["dkim", "generate", "--selector", "new"]);
    assert!(out.status.success(), "{}", out.stderr);
    let second = Printed::parse(&out.stdout_str());
    let config = std::fs::read_to_string(&server.config).unwrap();
    let config = config[..config.find("\n[dkim]").unwrap()].replace(&outbox(dead_port), &outbox(capture_port));
    std::fs::write(&server.config, format!("{config}\n{}\n", second.config)).unwrap();
    server.restart();

    let ack = wait_for(&captured, "the queued acknowledgement", |m| m.data.contains(&number));
    assert_eq!(verify(ack.data.as_bytes(), &second), vec![(DkimResult::Pass, "example.com".into(), "new".into())]);
    assert!(!passes(ack.data.as_bytes(), &first), "not signed with the key configured when it was queued");
    assert_eq!(ack.data.matches("DKIM-Signature:").count(), 1, "one signature: the failed attempts added none");
}

/// DKIM key rotation without a restart: a new selector and key written to the config, SIGHUP,
/// and the next message is signed with the new key (the old record may then be removed from DNS
/// once mail signed with it has been delivered).
#[test]
fn a_new_key_takes_over_on_sighup() {
    let (mut server, captured) = prepared();
    let old = generate_and_start(&mut server, &["--selector", "old"]);
    let first = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], &simple_message(&unique_token("A "), "Hello"));
    let ack = wait_for(&captured, "the first acknowledgement", |m| m.data.contains(&first));
    assert!(passes(ack.data.as_bytes(), &old));

    let out = server.cli(&["dkim", "generate", "--selector", "new"]);
    assert!(out.status.success(), "{}", out.stderr);
    let new = Printed::parse(&out.stdout_str());
    let config = std::fs::read_to_string(&server.config).unwrap();
    let config = &config[..config.find("\n[dkim]").unwrap()];
    std::fs::write(&server.config, format!("{config}\n{}\n", new.config)).unwrap();
    let pid = server.pid();
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0, "kill -HUP");
    assert!(wait_until(Duration::from_secs(10), || server.log_text().contains("configuration reloaded")), "{}", server.log_text());
    assert!(
        !server.log_text().contains("keep their running values"),
        "[dkim] is taken over, not left for a restart: {}",
        server.log_text()
    );

    // Another sender: one acknowledgement per sender within the window.
    let second = server.smtp_session().send_message(
        "other@client.example.org",
        &["support@example.com"],
        &simple_message(&unique_token("B "), "Hello"),
    );
    let ack = wait_for(&captured, "the second acknowledgement", |m| m.data.contains(&second));
    assert_eq!(verify(ack.data.as_bytes(), &new), vec![(DkimResult::Pass, "example.com".into(), "new".into())]);
    assert!(!passes(ack.data.as_bytes(), &old), "no longer the old key");
    assert_eq!(server.pid(), pid, "the same process: no restart");
}

/// `mailroom config check --config FILE` on the demo config plus `section`: (success, stderr,
/// the config file's name).
fn config_check(dir: &std::path::Path, section: &str) -> (bool, String, String) {
    let (ok, _, stderr, config) = config_check_output(dir, section);
    (ok, stderr, config)
}

/// As [`config_check`], with the standard output second.
fn config_check_output(dir: &std::path::Path, section: &str) -> (bool, String, String, String) {
    let config = dir.join("mailroom.toml");
    let demo = include_str!("../deploy/mailroom.toml");
    std::fs::write(&config, format!("{demo}\n{section}")).unwrap();
    let out = Command::new(BIN).args(["config", "check", "--config"]).arg(&config).current_dir(dir).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr), config.display().to_string())
}

#[test]
fn bad_keys_are_refused_naming_file_line_and_key_and_a_foreign_domain_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let lines = include_str!("../deploy/mailroom.toml").lines().count();
    let section = |key_file: &str, domain: &str| format!("[dkim]\ndomain = \"{domain}\"\nselector = \"s1\"\nkey_file = \"{key_file}\"\n");
    // The key_file line of the appended section.
    let key_line = lines + 5;

    let (ok, stderr, config) = config_check(dir.path(), &section("missing.pem", "example.com"));
    assert!(!ok, "a missing key is refused");
    assert!(stderr.contains(&format!("{config}:{key_line}: dkim.key_file: cannot read")), "{stderr}");

    std::fs::write(dir.path().join("garbled.pem"), "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    std::fs::set_permissions(dir.path().join("garbled.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, stderr, _) = config_check(dir.path(), &section("garbled.pem", "example.com"));
    assert!(!ok && stderr.contains(&format!(":{key_line}: dkim.key_file: ")) && stderr.contains("not supported"), "{stderr}");

    std::fs::write(dir.path().join("text.pem"), "not a key at all\n").unwrap();
    std::fs::set_permissions(dir.path().join("text.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, stderr, _) = config_check(dir.path(), &section("text.pem", "example.com"));
    assert!(!ok && stderr.contains("dkim.key_file") && stderr.contains("no PEM private key"), "{stderr}");

    // A real key, but readable by everyone: refused until it is private.
    let key = dir.path().join("good.pem");
    let out = Command::new(BIN)
        .args(["dkim", "generate", "--selector", "s1", "--domain", "example.com", "--key-file"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, stderr, _) = config_check(dir.path(), &section("good.pem", "example.com"));
    assert!(!ok && stderr.contains(&format!(":{key_line}: dkim.key_file: ")) && stderr.contains("every user"), "{stderr}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, stdout, stderr, _) = config_check_output(dir.path(), &section("good.pem", "example.com"));
    assert!(ok, "group-readable is accepted: {stderr}");
    assert!(stdout.contains("DKIM signing with s1._domainkey.example.com"), "{stdout}");
    assert!(!stderr.contains("warning"), "example.com covers the demo's queues: {stderr}");

    // Signing as another domain than the one our mail comes from: allowed, with a warning.
    let (ok, stderr, config) = config_check(dir.path(), &section("good.pem", "example.org"));
    assert!(ok, "{stderr}");
    assert!(stderr.contains(&format!("warning: {config}:{}: dkim.domain: mail from example.com", lines + 3)), "{stderr}");

    // serve refuses the same way (and never starts listening).
    let (_, _, config) = config_check(dir.path(), &section("missing.pem", "example.com"));
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = Command::new(BIN).arg("serve").arg("--data-dir").arg(&data).arg("--config").arg(&config).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{config}:{key_line}: dkim.key_file: cannot read")), "{stderr}");
}
