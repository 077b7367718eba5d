//! Reads the `public` schema of a PostgreSQL database through `information_schema` and `pg_index`.

use sqlx::{PgConnection, Row};

use super::model::{Column, Index, Schema, Table, foreign_key, unique_key};

/// Every index of a table in `public` with its columns in key order; `constraint_unique` when a
/// `UNIQUE` constraint made it. (Expression columns have attnum 0 and would be left out: we have none.)
const INDEXES: &str = "
    SELECT ic.relname::text, t.relname::text, i.indisunique, i.indpred IS NOT NULL, i.indisprimary,
           EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.contype = 'u'),
           ARRAY(SELECT a.attname::text
                 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 ORDER BY k.ord)
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations'";

/// Every foreign key in `public`: table, referenced table, ON DELETE action, columns on each side.
const FOREIGN_KEYS: &str = "
    SELECT t.relname::text, rt.relname::text, con.confdeltype::text,
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
           ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
    FROM pg_constraint con
    JOIN pg_class t ON t.oid = con.conrelid
    JOIN pg_class rt ON rt.oid = con.confrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE con.contype = 'f' AND n.nspname = 'public'";

pub async fn read(conn: &mut PgConnection) -> Schema {
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for name in tables {
        let columns = sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable::text = 'NO', column_default::text
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Column { name: r.get(0), ty: r.get(1), not_null: r.get(2), default: r.get::<Option<String>, _>(3).map(uncast) })
        .collect();
        schema.tables.insert(name, Table { columns, ..Table::default() });
    }
    for row in sqlx::query(FOREIGN_KEYS).fetch_all(&mut *conn).await.unwrap() {
        let (table, target, action): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let on_delete = match action.as_str() {
            "a" => "NO ACTION",
            "r" => "RESTRICT",
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            other => panic!("unknown confdeltype {other}"),
        };
        let (columns, references): (Vec<String>, Vec<String>) = (row.get(3), row.get(4));
        let keys = &mut schema.tables.get_mut(&table).expect("foreign key of a listed table").foreign_keys;
        keys.push(foreign_key(&columns, &target, &references, on_delete));
        keys.sort();
    }
    for row in sqlx::query(INDEXES).fetch_all(&mut *conn).await.unwrap() {
        let (index, table, unique, partial, primary, constraint_unique): (String, String, bool, bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
        let columns: Vec<String> = row.get(6);
        if primary {
            schema.tables.get_mut(&table).expect("index of a listed table").primary_key = columns;
            continue;
        }
        let key = if constraint_unique { unique_key(&table, &columns) } else { index };
        schema.indexes.insert(key, Index { table, columns, unique, partial });
    }
    schema
}

/// `'new'::text` → `'new'`: PostgreSQL shows a default with the cast to its column's type.
fn uncast(default: String) -> String {
    match default.rfind("::") {
        Some(at) if default[at + 2..].chars().all(|c| c.is_ascii_lowercase() || c == ' ') => default[..at].to_string(),
        _ => default,
    }
}
