//! Shared harness for mailroom's integration tests.
//!
//! * [`Server`] runs the real `mailroom serve` binary on a fresh temporary data dir with a config
//!   written by the test (port 0 listeners; the ports are read back from `DIR/listeners.json`).
//! * [`Client`] is a tiny raw-socket SMTP/LMTP client (plain or STARTTLS via rustls) that sends
//!   exact bytes and reads (multi-line) replies, for byte-level assertions.
//!
//! Every test binary includes this module with `mod common;`, so not every helper is used
//! everywhere.
#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const HOST: &str = "mx.example.com";
/// LMTP before LHLO: the table says "Send EHLO first"; "Send LHLO first" names the right verb.
pub const LMTP_GREET_FIRST: &[&str] = &["503 5.5.1 Send EHLO first", "503 5.5.1 Send LHLO first"];
pub const BIN: &str = env!("CARGO_BIN_EXE_mailroom");

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// Limits and knobs written into the test config. Defaults are small but roomy enough for the
/// ordinary tests; individual tests override what they exercise.
#[derive(Clone, Debug)]
pub struct Opts {
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub max_command_line: u32,
    pub max_data_line: u32,
    pub max_connections: u32,
    pub max_errors: u32,
    pub command_timeout: String,
    pub data_timeout: String,
    pub shutdown_grace: String,
    pub duplicate_window: String,
    pub max_batch: u32,
    /// `storage.max_database_size` (unset when None).
    pub max_database_size: Option<u64>,
    /// Appended verbatim to the generated config (new tables only).
    pub extra_toml: String,
    /// Extra `key = value` lines for the generated `[limits]`, `[lmtp]`, `[imap]` and `[http]`
    /// tables (e.g. connection caps; unset keys keep mailroom's defaults).
    pub limits_extra: String,
    pub lmtp_extra: String,
    pub imap_extra: String,
    pub http_extra: String,
    /// A complete config to use verbatim instead of the generated one.
    pub raw_config: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            max_message_size: 1_000_000,
            max_recipients: 100,
            max_command_line: 2048,
            max_data_line: 65536,
            max_connections: 1000,
            max_errors: 10,
            command_timeout: "60s".into(),
            data_timeout: "60s".into(),
            shutdown_grace: "5s".into(),
            duplicate_window: "48h".into(),
            max_batch: 256,
            max_database_size: None,
            extra_toml: String::new(),
            limits_extra: String::new(),
            lmtp_extra: String::new(),
            imap_extra: String::new(),
            http_extra: String::new(),
            raw_config: None,
        }
    }
}

impl Opts {
    pub fn config_toml(&self) -> String {
        if let Some(raw) = &self.raw_config {
            return raw.clone();
        }
        format!(
            r#"# written by mailroom's integration test harness
[server]
hostname = "{HOST}"

[smtp]
listen = ["127.0.0.1:0"]

[lmtp]
listen = ["127.0.0.1:0"]
{lmtp_extra}

[imap]
listen_starttls = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
{imap_extra}

[http]
listen = ["127.0.0.1:0"]
{http_extra}

[limits]
max_message_size = {max_message_size}
max_recipients = {max_recipients}
max_command_line = {max_command_line}
max_data_line = {max_data_line}
max_connections = {max_connections}
max_errors = {max_errors}
command_timeout = "{command_timeout}"
data_timeout = "{data_timeout}"
shutdown_grace = "{shutdown_grace}"
{limits_extra}

[registration]
format = "MR-{{year}}-{{seq:06}}-{{check}}"
duplicate_window = "{duplicate_window}"

[storage]
database = "mailroom.db"
master_key_file = "master.key"
max_batch = {max_batch}
{max_database_size}

[mail]
domains = ["example.com"]
recipient_delimiter = "+"

[authentication]
# No network here: tests that need SPF/DKIM/DMARC give recorded DNS answers instead.
verify = "off"

[[queues]]
name = "support"
addresses = ["support@example.com", "help@example.com"]

[[queues]]
name = "sales"
addresses = ["sales@example.com"]

[[queues]]
name = "complaints"
addresses = ["complaints@example.com"]

{extra}
"#,
            max_message_size = self.max_message_size,
            max_recipients = self.max_recipients,
            max_command_line = self.max_command_line,
            max_data_line = self.max_data_line,
            max_connections = self.max_connections,
            max_errors = self.max_errors,
            command_timeout = self.command_timeout,
            data_timeout = self.data_timeout,
            shutdown_grace = self.shutdown_grace,
            duplicate_window = self.duplicate_window,
            max_batch = self.max_batch,
            max_database_size = self.max_database_size.map(|n| format!("max_database_size = {n}")).unwrap_or_default(),
            extra = self.extra_toml,
            limits_extra = self.limits_extra,
            lmtp_extra = self.lmtp_extra,
            imap_extra = self.imap_extra,
            http_extra = self.http_extra,
        )
    }
}

/// One registration as printed by `mailroom message list --json`.
#[derive(Clone, Debug)]
pub struct Listed {
    pub number: String,
    pub size: u64,
    pub protocol: String,
    pub tls: bool,
    pub parsed: bool,
    pub duplicate_count: u64,
    pub raw: serde_json::Value,
}

pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl CliOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

pub struct Server {
    /// Root temp dir: holds `data/` (the data dir), `mailroom.toml` and `server.log`.
    root: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub opts: Opts,
    child: Option<Child>,
    smtp: Vec<SocketAddr>,
    lmtp: Vec<SocketAddr>,
    /// Staff listeners (empty when the config has none): IMAP with STARTTLS, IMAP over TLS, HTTP.
    imap: Vec<SocketAddr>,
    imaps: Vec<SocketAddr>,
    http: Vec<SocketAddr>,
}

impl Server {
    pub fn start(opts: Opts) -> Server {
        let root = tempfile::Builder::new().prefix("mailroom-test-").tempdir().expect("create temp dir");
        let data_dir = root.path().join("data");
        // Private, as mailroom demands of a data dir (the test's umask would make it 0755).
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700).create(&data_dir).unwrap();
        let config = root.path().join("mailroom.toml");
        fs::write(&config, opts.config_toml()).unwrap();
        let log = root.path().join("server.log");
        let mut s = Server {
            root: Some(root),
            data_dir,
            config,
            log,
            opts,
            child: None,
            smtp: vec![],
            lmtp: vec![],
            imap: vec![],
            imaps: vec![],
            http: vec![],
        };
        s.spawn();
        s
    }

    pub fn root(&self) -> &Path {
        self.root.as_ref().unwrap().path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp[0]
    }

    pub fn lmtp_addr(&self) -> SocketAddr {
        self.lmtp[0]
    }

    /// IMAP with STARTTLS (the 143-style listener).
    pub fn imap_addr(&self) -> SocketAddr {
        *self.imap.first().expect("the config has no imap.listen_starttls")
    }

    /// IMAP over TLS (the 993-style listener).
    pub fn imaps_addr(&self) -> SocketAddr {
        *self.imaps.first().expect("the config has no imap.listen_tls")
    }

    pub fn http_addr(&self) -> SocketAddr {
        *self.http.first().expect("the config has no http.listen")
    }

    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:41234`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr())
    }

    /// The generated self-signed certificate (PEM) that clients must trust.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir.join("certs").join("cert.pem")
    }

    /// Runs an admin command with `stdin` fed to it (e.g. `--password-stdin`).
    pub fn cli_stdin(&self, args: &[&str], stdin: &[u8]) -> CliOutput {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--data-dir").arg(&self.data_dir).arg("--config").arg(&self.config);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        CliOutput { status: out.status, stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    }

    /// Creates a staff user with the given roles (password through --password-stdin).
    pub fn add_user(&self, name: &str, password: &str, roles: &[&str]) {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        for role in roles {
            args.push("--role");
            args.push(role);
        }
        let out = self.cli_stdin(&args, format!("{password}\n").as_bytes());
        assert!(out.status.success(), "user add {name}: {}", out.stderr);
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        // A stale listeners.json (left by a SIGKILL) must not be mistaken for the new one.
        let _ = fs::remove_file(self.data_dir.join("listeners.json"));
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        // Any temp file the server writes lands inside the test dir (the encryption test scans it).
        let tmp = self.root().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.env("TMPDIR", &tmp);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Default log level: the encryption test also scans the log for customer data.
            .env_remove("RUST_LOG");
        if let Ok(level) = std::env::var("MAILROOM_TEST_RUST_LOG") {
            cmd.env("RUST_LOG", level);
        }
        unsafe {
            // If the test process dies, take the server with it.
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        self.child = Some(child);
        self.wait_listeners(Duration::from_secs(20));
    }

    fn wait_listeners(&mut self, limit: Duration) {
        let path = self.data_dir.join("listeners.json");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("mailroom serve exited during startup with {status}\n--- server log ---\n{}", self.log_text());
            }
            if let Ok(text) = fs::read_to_string(&path)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                let parse = |key: &str| -> Vec<SocketAddr> {
                    v.get(key)
                        .and_then(|a| a.as_array())
                        .map(|a| a.iter().filter_map(|s| s.as_str()?.parse().ok()).collect())
                        .unwrap_or_default()
                };
                let smtp = parse("smtp");
                let lmtp = parse("lmtp");
                if !smtp.is_empty() && !lmtp.is_empty() {
                    assert!(smtp.iter().chain(&lmtp).all(|a| a.port() != 0), "listeners.json lists port 0: {text}");
                    self.smtp = smtp;
                    self.lmtp = lmtp;
                    self.imap = parse("imap");
                    self.imaps = parse("imaps");
                    self.http = parse("http");
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("no usable {} after {limit:?}\n--- server log ---\n{}", path.display(), self.log_text());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().unwrap().is_none(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// Send SIGTERM (does not wait).
    pub fn terminate(&mut self) {
        let child = self.child.as_ref().expect("server not running");
        let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
    }

    /// Wait for the server to exit; panics (after SIGKILL) if it takes longer than `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("server not running");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!("server did not exit within {limit:?}\n--- server log ---\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate_and_wait(&mut self) -> ExitStatus {
        self.terminate();
        self.wait_exit(Duration::from_secs(30))
    }

    /// Start again on the same data dir and config (the server must be stopped).
    pub fn restart(&mut self) {
        if self.is_running() {
            panic!("restart() while the server is still running");
        }
        self.child = None;
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Run `mailroom <args> --data-dir DIR --config FILE`.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut full: Vec<std::ffi::OsString> = args.iter().map(|a| a.into()).collect();
        full.push("--data-dir".into());
        full.push(self.data_dir.clone().into_os_string());
        full.push("--config".into());
        full.push(self.config.clone().into_os_string());
        run_bin(&full, Duration::from_secs(60))
    }

    pub fn list_messages(&self) -> Vec<Listed> {
        let out = self.cli(&["message", "list", "--json"]);
        assert!(out.status.success(), "`message list --json` failed ({}): {}", out.status, out.stderr);
        parse_list(&out.stdout_str())
    }

    /// Decrypted raw message (our Received: header + the bytes received).
    pub fn show_message(&self, number: &str) -> Vec<u8> {
        let out = self.cli(&["message", "show", number]);
        assert!(out.status.success(), "`message show {number}` failed ({}): {}", out.status, out.stderr);
        out.stdout
    }

    /// The stored content without our Received: header, checking that header names the number.
    pub fn stored_content(&self, number: &str) -> Vec<u8> {
        let raw = self.show_message(number);
        let (received, content) = split_received(&raw);
        let received = String::from_utf8_lossy(received);
        assert!(received.contains(number), "our Received: header does not name the registration number {number}: {received:?}");
        content.to_vec()
    }

    pub fn connect_smtp(&self) -> Client {
        let mut c = Client::connect(self.smtp_addr());
        c.expect_line(&format!("220 {HOST} ESMTP mailroom"));
        c
    }

    /// Connected, banner read, EHLO done.
    pub fn smtp_session(&self) -> Client {
        let mut c = self.connect_smtp();
        c.ehlo("client.example.org");
        c
    }

    pub fn connect_lmtp(&self) -> Client {
        let mut c = Client::connect(self.lmtp_addr());
        c.expect_line(&format!("220 {HOST} LMTP mailroom"));
        c
    }

    pub fn lmtp_session(&self) -> Client {
        let mut c = self.connect_lmtp();
        let r = c.cmd("LHLO client.example.org");
        assert_eq!(r.code, 250, "LHLO: {r:?}");
        assert_eq!(r.lines[0], format!("250-{HOST}"), "LHLO: {r:?}");
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: String = if log.len() > 6000 {
                let mut start = log.len() - 6000;
                while !log.is_char_boundary(start) {
                    start += 1;
                }
                log[start..].to_string()
            } else {
                log
            };
            eprintln!("--- server log (tail) ---\n{tail}\n--- end of server log ---");
            if std::env::var_os("MAILROOM_TEST_KEEP").is_some()
                && let Some(root) = self.root.take()
            {
                eprintln!("keeping test dir {}", root.keep().display());
            }
        }
    }
}

/// Run the mailroom binary with exactly these arguments, with a time limit.
pub fn run_bin<S: AsRef<std::ffi::OsStr>>(args: &[S], limit: Duration) -> CliOutput {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
            panic!("`mailroom {}` did not finish within {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    CliOutput { status, stdout: t_out.join().unwrap(), stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned() }
}

pub fn parse_list(text: &str) -> Vec<Listed> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("`message list --json` line is not JSON ({e}): {l:?}"));
            let s = |k: &str| -> String {
                v.get(k).and_then(|x| x.as_str()).unwrap_or_else(|| panic!("list entry without string {k:?}: {l}")).to_string()
            };
            let b =
                |k: &str| -> bool { v.get(k).and_then(|x| x.as_bool()).unwrap_or_else(|| panic!("list entry without bool {k:?}: {l}")) };
            let n =
                |k: &str| -> u64 { v.get(k).and_then(|x| x.as_u64()).unwrap_or_else(|| panic!("list entry without integer {k:?}: {l}")) };
            assert!(v.get("received_at").is_some(), "list entry without received_at: {l}");
            Listed {
                number: s("number"),
                size: n("size"),
                protocol: s("protocol"),
                // `tls` is a bool, or the TLS details (string) / null when the session was plain.
                tls: match v.get("tls") {
                    Some(serde_json::Value::Bool(x)) => *x,
                    Some(serde_json::Value::Null) => false,
                    Some(serde_json::Value::String(x)) => !x.is_empty(),
                    other => panic!("list entry with unexpected \"tls\" {other:?}: {l}"),
                },
                parsed: b("parsed"),
                duplicate_count: n("duplicate_count"),
                raw: v.clone(),
            }
        })
        .collect()
}

/// Split a stored message into (our Received: header field incl. its CRLF, the rest).
pub fn split_received(raw: &[u8]) -> (&[u8], &[u8]) {
    assert!(
        raw.len() >= 9 && raw[..9].eq_ignore_ascii_case(b"Received:"),
        "stored message does not start with our Received: header: {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(300)])
    );
    let mut pos = 0;
    loop {
        let nl = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i)
            .unwrap_or_else(|| panic!("Received: header not terminated: {:?}", String::from_utf8_lossy(raw)));
        assert!(
            nl > 0 && raw[nl - 1] == b'\r',
            "our Received: header must end its lines with CRLF: {:?}",
            String::from_utf8_lossy(&raw[..=nl])
        );
        pos = nl + 1;
        // Folded continuation lines start with SP or HT.
        if pos < raw.len() && (raw[pos] == b' ' || raw[pos] == b'\t') {
            continue;
        }
        return (&raw[..pos], &raw[pos..]);
    }
}

// ---------------------------------------------------------------------------------------------
// Registration numbers
// ---------------------------------------------------------------------------------------------

const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

pub fn damm(digits: &str) -> u8 {
    digits.bytes().fold(0u8, |i, d| DAMM[i as usize][(d - b'0') as usize])
}

/// A parsed default-format number `MR-YYYY-NNNNNN-C`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegNo {
    pub year: u32,
    pub seq: u64,
    pub check: u8,
}

/// Parse `MR-YYYY-NNNNNN-C` (format `MR-{year}-{seq:06}-{check}`), panicking on anything else.
pub fn parse_number(n: &str) -> RegNo {
    let parts: Vec<&str> = n.split('-').collect();
    let ok = parts.len() == 4
        && parts[0] == "MR"
        && parts[1].len() == 4
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && parts[2].len() >= 6
        && parts[2].bytes().all(|b| b.is_ascii_digit())
        && parts[3].len() == 1
        && parts[3].bytes().all(|b| b.is_ascii_digit());
    assert!(ok, "not a registration number of format MR-{{year}}-{{seq:06}}-{{check}}: {n:?}");
    RegNo { year: parts[1].parse().unwrap(), seq: parts[2].parse().unwrap(), check: parts[3].parse().unwrap() }
}

/// Same number with a different (wrong) check digit.
pub fn with_wrong_check(n: &str) -> String {
    let r = parse_number(n);
    let wrong = (r.check + 1) % 10;
    format!("MR-{:04}-{:06}-{}", r.year, r.seq, wrong)
}

/// `250 2.0.0 Registered NUMBER` → NUMBER (panics otherwise).
pub fn registered(line: &str) -> String {
    let rest =
        line.strip_prefix("250 2.0.0 Registered ").unwrap_or_else(|| panic!("expected `250 2.0.0 Registered <number>`, got {line:?}"));
    assert!(!rest.contains(' '), "expected `250 2.0.0 Registered <number>` (nothing after the number), got {line:?}");
    parse_number(rest);
    rest.to_string()
}

// ---------------------------------------------------------------------------------------------
// Wire helpers
// ---------------------------------------------------------------------------------------------

/// Dot-stuff `content` for DATA and append the terminator. `content` must end in CRLF (or be
/// empty). Only dots at the very start or after CRLF are stuffed (the server's policy).
pub fn data_wire(content: &[u8]) -> Vec<u8> {
    assert!(content.is_empty() || content.ends_with(b"\r\n"));
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut at_line_start = true;
    for (i, &b) in content.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n' && i > 0 && content[i - 1] == b'\r';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Reference dot-unstuffing: drop a '.' at the very start or right after CRLF (bare CR/LF are
/// content). Input excludes the final `.CRLF` terminator.
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut at_line_start = true;
    for (i, &b) in wire.iter().enumerate() {
        let drop = at_line_start && b == b'.';
        at_line_start = b == b'\n' && i > 0 && wire[i - 1] == b'\r';
        if !drop {
            out.push(b);
        }
    }
    out
}

pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A unique-ish token for this process and call (no rand crate needed).
pub fn unique_token(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut x = t ^ ((std::process::id() as u64) << 32) ^ n.wrapping_mul(0x9e3779b97f4a7c15);
    // splitmix64
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^= z >> 31;
    format!("{prefix}{z:016x}{n:04x}")
}

/// A small but real message.
pub fn simple_message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@client.example.org>\r\n\
         To: support@example.com\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{}@client.example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\
         \r\n\
         {body}\r\n",
        unique_token("mid-")
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Full lines without CRLF, e.g. `250-PIPELINING`, `250 HELP`.
    pub lines: Vec<String>,
}

impl Reply {
    /// The last (or only) line, e.g. `250 2.0.0 OK`.
    pub fn last(&self) -> &str {
        self.lines.last().unwrap()
    }
    /// For a single-line reply: the line.
    pub fn line(&self) -> &str {
        assert_eq!(self.lines.len(), 1, "expected a single-line reply, got {:?}", self.lines);
        &self.lines[0]
    }
    /// Text parts without `NNN-`/`NNN ` prefixes.
    pub fn texts(&self) -> Vec<String> {
        self.lines.iter().map(|l| l.get(4..).unwrap_or("").to_string()).collect()
    }
}

#[derive(Debug)]
pub enum ReadErr {
    Eof,
    Timeout,
    Io(io::Error),
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Gone,
}

pub struct Client {
    conn: Conn,
    buf: Vec<u8>,
    pub addr: SocketAddr,
    /// Every reply line read so far (for failure messages).
    pub transcript: Vec<String>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.set_write_timeout(Some(Duration::from_secs(15)))?;
        s.set_nodelay(true)?;
        Ok(Client { conn: Conn::Plain(s), buf: Vec::new(), addr, transcript: vec![] })
    }

    /// Connects from a chosen local address (e.g. 127.0.0.2), to act as a distinct source.
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Client {
        let s = tcp_from(source, addr).unwrap_or_else(|e| panic!("connect {addr} from {source}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { conn: Conn::Plain(s), buf: Vec::new(), addr, transcript: vec![] }
    }

    /// A second handle on a plain connection's socket, for a writer thread.
    pub fn plain_clone(&self) -> TcpStream {
        match &self.conn {
            Conn::Plain(s) => s.try_clone().unwrap(),
            _ => panic!("not a plain connection"),
        }
    }

    pub fn set_read_timeout(&mut self, d: Duration) {
        self.tcp().set_read_timeout(Some(d)).unwrap();
    }

    fn tcp(&self) -> &TcpStream {
        match &self.conn {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
            Conn::Gone => panic!("connection gone"),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.conn {
            Conn::Tls(t) => t.conn.protocol_version(),
            _ => None,
        }
    }

    /// Write exact bytes (one write call, so they travel together).
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).unwrap_or_else(|e| panic!("write to server: {e}"));
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.conn {
            Conn::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Conn::Tls(t) => {
                t.write_all(bytes)?;
                t.flush()
            }
            Conn::Gone => Err(io::Error::other("connection gone")),
        }
    }

    fn fill(&mut self) -> Result<(), ReadErr> {
        let mut tmp = [0u8; 16384];
        let r = match &mut self.conn {
            Conn::Plain(s) => s.read(&mut tmp),
            Conn::Tls(t) => t.read(&mut tmp),
            Conn::Gone => return Err(ReadErr::Eof),
        };
        match r {
            Ok(0) => Err(ReadErr::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => Err(ReadErr::Timeout),
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionReset
                    || e.kind() == io::ErrorKind::ConnectionAborted
                    || e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::BrokenPipe =>
            {
                Err(ReadErr::Eof)
            }
            Err(e) => Err(ReadErr::Io(e)),
        }
    }

    /// One CRLF-terminated line (without CRLF).
    pub fn try_line(&mut self) -> Result<String, ReadErr> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=i).collect();
                assert!(raw.len() >= 2 && raw[raw.len() - 2] == b'\r', "server reply line not terminated by CRLF: {:?}", show_bytes(&raw));
                let line = String::from_utf8(raw[..raw.len() - 2].to_vec())
                    .unwrap_or_else(|_| panic!("reply is not UTF-8: {:?}", show_bytes(&raw)));
                self.transcript.push(line.clone());
                return Ok(line);
            }
            self.fill()?;
        }
    }

    /// A complete (multi-line) reply.
    pub fn try_reply(&mut self) -> Result<Reply, ReadErr> {
        let mut lines = Vec::new();
        loop {
            let line = self.try_line()?;
            let b = line.as_bytes();
            assert!(
                b.len() >= 3 && b[..3].iter().all(|c| c.is_ascii_digit()) && (b.len() == 3 || b[3] == b' ' || b[3] == b'-'),
                "malformed reply line {line:?} (transcript {:?})",
                self.transcript
            );
            let code: u16 = line[..3].parse().unwrap();
            if let Some(first) = lines.first() {
                let first: &String = first;
                assert_eq!(&first[..3], &line[..3], "reply code changed inside a multi-line reply");
            }
            let last = b.len() == 3 || b[3] == b' ';
            lines.push(line);
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    pub fn reply(&mut self) -> Reply {
        match self.try_reply() {
            Ok(r) => r,
            Err(e) => {
                panic!("expected a reply, got {e:?}; transcript so far: {:#?}; unread bytes: {:?}", self.transcript, show_bytes(&self.buf))
            }
        }
    }

    /// Send `line` + CRLF and read the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Read one reply and assert it is exactly this single line.
    pub fn expect_line(&mut self, expected: &str) -> Reply {
        let r = self.reply();
        assert_eq!(r.lines, vec![expected.to_string()], "unexpected reply (transcript {:#?})", self.transcript);
        r
    }

    /// Send `line` + CRLF and assert the single-line reply.
    pub fn expect(&mut self, line: &str, expected: &str) {
        self.send(format!("{line}\r\n").as_bytes());
        let r = self.reply();
        assert_eq!(r.lines, vec![expected.to_string()], "reply to {line:?} (transcript {:#?})", self.transcript);
    }

    /// Send `line` + CRLF and assert the single-line reply is one of `expected`.
    pub fn expect_any(&mut self, line: &str, expected: &[&str]) {
        self.send(format!("{line}\r\n").as_bytes());
        let r = self.reply();
        assert!(
            r.lines.len() == 1 && expected.contains(&r.lines[0].as_str()),
            "reply to {line:?}: {r:?}, expected one of {expected:?} (transcript {:#?})",
            self.transcript
        );
    }

    /// EHLO and check the documented capability list. Returns the extension keywords.
    pub fn ehlo(&mut self, name: &str) -> Vec<String> {
        let r = self.cmd(&format!("EHLO {name}"));
        check_ehlo(&r, self.is_tls(), None);
        r.texts()[1..].to_vec()
    }

    /// MAIL + RCPTs (all must be accepted) + DATA with `content` (stuffed here); returns the
    /// registration number.
    pub fn send_message(&mut self, from: &str, rcpts: &[&str], content: &[u8]) -> String {
        self.expect(&format!("MAIL FROM:<{from}>"), "250 2.1.0 Sender OK");
        for r in rcpts {
            self.expect(&format!("RCPT TO:<{r}>"), "250 2.1.5 Recipient OK");
        }
        self.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
        self.send(&data_wire(content));
        let r = self.reply();
        registered(r.line())
    }

    /// Assert the server closes the connection (EOF/reset) without sending anything more.
    pub fn expect_closed(&mut self) {
        match self.try_line() {
            Err(ReadErr::Eof) => {}
            Ok(l) => panic!("expected the server to close the connection, got line {l:?}"),
            Err(e) => panic!("expected the server to close the connection, got {e:?}"),
        }
    }

    /// Assert that nothing arrives within `d` (no stray reply).
    pub fn expect_silence(&mut self, d: Duration) {
        assert!(self.buf.is_empty(), "unexpected buffered bytes: {:?}", show_bytes(&self.buf));
        let old = self.tcp().read_timeout().unwrap();
        self.set_read_timeout(d);
        match self.fill() {
            Err(ReadErr::Timeout) => {}
            Ok(()) => panic!("unexpected bytes from server: {:?}", show_bytes(&self.buf)),
            Err(e) => panic!("expected silence, got {e:?}"),
        }
        self.tcp().set_read_timeout(old).unwrap();
    }

    pub fn unread(&self) -> &[u8] {
        &self.buf
    }

    /// Close our write side (the server should see EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.tcp().shutdown(Shutdown::Write);
    }

    /// Send STARTTLS, expect 220, then run the TLS handshake (any certificate accepted).
    pub fn starttls(&mut self) {
        self.expect("STARTTLS", "220 2.0.0 Ready to start TLS");
        self.handshake(None);
    }

    /// Run a TLS handshake on the current plain connection. Any byte the server sent after its
    /// 220 and before the handshake is a failure.
    pub fn handshake(&mut self, version: Option<&'static rustls::SupportedProtocolVersion>) {
        assert!(self.buf.is_empty(), "server sent plaintext after `220 Ready to start TLS`: {:?}", show_bytes(&self.buf));
        let sock = match std::mem::replace(&mut self.conn, Conn::Gone) {
            Conn::Plain(s) => s,
            _ => panic!("handshake on a non-plain connection"),
        };
        let config = tls_client_config(version);
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap().to_owned();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut sock = sock;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                panic!("TLS handshake failed: {e}");
            }
        }
        self.conn = Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock)));
    }
}

/// Check an EHLO/LHLO reply against docs/smtp-replies.md.
pub fn check_ehlo(r: &Reply, tls: bool, size: Option<u64>) {
    assert_eq!(r.code, 250, "EHLO reply: {r:?}");
    assert!(r.lines.len() >= 3, "EHLO reply too short: {r:?}");
    assert_eq!(r.lines[0], format!("250-{HOST}"), "first EHLO line: {r:?}");
    assert_eq!(r.last(), "250 HELP", "last EHLO line: {r:?}");
    let mut got: Vec<String> = r.texts()[1..r.lines.len() - 1].to_vec();
    got.sort();
    let mut want: Vec<String> = vec![
        "PIPELINING".into(),
        format!("SIZE {}", size.map(|s| s.to_string()).unwrap_or_else(|| "*".into())),
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        "ENHANCEDSTATUSCODES".into(),
        "CHUNKING".into(),
    ];
    if !tls {
        want.push("STARTTLS".into());
    }
    if size.is_none() {
        // Accept any numeric SIZE value.
        for g in got.iter_mut() {
            if let Some(v) = g.strip_prefix("SIZE ") {
                assert!(v.parse::<u64>().is_ok(), "bad SIZE line {g:?}");
                *g = "SIZE *".into();
            }
        }
    }
    want.sort();
    assert_eq!(got, want, "EHLO extensions (tls={tls}): {r:?}");
}

// --- rustls client that accepts any certificate (the server's is self-signed) ---------------

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn tls_client_config(version: Option<&'static rustls::SupportedProtocolVersion>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone());
    let builder = match version {
        Some(v) => builder.with_protocol_versions(&[v]).unwrap(),
        None => builder.with_safe_default_protocol_versions().unwrap(),
    };
    builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider))).with_no_client_auth()
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// Every regular file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn file_mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Wait until `f` returns true or the limit passes.
/// A blocking TCP connection from `source` (bound before connecting) to `addr`.
pub fn tcp_from(source: std::net::IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let stream = rt.block_on(async {
        let socket = if source.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(source, 0))?;
        tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
