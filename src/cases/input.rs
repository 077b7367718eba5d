//! The rules for what staff type in (free text, tags, status and priority names, lists), once,
//! for every caller of the service; `http::validate` declares the same rules in the OpenAPI
//! document and its test checks that the two agree.

use super::CaseError;
use crate::intake::sla::Priority;
use crate::store::cases::PRIORITIES;

/// A priority exactly as the document's enum spells it (the config and the CLI are more lenient).
pub fn priority(name: &str) -> Option<Priority> {
    PRIORITIES.into_iter().find(|p| p.as_str() == name)
}

/// Blank characters for free text (notes, replies): JSON Schema's (ECMA-262) `\s`, spelled out
/// because regex engines disagree about `\s` (Python's includes U+001C–U+001F and U+0085).
pub fn is_blank(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// Free text must hold something other than blanks.
pub fn check_text(field: &str, text: &str) -> Result<(), CaseError> {
    if text.chars().all(is_blank) {
        return Err(CaseError::Invalid(format!("{field} must not be empty or blank")));
    }
    Ok(())
}

pub const TAG_MAX_CHARS: usize = 64;

/// Characters a tag may not contain: Unicode white space, control characters and commas
/// (listings filter by tags in a query string, comma-separated lists use them).
pub fn is_tag_char(c: char) -> bool {
    !(c.is_whitespace() || c.is_control() || c == ',')
}

/// A tag: 1 to 64 characters without white space, control characters or commas.
pub fn check_tag(tag: &str) -> Result<(), CaseError> {
    let n = tag.chars().count();
    if n == 0 || n > TAG_MAX_CHARS || !tag.chars().all(is_tag_char) {
        return Err(CaseError::Invalid(format!(
            "tag {tag:?} must be 1 to {TAG_MAX_CHARS} characters without spaces, control characters or commas"
        )));
    }
    Ok(())
}

/// The items of a comma-separated list, each checked by `parse`; no blanks, no empty items.
pub fn split_list<T>(text: &str, parse: impl Fn(&str) -> Option<T>, what: &str, known: &str) -> Result<Vec<T>, CaseError> {
    text.split(',')
        .map(|item| {
            parse(item).ok_or_else(|| {
                CaseError::Invalid(format!("unknown {what} {item:?} in {text:?} (known: {known}; separate with commas, no spaces)"))
            })
        })
        .collect()
}
