//! The input rules that the OpenAPI document declares and the server enforces, side by side so
//! the two cannot drift apart: case ids, free text, tags, comma-separated lists (the checks of
//! case input are the case service's, `cases::input`, re-exported here).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

// The checks are the case service's (every caller gets the same rules); the document's patterns
// here are tested against them.
pub use crate::cases::input::{TAG_MAX_CHARS, check_tag, check_text, priority, split_list};
#[cfg(test)]
use crate::cases::input::{is_blank, is_tag_char};

/// A case id in a path: 1 to `i64::MAX`, as the document declares. Anything else is a 400
/// naming the rule, before any look-up.
#[derive(Clone, Copy, Debug)]
pub struct CaseId(pub i64);

impl<'de> Deserialize<'de> for CaseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = i64::deserialize(d)?;
        if id < 1 {
            return Err(D::Error::custom(format!("a case id is a whole number from 1 to {}, not {id}", i64::MAX)));
        }
        Ok(CaseId(id))
    }
}

/// A list of whole numbers in a JSON body (`#[serde(deserialize_with = "validate::whole_numbers")]`):
/// JSON Schema's `integer`, which the document declares, is any number with no fractional part,
/// so `7.0` is one as much as `7` (a client that writes every number as a float, as schemathesis
/// found, is not wrong). A fraction or a number beyond `i64` is refused, naming it; so is a float
/// of 2^53 or more, where a float no longer tells one whole number from the next (an integer
/// literal beyond `i64` reaches us as such a float).
pub fn whole_numbers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    let Some(numbers) = Option::<Vec<serde_json::Number>>::deserialize(d)? else { return Ok(None) };
    numbers.iter().map(whole_number::<D::Error>).collect::<Result<Vec<_>, _>>().map(Some)
}

fn whole_number<E: serde::de::Error>(n: &serde_json::Number) -> Result<i64, E> {
    // 2^53: below it every whole f64 is exactly one integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    n.as_i64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < EXACT).map(|f| f as i64))
        .ok_or_else(|| E::custom(format!("{n} is not a whole number from {} to {}", i64::MIN, i64::MAX)))
}

/// The case id parameter of a path, as the document declares it.
pub struct CaseIdParam;

impl utoipa::IntoParams for CaseIdParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(i64::MAX));
        vec![
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("case id"))
                .schema(Some(schema))
                .build(),
        ]
    }
}

/// The blank characters ([`is_blank`]), as a regex class's inside.
const TEXT_BLANKS: &str = "\\t\\n\\u000b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff";

/// The document's pattern for free text: at least one character that is not blank, and no U+0000
/// (refused everywhere, `http::error`).
fn text_pattern() -> String {
    format!("^[^\\u0000]*[^\\u0000{TEXT_BLANKS}][^\\u0000]*$")
}

/// The document's schema of free text ([`check_text`]).
pub fn text_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(Some(text_pattern())).build()
}

/// The document's schema of a tag ([`check_tag`]).
pub fn tag_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(TAG_MAX_CHARS)).pattern(Some(TAG_PATTERN)).build()
}

/// The document's pattern for a tag: the same characters as [`crate::cases::input::is_tag_char`], the whole string.
pub const TAG_PATTERN: &str = "^[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000,]+$";

/// Characters a password may not start or end with (white space and control characters, as
/// `password::check_strength` refuses them), and those it may not contain at all (controls).
const PASSWORD_EDGE_EXCLUDED: &str = "\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PASSWORD_EXCLUDED: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// The document's pattern for user and role names (`access::check_user_name`/`check_role_name`).
pub const NAME_PATTERN: &str = "^[-A-Za-z0-9._@]{1,64}$";

/// The document's schema of a user or role name in a request body.
pub fn name_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(64)).pattern(Some(NAME_PATTERN)).build()
}

/// The document's schema of a permission on a queue (`access::Permission`).
pub fn permission_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(crate::access::Permission::ALL.map(|p| p.as_str()))).build()
}

/// The document's pattern for a new password (its length is `minLength`).
pub fn password_pattern() -> String {
    format!("^[^{PASSWORD_EDGE_EXCLUDED}]([^{PASSWORD_EXCLUDED}]*[^{PASSWORD_EDGE_EXCLUDED}])?$")
}

/// The document's schema of a new password (`password::check_strength`: at least 12 characters).
pub fn password_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(12))
        .pattern(Some(password_pattern()))
        .build()
}

/// The document's schema of a one-time enrolment code.
pub fn code_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).examples(["7K2QD-M9XHT-0CWPN-4RJ8A-VZ3EB"]).build()
}

/// The document's schema of a second-factor code: 6 digits from the authenticator app, or a
/// recovery code (`xxxxx-xxxxx`); spaces and dashes are allowed as people type them.
pub fn second_factor_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(32))
        .pattern(Some("^[0-9A-Za-z -]+$"))
        .examples(["287082"])
        .build()
}

/// A pattern for a comma-separated list of `words` (no spaces, no empty items), as
/// [`split_list`] accepts it.
pub fn list_pattern(words: &[&str]) -> String {
    format!("^{}$", list_regex(words))
}

/// [`list_pattern`] without the anchors, to combine with alternatives.
pub fn list_regex(words: &[&str]) -> String {
    let one = format!("({})", words.join("|"));
    format!("{one}(,{one})*")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's checks and the document's patterns agree on every character that matters
    /// (checked with a small regex engine of our own: the class syntax used is tiny).
    #[test]
    fn the_name_pattern_is_the_access_name_check() {
        let name_class = class(NAME_PATTERN.trim_start_matches("^[").trim_end_matches("]{1,64}$"));
        for c in (0u32..0x3100).filter_map(char::from_u32) {
            assert_eq!(name_class(c), crate::access::check_user_name(&c.to_string()).is_ok(), "name: U+{:04X}", c as u32);
        }
        assert!(crate::access::check_role_name(&"a".repeat(64)).is_ok() && crate::access::check_role_name(&"a".repeat(65)).is_err());
        assert!(crate::access::check_user_name("").is_err());
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats_but_fractions_and_overflow_are_refused() {
        #[derive(Deserialize, Debug)]
        struct Body {
            #[serde(default, deserialize_with = "whole_numbers")]
            ids: Option<Vec<i64>>,
        }
        let ids = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.ids).map_err(|e| e.to_string());
        assert_eq!(
            ids(r#"{"ids": [1, -2, 3.0, -4.0, 3259390927381336.0, 9223372036854775807]}"#).unwrap(),
            Some(vec![1, -2, 3, -4, 3259390927381336, i64::MAX])
        );
        assert_eq!(ids("{}").unwrap(), None);
        assert_eq!(ids(r#"{"ids": null}"#).unwrap(), None);
        assert!(ids(r#"{"ids": [1.5]}"#).unwrap_err().contains("1.5 is not a whole number"));
        assert!(ids(r#"{"ids": [9223372036854775808]}"#).is_err(), "beyond i64");
        assert!(ids(r#"{"ids": [-9223372036854775809]}"#).is_err(), "below i64 (it arrives as the float -2^63)");
        assert!(ids(r#"{"ids": [9007199254740992.0]}"#).is_err(), "a float too large to name one whole number");
        assert!(ids(r#"{"ids": [1e19]}"#).is_err(), "beyond i64, as a float");
        assert!(ids(r#"{"ids": ["1"]}"#).is_err(), "a string is not a number");
    }

    #[test]
    fn free_text_needs_a_character_that_is_not_blank_and_no_nul() {
        let pattern = regex::Regex::new(&text_pattern()).unwrap();
        for ok in ["a", " \u{3000}文本 ", "текст\n"] {
            assert!(pattern.is_match(ok), "{ok:?}");
        }
        for refused in ["", " \t\u{3000}\u{feff}", "text\0", "\0 x"] {
            assert!(!pattern.is_match(refused), "{refused:?}");
        }
    }

    #[test]
    fn patterns_and_checks_agree() {
        let tag_class = class(TAG_PATTERN.trim_start_matches("^[^").trim_end_matches("]+$"));
        let text_class = class(TEXT_BLANKS);
        for c in (0u32..0x3100).chain([0xfeff, 0xffff, 0x1f600]).filter_map(char::from_u32) {
            assert_eq!(!tag_class(c), is_tag_char(c), "tag: U+{:04X}", c as u32);
            assert_eq!(text_class(c), is_blank(c), "text: U+{:04X}", c as u32);
        }
        assert!(check_text("text", " \t\u{3000}\u{feff}").is_err());
        assert!(check_text("text", "\u{85}").is_ok(), "NEL is not blank in JSON Schema's sense");
        assert!(check_tag("vip").is_ok() && check_tag(&"x".repeat(64)).is_ok());
        for bad in ["", "two words", "a,b", "nul\0", &"x".repeat(65), "tab\t", "nbsp\u{a0}"] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
        let (edge, inner) = (class(PASSWORD_EDGE_EXCLUDED), class(PASSWORD_EXCLUDED));
        for c in (0u32..0x3100).chain([0xfeff, 0xffff, 0x1f600]).filter_map(char::from_u32) {
            let padded = format!("{c}abcdefghijklm{c}");
            let check = crate::access::password::check_strength(&padded).is_ok();
            assert_eq!(!edge(c), check, "password edge: U+{:04X}", c as u32);
            let inside = format!("abcdef{c}ghijklm");
            assert_eq!(!inner(c), crate::access::password::check_strength(&inside).is_ok(), "password: U+{:04X}", c as u32);
        }
        assert!(password_pattern().starts_with("^[^\\u0000-\\u0020"));
        assert_eq!(list_pattern(&["a", "b"]), "^(a|b)(,(a|b))*$");
        assert!(split_list("a,b", |s| ["a", "b"].contains(&s).then(|| s.to_string()), "x", "a, b").is_ok());
        for bad in ["a,,b", "a, b", "", "a,"] {
            assert!(split_list(bad, |s| ["a", "b"].contains(&s).then(|| s.to_string()), "x", "a, b").is_err(), "{bad:?}");
        }
    }

    /// Membership in a regex character class body made of `\uXXXX`, `\t`-style escapes, ranges
    /// and literal characters.
    fn class(body: &str) -> impl Fn(char) -> bool {
        let mut items: Vec<char> = Vec::new();
        let mut chars = body.chars().peekable();
        let mut ranges: Vec<(char, char)> = Vec::new();
        while let Some(c) = chars.next() {
            let c = if c == '\\' {
                match chars.next().unwrap() {
                    'u' => {
                        let hex: String = (0..4).map(|_| chars.next().unwrap()).collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap()
                    }
                    't' => '\t',
                    'n' => '\n',
                    'f' => '\u{c}',
                    'r' => '\r',
                    other => panic!("escape \\{other}"),
                }
            } else {
                c
            };
            if chars.peek() == Some(&'-') {
                chars.next();
                let end = match chars.next().unwrap() {
                    '\\' => {
                        assert_eq!(chars.next(), Some('u'));
                        let hex: String = (0..4).map(|_| chars.next().unwrap()).collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap()
                    }
                    e => e,
                };
                ranges.push((c, end));
            } else {
                items.push(c);
            }
        }
        move |c| items.contains(&c) || ranges.iter().any(|(a, b)| (*a..=*b).contains(&c))
    }
}
