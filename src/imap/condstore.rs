//! CONDSTORE (RFC 7162) syntax that imap-codec 1.0 does not parse: the `(CONDSTORE)` SELECT
//! parameter, the `MODSEQ` FETCH item, the `(CHANGEDSINCE n)` FETCH and `(UNCHANGEDSINCE n)`
//! STORE modifiers and the `MODSEQ n` search key. They are taken out of the command line before
//! the codec sees it and handed to the handler next to the parsed command. A `MODSEQ n` search
//! key may stand anywhere in the criteria (inside OR, NOT, parentheses, several times): each is
//! replaced by a keyword the codec parses where the key stood, [`modseq_key`], which the search
//! reads back as the key (no client can name it: it carries a per-process random part).

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
    /// SEARCH … MODSEQ n …: the search used the key (the numbers stand in the criteria as
    /// [`modseq_key`]s), so its answer names the highest mod-sequence found.
    pub search_modseq: bool,
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
static SEARCH_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^\S+ (?:UID )?SEARCH "));
static SEARCH_MODSEQ: LazyLock<Regex> = LazyLock::new(|| re(r#"(?i)\bMODSEQ (?:"[^"]*" (?:priv|shared|all) )?(\d{1,19})\b"#));

/// The keyword a `MODSEQ n` search key becomes; [`modseq_of_key`] reads it back.
pub fn modseq_key(n: u64) -> String {
    format!("{}{n}", *KEY_PREFIX)
}

/// The `n` of a keyword made by [`modseq_key`].
pub fn modseq_of_key(keyword: &str) -> Option<u64> {
    keyword.strip_prefix(KEY_PREFIX.as_str())?.parse().ok()
}

static KEY_PREFIX: LazyLock<String> = LazyLock::new(|| {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).expect("the system's random source");
    format!("$mailroom-modseq-{}-", nonce.iter().map(|b| format!("{b:02x}")).collect::<String>())
});

/// Whether `at` in `line` is outside a quoted string (a `MODSEQ` in `SUBJECT "…"` is text).
fn unquoted(line: &[u8], at: usize) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for b in &line[..at] {
        match (quoted, escaped, b) {
            (true, false, b'\\') => escaped = true,
            (_, true, _) => escaped = false,
            (_, false, b'"') => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

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
    } else if SEARCH_LINE.is_match(&line) {
        let mut rewritten = Vec::with_capacity(line.len());
        let mut last = 0;
        for c in SEARCH_MODSEQ.captures_iter(&line) {
            let whole = c.get(0).expect("the match");
            let Some(n) = number(&c[1]).filter(|_| unquoted(&line, whole.start())) else { continue };
            m.search_modseq = true;
            rewritten.extend_from_slice(&line[last..whole.start()]);
            rewritten.extend_from_slice(format!("KEYWORD {}", modseq_key(n)).as_bytes());
            last = whole.end();
        }
        if m.search_modseq {
            rewritten.extend_from_slice(&line[last..]);
            line = rewritten;
        }
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
        assert_eq!((l, m.search_modseq), (format!("a SEARCH UNSEEN KEYWORD {}\r\n", modseq_key(40)), true));
        // Anywhere, several times, with the entry name of RFC 7162; not inside a quoted string.
        let (l, m) = ex("a UID SEARCH OR MODSEQ 7 NOT (MODSEQ \"/flags/\\\\seen\" all 9 SUBJECT \"MODSEQ 3\")\r\n");
        let (k7, k9) = (modseq_key(7), modseq_key(9));
        assert_eq!((l, m.search_modseq), (format!("a UID SEARCH OR KEYWORD {k7} NOT (KEYWORD {k9} SUBJECT \"MODSEQ 3\")\r\n"), true));
        assert_eq!((modseq_of_key(&k9), modseq_of_key("$mailroom-modseq-9"), modseq_of_key("urgent")), (Some(9), None, None));
        let (l, m) = ex("a NOOP\r\n");
        assert_eq!((l.as_str(), m.enables()), ("a NOOP\r\n", false));
        // A mailbox called MODSEQ is not an item.
        let (l, m) = ex("a SELECT MODSEQ\r\n");
        assert_eq!((l.as_str(), m.enables()), ("a SELECT MODSEQ\r\n", false));
    }
}
