//! The data dir is private: everything mailroom creates there is 0600 (directories 0700), a data
//! dir that group or others can enter makes `serve` and the admin commands refuse to start, and
//! looser modes left by an earlier version are tightened at start.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file and directory under `dir` with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_dir = path.is_dir();
        out.push((path.clone(), mode(&path), is_dir));
        if is_dir {
            out.extend(modes(&path));
        }
    }
    out
}

/// `sqlite`: the store is the SQLite file in `dir` (not a PostgreSQL database elsewhere).
fn assert_private(dir: &Path, sqlite: bool) {
    assert_eq!(mode(dir), 0o700, "the data dir itself");
    let all = modes(dir);
    for (path, mode, is_dir) in &all {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:04o}, want {want:04o}", path.display());
    }
    let names: Vec<String> = all.iter().map(|(p, _, _)| p.strip_prefix(dir).unwrap().display().to_string()).collect();
    let store: &[&str] = if sqlite { &["mailroom.db", "mailroom.db-wal", "mailroom.db-shm"] } else { &[] };
    for expected in store.iter().chain(&["master.key", "certs", "certs/cert.pem", "certs/key.pem", "listeners.json"]) {
        assert!(names.iter().any(|n| n == expected), "{expected} not in the data dir: {names:?}");
    }
}

#[test]
fn everything_in_the_data_dir_is_private_to_mailroom() {
    let s = Server::start(Opts::default());
    let number = s.smtp_session().send_message("a@client.example.org", &["support@example.com"], b"Subject: x\r\n\r\nhello\r\n");
    assert!(number.starts_with("MR-"), "{number}");
    s.add_user("anna", "correct-horse-battery-staple", &[]);
    assert_private(&s.data_dir, !s.is_postgres());
}

#[test]
fn a_data_dir_others_can_enter_is_refused_by_serve_and_admin_commands() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("mailroom.toml");
    std::fs::write(&config, Opts::default().config_toml()).unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let args = |command: &[&str]| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = command.iter().map(Into::into).collect();
        args.extend(["--data-dir".into(), data.clone().into_os_string(), "--config".into(), config.clone().into_os_string()]);
        args
    };
    let refused = |command: &[&str], loose: u32| {
        let out = run_bin(&args(command), Duration::from_secs(30));
        assert!(!out.status.success(), "{command:?} ran with a data dir of mode {loose:04o}");
        assert!(
            out.stderr.contains(&data.display().to_string())
                && out.stderr.contains(&format!("{loose:04o}"))
                && out.stderr.contains("chmod 700"),
            "{command:?}: the error names the path, the mode and the fix: {}",
            out.stderr
        );
    };
    for loose in [0o755, 0o750, 0o701, 0o720] {
        chmod(&data, loose);
        refused(&["serve"], loose);
        refused(&["user", "list"], loose);
        assert!(std::fs::read_dir(&data).unwrap().next().is_none(), "nothing was created in a data dir of mode {loose:04o}");
    }
    // Private, the same dir works; opened up again later, it is refused again.
    chmod(&data, 0o700);
    let out = run_bin(&args(&["user", "list"]), Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    assert_private_files(&data);
    chmod(&data, 0o755);
    refused(&["message", "list"], 0o755);
    refused(&["user", "list"], 0o755);
    // Admin commands never create a data dir.
    let missing = root.path().join("missing");
    let out = run_bin(&["user".as_ref(), "list".as_ref(), "--data-dir".as_ref(), missing.as_os_str()], Duration::from_secs(30));
    assert!(!out.status.success() && !missing.exists(), "{}", out.stderr);
}

/// Files 0600 and directories 0700 below `dir` (whatever is there).
fn assert_private_files(dir: &Path) {
    let all = modes(dir);
    assert!(!all.is_empty());
    for (path, mode, is_dir) in all {
        assert_eq!(mode, if is_dir { 0o700 } else { 0o600 }, "{}", path.display());
    }
}

#[test]
fn a_missing_data_dir_is_created_private() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("mailroom.toml");
    std::fs::write(&config, Opts::default().config_toml()).unwrap();
    let data = root.path().join("new").join("data");
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !data.join("listeners.json").exists() {
        assert!(std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(), "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(data.parent().unwrap()), 0o700, "parents it creates are private too");
    assert_private(&data, true); // its own config: SQLite in both passes
    // (Only the modes matter here; the harness's tests cover shutdown.)
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn looser_modes_left_by_an_earlier_version_are_tightened_at_start() {
    let mut s = Server::start(Opts::default());
    s.terminate_and_wait();
    // Under PostgreSQL there is no database file in the data dir: the certificates still count.
    let db = (!s.sqlite_only("the database file's mode (the certificates' are checked)")).then(|| s.data_dir.join("mailroom.db"));
    if let Some(db) = &db {
        chmod(db, 0o644);
    }
    chmod(&s.data_dir.join("certs"), 0o755);
    chmod(&s.data_dir.join("certs/cert.pem"), 0o644);
    s.restart();
    if let Some(db) = &db {
        assert_eq!(mode(db), 0o600);
    }
    assert_eq!(mode(&s.data_dir.join("certs")), 0o700);
    assert_eq!(mode(&s.data_dir.join("certs/cert.pem")), 0o600);
    assert_private(&s.data_dir, db.is_some());
}
