//! One SMTP client transaction with the smarthost (mail-send): connecting with the configured
//! TLS, MAIL/RCPT/DATA, and what a failure means for the row (temporary, permanent, and whether
//! the connection may be reused).
//!
//! Failures are named by kind and SMTP code (`RCPT: 550 5.1.1`): never an address or reply text.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::config::{SmarthostConfig, TlsMode};
use crate::store::outbox::Mail;

/// Why an attempt failed: a short kind with SMTP codes, never addresses or reply text (which
/// often quotes the address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// Try again later.
    Temporary(String),
    /// The smarthost refused this message for good (5xx in the transaction).
    Permanent(String),
}

impl Failure {
    pub(super) fn text(&self) -> &str {
        match self {
            Failure::Temporary(t) | Failure::Permanent(t) => t,
        }
    }
}

fn reply_kind(step: &str, reply: &smtp_proto::Response<String>) -> String {
    let esc = if reply.esc[0] != 0 { format!(" {}.{}.{}", reply.esc[0], reply.esc[1], reply.esc[2]) } else { String::new() };
    format!("{step}: {}{esc}", reply.code)
}

/// Describes a mail-send error without anything the peer said in free text.
fn error_kind(step: &str, e: &mail_send::Error) -> String {
    match e {
        mail_send::Error::Io(io) => format!("{step}: {}", io.kind()),
        mail_send::Error::Tls(_) => format!("{step}: TLS handshake failed"),
        mail_send::Error::Base64(_) | mail_send::Error::Auth(_) => format!("{step}: authentication exchange failed"),
        mail_send::Error::UnparseableReply => format!("{step}: connection closed or unparseable reply"),
        mail_send::Error::UnexpectedReply(reply) => reply_kind(step, reply),
        mail_send::Error::AuthenticationFailed(reply) => reply_kind(&format!("{step} AUTH"), reply),
        mail_send::Error::InvalidTLSName => format!("{step}: invalid TLS name for the smarthost"),
        mail_send::Error::MissingCredentials => format!("{step}: missing credentials"),
        mail_send::Error::MissingMailFrom | mail_send::Error::MissingRcptTo => format!("{step}: incomplete envelope"),
        mail_send::Error::UnsupportedAuthMechanism => format!("{step}: no supported AUTH mechanism"),
        mail_send::Error::Timeout => format!("{step}: timeout"),
        mail_send::Error::MissingStartTls => format!("{step}: smarthost does not offer STARTTLS"),
    }
}

/// A failed step inside the transaction: permanent for a 5xx, temporary otherwise. `broken` says
/// the connection cannot be reused.
fn transaction_failure(step: &str, e: &mail_send::Error) -> (Failure, bool) {
    match e {
        mail_send::Error::UnexpectedReply(reply) if (500..600).contains(&reply.code) => {
            (Failure::Permanent(reply_kind(step, reply)), false)
        }
        mail_send::Error::UnexpectedReply(reply) if (400..500).contains(&reply.code) => {
            (Failure::Temporary(reply_kind(step, reply)), false)
        }
        other => (Failure::Temporary(error_kind(step, other)), true),
    }
}

/// `data` with every line end CRLF (a bare CR or LF becomes one): the form that goes on the wire,
/// and so the one a DKIM signature is computed over.
pub(super) fn crlf_lines(data: &[u8]) -> Cow<'_, [u8]> {
    let needs_crlf = data
        .iter()
        .enumerate()
        .any(|(i, b)| (*b == b'\n' && (i == 0 || data[i - 1] != b'\r')) || (*b == b'\r' && data.get(i + 1) != Some(&b'\n')));
    if !needs_crlf {
        return Cow::Borrowed(data);
    }
    let mut v = Vec::with_capacity(data.len() + data.len() / 32);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                v.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => v.extend_from_slice(b"\r\n"),
            b => v.push(b),
        }
        i += 1;
    }
    Cow::Owned(v)
}

/// The bytes as mail-send should get them: CRLF line ends, no final CRLF (it appends
/// `CRLF . CRLF` itself, which would add an empty line), and a leading dot stuffed (it only
/// stuffs dots that follow a line end).
fn wire_data(data: &[u8]) -> Cow<'_, [u8]> {
    let mut out = crlf_lines(data);
    if out.ends_with(b"\r\n") {
        match &mut out {
            Cow::Borrowed(b) => *b = &b[..b.len() - 2],
            Cow::Owned(v) => v.truncate(v.len() - 2),
        }
    }
    if out.first() == Some(&b'.') {
        let mut v = Vec::with_capacity(out.len() + 1);
        v.push(b'.');
        v.extend_from_slice(&out);
        out = Cow::Owned(v);
    }
    out
}

pub(super) enum Connection {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

/// The outcome of one delivery.
pub(super) enum Delivery {
    /// Every recipient accepted the message.
    Sent,
    /// Sent to some recipients; the others were refused permanently (text says which codes).
    Partial(String),
}

pub(super) struct Sender {
    pub(super) smarthost: SmarthostConfig,
    builder: SmtpClientBuilder<String>,
    timeout: Duration,
}

impl Sender {
    pub(super) fn new(smarthost: SmarthostConfig, timeout: Duration) -> Result<Sender, String> {
        let mut builder = match smarthost.tls {
            TlsMode::None => SmtpClientBuilder::new_with_tls_connector(smarthost.host.clone(), smarthost.port, unused_tls_connector()?),
            TlsMode::Starttls | TlsMode::Implicit => {
                let builder = SmtpClientBuilder::new(smarthost.host.clone(), smarthost.port)?;
                if smarthost.allow_invalid_certs { builder.allow_invalid_certs() } else { builder }
            }
        };
        builder = builder.implicit_tls(smarthost.tls == TlsMode::Implicit).helo_host(smarthost.hello.clone()).timeout(timeout);
        if let (Some(username), Some(secret)) = (&smarthost.username, &smarthost.password) {
            builder = builder.credentials(Credentials::Plain { username: username.clone(), secret: secret.clone() });
        }
        Ok(Sender { smarthost, builder, timeout })
    }

    pub(super) async fn connect(&self) -> Result<Connection, Failure> {
        // mail-send does not bound the greeting read of a plain connection; bound everything here.
        let attempt = async {
            match self.smarthost.tls {
                TlsMode::None => self.builder.connect_plain().await.map(Connection::Plain),
                TlsMode::Starttls | TlsMode::Implicit => self.builder.connect().await.map(|c| Connection::Tls(Box::new(c))),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            // Anything going wrong before the transaction is about the smarthost, not the row.
            Ok(Err(e)) => Err(Failure::Temporary(error_kind("connect", &e))),
            Err(_) => Err(Failure::Temporary("connect: timeout".into())),
        }
    }

    /// Sends one message on an open connection; returns whether the connection may be reused.
    pub(super) async fn send(&self, conn: &mut Connection, mail: &Mail) -> (Result<Delivery, Failure>, bool) {
        let attempt = async {
            match conn {
                Connection::Plain(client) => transact(client, mail).await,
                Connection::Tls(client) => transact(client, mail).await,
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => (Err(Failure::Temporary("send: timeout".into())), false),
        }
    }
}

/// A connector that is never used (plain SMTP), built without touching the platform's trust store.
fn unused_tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// MAIL, RCPT for each recipient, DATA. A 5xx refusal of every recipient, of MAIL or of the data
/// is permanent; a 4xx anywhere makes the whole message wait for another attempt (RSET first).
async fn transact<T: AsyncRead + AsyncWrite + Unpin>(client: &mut SmtpClient<T>, mail: &Mail) -> (Result<Delivery, Failure>, bool) {
    if mail.to.is_empty() {
        return (Err(Failure::Permanent("no recipients".into())), true);
    }
    let mut params = Parameters::new();
    if !mail.from.is_ascii() || mail.to.iter().any(|t| !t.is_ascii()) {
        params.add("SMTPUTF8");
    }
    if let Err(e) = client.mail_from(&mail.from, &params).await {
        return abort(client, transaction_failure("MAIL", &e)).await;
    }
    let none = Parameters::new();
    let mut accepted = 0usize;
    let mut refused: Vec<String> = Vec::new();
    for rcpt in &mail.to {
        match client.rcpt_to(rcpt, &none).await {
            Ok(()) => accepted += 1,
            Err(e) => match transaction_failure("RCPT", &e) {
                (Failure::Permanent(kind), _) => refused.push(kind),
                failure => return abort(client, failure).await,
            },
        }
    }
    if accepted == 0 {
        let kind = refused.first().cloned().unwrap_or_else(|| "RCPT: refused".into());
        return abort(client, (Failure::Permanent(kind), false)).await;
    }
    match client.data(wire_data(&mail.data).as_ref()).await {
        Ok(_) if refused.is_empty() => (Ok(Delivery::Sent), true),
        Ok(_) => (Ok(Delivery::Partial(format!("{} of {} recipients refused ({})", refused.len(), mail.to.len(), refused[0]))), true),
        Err(e) => {
            let (failure, broken) = transaction_failure("DATA", &e);
            // After a reply to the final dot the transaction is over: no RSET needed.
            (Err(failure), !broken)
        }
    }
}

async fn abort<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    (failure, broken): (Failure, bool),
) -> (Result<Delivery, Failure>, bool) {
    let reusable = !broken && client.rset().await.is_ok();
    (Err(failure), reusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_data_normalises_for_mail_send() {
        assert_eq!(wire_data(b"a\r\nb\r\n").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b"a\nb\n").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b"a\rb").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b"a\r\nb").as_ref(), b"a\r\nb");
        assert_eq!(wire_data(b".x\r\n").as_ref(), b"..x");
        assert!(matches!(wire_data(b"a\r\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn failure_kinds_carry_codes_not_text() {
        let reply = smtp_proto::Response { code: 550, esc: [5, 1, 1], message: "<jane@customer.example>: no such user".to_string() };
        let (failure, broken) = transaction_failure("RCPT", &mail_send::Error::UnexpectedReply(reply));
        assert_eq!(failure, Failure::Permanent("RCPT: 550 5.1.1".into()));
        assert!(!broken);
        let reply = smtp_proto::Response { code: 451, esc: [0, 0, 0], message: "try later jane@customer.example".to_string() };
        assert_eq!(transaction_failure("DATA", &mail_send::Error::UnexpectedReply(reply)).0, Failure::Temporary("DATA: 451".into()));
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(error_kind("connect", &mail_send::Error::Io(io)), "connect: connection refused");
    }
}
