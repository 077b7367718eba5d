//! Real clients not written here: Python's smtplib (tests/py/*.py) and, when installed, swaks.
//! Each Python script asserts on its own and exits non-zero with a `FAIL:` line; this driver
//! then checks, through the CLI, that every message the script reports is stored exactly.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

struct PyOutcome {
    registered: Vec<(String, String, bool)>,
    unnumbered: Vec<String>,
    expect_total: Option<usize>,
}

fn run_py(script: &str) {
    let s = Server::start(Opts { max_errors: 100, ..Opts::default() });
    let out_dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let path = Path::new(root).join("tests/py").join(script);
    let out = Command::new("python3")
        .arg(&path)
        .current_dir(root)
        .env("MAILROOM_HOST", "127.0.0.1")
        .env("MAILROOM_SMTP_PORT", s.smtp_addr().port().to_string())
        .env("MAILROOM_LMTP_PORT", s.lmtp_addr().port().to_string())
        .env("MAILROOM_TEST_OUT", out_dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("run python3 (is it installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "python3 tests/py/{script} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}", out.status);
    let mut o = PyOutcome { registered: vec![], unnumbered: vec![], expect_total: None };
    for line in stdout.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["REGISTERED", n, t] => o.registered.push((n.to_string(), t.to_string(), false)),
            ["REGISTERED", n, t, "tls"] => o.registered.push((n.to_string(), t.to_string(), true)),
            ["UNNUMBERED", t] => o.unnumbered.push(t.to_string()),
            ["EXPECT_TOTAL", n] => o.expect_total = Some(n.parse().unwrap()),
            _ => {}
        }
    }
    assert!(!o.registered.is_empty(), "{script} reported no registration:\n{stdout}");
    verify(&s, &o, out_dir.path(), script);
}

fn verify(s: &Server, o: &PyOutcome, out_dir: &Path, script: &str) {
    let list = s.list_messages();
    for (n, token, tls) in &o.registered {
        let l = list.iter().find(|l| &l.number == n).unwrap_or_else(|| panic!("{script}: {n} acknowledged but not listed: {list:?}"));
        assert_eq!(l.tls, *tls, "{script}: tls flag of {n}");
        let stored = s.stored_content(n);
        assert!(find(&stored, token.as_bytes()).is_some(), "{script}: {n} does not contain {token}");
        let expected_file = out_dir.join(format!("{n}.bin"));
        if let Ok(expected) = std::fs::read(&expected_file) {
            assert_eq!(show_bytes(&stored), show_bytes(&expected), "{script}: {n} stored content differs from what the client sent");
        }
    }
    // Messages sent without seeing the number: find them by token.
    let numbered: std::collections::HashSet<&str> = o.registered.iter().map(|r| r.0.as_str()).collect();
    let others: Vec<(String, Vec<u8>)> =
        list.iter().filter(|l| !numbered.contains(l.number.as_str())).map(|l| (l.number.clone(), s.stored_content(&l.number))).collect();
    for t in &o.unnumbered {
        assert!(
            others.iter().any(|(_, c)| find(c, t.as_bytes()).is_some()) || o.registered.iter().any(|r| &r.1 == t),
            "{script}: message {t} (sent with sendmail) not stored"
        );
    }
    if let Some(total) = o.expect_total {
        assert_eq!(list.len(), total, "{script}: stored messages {list:?}");
    }
}

#[test]
fn py_plain_smtplib() {
    run_py("plain.py");
}

#[test]
fn py_starttls_smtplib() {
    run_py("starttls.py");
}

#[test]
fn py_pipelining() {
    run_py("pipelining.py");
}

#[test]
fn py_bdat() {
    run_py("bdat.py");
}

#[test]
fn py_lmtp_multi_recipient() {
    run_py("lmtp.py");
}

#[test]
fn py_8bitmime_smtputf8() {
    run_py("utf8.py");
}

// --- swaks --------------------------------------------------------------------------------------

fn swaks() -> Option<&'static str> {
    ["/usr/bin/swaks", "/usr/local/bin/swaks"].into_iter().find(|p| Path::new(p).exists())
}

fn run_swaks(bin: &str, args: &[String]) -> String {
    let out = Command::new(bin).args(args).output().expect("run swaks");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "swaks {args:?} failed ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Registration numbers in swaks' transcript (`<~  250 2.0.0 Registered MR-...`).
fn numbers_in(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter_map(|l| {
            let i = l.find("Registered ")?;
            let rest = &l[i + "Registered ".len()..];
            let n = rest.split_whitespace().next()?;
            parse_number(n);
            Some(n.to_string())
        })
        .collect()
}

#[test]
fn swaks_starttls() {
    let Some(bin) = swaks() else {
        eprintln!("NOTICE: swaks not installed; skipping swaks_starttls");
        return;
    };
    let s = Server::start(Opts::default());
    let token = unique_token("swaks-tls-");
    let args: Vec<String> = [
        "--server",
        "127.0.0.1",
        "--port",
        &s.smtp_addr().port().to_string(),
        "--ehlo",
        "client.example.org",
        "--from",
        "swaks@client.example.org",
        "--to",
        "support@example.com",
        "--tls",
        "--header",
        &format!("Subject: {token}"),
        "--body",
        "sent by swaks over STARTTLS",
        "--timeout",
        "15",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let transcript = run_swaks(bin, &args);
    assert!(transcript.contains("220 2.0.0 Ready to start TLS"), "{transcript}");
    let numbers = numbers_in(&transcript);
    assert_eq!(numbers.len(), 1, "{transcript}");
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    assert!(list[0].tls, "{list:?}");
    let stored = s.stored_content(&numbers[0]);
    assert!(find(&stored, token.as_bytes()).is_some());
}

#[test]
fn swaks_pipelining_and_lmtp() {
    let Some(bin) = swaks() else {
        eprintln!("NOTICE: swaks not installed; skipping swaks_pipelining_and_lmtp");
        return;
    };
    let s = Server::start(Opts::default());
    // ESMTP with PIPELINING.
    let token = unique_token("swaks-pipe-");
    let args: Vec<String> = [
        "--server",
        "127.0.0.1",
        "--port",
        &s.smtp_addr().port().to_string(),
        "--from",
        "swaks@client.example.org",
        "--to",
        "support@example.com,sales@example.com",
        "--pipeline",
        "--header",
        &format!("Subject: {token}"),
        "--timeout",
        "15",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let transcript = run_swaks(bin, &args);
    let numbers = numbers_in(&transcript);
    assert_eq!(numbers.len(), 1, "{transcript}");
    assert!(find(&s.stored_content(&numbers[0]), token.as_bytes()).is_some());

    // LMTP with two recipients: two replies after the data.
    let token = unique_token("swaks-lmtp-");
    let args: Vec<String> = [
        "--server",
        "127.0.0.1",
        "--port",
        &s.lmtp_addr().port().to_string(),
        "--protocol",
        "LMTP",
        "--from",
        "swaks@client.example.org",
        "--to",
        "support@example.com,complaints@example.com",
        "--header",
        &format!("Subject: {token}"),
        "--timeout",
        "15",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let transcript = run_swaks(bin, &args);
    assert!(transcript.contains("<support@example.com> Registered"), "{transcript}");
    assert!(transcript.contains("<complaints@example.com> Registered"), "{transcript}");
    for n in numbers_in(&transcript) {
        assert!(find(&s.stored_content(&n), token.as_bytes()).is_some());
    }
}
