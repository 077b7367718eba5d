//! FETCH and STORE. The messages named are read from the store in UID-range chunks (`chunks`),
//! each sent and flushed before the next is read. Message content is decrypted on demand and
//! rendered in memory (a few recent ones are kept per session); every FETCH that returns content
//! is audited, one entry per message, each chunk's in one transaction before any of it is sent.

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

use super::condstore::Modifiers;
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

    pub async fn fetch(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: &Modifiers,
    ) -> Handled {
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
        let queue = sel.queue.clone();
        let content = items.iter().any(shows_content);
        let mark_seen = !sel.read_only && items.iter().any(sets_seen);
        let with_modseq = modifiers.modseq_item || modifiers.changed_since.is_some() || self.condstore;
        let mut ghosts = false;
        // In UID ranges, one chunk at a time: rows read, audited, sent and flushed before the
        // next chunk is read (a million-message FETCH holds one chunk).
        for chunk in chunks(&targets) {
            let sel = self.selected.as_ref().expect("selected");
            let entries = self
                .ctx
                .access
                .store
                .mailbox_range(&queue, principal.user_id, sel.uids[chunk[0] as usize], sel.uids[*chunk.last().expect("not empty") as usize])
                .await?;
            let mut found: Vec<(usize, MailboxEntry)> = Vec::with_capacity(chunk.len());
            for i in chunk {
                let i = *i as usize;
                let uid = sel.uids[i];
                match entries.binary_search_by_key(&uid, |e| e.uid) {
                    Ok(at) if !sel.is_gone(i) => found.push((i, entries[at].clone())),
                    // Left the mailbox (maybe not yet reported): nothing of it is served.
                    _ => ghosts = true,
                }
            }
            drop(entries);
            if let Some(since) = modifiers.changed_since {
                found.retain(|(_, e)| e.modseq() > since);
            }
            // Audit and implicit \Seen first, in one transaction: nothing is sent unless recorded.
            let mut audit = Vec::new();
            let mut seen = Vec::new();
            for (_, e) in &found {
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
            let (stamped, _) = self.ctx.access.store.mailbox_commit(principal.user_id, &queue, &seen, &audit, None).await?;
            self.own_change(stamped);
            for (i, mut entry) in found {
                let newly_seen = mark_seen && !entry.seen;
                if newly_seen {
                    entry.seen = true;
                    entry.flags_modseq = stamped as i64;
                }
                let needs_render = items.iter().any(shows_content);
                let rendered = if needs_render { Some(self.rendered(&entry).await?) } else { None };
                let mut out = Vec::with_capacity(items.len() + 1);
                for item in &items {
                    out.push(match item {
                        MessageDataItemName::Uid => MessageDataItem::Uid(NonZeroU32::new(entry.uid).expect("UIDs are positive")),
                        MessageDataItemName::Flags => MessageDataItem::Flags(mailbox::flags(&entry, principal.user_id)),
                        MessageDataItemName::InternalDate => MessageDataItem::InternalDate(internal_date(entry.received_at)),
                        MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(match &rendered {
                            Some(r) => r.len() as u32,
                            None => self.size(&entry).await?,
                        }),
                        item => content_item(item, rendered.as_deref().expect("rendered for content items")),
                    });
                }
                let has_flags = items.contains(&MessageDataItemName::Flags);
                if newly_seen && !has_flags {
                    // RFC 3501 §6.4.5: the implicit \Seen is reported with the data.
                    out.push(MessageDataItem::Flags(mailbox::flags(&entry, principal.user_id)));
                }
                let items = NonEmptyVec::try_from(out).expect("FETCH names at least one item");
                let modseq = (modifiers.modseq_item || with_modseq && (has_flags || newly_seen)).then(|| entry.modseq());
                self.out.fetch(Data::Fetch { seq: NonZeroU32::new(i as u32 + 1).expect("i + 1 > 0"), items }, modseq);
                if self.out.buf.len() >= FLUSH_AT {
                    self.flush().await?;
                }
            }
            // Between chunks: the client reads while the next chunk is read.
            self.flush().await?;
        }
        if ghosts && !uid {
            self.out.no(tag, Some("EXPUNGEISSUED"), "Some of the messages have left this mailbox (their case was transferred)");
        } else {
            self.out.ok(tag, None, if uid { "UID FETCH completed" } else { "FETCH completed" });
        }
        Ok(Flow::Continue)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        unchanged_since: Option<u64>,
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
                // The keywords show the case; it is changed through the HTTP API or the web page.
                _ => {
                    self.out.no(tag, Some("CANNOT"), "Only \\Seen and \\Flagged can be set here; keywords show the case and are read-only");
                    return Ok(Flow::Continue);
                }
            }
        }
        let user_id = self.user_id();
        let with_modseq = self.condstore || unchanged_since.is_some();
        let sel = self.selected.as_ref().expect("selected");
        if sel.read_only {
            self.out.no(tag, Some("READ-ONLY"), "The mailbox was opened with EXAMINE");
            return Ok(Flow::Continue);
        }
        let Some(targets) = sel.resolve(set, uid) else {
            self.bad(Some(tag), "Message sequence number out of range");
            return Ok(Flow::Continue);
        };
        let queue = sel.queue.clone();
        let mut ghosts = false;
        let mut modified: Vec<u32> = Vec::new();
        for chunk in chunks(&targets) {
            let sel = self.selected.as_ref().expect("selected");
            let entries = self
                .ctx
                .access
                .store
                .mailbox_range(&queue, user_id, sel.uids[chunk[0] as usize], sel.uids[*chunk.last().expect("not empty") as usize])
                .await?;
            let mut found: Vec<(usize, MailboxEntry)> = Vec::with_capacity(chunk.len());
            for i in chunk {
                let i = *i as usize;
                match entries.binary_search_by_key(&sel.uids[i], |e| e.uid) {
                    Ok(at) if !sel.is_gone(i) => found.push((i, entries[at].clone())),
                    _ => ghosts = true,
                }
            }
            let mut updates = Vec::new();
            for (_, e) in &found {
                let (s, f) = match kind {
                    StoreType::Replace => (seen, flagged),
                    StoreType::Add => (e.seen || seen, e.flagged || flagged),
                    StoreType::Remove => (e.seen && !seen, e.flagged && !flagged),
                };
                // UNCHANGEDSINCE applies to every message named, even one that would not change.
                if (s, f) != (e.seen, e.flagged) || unchanged_since.is_some() {
                    updates.push(FlagUpdate { case_id: e.case_id, message_id: e.message_id, seen: s, flagged: f });
                }
            }
            let (stamped, refused) = self.ctx.access.store.mailbox_commit(user_id, &queue, &updates, &[], unchanged_since).await?;
            self.own_change(stamped);
            for (i, mut e) in found {
                if refused.contains(&e.message_id) {
                    modified.push(if uid { e.uid } else { i as u32 + 1 });
                    continue;
                }
                if let Some(u) = updates.iter().find(|u| u.message_id == e.message_id && u.case_id == e.case_id) {
                    (e.seen, e.flagged) = (u.seen, u.flagged);
                    e.flags_modseq = stamped as i64;
                }
                if response == StoreResponse::Answer {
                    self.out.fetch(fetch_flags(i, &e, user_id, uid), with_modseq.then(|| e.modseq()));
                }
            }
        }
        if !modified.is_empty() {
            let set = modified.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            self.out.ok(tag, Some(&format!("MODIFIED {set}")), "Conditional STORE failed for some messages");
        } else if ghosts && !uid {
            self.out.no(tag, Some("EXPUNGEISSUED"), "Some of the messages have left this mailbox (their case was transferred)");
        } else {
            self.out.ok(tag, None, "STORE completed");
        }
        Ok(Flow::Continue)
    }
}

impl Session {
    /// A flag change of this session's, answered by itself: not to be reported by `sync`.
    fn own_change(&mut self, modseq: u64) {
        if let Some(sel) = &mut self.selected
            && modseq > 0
        {
            sel.own.push(modseq);
        }
    }
}

/// View indexes per store read: a UID range of at most `CHUNK` messages of the view.
const CHUNK: usize = 1000;

/// `targets` (ascending view indexes) cut into runs whose first and last are less than `CHUNK`
/// apart in the view, so each run is one bounded range read.
pub fn chunks(targets: &[u32]) -> impl Iterator<Item = &[u32]> {
    let mut rest = targets;
    std::iter::from_fn(move || {
        let first = *rest.first()?;
        let n = rest.partition_point(|i| (*i - first) < CHUNK as u32);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
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
