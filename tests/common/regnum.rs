//! The registration-number oracle: the default format `MR-{year}-{seq:06}-{check}` and its Damm
//! check digit, computed independently of mailroom's own code.

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

pub fn damm(digits: &str) -> u8 {
    digits.bytes().fold(0u8, |i, d| DAMM[i as usize][(d - b'0') as usize])
}

/// A parsed default-format number `MR-YYYY-NNNNNN-C`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegNo {
    pub year: u32,
    pub seq: u64,
    pub check: u8,
}

/// Parse `MR-YYYY-NNNNNN-C` (format `MR-{year}-{seq:06}-{check}`), panicking on anything else.
pub fn parse_number(n: &str) -> RegNo {
    let parts: Vec<&str> = n.split('-').collect();
    let ok = parts.len() == 4
        && parts[0] == "MR"
        && parts[1].len() == 4
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && parts[2].len() >= 6
        && parts[2].bytes().all(|b| b.is_ascii_digit())
        && parts[3].len() == 1
        && parts[3].bytes().all(|b| b.is_ascii_digit());
    assert!(ok, "not a registration number of format MR-{{year}}-{{seq:06}}-{{check}}: {n:?}");
    RegNo { year: parts[1].parse().unwrap(), seq: parts[2].parse().unwrap(), check: parts[3].parse().unwrap() }
}

/// Same number with a different (wrong) check digit.
pub fn with_wrong_check(n: &str) -> String {
    let r = parse_number(n);
    let wrong = (r.check + 1) % 10;
    format!("MR-{:04}-{:06}-{}", r.year, r.seq, wrong)
}

/// `250 2.0.0 Registered NUMBER` → NUMBER (panics otherwise).
pub fn registered(line: &str) -> String {
    let rest =
        line.strip_prefix("250 2.0.0 Registered ").unwrap_or_else(|| panic!("expected `250 2.0.0 Registered <number>`, got {line:?}"));
    assert!(!rest.contains(' '), "expected `250 2.0.0 Registered <number>` (nothing after the number), got {line:?}");
    parse_number(rest);
    rest.to_string()
}
