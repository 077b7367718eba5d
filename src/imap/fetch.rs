//! FETCH and STORE. Message content is decrypted on demand and rendered in memory (a few recent
//! ones are kept per session); every FETCH that returns content is audited, one entry per
//! message, all in one transaction, before any of it is sent.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;

use imap_codec::imap_types::core::NonEmptyVec;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::SequenceSet;
use zeroize::Zeroize;

use super::dispatch::EXPUNGE_REFUSED;
use super::mailbox::{self, fetch_flags};
use super::render::{self, Rendered};
use super::session::{FLUSH_AT, Flow, Handled, Session};
use crate::store::StoreError;
use crate::store::audit::AuditEntry;
use crate::store::mailbox::{FlagUpdate, MailboxEntry};

/// Rendered messages kept per session: enough for a client that fetches the header, then the
/// structure, then the parts of one message, without decrypting it each time.
const CACHE_ENTRIES: usize = 16;
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Recently rendered messages, most recent first. The key includes our header fields, so a
/// case whose priority or category changed is rendered anew.
#[derive(Default)]
pub struct Cache {
    entries: VecDeque<((i64, String), Arc<Rendered>)>,
    bytes: usize,
}

impl Cache {
    fn get(&mut self, key: &(i64, String)) -> Option<Arc<Rendered>> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(pos)?;
        let rendered = entry.1.clone();
        self.entries.push_front(entry);
        Some(rendered)
    }

    fn put(&mut self, key: (i64, String), rendered: Arc<Rendered>) {
        self.bytes += rendered.len();
        self.entries.push_front((key, rendered));
        while self.entries.len() > 1 && (self.entries.len() > CACHE_ENTRIES || self.bytes > CACHE_BYTES) {
            if let Some((_, old)) = self.entries.pop_back() {
                self.bytes -= old.len();
            }
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

impl Drop for Rendered {
    fn drop(&mut self) {
        // Decrypted customer content: wipe it before the memory is reused.
        self.data.zeroize();
        self.wipe_decoded();
    }
}

/// FETCH items that show customer content (and so are audited).
fn shows_content(item: &MessageDataItemName) -> bool {
    !matches!(
        item,
        MessageDataItemName::Flags | MessageDataItemName::InternalDate | MessageDataItemName::Rfc822Size | MessageDataItemName::Uid
    )
}

/// FETCH items that set \Seen (RFC 3501 §6.4.5: BODY[…] without PEEK, RFC822, RFC822.TEXT).
fn sets_seen(item: &MessageDataItemName) -> bool {
    matches!(item, MessageDataItemName::BodyExt { peek: false, .. } | MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text)
}

impl Session {
    /// The message as the client sees it, from the cache or decrypted now.
    pub async fn rendered(&mut self, entry: &MailboxEntry) -> Result<Arc<Rendered>, StoreError> {
        let x_headers = render::x_headers(&self.ctx.cases.settings(), entry);
        let key = (entry.message_id, x_headers);
        if let Some(r) = self.cache.get(&key) {
            return Ok(r);
        }
        let (_, mut stored) = self.ctx.access.store.open_message(entry.message_id).await?;
        let x = key.1.clone();
        // MIME parsing of a large message is CPU work: off the async threads.
        let rendered = tokio::task::spawn_blocking(move || {
            let r = Rendered::new(&x, &stored);
            stored.zeroize();
            r
        })
        .await
        .map_err(|e| StoreError::BatchFailed(format!("rendering a message failed: {e}")))?;
        let rendered = Arc::new(rendered);
        self.cache.put(key, rendered.clone());
        Ok(rendered)
    }

    /// RFC822.SIZE without decrypting the message: our header fields + our trace header + the
    /// bytes received.
    pub async fn size(&mut self, entry: &MailboxEntry) -> Result<u32, StoreError> {
        let trace = match self.trace_lens.get(&entry.message_id) {
            Some(len) => *len,
            None => {
                let len = self.ctx.access.store.trace_len(entry.message_id).await?;
                self.trace_lens.insert(entry.message_id, len);
                len
            }
        };
        Ok((render::x_headers(&self.ctx.cases.settings(), entry).len() + trace + entry.size as usize) as u32)
    }

    pub async fn fetch(&mut self, tag: &str, set: &SequenceSet, items: MacroOrMessageDataItemNames<'_>, uid: bool) -> Handled {
        let expanded;
        let mut items = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                expanded = m;
                expanded.expand()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
        };
        if items.is_empty() {
            self.bad(Some(tag), "FETCH needs at least one item");
            return Ok(Flow::Continue);
        }
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let principal = self.principal.clone().expect("logged in");
        let sel = self.selected.as_ref().expect("selected");
        let Some(targets) = sel.resolve(set, uid) else {
            self.bad(Some(tag), "Message sequence number out of range");
            return Ok(Flow::Continue);
        };
        let ghosts = targets.iter().any(|i| sel.view[*i].gone);
        let targets: Vec<usize> = targets.into_iter().filter(|i| !sel.view[*i].gone).collect();
        let content = items.iter().any(shows_content);
        let mark_seen = !sel.read_only && items.iter().any(sets_seen);

        // Audit and implicit \Seen first, in one transaction: nothing is sent unless recorded.
        let queue = sel.queue.clone();
        let mut audit = Vec::new();
        let mut seen = Vec::new();
        for i in &targets {
            let e = &sel.view[*i].entry;
            if content {
                audit.push(AuditEntry {
                    at: crate::store::now_millis(),
                    actor: principal.actor(),
                    action: "message.read".into(),
                    object: Some(e.number.clone()),
                    detail: Some(format!("via=imap queue={queue}")),
                });
            }
            if mark_seen && !e.seen {
                seen.push(FlagUpdate { case_id: e.case_id, message_id: e.message_id, seen: true, flagged: e.flagged });
            }
        }
        self.ctx.access.store.mailbox_commit(principal.user_id, &seen, &audit).await?;
        let newly_seen: Vec<usize> =
            targets.iter().copied().filter(|i| mark_seen && !self.selected.as_ref().expect("selected").view[*i].entry.seen).collect();
        if let Some(sel) = &mut self.selected {
            for i in &newly_seen {
                sel.view[*i].entry.seen = true;
            }
        }

        for i in targets {
            let entry = self.selected.as_ref().expect("selected").view[i].entry.clone();
            let needs_render = items.iter().any(shows_content);
            let rendered = if needs_render { Some(self.rendered(&entry).await?) } else { None };
            let mut out = Vec::with_capacity(items.len() + 1);
            for item in &items {
                out.push(match item {
                    MessageDataItemName::Uid => MessageDataItem::Uid(NonZeroU32::new(entry.uid).expect("UIDs are positive")),
                    MessageDataItemName::Flags => MessageDataItem::Flags(mailbox::flags(&entry)),
                    MessageDataItemName::InternalDate => MessageDataItem::InternalDate(internal_date(entry.received_at)),
                    MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(match &rendered {
                        Some(r) => r.len() as u32,
                        None => self.size(&entry).await?,
                    }),
                    item => content_item(item, rendered.as_deref().expect("rendered for content items")),
                });
            }
            if newly_seen.contains(&i) && !items.contains(&MessageDataItemName::Flags) {
                // RFC 3501 §6.4.5: the implicit \Seen is reported with the data.
                out.push(MessageDataItem::Flags(mailbox::flags(&entry)));
            }
            let items = NonEmptyVec::try_from(out).expect("FETCH names at least one item");
            self.out.data(Data::Fetch { seq: NonZeroU32::new(i as u32 + 1).expect("i + 1 > 0"), items });
            if self.out.buf.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
        if ghosts && !uid {
            self.out.no(tag, Some("EXPUNGEISSUED"), "Some of the messages have left this mailbox (their case was transferred)");
        } else {
            self.out.ok(tag, None, if uid { "UID FETCH completed" } else { "FETCH completed" });
        }
        Ok(Flow::Continue)
    }

    pub async fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
    ) -> Handled {
        let (mut seen, mut flagged) = (false, false);
        for flag in flags {
            match flag {
                Flag::Seen => seen = true,
                Flag::Flagged => flagged = true,
                Flag::Deleted => {
                    self.out.no(tag, Some("CANNOT"), EXPUNGE_REFUSED);
                    return Ok(Flow::Continue);
                }
                _ => {
                    self.out.no(tag, Some("CANNOT"), "Only \\Seen and \\Flagged can be set here");
                    return Ok(Flow::Continue);
                }
            }
        }
        let user_id = self.user_id();
        let sel = self.selected.as_mut().expect("selected");
        if sel.read_only {
            self.out.no(tag, Some("READ-ONLY"), "The mailbox was opened with EXAMINE");
            return Ok(Flow::Continue);
        }
        let Some(targets) = sel.resolve(set, uid) else {
            self.bad(Some(tag), "Message sequence number out of range");
            return Ok(Flow::Continue);
        };
        let ghosts = targets.iter().any(|i| sel.view[*i].gone);
        let targets: Vec<usize> = targets.into_iter().filter(|i| !sel.view[*i].gone).collect();
        let mut updates = Vec::new();
        for i in &targets {
            let e = &sel.view[*i].entry;
            let (s, f) = match kind {
                StoreType::Replace => (seen, flagged),
                StoreType::Add => (e.seen || seen, e.flagged || flagged),
                StoreType::Remove => (e.seen && !seen, e.flagged && !flagged),
            };
            if (s, f) != (e.seen, e.flagged) {
                updates.push((*i, FlagUpdate { case_id: e.case_id, message_id: e.message_id, seen: s, flagged: f }));
            }
        }
        let stored: Vec<FlagUpdate> = updates.iter().map(|(_, u)| *u).collect();
        self.ctx.access.store.mailbox_commit(user_id, &stored, &[]).await?;
        let sel = self.selected.as_mut().expect("selected");
        for (i, u) in updates {
            sel.view[i].entry.seen = u.seen;
            sel.view[i].entry.flagged = u.flagged;
        }
        if response == StoreResponse::Answer {
            for i in targets {
                self.out.data(fetch_flags(i, &sel.view[i].entry, uid));
            }
        }
        if ghosts && !uid {
            self.out.no(tag, Some("EXPUNGEISSUED"), "Some of the messages have left this mailbox (their case was transferred)");
        } else {
            self.out.ok(tag, None, "STORE completed");
        }
        Ok(Flow::Continue)
    }
}

fn content_item(item: &MessageDataItemName, r: &Rendered) -> MessageDataItem<'static> {
    let section = |s: Option<&Section>| r.section(s);
    match item {
        MessageDataItemName::Body => MessageDataItem::Body(r.body.clone()),
        MessageDataItemName::BodyStructure => MessageDataItem::BodyStructure(r.body_structure.clone()),
        MessageDataItemName::Envelope => MessageDataItem::Envelope(r.envelope.clone()),
        MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(render::nstring(section(None))),
        MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(render::nstring(section(Some(&Section::Header(None))))),
        MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(render::nstring(section(Some(&Section::Text(None))))),
        MessageDataItemName::BodyExt { section: s, partial, .. } => {
            let data = section(s.as_ref()).map(|bytes| match partial {
                Some((start, len)) => {
                    let start = (*start as usize).min(bytes.len());
                    let end = start.saturating_add(len.get() as usize).min(bytes.len());
                    bytes[start..end].to_vec()
                }
                None => bytes,
            });
            MessageDataItem::BodyExt {
                section: s.as_ref().map(static_section),
                origin: partial.map(|(start, _)| start),
                data: render::nstring(data),
            }
        }
        MessageDataItemName::Flags | MessageDataItemName::InternalDate | MessageDataItemName::Rfc822Size | MessageDataItemName::Uid => {
            unreachable!("handled by the caller")
        }
    }
}

/// The section echoed in the response, owning its field names.
fn static_section(s: &Section) -> Section<'static> {
    use imap_codec::imap_types::core::AString;
    let names = |names: &NonEmptyVec<AString>| {
        NonEmptyVec::try_from(
            names.as_ref().iter().map(|n| AString::try_from(n.as_ref().to_vec()).expect("was a valid astring")).collect::<Vec<_>>(),
        )
        .expect("not empty")
    };
    match s {
        Section::Part(p) => Section::Part(p.clone()),
        Section::Header(p) => Section::Header(p.clone()),
        Section::HeaderFields(p, n) => Section::HeaderFields(p.clone(), names(n)),
        Section::HeaderFieldsNot(p, n) => Section::HeaderFieldsNot(p.clone(), names(n)),
        Section::Text(p) => Section::Text(p.clone()),
        Section::Mime(p) => Section::Mime(p.clone()),
    }
}

fn internal_date(ms: i64) -> DateTime {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&chrono::FixedOffset::east_opt(0).expect("UTC"));
    // Whole seconds: the IMAP date-time has no fractions.
    let t = chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::seconds(1)).unwrap_or(t);
    DateTime::try_from(t).expect("a UTC date-time is valid")
}
