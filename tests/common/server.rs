//! [`Server`]: the real `mailroom serve` binary on a fresh temporary data dir, its listeners read
//! back from `DIR/listeners.json`, and its lifecycle (SIGTERM, SIGKILL, restart, log).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{BIN, Database, Opts, assign_database};

pub struct Server {
    /// Root temp dir: holds `data/` (the data dir), `mailroom.toml` and `server.log`.
    root: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub opts: Opts,
    /// The store named in the config: SQLite in the data dir, or (in the PostgreSQL pass) a
    /// fresh database of the shared cluster. Read it through [`Server::sql`].
    pub database: Database,
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
        let mut s = Server::prepare(opts);
        s.spawn();
        s
    }

    /// A server's temp dir, data dir and config, not started yet: a test puts something into the
    /// data dir first (a restored store), then [`Server::restart`] starts it.
    pub fn prepare(opts: Opts) -> Server {
        let root = tempfile::Builder::new().prefix("mailroom-test-").tempdir().expect("create temp dir");
        let data_dir = root.path().join("data");
        // Private, as mailroom demands of a data dir (the test's umask would make it 0755).
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700).create(&data_dir).unwrap();
        let config = root.path().join("mailroom.toml");
        let (text, database) = assign_database(&opts.config_toml(), &data_dir);
        fs::write(&config, text).unwrap();
        let log = root.path().join("server.log");
        Server {
            root: Some(root),
            data_dir,
            config,
            log,
            opts,
            database,
            child: None,
            smtp: vec![],
            lmtp: vec![],
            imap: vec![],
            imaps: vec![],
            http: vec![],
        }
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
