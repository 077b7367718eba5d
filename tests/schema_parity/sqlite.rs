//! Reads a SQLite schema through `sqlite_master` and the table-valued pragmas.

use sqlx::{Row, SqliteConnection};

use super::model::{Column, Index, Schema, Table, foreign_key, sqlite_type_in_postgres, unique_key};

pub async fn read(conn: &mut SqliteConnection) -> Schema {
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for name in tables {
        let mut table = Table::default();
        let mut primary_key = Vec::new();
        for row in sqlx::query("SELECT name, type, \"notnull\", pk, dflt_value FROM pragma_table_info($1) ORDER BY cid")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        {
            let (column, declared, not_null, pk): (String, String, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            let (ty, not_null) = (sqlite_type_in_postgres(&declared), not_null != 0 || pk > 0);
            table.columns.push(Column { name: column, ty, not_null, default: row.get(4) });
        }
        primary_key.sort();
        table.primary_key = primary_key.into_iter().map(|(_, c)| c).collect();
        table.foreign_keys = foreign_keys(conn, &name).await;

        for row in sqlx::query("SELECT name, \"unique\", origin, partial FROM pragma_index_list($1)")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        {
            let (index, unique, origin, partial): (String, i64, String, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
            if origin == "pk" {
                continue;
            }
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                .bind(&index)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            let key = if origin == "u" { unique_key(&name, &columns) } else { index };
            schema.indexes.insert(key, Index { table: name.clone(), columns, unique: unique != 0, partial: partial != 0 });
        }
        schema.tables.insert(name, table);
    }
    schema
}

/// The table's foreign keys; every one of ours names the referenced columns (`REFERENCES t (id)`).
async fn foreign_keys(conn: &mut SqliteConnection, table: &str) -> Vec<String> {
    struct Key {
        id: i64,
        target: String,
        from: Vec<String>,
        to: Vec<String>,
        on_delete: String,
    }
    let rows = sqlx::query("SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list($1) ORDER BY id, seq")
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let mut keys: Vec<Key> = Vec::new();
    for row in rows {
        let (id, from, to): (i64, String, Option<String>) = (row.get(0), row.get(2), row.get(3));
        let to = to.expect("a REFERENCES clause without columns: name them, as PostgreSQL's reader expects");
        match keys.last_mut() {
            Some(last) if last.id == id => {
                last.from.push(from);
                last.to.push(to);
            }
            _ => keys.push(Key { id, target: row.get(1), from: vec![from], to: vec![to], on_delete: row.get(4) }),
        }
    }
    let mut out: Vec<String> = keys.iter().map(|k| foreign_key(&k.from, &k.target, &k.to, &k.on_delete)).collect();
    out.sort();
    out
}
