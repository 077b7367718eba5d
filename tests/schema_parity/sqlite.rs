//! Reads a SQLite schema through `sqlite_master` and the table-valued pragmas.

use sqlx::{Row, SqliteConnection};

use super::model::{Column, Index, Schema, Table, sqlite_type_in_postgres, unique_key};

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
        for row in sqlx::query("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        {
            let (column, declared, not_null, pk): (String, String, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            table.columns.push(Column { name: column, ty: sqlite_type_in_postgres(&declared), not_null: not_null != 0 || pk > 0 });
        }
        primary_key.sort();
        table.primary_key = primary_key.into_iter().map(|(_, c)| c).collect();

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
