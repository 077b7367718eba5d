//! A browser without JavaScript, made of the `curl` binary: a cookie jar, form bodies, and the
//! `Origin` / `Sec-Fetch-Site` headers a browser sends with a form of our own page, and what the
//! page tests read off an answer (hidden fields, the reply form's parts, the page headers).

use std::path::PathBuf;
use std::process::Command;

use super::Server;

/// The Content-Security-Policy of every page.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";

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
    /// The "also here" (presence) line of a case page, as text.
    pub fn also_here(&self) -> String {
        let start = self.body.find("data-presence>").unwrap_or_else(|| panic!("no presence line: {}", self.body)) + 14;
        let html = self.body[start..].split("</p>").next().unwrap();
        let mut text = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text
    }

    pub fn csrf(&self) -> String {
        let start = self.body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field: {}", self.body)) + 19;
        self.body[start..].split('"').next().unwrap().to_string()
    }

    /// The value of the hidden field `name`, if the page has one.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        Some(self.body[start..].split('"').next().unwrap().to_string())
    }

    /// The text of the element marked `data-draft="{name}"` (the reply preview).
    pub fn draft(&self, name: &str) -> String {
        let marker = format!("data-draft=\"{name}\">");
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("no {name} in {}", self.body)) + marker.len();
        self.body[start..].split("</").next().unwrap().to_string()
    }

    /// The content of the reply form's body textarea.
    pub fn textarea(&self) -> String {
        let start = self.body.find("name=\"body\"").unwrap_or_else(|| panic!("no textarea: {}", self.body));
        let rest = &self.body[start..];
        rest[rest.find('>').unwrap() + 1..rest.find("</textarea>").unwrap()].to_string()
    }

    /// A readable HTML page (not JSON, not bare text).
    pub fn assert_html(&self) {
        assert!(self.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{self:?}");
        assert!(self.body.starts_with("<!doctype html>"), "{}", self.body);
    }

    /// A readable HTML page in language `lang`.
    pub fn assert_html_in(&self, lang: &str) {
        self.assert_html();
        assert!(self.body.contains(&format!("<html lang=\"{lang}\">")), "{}", self.body);
    }

    /// The headers every page answer carries (over plain HTTP: no HSTS).
    pub fn assert_page_headers(&self, what: &str) {
        assert_eq!(self.header("content-security-policy"), Some(PAGE_CSP), "{what}: {self:?}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"), "{what}");
        assert_eq!(self.header("cache-control"), Some("no-store"), "{what}");
        assert!(self.header("strict-transport-security").is_none(), "{what}: HSTS over plain HTTP");
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

    /// A GET whose body is kept as bytes (curl `-o`): status, headers, body.
    pub fn download(&self, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (body, head) = (dir.path().join("body"), dir.path().join("head"));
        let out = Command::new("curl")
            .args(["-s", "-S", "--max-time", "60", "-b"])
            .arg(&self.jar)
            .arg("-o")
            .arg(&body)
            .arg("-D")
            .arg(&head)
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let head = std::fs::read_to_string(head).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, std::fs::read(body).unwrap())
    }

    pub fn get_with(&self, path: &str, headers: &[&str]) -> Page {
        self.request("GET", path, &[], headers)
    }

    /// A form POST as a browser sends it from one of our pages.
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = format!("Origin: {}", self.base);
        self.request("POST", path, form, &[&origin, "Sec-Fetch-Site: same-origin"])
    }

    /// A form POST whose urlencoded body is sent exactly as given (to send what `--data-urlencode`
    /// would escape, such as `%00`).
    pub fn post_encoded(&self, path: &str, body: &str) -> Page {
        let origin = format!("Origin: {}", self.base);
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "-i", "--max-time", "60", "-H", "Expect:", "-H", &origin, "-H", "Sec-Fetch-Site: same-origin"]);
        cmd.arg("-b").arg(&self.jar).arg("-c").arg(&self.jar).args(["--data-binary", body]).arg(format!("{}{path}", self.base));
        let out = cmd.output().expect("run curl");
        assert!(out.status.success(), "curl POST {path}: {}", String::from_utf8_lossy(&out.stderr));
        parse_page(&out.stdout)
    }

    /// A form POST with the session's CSRF token and, when the page at `from` has it, the case's
    /// last event it was opened at (`seen`), as the browser would send them.
    pub fn submit(&self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let page = self.get(from);
        let (csrf, seen) = (page.csrf(), page.hidden("seen"));
        let mut fields = vec![("csrf", csrf.as_str())];
        if let Some(seen) = &seen {
            fields.push(("seen", seen.as_str()));
        }
        fields.extend_from_slice(form);
        self.post(path, &fields)
    }

    pub fn log_in(&self, user: &str, password: &str) -> Page {
        self.post("/login", &[("user", user), ("password", password)])
    }

    /// The page session's token, from the cookie jar.
    pub fn session_token(&self) -> Option<String> {
        let jar = std::fs::read_to_string(&self.jar).ok()?;
        jar.lines().find(|l| l.contains("mailroom_session")).and_then(|l| l.split('\t').next_back()).map(str::to_string)
    }

    /// Logged in as `user` (303 to "My queues"), with the page session's CSRF token.
    pub fn logged_in(server: &Server, user: &str, password: &str) -> (CurlBrowser, String) {
        let (browser, home) = CurlBrowser::at_home(server, user, password);
        let csrf = home.csrf();
        (browser, csrf)
    }

    /// Logged in as `user`, and "My queues" as it showed.
    pub fn at_home(server: &Server, user: &str, password: &str) -> (CurlBrowser, Page) {
        let browser = CurlBrowser::new(server);
        let r = browser.log_in(user, password);
        assert_eq!((r.status, r.location()), (303, Some("/")), "{r:?}");
        let home = browser.get("/");
        assert_eq!(home.status, 200, "{home:?}");
        (browser, home)
    }
}
