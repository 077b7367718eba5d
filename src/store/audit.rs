//! The audit trail: append-only rows chained by SHA-256, so an edited or deleted row is detected
//! (`mailroom audit verify`, issue #4). Details never contain customer content or addresses.

use aws_lc_rs::digest;
use rusqlite::OptionalExtension;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

/// The hash of the (empty) chain's predecessor.
pub const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object: Option<String>,
    pub detail: Option<String>,
}

/// SHA-256 over the previous hash and every field, each length-prefixed so no two different
/// entries can serialise to the same bytes.
pub fn chain_hash(prev: &[u8], e: &AuditEntry) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(&e.at.to_be_bytes());
    for field in [Some(e.actor.as_str()), Some(e.action.as_str()), e.object.as_deref(), e.detail.as_deref()] {
        match field {
            Some(s) => {
                ctx.update(&[1]);
                ctx.update(&(s.len() as u64).to_be_bytes());
                ctx.update(s.as_bytes());
            }
            None => ctx.update(&[0]),
        }
    }
    ctx.finish().as_ref().to_vec()
}

/// Appends entries inside the caller's write transaction (which serialises all appenders, the
/// server's writer and admin commands alike, so the chain never forks).
pub async fn append(conn: &mut SqliteConnection, entries: &[AuditEntry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let last: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetch_optional(&mut *conn).await?;
    let mut prev = last.unwrap_or_else(|| GENESIS.to_vec());
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        let hash = chain_hash(&prev, e);
        rows.push((e, std::mem::replace(&mut prev, hash.clone()), hash));
    }
    // Stay well below SQLite's bound-parameter limit.
    for chunk in rows.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO audit (at, actor, action, object, detail, prev_hash, hash) ");
        q.push_values(chunk, |mut b, (e, prev, hash)| {
            b.push_bind(e.at).push_bind(&e.actor).push_bind(&e.action).push_bind(&e.object).push_bind(&e.detail).push_bind(prev).push_bind(hash);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The same append for the writer thread's synchronous connection.
pub fn append_sync(tx: &rusqlite::Transaction, entries: &[AuditEntry]) -> rusqlite::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let last: Option<Vec<u8>> = tx.prepare_cached("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")?.query_row([], |r| r.get(0)).optional()?;
    let mut prev = last.unwrap_or_else(|| GENESIS.to_vec());
    let mut insert = tx.prepare_cached("INSERT INTO audit (at, actor, action, object, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    for e in entries {
        let hash = chain_hash(&prev, e);
        insert.execute(rusqlite::params![e.at, e.actor, e.action, e.object, e.detail, prev, hash])?;
        prev = hash;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_field_change_changes_the_hash() {
        let e = AuditEntry { at: 1, actor: "smtp".into(), action: "message.registered".into(), object: Some("MR-1".into()), detail: None };
        let h = chain_hash(&GENESIS, &e);
        let mut variants = vec![];
        let mut v = e.clone();
        v.at = 2;
        variants.push(v);
        let mut v = e.clone();
        v.actor = "smtpx".into();
        variants.push(v);
        let mut v = e.clone();
        v.object = None;
        variants.push(v);
        let mut v = e.clone();
        v.detail = Some(String::new());
        variants.push(v);
        for v in variants {
            assert_ne!(chain_hash(&GENESIS, &v), h);
        }
        assert_ne!(chain_hash(&[1u8; 32], &e), h);
    }
}
