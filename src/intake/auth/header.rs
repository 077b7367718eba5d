//! The `Authentication-Results` header (RFC 8601) we store with each message.

use super::*;

/// Builds `Authentication-Results: host;\r\n\tmethod=result reason="…" prop=value;…\r\n`.
/// Every value written is reduced to a safe character set, so hostile input cannot inject
/// header lines or forge results.
pub(super) struct HeaderBuilder {
    text: String,
}

impl HeaderBuilder {
    pub(super) fn new(hostname: &str) -> Self {
        let host = pvalue(hostname);
        let host = if host.is_empty() { "localhost".to_string() } else { host };
        HeaderBuilder { text: format!("Authentication-Results: {host}") }
    }

    pub(super) fn method(&mut self, method: &str, verdict: Verdict, reason: Option<&str>, props: &[(&str, String)]) {
        self.text.push_str(";\r\n\t");
        self.text.push_str(method);
        self.text.push('=');
        self.text.push_str(verdict.as_str());
        if let Some(reason) = reason {
            let reason: String = reason.chars().filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\').take(100).collect();
            if !reason.trim().is_empty() {
                self.text.push_str(" reason=\"");
                self.text.push_str(reason.trim());
                self.text.push('"');
            }
        }
        for (name, value) in props {
            if !value.is_empty() {
                self.text.push(' ');
                self.text.push_str(name);
                self.text.push('=');
                self.text.push_str(value);
            }
        }
    }

    pub(super) fn finish(mut self) -> String {
        self.text.push_str("\r\n");
        self.text
    }
}

/// A property value: domain-name characters only (letters, digits, `.`, `-`, `_`), at most 255.
pub(super) fn pvalue(value: &str) -> String {
    value.trim().trim_end_matches('.').chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).take(255).collect()
}
