//! The PostgreSQL database the store moves to: its tables as the migrations made them (columns,
//! primary keys, the order foreign keys impose), the check that it holds nothing of ours yet, and
//! what makes the copied rows a working store (identity sequences, counters, the sequencer row).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Connection, PgConnection};

use super::{CopyError, quoted};

/// Tables only PostgreSQL has: the row every write transaction locks (not data, not copied).
const POSTGRES_ONLY: &[&str] = &["sequencer"];

/// Rows the migrations themselves insert (`WHERE` condition per table): a freshly migrated
/// database has them and is still empty; the copy replaces them with the source's rows.
const SEEDED: &[(&str, &str)] = &[
    ("counters", "name IN ('message', 'case') AND value = 0 OR name = 'modseq' AND value = 1"),
    ("roles", "name = 'security-officer' AND created_at = 0"),
];

/// How a column's values travel (every column of the schema is one of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Bytes,
    Text,
}

#[derive(Debug)]
pub(super) struct Table {
    pub name: String,
    /// Every column, in the table's order.
    pub columns: Vec<(String, Kind)>,
    /// Indexes into `columns` of the primary key, in key order (the copy pages along it).
    pub key: Vec<usize>,
}

/// Refuses, before anything is migrated, a database that holds tables of something else (any
/// table, and no sqlx migration record of ours): the wrong `--to` must not get our schema.
pub(super) async fn refuse_foreign(url: &str) -> Result<(), CopyError> {
    let mut conn = PgConnection::connect(url).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .fetch_all(&mut conn)
    .await?;
    let _ = conn.close().await;
    match tables.first() {
        Some(table) if !tables.iter().any(|t| t == "_sqlx_migrations") => Err(CopyError::TargetNotEmpty(table.clone())),
        _ => Ok(()),
    }
}

/// The tables to copy, each after every table it references.
pub(super) async fn tables(conn: &mut PgConnection) -> Result<Vec<Table>, CopyError> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text
         FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name <> '_sqlx_migrations'
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT cl.relname::text, a.attname::text
         FROM pg_index i
         JOIN pg_class cl ON cl.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = cl.relnamespace
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, position)
         JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum = k.attnum
         WHERE i.indisprimary AND n.nspname = current_schema()
         ORDER BY cl.relname, k.position",
    )
    .fetch_all(&mut *conn)
    .await?;
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT src.relname::text, dst.relname::text
         FROM pg_constraint k
         JOIN pg_class src ON src.oid = k.conrelid
         JOIN pg_class dst ON dst.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = k.connamespace
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (table, column, ty) in columns {
        if POSTGRES_ONLY.contains(&table.as_str()) {
            continue;
        }
        let kind = match ty.as_str() {
            "bigint" => Kind::Int,
            "bytea" => Kind::Bytes,
            "text" => Kind::Text,
            other => return Err(CopyError::Schema(format!("{table}.{column} has type {other}, which the copy does not know"))),
        };
        tables
            .entry(table.clone())
            .or_insert_with(|| Table { name: table, columns: Vec::new(), key: Vec::new() })
            .columns
            .push((column, kind));
    }
    for (table, column) in keys {
        if let Some(t) = tables.get_mut(&table) {
            let index = t.columns.iter().position(|(name, _)| *name == column).expect("a key column is a column");
            t.key.push(index);
        }
    }
    if let Some(t) = tables.values().find(|t| t.key.is_empty()) {
        return Err(CopyError::Schema(format!("table {} has no primary key to page along", t.name)));
    }
    foreign_key_order(tables, &references)
}

/// Kahn's sort: a table comes after every table it references (self-references aside);
/// alphabetical among those that are ready, so the order is the same every time.
fn foreign_key_order(mut tables: BTreeMap<String, Table>, references: &[(String, String)]) -> Result<Vec<Table>, CopyError> {
    let mut waits_for: BTreeMap<&str, BTreeSet<&str>> = tables.keys().map(|t| (t.as_str(), BTreeSet::new())).collect();
    for (from, to) in references {
        if from != to
            && let Some(set) = waits_for.get_mut(from.as_str())
        {
            set.insert(to.as_str());
        }
    }
    let mut order: Vec<String> = Vec::new();
    while !waits_for.is_empty() {
        let ready: Vec<&str> = waits_for.iter().filter(|(_, deps)| deps.is_empty()).map(|(t, _)| *t).collect();
        if ready.is_empty() {
            return Err(CopyError::Schema(format!("foreign keys form a cycle among {:?}", waits_for.keys().collect::<Vec<_>>())));
        }
        for table in ready {
            waits_for.remove(table);
            for deps in waits_for.values_mut() {
                deps.remove(table);
            }
            order.push(table.to_string());
        }
    }
    Ok(order.into_iter().map(|name| tables.remove(&name).expect("every sorted table exists")).collect())
}

/// Refuses a database that holds anything of ours beyond what the migrations insert, naming
/// the first such table; then removes the migrations' own rows, which the copy replaces.
pub(super) async fn claim_empty(conn: &mut PgConnection, tables: &[Table]) -> Result<(), CopyError> {
    for table in tables {
        let seeded = SEEDED.iter().find(|(name, _)| *name == table.name).map(|(_, condition)| *condition);
        let filter = seeded.map(|condition| format!(" WHERE NOT ({condition})")).unwrap_or_default();
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {}{filter})", quoted(&table.name));
        let used: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *conn).await?;
        if used {
            return Err(CopyError::TargetNotEmpty(table.name.clone()));
        }
    }
    for (table, condition) in SEEDED {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {} WHERE {condition}", quoted(table)))).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Rows in `table`.
pub(super) async fn count(conn: &mut PgConnection, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", quoted(table)))).fetch_one(conn).await
}

/// Moves every identity (or serial) sequence past the highest id copied, so the next row a node
/// inserts without an id gets a new one. Returns how many sequences were set.
pub(super) async fn reset_sequences(conn: &mut PgConnection) -> Result<usize, sqlx::Error> {
    let sequences: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, pg_get_serial_sequence(quote_ident(table_name), column_name)
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (table, column, sequence) in &sequences {
        // is_called = false: the next nextval returns exactly MAX + 1 (1 on an empty table).
        let sql = format!("SELECT setval($1, COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)", quoted(column), quoted(table));
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(sequence).execute(&mut *conn).await?;
    }
    Ok(sequences.len())
}

/// The copied counters must be ahead of every id and number already used, or the next delivery
/// would collide with a copied row (they are, when the source was consistent: SQLite allocates
/// from the same rows). Names the counter that is behind.
pub(super) async fn check_counters(conn: &mut PgConnection) -> Result<(), CopyError> {
    let behind: Vec<String> = sqlx::query_scalar(
        "SELECT 'counters.message' WHERE COALESCE((SELECT value FROM counters WHERE name = 'message'), 0)
                 < GREATEST((SELECT COALESCE(MAX(id), 0) FROM messages), (SELECT COALESCE(MAX(uid), 0) FROM message_cases))
         UNION ALL
         SELECT 'counters.case' WHERE COALESCE((SELECT value FROM counters WHERE name = 'case'), 0)
                 < (SELECT COALESCE(MAX(id), 0) FROM cases)
         UNION ALL
         SELECT 'reg_counters for year ' || m.reg_year FROM messages m LEFT JOIN reg_counters r ON r.year = m.reg_year
         GROUP BY m.reg_year, r.last_seq HAVING COALESCE(r.last_seq, 0) < MAX(m.reg_seq)",
    )
    .fetch_all(&mut *conn)
    .await?;
    match behind.first() {
        Some(counter) => Err(CopyError::Mismatch(format!("{counter} is behind the ids in use (the source store is inconsistent)"))),
        None => Ok(()),
    }
}

/// Names the copy as the sequencer row's last holder (the row holds no counter: those are the
/// copied `counters` and `reg_counters` rows, and the audit chain's head is its last row).
pub(super) async fn stamp_sequencer(conn: &mut PgConnection, node: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sequencer SET node = $1, at = $2 WHERE id = 1").bind(node).bind(at).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> (String, Table) {
        (name.to_string(), Table { name: name.into(), columns: vec![("id".into(), Kind::Int)], key: vec![0] })
    }

    #[test]
    fn tables_come_after_those_they_reference_and_a_cycle_is_refused() {
        let tables: BTreeMap<_, _> = ["case_entries", "cases", "outbox", "messages", "users"].into_iter().map(table).collect();
        let refs = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let references = refs(&[
            ("case_entries", "cases"),
            ("case_entries", "outbox"),
            ("outbox", "messages"),
            ("messages", "cases"),
            ("cases", "users"),
            ("users", "users"),
        ]);
        let order: Vec<String> = foreign_key_order(tables, &references).unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(order, ["users", "cases", "messages", "outbox", "case_entries"]);

        let tables: BTreeMap<_, _> = ["a", "b", "c"].into_iter().map(table).collect();
        let err = foreign_key_order(tables, &refs(&[("a", "b"), ("b", "a")])).unwrap_err();
        assert!(err.to_string().contains("cycle") && err.to_string().contains("\"a\""), "{err}");
    }
}
