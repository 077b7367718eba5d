//! The customer directory: addresses or whole domains with a tier (VIP, long-term, prospect),
//! a name and free tags. Name and tags are encrypted; the address or domain is stored only as a
//! blind index, so the directory cannot be read back without the key file. The tier is kept in
//! clear because routing needs it for every message and it names no one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::crypto::aad;
use super::engine::{on_conn, on_db};
use super::{Store, StoreError, audit, now_millis};

pub const TIERS: [&str; 3] = ["vip", "long-term", "prospect"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// `ana@customer.org`, or `customer.org` for everyone at that domain.
    pub address_or_domain: String,
    pub name: String,
    pub tier: String,
    pub tags: Vec<String>,
}

/// The blind-index key of a directory entry (addresses and domains never collide).
pub fn entry_key(store_keys: &super::crypto::KeyRing, address_or_domain: &str) -> Vec<u8> {
    let value = address_or_domain.trim().to_lowercase();
    let kind = if value.contains('@') { "customer-address" } else { "customer-domain" };
    store_keys.blind_index(kind, value.as_bytes())
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses `address_or_domain,name,tier,tags` (tags separated by `;`), with a header line.
pub fn parse_csv(text: &str) -> Result<Vec<Customer>, DirectoryError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| DirectoryError::Csv { line: e.position().map_or(0, |p| p.line()), reason: e.to_string() })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        let (who, name, tier) = (field(0).to_lowercase(), field(1), field(2).to_lowercase());
        if who.is_empty() || who.contains(char::is_whitespace) || who.starts_with('@') || who.ends_with('@') {
            return Err(DirectoryError::Csv { line, reason: format!("{who:?} is not an address or a domain") });
        }
        if !TIERS.contains(&tier.as_str()) {
            return Err(DirectoryError::Csv { line, reason: format!("tier {tier:?} is not one of {}", TIERS.join(", ")) });
        }
        let tags = field(3).split(';').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
        out.push(Customer { address_or_domain: who, name, tier, tags });
    }
    Ok(out)
}

pub fn to_csv(customers: &[Customer]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["address_or_domain", "name", "tier", "tags"]).expect("in memory");
    for c in customers {
        writer.write_record([c.address_or_domain.as_str(), c.name.as_str(), c.tier.as_str(), &c.tags.join(";")]).expect("in memory");
    }
    String::from_utf8(writer.into_inner().expect("in memory")).expect("csv of strings is UTF-8")
}

/// A directory row as stored: `uid, key_id, wrapped_key, entry_ct`.
type SealedEntry = (Vec<u8>, i64, Vec<u8>, Vec<u8>);

impl Store {
    /// Adds or replaces directory entries; audited (count only).
    pub async fn import_customers(&self, customers: &[Customer], actor: &str) -> Result<usize, StoreError> {
        let mut tx = self.db.begin_write().await?;
        for c in customers {
            let key = entry_key(&self.keys, &c.address_or_domain);
            let row = self.keys.new_row()?;
            let entry_ct = row.seal("customer", &serde_json::to_vec(c).expect("serialises"))?;
            on_conn!(&mut tx, conn => sqlx::query(
                "INSERT INTO customers (key_idx, tier, uid, key_id, wrapped_key, entry_ct) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (key_idx) DO UPDATE SET tier = excluded.tier, uid = excluded.uid, key_id = excluded.key_id,
                 wrapped_key = excluded.wrapped_key, entry_ct = excluded.entry_ct",
            )
            .bind(&key)
            .bind(&c.tier)
            .bind(&row.uid[..])
            .bind(row.key_id as i64)
            .bind(&row.wrapped_key)
            .bind(&entry_ct)
            .execute(conn)
            .await
            .map(|_| ())?);
        }
        let entry = audit::AuditEntry {
            at: now_millis(),
            actor: actor.into(),
            action: "customers.import".into(),
            object: None,
            detail: Some(format!("entries={}", customers.len())),
        };
        audit::append(&self.keys, &mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(customers.len())
    }

    /// Decrypts the whole directory (an audited read).
    pub async fn export_customers(&self, actor: &str) -> Result<Vec<Customer>, StoreError> {
        let sealed: Vec<SealedEntry> = on_db!(&self.db, pool => {
            sqlx::query_as("SELECT uid, key_id, wrapped_key, entry_ct FROM customers ORDER BY id").fetch_all(pool).await?
        });
        let mut out = Vec::with_capacity(sealed.len());
        for (uid, key_id, wrapped_key, entry_ct) in sealed {
            let data_key = self.keys.unwrap(key_id as u32, &wrapped_key, &aad("dek", &uid))?;
            let plain = data_key.open(&aad("customer", &uid), &entry_ct)?;
            out.push(serde_json::from_slice(&plain).map_err(|e| StoreError::BatchFailed(format!("directory entry: {e}")))?);
        }
        let mut tx = self.db.begin_write().await?;
        let entry = audit::AuditEntry {
            at: now_millis(),
            actor: actor.into(),
            action: "customers.export".into(),
            object: None,
            detail: Some(format!("entries={}", out.len())),
        };
        audit::append(&self.keys, &mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Blind index → tier, for routing. No decryption needed.
    pub async fn customer_tiers(&self) -> Result<HashMap<Vec<u8>, String>, StoreError> {
        let rows: Vec<(Vec<u8>, String)> =
            on_db!(&self.db, pool => sqlx::query_as("SELECT key_idx, tier FROM customers").fetch_all(pool).await?);
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_and_errors() {
        let text = "address_or_domain,name,tier,tags\nAna@Customer.org, Ana Example ,VIP,key account;berlin\nbigcorp.example,Big Corp,long-term,\n";
        let parsed = parse_csv(text).unwrap();
        assert_eq!(
            parsed[0],
            Customer {
                address_or_domain: "ana@customer.org".into(),
                name: "Ana Example".into(),
                tier: "vip".into(),
                tags: vec!["key account".into(), "berlin".into()]
            }
        );
        assert_eq!(parsed[1].tags, Vec::<String>::new());
        assert_eq!(parse_csv(&to_csv(&parsed)).unwrap(), parsed);
        let e = parse_csv("address_or_domain,name,tier,tags\na@b.org,A,gold,\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: tier \"gold\""), "{e}");
        assert!(parse_csv("address_or_domain,name,tier,tags\nnot an address,A,vip,\n").is_err());
    }
}
