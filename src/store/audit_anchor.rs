//! Audit anchors: the chain's head (the last entry's id and MAC) written down outside the
//! database, e.g. by `mailroom audit anchor` from cron into another host's log. The chain alone
//! cannot reveal a cut-off tail or a rollback to an older backup (what is left still verifies);
//! an anchor can: its entry must still exist with the same MAC. Anchors hold no customer data.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::audit::{self, ChainCheck, GENESIS};
use super::engine::on_db;
use super::{Store, StoreError};

/// The first word of an anchor line, so that a line in a shared log says what it is.
const LINE_TAG: &str = "audit-anchor";

/// The chain's head at one moment: entry `id` (0: the log was empty) had MAC `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    pub id: i64,
    /// The entry's chain MAC, lower-case hex.
    pub head: String,
    /// When the anchor was taken (RFC 3339); informative only.
    #[serde(default)]
    pub taken: String,
    /// The node that took it; informative only.
    #[serde(default)]
    pub node: String,
}

impl Anchor {
    /// `audit-anchor id=N head=HEX taken=TIME node=NAME`: one line, greppable, no spaces inside
    /// a value (a node name has none).
    pub fn line(&self) -> String {
        format!("{LINE_TAG} id={} head={} taken={} node={}", self.id, self.head, self.taken, self.node)
    }

    /// One line as [`Anchor::line`] writes it, or the JSON object `--json` writes.
    pub fn parse(line: &str) -> Result<Anchor, String> {
        let line = line.trim();
        let anchor = if line.starts_with('{') {
            serde_json::from_str::<Anchor>(line).map_err(|e| format!("not an anchor in JSON: {e}"))?
        } else {
            parse_words(line)?
        };
        if anchor.id < 0 {
            return Err(format!("id {} is negative", anchor.id));
        }
        if anchor.head.len() != 2 * GENESIS.len() || !anchor.head.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("head must be {} lower-case hex digits", 2 * GENESIS.len()));
        }
        Ok(anchor)
    }

    /// `id=N, taken T on node X` for messages.
    fn describe(&self) -> String {
        let taken = if self.taken.is_empty() { String::new() } else { format!(", taken {}", self.taken) };
        let node = if self.node.is_empty() { String::new() } else { format!(" on {}", self.node) };
        format!("entry {}{taken}{node}", self.id)
    }
}

fn parse_words(line: &str) -> Result<Anchor, String> {
    let expected = || format!("expected `{LINE_TAG} id=N head=HEX [taken=TIME] [node=NAME]` or a JSON object");
    let mut words = line.split_whitespace();
    if words.next() != Some(LINE_TAG) {
        return Err(expected());
    }
    let (mut id, mut head, mut taken, mut node) = (None, None, String::new(), String::new());
    for word in words {
        match word.split_once('=') {
            Some(("id", v)) => id = Some(v.parse::<i64>().map_err(|_| format!("id {v:?} is not a number"))?),
            Some(("head", v)) => head = Some(v.to_string()),
            Some(("taken", v)) => taken = v.to_string(),
            Some(("node", v)) => node = v.to_string(),
            _ => return Err(format!("unknown field {word:?}; {}", expected())),
        }
    }
    match (id, head) {
        (Some(id), Some(head)) => Ok(Anchor { id, head, taken, node }),
        _ => Err(format!("id and head are required; {}", expected())),
    }
}

/// An anchor with where it was read (`FILE:LINE`), for messages.
#[derive(Debug, Clone)]
pub struct FiledAnchor {
    pub source: String,
    pub anchor: Anchor,
}

/// Every anchor in a file of anchor lines (blank lines and `#` comments skipped); a line that is
/// none is an error naming `name:LINE`.
pub fn parse_file(name: &str, text: &str) -> Result<Vec<FiledAnchor>, String> {
    let mut anchors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let source = format!("{name}:{}", index + 1);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let anchor = Anchor::parse(line).map_err(|reason| format!("{source}: {reason}"))?;
        anchors.push(FiledAnchor { source, anchor });
    }
    Ok(anchors)
}

/// An anchor the store no longer agrees with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The anchored entry is gone: the log ends before it.
    Missing { source: String, anchor: Anchor, last_id: i64 },
    /// The entry exists with another MAC: history was rewritten after the anchor was taken.
    Rewritten { source: String, anchor: Anchor },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Missing { source, anchor, last_id } => write!(
                f,
                "anchor {source} ({}): the log ends at entry {last_id}, so it was truncated or restored from an older backup",
                anchor.describe()
            ),
            Mismatch::Rewritten { source, anchor } => write!(
                f,
                "anchor {source} ({}): the entry's MAC is not the anchored {}, so the log was rewritten (or the anchor is forged)",
                anchor.describe(),
                anchor.head
            ),
        }
    }
}

/// The chain check and, when the chain is intact, every anchor it does not match (in file order).
#[derive(Debug)]
pub struct AnchoredCheck {
    pub chain: ChainCheck,
    pub mismatches: Vec<Mismatch>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// The chain's head now, as node `node` sees it (cheap: one row, no verification).
    pub async fn audit_anchor(&self, node: &str) -> Result<Anchor, StoreError> {
        let last: Option<(i64, Vec<u8>)> = on_db!(self.db(), pool => {
            sqlx::query_as("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetch_optional(pool).await?
        });
        let (id, head) = last.unwrap_or_else(|| (0, GENESIS.to_vec()));
        Ok(Anchor { id, head: hex(&head), taken: super::millis_to_rfc3339(super::now_millis()), node: node.to_string() })
    }

    /// Verifies the chain and, if it is intact, that each anchor's entry is still there with the
    /// anchored MAC. The MACs are taken from the verifying pass itself (no query per anchor), and
    /// an intact chain makes every entry up to a matching anchor the one anchored.
    pub async fn verify_audit_anchored(&self, anchors: &[FiledAnchor]) -> Result<AnchoredCheck, StoreError> {
        let wanted: HashSet<i64> = anchors.iter().map(|a| a.anchor.id).collect();
        let mut found: HashMap<i64, String> = HashMap::from([(0, hex(&GENESIS))]);
        let mut last_id = 0;
        let mut conn = self.db().begin_read().await?;
        let chain = audit::verify_noting(&self.keys, &mut conn, |id, hash| {
            last_id = id;
            if wanted.contains(&id) {
                found.insert(id, hex(hash));
            }
        })
        .await?;
        let mut mismatches = Vec::new();
        if matches!(chain, ChainCheck::Intact { .. }) {
            for FiledAnchor { source, anchor } in anchors {
                match found.get(&anchor.id) {
                    None => mismatches.push(Mismatch::Missing { source: source.clone(), anchor: anchor.clone(), last_id }),
                    Some(head) if *head != anchor.head => {
                        mismatches.push(Mismatch::Rewritten { source: source.clone(), anchor: anchor.clone() })
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(AnchoredCheck { chain, mismatches })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store;

    fn entry(at: i64) -> audit::AuditEntry {
        audit::AuditEntry { at, actor: "cli:test".into(), action: "user.add".into(), object: None, detail: None }
    }

    #[test]
    fn lines_and_json_read_back_and_bad_lines_are_named() {
        let anchor = Anchor { id: 7, head: "ab".repeat(32), taken: "2026-11-30T12:00:00.000Z".into(), node: "mx1".into() };
        assert_eq!(Anchor::parse(&anchor.line()).unwrap(), anchor);
        assert_eq!(Anchor::parse(&serde_json::to_string(&anchor).unwrap()).unwrap(), anchor);
        let text = format!("# anchors\n\n{}\n{LINE_TAG} id=8 head=zz\n", anchor.line());
        assert_eq!(parse_file("a.log", &text).unwrap_err(), "a.log:4: head must be 64 lower-case hex digits");
        assert!(parse_file("a.log", "garbage\n").unwrap_err().starts_with("a.log:1: expected `audit-anchor id=N"));
        let anchors = parse_file("a.log", &text.replace("id=8 head=zz", &format!("id=9 head={}", "cd".repeat(32)))).unwrap();
        assert_eq!(anchors.iter().map(|a| (a.source.as_str(), a.anchor.id)).collect::<Vec<_>>(), [("a.log:3", 7), ("a.log:4", 9)]);
    }

    #[tokio::test]
    async fn an_anchor_detects_a_cut_tail_and_a_forged_head() {
        let (_dir, store) = store().await;
        let empty = store.audit_anchor("n1").await.unwrap();
        assert_eq!((empty.id, empty.head.as_str()), (0, hex(&GENESIS).as_str()));
        let mut tx = store.begin_write().await.unwrap();
        tx.audit(&[entry(1), entry(2)]).await.unwrap();
        tx.commit().await.unwrap();
        let anchor = store.audit_anchor("n1").await.unwrap();
        assert_eq!((anchor.id, anchor.node.as_str()), (2, "n1"));
        let mut tx = store.begin_write().await.unwrap();
        tx.audit(&[entry(3)]).await.unwrap();
        tx.commit().await.unwrap();

        let filed = |source: &str, anchor: &Anchor| FiledAnchor { source: source.into(), anchor: anchor.clone() };
        let forged = Anchor { head: "00".repeat(32), ..anchor.clone() };
        let beyond = Anchor { id: 4, ..anchor.clone() };
        let check = store
            .verify_audit_anchored(&[filed("f:1", &empty), filed("f:2", &anchor), filed("f:3", &forged), filed("f:4", &beyond)])
            .await
            .unwrap();
        assert!(matches!(check.chain, ChainCheck::Intact { entries: 3, .. }));
        assert_eq!(
            check.mismatches,
            [
                Mismatch::Rewritten { source: "f:3".into(), anchor: forged },
                Mismatch::Missing { source: "f:4".into(), anchor: beyond, last_id: 3 }
            ]
        );
    }
}
