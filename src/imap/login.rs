//! Before login: STARTTLS, LOGIN and AUTHENTICATE PLAIN (passwords only over TLS).

use std::io;

use base64::Engine;
use imap_codec::imap_types::auth::AuthMechanism;
use zeroize::Zeroize;

use super::session::{Flow, Handled, Session};
use crate::access::LoginError;
use crate::net::Stream;

/// Failed logins on one connection before it is closed (`Access` also throttles per user and
/// per address across connections).
const MAX_LOGIN_FAILURES: u32 = 3;

impl Session {
    pub(super) async fn start_tls(&mut self) -> io::Result<()> {
        // Anything pipelined after STARTTLS arrived in clear text: it must never run inside TLS
        // (CVE-2011-0411).
        self.buf.clear();
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("STARTTLS on a stream that is not plain"));
        };
        let tls = tokio::time::timeout_at(self.login_deadline, self.ctx.tls.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Stream::Tls(Box::new(tls));
        self.tls = true;
        Ok(())
    }

    pub(super) async fn login(&mut self, tag: &str, name: &str, password: &str) -> Handled {
        if !self.tls {
            // LOGINDISABLED: the password has crossed the wire in clear already; it is not even
            // checked, so a sniffed guess cannot be confirmed here either.
            self.out.no(tag, Some("PRIVACYREQUIRED"), "Use STARTTLS first; passwords are not accepted in clear text");
            return Ok(Flow::Continue);
        }
        match self.ctx.access.login(name, password, self.peer.ip(), "imap").await {
            Ok(principal) if principal.two_factor_missing => {
                self.out.no(tag, Some("AUTHENTICATIONFAILED"), "Your role requires two-factor login: enrol on the web page first");
                Ok(Flow::Continue)
            }
            Ok(principal) => {
                tracing::debug!(user = %principal.name, "IMAP login");
                self.principal = Some(principal);
                let code = self.capability_code();
                self.out.ok(tag, Some(&code), "Logged in");
                Ok(Flow::Continue)
            }
            Err(e) => {
                match e {
                    LoginError::Invalid | LoginError::Locked | LoginError::WrongCode => {
                        self.out.no(tag, Some("AUTHENTICATIONFAILED"), "Invalid credentials")
                    }
                    // IMAP has no place for a code.
                    LoginError::CodeRequired => self.out.no(
                        tag,
                        Some("AUTHENTICATIONFAILED"),
                        "Two-factor login is on for this account: IMAP takes an app password",
                    ),
                    LoginError::Throttled { .. } => self.out.no(tag, Some("UNAVAILABLE"), "Too many failed logins, try again later"),
                    LoginError::Busy { .. } => {
                        // Nothing was checked: not the client's failure, so it does not count towards the BYE.
                        self.out.no(tag, Some("UNAVAILABLE"), "Server busy, try again later");
                        return Ok(Flow::Continue);
                    }
                    LoginError::Store(e) => return Err(e.into()),
                }
                self.login_failures += 1;
                if self.login_failures >= MAX_LOGIN_FAILURES {
                    self.out.bye(None, "Too many failed logins");
                    return Ok(Flow::Close);
                }
                Ok(Flow::Continue)
            }
        }
    }

    pub(super) async fn authenticate(&mut self, tag: &str, mechanism: AuthMechanism<'_>, initial: Option<Vec<u8>>) -> Handled {
        if !self.tls {
            self.out.no(tag, Some("PRIVACYREQUIRED"), "Use STARTTLS first; passwords are not accepted in clear text");
            return Ok(Flow::Continue);
        }
        if mechanism != AuthMechanism::Plain {
            self.out.no(tag, None, "Unsupported authentication mechanism (AUTH=PLAIN is offered)");
            return Ok(Flow::Continue);
        }
        let mut response = match initial {
            Some(r) => r,
            None => {
                self.out.line(b"+ ");
                self.flush().await?;
                let deadline = self.read_deadline();
                let line = match self.read_line(deadline).await? {
                    Ok(line) => line,
                    Err(input) => {
                        self.close_with(input).await?;
                        return Ok(Flow::Close);
                    }
                };
                let line = line.trim_ascii();
                if line == b"*" {
                    self.bad(Some(tag), "Authentication cancelled");
                    return Ok(Flow::Continue);
                }
                match base64::engine::general_purpose::STANDARD.decode(line) {
                    Ok(r) => r,
                    Err(_) => {
                        self.bad(Some(tag), "Invalid base64 in the authentication response");
                        return Ok(Flow::Continue);
                    }
                }
            }
        };
        // RFC 4616: [authzid] NUL authcid NUL passwd.
        let parts: Vec<&[u8]> = response.split(|b| *b == 0).collect();
        let flow = match parts.as_slice() {
            [authzid, authcid, password] if authzid.is_empty() || authzid == authcid => {
                let name = String::from_utf8_lossy(authcid).into_owned();
                let mut password = String::from_utf8_lossy(password).into_owned();
                let flow = self.login(tag, &name, &password).await;
                password.zeroize();
                flow
            }
            [_, _, _] => {
                self.out.no(tag, Some("AUTHORIZATIONFAILED"), "Acting as another user is not supported");
                Ok(Flow::Continue)
            }
            _ => {
                self.bad(Some(tag), "Malformed PLAIN response");
                Ok(Flow::Continue)
            }
        };
        response.zeroize();
        flow
    }
}
