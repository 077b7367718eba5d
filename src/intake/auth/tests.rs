use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::recorded::*;
use super::verify::*;
use super::*;
use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use std::time::Instant;

const HOST: &str = "mx.mailroom.test";
const SELECTOR: &str = "mr2026";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn message(from: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: support@example.com\r\nSubject: Order 42\r\n\
         Date: Mon, 6 Apr 2026 10:00:00 +0000\r\nMessage-ID: <42@customer.org>\r\n\r\n{body}"
    )
    .into_bytes()
}

/// A message for customer.org signed with a fresh Ed25519 key, and the records that publish
/// that key, SPF (192.0.2.0/24) and DMARC p=reject.
fn signed_customer() -> (Vec<u8>, StaticRecords) {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = b64(&key.public_key());
    let msg = message("alice@customer.org", "Hello, where is my order?\r\n");
    let signature = DkimSigner::from_key(key)
        .domain("customer.org")
        .selector(SELECTOR)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(&msg)
        .unwrap();
    let mut signed = signature.to_header().into_bytes();
    signed.extend_from_slice(&msg);
    let records = StaticRecords::new()
        .with_txt("customer.org", "v=spf1 ip4:192.0.2.0/24 -all")
        .with_txt(format!("{SELECTOR}._domainkey.customer.org"), format!("v=DKIM1; k=ed25519; p={public}"))
        .with_txt("_dmarc.customer.org", "v=DMARC1; p=reject");
    (signed, records)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn signed_message_from_authorised_ip_passes_everything() {
    let (msg, records) = signed_customer();
    let auth = Authenticator::with_records(HOST, records);
    let start = Instant::now();
    let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &msg).await;
    assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::Pass, Verdict::Pass, Verdict::Pass), "{}", r.header);
    assert!(r.dkim_aligned);
    assert!(r.sender_authenticated());
    assert_eq!(r.from_domain.as_deref(), Some("customer.org"));
    assert_eq!(r.summary(), "spf=pass dkim=pass dmarc=pass");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn altered_body_fails_dkim_and_dmarc() {
    let (msg, records) = signed_customer();
    let auth = Authenticator::with_records(HOST, records);
    let text = String::from_utf8(msg).unwrap().replace("where is my order?", "please wire 10,000 EUR to IBAN XX00");
    let r = auth.verify(ip("198.51.100.7"), "mail.evil.test", "alice@customer.org", text.as_bytes()).await;
    assert_eq!(r.spf, Verdict::Fail, "{}", r.header);
    assert_eq!(r.dkim, Verdict::Fail, "{}", r.header);
    assert_eq!(r.dmarc, Verdict::Fail, "{}", r.header);
    assert!(!r.dkim_aligned);
    assert!(!r.sender_authenticated());
    assert!(r.header.contains("dkim=fail reason=\"body hash did not verify\""), "{}", r.header);
}

#[tokio::test]
async fn altered_signed_header_fails_dkim() {
    let (msg, records) = signed_customer();
    let auth = Authenticator::with_records(HOST, records);
    let text = String::from_utf8(msg).unwrap().replace("Subject: Order 42", "Subject: Order 43");
    let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", text.as_bytes()).await;
    assert_eq!(r.dkim, Verdict::Fail, "{}", r.header);
    // SPF still passes and aligns, so DMARC passes (as RFC 7489 says).
    assert_eq!((r.spf, r.dmarc), (Verdict::Pass, Verdict::Pass));
    assert!(r.sender_authenticated());
}

#[tokio::test]
async fn spoofed_from_without_signature_fails_dmarc() {
    let (_, records) = signed_customer();
    let auth = Authenticator::with_records(HOST, records);
    let msg = message("ceo@customer.org", "Urgent: pay this invoice today.\r\n");
    // Envelope from the attacker's own (unpublished) domain: SPF none, unaligned.
    let r = auth.verify(ip("203.0.113.9"), "mx.attacker.test", "bounce@attacker.test", &msg).await;
    assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::None, Verdict::None, Verdict::Fail), "{}", r.header);
    assert!(!r.sender_authenticated());
    // Envelope claiming customer.org: SPF fails.
    let r = auth.verify(ip("203.0.113.9"), "mx.attacker.test", "ceo@customer.org", &msg).await;
    assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::Fail, Verdict::None, Verdict::Fail), "{}", r.header);
    assert!(!r.sender_authenticated());
    assert!(r.header.contains("policy.dmarc=reject"), "{}", r.header);
}

#[tokio::test]
async fn domain_without_records_is_none_and_fast() {
    // No name servers and nothing recorded: if anything tried the network it would fail
    // (temperror), not give none.
    let auth = Authenticator::with_records(HOST, StaticRecords::new());
    let msg = message("someone@unknown-domain.test", "Hi\r\n");
    let start = Instant::now();
    let r = auth.verify(ip("192.0.2.99"), "mail.unknown-domain.test", "someone@unknown-domain.test", &msg).await;
    assert!(start.elapsed() < Duration::from_millis(200), "took {:?}", start.elapsed());
    assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::None, Verdict::None, Verdict::None), "{}", r.header);
    assert!(!r.dkim_aligned);
    assert!(!r.sender_authenticated());

    // A signature whose key is not published: permerror, not a hang.
    let (signed, _) = signed_customer();
    let start = Instant::now();
    let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &signed).await;
    assert!(start.elapsed() < Duration::from_millis(200));
    assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::None, Verdict::PermError, Verdict::None), "{}", r.header);
    assert!(!r.sender_authenticated());
}

#[tokio::test]
async fn header_names_hostname_and_results() {
    let (msg, records) = signed_customer();
    let auth = Authenticator::with_records(HOST, records);
    let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &msg).await;
    let h = &r.header;
    assert!(h.starts_with(&format!("Authentication-Results: {HOST};\r\n\t")), "{h}");
    assert!(h.ends_with("\r\n") && !h.ends_with("\r\n\r\n"), "{h:?}");
    assert!(h.contains("spf=pass smtp.mailfrom=customer.org"), "{h}");
    assert!(h.contains(&format!("dkim=pass header.d=customer.org header.s={SELECTOR} header.b=")), "{h}");
    assert!(h.contains("dmarc=pass header.from=customer.org policy.dmarc=reject"), "{h}");
    // Every line break is CRLF followed by a tab (a folded header), and no address leaks.
    assert_eq!(h.matches('\n').count(), h.matches("\r\n").count());
    assert_eq!(h.matches("\r\n").count(), 4);
    assert_eq!(h.matches("\r\n\t").count(), 3);
    assert!(!h.contains("alice"));
    // Prepended, it parses as a header of the message.
    let mut full = h.clone().into_bytes();
    full.extend_from_slice(&msg);
    let parsed = mail_parser::MessageParser::default().parse(&full).unwrap();
    let value = parsed.header_raw("Authentication-Results").unwrap();
    assert!(value.contains("dmarc=pass"));
    assert_eq!(parsed.subject(), Some("Order 42"));
}

#[tokio::test]
async fn hostile_values_cannot_inject_header_lines() {
    let auth = Authenticator::with_records("mx.test\r\nX-Evil: 1", StaticRecords::new());
    let msg = b"From: a@b.test\r\nDKIM-Signature: v=1; a=rsa-sha256; d=x.test\r\n evil; s=\"sel\r\n\r\nbody";
    let r = auth.verify(ip("::1"), "helo;\r\n\tdmarc=pass", "", msg).await;
    assert!(r.header.starts_with("Authentication-Results: mx.testX-Evil1;\r\n\t"), "{}", r.header);
    assert_eq!(r.header.matches("dmarc=").count(), 1, "{}", r.header);
    assert_eq!(r.header.matches("\r\n").count(), r.header.matches("\r\n\t").count() + 1, "{}", r.header);
}

#[tokio::test]
async fn static_records_toml_round_trip() {
    let (_, records) = signed_customer();
    let records = records
        .with_a("mail.customer.org", Ipv4Addr::new(192, 0, 2, 25))
        .with_aaaa("mail.customer.org", "2001:db8::25".parse().unwrap())
        .with_mx("customer.org", 10, "mail.customer.org")
        .with_ptr(ip("192.0.2.25"), "mail.customer.org");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.toml");
    std::fs::write(&path, records.to_toml_string()).unwrap();
    let loaded = StaticRecords::from_toml_file(&path).unwrap();
    assert_eq!(loaded, records);

    // Errors name the file and the place.
    std::fs::write(&path, "[[txt]]\nname = \"a.test\"\nvalu = \"x\"\n").unwrap();
    let e = StaticRecords::from_toml_file(&path).unwrap_err().to_string();
    assert!(e.contains("records.toml") && e.contains("line 3") && e.contains("valu"), "{e}");
    std::fs::write(&path, "[[a]]\nname = \"a.test\"\nip = \"2001:db8::1\"\n").unwrap();
    assert!(StaticRecords::from_toml_file(&path).is_err());
    std::fs::write(&path, "[[mx]]\nname = \"a.test\"\nexchange = \"\"\n").unwrap();
    let e = StaticRecords::from_toml_file(&path).unwrap_err().to_string();
    assert!(e.contains("mx entry 1: exchange"), "{e}");
    let e = StaticRecords::from_toml_file(dir.path().join("missing.toml")).unwrap_err().to_string();
    assert!(e.contains("missing.toml"), "{e}");
}

#[tokio::test]
async fn fixture_file_drives_a_mx_and_include() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/records.toml");
    let auth = Authenticator::with_records(HOST, StaticRecords::from_toml_file(&path).unwrap());
    let msg = message("info@example.org", "Hi\r\n");
    let spf = |ip_s: &'static str, from: &'static str| {
        let (auth, msg) = (auth.clone(), msg.clone());
        async move { auth.verify(ip(ip_s), "mail.example.org", from, &msg).await.spf }
    };
    assert_eq!(spf("192.0.2.25", "info@example.org").await, Verdict::Pass); // a
    assert_eq!(spf("2001:db8::25", "info@example.org").await, Verdict::Pass); // a (AAAA)
    assert_eq!(spf("192.0.2.26", "info@example.org").await, Verdict::Pass); // mx
    assert_eq!(spf("198.51.100.1", "info@example.org").await, Verdict::Pass); // include
    assert_eq!(spf("203.0.113.1", "info@example.org").await, Verdict::SoftFail);
    assert_eq!(spf("203.0.113.1", "x@exists.example.org").await, Verdict::Fail);
    assert_eq!(spf("192.0.2.77", "x@exists.example.org").await, Verdict::Pass); // exists
    assert_eq!(spf("203.0.113.1", "x@broken.example.org").await, Verdict::PermError);
    assert_eq!(spf("203.0.113.1", "x@dangling.example.org").await, Verdict::PermError); // include: NXDOMAIN
    assert_eq!(spf("203.0.113.1", "x@neutral.example.org").await, Verdict::Neutral);
    // Null sender: the HELO identity is checked.
    assert_eq!(spf("192.0.2.25", "").await, Verdict::Pass);
}

#[tokio::test]
async fn dkim_alignment_without_dmarc_record() {
    let (msg, records) = signed_customer();
    // No DMARC record: DKIM alone decides, if aligned.
    let records = StaticRecords { txt: records.txt.into_iter().filter(|r| !r.name.starts_with("_dmarc")).collect(), ..records };
    let auth = Authenticator::with_records(HOST, records.clone());
    let r = auth.verify(ip("203.0.113.9"), "mail.customer.org", "alice@customer.org", &msg).await;
    assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::Fail, Verdict::Pass, Verdict::None), "{}", r.header);
    assert!(r.dkim_aligned && r.sender_authenticated());

    // Signed by customer.org but From: another domain: valid signature, not aligned.
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = b64(&key.public_key());
    let body = message("news@other.test", "Newsletter\r\n");
    let sig = DkimSigner::from_key(key).domain("mailer.test").selector("s1").headers(["From", "Subject"]).sign(&body).unwrap();
    let mut signed = sig.to_header().into_bytes();
    signed.extend_from_slice(&body);
    let auth = Authenticator::with_records(HOST, records.with_txt("s1._domainkey.mailer.test", format!("v=DKIM1; k=ed25519; p={public}")));
    let r = auth.verify(ip("203.0.113.9"), "mail.mailer.test", "bounce@mailer.test", &signed).await;
    assert_eq!(r.dkim, Verdict::Pass);
    assert!(!r.dkim_aligned && !r.sender_authenticated());
}

#[tokio::test]
async fn rsa_signature_verifies() {
    use aws_lc_rs::encoding::AsDer;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = pair.as_der().unwrap().as_ref().to_vec();
    let key = RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs8(der.into())).unwrap();
    let public = b64(&key.public_key());
    let msg = message("bob@customer.org", "RSA-signed\r\n");
    let sig = DkimSigner::from_key(key).domain("customer.org").selector("rsa").headers(["From", "To", "Subject"]).sign(&msg).unwrap();
    let mut signed = sig.to_header().into_bytes();
    signed.extend_from_slice(&msg);
    let records = StaticRecords::new()
        .with_txt("rsa._domainkey.customer.org", format!("v=DKIM1; k=rsa; p={public}"))
        .with_txt("_dmarc.customer.org", "v=DMARC1; p=quarantine");
    let auth = Authenticator::with_records(HOST, records);
    let r = auth.verify(ip("203.0.113.9"), "x.test", "bounce@elsewhere.test", &signed).await;
    assert_eq!((r.dkim, r.dmarc), (Verdict::Pass, Verdict::Pass), "{}", r.header);
    assert!(r.sender_authenticated());
}

#[tokio::test]
async fn garbage_never_panics() {
    let (signed, records) = signed_customer();
    let auth = Authenticator::with_records(HOST, records);
    let long = format!("x@{}.test", "a".repeat(300));
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80, b'\n'],
        b"From:\r\n\r\n".to_vec(),
        b"From: <@>\r\nFrom: a@b.test, c@d.test\r\n\r\nx".to_vec(),
        b"DKIM-Signature: v=1; a=ed25519-sha256; d=customer.org; s=mr2026; b=!!!; bh=???\r\nFrom: a@customer.org\r\n\r\n".to_vec(),
        b"DKIM-Signature: v=1; a=rsa-sha256; l=99999999999999999999; d=; s=; h=; bh=; b=\r\nFrom: a@customer.org\r\n\r\n".to_vec(),
        signed[..signed.len() / 2].to_vec(),
        [b"DKIM-Signature: x\r\n".repeat(500), b"From: a@customer.org\r\n\r\n".to_vec()].concat(),
    ];
    for input in &inputs {
        for (client, helo, from) in [
            ("192.0.2.1", "", ""),
            ("::1", "[192.0.2.1]", "<>"),
            ("2001:db8::1", "a..b", "@@@"),
            ("192.0.2.1", "mail.customer.org", "x@"),
            ("192.0.2.1", long.as_str(), long.as_str()),
            ("192.0.2.1", "ünïcode.test", "ü@ünïcode.test"),
        ] {
            let r = auth.verify(ip(client), helo, from, input).await;
            assert!(!r.sender_authenticated(), "{input:?} {helo} {from}: {}", r.header);
            assert!(r.header.starts_with("Authentication-Results: ") && r.header.ends_with("\r\n"));
        }
    }
    let r = auth.verify(ip("192.0.2.1"), "h", "a@b.test", &inputs[4]).await;
    assert_eq!(r.from_domain, None); // two From domains: none trusted
}

#[tokio::test]
async fn unanswered_dns_is_temperror_not_a_hang() {
    // A "name server" that never answers (loopback only; nothing leaves the machine).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let auth = Authenticator::with_resolvers(HOST, &[silent.local_addr().unwrap()]).unwrap().with_timeout(Duration::from_millis(300));
    let (msg, _) = signed_customer();
    let start = Instant::now();
    let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &msg).await;
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::TempError, Verdict::TempError, Verdict::TempError), "{}", r.header);
    assert!(!r.sender_authenticated());
}

#[test]
fn system_resolver_builds_without_lookups() {
    // Reads /etc/resolv.conf only; no query is sent.
    if Path::new("/etc/resolv.conf").exists() {
        let auth = Authenticator::system(HOST).unwrap().with_timeout(Duration::MAX);
        assert_eq!(auth.hostname(), HOST);
        assert_eq!(auth.timeout, MAX_TIMEOUT);
    }
    assert!(Authenticator::with_resolvers(HOST, &[]).is_err());
}

#[test]
fn verdict_names_round_trip() {
    for v in Verdict::ALL {
        assert_eq!(v.as_str().parse::<Verdict>().unwrap(), v);
        assert_eq!(v.as_str().to_uppercase().parse::<Verdict>().unwrap(), v);
        assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{}\"", v.as_str()));
    }
    assert!("passed".parse::<Verdict>().is_err());
}

#[test]
fn alignment_rules() {
    assert!(relaxed_aligned("customer.org", "customer.org"));
    assert!(relaxed_aligned("Customer.ORG.", "customer.org"));
    assert!(relaxed_aligned("mail.customer.org", "customer.org"));
    assert!(relaxed_aligned("customer.org", "news.customer.org"));
    assert!(!relaxed_aligned("customer.org.evil.test", "customer.org"));
    assert!(!relaxed_aligned("evilcustomer.org", "customer.org"));
    assert!(!relaxed_aligned("org", "customer.org"));
    assert!(!relaxed_aligned("", "customer.org"));
    assert_eq!(clean_reverse_path(" <a@b.test> "), "a@b.test");
    assert_eq!(clean_reverse_path("<>"), "");
}
