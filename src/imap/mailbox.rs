//! The selected mailbox as the client knows it: its UIDs (sequence number `i + 1` is `uids[i]`),
//! the UIDs that left it but were not expunged yet, the largest UID and the mod-sequence it has
//! been told about. That is all a session keeps (4 bytes a message: a million-message mailbox is
//! 4 MB); flags, sizes and dates are read from the store per command, in UID ranges.
//!
//! `Selected::apply` brings the view up to date from the store's incremental reads (UIDs above
//! the largest known, changes and departures above the mod-sequence known): EXISTS, FETCH FLAGS
//! and EXPUNGE. A message leaves a queue's mailbox when its case is transferred (the other
//! mailbox shows it under a fresh, larger UID) or purged. Until the client is told with
//! `* n EXPUNGE`, it keeps its sequence number but is "gone": nothing of it is served any more.

use std::collections::BTreeSet;
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

/// What changed since the view was last brought up to date (the store's incremental reads).
#[derive(Default)]
pub struct Changes {
    /// UIDs above the largest known, ascending.
    pub new: Vec<u32>,
    /// Messages whose flags or keywords changed.
    pub changed: Vec<MailboxEntry>,
    /// UIDs that left the mailbox.
    pub departed: Vec<u32>,
    /// The mod-sequence these changes go up to.
    pub modseq: u64,
}

pub struct Selected {
    pub queue: String,
    /// EXAMINE: no flag changes, not even the implicit \Seen of a BODY[] fetch.
    pub read_only: bool,
    /// Sequence number `i + 1` is `uids[i]`; ascending.
    pub uids: Vec<u32>,
    /// UIDs of `uids` that left the mailbox; the EXPUNGE has not been sent yet.
    pub gone: BTreeSet<u32>,
    /// The largest UID the view has seen (also when that message has left since).
    pub last_uid: u32,
    /// Changes up to this mod-sequence are reflected in the view.
    pub modseq: u64,
    /// Mod-sequences of this session's own flag changes (STORE, implicit \\Seen), already
    /// answered: not reported again as someone else's change.
    pub own: Vec<u64>,
}

impl Selected {
    pub fn new(queue: String, read_only: bool, uids: Vec<u32>, modseq: u64) -> Selected {
        let last_uid = uids.last().copied().unwrap_or(0);
        Selected { queue, read_only, uids, gone: BTreeSet::new(), last_uid, modseq, own: Vec::new() }
    }

    pub fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    /// The index of `uid` in the view.
    pub fn index(&self, uid: u32) -> Option<usize> {
        self.uids.binary_search(&uid).ok()
    }

    /// The UIDs of the view that `now` (the mailbox's whole UID list, ascending) no longer has.
    pub fn missing_from(&self, now: &[u32]) -> Vec<u32> {
        let mut now = now.iter().peekable();
        let mut missing = Vec::new();
        for uid in &self.uids {
            while now.next_if(|n| **n < *uid).is_some() {}
            if now.next_if_eq(&uid).is_none() {
                missing.push(*uid);
            }
        }
        missing
    }

    pub fn is_gone(&self, i: usize) -> bool {
        !self.gone.is_empty() && self.gone.contains(&self.uids[i])
    }

    /// Applies `changes`: departures mark messages gone, changed flags/keywords become FETCH
    /// (through `fetch`, which knows the session's flags and CONDSTORE state), new messages
    /// EXISTS, and, when `expunge` (EXPUNGE responses are not allowed during FETCH, STORE and
    /// SEARCH by sequence number), gone messages EXPUNGE.
    pub fn apply(&mut self, changes: Changes, expunge: bool, out: &mut Out, fetch: impl Fn(&mut Out, usize, &MailboxEntry)) {
        for uid in changes.departed {
            if self.index(uid).is_some() {
                self.gone.insert(uid);
            }
        }
        for e in &changes.changed {
            let own = e.modseq as u64 <= self.modseq && self.own.contains(&(e.flags_modseq as u64));
            if let Some(i) = self.index(e.uid)
                && !self.gone.contains(&e.uid)
                && !own
            {
                fetch(out, i, e);
            }
        }
        if expunge && !self.gone.is_empty() {
            // Highest sequence number first: each EXPUNGE renumbers only the messages after it.
            let gone: Vec<usize> = self.gone.iter().filter_map(|u| self.index(*u)).collect();
            for i in gone.iter().rev() {
                out.data(Data::Expunge(NonZeroU32::new(*i as u32 + 1).expect("i + 1 > 0")));
            }
            let gone = std::mem::take(&mut self.gone);
            self.uids.retain(|u| !gone.contains(u));
        }
        let new: Vec<u32> = changes.new.into_iter().filter(|u| *u > self.last_uid).collect();
        if let Some(last) = new.last() {
            // UIDs only grow, so anything new sorts after what the client knows.
            self.last_uid = *last;
            self.uids.extend(new);
            out.data(Data::Exists(self.exists()));
        }
        self.modseq = self.modseq.max(changes.modseq);
        let known = self.modseq;
        self.own.retain(|m| *m > known);
    }

    /// The view indexes a sequence set names, in mailbox order. None when a sequence number is
    /// beyond the mailbox (a client error); UIDs that do not exist are simply not there.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Option<Vec<u32>> {
        let ranges = |largest: u32| {
            let value = |v: &SeqOrUid| match v {
                SeqOrUid::Value(v) => v.get(),
                SeqOrUid::Asterisk => largest,
            };
            let mut r: Vec<(u32, u32)> = set
                .0
                .as_ref()
                .iter()
                .map(|s| match s {
                    Sequence::Single(v) => (value(v), value(v)),
                    Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
                })
                .collect();
            r.sort_unstable();
            r
        };
        let n = self.exists();
        let mut found = Vec::new();
        if uid {
            let largest = self.uids.last().copied().unwrap_or(0);
            for (a, b) in ranges(largest) {
                // Each range is a slice of the sorted UIDs (RFC 3501: 100:* contains the last).
                let start = self.uids.partition_point(|u| *u < a);
                let end = self.uids.partition_point(|u| *u <= b);
                found.extend((start..end).map(|i| i as u32));
            }
        } else {
            if n == 0
                && set
                    .0
                    .as_ref()
                    .iter()
                    .any(|s| matches!(s, Sequence::Range(_, SeqOrUid::Asterisk) | Sequence::Range(SeqOrUid::Asterisk, _)))
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
            for (a, b) in ranges(n) {
                found.extend(a.max(1) - 1..b.min(n));
            }
        }
        // Overlapping ranges name a message once.
        found.sort_unstable();
        found.dedup();
        Some(found)
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

/// The flags of a message for the user looking at it: their own \Seen and \Flagged, and the
/// case as keywords (read-only): `$Junk`, the category code (`$BZZX`), the priority (`$urgent`,
/// `$low`; normal has none), the status (`$new`, `$open`, `$waiting`, `$resolved`, `$closed`)
/// and `$mine` when the case is assigned to them.
pub fn flags(entry: &MailboxEntry, user_id: i64) -> Vec<FlagFetch<'static>> {
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
    let mut keyword = |name: &str| {
        if let Ok(atom) = Atom::try_from(format!("${name}")) {
            flags.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    };
    if let Some(code) = &entry.category {
        keyword(code);
    }
    if entry.priority != "normal" {
        keyword(&entry.priority);
    }
    keyword(&entry.status);
    if entry.assignee == Some(user_id) {
        keyword("mine");
    }
    flags
}

/// Every flag a message in a mailbox can show (SELECT's FLAGS): categories from the settings.
pub fn all_flags(categories: impl Iterator<Item = String>) -> Vec<Flag<'static>> {
    let mut all = vec![Flag::Seen, Flag::Flagged, junk()];
    let names =
        categories.chain(["urgent", "low", "mine"].map(String::from)).chain(crate::store::cases::STATUSES.iter().map(|s| s.to_string()));
    all.extend(names.filter_map(|n| Atom::try_from(format!("${n}")).ok().map(Flag::Keyword)));
    all
}

pub fn junk() -> Flag<'static> {
    Flag::Keyword(Atom::try_from(JUNK).expect("valid atom"))
}

/// `* n FETCH ([UID u] FLAGS (...))` for view index `i`.
pub fn fetch_flags(i: usize, entry: &MailboxEntry, user_id: i64, with_uid: bool) -> Data<'static> {
    let mut items = Vec::new();
    if with_uid {
        items.push(MessageDataItem::Uid(NonZeroU32::new(entry.uid).expect("UIDs are positive")));
    }
    items.push(MessageDataItem::Flags(flags(entry, user_id)));
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

    pub fn entry(uid: u32) -> MailboxEntry {
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
            x_category: None,
            x_priority: "normal".into(),
            x_due: None,
            category: None,
            priority: "normal".into(),
            status: "new".into(),
            assignee: None,
            modseq: 1,
            flags_modseq: 0,
        }
    }

    fn set(s: &str) -> SequenceSet {
        SequenceSet::try_from(s).unwrap()
    }

    #[test]
    fn what_the_whole_list_no_longer_has_is_missing() {
        let sel = Selected::new("support".into(), false, vec![3, 7, 9, 12], 1);
        assert_eq!(sel.missing_from(&[3, 7, 9, 12, 15]), Vec::<u32>::new(), "new UIDs are not departures");
        assert_eq!(sel.missing_from(&[1, 7, 10, 12]), vec![3, 9]);
        assert_eq!(sel.missing_from(&[]), vec![3, 7, 9, 12]);
        assert_eq!(Selected::new("support".into(), false, vec![], 1).missing_from(&[1, 2]), Vec::<u32>::new());
    }

    #[test]
    fn sequence_sets_and_uid_ranges() {
        let sel = Selected::new("support".into(), false, vec![3, 7, 9], 1);
        assert_eq!(sel.resolve(&set("1:*"), false), Some(vec![0, 1, 2]));
        assert_eq!(sel.resolve(&set("2,3"), false), Some(vec![1, 2]));
        assert_eq!(sel.resolve(&set("3,1:2"), false), Some(vec![0, 1, 2]));
        assert_eq!(sel.resolve(&set("4"), false), None);
        assert_eq!(sel.resolve(&set("7"), true), Some(vec![1]));
        assert_eq!(sel.resolve(&set("4:8"), true), Some(vec![1]));
        assert_eq!(sel.resolve(&set("8:4,7"), true), Some(vec![1]));
        // RFC 3501: 100:* contains the last message even though 100 is beyond it.
        assert_eq!(sel.resolve(&set("100:*"), true), Some(vec![2]));
        assert_eq!(sel.resolve(&set("100"), true), Some(vec![]));
        let empty = Selected::new("support".into(), false, vec![], 1);
        assert_eq!(empty.resolve(&set("1:*"), false), Some(vec![]));
        assert_eq!(empty.resolve(&set("1"), false), None);
    }

    #[test]
    fn changes_become_untagged_responses() {
        let mut sel = Selected::new("support".into(), false, vec![3, 7, 9], 1);
        let mut out = Out::default();
        let mut seen = entry(9);
        seen.seen = true;
        let fetch = |out: &mut Out, i: usize, e: &MailboxEntry| out.fetch(fetch_flags(i, e, 1, true), None);
        sel.apply(Changes { new: vec![12], changed: vec![seen.clone()], departed: vec![7], modseq: 5 }, false, &mut out, fetch);
        assert_eq!(String::from_utf8_lossy(&out.buf), "* 3 FETCH (UID 9 FLAGS (\\Seen $new))\r\n* 4 EXISTS\r\n");
        assert!(sel.is_gone(1), "7 left, but no EXPUNGE during FETCH/STORE/SEARCH");
        assert_eq!(sel.modseq, 5);
        let mut out = Out::default();
        sel.apply(Changes { new: vec![12], modseq: 6, ..Changes::default() }, true, &mut out, fetch);
        assert_eq!(String::from_utf8_lossy(&out.buf), "* 2 EXPUNGE\r\n");
        assert_eq!(sel.uids, vec![3, 9, 12]);
        assert_eq!(sel.last_uid, 12);
    }

    #[test]
    fn keywords_show_the_case_now() {
        let mut e = entry(1);
        e.category = Some("BZZX".into());
        e.priority = "urgent".into();
        e.status = "waiting".into();
        e.assignee = Some(4);
        e.spam = true;
        let names = |e: &MailboxEntry, user| format!("{:?}", flags(e, user));
        for k in ["$BZZX", "$urgent", "$waiting", "$mine", "$Junk"] {
            assert!(names(&e, 4).contains(k), "{k} in {}", names(&e, 4));
        }
        assert!(!names(&e, 5).contains("$mine"));
        e.priority = "normal".into();
        assert!(!names(&e, 4).contains("$normal"));
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
