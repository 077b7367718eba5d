//! The supervisors' dashboard and the customer tier over real sockets: `mailroom serve`, mail
//! sent over SMTP (one sender a VIP from the customer directory, authenticated by recorded DNS),
//! cases answered and resolved through the JSON API, pages fetched with curl. The dashboard's
//! tables must show what happened; each CSV the same rows; an agent without supervise gets 404.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";
const VIP: &str = "ana@customer.org";
const OTHER: &str = "someone@client.example.org";

const EXTRA: &str = r#"
[[roles]]
name = "support-lead"
grants = { support = ["read", "act", "supervise"] }

[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }

[[categories]]
code = "TSJJ"
name = "Complaint or suggestion"

[[rules]]
name = "complaint"
subject_contains = ["complaint"]
category = "TSJJ"

# Replies queue in the outbox; nothing listens there, so they stay queued (enough for a first response).
[outbox]
smarthost = "127.0.0.1:9"
tls = "none"
"#;

/// A server that checks SPF/DMARC against recorded DNS: customer.org publishes SPF for 127.0.0.1.
fn start(dir: &std::path::Path) -> Server {
    let records = dir.join("dns.toml");
    std::fs::write(
        &records,
        "[[txt]]\nname = \"customer.org\"\nvalue = \"v=spf1 ip4:127.0.0.1 -all\"\n\n[[txt]]\nname = \"_dmarc.customer.org\"\nvalue = \"v=DMARC1; p=reject\"\n",
    )
    .unwrap();
    let extra = format!("{EXTRA}\n[authentication]\nverify = \"dns\"\nrecords = \"{}\"\n", records.display());
    let config = Opts { extra_toml: extra, ..Opts::default() }.config_toml().replace(
        "[authentication]\n# No network here: tests that need SPF/DKIM/DMARC give recorded DNS answers instead.\nverify = \"off\"\n",
        "",
    );
    Server::start(Opts { raw_config: Some(config), ..Opts::default() })
}

fn send(server: &Server, from: &str, subject: &str) -> String {
    let message = format!(
        "From: <{from}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@customer.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello, please help.\r\n",
        unique_token("m")
    );
    server.smtp_session().send_message(from, &["support@example.com"], message.as_bytes())
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request with curl: a bearer token for the API, or a cookie jar for pages.
fn curl(server: &Server, method: &str, path: &str, args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "60", "-H", "Expect:", "-X", method])
        .args(args)
        .arg(format!("{}{path}", server.http_url()))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header block: {text}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    Answer { status, headers, body: body.to_string() }
}

fn bearer(server: &Server, user: &str) -> String {
    let body = json!({ "user": user, "password": PW, "mode": "bearer" }).to_string();
    let r = curl(server, "POST", "/api/login", &["-H", "Content-Type: application/json", "--data-binary", &body]);
    r.json()["token"].as_str().unwrap_or_else(|| panic!("{}", r.body)).to_string()
}

fn api(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    let auth = format!("Authorization: Bearer {token}");
    let mut args = vec!["-H", &auth];
    let body = body.map(|b| b.to_string());
    if let Some(body) = &body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", body]);
    }
    curl(server, method, path, &args)
}

/// A page as a browser logged in as `user` gets it (the login form, then a cookie jar).
struct Pages<'s> {
    server: &'s Server,
    jar: std::path::PathBuf,
}

impl<'s> Pages<'s> {
    fn log_in(server: &'s Server, dir: &std::path::Path, user: &str) -> Pages<'s> {
        let jar = dir.join(format!("jar-{user}"));
        let origin = format!("Origin: {}", server.http_url());
        let r = curl(
            server,
            "POST",
            "/login",
            &[
                "-c",
                jar.to_str().unwrap(),
                "-H",
                &origin,
                "-H",
                "Sec-Fetch-Site: same-origin",
                "--data-urlencode",
                &format!("user={user}"),
                "--data-urlencode",
                &format!("password={PW}"),
            ],
        );
        assert_eq!(r.status, 303, "{}", r.body);
        Pages { server, jar }
    }

    fn get(&self, path: &str) -> Answer {
        curl(self.server, "GET", path, &["-b", self.jar.to_str().unwrap()])
    }
}

/// The `<table data-table="{chart}">` of a page.
fn table<'a>(page: &'a str, chart: &str) -> &'a str {
    let start = page.find(&format!("data-table=\"{chart}\"")).unwrap_or_else(|| panic!("no table {chart}: {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</table>").unwrap()]
}

/// The cells of the row `data-row="{row}"` of a table: the header cell's text, then each value.
fn row(table: &str, row: &str) -> Vec<String> {
    let start = table.find(&format!("<tr data-row=\"{row}\">")).unwrap_or_else(|| panic!("no row {row}: {table}"));
    let tr = &table[start..];
    let tr = &tr[..tr.find("</tr>").unwrap()];
    let cell = regex::Regex::new(r"(?s)<t[hd][^>]*>(.*?)</t[hd]>").unwrap();
    let tag = regex::Regex::new(r"<[^>]*>").unwrap();
    cell.captures_iter(tr).map(|c| tag.replace_all(&c[1], "").trim().to_string()).collect()
}

/// The value cells of a row (without the row's header cell).
fn values(table: &str, name: &str) -> Vec<String> {
    row(table, name).into_iter().skip(1).collect()
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn this_week() -> String {
    let iso = chrono::Datelike::iso_week(&chrono::Utc::now());
    format!("{}-W{:02}", iso.year(), iso.week())
}

#[test]
fn the_dashboard_shows_what_happened_and_the_tier_shows_in_list_and_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    server.add_user("lead", PW, &["support-lead"]);
    server.add_user("anna", PW, &["support-agent"]);
    let csv = dir.path().join("customers.csv");
    std::fs::write(&csv, format!("address_or_domain,name,tier,tags\n{VIP},Ana Examplewoman,vip,\n")).unwrap();
    let out = server.cli(&["customers", "import", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    // The server re-reads the directory every 2 s.
    std::thread::sleep(Duration::from_millis(2500));

    send(&server, VIP, "Order question");
    send(&server, OTHER, "A complaint about delivery");
    send(&server, OTHER, "Another question");
    send(&server, OTHER, "Thanks, all fine now");

    let lead = bearer(&server, "lead");
    let listing = api(&server, &lead, "GET", "/api/queues/support/cases?status=all", None).json();
    let items = listing["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{listing}");
    let by_subject = |s: &str| items.iter().find(|i| i["subject"] == s).unwrap_or_else(|| panic!("{s}: {listing}"));
    let vip_case = by_subject("Order question");
    assert_eq!(vip_case["tier"], "vip", "the listing has the tier: {vip_case}");
    assert_eq!(by_subject("Another question")["tier"], Value::Null);
    let vip_id = vip_case["id"].as_i64().unwrap();
    let case = api(&server, &lead, "GET", &format!("/api/cases/{vip_id}"), None).json();
    assert_eq!(case["tier"], "vip", "the case answer has the tier: {case}");

    // Answer the VIP (first response, in time; the case waits), resolve the thank-you.
    let r = api(&server, &lead, "POST", &format!("/api/cases/{vip_id}/reply"), Some(json!({ "body": "We are on it." })));
    assert_eq!(r.status, 200, "{}", r.body);
    let thanks = by_subject("Thanks, all fine now")["id"].as_i64().unwrap();
    let r = api(&server, &lead, "POST", &format!("/api/cases/{thanks}/status"), Some(json!({ "status": "resolved" })));
    assert_eq!(r.status, 200, "{}", r.body);

    // The queue list shows the tier as a text badge in the customer column.
    let agent_pages = Pages::log_in(&server, dir.path(), "anna");
    let list = agent_pages.get("/queues/support");
    assert_eq!(list.status, 200);
    let vip_row = &list.body[list.body.find(&format!("<tr data-case=\"{vip_id}\" ")).unwrap()..];
    let vip_row = &vip_row[..vip_row.find("</tr>").unwrap()];
    assert!(vip_row.contains("<span class=\"badge tier\" data-tier>VIP</span>"), "{vip_row}");
    assert_eq!(list.body.matches("data-tier>").count(), 1, "only the VIP's case has a badge");

    // An agent without supervise: no header link, the 404 page for the dashboard and its CSVs,
    // 403 from the API.
    assert!(!list.body.contains("href=\"/dashboard\""), "no dashboard link for an agent");
    for path in ["/dashboard", "/dashboard/flow.csv", "/dashboard?queue=support"] {
        let r = agent_pages.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{path}: a page, not JSON");
        assert!(!r.body.contains("data-table"), "{path}");
    }
    let anna = bearer(&server, "anna");
    assert_eq!(api(&server, &anna, "GET", "/api/stats/dashboard", None).status, 403);

    // The supervisor: the link, and the numbers.
    let pages = Pages::log_in(&server, dir.path(), "lead");
    let home = pages.get("/");
    assert!(home.body.contains("<a href=\"/dashboard\">Dashboard</a>"), "{}", home.body);
    let page = pages.get("/dashboard");
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(page.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));
    // Backlog: 4 cases, 1 waiting (answered), 1 resolved; nobody is assigned.
    assert_eq!(values(table(body, "backlog"), "support"), ["2", "3", "1", "0", "0"], "open, unassigned, waiting, overdue, due soon");
    assert!(body.contains("data-figure=\"overdue\">0</dd>"), "{body}");
    assert_eq!(values(table(body, "flow"), &today()), ["4", "1"], "opened and resolved today");
    assert_eq!(table(body, "flow").matches("<tr data-row=").count(), 14, "14 days");
    let times = table(body, "times");
    assert_eq!(values(times, "first_response")[0], "1", "one case answered");
    assert_eq!(values(times, "first_response")[1], "0", "within seconds: 0 h");
    assert_eq!(values(times, "resolution")[0], "1", "one case resolved");
    assert_eq!(values(table(body, "sla"), &this_week()), ["1", "0", "100"], "met, missed, met %");
    assert_eq!(table(body, "sla").matches("<tr data-row=").count(), 8, "8 weeks");
    assert_eq!(values(table(body, "category"), "TSJJ"), ["1"]);
    assert!(row(table(body, "category"), "TSJJ")[0].contains("Complaint or suggestion"));
    assert_eq!(values(table(body, "category"), "none"), ["3"]);
    assert_eq!(values(table(body, "tier"), "vip"), ["1"]);
    assert_eq!(row(table(body, "tier"), "vip")[0], "VIP");
    assert_eq!(values(table(body, "tier"), "none"), ["3"]);

    // Every chart: an image with a title and a description, bars labelled with their values.
    for chart in ["backlog", "flow", "times", "sla", "category", "tier"] {
        let start = body.find(&format!("data-chart=\"{chart}\"")).unwrap_or_else(|| panic!("no chart {chart}"));
        let svg_start = body[..start].rfind("<svg").unwrap();
        let svg = &body[svg_start..svg_start + body[svg_start..].find("</svg>").unwrap()];
        assert!(
            svg.contains("role=\"img\"") && svg.contains(&format!("aria-labelledby=\"{chart}-title\" aria-describedby=\"{chart}-desc\"")),
            "{svg}"
        );
        assert!(svg.contains(&format!("<title id=\"{chart}-title\">")) && svg.contains(&format!("<desc id=\"{chart}-desc\">")), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
        assert!(body.contains(&format!("href=\"/dashboard/{chart}.csv\"")), "CSV link of {chart}");
    }
    assert!(body.contains(">New: 4</text>"), "the flow chart writes its values");
    assert!(body.contains(">100%</text>"), "the SLA chart writes its percentages");

    // Each CSV: the header and the rows of its table.
    let csv = |chart: &str| {
        let r = pages.get(&format!("/dashboard/{chart}.csv"));
        assert_eq!(r.status, 200, "{chart}");
        assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"), "{chart}");
        assert_eq!(r.header("content-disposition"), Some(format!("attachment; filename=\"dashboard-{chart}.csv\"").as_str()));
        r.body.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(csv("backlog"), ["queue,open,unassigned,waiting,overdue,due_soon", "support,2,3,1,0,0"]);
    let flow = csv("flow");
    assert_eq!((flow[0].as_str(), flow.len()), ("day,new,resolved", 15));
    assert_eq!(flow[14], format!("{},4,1", today()));
    let times = csv("times");
    assert_eq!(times[0], "measure,cases,median_hours,p90_hours");
    assert!(times[1].starts_with("first_response,1,0,0") && times[2].starts_with("resolution,1,"), "{times:?}");
    let sla = csv("sla");
    assert_eq!((sla[0].as_str(), sla.len(), sla[8].clone()), ("week,met,missed,met_percent", 9, format!("{},1,0,100", this_week())));
    assert_eq!(csv("category"), ["category,cases", "TSJJ,1", "none,3"], "largest first, none last");
    assert_eq!(csv("tier"), ["tier,cases", "vip,1", "none,3"]);
    assert_eq!(pages.get("/dashboard/nothing.csv").status, 404);

    // The queue filter: a supervised queue, or 404 for one I do not supervise.
    let filtered = pages.get("/dashboard?queue=support");
    assert_eq!(filtered.status, 200);
    assert!(filtered.body.contains("<option value=\"support\" selected>"), "{}", filtered.body);
    assert!(filtered.body.contains("href=\"/dashboard/flow.csv?queue=support\""));
    assert_eq!(pages.get("/dashboard?queue=sales").status, 404);

    // The API answers the same figures.
    let d = api(&server, &lead, "GET", "/api/stats/dashboard", None).json();
    assert_eq!(d["backlog"], json!([{ "queue": "support", "open": 2, "unassigned": 3, "waiting": 1, "overdue": 0, "due_soon": 0 }]));
    assert_eq!(d["flow"][13], json!({ "day": today(), "opened": 4, "resolved": 1 }));
    assert_eq!(d["by_tier"], json!([{ "name": "vip", "cases": 1 }, { "name": "none", "cases": 3 }]));
    assert_eq!(api(&server, &lead, "GET", "/api/stats/dashboard?queue=sales", None).status, 403);
}
