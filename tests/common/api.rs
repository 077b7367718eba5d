//! The JSON API through curl, for tests that set up or check state over HTTP.

use std::process::Command;

use serde_json::{Value, json};

use super::Server;

/// One API call with an optional bearer token: (status, JSON body or Null).
pub fn api(server: &Server, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
    }
    let out = cmd.arg(format!("{}{path}", server.http_url())).output().expect("run curl");
    assert!(out.status.success(), "curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// An API call that must answer 200: its JSON body.
pub fn api_ok(server: &Server, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
    let (status, value) = api(server, method, path, Some(token), body);
    assert_eq!(status, 200, "{method} {path}: {value}");
    value
}

/// Logs `user` in for a bearer token.
pub fn bearer_login(server: &Server, user: &str, password: &str) -> String {
    let (status, v) = api(server, "POST", "/api/login", None, Some(json!({ "user": user, "password": password, "mode": "bearer" })));
    assert_eq!(status, 200, "{user} logs in: {v}");
    v["token"].as_str().unwrap().to_string()
}
