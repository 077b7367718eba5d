//! Throwaway PostgreSQL clusters for tests: `initdb` into a temporary directory, `pg_ctl` on a free
//! loopback port with the socket in that directory, `pg_ctl -m immediate stop` and removal on drop.
//! As root, every PostgreSQL program runs as the `postgres` user (PostgreSQL refuses root), in a
//! directory that user owns under the (traversable) temp dir. One cluster serves several tests
//! through [`PgCluster::database`]; [`PgCluster::standby_of`] and [`PgCluster::sync_standby`] build
//! the synchronous streaming pair of the failover tests.
//!
//! Nothing is skipped silently: without PostgreSQL the test fails and says to run scripts/test.sh.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The superuser every cluster is created with (`initdb -U`), whoever runs the test.
pub const PG_SUPERUSER: &str = "postgres";

pub struct PgCluster {
    /// Owned by the user the server runs as: the data dir, the socket and the server log.
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    stopped: bool,
}

impl PgCluster {
    /// A new, empty cluster, running. Panics with the server log when it cannot start.
    pub fn start() -> PgCluster {
        let cluster = PgCluster::prepare();
        cluster.run_checked(
            "initdb",
            &[
                "-D",
                &cluster.data_dir_str(),
                "-U",
                PG_SUPERUSER,
                "-A",
                "trust",
                "--no-sync", // the cluster is thrown away: no need to fsync its initial files
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
        cluster.start_server()
    }

    /// A streaming standby of `primary` made with `pg_basebackup -R -X stream`, connecting as
    /// `application_name = name` (the name [`PgCluster::sync_standby`] takes), on its own port.
    pub fn standby_of(primary: &PgCluster, name: &str) -> PgCluster {
        assert_plain_name(name);
        let standby = PgCluster::prepare();
        let conninfo = format!("host=127.0.0.1 port={} user={PG_SUPERUSER} application_name={name}", primary.port);
        standby.run_checked(
            "pg_basebackup",
            &["-D", &standby.data_dir_str(), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync", "-d", &conninfo],
        );
        standby.start_server()
    }

    /// `postgres://` URL of the default `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// Creates a fresh, empty database `name` and returns its URL.
    pub fn database(&self, name: &str) -> String {
        assert_plain_name(name);
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url_of(name)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the socket (`host=` for a Unix-socket connection).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `statement` with psql in database `db` (stopping at the first error) and returns what
    /// it printed, unaligned and without headers: one row per line, columns separated by `|`.
    pub fn sql(&self, db: &str, statement: &str) -> String {
        let out = self.try_sql(db, statement);
        assert!(out.status.success(), "psql failed on {statement:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// As [`PgCluster::sql`], for statements that are expected to fail.
    pub fn try_sql(&self, db: &str, statement: &str) -> Output {
        let port = self.port.to_string();
        Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port, "-U", PG_SUPERUSER])
            .args(["-d", db, "-c", statement])
            .stdin(Stdio::null())
            .output()
            .expect("run psql")
    }

    /// Makes the standby named `name` synchronous (`ANY 1 (name)`): from now on a COMMIT returns
    /// only once that standby has flushed it. Waits until the primary reports it so.
    pub fn sync_standby(&self, name: &str) {
        assert_plain_name(name);
        self.sql("postgres", &format!("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ({name})'"));
        self.sql("postgres", "SELECT pg_reload_conf()");
        let query = format!("SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = '{name}'");
        self.wait_for("postgres", &query, |out| out == "streaming quorum", "the standby to be a synchronous quorum member");
    }

    /// Polls `query` in database `db` until `done` accepts its output (10 s at most); a standby
    /// replays a commit shortly after the primary returns it.
    pub fn wait_for(&self, db: &str, query: &str, done: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.try_sql(db, query);
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && done(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "waited 10 s for {what}; last answer {text:?}\nserver log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The backend pid of the connection named `listener` in database `db`, waiting (10 s at
    /// most) until it is connected and LISTENing, and is not `other_than` (one killed before).
    pub fn listener_pid(&self, db: &str, listener: &str, other_than: Option<&str>) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pid =
                self.sql(db, &format!("SELECT pid FROM pg_stat_activity WHERE application_name = '{listener}' AND query LIKE 'LISTEN%'"));
            if !pid.is_empty() && !pid.contains('\n') && Some(pid.as_str()) != other_than {
                return pid;
            }
            assert!(Instant::now() < deadline, "{listener} has no (new) listening connection: {pid:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `pg_ctl promote`: a standby becomes a primary (returns once it accepts writes).
    pub fn promote(&self) {
        self.run_checked("pg_ctl", &["-D", &self.data_dir_str(), "-w", "promote"]);
    }

    /// `pg_ctl -m immediate stop`: the server dies as on a crash (no shutdown checkpoint).
    pub fn stop_immediate(&mut self) {
        if !self.stopped {
            self.run_checked("pg_ctl", &["-D", &self.data_dir_str(), "-m", "immediate", "-w", "stop"]);
            self.stopped = true;
        }
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn url_of(&self, db: &str) -> String {
        format!("postgres://{PG_SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    fn data_dir_str(&self) -> String {
        self.dir.path().join("data").to_str().expect("temp dir path is UTF-8").to_string()
    }

    /// A temporary directory the server's user owns, not yet a cluster.
    fn prepare() -> PgCluster {
        let bin = pg_bin_dir();
        let mut parent = std::env::temp_dir();
        if running_as_root() && !traversable_by_others(&parent) {
            parent = PathBuf::from("/tmp"); // e.g. TMPDIR under /root: the postgres user cannot reach it
        }
        let dir = tempfile::Builder::new().prefix("mailroom-pg-").tempdir_in(&parent).expect("create temp dir");
        if running_as_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster dir to postgres");
        }
        PgCluster { dir, bin, port: 0, stopped: true }
    }

    /// Starts the server on a free port; a port taken between choosing and binding gets another try.
    fn start_server(mut self) -> PgCluster {
        let dir = self.dir.path().to_str().expect("temp dir path is UTF-8").to_string();
        let log = self.dir.path().join("server.log");
        let log = log.to_str().unwrap().to_string();
        for _ in 0..5 {
            self.port = free_port();
            let options = format!("-p {} -k {dir} -c listen_addresses=127.0.0.1", self.port);
            let out = self.run("pg_ctl", &["-D", &self.data_dir_str(), "-l", &log, "-o", &options, "-w", "start"]);
            if out.status.success() {
                self.stopped = false;
                return self;
            }
            if !self.log().contains("could not bind") {
                panic!("pg_ctl start failed: {}\nserver log:\n{}", describe(&out), self.log());
            }
        }
        panic!("pg_ctl start found no free port in 5 tries; server log:\n{}", self.log());
    }

    /// Runs a PostgreSQL program from the cluster's bin dir (as `postgres` when we are root), in
    /// the cluster dir so the program can always resolve its working directory.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        cmd.output().unwrap_or_else(|e| panic!("run {}: {e}", path.display()))
    }

    fn run_checked(&self, program: &str, args: &[&str]) -> Output {
        let out = self.run(program, args);
        assert!(out.status.success(), "{program} {args:?} failed: {}\nserver log:\n{}", describe(&out), self.log());
        out
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if !self.stopped {
            // Never panic in drop (a failing test is already unwinding); the dir goes anyway.
            let _ = self.run("pg_ctl", &["-D", &self.data_dir_str(), "-m", "immediate", "-w", "stop"]);
        }
    }
}

/// The newest `/usr/lib/postgresql/N/bin` (Debian), else the directory of `initdb` on PATH.
pub fn pg_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()));
    on_path.unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH): \
             run scripts/test.sh, which installs Debian's postgresql package"
        )
    })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` user (PostgreSQL's servers refuse to run as root).
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("run id");
        assert!(
            out.status.success(),
            "running as root, but there is no `postgres` user to run PostgreSQL as: run scripts/test.sh, \
             which installs Debian's postgresql package (and creates the user)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// Whether a user other than the owner may pass through `dir` and each of its parents.
fn traversable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors().all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
}

/// Database and standby names go into SQL and conninfo strings unquoted.
fn assert_plain_name(name: &str) {
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "use [a-z0-9_] for database and standby names, not {name:?}"
    );
}

fn describe(out: &Output) -> String {
    format!("{}\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
