//! The selected mailbox as the client knows it: message sequence numbers, UIDs and flags, and how
//! the database's current state is reported to the client (EXISTS, EXPUNGE, FETCH FLAGS).
//!
//! A message leaves a queue's mailbox when its case is transferred to another queue (the other
//! mailbox shows it under a fresh, larger UID). Until the client is told with `* n EXPUNGE`, it
//! keeps its sequence number but is "gone": nothing of it is served any more.

use std::collections::HashMap;
use std::num::NonZeroU32;

use imap_codec::imap_types::core::{Atom, NonEmptyVec};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::wire::Out;
use crate::store::mailbox::MailboxEntry;

/// The hierarchy delimiter announced in LIST (queue names never contain it).
pub const DELIMITER: char = '/';

/// Shown on messages whose case is flagged as spam; it cannot be set or cleared over IMAP.
pub const JUNK: &str = "$Junk";

pub struct Msg {
    pub entry: MailboxEntry,
    /// Left the mailbox; the EXPUNGE has not been sent yet.
    pub gone: bool,
}

pub struct Selected {
    pub queue: String,
    /// EXAMINE: no flag changes, not even the implicit \Seen of a BODY[] fetch.
    pub read_only: bool,
    /// Sequence number `i + 1` is `view[i]`.
    pub view: Vec<Msg>,
}

impl Selected {
    pub fn new(queue: String, read_only: bool, entries: Vec<MailboxEntry>) -> Selected {
        Selected { queue, read_only, view: entries.into_iter().map(|entry| Msg { entry, gone: false }).collect() }
    }

    pub fn exists(&self) -> u32 {
        self.view.len() as u32
    }

    /// Brings the view up to date with `current` (the mailbox as stored now): changed flags as
    /// FETCH, new messages as EXISTS, and, when `expunge` (EXPUNGE responses are not allowed
    /// during FETCH, STORE and SEARCH), messages that left as EXPUNGE.
    pub fn apply(&mut self, current: Vec<MailboxEntry>, expunge: bool, out: &mut Out) {
        let mut by_uid: HashMap<u32, MailboxEntry> = current.into_iter().map(|e| (e.uid, e)).collect();
        let largest_known = self.view.last().map_or(0, |m| m.entry.uid);
        for (i, m) in self.view.iter_mut().enumerate() {
            match by_uid.remove(&m.entry.uid) {
                Some(e) => {
                    let changed = (e.seen, e.flagged, e.spam) != (m.entry.seen, m.entry.flagged, m.entry.spam);
                    m.entry = e;
                    if changed && !m.gone {
                        out.data(fetch_flags(i, &m.entry, true));
                    }
                }
                None => m.gone = true,
            }
        }
        if expunge {
            for i in (0..self.view.len()).rev() {
                if self.view[i].gone {
                    self.view.remove(i);
                    out.data(Data::Expunge(NonZeroU32::new(i as u32 + 1).expect("i + 1 > 0")));
                }
            }
        }
        // UIDs only grow, so anything new sorts after what the client knows.
        let mut new: Vec<MailboxEntry> = by_uid.into_values().filter(|e| e.uid > largest_known).collect();
        if !new.is_empty() {
            new.sort_by_key(|e| e.uid);
            self.view.extend(new.into_iter().map(|entry| Msg { entry, gone: false }));
            out.data(Data::Exists(self.exists()));
        }
    }

    /// The view indexes a sequence set names, in mailbox order. None when a sequence number is
    /// beyond the mailbox (a client error); UIDs that do not exist are simply not there.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Option<Vec<usize>> {
        if uid {
            let largest = self.view.last().map_or(0, |m| m.entry.uid);
            return Some((0..self.view.len()).filter(|i| contains(set, self.view[*i].entry.uid, largest)).collect());
        }
        let n = self.exists();
        if n == 0
            && set.0.as_ref().iter().any(|s| matches!(s, Sequence::Range(_, SeqOrUid::Asterisk) | Sequence::Range(SeqOrUid::Asterisk, _)))
        {
            // "1:*" in an empty mailbox: nothing, rather than an error.
            return Some(vec![]);
        }
        let explicit = set.0.as_ref().iter().flat_map(|s| match s {
            Sequence::Single(v) => vec![*v],
            Sequence::Range(a, b) => vec![*a, *b],
        });
        if explicit.into_iter().any(|v| matches!(v, SeqOrUid::Value(v) if v.get() > n)) {
            return None;
        }
        Some((0..self.view.len()).filter(|i| contains(set, *i as u32 + 1, n)).collect())
    }

    /// The sequence number of the first message the user has not seen.
    pub fn first_unseen(&self) -> Option<u32> {
        self.view.iter().position(|m| !m.entry.seen).map(|i| i as u32 + 1)
    }
}

/// Whether `set` contains `n`, where `*` stands for `largest` (so `559:*` always contains the
/// last message, RFC 3501 §6.4.8).
pub fn contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(v) => value(v) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            a.min(b) <= n && n <= a.max(b)
        }
    })
}

/// The flags of a message for the user looking at it.
pub fn flags(entry: &MailboxEntry) -> Vec<FlagFetch<'static>> {
    let mut flags = Vec::new();
    if entry.seen {
        flags.push(FlagFetch::Flag(Flag::Seen));
    }
    if entry.flagged {
        flags.push(FlagFetch::Flag(Flag::Flagged));
    }
    if entry.spam {
        flags.push(FlagFetch::Flag(junk()));
    }
    flags
}

pub fn junk() -> Flag<'static> {
    Flag::Keyword(Atom::try_from(JUNK).expect("valid atom"))
}

/// `* n FETCH ([UID u] FLAGS (...))` for view index `i`.
pub fn fetch_flags(i: usize, entry: &MailboxEntry, with_uid: bool) -> Data<'static> {
    let mut items = Vec::new();
    if with_uid {
        items.push(MessageDataItem::Uid(NonZeroU32::new(entry.uid).expect("UIDs are positive")));
    }
    items.push(MessageDataItem::Flags(flags(entry)));
    Data::Fetch { seq: NonZeroU32::new(i as u32 + 1).expect("i + 1 > 0"), items: NonEmptyVec::try_from(items).expect("FLAGS is there") }
}

/// The mailbox name a client gave (queue names are plain ASCII; INBOX is just a name here).
pub fn mailbox_name(mailbox: &Mailbox) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

/// LIST pattern matching: `*` matches anything, `%` anything but the delimiter.
pub fn list_matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| list_matches(rest, &name[i..])),
        Some((b'%', rest)) => {
            let limit = name.iter().position(|c| *c == DELIMITER as u8).unwrap_or(name.len());
            (0..=limit).any(|i| list_matches(rest, &name[i..]))
        }
        Some((c, rest)) => name.first() == Some(c) && list_matches(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: u32) -> MailboxEntry {
        MailboxEntry {
            uid,
            message_id: uid as i64,
            case_id: 1,
            number: format!("MR-{uid}"),
            received_at: 0,
            size: 10,
            seen: false,
            flagged: false,
            spam: false,
            category: None,
            priority: "normal".into(),
            due_at: None,
        }
    }

    fn set(s: &str) -> SequenceSet {
        SequenceSet::try_from(s).unwrap()
    }

    #[test]
    fn sequence_sets_and_uid_ranges() {
        let sel = Selected::new("support".into(), false, vec![entry(3), entry(7), entry(9)]);
        assert_eq!(sel.resolve(&set("1:*"), false), Some(vec![0, 1, 2]));
        assert_eq!(sel.resolve(&set("2,3"), false), Some(vec![1, 2]));
        assert_eq!(sel.resolve(&set("4"), false), None);
        assert_eq!(sel.resolve(&set("7"), true), Some(vec![1]));
        assert_eq!(sel.resolve(&set("4:8"), true), Some(vec![1]));
        // RFC 3501: 100:* contains the last message even though 100 is beyond it.
        assert_eq!(sel.resolve(&set("100:*"), true), Some(vec![2]));
        assert_eq!(sel.resolve(&set("100"), true), Some(vec![]));
        let empty = Selected::new("support".into(), false, vec![]);
        assert_eq!(empty.resolve(&set("1:*"), false), Some(vec![]));
        assert_eq!(empty.resolve(&set("1"), false), None);
    }

    #[test]
    fn changes_become_untagged_responses() {
        let mut sel = Selected::new("support".into(), false, vec![entry(3), entry(7), entry(9)]);
        let mut out = Out::default();
        let mut seen = entry(9);
        seen.seen = true;
        sel.apply(vec![entry(3), seen.clone(), entry(12)], false, &mut out);
        assert_eq!(String::from_utf8_lossy(&out.buf), "* 3 FETCH (UID 9 FLAGS (\\Seen))\r\n* 4 EXISTS\r\n");
        assert!(sel.view[1].gone, "7 left, but no EXPUNGE during FETCH/STORE/SEARCH");
        let mut out = Out::default();
        sel.apply(vec![entry(3), seen, entry(12)], true, &mut out);
        assert_eq!(String::from_utf8_lossy(&out.buf), "* 2 EXPUNGE\r\n");
        assert_eq!(sel.view.iter().map(|m| m.entry.uid).collect::<Vec<_>>(), vec![3, 9, 12]);
    }

    #[test]
    fn list_patterns() {
        assert!(list_matches(b"*", b"support"));
        assert!(list_matches(b"%", b"support"));
        assert!(list_matches(b"sup*", b"support"));
        assert!(list_matches(b"s%t", b"support"));
        assert!(!list_matches(b"%", b"a/b"));
        assert!(list_matches(b"*", b"a/b"));
        assert!(!list_matches(b"sales", b"support"));
        assert!(!list_matches(b"", b"support"));
    }
}
