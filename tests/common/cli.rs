//! The admin CLI (`mailroom <command> --data-dir … --config …`) and what its output means:
//! `message list --json` entries and stored messages with our Received: header.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{BIN, Server};

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

impl Server {
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

    /// After a test's own SQL on `cases` (moving due times, setting a status by hand): the queue
    /// counters rewritten from a full count (`mailroom store counts --repair`), as the store
    /// keeps them with its own changes. Counts read from them are then those of the edited rows.
    pub fn recount_queues(&self) {
        let out = self.cli(&["store", "counts", "--repair"]);
        assert!(out.status.success(), "store counts --repair: {}", out.stderr);
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
