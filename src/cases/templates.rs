//! Reply templates (`[[templates]]` in the config) and the one placeholder language of a reply:
//! `{customer_name}`, `{number}`, `{due}`, `{agent}`, `{queue}`, with `{{` and `}}` for literal
//! braces.
//!
//! The text an agent sends is itself read in this language, so a placeholder that cannot be
//! filled (the customer gave no name) or that the agent left in the text blocks sending instead
//! of reaching the customer as `{customer_name}`. Filling the reply form ([`fill`]) leaves such a
//! placeholder visible for the agent to replace; sending ([`render`]) refuses it.

use serde::Deserialize;

/// The placeholders a reply may use.
pub const PLACEHOLDERS: [&str; 5] = ["customer_name", "number", "due", "agent", "queue"];

/// One `[[templates]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyTemplate {
    pub name: String,
    /// Offered in these queues only (empty: everywhere).
    #[serde(default)]
    pub queues: Vec<String>,
    /// Offered for cases of these category codes only (empty: any category).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Default: the "Re: …" of the case.
    pub subject: Option<String>,
    pub body: String,
}

impl ReplyTemplate {
    /// Whether the template is offered for a case in `queue` with `category`.
    pub fn in_scope(&self, queue: &str, category: Option<&str>) -> bool {
        (self.queues.is_empty() || self.queues.iter().any(|q| q == queue))
            && (self.categories.is_empty() || category.is_some_and(|c| self.categories.iter().any(|k| k == c)))
    }

    /// (key within the entry, reason) for the first placeholder error of subject or body.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.name.trim().is_empty() || self.name.chars().count() > 80 || self.name.chars().any(char::is_control) {
            return Err(("name".into(), "must be 1 to 80 characters, no control characters".into()));
        }
        if let Some(subject) = &self.subject {
            check(subject).map_err(|reason| ("subject".to_string(), reason))?;
        }
        check(&self.body).map_err(|reason| ("body".to_string(), reason))
    }
}

/// A piece of a text in the placeholder language.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `{{` or `}}`.
    Brace(char),
    Placeholder(&'a str),
}

/// Splits `text`; a lone `{` or `}` is an error (write `{{` or `}}`).
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        if at > 0 {
            out.push(Piece::Text(&rest[..at]));
        }
        let brace = rest.as_bytes()[at] as char;
        let after = &rest[at + 1..];
        if after.starts_with(brace) {
            out.push(Piece::Brace(brace));
            rest = &after[1..];
        } else if brace == '{' {
            let end = after.find('}').ok_or_else(|| "a '{' is not closed (write {{ for a literal brace)".to_string())?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("{{{name}}} is not a placeholder (write {{{{ and }}}} for literal braces)"));
            }
            out.push(Piece::Placeholder(name));
            rest = &after[end + 1..];
        } else {
            return Err("a '}' is not opened (write }} for a literal brace)".into());
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// A template text is well-formed and names known placeholders only.
pub fn check(text: &str) -> Result<(), String> {
    for piece in pieces(text)? {
        if let Piece::Placeholder(name) = piece
            && !PLACEHOLDERS.contains(&name)
        {
            return Err(format!("unknown placeholder {{{name}}} (known: {})", known()));
        }
    }
    Ok(())
}

fn known() -> String {
    PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
}

/// What the placeholders stand for in one case; None: not known (the customer gave no name).
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub customer_name: Option<String>,
    pub number: Option<String>,
    pub due: Option<String>,
    pub agent: Option<String>,
    pub queue: Option<String>,
}

impl Values {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "customer_name" => self.customer_name.as_deref(),
            "number" => self.number.as_deref(),
            "due" => self.due.as_deref(),
            "agent" => self.agent.as_deref(),
            "queue" => self.queue.as_deref(),
            _ => None,
        }
        .filter(|v| !v.trim().is_empty())
    }
}

/// The text to put in the reply form: known placeholders filled (their values escaped, so the
/// text stays in the placeholder language), the others left for the agent to see and replace.
pub fn fill(text: &str, values: &Values) -> String {
    let Ok(pieces) = pieces(text) else { return text.to_string() };
    let mut out = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(b) => out.extend([b, b]),
            Piece::Placeholder(name) => match values.get(name) {
                Some(value) => out.push_str(&value.replace('{', "{{").replace('}', "}}")),
                None => out.extend(['{'].into_iter().chain(name.chars()).chain(['}'])),
            },
        }
    }
    out
}

/// The text as it is sent, or why it cannot be: the reason names the placeholder.
pub fn render(text: &str, values: &Values) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(b) => out.push(b),
            Piece::Placeholder(name) if !PLACEHOLDERS.contains(&name) => {
                return Err(format!(
                    "{{{name}}} is not a placeholder: replace it with the text you mean (known: {}; write {{{{ and }}}} for literal braces)",
                    known()
                ));
            }
            Piece::Placeholder(name) => match values.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(format!("the placeholder {{{name}}} has no value for this case: replace it with the text you mean"));
                }
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            customer_name: Some("Ann {Lee}".into()),
            number: Some("MR-2026-000042".into()),
            due: None,
            agent: Some("anna".into()),
            queue: Some("support".into()),
        }
    }

    #[test]
    fn render_fills_every_known_placeholder_and_unescapes_braces() {
        let text = "Dear {customer_name}, case {number} in {queue} ({agent}). {{literal}}";
        assert_eq!(render(text, &values()).unwrap(), "Dear Ann {Lee}, case MR-2026-000042 in support (anna). {literal}");
    }

    #[test]
    fn render_refuses_an_unresolved_placeholder_naming_it() {
        let e = render("We answer by {due}.", &values()).unwrap_err();
        assert!(e.contains("{due}"), "{e}");
        let e = render("Hello {name}", &values()).unwrap_err();
        assert!(e.contains("{name}") && e.contains("not a placeholder"), "{e}");
        let e = render("Hello {customer name}", &values()).unwrap_err();
        assert!(e.contains("not a placeholder"), "{e}");
        assert!(render("a { b", &values()).unwrap_err().contains("not closed"));
        assert!(render("a } b", &values()).unwrap_err().contains("not opened"));
        let blank = Values { customer_name: Some("  ".into()), ..values() };
        assert!(render("{customer_name}", &blank).unwrap_err().contains("{customer_name}"), "a blank name is no name");
    }

    #[test]
    fn fill_keeps_the_text_in_the_language_and_leaves_unknown_values_visible() {
        let filled = fill("Dear {customer_name}, by {due}. {{x}}", &values());
        assert_eq!(filled, "Dear Ann {{Lee}}, by {due}. {{x}}");
        // Sending what was filled without touching it refuses the one unresolved placeholder …
        assert!(render(&filled, &values()).unwrap_err().contains("{due}"));
        // … and once it has a value, the customer's braces come through as they were.
        let with_due = Values { due: Some("Mon 2 Mar".into()), ..values() };
        assert_eq!(render(&filled, &with_due).unwrap(), "Dear Ann {Lee}, by Mon 2 Mar. {x}");
    }

    #[test]
    fn check_names_unknown_placeholders_and_lone_braces() {
        assert!(check("Dear {customer_name}, {{ok}} {number} {due} {agent} {queue}").is_ok());
        assert!(check("Dear {customer}").unwrap_err().contains("unknown placeholder {customer}"));
        assert!(check("a {").is_err());
        assert!(check("a }").is_err());
    }

    #[test]
    fn scope_by_queue_and_category() {
        let t = ReplyTemplate { name: "t".into(), queues: vec!["support".into()], categories: vec![], subject: None, body: "x".into() };
        assert!(t.in_scope("support", None) && !t.in_scope("sales", None));
        let c = ReplyTemplate { queues: vec![], categories: vec!["BZZX".into()], ..t };
        assert!(c.in_scope("sales", Some("BZZX")) && !c.in_scope("sales", None) && !c.in_scope("sales", Some("OTHR")));
    }
}
