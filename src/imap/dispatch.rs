//! The command table: which command runs in which state, and the answers to commands this
//! read-only view refuses.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::{Atom, NonEmptyVec};
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::response::{Capability, Data};
use zeroize::Zeroize;

use super::condstore;
use super::session::{Flow, Handled, Session};
use super::wire;

/// The answers to APPEND and EXPUNGE: this view is read-only.
pub const APPEND_REFUSED: &str = "Mail reaches a queue only by SMTP; nothing can be added here";
pub const EXPUNGE_REFUSED: &str = "Registered mail cannot be deleted here; close the case through the HTTP API";

/// Commands a syntax error is reported for as such (anything else is "unknown").
const KNOWN: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "ENABLE",
];

impl Session {
    pub(super) async fn dispatch(&mut self, raw: &[u8]) -> Handled {
        let Some(tag) = wire::tag_of(raw).map(str::to_string) else {
            self.bad(None, "Missing or invalid tag");
            return Ok(Flow::Continue);
        };
        let tag = tag.as_str();
        let verbs = wire::verbs(raw, 2);
        // What imap-codec 1.0 does not parse but clients send.
        match verbs.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["ID", ..] => return Ok(self.id(tag)),
            ["UID", "EXPUNGE"] if self.selected.is_some() => {
                self.out.no(tag, Some("CANNOT"), EXPUNGE_REFUSED);
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        // CONDSTORE syntax imap-codec 1.0 does not know.
        let (line, modifiers) = condstore::extract(raw);
        let raw = &line[..];
        let command = match CommandCodec::default().decode(raw) {
            Ok((b"", command)) => command,
            _ => {
                let known = verbs.first().is_some_and(|v| KNOWN.contains(&v.as_str()));
                self.bad(Some(tag), if known { "Syntax error in arguments" } else { "Unknown command" });
                return Ok(Flow::Continue);
            }
        };
        let body = command.body;
        // Any state.
        match body {
            CommandBody::Capability => {
                let caps: Vec<Capability> =
                    self.capabilities().into_iter().map(|c| Capability::from(Atom::try_from(c).expect("capability atoms"))).collect();
                self.out.data(Data::Capability(NonEmptyVec::try_from(caps).expect("IMAP4rev1 is there")));
                self.out.ok(tag, None, "CAPABILITY completed");
                return Ok(Flow::Continue);
            }
            CommandBody::Logout => {
                self.out.bye(None, "Logging out");
                self.out.ok(tag, None, "LOGOUT completed");
                return Ok(Flow::Close);
            }
            CommandBody::Noop if self.principal.is_none() => {
                self.out.ok(tag, None, "NOOP completed");
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        if self.principal.is_none() {
            return match body {
                CommandBody::StartTLS if self.tls => {
                    self.bad(Some(tag), "TLS is already active");
                    Ok(Flow::Continue)
                }
                CommandBody::StartTLS => {
                    self.out.ok(tag, None, "Begin TLS negotiation now");
                    Ok(Flow::StartTls)
                }
                CommandBody::Login { username, password } => {
                    let name = String::from_utf8_lossy(username.as_ref()).into_owned();
                    let mut password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                    let flow = self.login(tag, &name, &password).await;
                    password.zeroize();
                    flow
                }
                CommandBody::Authenticate { mechanism, initial_response } => {
                    let initial = initial_response.map(|r| r.declassify().to_vec());
                    self.authenticate(tag, mechanism, initial).await
                }
                _ => {
                    self.bad(Some(tag), "Log in first");
                    Ok(Flow::Continue)
                }
            };
        }
        match body {
            CommandBody::StartTLS | CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                self.bad(Some(tag), "Already logged in");
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        if modifiers.enables() {
            self.condstore = true;
        }
        // Logged in: the user as they are now.
        if !self.refresh_principal().await? {
            return Ok(Flow::Close);
        }
        // EXPUNGE responses may not interrupt FETCH, STORE or SEARCH by sequence number.
        let expunge_allowed = !matches!(
            body,
            CommandBody::Fetch { uid: false, .. } | CommandBody::Store { uid: false, .. } | CommandBody::Search { uid: false, .. }
        );
        if !matches!(body, CommandBody::Select { .. } | CommandBody::Examine { .. } | CommandBody::Close | CommandBody::Unselect) {
            self.sync(expunge_allowed).await?;
        }
        match body {
            CommandBody::Noop => {
                self.out.ok(tag, None, "NOOP completed");
                Ok(Flow::Continue)
            }
            CommandBody::Enable { capabilities } => {
                // Of what can be enabled, only CONDSTORE is offered (no UTF8=ACCEPT).
                let enabled: Vec<CapabilityEnable> =
                    capabilities.as_ref().iter().filter(|c| matches!(c, CapabilityEnable::CondStore)).cloned().collect();
                if !enabled.is_empty() {
                    self.condstore = true;
                }
                self.out.data(Data::Enabled { capabilities: enabled });
                self.out.ok(tag, None, "ENABLE completed");
                Ok(Flow::Continue)
            }
            CommandBody::Idle => self.idle(tag).await,
            CommandBody::List { reference, mailbox_wildcard } => self.list(tag, &reference, &mailbox_wildcard, false),
            CommandBody::Lsub { reference, mailbox_wildcard } => self.list(tag, &reference, &mailbox_wildcard, true),
            CommandBody::Status { mailbox, item_names } => self.status(tag, &mailbox, &item_names).await,
            CommandBody::Select { mailbox } => self.select(tag, &mailbox, false).await,
            CommandBody::Examine { mailbox } => self.select(tag, &mailbox, true).await,
            CommandBody::Subscribe { .. } | CommandBody::Unsubscribe { .. } => {
                // Every queue the user may read is listed anyway.
                self.out.ok(tag, None, "Completed");
                Ok(Flow::Continue)
            }
            CommandBody::Create { .. } | CommandBody::Delete { .. } | CommandBody::Rename { .. } => {
                self.out.no(tag, Some("CANNOT"), "Mailboxes are the configured queues; they cannot be created, deleted or renamed here");
                Ok(Flow::Continue)
            }
            CommandBody::Append { .. } => {
                self.out.no(tag, Some("CANNOT"), APPEND_REFUSED);
                Ok(Flow::Continue)
            }
            CommandBody::Check
            | CommandBody::Close
            | CommandBody::Unselect
            | CommandBody::Expunge
            | CommandBody::Search { .. }
            | CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. }
                if self.selected.is_none() =>
            {
                if std::mem::take(&mut self.revoked) {
                    self.out.no(tag, Some("NOPERM"), "Access to the selected mailbox was revoked");
                } else {
                    self.bad(Some(tag), "No mailbox selected");
                }
                Ok(Flow::Continue)
            }
            CommandBody::Check => {
                self.out.ok(tag, None, "CHECK completed");
                Ok(Flow::Continue)
            }
            CommandBody::Close | CommandBody::Unselect => {
                // Nothing is ever marked \Deleted, so CLOSE has nothing to expunge.
                self.selected = None;
                self.out.ok(tag, None, "Completed");
                Ok(Flow::Continue)
            }
            CommandBody::Expunge => {
                self.out.no(tag, Some("CANNOT"), EXPUNGE_REFUSED);
                Ok(Flow::Continue)
            }
            CommandBody::Copy { .. } | CommandBody::Move { .. } => {
                self.out.no(tag, Some("CANNOT"), "Registered mail cannot be copied or moved here; transfer the case through the HTTP API");
                Ok(Flow::Continue)
            }
            CommandBody::Fetch { sequence_set, macro_or_item_names, uid } => {
                self.fetch(tag, &sequence_set, macro_or_item_names, uid, &modifiers).await
            }
            CommandBody::Store { sequence_set, kind, response, flags, uid } => {
                self.store(tag, &sequence_set, kind, response, &flags, uid, modifiers.unchanged_since).await
            }
            CommandBody::Search { charset, criteria, uid } => self.search(tag, charset, &criteria, uid, modifiers.search_modseq).await,
            _ => {
                self.bad(Some(tag), "Command not supported");
                Ok(Flow::Continue)
            }
        }
    }

    fn id(&mut self, tag: &str) -> Flow {
        let line = format!("* ID (\"name\" \"mailroom\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION"));
        self.out.line(line.as_bytes());
        self.out.ok(tag, None, "ID completed");
        Flow::Continue
    }
}
