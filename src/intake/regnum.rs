//! Registration numbers: `MR-{year}-{seq:06}-{check}` by default.
//!
//! The check digit (Damm algorithm) catches every single-digit typo and every swap of two adjacent
//! digits, so a mistyped or forged number quoted in a subject is recognised as invalid instead of
//! silently threading a message onto somebody else's case.

/// The Damm quasigroup of order 10 (totally anti-symmetric, so adjacent transpositions are caught).
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// The Damm check digit of a string of decimal digits (non-digits are skipped).
pub fn damm(digits: &str) -> u8 {
    digits.bytes().filter(u8::is_ascii_digit).fold(0, |interim, d| DAMM[interim as usize][(d - b'0') as usize])
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Year,
    Seq { width: usize },
    Check,
}

/// A parsed `registration.format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegFormat {
    parts: Vec<Part>,
}

/// Why a string is not a valid registration number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegNumError {
    #[error("not a registration number")]
    Malformed,
    #[error("registration number has a wrong check digit")]
    BadCheckDigit,
}

impl RegFormat {
    pub fn parse(template: &str) -> Result<RegFormat, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                parts.push(Part::Literal(rest.to_string()));
                break;
            };
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or("unclosed '{'")? + open;
            let placeholder = &rest[open + 1..close];
            parts.push(match placeholder {
                "year" => Part::Year,
                "check" => Part::Check,
                "seq" => Part::Seq { width: 1 },
                p if p.starts_with("seq:") => {
                    let width = p[4..].trim_start_matches('0');
                    let width: usize = if width.is_empty() { 1 } else { width.parse().map_err(|_| format!("bad width in {{{p}}}"))? };
                    if !(1..=12).contains(&width) {
                        return Err(format!("width in {{{p}}} must be 1..12"));
                    }
                    Part::Seq { width }
                }
                other => return Err(format!("unknown placeholder {{{other}}}; use {{year}}, {{seq:06}}, {{check}}")),
            });
            rest = &rest[close + 1..];
        }
        let count = |f: fn(&Part) -> bool| parts.iter().filter(|p| f(p)).count();
        if count(|p| matches!(p, Part::Seq { .. })) != 1 {
            return Err("must contain {seq} (or {seq:0N}) exactly once".into());
        }
        if count(|p| matches!(p, Part::Year)) > 1 || count(|p| matches!(p, Part::Check)) > 1 {
            return Err("{year} and {check} may appear at most once".into());
        }
        if let Some(Part::Literal(l)) = parts.iter().find(|p| matches!(p, Part::Literal(l) if !l.bytes().all(|b| b.is_ascii_graphic()))) {
            return Err(format!("literal text {l:?} must be printable ASCII without spaces"));
        }
        if parts.iter().any(|p| matches!(p, Part::Literal(l) if l.contains(['[', ']']))) {
            return Err("literal text must not contain '[' or ']' (numbers are quoted in brackets in subjects)".into());
        }
        let format = RegFormat { parts };
        // Every number must read back, or threading and `message show` cannot find it: a {seq}
        // followed directly by digits ({year}, a digit literal) swallows them.
        for seq in [1, 42, 999_999, 123_456_789_012] {
            let number = format.format(2026, seq);
            if format.parse_number(&number, false) != Ok((format.counter_year(2026), seq)) {
                return Err(format!(
                    "numbers in this format cannot be read back ({number:?}): put a non-digit between {{seq}} and what follows"
                ));
            }
        }
        Ok(format)
    }

    /// Whether the sequence restarts each year (the format shows the year).
    pub fn is_yearly(&self) -> bool {
        self.parts.contains(&Part::Year)
    }

    /// The counter a number belongs to: the year for yearly formats, 0 otherwise.
    pub fn counter_year(&self, year: i32) -> i32 {
        if self.is_yearly() { year } else { 0 }
    }

    /// Damm over exactly the digits shown (year, then the zero-padded sequence), so an error in
    /// a padding zero is caught like any other.
    fn check_digit(&self, year: i32, seq: u64) -> u8 {
        let width = self.parts.iter().find_map(|p| if let Part::Seq { width } = p { Some(*width) } else { None }).unwrap_or(1);
        if self.is_yearly() { damm(&format!("{year:04}{seq:0width$}")) } else { damm(&format!("{seq:0width$}")) }
    }

    /// Formats a number; `year` is the counter year (ignored by formats without `{year}`).
    pub fn format(&self, year: i32, seq: u64) -> String {
        let check = self.check_digit(year, seq);
        let mut out = String::with_capacity(24);
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Year => out.push_str(&format!("{year:04}")),
                Part::Seq { width } => out.push_str(&format!("{seq:0width$}")),
                Part::Check => out.push((b'0' + check) as char),
            }
        }
        out
    }

    /// Parses a number (case-insensitive literals) back into (year, seq), verifying the check digit.
    /// A number written without its check digit is accepted when `allow_missing_check` is set
    /// (operators type numbers by hand on the command line; threading never allows it).
    pub fn parse_number(&self, text: &str, allow_missing_check: bool) -> Result<(i32, u64), RegNumError> {
        let bytes = text.as_bytes();
        let mut pos = 0;
        let (mut year, mut seq, mut check) = (0i32, None::<u64>, None::<u8>);
        let digits_at = |pos: usize| bytes[pos..].iter().take_while(|b| b.is_ascii_digit()).count();
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(l) => {
                    let end = pos + l.len();
                    if end > bytes.len() || !bytes[pos..end].eq_ignore_ascii_case(l.as_bytes()) {
                        // The literal before a missing check digit may be missing too ("-{check}").
                        if allow_missing_check && check.is_none() && pos == bytes.len() && self.parts[i + 1..] == [Part::Check] {
                            break;
                        }
                        return Err(RegNumError::Malformed);
                    }
                    pos = end;
                }
                Part::Year => {
                    if digits_at(pos) < 4 {
                        return Err(RegNumError::Malformed);
                    }
                    year = text[pos..pos + 4].parse().map_err(|_| RegNumError::Malformed)?;
                    pos += 4;
                }
                Part::Seq { width } => {
                    let mut n = digits_at(pos);
                    // "{seq}{check}" with nothing between: the last digit is the check digit.
                    if self.parts.get(i + 1) == Some(&Part::Check) && n > *width {
                        n -= 1;
                    }
                    if n < *width || n > 18 {
                        return Err(RegNumError::Malformed);
                    }
                    seq = Some(text[pos..pos + n].parse().map_err(|_| RegNumError::Malformed)?);
                    pos += n;
                }
                Part::Check => {
                    if pos == bytes.len() && allow_missing_check {
                        break;
                    }
                    if digits_at(pos) < 1 {
                        return Err(RegNumError::Malformed);
                    }
                    check = Some(bytes[pos] - b'0');
                    pos += 1;
                }
            }
        }
        if pos != bytes.len() {
            return Err(RegNumError::Malformed);
        }
        let seq = seq.ok_or(RegNumError::Malformed)?;
        if let Some(check) = check
            && check != self.check_digit(year, seq)
        {
            return Err(RegNumError::BadCheckDigit);
        }
        Ok((year, seq))
    }
}

/// A bracketed token in a subject that looks like one of our registration numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectTag {
    /// A valid number: (counter year, sequence) and the number as written.
    Valid { year: i32, seq: u64, text: String },
    /// Shaped like ours (same literal prefix) but not valid — typically a mistyped or forged
    /// check digit. Never threads; the message gets a tag so staff see it.
    Invalid { text: String },
}

impl RegFormat {
    /// The literal text every number starts with ("MR-" by default), if any.
    fn prefix(&self) -> Option<&str> {
        match self.parts.first() {
            Some(Part::Literal(l)) if !l.is_empty() => Some(l),
            _ => None,
        }
    }

    /// Registration tags in a subject: `[MR-2026-000123-4]`, as replies to our acknowledgements
    /// and staff replies carry them. Only bracketed tokens count, so a number merely mentioned in
    /// the text does not thread a message.
    pub fn find_tags(&self, subject: &str) -> Vec<SubjectTag> {
        let mut tags = Vec::new();
        let mut rest = subject;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let Some(close) = after.find(']') else { break };
            let token = after[..close].trim();
            match self.parse_number(token, false) {
                Ok((year, seq)) => tags.push(SubjectTag::Valid { year, seq, text: token.to_string() }),
                // Compared as bytes: the subject is the customer's text, and a prefix length may
                // fall inside a multi-byte character ("[MRé]"; found by the `extract` fuzz target).
                Err(_)
                    if self
                        .prefix()
                        .is_some_and(|p| token.as_bytes().get(..p.len()).is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes()))) =>
                {
                    tags.push(SubjectTag::Invalid { text: token.to_string() })
                }
                Err(_) => {}
            }
            rest = &after[close + 1..];
        }
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whose_numbers_do_not_read_back_are_refused() {
        for template in ["T{seq:04}{year}{check}", "{seq}1{check}", "MR]{seq}", "[{year}]-{seq}"] {
            assert!(RegFormat::parse(template).is_err(), "{template}");
        }
        for template in ["{seq}{check}", "{check}{seq}", "{year}{seq:06}{check}", "T{seq:04}-{year}{check}"] {
            assert!(RegFormat::parse(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn tags_with_multibyte_characters_where_the_prefix_ends() {
        let f = RegFormat::parse("MR-{year}-{seq:06}-{check}").unwrap();
        assert_eq!(f.find_tags("Re: [MR\u{e9}] and [M\u{1f600}]"), vec![]);
        assert_eq!(f.find_tags("[mr-\u{e9}]"), vec![SubjectTag::Invalid { text: "mr-\u{e9}".into() }]);
    }

    #[test]
    fn damm_known_vectors() {
        // Wikipedia's worked example: 572 → check digit 4; and 5724 validates to 0.
        assert_eq!(damm("572"), 4);
        assert_eq!(damm("5724"), 0);
    }

    #[test]
    fn default_format_round_trips() {
        let f = RegFormat::parse("MR-{year}-{seq:06}-{check}").unwrap();
        let n = f.format(2026, 123);
        assert!(n.starts_with("MR-2026-000123-"), "{n}");
        assert_eq!(f.parse_number(&n, false), Ok((2026, 123)));
        assert_eq!(f.parse_number(&n.to_lowercase(), false), Ok((2026, 123)));
        assert_eq!(f.parse_number("MR-2026-000123", true), Ok((2026, 123)));
        assert_eq!(f.parse_number("MR-2026-000123", false), Err(RegNumError::Malformed));
        assert_eq!(f.format(2026, 1234567), format!("MR-2026-1234567-{}", damm("20261234567")));
        assert_eq!(f.format(2026, 1), format!("MR-2026-000001-{}", damm("2026000001")));
        assert!(f.is_yearly());
    }

    #[test]
    fn every_single_digit_error_and_adjacent_swap_is_caught() {
        let f = RegFormat::parse("MR-{year}-{seq:06}-{check}").unwrap();
        for seq in [1u64, 42, 123, 99999, 314159] {
            let good = f.format(2026, seq);
            let digits: Vec<usize> = good.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
            for &i in &digits {
                for d in b'0'..=b'9' {
                    let mut bad = good.clone().into_bytes();
                    if bad[i] == d {
                        continue;
                    }
                    bad[i] = d;
                    let bad = String::from_utf8(bad).unwrap();
                    assert!(f.parse_number(&bad, false).is_err(), "{bad} accepted (from {good})");
                }
            }
            for w in digits.windows(2).filter(|w| w[1] == w[0] + 1) {
                let mut bad = good.clone().into_bytes();
                if bad[w[0]] == bad[w[1]] {
                    continue;
                }
                bad.swap(w[0], w[1]);
                let bad = String::from_utf8(bad).unwrap();
                assert!(f.parse_number(&bad, false).is_err(), "swap {bad} accepted (from {good})");
            }
        }
    }

    #[test]
    fn check_digit_glued_to_sequence() {
        let f = RegFormat::parse("T{seq:04}{check}").unwrap();
        let n = f.format(2026, 77);
        assert_eq!(n.len(), 6);
        assert_eq!(n, format!("T0077{}", damm("0077")));
        assert_eq!(f.parse_number(&n, false), Ok((0, 77)));
        assert!(!f.is_yearly());
        assert_eq!(f.counter_year(2026), 0);
    }

    #[test]
    fn tags_in_subjects() {
        let f = RegFormat::parse("MR-{year}-{seq:06}-{check}").unwrap();
        let good = f.format(2026, 123);
        let mut bad = good.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        let subject = format!("Re: [{good}] order, see also {good} and [{bad}] and [URGENT] [mr-2026-x]");
        assert_eq!(
            f.find_tags(&subject),
            vec![
                SubjectTag::Valid { year: 2026, seq: 123, text: good.clone() },
                SubjectTag::Invalid { text: bad.clone() },
                SubjectTag::Invalid { text: "mr-2026-x".into() },
            ]
        );
        assert_eq!(f.find_tags("AW: [ MR-2026-000123-0 ]").len(), 1);
        assert!(f.find_tags("no tags [here]").is_empty());
        assert!(f.find_tags("unclosed [MR-2026").is_empty());
    }

    #[test]
    fn bad_templates_are_rejected() {
        for t in ["MR-{year}", "MR-{seq}-{seq}", "MR-{nope}-{seq}", "MR {seq}", "MR-{seq:0}x{", "{seq:099}"] {
            assert!(RegFormat::parse(t).is_err(), "{t} accepted");
        }
    }
}
