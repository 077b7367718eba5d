//! The engine switch of the suite: `MAILROOM_TEST_DATABASE=postgres` gives every [`Server`] a
//! fresh database in one PostgreSQL cluster shared by the test binary; unset or `sqlite` keeps the
//! SQLite file in the data dir. scripts/test.sh runs the suite once each way.
//!
//! The shared cluster lives in a static, which is never dropped: a watchdog process (its own
//! session, so a Ctrl-C to the test's process group does not kill it first) waits for EOF on a
//! pipe only this process holds, then stops the cluster and removes its directory. The pipe
//! closes however the test process ends, kill -9 included, so no postgres outlives the run.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Database, PgCluster, pg_bin_dir};

/// The environment variable that selects the engine of the whole run.
pub const ENGINE_VAR: &str = "MAILROOM_TEST_DATABASE";

/// The line of the harness's config that names the store (see config.rs).
pub const SQLITE_DATABASE_LINE: &str = "database = \"mailroom.db\"";

/// Whether this run is the PostgreSQL pass.
pub fn postgres_run() -> bool {
    match std::env::var(ENGINE_VAR).as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("{ENGINE_VAR}={other:?}: use sqlite or postgres"),
    }
}

/// Picks the store of a new server and writes it into its config text: under PostgreSQL a fresh
/// database replaces the harness's `database = "mailroom.db"` line (raw configs derived from the
/// harness's keep that line; one without it stays on SQLite and says so).
pub fn assign_database(config: &str, data_dir: &Path) -> (String, Database) {
    let sqlite = Database::Sqlite(data_dir.join("mailroom.db"));
    if !postgres_run() {
        return (config.to_string(), sqlite);
    }
    if !config.contains(SQLITE_DATABASE_LINE) {
        eprintln!("this test's config names its own database: it stays on SQLite");
        return (config.to_string(), sqlite);
    }
    let url = fresh_postgres_database();
    (config.replacen(SQLITE_DATABASE_LINE, &format!("database = \"{url}\""), 1), Database::Postgres(url))
}

/// For a store a test opens in-process (no server, no harness config): the `[storage]` table to
/// add to its config (empty on SQLite: the default file in the data dir) and the database.
pub fn in_process_storage(data_dir: &Path) -> (String, Database) {
    if !postgres_run() {
        return (String::new(), Database::Sqlite(data_dir.join("mailroom.db")));
    }
    let url = fresh_postgres_database();
    (format!("[storage]\ndatabase = \"{url}\"\n"), Database::Postgres(url))
}

struct SharedCluster {
    cluster: PgCluster,
    /// Never waited for: it outlives this process. Its stdin stays open for the life of the
    /// process; the EOF tells it to stop the cluster.
    _watchdog: Child,
}

static CLUSTER: OnceLock<SharedCluster> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(1);

/// A new, empty database in the binary's shared cluster (started on first use).
pub fn fresh_postgres_database() -> String {
    let shared = CLUSTER.get_or_init(|| {
        let cluster = PgCluster::start();
        let watchdog = stop_at_exit(&cluster);
        SharedCluster { cluster, _watchdog: watchdog }
    });
    let name = format!("mailroom_{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    shared.cluster.database(&name)
}

/// Starts the watchdog of `cluster` (its stdin is the pipe's write end).
fn stop_at_exit(cluster: &PgCluster) -> Child {
    let dir = cluster.socket_dir();
    let pg_ctl = pg_bin_dir().join("pg_ctl");
    // PostgreSQL's programs refuse root: as root, pg_ctl runs as the cluster's owner.
    let as_owner = if unsafe { libc::geteuid() } == 0 { "runuser -u postgres -- " } else { "" };
    let script = format!("cat >/dev/null; {as_owner}\"$0\" -D \"$1/data\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$1\"");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg(&pg_ctl).arg(dir).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    unsafe {
        // Its own session: a terminal's SIGINT to the test's process group must not kill it.
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().expect("start the PostgreSQL watchdog (sh)")
}
