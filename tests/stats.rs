//! Statistics of a period over real sockets, on both engines: six cases arrive over SMTP, are
//! answered and resolved through the JSON API by two staff members, and are then moved in time
//! in the database (the test's own SQL on the server's store) so that every figure is an exact
//! number computed by hand below. `GET /api/stats?from&to`, `mailroom stats` (table, --json,
//! --csv) must all give those numbers; a non-supervisor is refused, a bad period is a 400.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

const PW: &str = "correct-horse-battery-staple";

// The SLA calendar: Berlin (CET, UTC+1 in January), Monday to Friday 09:00-17:00 local time,
// Wednesday 7 January 2026 a holiday.
const EXTRA: &str = r#"
[sla]
timezone = "Europe/Berlin"
working_days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
holidays = ["2026-01-07"]

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

# Replies queue in the outbox; nothing listens there, so they stay queued (a first response all the same).
[outbox]
smarthost = "127.0.0.1:9"
tls = "none"
"#;

fn curl(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {token}");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H", &auth]);
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
    }
    let out = cmd.arg(format!("{}{path}", server.http_url())).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let json = if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")) };
    (code.parse().unwrap(), json)
}

fn login(server: &Server, user: &str) -> String {
    let body = json!({ "user": user, "password": PW, "mode": "bearer" });
    let (code, answer) = curl(server, "", "POST", "/api/login", Some(body));
    assert_eq!(code, 200, "{answer}");
    answer["token"].as_str().unwrap().to_string()
}

/// Logs in through the login form; returns the cookie jar.
fn page_login(server: &Server, dir: &std::path::Path, user: &str) -> std::path::PathBuf {
    let jar = dir.join(format!("jar-{user}"));
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-c", jar.to_str().unwrap()])
        .args(["-H", &format!("Origin: {}", server.http_url()), "-H", "Sec-Fetch-Site: same-origin"])
        .args(["--data-urlencode", &format!("user={user}"), "--data-urlencode", &format!("password={PW}")])
        .arg(format!("{}/login", server.http_url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "303");
    jar
}

/// A page with the session's cookie: status and body.
fn page(server: &Server, jar: &std::path::Path, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-b", jar.to_str().unwrap()])
        .arg(format!("{}{path}", server.http_url()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
}

/// Optional times as SQL.
fn at(t: Option<&str>) -> String {
    t.map_or("NULL".into(), |t| ms(t).to_string())
}

#[test]
fn period_statistics_match_the_hand_computed_fixture() {
    let server = Server::start(Opts { extra_toml: EXTRA.into(), ..Opts::default() });
    server.add_user("lead", PW, &["support-lead"]);
    server.add_user("anna", PW, &["support-agent"]);
    let subjects = ["c1", "c2", "c3", "c4", "c5 complaint", "c6", "before", "after"];
    let mut smtp = server.smtp_session();
    for s in subjects {
        smtp.send_message("customer@client.example.org", &["support@example.com"], &simple_message(s, "Please help."));
    }
    let lead = login(&server, "lead");
    let anna = login(&server, "anna");
    let (_, listing) = curl(&server, &lead, "GET", "/api/queues/support/cases?status=all", None);
    let id = |subject: &str| {
        listing["items"].as_array().unwrap().iter().find(|i| i["subject"] == subject).unwrap_or_else(|| panic!("{listing}"))["id"]
            .as_i64()
            .unwrap()
    };
    let reply = |token: &str, case: i64| {
        let (code, answer) = curl(&server, token, "POST", &format!("/api/cases/{case}/reply"), Some(json!({ "body": "We are on it." })));
        assert_eq!(code, 200, "{answer}");
    };
    let status = |case: i64, status: &str| {
        let (code, answer) = curl(&server, &lead, "POST", &format!("/api/cases/{case}/status"), Some(json!({ "status": status })));
        assert_eq!(code, 200, "{answer}");
    };
    let (c1, c2, c3, c4, c5, c6) = (id("c1"), id("c2"), id("c3"), id("c4"), id("c5 complaint"), id("c6"));
    reply(&anna, c1);
    reply(&lead, c1);
    reply(&lead, c2);
    reply(&anna, c3);
    reply(&lead, c4);
    for case in [c1, c2, c4] {
        status(case, "resolved");
    }
    status(c6, "waiting");

    // The fixture, in Berlin local time (written with its +01:00 offset; the week of Monday 5
    // January 2026, Wednesday 7th a holiday). Working time:
    //   c1 opened Mon 05 09:00; anna replies 10:00 (1 h), lead Tue 11:00; resolved Mon 15:00 (6 h);
    //      due Fri 09 09:00: met.
    //   c2 opened Tue 06 16:00; lead replies Thu 08 10:00: Tue 16-17 + (holiday) + Thu 09-10 = 2 h;
    //      resolved Thu 17:00: 1 + 8 = 9 h; due Fri 09 16:00: met.
    //   c3 opened Fri 09 16:30; anna replies Mon 12 09:30: 0.5 + 0.5 = 1 h; waiting; due Wed 14: met.
    //   c4 opened Sat 10 12:00; lead replies Mon 12 13:00: 09-13 = 4 h; resolved Tue 13 11:00:
    //      8 + 2 = 10 h; due Mon 12 12:00, answered after it: breached.
    //   c5 opened Wed 07 (the holiday) 10:00, category TSJJ; no reply, open, due Mon 12 09:00, long
    //      past: breached.
    //   c6 opened Thu 08 09:00; no reply, waiting on the customer, due Mon 12 09:00 passed: pending
    //      (a case waiting on the customer does not breach).
    //   "before" opened Sun 04 23:59 and "after" Mon 12 00:00 local: outside 2026-01-05..2026-01-11
    //   (in UTC "after" is Sunday 11 23:00, inside: the days are the calendar's, not UTC's).
    // First response: [1, 1, 2, 4] h: median (1 + 2) / 2 = 1.5; p90 at position 0.9 × 3 = 2.7:
    //   2 + 0.7 × (4 − 2) = 3.4. Resolution: [6, 9, 10] h: median 9; p90 at 0.9 × 2 = 1.8:
    //   9 + 0.8 × (10 − 9) = 9.8. SLA: met 3 (c1, c2, c3), breached 2 (c4, c5), pending 1 (c6),
    //   met 3/5 = 60.0 %. Agents: anna replied on c1 and c3 (2 cases, 2 replies), first on both
    //   (1 h, 1 h: median 1); lead replied on c1, c2, c4 (3 cases, 3 replies), first on c2 and c4
    //   (2 h, 4 h: median 3). Tiers: c1 and c2 are VIPs (set below, as the directory would).
    type Fixture<'a> = (i64, &'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str);
    let fixture: [Fixture; 6] = [
        (
            c1,
            "2026-01-05T09:00:00+01:00",
            "2026-01-09T09:00:00+01:00",
            Some("2026-01-05T10:00:00+01:00"),
            Some("2026-01-05T15:00:00+01:00"),
            "resolved",
        ),
        (
            c2,
            "2026-01-06T16:00:00+01:00",
            "2026-01-09T16:00:00+01:00",
            Some("2026-01-08T10:00:00+01:00"),
            Some("2026-01-08T17:00:00+01:00"),
            "resolved",
        ),
        (c3, "2026-01-09T16:30:00+01:00", "2026-01-14T16:30:00+01:00", Some("2026-01-12T09:30:00+01:00"), None, "waiting"),
        (
            c4,
            "2026-01-10T12:00:00+01:00",
            "2026-01-12T12:00:00+01:00",
            Some("2026-01-12T13:00:00+01:00"),
            Some("2026-01-13T11:00:00+01:00"),
            "resolved",
        ),
        (c5, "2026-01-07T10:00:00+01:00", "2026-01-12T09:00:00+01:00", None, None, "open"),
        (c6, "2026-01-08T09:00:00+01:00", "2026-01-12T09:00:00+01:00", None, None, "waiting"),
    ];
    for (case, opened, due, first, resolved, status) in fixture {
        server.sql(&format!(
            "UPDATE cases SET opened_at = {}, due_at = {}, first_response_at = {}, resolved_at = {}, status = '{status}' WHERE id = {case};",
            ms(opened),
            ms(due),
            at(first),
            at(resolved)
        ));
    }
    server.sql(&format!("UPDATE cases SET tier = 'vip' WHERE id IN ({c1}, {c2});"));
    for (case, author, when) in [
        (c1, "anna", "2026-01-05T10:00:00+01:00"),
        (c1, "lead", "2026-01-06T11:00:00+01:00"),
        (c2, "lead", "2026-01-08T10:00:00+01:00"),
        (c3, "anna", "2026-01-12T09:30:00+01:00"),
        (c4, "lead", "2026-01-12T13:00:00+01:00"),
    ] {
        server
            .sql(&format!("UPDATE case_entries SET at = {} WHERE case_id = {case} AND author = '{author}' AND kind = 'reply';", ms(when)));
    }
    server.sql(&format!("UPDATE cases SET opened_at = {} WHERE id = {};", ms("2026-01-04T23:59:00+01:00"), id("before")));
    server.sql(&format!("UPDATE cases SET opened_at = {} WHERE id = {};", ms("2026-01-12T00:00:00+01:00"), id("after")));

    // The API.
    let (code, stats) = curl(&server, &lead, "GET", "/api/stats?from=2026-01-05&to=2026-01-11", None);
    assert_eq!(code, 200, "{stats}");
    let p = &stats["period"];
    assert_eq!(
        (&p["from"], &p["to"], &p["timezone"], &p["cases"], &p["truncated"]),
        (&json!("2026-01-05"), &json!("2026-01-11"), &json!("Europe/Berlin"), &json!(6), &json!(false))
    );
    assert_eq!(p["queues"], json!(["support"]));
    let days: Vec<i64> = p["by_day"].as_array().unwrap().iter().map(|d| d["cases"].as_i64().unwrap()).collect();
    assert_eq!(days, [1, 1, 1, 1, 1, 1, 0], "one case opened each day from Monday to Saturday: {p}");
    assert_eq!(p["by_day"][6]["name"], "2026-01-11");
    assert_eq!(p["by_queue"], json!([{ "name": "support", "cases": 6 }]));
    assert_eq!(p["by_category"], json!([{ "name": "TSJJ", "cases": 1 }, { "name": "none", "cases": 5 }]));
    assert_eq!(p["by_tier"], json!([{ "name": "vip", "cases": 2 }, { "name": "none", "cases": 4 }]));
    assert_eq!(p["first_response"], json!({ "count": 4, "median_hours": 1.5, "p90_hours": 3.4 }));
    assert_eq!(p["resolution"], json!({ "count": 3, "median_hours": 9.0, "p90_hours": 9.8 }));
    assert_eq!(p["sla"], json!({ "met": 3, "breached": 2, "pending": 1, "met_percent": 60.0 }));
    assert_eq!(
        p["agents"],
        json!([
            { "agent": "anna", "cases_handled": 2, "replies": 2, "first_response": { "count": 2, "median_hours": 1.0, "p90_hours": 1.0 } },
            { "agent": "lead", "cases_handled": 3, "replies": 3, "first_response": { "count": 2, "median_hours": 3.0, "p90_hours": 3.8 } },
        ]),
        "lead's p90 of [2, 4] h: 2 + 0.9 × 2 = 3.8"
    );
    // The queue filter, and a plain /api/stats has no period.
    let (code, one) = curl(&server, &lead, "GET", "/api/stats?from=2026-01-05&to=2026-01-11&queue=support", None);
    assert_eq!((code, &one["period"]["cases"]), (200, &json!(6)));
    let (code, plain) = curl(&server, &lead, "GET", "/api/stats", None);
    assert_eq!((code, &plain["period"]), (200, &Value::Null));
    // One day: Tuesday alone holds c2.
    let (_, tuesday) = curl(&server, &lead, "GET", "/api/stats?from=2026-01-06&to=2026-01-06", None);
    assert_eq!((&tuesday["period"]["cases"], &tuesday["period"]["first_response"]["median_hours"]), (&json!(1), &json!(2.0)));

    // Refused: a non-supervisor (403 before any validation), a queue not supervised, bad periods (400 with the reason).
    let (code, answer) = curl(&server, &anna, "GET", "/api/stats?from=2026-01-05&to=2026-01-11", None);
    assert_eq!(code, 403, "{answer}");
    assert_eq!(curl(&server, &anna, "GET", "/api/stats?from=2026-01-11&to=2026-01-05", None).0, 403);
    assert_eq!(curl(&server, &lead, "GET", "/api/stats?from=2026-01-05&to=2026-01-11&queue=sales", None).0, 403);
    for (query, reason) in [
        ("from=2026-01-11&to=2026-01-05", "from (2026-01-11) is after to (2026-01-05)"),
        ("from=2026-02-30&to=2026-03-01", "from must be a date in the form YYYY-MM-DD"),
        ("from=2026-1-5&to=2026-01-11", "from must be a date in the form YYYY-MM-DD"),
        ("from=2026-01-05", "give both from and to"),
        ("from=2025-01-01&to=2026-01-11", "the period is 376 days long; at most 366"),
    ] {
        let (code, answer) = curl(&server, &lead, "GET", &format!("/api/stats?{query}"), None);
        assert_eq!(code, 400, "{query}: {answer}");
        assert!(answer["reason"].as_str().is_some_and(|r| r.contains(reason)), "{query}: {answer}");
    }

    // The command line: the same numbers, as JSON, CSV and a table, for every configured queue
    // (sales and complaints have none).
    let out = server.cli(&["stats", "--from", "2026-01-05", "--to", "2026-01-11", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let mut cli: Value = serde_json::from_str(&out.stdout_str()).unwrap();
    assert_eq!(cli["queues"], json!(["support", "sales", "complaints"]));
    assert_eq!(
        cli["by_queue"],
        json!([{ "name": "support", "cases": 6 }, { "name": "sales", "cases": 0 }, { "name": "complaints", "cases": 0 }])
    );
    let mut api = p.clone();
    for v in [&mut cli, &mut api] {
        for key in ["generated_at", "queues", "by_queue"] {
            v.as_object_mut().unwrap().remove(key);
        }
    }
    assert_eq!(cli, api, "the CLI's JSON is the API's period");

    let out = server.cli(&["stats", "--from", "2026-01-05", "--to", "2026-01-11", "--queue", "support", "--csv"]);
    assert!(out.status.success(), "{}", out.stderr);
    let csv = out.stdout_str();
    for line in [
        "section,name,measure,value",
        "period,all,cases,6",
        "day,2026-01-07,cases,1",
        "day,2026-01-11,cases,0",
        "category,TSJJ,cases,1",
        "tier,vip,cases,2",
        "first_response,all,count,4",
        "first_response,all,median_hours,1.50",
        "first_response,all,p90_hours,3.40",
        "resolution,all,median_hours,9.00",
        "resolution,all,p90_hours,9.80",
        "sla,all,met,3",
        "sla,all,breached,2",
        "sla,all,pending,1",
        "sla,all,met_percent,60.0",
        "agent,anna,cases_handled,2",
        "agent,lead,replies,3",
        "agent_first_response,lead,median_hours,3.00",
    ] {
        assert!(csv.lines().any(|l| l == line), "no line {line:?} in\n{csv}");
    }

    let out = server.cli(&["stats", "--from", "2026-01-05", "--to", "2026-01-11", "--queue", "support"]);
    assert!(out.status.success(), "{}", out.stderr);
    let table = out.stdout_str();
    let line = |start: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} in\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("Cases opened"), "Cases opened: 6");
    assert_eq!(line("First response"), "First response 4 1.50 3.40");
    assert_eq!(line("Resolution"), "Resolution 3 9.00 9.80");
    assert_eq!(line("met "), "met 3 breached 2 pending 1 met 60.0%");
    assert_eq!(line("anna"), "anna 2 2 2 1.00");
    assert_eq!(line("lead"), "lead 3 3 2 3.00");
    assert_eq!(line("2026-01-10"), "2026-01-10 1");

    let bad = server.cli(&["stats", "--from", "2026-01-11", "--to", "2026-01-05"]);
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("from (2026-01-11) is after to (2026-01-05)"), "{}", bad.stderr);
    let bad = server.cli(&["stats", "--from", "2026-01-05", "--to", "2026-01-11", "--queue", "nope"]);
    assert!(!bad.status.success() && bad.stderr.contains("no queue is named \"nope\""), "{}", bad.stderr);

    // The web page: the same figures in its tables, the same CSV as the CLI's; 404 for an agent.
    let dir = tempfile::tempdir().unwrap();
    let lead_jar = page_login(&server, dir.path(), "lead");
    let (code, html) = page(&server, &lead_jar, "/stats?from=2026-01-05&to=2026-01-11&queue=support");
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("<dd data-figure=\"cases\">6</dd>") && html.contains("<dd data-figure=\"breached\">2</dd>"), "{html}");
    assert!(html.contains("<dd data-figure=\"met-percent\">60.0</dd>"), "{html}");
    let cells = |table: &str, row: &str| {
        let start = html.find(&format!("data-table=\"{table}\"")).unwrap_or_else(|| panic!("no table {table}"));
        let rest = &html[start..];
        let tr = &rest[rest.find(&format!("<tr data-row=\"{row}\">")).unwrap_or_else(|| panic!("no row {row}"))..];
        let tr = &tr[..tr.find("</tr>").unwrap()];
        let cell = regex::Regex::new(r"<t[hd][^>]*>(.*?)</t[hd]>").unwrap();
        cell.captures_iter(tr).map(|c| c[1].to_string()).collect::<Vec<_>>()
    };
    assert_eq!(cells("times", "first_response"), ["First response", "4", "1.50", "3.40"]);
    assert_eq!(cells("times", "resolution"), ["Resolution", "3", "9.00", "9.80"]);
    assert_eq!(cells("agents", "lead"), ["lead", "3", "3", "3.00"]);
    assert_eq!(cells("day", "2026-01-07"), ["2026-01-07", "1"]);
    assert_eq!(cells("tier", "vip"), ["vip", "2"]);
    assert!(html.contains("href=\"/stats.csv?from=2026-01-05&#38;to=2026-01-11&#38;queue=support\""), "{html}");
    let (code, csv_page) = page(&server, &lead_jar, "/stats.csv?from=2026-01-05&to=2026-01-11&queue=support");
    assert_eq!(code, 200);
    let strip = |text: &str| text.lines().filter(|l| !l.starts_with("period,all,")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(strip(&csv_page), strip(&csv), "the download is the CLI's CSV");
    let (code, refused) = page(&server, &lead_jar, "/stats?from=2026-01-11&to=2026-01-05");
    assert_eq!(code, 400);
    assert!(refused.contains("from (2026-01-11) is after to (2026-01-05)") && !refused.contains("data-table"), "{refused}");
    assert_eq!(page(&server, &lead_jar, "/stats?from=2026-01-05&to=2026-01-11&queue=sales").0, 404);
    let anna_jar = page_login(&server, dir.path(), "anna");
    let (code, body) = page(&server, &anna_jar, "/stats?from=2026-01-05&to=2026-01-11");
    assert_eq!(code, 404);
    assert!(!body.contains("data-table"));
    assert_eq!(page(&server, &anna_jar, "/stats.csv?from=2026-01-05&to=2026-01-11").0, 404);

    // Every read is audited: who, which period, which queues (no figures).
    let audited = server.sql_rows("SELECT actor, detail FROM audit WHERE action = 'stats.read' ORDER BY id;");
    assert_eq!(audited.len(), 8, "three API reads with a period, the CLI's JSON, CSV and table, the page and its CSV: {audited:?}");
    assert_eq!(audited[0], ["user:lead", "from=2026-01-05 to=2026-01-11 queues=support"]);
    assert!(audited[3][0].starts_with("cli:"), "{audited:?}");
    assert_eq!(audited[3][1], "from=2026-01-05 to=2026-01-11 queues=support,sales,complaints");
}
