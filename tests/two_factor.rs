//! Two-factor login over real sockets: the API through `curl`, the web page through the curl
//! browser (tests/common/page.rs). Every TOTP code is computed by tests/py/totp.py, a Python
//! implementation of RFC 6238 that shares no code with the server.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";

fn start(access: &str) -> Server {
    let extra = format!(
        "[access]\nfailure_delay = \"10ms\"\nmax_failure_delay = \"20ms\"\n{access}\n[[roles]]\nname = \"agent\"\ngrants = {{ support = [\"read\", \"act\"] }}\n"
    );
    Server::start(Opts { extra_toml: extra, ..Default::default() })
}

/// The TOTP code of `secret` for the time step `steps` away from now (Python's hmac).
fn code(secret: &str, steps: i64) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/totp.py");
    let out = Command::new("python3").arg(script).arg(secret).arg(steps.to_string()).output().expect("run python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A code that is none of the valid ones (any step within the window).
fn wrong_code(secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|s| code(secret, s)).collect();
    (0..10).map(|d| format!("{d}{d}{d}{d}{d}{d}")).find(|c| !valid.contains(c)).unwrap()
}

/// One JSON request through curl: (status, body).
fn call(server: &Server, method: &str, path: &str, bearer: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if let Some(token) = bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
    }
    let out = cmd.arg(format!("{}{path}", server.http_url())).output().expect("run curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap_or(Value::String(body.into())) })
}

fn login(server: &Server, user: &str, code: Option<&str>) -> (u16, Value) {
    let mut body = json!({ "user": user, "password": PW, "mode": "bearer" });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    call(server, "POST", "/api/login", None, Some(body))
}

fn token(server: &Server, user: &str, code: Option<&str>) -> String {
    let (status, v) = login(server, user, code);
    assert_eq!(status, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// Enrols `user` through the API; returns (bearer token, secret, recovery codes).
fn enrol(server: &Server, user: &str) -> (String, String, Vec<String>) {
    let t = token(server, user, None);
    let (status, v) = call(server, "POST", "/api/me/totp", Some(&t), None);
    assert_eq!(status, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let (status, v) = call(server, "POST", "/api/me/totp/confirm", Some(&t), Some(json!({ "code": code(&secret, 0) })));
    assert_eq!(status, 200, "{v}");
    let codes = v["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    (t, secret, codes)
}

fn audit(server: &Server) -> Vec<Value> {
    let out = server.cli(&["audit", "list", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    out.stdout_str().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn audited(entries: &[Value], action: &str, detail_part: &str) -> bool {
    entries.iter().any(|e| e["action"] == action && e["detail"].as_str().unwrap_or("").contains(detail_part))
}

#[test]
fn api_enrolment_login_with_code_replay_and_recovery_codes() {
    let server = start("max_failures = 5");
    server.add_user("anna", PW, &["agent"]);
    let t = token(&server, "anna", None);

    let (status, v) = call(&server, "GET", "/api/me/totp", Some(&t), None);
    assert_eq!((status, &v), (200, &json!({ "enabled": false, "pending": false, "recovery_codes_left": 0 })));
    let (status, v) = call(&server, "POST", "/api/me/totp", Some(&t), None);
    assert_eq!(status, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/mailroom:anna?") && uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("issuer=mailroom"), "{uri}");
    assert_eq!((&v["algorithm"], &v["digits"], &v["period"]), (&json!("SHA1"), &json!(6), &json!(30)), "the apps' defaults: {v}");
    // Not yet on: logins without a code still work.
    assert_eq!(call(&server, "GET", "/api/me/totp", Some(&t), None).1["pending"], true);
    token(&server, "anna", None);

    let (status, v) = call(&server, "POST", "/api/me/totp/confirm", Some(&t), Some(json!({ "code": wrong_code(&secret) })));
    assert_eq!((status, v["error"].as_str()), (422, Some("invalid_code")), "{v}");
    let (status, v) = call(&server, "POST", "/api/me/totp/confirm", Some(&t), Some(json!({ "code": code(&secret, 0) })));
    assert_eq!(status, 200, "{v}");
    let recovery: Vec<String> = v["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(
        call(&server, "GET", "/api/me/totp", Some(&t), None).1,
        json!({ "enabled": true, "pending": false, "recovery_codes_left": 10 })
    );
    let (status, v) = call(&server, "POST", "/api/me/totp", Some(&t), None);
    assert_eq!((status, v["error"].as_str()), (409, Some("conflict")), "no second secret while on: {v}");

    // The password alone is not enough any more; a wrong code is refused.
    let (status, v) = login(&server, "anna", None);
    assert_eq!((status, v["error"].as_str()), (401, Some("code_required")), "{v}");
    let (status, v) = login(&server, "anna", Some(&wrong_code(&secret)));
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_code")), "{v}");
    // The wrong password with the right code is still the wrong password.
    let (status, v) = call(
        &server,
        "POST",
        "/api/login",
        None,
        Some(json!({ "user": "anna", "password": "not-the-password", "code": code(&secret, 1) })),
    );
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_credentials")), "{v}");

    // The next step's code (the confirmation used this one's) logs in, once.
    let next = code(&secret, 1);
    let t2 = token(&server, "anna", Some(&next));
    assert_eq!(call(&server, "GET", "/api/me", Some(&t2), None).1["user"], "anna");
    let (status, v) = login(&server, "anna", Some(&next));
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_code")), "a replayed code: {v}");
    let (status, _) = login(&server, "anna", Some(&code(&secret, 0)));
    assert_eq!(status, 401, "an older step than the last accepted one");

    // A recovery code works once, typed in any case.
    token(&server, "anna", Some(&recovery[0].to_uppercase()));
    let (status, v) = login(&server, "anna", Some(&recovery[0]));
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_code")), "a used recovery code: {v}");
    assert_eq!(call(&server, "GET", "/api/me/totp", Some(&t), None).1["recovery_codes_left"], 9);

    // Disabling takes a code.
    let (status, v) = call(&server, "POST", "/api/me/totp/disable", Some(&t), Some(json!({ "code": wrong_code(&secret) })));
    assert_eq!((status, v["error"].as_str()), (422, Some("invalid_code")), "{v}");
    let (status, v) = call(&server, "POST", "/api/me/totp/disable", Some(&t), Some(json!({ "code": recovery[1] })));
    assert_eq!(status, 204, "{v}");
    token(&server, "anna", None);

    let entries = audit(&server);
    for (action, detail) in [
        ("totp.enrol", ""),
        ("totp.confirm-failed", ""),
        ("totp.confirm", "recovery-codes=10"),
        ("login.failed", "reason=code-required"),
        ("login.failed", "reason=wrong-code"),
        ("login", "factor=totp"),
        ("login", "factor=recovery-code"),
        ("totp.disable", "factor=recovery-code"),
    ] {
        assert!(audited(&entries, action, detail), "no {action} with {detail:?} in {entries:#?}");
    }
    let log = server.log_text();
    assert!(!log.contains(&secret) && !log.contains(&recovery[2]), "no secret or recovery code in the log");
    assert!(!entries.iter().any(|e| e.to_string().contains(&secret)), "no secret in the audit log");
}

#[test]
fn wrong_codes_are_throttled_like_passwords() {
    let server = start("max_failures = 3\nlockout = \"60s\"");
    server.add_user("bert", PW, &["agent"]);
    let (_, secret, recovery) = enrol(&server, "bert");
    for _ in 0..3 {
        let (status, v) = login(&server, "bert", Some(&wrong_code(&secret)));
        assert_eq!((status, v["error"].as_str()), (401, Some("invalid_code")), "{v}");
    }
    // Locked out now: even the right code and a recovery code are refused unchecked.
    let (status, v) = login(&server, "bert", Some(&code(&secret, 1)));
    assert_eq!((status, v["error"].as_str()), (429, Some("throttled")), "{v}");
    let (status, _) = login(&server, "bert", Some(&recovery[0]));
    assert_eq!(status, 429);
    // Password steps without a code do not reset the count either.
    let (status, _) = login(&server, "bert", None);
    assert_eq!(status, 429);
    assert!(audited(&audit(&server), "user.locked-out", "after 3 failed logins"));
}

#[test]
fn the_web_page_enrols_with_a_qr_code_and_asks_for_the_code_after_the_password() {
    let server = start("max_failures = 5");
    server.add_user("cleo", PW, &["agent"]);
    let (browser, _) = CurlBrowser::logged_in(&server, "cleo", PW);

    let settings = browser.get("/settings");
    assert!(settings.body.contains("data-totp=\"off\""), "{}", settings.body);
    let r = browser.submit("/settings", "/settings/totp", &[]);
    assert_eq!((r.status, r.location()), (303, Some("/settings")), "{r:?}");
    let settings = browser.get("/settings");
    settings.assert_page_headers("settings with the QR code");
    let qr = settings.body.split("data-totp-qr>").nth(1).expect("a QR code").split("</div>").next().unwrap();
    assert!(qr.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && qr.contains("<path"), "inline SVG: {qr}");
    assert!(!settings.body.contains("<?xml"), "no XML declaration inside the page");
    let secret = settings.body.split("data-totp-secret>").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert_eq!(secret.len(), 32, "{secret}");

    let r = browser.submit("/settings", "/settings/totp/confirm", &[("code", &wrong_code(&secret))]);
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.body.contains("role=\"alert\">The code is wrong, expired or was used before."), "{}", r.body);
    let r = browser.submit("/settings", "/settings/totp/confirm", &[("code", &code(&secret, 0))]);
    assert_eq!(r.status, 200, "{r:?}");
    let listed = r.body.split("data-recovery-codes>").nth(1).unwrap().split("</ul>").next().unwrap();
    assert_eq!(listed.matches("<li><code>").count(), 10, "{listed}");
    let codes: Vec<String> = listed.split("<code>").skip(1).map(|c| c.split('<').next().unwrap().to_string()).collect();
    let recovery = codes[0].clone();
    assert!(browser.get("/settings").body.contains("Unused recovery codes: 10."), "shown once, counted after");
    assert!(!browser.get("/settings").body.contains(&recovery), "the codes are not shown again");

    // A new login: the password leads to the code step, not in.
    let fresh = CurlBrowser::new(&server);
    let step = fresh.log_in("cleo", PW);
    assert_eq!(step.status, 200, "{step:?}");
    assert!(step.body.contains("action=\"/login/code\""), "{}", step.body);
    assert!(fresh.session_token().is_none(), "no session before the code");
    let pending = step.hidden("pending").expect("the pending token");
    let r = fresh.post("/login/code", &[("pending", &pending), ("code", &wrong_code(&secret))]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("The code is wrong"), "{}", r.body);
    // A forged token (another user's name under the same MAC) leads back to the login form.
    let forged = {
        let mut parts: Vec<String> = pending.split('.').map(str::to_string).collect();
        parts[1] = "YW5uYQ".into(); // "anna"
        parts.join(".")
    };
    // Computed once: a later call could fall into the next time step and give a fresh code.
    let next = code(&secret, 1);
    let r = fresh.post("/login/code", &[("pending", &forged), ("code", &next)]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("action=\"/login\""), "{}", r.body);
    let r = fresh.post("/login/code", &[("pending", &pending), ("code", &next)]);
    assert_eq!((r.status, r.location()), (303, Some("/")), "{r:?}");
    assert_eq!(fresh.get("/").status, 200);
    // The same code again, on another browser: refused.
    let other = CurlBrowser::new(&server);
    let pending = other.log_in("cleo", PW).hidden("pending").unwrap();
    assert_eq!(other.post("/login/code", &[("pending", &pending), ("code", &next)]).status, 401, "replay");
    // A recovery code works instead.
    let r = other.post("/login/code", &[("pending", &pending), ("code", &recovery)]);
    assert_eq!((r.status, r.location()), (303, Some("/")), "{r:?}");

    // Switched off with a (recovery) code from the settings page.
    let r = other.submit("/settings", "/settings/totp/disable", &[("code", &codes[1])]);
    assert_eq!((r.status, r.location()), (303, Some("/settings")), "{r:?}");
    assert!(other.get("/settings").body.contains("data-totp=\"off\""));
    let (status, _) = login(&server, "cleo", None);
    assert_eq!(status, 200, "the password alone again");
}

#[test]
fn a_role_can_require_two_factor_login_and_officers_always_do() {
    let extra = "[access]\nfailure_delay = \"10ms\"\n\n[[roles]]\nname = \"guarded\"\ngrants = { support = [\"read\"] }\nrequire_two_factor = true\n";
    let server = Server::start(Opts { extra_toml: extra.into(), officers_two_factor: true, ..Default::default() });
    server.add_user("dora", PW, &["guarded"]);
    server.add_user("olga", PW, &["security-officer"]);

    // The password opens a session, but only the enrolment is open with it.
    let t = token(&server, "dora", None);
    let (status, v) = call(&server, "GET", "/api/queues", Some(&t), None);
    assert_eq!((status, v["error"].as_str()), (403, Some("two_factor_required")), "{v}");
    assert_eq!(call(&server, "GET", "/api/me", Some(&t), None).0, 200);
    let (status, v) = call(&server, "POST", "/api/me/totp", Some(&t), None);
    assert_eq!(status, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let (status, v) = call(&server, "POST", "/api/me/totp/confirm", Some(&t), Some(json!({ "code": code(&secret, 0) })));
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(&server, "GET", "/api/queues", Some(&t), None);
    assert_eq!(status, 200, "enrolled: the same session works now: {v}");
    assert_eq!(login(&server, "dora", None).1["error"], "code_required");

    // An officer, without any role saying so.
    let t = token(&server, "olga", None);
    let (status, v) = call(&server, "GET", "/api/admin/users", Some(&t), None);
    assert_eq!((status, v["error"].as_str()), (403, Some("two_factor_required")), "{v}");
    let (browser, _) = {
        let browser = CurlBrowser::new(&server);
        let r = browser.log_in("olga", PW);
        assert_eq!((r.status, r.location()), (303, Some("/")), "{r:?}");
        (browser, ())
    };
    for path in ["/", "/admin/users", "/admin/audit"] {
        let r = browser.get(path);
        assert_eq!((r.status, r.location()), (303, Some("/settings#two-factor")), "{path}: {r:?}");
    }
    let settings = browser.get("/settings");
    assert_eq!(settings.status, 200);
    assert!(settings.body.contains("data-totp-required") && settings.body.contains("data-totp=\"off\""), "{}", settings.body);
}

/// Whether `password` opens an IMAP session for `user` (TLS, Python's imaplib), by LOGIN or by
/// AUTHENTICATE PLAIN.
fn imap_login(server: &Server, user: &str, password: &str, plain: bool) -> bool {
    let script = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conn = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx)
user, password = sys.argv[2], sys.argv[3]
try:
    if sys.argv[4] == "plain":
        conn.authenticate("PLAIN", lambda _: ("\0" + user + "\0" + password).encode())
    else:
        conn.login(user, password)
except imaplib.IMAP4.error:
    print("refused"); sys.exit(0)
typ, _ = conn.select("support")
print("in" if typ == "OK" else "refused")
conn.logout()
"#;
    let port = server.imaps_addr().port().to_string();
    let mode = if plain { "plain" } else { "login" };
    let out = Command::new("python3").args(["-c", script, &port, user, password, mode]).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() == "in"
}

#[test]
fn imap_takes_per_device_app_passwords_from_users_with_two_factor_login() {
    let server = start("max_failures = 20");
    server.add_user("finn", PW, &["agent"]);
    assert!(imap_login(&server, "finn", PW, false), "without two-factor login the password opens IMAP");
    let (t, _secret, recovery) = enrol(&server, "finn");
    assert!(!imap_login(&server, "finn", PW, false) && !imap_login(&server, "finn", PW, true), "not any more");

    let (status, v) = call(&server, "POST", "/api/me/app-passwords", Some(&t), Some(json!({ "device": "Thunderbird laptop" })));
    assert_eq!(status, 201, "{v}");
    let laptop = v["password"].as_str().unwrap().to_string();
    let laptop_id = v["id"].as_i64().unwrap();
    let (status, v) = call(&server, "POST", "/api/me/app-passwords", Some(&t), Some(json!({ "device": "Thunderbird laptop" })));
    assert_eq!((status, v["error"].as_str()), (409, Some("conflict")), "one per device name: {v}");
    let (status, _) = call(&server, "POST", "/api/me/app-passwords", Some(&t), Some(json!({ "device": "bad\nname" })));
    assert_eq!(status, 422);

    assert!(imap_login(&server, "finn", &laptop, false), "LOGIN with the app password");
    assert!(imap_login(&server, "finn", &laptop, true), "AUTHENTICATE PLAIN with it");
    assert!(!imap_login(&server, "finn", "aaaa-bbbb-cccc-dddd-eeee", false), "a wrong one");
    let (status, v) = login(&server, "finn", None);
    assert_eq!((status, v["error"].as_str()), (401, Some("code_required")), "{v}");
    let (status, v) = call(&server, "POST", "/api/login", None, Some(json!({ "user": "finn", "password": laptop, "mode": "bearer" })));
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_credentials")), "an app password opens no API session: {v}");

    let (_, v) = call(&server, "GET", "/api/me/app-passwords", Some(&t), None);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["device"], "Thunderbird laptop");
    assert!(items[0]["last_used_at"].is_string() && items[0].get("password").is_none(), "{v}");

    // The web page: log in with password and a recovery code, create one, use it, revoke it.
    let browser = CurlBrowser::new(&server);
    let pending = browser.log_in("finn", PW).hidden("pending").unwrap();
    let r = browser.post("/login/code", &[("pending", &pending), ("code", &recovery[0])]);
    assert_eq!(r.status, 303, "{r:?}");
    let r = browser.submit("/settings", "/settings/app-passwords", &[("device", "Phone")]);
    assert_eq!(r.status, 200, "{r:?}");
    let phone = r.body.split("data-app-password>").nth(1).expect("the new password").split('<').next().unwrap().to_string();
    assert_eq!(phone.len(), 24, "{phone}");
    assert!(!browser.get("/settings").body.contains(&phone), "shown once");
    assert!(browser.get("/settings").body.contains("data-app-device=\"Phone\""));
    assert!(imap_login(&server, "finn", &phone, false));

    // Revoked ones fail; the other goes on working.
    let r = browser.submit("/settings", &format!("/settings/app-passwords/{laptop_id}/revoke"), &[]);
    assert_eq!((r.status, r.location()), (303, Some("/settings")), "{r:?}");
    assert!(!imap_login(&server, "finn", &laptop, false), "revoked");
    assert!(imap_login(&server, "finn", &phone, true));
    let (_, v) = call(&server, "GET", "/api/me/app-passwords", Some(&t), None);
    let phone_id = v["items"][0]["id"].as_i64().unwrap();
    assert_eq!(call(&server, "DELETE", &format!("/api/me/app-passwords/{phone_id}"), Some(&t), None).0, 204);
    assert_eq!(call(&server, "DELETE", &format!("/api/me/app-passwords/{phone_id}"), Some(&t), None).0, 404);
    assert!(!imap_login(&server, "finn", &phone, false), "revoked through the API");

    let entries = audit(&server);
    for (action, detail) in [
        ("app-password.create", "device=Thunderbird laptop"),
        ("app-password.create", "device=Phone"),
        ("login", "via=imap"),
        ("login", "factor=app-password device=Thunderbird laptop"),
        ("login", "factor=app-password device=Phone"),
        ("app-password.revoke", "device=Thunderbird laptop"),
        ("app-password.revoke", "device=Phone"),
        ("login.failed", "via=imap"),
    ] {
        assert!(audited(&entries, action, detail), "no {action} with {detail:?} in {entries:#?}");
    }
    assert!(!server.log_text().contains(&laptop), "no app password in the log");
}

#[test]
fn an_officer_resets_a_lost_second_factor_and_the_user_enrols_again() {
    let extra = "[access]\nfailure_delay = \"10ms\"\ngrant_approval = \"none\"\n\n[[roles]]\nname = \"guarded\"\ngrants = { support = [\"read\"] }\nrequire_two_factor = true\n\n[[roles]]\nname = \"agent\"\ngrants = { support = [\"read\", \"act\"] }\n";
    let server = Server::start(Opts { extra_toml: extra.into(), officers_two_factor: true, ..Default::default() });
    for (user, role) in [("dora", "guarded"), ("olga", "security-officer"), ("oscar", "security-officer"), ("anna", "agent")] {
        server.add_user(user, PW, &[role]);
    }
    let (_, olga_secret, olga_recovery) = enrol(&server, "olga");
    let olga = token(&server, "olga", Some(&code(&olga_secret, 1)));
    let (dora_old, _, dora_recovery) = enrol(&server, "dora");
    let (status, v) = call(&server, "POST", "/api/me/app-passwords", Some(&dora_old), Some(json!({ "device": "lost phone" })));
    assert_eq!(status, 201, "{v}");
    let app_password = v["password"].as_str().unwrap().to_string();
    assert!(imap_login(&server, "dora", &app_password, false));
    let reset = |by: &str, user: &str| call(&server, "POST", &format!("/api/admin/users/{user}/two-factor/reset"), Some(by), None);

    // Nobody else may, an officer not on his own account, and a wrong name changes nothing.
    let anna = token(&server, "anna", None);
    let (status, v) = reset(&anna, "dora");
    assert_eq!((status, v["error"].as_str()), (403, Some("forbidden")), "an agent: {v}");
    let (status, v) = reset(&olga, "olga");
    assert_eq!((status, v["error"].as_str()), (403, Some("forbidden")), "his own: {v}");
    assert_eq!(reset(&olga, "nobody").0, 404);
    let (status, v) = reset(&olga, "anna");
    assert_eq!((status, v["error"].as_str()), (409, Some("conflict")), "anna has no second factor: {v}");
    assert_eq!(call(&server, "GET", "/api/queues", Some(&dora_old), None).0, 200, "dora untouched so far");

    let (status, v) = reset(&olga, "dora");
    assert_eq!((status, &v), (200, &json!({ "name": "dora", "totp": true, "app_passwords_revoked": 1 })));
    assert_eq!(call(&server, "GET", "/api/queues", Some(&dora_old), None).0, 401, "her sessions ended");
    assert!(!imap_login(&server, "dora", &app_password, false), "the lost phone's app password is revoked");
    let (status, v) = login(&server, "dora", Some(&dora_recovery[0]));
    assert_eq!(status, 200, "the password alone logs in again (a code is ignored, none is needed): {v}");
    let t = token(&server, "dora", None);
    let (status, v) = call(&server, "GET", "/api/queues", Some(&t), None);
    assert_eq!((status, v["error"].as_str()), (403, Some("two_factor_required")), "her role still requires it: {v}");
    let (_, v) = call(&server, "GET", "/api/me/totp", Some(&t), None);
    assert_eq!(v, json!({ "enabled": false, "pending": false, "recovery_codes_left": 0 }));
    let (status, v) = call(&server, "POST", "/api/me/totp", Some(&t), None);
    assert_eq!(status, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert_eq!(call(&server, "POST", "/api/me/totp/confirm", Some(&t), Some(json!({ "code": code(&secret, 0) }))).0, 200);
    assert_eq!(call(&server, "GET", "/api/queues", Some(&t), None).0, 200, "a new device, and she works again");
    assert_eq!(reset(&olga, "anna").0, 409, "still nothing to reset for anna");

    // The officer's users page has the same button.
    let browser = CurlBrowser::new(&server);
    let pending = browser.log_in("olga", PW).hidden("pending").unwrap();
    assert_eq!(browser.post("/login/code", &[("pending", &pending), ("code", &olga_recovery[0])]).status, 303);
    let users = browser.get("/admin/users");
    assert!(users.body.contains("action=\"/admin/users/dora/two-factor/reset\""), "{}", users.body);
    let r = browser.submit("/admin/users", "/admin/users/dora/two-factor/reset", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("data-outcome=\"done\"") && r.body.contains("dora&#39;s second factor is removed (0 app passwords revoked"),
        "{}",
        r.body
    );
    assert_eq!(call(&server, "GET", "/api/queues", Some(&t), None).0, 401, "her new session ended too");
    let r = browser.submit("/admin/users", "/admin/users/olga/two-factor/reset", &[]);
    assert_eq!(r.status, 403, "not his own, on the page either: {r:?}");

    // The host resets an officer's, who then logs in with his password alone.
    let (_, _, _) = enrol(&server, "oscar");
    assert_eq!(login(&server, "oscar", None).1["error"], "code_required");
    let out = server.cli(&["user", "reset-two-factor", "oscar"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout_str().contains("TOTP and recovery codes removed"), "{}", out.stdout_str());
    assert_eq!(login(&server, "oscar", None).0, 200);
    assert!(!server.cli(&["user", "reset-two-factor", "oscar"]).status.success(), "nothing left to reset");

    let entries = audit(&server);
    assert!(audited(&entries, "user.two-factor-reset", "totp=removed app-passwords-revoked=1"), "{entries:#?}");
    assert!(audited(&entries, "admin.refused", "attempt=user.two-factor-reset reason=own-access"), "{entries:#?}");
    assert_eq!(entries.iter().filter(|e| e["action"] == "user.two-factor-reset").count(), 3, "dora's twice and oscar's only");
}
