//! A browser without JavaScript, made of the `curl` binary: a cookie jar, form bodies, and the
//! `Origin` / `Sec-Fetch-Site` headers a browser sends with a form of our own page. (tests/web.rs
//! has its own copy from before this one.)

use std::path::PathBuf;
use std::process::Command;

use super::Server;

#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let start = self.body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field: {}", self.body)) + 19;
        self.body[start..].split('"').next().unwrap().to_string()
    }

    /// A readable HTML page (not JSON, not bare text).
    pub fn assert_html(&self) {
        assert!(self.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{self:?}");
        assert!(self.body.starts_with("<!doctype html>"), "{}", self.body);
    }
}

pub fn parse_page(raw: &[u8]) -> Page {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header block: {text}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Page { status, headers, body: body.to_string() }
}

pub struct CurlBrowser {
    pub base: String,
    jar: PathBuf,
    _dir: tempfile::TempDir,
}

impl CurlBrowser {
    pub fn new(server: &Server) -> CurlBrowser {
        let dir = tempfile::tempdir().unwrap();
        CurlBrowser { base: server.http_url(), jar: dir.path().join("cookies"), _dir: dir }
    }

    pub fn request(&self, method: &str, path: &str, form: &[(&str, &str)], headers: &[&str]) -> Page {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "-i", "--max-time", "60", "-H", "Expect:", "-X", method]).arg("-b").arg(&self.jar).arg("-c").arg(&self.jar);
        for h in headers {
            cmd.args(["-H", h]);
        }
        for (name, value) in form {
            cmd.args(["--data-urlencode", &format!("{name}={value}")]);
        }
        if method == "POST" && form.is_empty() {
            cmd.args(["-H", "Content-Type: application/x-www-form-urlencoded", "--data-binary", ""]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = cmd.output().expect("run curl");
        assert!(out.status.success(), "curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
        parse_page(&out.stdout)
    }

    pub fn get(&self, path: &str) -> Page {
        self.request("GET", path, &[], &[])
    }

    /// A form POST as a browser sends it from one of our pages.
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = format!("Origin: {}", self.base);
        self.request("POST", path, form, &[&origin, "Sec-Fetch-Site: same-origin"])
    }

    pub fn log_in(&self, user: &str, password: &str) -> Page {
        self.post("/login", &[("user", user), ("password", password)])
    }

    /// Logged in as `user` (303 to "My queues"), with the page session's CSRF token.
    pub fn logged_in(server: &Server, user: &str, password: &str) -> (CurlBrowser, String) {
        let browser = CurlBrowser::new(server);
        let r = browser.log_in(user, password);
        assert_eq!((r.status, r.location()), (303, Some("/")), "{r:?}");
        let home = browser.get("/");
        assert_eq!(home.status, 200, "{home:?}");
        let csrf = home.csrf();
        (browser, csrf)
    }
}
