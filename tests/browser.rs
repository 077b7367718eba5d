//! The staff web page in a real browser: each test starts the real `mailroom serve` (users from
//! the admin CLI, mail sent over SMTP first), then runs one scenario, `node
//! tests/browser/<scenario>.mjs`, which drives Debian's chromium through playwright-core
//! (tests/browser/lib.mjs: axe WCAG 2.1 A/AA, zero CSP violations and console errors,
//! screenshots). The scenario's output is streamed (`--nocapture` shows it live) and it must
//! exit 0. Screenshots land in `target/browser-screenshots/<scenario>/`, emptied at each run.
//!
//! Prerequisites (scripts/test.sh installs both): `apt-get install chromium` and
//! `PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci` at the repository root. Without them these tests
//! fail and say so; they never skip.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

const PW: &str = "correct-horse-battery-staple";
const AGENT: &str = "anna";
const OFFICER: &str = "olga";
/// Supervises support (the dashboard).
const SUPERVISOR: &str = "sam";
const CHROMIUM: &str = "/usr/bin/chromium";
const CUSTOMER: &str = "customer@client.example.org";
/// New cases sent to each of support and sales before the scenario starts.
const MAIL_PER_QUEUE: usize = 2;
/// A scenario that takes longer has hung (chromium starts in about a second).
const SCENARIO_LIMIT: Duration = Duration::from_secs(180);

const ROLES: &str = r#"
[access]
# One deliberate wrong password must not slow the scenario down.
failure_delay = "10ms"

[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[roles]]
name = "sales-agent"
grants = { sales = ["read", "act"] }

[[roles]]
name = "support-lead"
grants = { support = ["read", "act", "supervise"] }
"#;

/// Two chromiums at once on a two-core machine only make both slow: one scenario at a time.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/browser-screenshots/<scenario>` (CARGO_TARGET_TMPDIR is `target/tmp`).
fn out_dir(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("browser-screenshots").join(scenario)
}

/// Fails (never skips) with what to install when node, the npm packages or chromium are missing.
fn check_prerequisites() {
    let mut missing = vec![];
    if Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        missing.push("`node` is not on PATH (apt-get install nodejs npm)".to_string());
    }
    for package in ["playwright-core", "@axe-core/playwright", "axe-core"] {
        if !repo().join("node_modules").join(package).join("package.json").is_file() {
            missing.push(format!(
                "node_modules/{package} is missing: run `PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci` in {}",
                repo().display()
            ));
        }
    }
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} is missing: apt-get install chromium"));
    }
    assert!(missing.is_empty(), "the browser tests cannot run (scripts/test.sh installs all of this):\n  {}", missing.join("\n  "));
}

/// A server with the support and sales queues, an agent of support, an officer, and mail in both
/// queues; returns it with the subjects sent (customer content the officer must never see).
fn start_server(extra_toml: &str, http_extra: &str) -> (Server, Vec<String>) {
    let server = Server::start(Opts { extra_toml: format!("{ROLES}\n{extra_toml}"), http_extra: http_extra.into(), ..Default::default() });
    server.add_user(AGENT, PW, &["support-agent"]);
    server.add_user(OFFICER, PW, &["security-officer"]);
    server.add_user(SUPERVISOR, PW, &["support-lead"]);
    let mut subjects = vec![];
    for queue in ["support", "sales"].into_iter().flat_map(|q| [q; MAIL_PER_QUEUE]) {
        let subject = unique_token(&format!("Browser test mail for {queue} "));
        let to = format!("{queue}@example.com");
        let message = format!(
            "From: Ann Customer <{CUSTOMER}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example.org>\r\n\
             Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello, please help.\r\n",
            unique_token("browser-")
        );
        server.smtp_session().send_message(CUSTOMER, &[&to], message.as_bytes());
        subjects.push(subject);
    }
    (server, subjects)
}

/// Runs `node tests/browser/<scenario>.mjs` against a fresh server and asserts it exits 0.
fn run_scenario(scenario: &str) {
    run_scenario_with(scenario, "", |_| Vec::new());
}

/// The same with more configuration, and `setup` (users, mail) giving the scenario more
/// environment variables.
fn run_scenario_with(scenario: &str, extra_toml: &str, setup: impl FnOnce(&Server) -> Vec<(String, String)>) {
    run_scenario_full(scenario, extra_toml, "", setup);
}

/// The same, with extra `[http]` lines (shorter polling intervals, say).
fn run_scenario_configured(scenario: &str, http_extra: &str, setup: impl FnOnce(&Server)) {
    run_scenario_full(scenario, "", http_extra, |server| {
        setup(server);
        Vec::new()
    });
}

fn run_scenario_full(scenario: &str, extra_toml: &str, http_extra: &str, setup: impl FnOnce(&Server) -> Vec<(String, String)>) {
    check_prerequisites();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (server, subjects) = start_server(extra_toml, http_extra);
    let extra_env = setup(&server);
    let out = out_dir(scenario);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let script = repo().join("tests").join("browser").join(format!("{scenario}.mjs"));
    assert!(script.is_file(), "no scenario {}", script.display());

    let mut child = Command::new("node")
        .arg(&script)
        .current_dir(repo())
        .env("MAILROOM_URL", server.http_url())
        .env("MAILROOM_SMTP", server.smtp_addr().to_string())
        .env("MAILROOM_BROWSER_OUT", &out)
        .env("MAILROOM_CHROMIUM", CHROMIUM)
        .env("MAILROOM_AGENT_USER", AGENT)
        .env("MAILROOM_AGENT_PASSWORD", PW)
        .env("MAILROOM_AGENT_QUEUES", "support")
        .env("MAILROOM_OTHER_QUEUES", "sales,complaints")
        .env("MAILROOM_MAIL_PER_QUEUE", MAIL_PER_QUEUE.to_string())
        .env("MAILROOM_OFFICER_USER", OFFICER)
        .env("MAILROOM_OFFICER_PASSWORD", PW)
        .env("MAILROOM_SUPERVISOR_USER", SUPERVISOR)
        .env("MAILROOM_SUPERVISOR_PASSWORD", PW)
        .env("MAILROOM_CUSTOMER_TEXT", subjects.join("\n"))
        // Chromium's profile (a fresh --user-data-dir per session) goes into the server's temp dir.
        .env("TMPDIR", server.root())
        .envs(extra_env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn node {}: {e}", script.display()));
    let readers = [stream(child.stdout.take().unwrap(), scenario), stream(child.stderr.take().unwrap(), scenario)];

    let deadline = Instant::now() + SCENARIO_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for reader in readers {
        let _ = reader.join();
    }
    match status {
        Some(status) if status.success() => {
            let shots = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
            assert!(shots > 0, "scenario {scenario} passed but wrote no screenshot into {}", out.display());
            eprintln!("scenario {scenario}: passed, {shots} screenshot(s) in {}", out.display());
        }
        Some(status) => panic!("scenario {scenario} failed ({status}): its output is above; screenshots in {}", out.display()),
        None => panic!("scenario {scenario} did not finish within {SCENARIO_LIMIT:?}: its output is above"),
    }
}

/// Echoes a pipe line by line: live with `--nocapture`, otherwise shown with the failure.
fn stream(pipe: impl Read + Send + 'static, scenario: &str) -> std::thread::JoinHandle<()> {
    let prefix = format!("[browser {scenario}]");
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            eprintln!("{prefix} {line}");
        }
    })
}

/// The checks themselves, against deliberately faulty pages (the scenario serves them itself).
#[test]
fn the_harness_catches_csp_violations_console_errors_axe_faults_and_wide_pages() {
    run_scenario("harness");
}

#[test]
fn login_page_wrong_password_and_chinese() {
    run_scenario("login");
}

#[test]
fn agent_sees_his_queues_follows_one_and_logs_out() {
    run_scenario("agent");
}

#[test]
fn agent_opens_his_queue_filters_and_claims_two_cases_in_bulk() {
    run_scenario("queue");
}

#[test]
fn officer_sees_no_queue_and_no_customer_content() {
    run_scenario("officer");
}

#[test]
fn agent_works_by_keyboard_then_switches_shortcuts_off_and_chooses_chinese() {
    run_scenario("keys");
}

#[test]
fn agent_sets_up_two_factor_login_makes_an_app_password_and_logs_in_with_a_code() {
    run_scenario("two_factor");
}

/// The case page: an HTML-only mail (shown in its sandboxed frame) in the agent's queue.
const HTML_MAIL_SUBJECT: &str = "Browser test HTML mail";

#[test]
fn agent_opens_a_case_from_the_list_adds_a_note_and_claims_it() {
    run_scenario_with("case", "", |server| {
        let message = format!(
            "From: Ann Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: {HTML_MAIL_SUBJECT}\r\n\
             Message-ID: <{}@client.example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
             <p style=\"color: #123456\">Hello from an <b>HTML</b> mail.</p>\r\n",
            unique_token("browser-html-")
        );
        server.smtp_session().send_message(CUSTOMER, &["support@example.com"], message.as_bytes());
        Vec::new()
    });
}

#[test]
fn supervisor_opens_the_dashboard_from_the_header_and_sees_every_chart() {
    run_scenario("dashboard");
}

// ---------------------------------------------------------------------------------------------
// Replies: a capture SMTP server on loopback the outbox sends to
// ---------------------------------------------------------------------------------------------

#[test]
fn agent_replies_from_a_template_undoes_one_and_a_reviewer_approves_another() {
    let capture = out_dir("reply-capture");
    let _ = std::fs::remove_dir_all(&capture);
    std::fs::create_dir_all(&capture).unwrap();
    let port = capture_smtp_into(capture.clone());
    let extra = format!(
        r#"
[[roles]]
name = "vip-reviewer"
grants = {{ vip = ["read", "act", "review"] }}

[[queues]]
name = "vip"
addresses = ["vip@example.com"]
review = true

[[templates]]
name = "Thank you"
body = "Dear {{customer_name}},\nthank you for your message {{number}}.\n{{agent}}"

[intake]
acknowledge = false

[outbox]
smarthost = "127.0.0.1:{port}"
tls = "none"
poll_interval = "200ms"
undo_seconds = 5
"#
    );
    run_scenario_with("reply", &extra, |server| {
        server.add_user("rita", PW, &["vip-reviewer"]);
        server.add_user("rolf", PW, &["vip-reviewer"]);
        let message = format!(
            "From: Vic Customer <{CUSTOMER}>\r\nTo: vip@example.com\r\nSubject: {}\r\nMessage-ID: <{}@client.example.org>\r\n\r\nHello.\r\n",
            unique_token("VIP question "),
            unique_token("vip-")
        );
        server.smtp_session().send_message(CUSTOMER, &["vip@example.com"], message.as_bytes());
        vec![
            ("MAILROOM_CAPTURE_DIR".into(), capture.display().to_string()),
            ("MAILROOM_SMTP".into(), server.smtp_addr().to_string()),
            ("MAILROOM_REVIEW_AUTHOR".into(), "rita".into()),
            ("MAILROOM_REVIEWER".into(), "rolf".into()),
            ("MAILROOM_UNDO_SECONDS".into(), "5".into()),
        ]
    });
}

/// The second agent of the presence scenario (tests/browser/presence.mjs names him).
const COLLEAGUE: &str = "bert";

#[test]
fn two_agents_see_each_other_on_a_case_and_new_mail_shows_a_banner() {
    // Short intervals so the scenario watches htmx poll instead of waiting half a minute.
    let quick = "presence_heartbeat = \"1s\"\npresence_expiry = \"5s\"\nnew_cases_poll = \"1s\"";
    run_scenario_configured("presence", quick, |server| server.add_user(COLLEAGUE, PW, &["support-agent"]));
}

#[test]
fn two_agents_reply_to_one_case_and_the_second_gets_the_409_view() {
    // Replies are queued but never leave: the undo window outlasts the scenario.
    let outbox = "[intake]\nacknowledge = false\n\n[outbox]\nsmarthost = \"127.0.0.1:9\"\ntls = \"none\"\nundo_seconds = 600\n";
    run_scenario_with("collision", outbox, |server| {
        server.add_user(COLLEAGUE, PW, &["support-agent"]);
        let foreign = server.sql_i64("SELECT min(id) FROM cases WHERE queue = 'sales'");
        vec![("MAILROOM_FOREIGN_CASE".into(), foreign.to_string())]
    });
}
