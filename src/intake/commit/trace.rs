//! Our `Received:` header (RFC 5321 §4.4).

use super::super::Submission;

/// The trace header, naming the registration number as the message id and, in the comment after
/// our host name, the node that took the message.
pub(super) fn received_header(s: &Submission, number: &str) -> String {
    let t = &s.trace;
    let tls = s.tls.as_deref().map(|tls| format!("\r\n\t(using {tls})")).unwrap_or_default();
    format!(
        "Received: from {helo} ([{ip}])\r\n\tby {host} (mailroom {node}) with {with}{tls}\r\n\tid {number};\r\n\t{date}\r\n",
        helo = t.helo,
        ip = t.client_ip,
        host = t.hostname,
        node = t.node,
        with = t.with,
        date = s.received_at.to_rfc2822(),
    )
}
