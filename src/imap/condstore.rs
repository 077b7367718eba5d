//! CONDSTORE (RFC 7162) syntax that imap-codec 1.0 does not parse: the `(CONDSTORE)` SELECT
//! parameter, the `MODSEQ` FETCH item, the `(CHANGEDSINCE n)` FETCH and `(UNCHANGEDSINCE n)`
//! STORE modifiers and the `MODSEQ n` search key. They are taken out of the command line before
//! the codec sees it and handed to the handler next to the parsed command.

use std::sync::LazyLock;

use regex::bytes::Regex;

/// What a command asked for beyond what the codec parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Modifiers {
    /// SELECT/EXAMINE … (CONDSTORE).
    pub condstore: bool,
    /// FETCH item MODSEQ.
    pub modseq_item: bool,
    /// FETCH … (CHANGEDSINCE n).
    pub changed_since: Option<u64>,
    /// STORE … (UNCHANGEDSINCE n) ….
    pub unchanged_since: Option<u64>,
    /// SEARCH … MODSEQ n … (messages with a mod-sequence of at least n).
    pub search_modseq: Option<u64>,
}

impl Modifiers {
    /// Any of these enables CONDSTORE for the session (RFC 7162 §3.1).
    pub fn enables(&self) -> bool {
        *self != Modifiers::default()
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid pattern")
}

static SELECT: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^(\S+ (?:SELECT|EXAMINE) .*?) \(CONDSTORE\)(\r?\n)$"));
static FETCH: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^(\S+ (?:UID )?FETCH .*?) \(CHANGEDSINCE (\d{1,19})\)(\r?\n)$"));
static FETCH_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^\S+ (?:UID )?FETCH \S+ "));
static MODSEQ_ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)(^|[ (])MODSEQ([ )\r\n])"));
static STORE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^(\S+ (?:UID )?STORE \S+) \(UNCHANGEDSINCE (\d{1,19})\)([^\n]*\n)$"));
static SEARCH: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)^(\S+ (?:UID )?SEARCH [^\r\n]*?)\bMODSEQ (?:"[^"]*" (?:priv|shared|all) )?(\d{1,19})([^\n]*\n)$"#));

/// The command without our extensions' syntax, and what it asked for. A line that does not use
/// them is returned as is.
pub fn extract(raw: &[u8]) -> (Vec<u8>, Modifiers) {
    let mut m = Modifiers::default();
    let number = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok());
    let mut line = raw.to_vec();
    if let Some(c) = SELECT.captures(&line) {
        m.condstore = true;
        line = [&c[1], &c[2]].concat();
    } else if FETCH_LINE.is_match(&line) {
        if let Some(c) = FETCH.captures(&line) {
            m.changed_since = number(&c[2]);
            line = [&c[1], &c[3]].concat();
        }
        let start = FETCH_LINE.find(&line).map_or(0, |f| f.end());
        let items = line[start..].to_vec();
        if MODSEQ_ITEM.is_match(&items) {
            m.modseq_item = true;
            // A lone MODSEQ becomes UID (always sent anyway); in a list it is just dropped.
            let mut rest = MODSEQ_ITEM.replace_all(&items, &b"${1}UID${2}"[..]).into_owned();
            if rest.starts_with(b"(") && rest.len() > 5 {
                rest = String::from_utf8_lossy(&rest).replace(" UID)", ")").replace("(UID ", "(").into_bytes();
            }
            line = [&line[..start], &rest[..]].concat();
        }
    } else if let Some(c) = STORE.captures(&line) {
        m.unchanged_since = number(&c[2]);
        line = [&c[1], &c[3]].concat();
    } else if let Some(c) = SEARCH.captures(&line) {
        m.search_modseq = number(&c[2]);
        line = [&c[1], b"ALL", &c[3]].concat();
    }
    (line, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> (String, Modifiers) {
        let (line, m) = extract(s.as_bytes());
        (String::from_utf8(line).unwrap(), m)
    }

    #[test]
    fn condstore_syntax_is_taken_out() {
        let (l, m) = ex("a SELECT support (CONDSTORE)\r\n");
        assert_eq!((l.as_str(), m.condstore), ("a SELECT support\r\n", true));
        let (l, m) = ex("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n");
        assert_eq!((l.as_str(), m.changed_since), ("a UID FETCH 1:* (FLAGS)\r\n", Some(12345)));
        let (l, m) = ex("a FETCH 1:* (FLAGS MODSEQ)\r\n");
        assert_eq!((l.as_str(), m.modseq_item), ("a FETCH 1:* (FLAGS)\r\n", true));
        let (l, m) = ex("a FETCH 1 MODSEQ\r\n");
        assert_eq!((l.as_str(), m.modseq_item), ("a FETCH 1 UID\r\n", true));
        let (l, m) = ex("a FETCH 1 (MODSEQ)\r\n");
        assert_eq!((l.as_str(), m.modseq_item), ("a FETCH 1 (UID)\r\n", true));
        let (l, m) = ex("a UID STORE 1:5 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\\Seen)\r\n");
        assert_eq!((l.as_str(), m.unchanged_since), ("a UID STORE 1:5 +FLAGS.SILENT (\\Seen)\r\n", Some(7)));
        let (l, m) = ex("a SEARCH UNSEEN MODSEQ 40\r\n");
        assert_eq!((l.as_str(), m.search_modseq), ("a SEARCH UNSEEN ALL\r\n", Some(40)));
        let (l, m) = ex("a NOOP\r\n");
        assert_eq!((l.as_str(), m.enables()), ("a NOOP\r\n", false));
        // A mailbox called MODSEQ is not an item.
        let (l, m) = ex("a SELECT MODSEQ\r\n");
        assert_eq!((l.as_str(), m.enables()), ("a SELECT MODSEQ\r\n", false));
    }
}
