//! Finding and opening mailboxes (the queues the user may read): LIST/LSUB, STATUS,
//! SELECT/EXAMINE.

use std::io;

use imap_codec::imap_types::core::{Atom, QuotedChar};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::mailbox::{self, Selected};
use super::session::{Flow, Handled, Session};

impl Session {
    /// A queue the user may read, by mailbox name; None for anything else (unknown and
    /// forbidden look the same).
    fn readable(&self, name: &str) -> Option<String> {
        let principal = self.principal.as_ref()?;
        let queues = self.ctx.settings.queues.iter().map(String::as_str);
        // INBOX is case-insensitive (a queue could be called "inbox").
        principal
            .readable_queues(queues)
            .into_iter()
            .find(|q| q == name || name.eq_ignore_ascii_case("INBOX") && q.eq_ignore_ascii_case("INBOX"))
    }

    pub(super) fn list(&mut self, tag: &str, reference: &Mailbox, pattern: &ListMailbox, lsub: bool) -> Handled {
        let reference = match reference {
            Mailbox::Inbox => b"INBOX".to_vec(),
            Mailbox::Other(o) => o.as_ref().to_vec(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => t.as_ref().to_vec(),
            ListMailbox::String(s) => s.as_ref().to_vec(),
        };
        let delimiter = Some(QuotedChar::try_from(mailbox::DELIMITER).expect("valid delimiter"));
        let verb = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() && !lsub {
            // The delimiter probe.
            let root = Mailbox::try_from("").expect("empty mailbox name");
            self.out.data(Data::List { items: vec![FlagNameAttribute::Noselect], delimiter, mailbox: root });
            self.out.ok(tag, None, "LIST completed");
            return Ok(Flow::Continue);
        }
        let full: Vec<u8> = [reference, pattern].concat();
        let queues = self.ctx.settings.queues.iter().map(String::as_str);
        let names = self.principal.as_ref().map(|p| p.readable_queues(queues)).unwrap_or_default();
        for name in names.into_iter().filter(|n| mailbox::list_matches(&full, n.as_bytes())) {
            let items = vec![FlagNameAttribute::from(Atom::try_from("HasNoChildren").expect("valid atom"))];
            let Ok(mailbox) = Mailbox::try_from(name) else { continue };
            self.out.data(if lsub { Data::Lsub { items, delimiter, mailbox } } else { Data::List { items, delimiter, mailbox } });
        }
        self.out.ok(tag, None, &format!("{verb} completed"));
        Ok(Flow::Continue)
    }

    pub(super) async fn status(&mut self, tag: &str, mailbox: &Mailbox<'_>, items: &[StatusDataItemName]) -> Handled {
        let Some(queue) = self.readable(&mailbox::mailbox_name(mailbox)) else {
            self.out.no(tag, Some("NONEXISTENT"), "No such mailbox");
            return Ok(Flow::Continue);
        };
        let store = &self.ctx.access.store;
        // Each count only when asked for: MESSAGES counts the queue, UNSEEN what is above the
        // user's watermark (a client polling UNSEEN pays for the unseen messages only).
        let mut values = Vec::new();
        let mut highest = None;
        for item in items {
            values.push(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(store.mailbox_message_count(&queue).await?),
                StatusDataItemName::Recent => StatusDataItem::Recent(0),
                StatusDataItemName::Unseen => StatusDataItem::Unseen(store.mailbox_unseen_count(&queue, self.user_id()).await?),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(nonzero(store.mailbox_uid_next().await?)),
                StatusDataItemName::UidValidity => StatusDataItem::UidValidity(nonzero(store.mailbox_uidvalidity(&queue).await?)),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(0),
                StatusDataItemName::HighestModSeq => {
                    highest = Some(store.mailbox_modseq().await?);
                    continue;
                }
                _ => continue,
            });
        }
        let mailbox = Mailbox::try_from(queue).map_err(|_| io::Error::other("queue name is not a mailbox name"))?;
        self.out.data(Data::Status { mailbox, items: values.into() });
        if let Some(highest) = highest {
            // imap-types 1.0 parses HIGHESTMODSEQ but cannot encode it: it goes before the `)`.
            let end = self.out.buf.len() - 3;
            let item = if self.out.buf[end - 1] == b'(' { format!("HIGHESTMODSEQ {highest}") } else { format!(" HIGHESTMODSEQ {highest}") };
            self.out.buf.splice(end..end, item.into_bytes());
        }
        self.out.ok(tag, None, "STATUS completed");
        Ok(Flow::Continue)
    }

    pub(super) async fn select(&mut self, tag: &str, mailbox: &Mailbox<'_>, read_only: bool) -> Handled {
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        self.selected = None;
        self.revoked = false;
        let Some(queue) = self.readable(&mailbox::mailbox_name(mailbox)) else {
            self.out.no(tag, Some("NONEXISTENT"), "No such mailbox");
            return Ok(Flow::Continue);
        };
        let store = &self.ctx.access.store;
        let uidvalidity = store.mailbox_uidvalidity(&queue).await?;
        // The counter first: anything written after it is reported again at the next command,
        // never lost.
        let modseq = store.mailbox_modseq().await?;
        let uids = store.mailbox_uids_after(&queue, 0).await?;
        let uid_next = store.mailbox_uid_next().await?;
        let first_unseen = store.mailbox_first_unseen(&queue, self.user_id()).await?;
        let sel = Selected::new(queue, read_only, uids, modseq);
        let categories = self.ctx.cases.settings().categories.iter().map(|c| c.code.clone()).collect::<Vec<_>>();
        self.out.data(Data::Flags(mailbox::all_flags(categories.into_iter())));
        self.out.data(Data::Exists(sel.exists()));
        self.out.data(Data::Recent(0));
        if let Some(first) = first_unseen.and_then(|uid| sel.index(uid)) {
            self.out.status(None, "OK", Some(&format!("UNSEEN {}", first + 1)), "First unseen message");
        }
        self.out.status(None, "OK", Some(&format!("UIDVALIDITY {uidvalidity}")), "UIDs valid");
        self.out.status(None, "OK", Some(&format!("UIDNEXT {uid_next}")), "Predicted next UID");
        self.out.status(None, "OK", Some(&format!("HIGHESTMODSEQ {modseq}")), "Highest");
        let permanent = if read_only { "PERMANENTFLAGS ()" } else { "PERMANENTFLAGS (\\Seen \\Flagged)" };
        self.out.status(None, "OK", Some(permanent), "Flags the user can change");
        self.out.ok(
            tag,
            Some(if read_only { "READ-ONLY" } else { "READ-WRITE" }),
            if read_only { "EXAMINE completed" } else { "SELECT completed" },
        );
        self.selected = Some(sel);
        Ok(Flow::Continue)
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n.max(1)).expect("at least 1")
}
