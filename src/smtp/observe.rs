//! What SMTP and LMTP sessions record in the metrics (rendered by `telemetry`). Labels come from
//! fixed sets only: the protocol, and a reply code from [`code_label`], never anything a client
//! sent.

use std::time::Duration;

use crate::intake::Protocol;

/// Reply codes we send, as labels; any other (there is none today) counts as "other".
const CODES: [&str; 22] = [
    "220", "221", "250", "251", "252", "354", "421", "450", "451", "452", "454", "500", "501", "502", "503", "504", "530", "550", "552",
    "553", "554", "555",
];

/// The label for the reply that starts `line` ("250-…" and "250 …" alike).
pub fn code_label(line: &[u8]) -> &'static str {
    line.get(..3).and_then(|code| CODES.iter().find(|c| c.as_bytes() == code)).copied().unwrap_or("other")
}

/// A session ended; `code` is the last reply it got (221 after QUIT, 421 when we closed it).
pub fn session_ended(protocol: Protocol, code: &'static str) {
    metrics::counter!("mailroom_smtp_sessions_total", "protocol" => protocol.name(), "code" => code).increment(1);
}

/// A RCPT was answered.
pub fn recipient(protocol: Protocol, code: &'static str) {
    metrics::counter!("mailroom_smtp_recipients_total", "protocol" => protocol.name(), "code" => code).increment(1);
}

/// A transaction ended with its final reply: `result` is registered, duplicate, refused or
/// tempfail; `received` the message bytes handed to intake; `latency` end of data → 250.
pub fn transaction(protocol: Protocol, code: &'static str, result: &'static str, received: usize, latency: Option<Duration>) {
    let name = protocol.name();
    metrics::counter!("mailroom_smtp_transactions_total", "protocol" => name, "code" => code, "result" => result).increment(1);
    metrics::counter!("mailroom_smtp_received_bytes_total", "protocol" => name).increment(received as u64);
    if let Some(latency) = latency {
        metrics::histogram!("mailroom_smtp_registration_duration_seconds", "protocol" => name).record(latency.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_labels_from_the_fixed_set() {
        assert_eq!(code_label(b"250-mx.example.com"), "250");
        assert_eq!(code_label(b"550 5.1.1 Mailbox unknown"), "550");
        assert_eq!(code_label(b"299 odd"), "other");
        assert_eq!(code_label(b"2"), "other");
    }
}
