//! UI text in English, Simplified Chinese and Russian, from the catalogs in `locales/`
//! (embedded), chosen by the user (`/settings`) or else from `Accept-Language`.
//!
//! Templates write every visible string as `{{ chrome.t("…") }}`; the scan test in
//! `tests/web.rs` refuses bare text in a template, and the unit tests here check that every key a
//! template names exists in every catalog.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{HeaderMap, header};

use crate::access::preferences::Language;

/// A UI language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
    Ru,
}

const CATALOGS: [(Lang, &str); 3] = [
    (Lang::En, include_str!("../../../locales/en.toml")),
    (Lang::ZhCn, include_str!("../../../locales/zh-CN.toml")),
    (Lang::Ru, include_str!("../../../locales/ru.toml")),
];

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::ZhCn, Lang::Ru];

    /// The BCP 47 tag, for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
            Lang::Ru => "ru",
        }
    }

    /// The language a range of `Accept-Language` asks for, if we have it. Chinese in the
    /// traditional script is not Simplified Chinese: it falls through to the next choice.
    fn from_range(range: &str) -> Option<Lang> {
        let range = range.to_ascii_lowercase();
        let mut parts = range.split('-');
        match parts.next()? {
            "en" => Some(Lang::En),
            "ru" => Some(Lang::Ru),
            "zh" => match parts.next() {
                None | Some("cn" | "sg" | "hans") => Some(Lang::ZhCn),
                Some(_) => None,
            },
            _ => None,
        }
    }

    /// The language a user chose in his settings; None for `auto` (ask the browser).
    pub fn chosen(choice: Language) -> Option<Lang> {
        match choice {
            Language::Auto => None,
            Language::En => Some(Lang::En),
            Language::ZhCn => Some(Lang::ZhCn),
            Language::Ru => Some(Lang::Ru),
        }
    }

    /// The best language of an `Accept-Language` header (highest q first, then header order);
    /// English when none fits.
    pub fn negotiate(headers: &HeaderMap) -> Lang {
        let value = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut best: Option<(u16, Lang)> = None;
        for item in value.split(',').take(32) {
            let mut fields = item.split(';');
            let range = fields.next().unwrap_or("").trim();
            let q = fields.find_map(|f| f.trim().strip_prefix("q=")).map_or(1000, parse_q);
            if q == 0 {
                continue;
            }
            if let Some(lang) = Lang::from_range(range)
                && best.is_none_or(|(best_q, _)| q > best_q)
            {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    /// This language's catalog.
    pub fn catalog(self) -> &'static Catalog {
        static LOADED: OnceLock<Vec<(Lang, Catalog)>> = OnceLock::new();
        let loaded = LOADED.get_or_init(|| CATALOGS.iter().map(|(lang, text)| (*lang, Catalog::parse(text))).collect());
        &loaded.iter().find(|(lang, _)| *lang == self).expect("every language has a catalog").1
    }
}

/// A q-value ("0.8") in thousandths; malformed counts as 0 (not acceptable).
fn parse_q(text: &str) -> u16 {
    text.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).map_or(0, |q| (q * 1000.0).round() as u16)
}

/// One language's messages, by key.
pub struct Catalog {
    messages: HashMap<String, String>,
}

impl Catalog {
    /// The catalogs are part of the binary and checked by tests: a broken one is a build bug.
    fn parse(text: &str) -> Catalog {
        let table: toml::Table = toml::from_str(text).expect("a UI catalog is valid TOML");
        let messages = table.into_iter().map(|(key, value)| (key, value.as_str().expect("a UI message is a string").to_string())).collect();
        Catalog { messages }
    }

    /// The message for `key`; the key itself when missing (the tests make sure none is).
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.messages.get(key).map_or(key, String::as_str)
    }

    /// The message for `key` with each `{name}` replaced by its value.
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        values.iter().fold(self.get(key).to_string(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> Lang {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(value).unwrap());
        Lang::negotiate(&headers)
    }

    #[test]
    fn accept_language_picks_the_best_language_we_have() {
        assert_eq!(Lang::negotiate(&HeaderMap::new()), Lang::En);
        assert_eq!(accept("zh-CN,zh;q=0.9,en;q=0.8"), Lang::ZhCn);
        assert_eq!(accept("zh"), Lang::ZhCn);
        assert_eq!(accept("zh-Hans-CN"), Lang::ZhCn);
        assert_eq!(accept("zh-TW, ru;q=0.5"), Lang::Ru, "traditional Chinese is not ours");
        assert_eq!(accept("ru-RU,ru;q=0.9"), Lang::Ru);
        assert_eq!(accept("de-DE, en;q=0.3, ru;q=0.7"), Lang::Ru, "by q, not by order");
        assert_eq!(accept("ru;q=0, en"), Lang::En, "q=0 means not acceptable");
        assert_eq!(accept("fr, de"), Lang::En);
        assert_eq!(accept("ru;q=garbage"), Lang::En);
    }

    #[test]
    fn every_catalog_has_the_same_keys_and_no_empty_message() {
        let english: BTreeSet<&str> = Lang::En.catalog().keys().collect();
        for lang in Lang::ALL {
            let keys: BTreeSet<&str> = lang.catalog().keys().collect();
            assert_eq!(keys, english, "{} has other keys than en", lang.tag());
            for key in &keys {
                assert!(!lang.catalog().get(key).trim().is_empty(), "{}: {key} is empty", lang.tag());
            }
        }
    }

    #[test]
    fn every_key_a_template_or_handler_names_exists() {
        let pattern = regex::Regex::new(r#"\bt\("([a-z_.]+)"\)|fill\("([a-z_.]+)""#).unwrap();
        let roots = [concat!(env!("CARGO_MANIFEST_DIR"), "/templates"), concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/web")];
        let mut used = BTreeSet::new();
        for root in roots {
            for entry in std::fs::read_dir(root).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                for found in pattern.captures_iter(&text) {
                    used.insert(found.get(1).or(found.get(2)).unwrap().as_str().to_string());
                }
            }
        }
        assert!(used.len() > 20, "the templates name their text by key: {used:?}");
        for lang in Lang::ALL {
            let keys: BTreeSet<&str> = lang.catalog().keys().collect();
            for key in &used {
                assert!(keys.contains(key.as_str()), "{}: no message {key}", lang.tag());
            }
        }
    }

    #[test]
    fn fill_replaces_named_values() {
        assert_eq!(Lang::En.catalog().fill("login.throttled", &[("seconds", "42")]), "Too many failed logins. Try again in 42 s.");
    }
}
