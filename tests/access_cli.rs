//! The security officer's command line: `mailroom user …`, `mailroom role …`, `mailroom audit list`,
//! against the same data dir a running server uses. Every change lands in the audit log, and the
//! chain stays intact.

mod common;

use common::*;

const PW: &str = "correct horse battery";

fn ok(out: CliOutput, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", out.stderr);
    out.stdout_str()
}

fn fails(out: CliOutput, what: &str, reason: &str) {
    assert!(!out.status.success(), "{what} should fail; stdout: {}", out.stdout_str());
    assert!(out.stderr.contains(reason), "{what}: expected {reason:?} in {:?}", out.stderr);
}

fn users(s: &Server) -> Vec<serde_json::Value> {
    ok(s.cli(&["user", "list", "--json"]), "user list").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn role(s: &Server, name: &str) -> serde_json::Value {
    ok(s.cli(&["role", "list", "--json"]), "role list")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no role {name}"))
}

#[test]
fn users_and_roles_are_managed_and_audited() {
    let s = Server::start(Opts::default());

    // Roles: add, grant on a queue, list.
    ok(s.cli(&["role", "add", "support-agent", "--description", "first line"]), "role add");
    fails(s.cli(&["role", "add", "support-agent"]), "duplicate role", "already exists");
    fails(s.cli(&["role", "add", "bad name"]), "bad role name", "must be 1 to 64 characters");
    ok(s.cli(&["role", "grant", "support-agent", "--queue", "support", "--permission", "read", "--permission", "act"]), "grant");
    fails(
        s.cli(&["role", "grant", "support-agent", "--queue", "nope", "--permission", "read"]),
        "unknown queue",
        "no queue is named \"nope\"",
    );
    fails(
        s.cli(&["role", "grant", "support-agent", "--queue", "sales", "--permission", "write"]),
        "unknown permission",
        "unknown permission \"write\"",
    );
    fails(
        s.cli(&["role", "grant", "security-officer", "--queue", "sales", "--permission", "read"]),
        "officer + queue",
        "separation of duties",
    );
    fails(s.cli(&["role", "grant", "ghost", "--queue", "sales", "--permission", "read"]), "unknown role", "no role is named \"ghost\"");
    assert_eq!(role(&s, "support-agent")["grants"], serde_json::json!({"support": ["read", "act"]}));

    // Users: the password comes from stdin, never from argv.
    s.add_user("anna", PW, &["support-agent"]);
    fails(s.cli(&["user", "add", "bert", "--password", "correct horse battery"]), "password in argv", "unexpected argument '--password'");
    fails(s.cli_stdin(&["user", "add", "bert", "--password-stdin"], b"short\n"), "weak password", "at least 12 characters");
    fails(s.cli_stdin(&["user", "add", "anna", "--password-stdin"], format!("{PW}\n").as_bytes()), "duplicate user", "already exists");
    fails(
        s.cli_stdin(&["user", "add", "bert", "--role", "ghost", "--password-stdin"], format!("{PW}\n").as_bytes()),
        "unknown role",
        "no role is named",
    );
    // Without --password-stdin, `user add` issues an enrolment code (see below); the user's own
    // prompt needs a terminal too.
    fails(s.cli(&["user", "enrol", "anna"]), "no terminal", "--stdin");
    s.add_user("olga", PW, &["security-officer"]);
    ok(s.cli(&["role", "grant", "support-agent", "--user", "olga"]), "role to user");
    let listed = users(&s);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "anna");
    assert_eq!(listed[0]["roles"], serde_json::json!(["support-agent"]));
    assert_eq!(listed[1]["roles"], serde_json::json!(["security-officer", "support-agent"]));
    assert_eq!(role(&s, "support-agent")["members"], serde_json::json!(["anna", "olga"]));

    // The hash in the database is argon2id; the password appears nowhere in clear.
    for (file, bytes) in s.store_contents() {
        assert!(find(&bytes, PW.as_bytes()).is_none(), "password in clear in {file}");
    }
    let hash = s.sql("SELECT password_hash FROM users WHERE name = 'anna'");
    assert!(hash.starts_with("$argon2id$"), "{hash:?}");

    // Lock, unlock, passwd, revoke, remove.
    ok(s.cli(&["user", "lock", "anna"]), "lock");
    assert_eq!(users(&s)[0]["locked"], true);
    ok(s.cli(&["user", "unlock", "anna"]), "unlock");
    assert_eq!(users(&s)[0]["locked"], false);
    ok(s.cli_stdin(&["user", "passwd", "anna", "--password-stdin"], b"a brand new passphrase\n"), "passwd");
    fails(s.cli(&["user", "lock", "ghost"]), "unknown user", "no user is named \"ghost\"");
    ok(s.cli(&["role", "revoke", "support-agent", "--user", "olga"]), "role from user");
    ok(s.cli(&["role", "revoke", "support-agent", "--queue", "support", "--permission", "act"]), "revoke act");
    assert_eq!(role(&s, "support-agent")["grants"], serde_json::json!({"support": ["read"]}));
    ok(s.cli(&["role", "revoke", "support-agent", "--queue", "support"]), "revoke all");
    assert_eq!(role(&s, "support-agent")["grants"], serde_json::json!({}));
    ok(s.cli(&["user", "remove", "anna"]), "remove");
    assert_eq!(users(&s).len(), 1);

    // Every change is in the audit log, in order, and the chain is intact.
    let audit = ok(s.cli(&["audit", "list", "--json"]), "audit list");
    let actions: Vec<String> =
        audit.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_string()).collect();
    let expected = [
        "role.add",
        "role.grant",
        "user.add",
        "user.add",
        "role.assign",
        "user.lock",
        "user.unlock",
        "user.passwd",
        "role.unassign",
        "role.revoke",
        "role.revoke",
        "user.remove",
    ];
    assert_eq!(actions, expected, "{audit}");
    assert!(!audit.contains(PW) && !audit.contains("brand new"), "no password in the audit log");
    let only_locks = ok(s.cli(&["audit", "list", "--action", "user.lock", "--json"]), "audit list --action");
    assert_eq!(only_locks.lines().count(), 1);
    assert!(only_locks.contains("\"object\":\"user:anna\""), "{only_locks}");
    assert!(ok(s.cli(&["audit", "verify"]), "verify").starts_with("audit chain intact: 12 entries"));
}

#[test]
fn roles_from_the_config_are_created_once_and_then_left_to_the_officer() {
    let extra = "[[roles]]\nname = \"support-agent\"\ngrants = { support = [\"read\", \"act\"], \"*\" = [\"read\"] }\n";
    let mut s = Server::start(Opts { extra_toml: extra.into(), ..Default::default() });
    assert_eq!(role(&s, "support-agent")["grants"], serde_json::json!({"*": ["read"], "support": ["read", "act"]}));
    ok(s.cli(&["role", "revoke", "support-agent", "--queue", "*"]), "revoke");
    assert!(s.terminate_and_wait().success());
    s.restart();
    assert_eq!(
        role(&s, "support-agent")["grants"],
        serde_json::json!({"support": ["read", "act"]}),
        "a restart does not undo the officer's change"
    );
}

#[test]
fn bad_roles_in_the_config_name_file_line_and_key() {
    for (roles, key, reason) in [
        ("[[roles]]\nname = \"x\"\ngrants = { nope = [\"read\"] }\n", "roles[0].grants.nope", "no queue is named \"nope\""),
        ("[[roles]]\nname = \"x\"\ngrants = { support = [\"write\"] }\n", "roles[0].grants.support", "unknown permission \"write\""),
        ("[[roles]]\nname = \"security-officer\"\ngrants = { support = [\"read\"] }\n", "roles[0].grants.support", "separation of duties"),
        ("[[roles]]\nname = \"a b\"\n", "roles[0].name", "must be 1 to 64 characters"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("m.toml");
        std::fs::write(&config, Opts { extra_toml: roles.into(), ..Default::default() }.config_toml()).unwrap();
        let out = run_bin(&["config", "check", "--config", config.to_str().unwrap()], std::time::Duration::from_secs(20));
        assert!(!out.status.success(), "{roles}");
        assert!(
            out.stderr.contains("m.toml:") && out.stderr.contains(&format!(": {key}: ")) && out.stderr.contains(reason),
            "{roles}: {}",
            out.stderr
        );
    }
    // Plain HTTP on a non-loopback address is refused.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("m.toml");
    std::fs::write(
        &config,
        Opts::default().config_toml().replace("[http]\nlisten = [\"127.0.0.1:0\"]", "[http]\nlisten = [\"0.0.0.0:8080\"]"),
    )
    .unwrap();
    let out = run_bin(&["config", "check", "--config", config.to_str().unwrap()], std::time::Duration::from_secs(20));
    assert!(!out.status.success() && out.stderr.contains("http.listen: 0.0.0.0:8080 is not a loopback address"), "{}", out.stderr);
}

/// The code line printed by `user add` / `user passwd` without --password-stdin.
fn code_of(out: CliOutput) -> String {
    let text = ok(out, "code");
    text.lines().find_map(|l| l.strip_prefix("enrolment code: ")).unwrap_or_else(|| panic!("no code in {text:?}")).to_string()
}

/// A bearer-token request through curl: (status, JSON body).
fn http(s: &Server, token: Option<&str>, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.arg(format!("{}{path}", s.http_url())).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[test]
fn the_host_issues_enrolment_codes_and_decides_pending_changes() {
    let extra = "[[roles]]\nname = \"support-agent\"\ngrants = { support = [\"read\", \"act\"] }\n\n[[roles]]\nname = \"supervisor\"\ngrants = { \"*\" = [\"read\", \"supervise\"] }\n";
    let s = Server::start(Opts { extra_toml: extra.into(), ..Default::default() });

    // Without --password-stdin: no password at all, a one-time code instead.
    let code = code_of(s.cli(&["user", "add", "bert", "--role", "support-agent"]));
    assert_eq!(users(&s)[0]["enrolment_pending"], true);
    fails(
        s.cli_stdin(&["user", "enrol", "bert", "--stdin"], b"ABCDE-FGHJK-MNPQR-STVWX-YZ012\nbert's passphrase\n"),
        "wrong code",
        "invalid user name or enrolment code",
    );
    fails(s.cli_stdin(&["user", "enrol", "bert", "--stdin"], format!("{code}\nshort\n").as_bytes()), "weak", "at least 12 characters");
    ok(s.cli_stdin(&["user", "enrol", "bert", "--stdin"], format!("{code}\nbert's passphrase\n").as_bytes()), "enrol");
    assert_eq!(users(&s)[0]["enrolment_pending"], false);
    fails(s.cli_stdin(&["user", "enrol", "bert", "--stdin"], format!("{code}\nbert's passphrase\n").as_bytes()), "reused", "invalid");
    assert_eq!(http(&s, None, "/api/login", serde_json::json!({ "user": "bert", "password": "bert's passphrase" })).0, 200);
    // `user passwd` without --password-stdin: a reset (the old password stops working).
    let again = code_of(s.cli(&["user", "passwd", "bert"]));
    assert_ne!(again, code);
    assert_eq!(http(&s, None, "/api/login", serde_json::json!({ "user": "bert", "password": "bert's passphrase" })).0, 401);

    // An officer's requests over HTTP wait; the host lists and decides them.
    s.add_user("olga", PW, &["security-officer"]);
    let (status, login) = http(&s, None, "/api/login", serde_json::json!({ "user": "olga", "password": PW, "mode": "bearer" }));
    assert_eq!(status, 200);
    let olga = login["token"].as_str().unwrap();
    let (status, first) = http(&s, Some(olga), "/api/admin/roles/supervisor/members", serde_json::json!({ "user": "bert" }));
    assert_eq!(status, 202, "{first}");
    let (status, second) =
        http(&s, Some(olga), "/api/admin/roles/support-agent/grants", serde_json::json!({ "queue": "sales", "permissions": ["read"] }));
    assert_eq!(status, 202, "{second}");
    let (first, second) = (first["change"]["id"].to_string(), second["change"]["id"].to_string());
    let listed = ok(s.cli(&["change", "list"]), "change list");
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("role=supervisor") && listed.contains("user=bert") && listed.contains("requested by olga"), "{listed}");
    let json = ok(s.cli(&["change", "list", "--json"]), "change list --json");
    assert!(json.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"] == "pending"));
    assert!(ok(s.cli(&["change", "approve", &first]), "approve").contains("approved by cli:"));
    assert!(role(&s, "supervisor")["members"] == serde_json::json!(["bert"]), "applied");
    ok(s.cli(&["change", "reject", &second]), "reject");
    assert_eq!(role(&s, "support-agent")["grants"], serde_json::json!({ "support": ["read", "act"] }), "never applied");
    fails(s.cli(&["change", "approve", &second]), "decided", "already rejected");
    fails(s.cli(&["change", "approve", "4242"]), "unknown", "no change has the id 4242");
    assert_eq!(ok(s.cli(&["change", "list"]), "nothing pending").lines().count(), 0);
    assert_eq!(ok(s.cli(&["change", "list", "--status", "all"]), "all").lines().count(), 2);
    let audit = ok(s.cli(&["audit", "list", "--action", "change.approved", "--json"]), "audit");
    let entry: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert!(entry["actor"].as_str().unwrap().starts_with("cli:"));
    assert!(entry["detail"].as_str().unwrap().contains("requested_by=user:olga"), "{entry}");
    // The codes are not in the database file.
    for (file, db) in s.store_contents() {
        assert!(find(&db, code.as_bytes()).is_none() && find(&db, again.as_bytes()).is_none(), "a code in clear in {file}");
    }
}
