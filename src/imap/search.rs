//! SEARCH and UID SEARCH. SEEN/UNSEEN alone is one indexed read of the UIDs; anything else is
//! evaluated over the mailbox in UID-range chunks (flags, keywords, UIDs, sequence numbers and
//! dates from the rows; sizes from RFC822.SIZE); text criteria decrypt and parse each candidate (case-insensitive
//! substring match on decoded header values and text parts), and such a search is audited.

use std::sync::Arc;

use imap_codec::imap_types::core::{AString, Charset};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::search::SearchKey;
use mail_parser::{HeaderValue, MessageParser, PartType};

use imap_codec::imap_types::flag::{Flag, FlagFetch};

use super::mailbox::{contains, flags};
use super::render::Rendered;
use super::session::{Flow, Handled, Session};
use crate::store::mailbox::MailboxEntry;

/// What the text criteria look at, lower-cased.
struct Doc {
    /// (field name, decoded value).
    headers: Vec<(String, String)>,
    body: String,
    sent: Option<chrono::NaiveDate>,
}

impl Doc {
    fn new(r: &Rendered) -> Doc {
        let Some(message) = MessageParser::default().parse(&r.data) else {
            return Doc { headers: vec![], body: String::from_utf8_lossy(&r.data).to_lowercase(), sent: None };
        };
        let headers = message
            .headers()
            .iter()
            .map(|h| {
                let value = match &h.value {
                    HeaderValue::Text(t) => t.to_string(),
                    HeaderValue::TextList(list) => list.join(" "),
                    HeaderValue::Address(a) => a
                        .iter()
                        .map(|a| format!("{} <{}>", a.name.as_deref().unwrap_or(""), a.address.as_deref().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", "),
                    // Dates, content types, trace fields: the text as written.
                    _ => {
                        String::from_utf8_lossy(r.data.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default()).into_owned()
                    }
                };
                (h.name.as_str().to_ascii_lowercase(), value.to_lowercase())
            })
            .collect();
        let mut body = String::new();
        for part in &message.parts {
            if let PartType::Text(t) | PartType::Html(t) = &part.body {
                body.push_str(&t.to_lowercase());
                body.push('\n');
            }
        }
        let sent = message.date().and_then(|d| chrono::NaiveDate::from_ymd_opt(d.year as i32, d.month as u32, d.day as u32));
        Doc { headers, body, sent }
    }

    fn header(&self, names: &[&str], needle: &str) -> bool {
        self.headers.iter().any(|(n, v)| names.contains(&n.as_str()) && v.contains(needle))
    }
}

/// One candidate message.
struct Candidate {
    seq: u32,
    entry: MailboxEntry,
    size: u32,
    doc: Option<Doc>,
}

#[derive(Default)]
struct Needs {
    text: bool,
    size: bool,
}

fn needs(key: &SearchKey, n: &mut Needs) {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().for_each(|k| needs(k, n)),
        SearchKey::Not(k) => needs(k, n),
        SearchKey::Or(a, b) => {
            needs(a, n);
            needs(b, n);
        }
        SearchKey::Larger(_) | SearchKey::Smaller(_) => n.size = true,
        SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Cc(_)
        | SearchKey::Bcc(_)
        | SearchKey::Subject(_)
        | SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => n.text = true,
        _ => {}
    }
}

fn text(s: &AString) -> String {
    String::from_utf8_lossy(s.as_ref()).to_lowercase()
}

fn matches(key: &SearchKey, c: &Candidate, exists: u32, largest_uid: u32, user_id: i64) -> bool {
    let e = &c.entry;
    let doc = || c.doc.as_ref().expect("parsed for text criteria");
    let received = chrono::DateTime::from_timestamp_millis(e.received_at).unwrap_or_default().date_naive();
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, c, exists, largest_uid, user_id)),
        SearchKey::Not(k) => !matches(k, c, exists, largest_uid, user_id),
        SearchKey::Or(a, b) => matches(a, c, exists, largest_uid, user_id) || matches(b, c, exists, largest_uid, user_id),
        SearchKey::SequenceSet(set) => contains(set, c.seq, exists),
        SearchKey::Uid(set) => contains(set, e.uid, largest_uid),
        SearchKey::All | SearchKey::Old | SearchKey::Unanswered | SearchKey::Undeleted | SearchKey::Undraft => true,
        // Nothing is ever answered, deleted, a draft or recent in this view.
        SearchKey::Answered | SearchKey::Deleted | SearchKey::Draft | SearchKey::Recent | SearchKey::New => false,
        SearchKey::Seen => e.seen,
        SearchKey::Unseen => !e.seen,
        SearchKey::Flagged => e.flagged,
        SearchKey::Unflagged => !e.flagged,
        // Or a `MODSEQ n` key, wherever it stood (`condstore::modseq_key`).
        SearchKey::Keyword(k) => match super::condstore::modseq_of_key(k.inner()) {
            Some(n) => e.modseq() >= n,
            None => has_keyword(e, user_id, k.inner()),
        },
        SearchKey::Unkeyword(k) => !has_keyword(e, user_id, k.inner()),
        SearchKey::Before(d) => received < *d.as_ref(),
        SearchKey::On(d) => received == *d.as_ref(),
        SearchKey::Since(d) => received >= *d.as_ref(),
        SearchKey::SentBefore(d) => doc().sent.is_some_and(|s| s < *d.as_ref()),
        SearchKey::SentOn(d) => doc().sent.is_some_and(|s| s == *d.as_ref()),
        SearchKey::SentSince(d) => doc().sent.is_some_and(|s| s >= *d.as_ref()),
        SearchKey::Larger(n) => c.size > *n,
        SearchKey::Smaller(n) => c.size < *n,
        SearchKey::From(s) => doc().header(&["from"], &text(s)),
        SearchKey::To(s) => doc().header(&["to"], &text(s)),
        SearchKey::Cc(s) => doc().header(&["cc"], &text(s)),
        SearchKey::Bcc(s) => doc().header(&["bcc"], &text(s)),
        SearchKey::Subject(s) => doc().header(&["subject"], &text(s)),
        SearchKey::Header(name, value) => {
            let name = String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase();
            doc().header(&[name.as_str()], &text(value))
        }
        SearchKey::Body(s) => doc().body.contains(&text(s)),
        SearchKey::Text(s) => {
            let needle = text(s);
            doc().body.contains(&needle) || doc().headers.iter().any(|(_, v)| v.contains(&needle))
        }
    }
}

/// Whether the message shows keyword `k` (case-insensitive, as IMAP flags are).
fn has_keyword(e: &MailboxEntry, user_id: i64, k: &str) -> bool {
    flags(e, user_id).iter().any(|f| matches!(f, FlagFetch::Flag(Flag::Keyword(a)) if a.inner().eq_ignore_ascii_case(k)))
}

/// SEEN or UNSEEN alone (what clients ask most, e.g. for a count): Some(seen).
fn seen_only(key: &SearchKey) -> Option<bool> {
    match key {
        SearchKey::Seen => Some(true),
        SearchKey::Unseen => Some(false),
        SearchKey::And(keys) if keys.as_ref().len() == 1 => seen_only(&keys.as_ref()[0]),
        _ => None,
    }
}

impl Session {
    pub async fn search(&mut self, tag: &str, charset: Option<Charset<'_>>, criteria: &SearchKey<'_>, uid: bool, modseq: bool) -> Handled {
        if let Some(charset) = charset {
            let name = match &charset {
                Charset::Atom(a) => a.inner().to_string(),
                Charset::Quoted(q) => q.inner().to_string(),
            };
            if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
                self.out.no(tag, Some("BADCHARSET (UTF-8 US-ASCII)"), "Only UTF-8 and US-ASCII are supported");
                return Ok(Flow::Continue);
            }
        }
        let mut n = Needs::default();
        needs(criteria, &mut n);
        let principal = self.principal.clone().expect("logged in");
        let sel = self.selected.as_ref().expect("selected");
        let queue = sel.queue.clone();
        let exists = sel.exists();
        let largest_uid = sel.uids.last().copied().unwrap_or(0);
        let mut highest = 0;
        if n.text {
            // Matching text reads customer content, even though none is sent back.
            self.ctx
                .access
                .audit(&principal.actor(), "mailbox.search", Some(format!("queue:{queue}")), Some(format!("via=imap queue={queue}")))
                .await?;
        }
        let mut found = Vec::new();
        let user_id = self.user_id();
        if let (Some(seen), false) = (seen_only(criteria), modseq) {
            // One indexed read of the UIDs, without the rest of the rows.
            let sel = self.selected.as_ref().expect("selected");
            for u in self.ctx.access.store.mailbox_seen_uids(&queue, user_id, seen).await? {
                if let Some(i) = sel.index(u).filter(|i| !sel.is_gone(*i)) {
                    found.push(std::num::NonZeroU32::new(if uid { u } else { i as u32 + 1 }).expect("positive"));
                }
            }
        } else {
            let all: Vec<u32> = (0..exists).collect();
            for chunk in super::fetch::chunks(&all) {
                let sel = self.selected.as_ref().expect("selected");
                let (lo, hi) = (sel.uids[chunk[0] as usize], sel.uids[*chunk.last().expect("not empty") as usize]);
                let entries = self.ctx.access.store.mailbox_range(&queue, user_id, lo, hi).await?;
                for entry in entries {
                    let sel = self.selected.as_ref().expect("selected");
                    let Some(i) = sel.index(entry.uid).filter(|i| !sel.is_gone(*i)) else { continue };
                    let seq = i as u32 + 1;
                    let rendered: Option<Arc<Rendered>> = if n.text { Some(self.rendered(&entry).await?) } else { None };
                    let size = match (&rendered, n.size) {
                        (Some(r), _) => r.len() as u32,
                        (None, true) => self.size(&entry).await?,
                        (None, false) => 0,
                    };
                    let doc = rendered.as_deref().map(Doc::new);
                    let candidate = Candidate { seq, entry, size, doc };
                    if matches(criteria, &candidate, exists, largest_uid, user_id) {
                        found.push(std::num::NonZeroU32::new(if uid { candidate.entry.uid } else { seq }).expect("positive"));
                        highest = highest.max(candidate.entry.modseq());
                    }
                }
            }
        }
        if modseq && !found.is_empty() {
            // RFC 7162 §3.1.5: the highest mod-sequence of the messages found, after the numbers.
            self.out.data(Data::Search(found));
            let end = self.out.buf.len() - 2;
            self.out.buf.splice(end..end, format!(" (MODSEQ {highest})").into_bytes());
            self.out.ok(tag, None, if uid { "UID SEARCH completed" } else { "SEARCH completed" });
            return Ok(Flow::Continue);
        }
        self.out.data(Data::Search(found));
        self.out.ok(tag, None, if uid { "UID SEARCH completed" } else { "SEARCH completed" });
        Ok(Flow::Continue)
    }
}
