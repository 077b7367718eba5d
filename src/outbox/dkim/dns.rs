//! The DNS TXT record that publishes a DKIM public key (RFC 6376 §3.6.1, RFC 8463 for Ed25519).

use base64::Engine;

/// A TXT record's character-strings are at most 255 bytes each (RFC 1035 §3.3); a longer value
/// (any RSA key of 2048 bits or more) is published as several, which resolvers join.
pub const MAX_STRING: usize = 255;

/// The key algorithm as the record names it (`k=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

impl KeyKind {
    pub fn tag(self) -> &'static str {
        match self {
            KeyKind::Rsa => "rsa",
            KeyKind::Ed25519 => "ed25519",
        }
    }
}

/// A public key and where it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// `SELECTOR._domainkey.DOMAIN` (no final dot).
    pub name: String,
    /// The record's value, unsplit: `v=DKIM1; k=rsa; p=…`.
    pub value: String,
}

impl DnsRecord {
    /// `public_key`: for RSA the DER SubjectPublicKeyInfo (what OpenSSL-based verifiers expect;
    /// mail-auth takes it too), for Ed25519 the raw 32 bytes.
    pub fn new(selector: &str, domain: &str, kind: KeyKind, public_key: &[u8]) -> DnsRecord {
        let p = base64::engine::general_purpose::STANDARD.encode(public_key);
        DnsRecord {
            name: format!("{selector}._domainkey.{}", domain.trim_end_matches('.')),
            value: format!("v=DKIM1; k={}; p={p}", kind.tag()),
        }
    }

    /// The record as a zone-file line: `NAME. IN TXT "…" "…"`, the value in strings of at most
    /// 255 bytes.
    pub fn zone_line(&self) -> String {
        let strings: Vec<String> = split_strings(&self.value).into_iter().map(|s| format!("\"{s}\"")).collect();
        format!("{}. IN TXT {}", self.name, strings.join(" "))
    }
}

/// Splits a TXT value into character-strings of at most [`MAX_STRING`] bytes. The value is ASCII
/// (tags and base64), so every cut falls on a character boundary; a value with other characters
/// is cut before the character that would not fit.
pub fn split_strings(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = value;
    while rest.len() > MAX_STRING {
        let mut cut = MAX_STRING;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (part, tail) = rest.split_at(cut);
        parts.push(part);
        rest = tail;
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_at_most_255_bytes_and_join_to_the_value() {
        for len in [0usize, 1, 254, 255, 256, 510, 511, 1000] {
            let value: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let parts = split_strings(&value);
            assert!(parts.iter().all(|p| p.len() <= MAX_STRING), "{len}");
            assert_eq!(parts.concat(), value, "{len}");
            assert_eq!(parts.len(), len.div_ceil(MAX_STRING).max(1), "{len}: as few strings as fit");
            assert!(parts[..parts.len() - 1].iter().all(|p| p.len() == MAX_STRING), "{len}: all full but the last");
        }
        let wide = "é".repeat(200);
        let parts = split_strings(&wide);
        assert_eq!(parts.concat(), wide);
        assert_eq!(parts[0].len(), 254, "not cut inside a character");
    }

    #[test]
    fn zone_line_quotes_each_string() {
        let key = vec![0x5a; 294]; // the size of a 2048-bit SubjectPublicKeyInfo
        let record = DnsRecord::new("s1", "example.com.", KeyKind::Rsa, &key);
        assert_eq!(record.name, "s1._domainkey.example.com");
        assert!(record.value.starts_with("v=DKIM1; k=rsa; p=Wlpa"));
        let line = record.zone_line();
        let (head, strings) = line.split_once(" IN TXT ").unwrap();
        assert_eq!(head, "s1._domainkey.example.com.");
        let quoted: Vec<&str> = strings.split("\" \"").collect();
        assert_eq!(quoted.len(), 2, "{line}");
        let joined = strings.trim_matches('"').replace("\" \"", "");
        assert_eq!(joined, record.value);
        assert_eq!(quoted[0].trim_start_matches('"').len(), MAX_STRING);
        let ed = DnsRecord::new("e", "example.com", KeyKind::Ed25519, &[1; 32]);
        assert_eq!(ed.zone_line(), format!("e._domainkey.example.com. IN TXT \"{}\"", ed.value));
        assert!(ed.value.starts_with("v=DKIM1; k=ed25519; p="));
    }
}
