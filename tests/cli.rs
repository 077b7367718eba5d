//! CLI contract: `message show` errors, `config check`, bad config at `serve`, --help.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn message_show_errors() {
    let s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    let content = simple_message("cli", "x");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &content);
    assert_eq!(s.stored_content(&n), content);

    let r = parse_number(&n);
    let unknown = format!("MR-{:04}-{:06}-{}", r.year, 999_999, damm(&format!("{:04}{:06}", r.year, 999_999)));
    let cases =
        [(with_wrong_check(&n), "bad check digit"), (unknown.clone(), "unknown number"), ("not-a-number".to_string(), "malformed number")];
    for (arg, what) in &cases {
        let out = s.cli(&["message", "show", arg]);
        assert_eq!(out.status.code(), Some(1), "{what} ({arg}): exit status {}", out.status);
        assert!(out.stdout.is_empty(), "{what}: nothing on stdout");
        assert!(!out.stderr.trim().is_empty(), "{what}: a clear error on stderr");
    }
    let out = s.cli(&["message", "show", &with_wrong_check(&n)]);
    assert!(out.stderr.to_ascii_lowercase().contains("check"), "a wrong check digit must be reported as such: {:?}", out.stderr);
}

#[test]
fn check_digit_is_damm_over_year_and_sequence() {
    // MR-{year}-{seq:06}-{check}: the check digit detects every single-digit error.
    let s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    for i in 0..3 {
        let n = c.send_message("a@client.example.org", &["support@example.com"], &simple_message(&format!("d{i}"), "x"));
        let r = parse_number(&n);
        let digits = format!("{:04}{:06}", r.year, r.seq);
        assert_eq!(r.check, damm(&digits), "{n}: check digit is not the Damm digit of {digits}");
    }
}

#[test]
fn message_list_json_fields() {
    let s = Server::start(Opts::default());
    assert!(s.list_messages().is_empty(), "fresh store must list nothing");
    let mut c = s.smtp_session();
    let content = simple_message("json", "fields");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &content);
    let list = s.list_messages();
    assert_eq!(list.len(), 1);
    let l = &list[0];
    assert_eq!(l.number, n);
    for key in ["number", "received_at", "size", "protocol", "tls", "parsed", "duplicate_count"] {
        assert!(l.raw.get(key).is_some(), "missing {key}: {}", l.raw);
    }
    assert!(l.size as usize >= content.len(), "size {} < {} bytes received", l.size, content.len());
    // Plain (non-JSON) listing names the number too.
    let out = s.cli(&["message", "list"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout_str().contains(&n), "{}", out.stdout_str());
}

#[test]
fn config_check_accepts_good_configs() {
    let s_opts = Opts::default();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ok.toml");
    std::fs::write(&cfg, s_opts.config_toml()).unwrap();
    let out = run_bin(&["config".as_ref(), "check".as_ref(), "--config".as_ref(), cfg.as_os_str()], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "config check of the test config: {}", out.stderr);

    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mailroom.toml");
    let out = run_bin(&["config", "check", "--config", deploy], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "config check of deploy/mailroom.toml: {}", out.stderr);

    // The Debian package's /etc/mailroom/mailroom.toml (scripts/deb-test.sh checks it installed).
    let packaged = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/debian/mailroom.toml");
    let out = run_bin(&["config", "check", "--config", packaged], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "config check of deploy/debian/mailroom.toml: {}", out.stderr);
    assert!(out.stdout_str().contains(": OK ("), "{}", out.stdout_str());
}

/// Write a config whose line `bad_line` (1-based) is replaced; return (path, output text).
fn check_bad(replace: &str, with: &str) -> (String, usize, String) {
    let good = Opts::default().config_toml();
    let line =
        good.lines().position(|l| l.starts_with(replace)).unwrap_or_else(|| panic!("no line starting with {replace:?} in the test config"))
            + 1;
    let bad: String =
        good.lines().enumerate().map(|(i, l)| if i + 1 == line { with.to_string() } else { l.to_string() }).collect::<Vec<_>>().join("\n");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, bad).unwrap();
    let out = run_bin(&["config".as_ref(), "check".as_ref(), "--config".as_ref(), cfg.as_os_str()], Duration::from_secs(30));
    assert!(!out.status.success(), "config check must fail for {with:?}");
    let text = format!("{}{}", out.stdout_str(), out.stderr);
    (cfg.display().to_string(), line, text)
}

#[test]
fn config_check_names_file_line_and_key() {
    let (path, line, text) = check_bad("max_recipients", "max_recipients = \"lots\"");
    assert!(text.contains(&format!("{path}:{line}:")), "error must start with FILE:LINE ({path}:{line}): {text:?}");
    assert!(text.contains("max_recipients"), "error must name the key: {text:?}");

    let (path, line, text) = check_bad("command_timeout", "command_timeout = \"soon\"");
    assert!(text.contains(&format!("{path}:{line}:")), "{text:?}");
    assert!(text.contains("command_timeout"), "{text:?}");
}

#[test]
fn config_check_rejects_unknown_key() {
    // A typo must not be silently ignored.
    let (path, line, text) = check_bad("max_recipients", "max_recipient = 5");
    assert!(text.contains(&format!("{path}:{line}:")), "{text:?}");
    assert!(text.contains("max_recipient"), "{text:?}");
}

#[test]
fn serve_with_bad_config_exits_nonzero_naming_file_line_key() {
    let good = Opts::default().config_toml();
    let bad = good.replace("max_errors = 10", "max_errors = -3");
    let line = bad.lines().position(|l| l.starts_with("max_errors")).unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, bad).unwrap();
    let data = dir.path().join("data");
    let out = run_bin(
        &["serve".as_ref(), "--data-dir".as_ref(), data.as_os_str(), "--config".as_ref(), cfg.as_os_str()],
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "serve with a bad config must exit non-zero");
    let text = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(text.contains(&format!("{}:{line}:", cfg.display())), "{text:?}");
    assert!(text.contains("max_errors"), "{text:?}");
}

#[test]
fn help_describes_commands() {
    let out = run_bin(&["--help"], Duration::from_secs(30));
    assert!(out.status.success());
    let text = out.stdout_str();
    for cmd in ["serve", "message", "config"] {
        assert!(text.contains(cmd), "`mailroom --help` must describe {cmd}: {text}");
    }
    for sub in [&["serve", "--help"][..], &["message", "--help"], &["message", "show", "--help"], &["config", "check", "--help"]] {
        let out = run_bin(sub, Duration::from_secs(30));
        assert!(out.status.success(), "{sub:?}: {}", out.stderr);
        assert!(!out.stdout.is_empty(), "{sub:?} printed nothing");
    }
    let out = run_bin(&["serve", "--help"], Duration::from_secs(30));
    assert!(out.stdout_str().contains("--data-dir"));
}
