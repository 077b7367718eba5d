//! The settings page (`/settings`, branch keys): a user's language and keyboard shortcuts, saved
//! per user, used on every page, audited; and `app.js` only for users who have shortcuts on.

use super::*;

/// The src of the keyboard script in a page, if it loads one.
fn keys_script(page: &Page) -> Option<String> {
    let start = page.body.find("<script src=\"/assets/keys-")? + 13;
    Some(page.body[start..].split('"').next().unwrap().to_string())
}

#[test]
fn settings_are_saved_per_user_used_on_every_page_and_audited() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    server.add_user("bert", PW, &["support-agent"]);
    send(&server, "support@example.com", "First");
    let (browser, home) = signed_in(&server, "anna");
    assert!(home.body.contains("<a class=\"settings-link\" href=\"/settings\">Settings</a>"), "{}", home.body);

    // The defaults: the browser's language, shortcuts on (script, body marker, help dialog).
    let page = browser.get_with("/settings", &["Accept-Language: en"]);
    assert_eq!(page.status, 200, "{page:?}");
    page.assert_html_in("en");
    page.assert_page_headers("/settings");
    assert!(page.body.contains("<option value=\"auto\" selected>"), "{}", page.body);
    assert!(page.body.contains("name=\"shortcuts\" checked"), "{}", page.body);
    assert!(page.body.contains("<body data-shortcuts=\"on\">") && page.body.contains("<dialog id=\"keys-help\""), "{}", page.body);
    let script = keys_script(&page).expect("app.js is loaded while shortcuts are on");
    assert!(page.body.contains(&format!("<script src=\"{script}\" defer></script>")), "{}", page.body);
    let js = browser.get(&script);
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(js.body, std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/app.js")).unwrap());

    // Russian, shortcuts off: every page in Russian even when the browser asks for English.
    let saved = browser.post("/settings", &[("csrf", &page.csrf()), ("language", "ru")]);
    assert_eq!((saved.status, saved.location()), (303, Some("/settings?saved=1")), "{saved:?}");
    let after = browser.get_with("/settings?saved=1", &["Accept-Language: en"]);
    after.assert_html_in("ru");
    assert!(after.body.contains("data-saved>Ваши настройки сохранены.</p>"), "{}", after.body);
    assert!(after.body.contains("<option value=\"ru\" selected>") && !after.body.contains("name=\"shortcuts\" checked"), "{}", after.body);
    for path in ["/", "/queues/support", &format!("/cases/{}", case_ids(&server, "support")[0])] {
        let r = browser.get_with(path, &["Accept-Language: en"]);
        r.assert_html_in("ru");
        assert!(r.body.contains(">Настройки</a>"), "{path}: {}", r.body);
        assert!(keys_script(&r).is_none() && !r.body.contains("data-shortcuts") && !r.body.contains("<dialog"), "{path}: {}", r.body);
    }
    // Only hers: bert keeps his browser's language and his shortcuts.
    let (bert, _) = signed_in(&server, "bert");
    let his = bert.get_with("/", &["Accept-Language: zh-CN"]);
    his.assert_html_in("zh-CN");
    assert!(keys_script(&his).is_some());
    // The login page has no user yet: the browser's language.
    Browser::new(&server).get_with("/login", &["Accept-Language: en"]).assert_html_in("en");

    // Chinese with shortcuts on; then back to the browser's language.
    let r = browser.post("/settings", &[("csrf", &page.csrf()), ("language", "zh-CN"), ("shortcuts", "on")]);
    assert_eq!(r.status, 303);
    let zh = browser.get_with("/", &["Accept-Language: ru"]);
    zh.assert_html_in("zh-CN");
    assert!(zh.body.contains(">设置</a>") && keys_script(&zh).is_some(), "{}", zh.body);
    assert_eq!(browser.post("/settings", &[("csrf", &page.csrf()), ("language", "auto"), ("shortcuts", "on")]).status, 303);
    browser.get_with("/", &["Accept-Language: ru"]).assert_html_in("ru");
    browser.get_with("/", &["Accept-Language: en"]).assert_html_in("en");

    // Each save is audited with the values, nothing else.
    let entries: Vec<(String, String, String)> = server
        .sql_rows("SELECT actor, object, detail FROM audit WHERE action = 'user.preferences' ORDER BY id")
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone(), row[2].clone()))
        .collect();
    let expected = ["language=ru shortcuts=off", "language=zh-CN shortcuts=on", "language=auto shortcuts=on"];
    assert_eq!(entries.len(), 3, "{entries:?}");
    for ((actor, object, detail), want) in entries.iter().zip(expected) {
        assert_eq!((actor.as_str(), object.as_str(), detail.as_str()), ("user:anna", "user:anna", want));
    }
}

#[test]
fn settings_need_a_session_the_csrf_token_and_a_known_language() {
    let server = start("");
    server.add_user("anna", PW, &["support-agent"]);
    let anonymous = Browser::new(&server);
    assert_eq!((anonymous.get("/settings").status, anonymous.get("/settings").location()), (303, Some("/login")));
    let r = anonymous.post("/settings", &[("csrf", "x"), ("language", "ru")]);
    assert_eq!((r.status, r.location()), (303, Some("/login")));

    let (browser, home) = signed_in(&server, "anna");
    let ours = format!("Origin: {}", browser.base);
    let csrf = home.csrf();
    for (form, headers, what) in [
        (vec![("language", "ru")], vec![ours.as_str()], "no csrf"),
        (vec![("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), ("language", "ru")], vec![ours.as_str()], "wrong csrf"),
        (vec![("csrf", csrf.as_str()), ("language", "ru")], vec!["Origin: http://evil.example"], "foreign origin"),
    ] {
        let r = browser.request("POST", "/settings", &form, &headers);
        assert_eq!(r.status, 403, "{what}: {r:?}");
        r.assert_html_in("en");
        assert!(r.body.contains("This request was refused"), "{what}: {}", r.body);
    }
    let bad = browser.post("/settings", &[("csrf", &home.csrf()), ("language", "de")]);
    assert_eq!(bad.status, 400, "{bad:?}");
    bad.assert_html_in("en");
    // Nothing was saved or audited.
    browser.get_with("/", &["Accept-Language: en"]).assert_html_in("en");
    let audited = server.sql_i64("SELECT COUNT(*) FROM audit WHERE action = 'user.preferences'");
    assert_eq!(audited, 0);
}
