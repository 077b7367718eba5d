//! The case page (`GET /cases/{id}`), its mail parts and its action forms, with the curl browser
//! of `tests/web.rs`. Mail arrives by SMTP, built here with its bytes in legacy charsets.

use super::*;

use base64::Engine;

/// GB2312 for "您好，世界" and KOI8-R for "Привет, мир".
const GB2312_HELLO: &[u8] = b"\xc4\xfa\xba\xc3\xa3\xac\xca\xc0\xbd\xe7";
const KOI8R_HELLO: &[u8] = b"\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2";
/// Bytes that are not UTF-8, so a download that re-encodes them is caught.
const PDF_BYTES: &[u8] = b"%PDF-1.4\n\xff\xfe\x00\x01binary\x80\n";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Sends `message` (CRLF line ends) to support@ and returns the case id and message id.
fn deliver(server: &Server, message: &[u8]) -> (i64, i64, String) {
    let number = server.smtp_session().send_message(CUSTOMER, &["support@example.com"], message);
    let row = server.sql(&format!(
        "SELECT mc.case_id, m.id FROM messages m JOIN message_cases mc ON mc.message_id = m.id WHERE m.number = {}",
        sql_quote(&number)
    ));
    let (case, id) = row.split_once('|').unwrap_or_else(|| panic!("no case for {number}: {row:?}"));
    (case.parse().unwrap(), id.parse().unwrap(), number)
}

fn gb2312_mail() -> Vec<u8> {
    format!(
        "From: =?GB2312?B?{}?= <{CUSTOMER}>\r\nTo: support@example.com\r\nCc: boss@client.example.org\r\nSubject: =?GB2312?B?{}?=\r\n\
         Message-ID: <{}@client.example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=GB2312\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64(b"\xd5\xc5\xc8\xfd"),
        b64(GB2312_HELLO),
        unique_token("gb"),
        b64(GB2312_HELLO)
    )
    .into_bytes()
}

fn koi8r_mail() -> Vec<u8> {
    // KOI8-R as 8-bit bytes in the body, the subject as an RFC 2047 Q-encoded word.
    let mut mail = format!(
        "From: Ann Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: =?KOI8-R?Q?=F0=D2=C9=D7=C5=D4?=\r\n\
         Message-ID: <{}@client.example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=koi8-r\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n",
        unique_token("koi")
    )
    .into_bytes();
    mail.extend_from_slice(KOI8R_HELLO);
    mail.extend_from_slice(b"\r\n");
    mail
}

fn html_mail() -> Vec<u8> {
    format!(
        "From: Ann Customer <{CUSTOMER}>\r\nTo: support@example.com\r\nSubject: Styled\r\nMessage-ID: <{}@client.example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/html; charset=windows-1251\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--BB\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename*=UTF-8''%D1%81%D1%87%D1%91%D1%82.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --BB\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n<script>alert(1)</script>\r\n--BB--\r\n",
        unique_token("html"),
        b64(&[&b"<p style=\"color: navy\">\xcf\xf0\xe8\xe2\xe5\xf2 <b>HTML</b></p><img src=\"https://tracker.example/x.png\" alt=\"\"><script>document.title='pwned'</script>"[..]].concat()),
        b64(PDF_BYTES)
    )
    .into_bytes()
}

/// The value of the first hidden `seen` field.
fn seen(page: &Page) -> String {
    page.hidden("seen").unwrap_or_else(|| panic!("no seen field: {}", page.body))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_case_page_shows_the_thread_with_legacy_charsets_decoded() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let (gb_case, gb_id, gb_number) = deliver(&server, &gb2312_mail());
    let (koi_case, koi_id, koi_number) = deliver(&server, &koi8r_mail());
    let (anna, _) = signed_in(&server, "anna");

    let page = anna.get(&format!("/cases/{gb_case}"));
    assert_eq!(page.status, 200, "{page:?}");
    page.assert_html_in("en");
    page.assert_page_headers("the case page");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    for part in [
        format!("<li class=\"message\" id=\"m{gb_id}\" data-message=\"{gb_id}\" data-row>"),
        format!("<a class=\"code\" href=\"#m{gb_id}\" data-open>{gb_number}</a>"),
        "<pre class=\"body\" data-body>您好，世界</pre>".to_string(),
        "<dd data-field=\"subject\">您好，世界</dd>".to_string(),
        format!("<dd data-field=\"from\">张三 &#60;{CUSTOMER}&#62;</dd>"),
        "<dd data-field=\"to\">support@example.com</dd>".to_string(),
        "<dd data-field=\"cc\">boss@client.example.org</dd>".to_string(),
        "<dd data-field=\"status\">New</dd>".to_string(),
        "<dd data-field=\"assignee\">Unassigned</dd>".to_string(),
        format!("<a class=\"button\" href=\"/cases/{gb_case}/reply\" data-key-reply>Reply</a>"),
        "<time datetime=\"".to_string(),
    ] {
        assert!(page.body.contains(&part), "{part}: {}", page.body);
    }
    // The SLA line is words with a <time> element (due within the default 3 working days).
    let sla = &page.body[page.body.find("data-sla>").unwrap()..];
    let sla = &sla[..sla.find("</p>").unwrap()];
    assert!(sla.contains("<time datetime=\"") && (sla.contains(">due ") || sla.contains(">overdue by ")), "{sla}");

    let koi = anna.get(&format!("/cases/{koi_case}"));
    assert!(koi.body.contains("<pre class=\"body\" data-body>Привет, мир</pre>"), "{}", koi.body);
    assert!(koi.body.contains("<dd data-field=\"subject\">Привет</dd>"), "{}", koi.body);
    assert!(koi.body.contains(&format!("id=\"m{koi_id}\"")) && koi.body.contains(&koi_number));

    // In Chinese and Russian the page's words change, the mail's do not.
    let zh = anna.get_with(&format!("/cases/{gb_case}"), &["Accept-Language: zh-CN"]);
    zh.assert_html_in("zh-CN");
    assert!(zh.body.contains(">回复</a>") && zh.body.contains("您好，世界</pre>"), "{}", zh.body);
    let ru = anna.get_with(&format!("/cases/{koi_case}"), &["Accept-Language: ru"]);
    assert!(ru.body.contains(">Ответить</a>") && ru.body.contains("Привет, мир</pre>"), "{}", ru.body);

    // Reading is audited: the case and each message, through the web view.
    let reads = server.sql_i64("SELECT COUNT(*) FROM audit WHERE action = 'case.read' AND detail LIKE 'via=web %'");
    let messages = server.sql_i64("SELECT COUNT(*) FROM audit WHERE action = 'message.read' AND detail LIKE 'via=web %'");
    assert!(reads >= 4 && messages >= 4, "{reads} case reads, {messages} message reads");
}

#[test]
fn another_queues_case_is_the_same_404_as_no_case() {
    let server = start("");
    server.add_user("sam", PW, &["sales-agent"]);
    server.add_user("olga", PW, &["security-officer"]);
    let (case, message, _) = deliver(&server, &html_mail());
    let (sam, _) = signed_in(&server, "sam");
    let other = sam.get(&format!("/cases/{case}"));
    let missing = sam.get("/cases/999999");
    assert_eq!((other.status, missing.status), (404, 404));
    other.assert_html_in("en");
    other.assert_page_headers("404");
    assert_eq!(other.body, missing.body, "a case I may not read looks like one that does not exist");
    assert!(!other.body.contains("Styled"));
    assert_eq!(sam.get("/cases/abc").status, 404);
    for path in [format!("/cases/{case}/messages/{message}/html"), format!("/cases/{case}/messages/{message}/attachments/0")] {
        let r = sam.get(&path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, missing.body, "{path}");
    }
    // The officer reads no mail.
    let (olga, _) = signed_in(&server, "olga");
    assert_eq!(olga.get(&format!("/cases/{case}")).status, 404);
    // No session: the login page.
    let r = Browser::new(&server).get(&format!("/cases/{case}"));
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    let r = Browser::new(&server).get(&format!("/cases/{case}/messages/{message}/html"));
    assert_eq!((r.status, r.location()), (303, Some("/login")));
}

#[test]
fn the_html_part_is_framed_sandboxed_and_attachments_download_as_they_were() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let (case, message, _) = deliver(&server, &html_mail());
    let (anna, _) = signed_in(&server, "anna");
    let page = anna.get(&format!("/cases/{case}"));
    assert_eq!(page.status, 200, "{page:?}");
    let html_url = format!("/cases/{case}/messages/{message}/html");
    assert!(page.body.contains(&format!("<iframe sandbox src=\"{html_url}\" title=\"HTML version of message ")), "{}", page.body);
    assert!(page.body.contains(&format!("href=\"{html_url}?images=remote\">Show remote images")), "{}", page.body);
    // Only HTML: its text rendering on the page, the markup never.
    assert!(page.body.contains("<pre class=\"body\" data-body>Привет HTML"), "{}", page.body);
    assert!(!page.body.contains("pwned") && !page.body.contains("tracker.example"), "{}", page.body);
    let listed = format!("счёт.pdf</a> <span class=\"muted\">application/pdf, {} B</span>", PDF_BYTES.len());
    assert!(page.body.contains(&listed), "{listed}: {}", page.body);

    let framed = anna.get(&html_url);
    assert_eq!(framed.status, 200, "{framed:?}");
    assert_eq!(
        framed.header("content-security-policy"),
        Some("default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; sandbox; frame-ancestors 'self'")
    );
    assert_eq!(framed.header("x-frame-options"), Some("SAMEORIGIN"), "the one answer our own page may frame");
    assert_eq!(framed.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(framed.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(framed.header("cache-control"), Some("no-store"));
    // Re-encoded as UTF-8; the script is there but the policy (no script-src, sandbox) runs none.
    assert!(framed.body.contains("<p style=\"color: navy\">Привет <b>HTML</b></p>"), "{}", framed.body);
    assert!(!framed.header("content-security-policy").unwrap().contains("script-src"));
    let remote = anna.get(&format!("{html_url}?images=remote"));
    assert_eq!(
        remote.header("content-security-policy"),
        Some("default-src 'none'; style-src 'unsafe-inline'; img-src data: cid: https: http:; sandbox; frame-ancestors 'self'"),
        "only img-src is relaxed"
    );
    assert_eq!(remote.header("x-frame-options"), Some("SAMEORIGIN"));

    let (status, headers, bytes) = anna.download(&format!("/cases/{case}/messages/{message}/attachments/0"));
    assert_eq!(status, 200);
    assert_eq!(bytes, PDF_BYTES, "the attachment's bytes as they were sent");
    assert_eq!(header(&headers, "content-type"), Some("application/pdf"));
    assert_eq!(header(&headers, "content-disposition"), Some("attachment; filename*=UTF-8''%D1%81%D1%87%D1%91%D1%82.pdf"));
    assert_eq!(header(&headers, "content-security-policy"), Some("default-src 'none'; sandbox"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert_eq!(header(&headers, "x-frame-options"), Some("DENY"));
    // An HTML attachment is not served as HTML.
    let (status, headers, bytes) = anna.download(&format!("/cases/{case}/messages/{message}/attachments/1"));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/octet-stream"));
    assert!(String::from_utf8_lossy(&bytes).contains("<script>"));
    assert_eq!(anna.get(&format!("/cases/{case}/messages/{message}/attachments/2")).status, 404, "no such attachment");
    assert_eq!(anna.get(&format!("/cases/{case}/messages/{message}/attachments/x")).status, 404);
    // A message of another case, through this case: not found.
    let (_, koi_message, _) = deliver(&server, &koi8r_mail());
    assert_eq!(anna.get(&format!("/cases/{case}/messages/{koi_message}/attachments/0")).status, 404);
    assert_eq!(anna.get(&format!("/cases/{case}/messages/{koi_message}/html")).status, 404);
    let audited = server.sql_i64(&format!("SELECT COUNT(*) FROM audit WHERE action = 'message.read' AND detail = 'via=web case={case}'"));
    assert!(audited >= 4, "each part served is an audited read: {audited}");
}

#[test]
fn the_action_forms_work_need_the_csrf_token_and_refuse_a_stale_view() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("bert", PW, &["support-agent"]);
    let (case, _, _) = deliver(&server, &koi8r_mail());
    let (anna, _) = signed_in(&server, "anna");
    let path = format!("/cases/{case}");
    let page = anna.get(&path);
    let (csrf, marker) = (page.csrf(), seen(&page));
    for action in ["claim", "escalate", "status", "priority", "category", "tags", "note", "follow-up"] {
        assert!(page.body.contains(&format!("action=\"/cases/{case}/{action}\"")), "{action}");
    }
    for action in ["assign", "transfer"] {
        assert!(!page.body.contains(&format!("action=\"/cases/{case}/{action}\"")), "{action} needs assign or supervise");
    }

    // Without the token, or a wrong one: 403, nothing done.
    let no_csrf = anna.post(&format!("{path}/claim"), &[("seen", &marker)]);
    assert_eq!(no_csrf.status, 403, "{no_csrf:?}");
    no_csrf.assert_html_in("en");
    assert_eq!(anna.post(&format!("{path}/claim"), &[("seen", &marker), ("csrf", "wrong")]).status, 403);
    let assigned: Option<i64> = server.sql_opt(&format!("SELECT assignee FROM cases WHERE id = {case}")).map(|id| id.parse().unwrap());
    assert_eq!(assigned, None);

    // Claim: 303 back to the case, which says so.
    let claimed = anna.post(&format!("{path}/claim"), &[("csrf", &csrf), ("seen", &marker)]);
    assert_eq!((claimed.status, claimed.location()), (303, Some(format!("{path}?done=claim").as_str())), "{claimed:?}");
    let page = anna.get(&format!("{path}?done=claim"));
    assert!(page.body.contains("data-notice=\"done\">Done: Claim</p>"), "{}", page.body);
    assert!(page.body.contains("<dd data-field=\"assignee\">anna</dd>") && page.body.contains("<dd data-field=\"status\">Open</dd>"));
    assert!(page.body.contains("data-history=\"claim\""), "the history line: {}", page.body);

    // An internal note, labelled as such.
    let note = anna.post(&format!("{path}/note"), &[("csrf", &csrf), ("seen", &seen(&page)), ("text", "Customer is a VIP, be quick")]);
    assert_eq!(note.status, 303, "{note:?}");
    let page = anna.get(&path);
    let at = page.body.find("data-entry=\"note\"").unwrap_or_else(|| panic!("{}", page.body));
    let entry = &page.body[at..page.body[at..].find("</li>").unwrap() + at];
    assert!(entry.contains("Internal note — not sent to the customer") && entry.contains("Customer is a VIP, be quick"), "{entry}");
    // NUL (which PostgreSQL cannot store) in a form, a path or a query: a readable 400 or 404 page,
    // nothing written, on both engines.
    let notes = || server.sql_i64(&format!("SELECT COUNT(*) FROM case_entries WHERE case_id = {case}"));
    let before = notes();
    let nul = anna.post_encoded(&format!("{path}/note"), &format!("csrf={csrf}&seen={}&text=a%00b", seen(&page)));
    assert_eq!(nul.status, 400, "{nul:?}");
    nul.assert_html_in("en");
    assert_eq!(notes(), before);
    assert_eq!(anna.get(&format!("{path}%00")).status, 404);
    assert_eq!(anna.get(&format!("{path}?show=%00")).status, 404);
    assert_eq!(CurlBrowser::new(&server).post_encoded("/login", "user=an%00na&password=x").status, 400);

    // Status waiting: the SLA line says the clock is paused.
    let status = anna.post(&format!("{path}/status"), &[("csrf", &csrf), ("seen", &seen(&page)), ("status", "waiting")]);
    assert_eq!(status.status, 303, "{status:?}");
    let page = anna.get(&path);
    assert!(page.body.contains("<span>paused — waiting on the customer</span>"), "{}", page.body);
    assert!(page.body.contains("<dd data-field=\"status\">Waiting</dd>"));

    // A refusal is the page again with the service's reason.
    let bad = anna.post(&format!("{path}/tags"), &[("csrf", &csrf), ("seen", &seen(&page)), ("add", "a\u{7}b")]);
    assert_eq!(bad.status, 422, "{bad:?}");
    assert!(bad.body.contains("data-notice=\"refused\">Not done: tag ") && bad.body.contains("must be 1 to 64 characters"), "{}", bad.body);
    let bad = anna.post(&format!("{path}/status"), &[("csrf", &csrf), ("seen", &seen(&page)), ("status", "new")]);
    assert_eq!(bad.status, 409, "a conflict with the case's state: {bad:?}");

    // Collision: bert adds a note after anna's page was shown; anna's action is refused with 409,
    // the new note marked, and nothing done.
    let stale = seen(&page);
    let (bert, _) = signed_in(&server, "bert");
    let bert_page = bert.get(&path);
    assert_eq!(
        bert.post(&format!("{path}/note"), &[("csrf", &bert_page.csrf()), ("seen", &seen(&bert_page)), ("text", "I am on it")]).status,
        303
    );
    let collided = anna.post(&format!("{path}/priority"), &[("csrf", &csrf), ("seen", &stale), ("priority", "low")]);
    assert_eq!(collided.status, 409, "{collided:?}");
    collided.assert_html_in("en");
    assert!(collided.body.contains("This case changed while you were looking at it — the new items are marked"), "{}", collided.body);
    let at = collided.body.find("I am on it").unwrap();
    let item = &collided.body[collided.body[..at].rfind("<li").unwrap()..at];
    assert!(item.contains(" new\"") && item.contains("<strong class=\"new-mark\">New:</strong>"), "{item}");
    let priority = server.sql(&format!("SELECT priority FROM cases WHERE id = {case}"));
    assert_eq!(priority, "normal", "nothing was done");
    // With the fresh marker the same form goes through.
    let fresh = seen(&collided);
    assert_ne!(fresh, stale);
    assert_eq!(anna.post(&format!("{path}/priority"), &[("csrf", &csrf), ("seen", &fresh), ("priority", "low")]).status, 303);
    // No marker at all is a bad form; an unknown action is no page.
    assert_eq!(anna.post(&format!("{path}/escalate"), &[("csrf", &csrf)]).status, 400);
    assert_eq!(anna.post(&format!("{path}/delete"), &[("csrf", &csrf), ("seen", &fresh)]).status, 404);
}
