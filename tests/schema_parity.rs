//! The SQLite and the PostgreSQL migrations build the same schema: the same tables, columns (name,
//! order, NOT NULL, default, type by the rules INTEGER↔bigint, BLOB↔bytea, TEXT↔text), primary and
//! foreign keys, and indexes (name, table, columns in order, unique, partial). PostgreSQL alone has `sequencer`.
//! The comparator itself is tested on a deliberate drift; and PostgreSQL's audit ids stay
//! consecutive through rollbacks (`mailroom audit verify` requires 1, 2, 3 …).

mod common;
#[path = "schema_parity/model.rs"]
mod model;
#[path = "schema_parity/postgres.rs"]
mod postgres;
#[path = "schema_parity/sqlite.rs"]
mod sqlite;

use common::*;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};

/// Tables that exist only in PostgreSQL, on purpose.
const POSTGRES_ONLY: &[&str] = &["sequencer"];

async fn sqlite_db(dir: &tempfile::TempDir) -> SqliteConnection {
    let options = SqliteConnectOptions::new().filename(dir.path().join("parity.db")).create_if_missing(true);
    SqliteConnection::connect_with(&options).await.expect("open SQLite")
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut lite = sqlite_db(&dir).await;
    mailroom::store::MIGRATOR.run(&mut lite).await.expect("SQLite migrations");
    let pg = PgCluster::start();
    let mut conn = PgConnection::connect(&pg.database("parity")).await.unwrap();
    mailroom::store::PG_MIGRATOR.run(&mut conn).await.expect("PostgreSQL migrations");

    // Same versions and names on both sides (sqlx records them).
    let versions = "SELECT version || ' ' || description FROM _sqlx_migrations ORDER BY version";
    let lite_versions: Vec<String> = sqlx::query_scalar(versions).fetch_all(&mut lite).await.unwrap();
    let pg_versions: Vec<String> = sqlx::query_scalar(versions).fetch_all(&mut conn).await.unwrap();
    assert_eq!(lite_versions, pg_versions);
    assert_eq!(lite_versions.len(), mailroom::store::MIGRATOR.iter().count());

    let (lite_schema, pg_schema) = (sqlite::read(&mut lite).await, postgres::read(&mut conn).await);
    // The reader saw the schema (an empty read would compare equal).
    assert!(lite_schema.tables.len() >= 20, "{:?}", lite_schema.tables.keys());
    assert!(lite_schema.indexes.contains_key("messages_dedupe") && lite_schema.indexes["messages_dedupe"].partial);
    assert!(pg_schema.tables.contains_key("sequencer"));
    for schema in [&lite_schema, &pg_schema] {
        let user_roles = &schema.tables["user_roles"];
        assert_eq!(user_roles.primary_key, ["user_id", "role"]);
        assert_eq!(user_roles.foreign_keys, ["(role) → roles (name) ON DELETE CASCADE", "(user_id) → users (id) ON DELETE CASCADE"]);
        let status = schema.tables["cases"].columns.iter().find(|c| c.name == "status").unwrap();
        assert_eq!((status.ty.as_str(), status.not_null, status.default.as_deref()), ("text", true, Some("'new'")));
    }

    let found = model::differences(&lite_schema, &pg_schema, POSTGRES_ONLY);
    assert!(found.is_empty(), "migrations/sqlite and migrations/postgres differ:\n{}", found.join("\n"));
}

#[tokio::test]
async fn a_drift_is_reported_naming_the_table_column_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut lite = sqlite_db(&dir).await;
    sqlx::raw_sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b BLOB, d INTEGER, e TEXT, f TEXT);
         CREATE INDEX t_a ON t (a);
         CREATE INDEX t_ef ON t (e, f);
         CREATE TABLE kv (k TEXT NOT NULL, v TEXT, UNIQUE (k, v));
         CREATE TABLE only_in_sqlite (x TEXT);
         CREATE TABLE child (p INTEGER REFERENCES t (id) ON DELETE CASCADE, q TEXT NOT NULL DEFAULT 'x');",
    )
    .execute(&mut lite)
    .await
    .unwrap();
    let pg = PgCluster::start();
    let mut conn = PgConnection::connect(&pg.database("drift")).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, a TEXT, b TEXT, d INTEGER, f TEXT, e TEXT, c BIGINT);
         CREATE UNIQUE INDEX t_a ON t (a) WHERE a IS NOT NULL;
         CREATE INDEX t_ef ON t (e, f);
         CREATE TABLE kv (k TEXT NOT NULL, v TEXT, UNIQUE (v, k));
         CREATE TABLE sequencer (id BIGINT PRIMARY KEY);
         CREATE TABLE child (p BIGINT REFERENCES t (id), q TEXT NOT NULL DEFAULT 'y');",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let found = model::differences(&sqlite::read(&mut lite).await, &postgres::read(&mut conn).await, POSTGRES_ONLY);
    let expected = [
        "table only_in_sqlite: in SQLite only",
        "column child.q: default 'x' in SQLite, 'y' in PostgreSQL",
        "table child: foreign key (p) → t (id) ON DELETE CASCADE in SQLite only",
        "table child: foreign key (p) → t (id) in PostgreSQL only",
        "column t.a: NOT NULL in SQLite, nullable in PostgreSQL",
        "column t.b: SQLite's type means bytea but PostgreSQL has text",
        "column t.d: SQLite's type means bigint but PostgreSQL has integer",
        "column t.c: in PostgreSQL only",
        "table t: column order SQLite (id, a, b, d, e, f) but PostgreSQL (id, a, b, d, f, e)",
        "index UNIQUE constraint on kv (k, v): in SQLite only (UNIQUE on kv (k, v))",
        "index t_a: SQLite on t (a) but PostgreSQL UNIQUE on t (a) WHERE …",
        "index UNIQUE constraint on kv (v, k): in PostgreSQL only (UNIQUE on kv (v, k))",
    ];
    assert_eq!(found, expected, "got:\n{}", found.join("\n"));
}

/// The audit ids come from the trigger in migrations/postgres/0001_init.sql: MAX(id) + 1, so a
/// rolled-back append leaves no gap (a sequence would), and one multi-row INSERT counts up.
#[tokio::test]
async fn postgres_audit_ids_stay_consecutive_through_rollbacks() {
    let pg = PgCluster::start();
    let mut conn = PgConnection::connect(&pg.database("audit")).await.unwrap();
    mailroom::store::PG_MIGRATOR.run(&mut conn).await.unwrap();
    let append = "INSERT INTO audit (at, actor, action, object, detail, prev_hash, hash)
                  VALUES (1, 'cli:test', 'x', NULL, NULL, '\\x00', '\\x01')";
    let append_two = "INSERT INTO audit (at, actor, action, object, detail, prev_hash, hash)
                      VALUES (1, 'cli:test', 'x', NULL, NULL, '\\x00', '\\x01'), (2, 'cli:test', 'y', NULL, NULL, '\\x01', '\\x02')";

    sqlx::raw_sql(append).execute(&mut conn).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::raw_sql(append).execute(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    sqlx::raw_sql(append_two).execute(&mut conn).await.unwrap();

    let ids: Vec<(i64, String)> = sqlx::query_as("SELECT id, action FROM audit ORDER BY id").fetch_all(&mut conn).await.unwrap();
    assert_eq!(ids, [(1, "x".to_string()), (2, "x".to_string()), (3, "y".to_string())]);

    // The sequencer row every write transaction locks first is there, and there is only one.
    let locked: i64 = sqlx::query_scalar("SELECT id FROM sequencer WHERE id = 1 FOR UPDATE").fetch_one(&mut conn).await.unwrap();
    assert_eq!(locked, 1);
    assert!(sqlx::query("INSERT INTO sequencer (id) VALUES (2)").execute(&mut conn).await.is_err());
}

/// migrations/sqlite/0021 rebuilds message_cases and case_participants as WITHOUT ROWID tables and
/// drops messages (case_id): a store made before it keeps every row, and the triggers that named a
/// placement by its rowid still record the expunge and stamp the moved row's modseq.
#[tokio::test]
async fn sqlite_0021_keeps_the_rows_and_the_triggers_of_the_tables_it_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let mut lite = sqlite_db(&dir).await;
    mailroom::store::MIGRATOR.run_to(20, &mut lite).await.expect("SQLite migrations up to 0020");
    sqlx::raw_sql(
        "INSERT INTO cases (id, opening_number, queue, opened_at, updated_at) VALUES (1, 'MR-1', 'support', 0, 0), (2, 'MR-2', 'sales', 0, 0);
         INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, dedupe_idx)
             VALUES (1, x'01', 'MR-1', 2026, 1, 0, 1, 'smtp', 1, 1, 1, x'00', x'00', x'00', x'01'),
                    (2, x'02', 'MR-2', 2026, 2, 0, 1, 'smtp', 1, 2, 1, x'00', x'00', x'00', x'02');
         INSERT INTO message_cases (message_id, case_id, uid, queue, modseq, x_category, x_priority, x_due)
             VALUES (1, 1, 1, 'support', 5, 'TSJJ', 'urgent', 7), (2, 1, 2, 'support', 5, NULL, 'normal', NULL), (2, 2, 2, 'sales', 6, NULL, 'low', 9);
         INSERT INTO case_participants (case_id, address_idx) VALUES (1, x'aa'), (1, x'bb'), (2, x'aa');",
    )
    .execute(&mut lite)
    .await
    .unwrap();
    let placements =
        "SELECT message_id, case_id, uid, queue, modseq, x_category, x_priority, x_due FROM message_cases ORDER BY message_id, case_id";
    type Placement = (i64, i64, i64, String, i64, Option<String>, Option<String>, Option<i64>);
    let participants = "SELECT case_id, hex(address_idx) FROM case_participants ORDER BY case_id, address_idx";
    let before: Vec<Placement> = sqlx::query_as(placements).fetch_all(&mut lite).await.unwrap();
    let before_participants: Vec<(i64, String)> = sqlx::query_as(participants).fetch_all(&mut lite).await.unwrap();
    assert_eq!((before.len(), before_participants.len()), (3, 3));

    mailroom::store::MIGRATOR.run(&mut lite).await.expect("the rest of the SQLite migrations");
    assert_eq!(sqlx::query_as::<_, Placement>(placements).fetch_all(&mut lite).await.unwrap(), before);
    assert_eq!(sqlx::query_as::<_, (i64, String)>(participants).fetch_all(&mut lite).await.unwrap(), before_participants);
    for select_rowid in ["SELECT rowid FROM message_cases", "SELECT rowid FROM case_participants"] {
        let rowid = sqlx::raw_sql(select_rowid).execute(&mut lite).await;
        assert!(rowid.is_err(), "{select_rowid}: the table is WITHOUT ROWID");
    }
    let gone: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'messages_case'").fetch_one(&mut lite).await.unwrap();
    assert_eq!(gone, 0);

    // A transfer of message 1's placement: the expunge of its old (queue, uid) and the row's new
    // modseq come from the same bump of the counter.
    sqlx::raw_sql("UPDATE message_cases SET queue = 'sales', uid = 3 WHERE message_id = 1 AND case_id = 1")
        .execute(&mut lite)
        .await
        .unwrap();
    let modseq: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'modseq'").fetch_one(&mut lite).await.unwrap();
    let expunged: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT queue, uid, modseq FROM mailbox_expunged").fetch_all(&mut lite).await.unwrap();
    assert_eq!(expunged, [("support".to_string(), 1, modseq)]);
    let moved: Vec<(i64, i64)> =
        sqlx::query_as("SELECT message_id, modseq FROM message_cases WHERE modseq = $1").bind(modseq).fetch_all(&mut lite).await.unwrap();
    assert_eq!(moved, [(1, modseq)], "only the moved placement takes the new modseq");
    // A case's change of queue reaches its placements through cases_imap_visible, re-created.
    sqlx::raw_sql("UPDATE cases SET queue = 'billing' WHERE id = 2").execute(&mut lite).await.unwrap();
    let queue: String =
        sqlx::query_scalar("SELECT queue FROM message_cases WHERE message_id = 2 AND case_id = 2").fetch_one(&mut lite).await.unwrap();
    assert_eq!(queue, "billing");
}
