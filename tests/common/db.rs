//! One way for tests to read and edit a server's store, whatever its engine: [`Sql::sql`] runs
//! a statement through the engine's own CLI (`sqlite3` on the data dir's database, `psql` on the
//! PostgreSQL URL of the config) and returns what it printed: one row per line, columns
//! separated by `|`, NULL as the empty string. Write the SQL so both engines accept it: values
//! inlined (strings through [`sql_quote`]), no `?1`, booleans as 0/1 integers, blobs through
//! [`Sql::sql_hex`]. [`Sql`] is implemented by [`Server`] and by
//! [`Database`] (for tests that open a store without a server).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::{Server, pg_bin_dir};

/// The store a test server uses, as written into its config's `[storage] database`.
#[derive(Clone, Debug)]
pub enum Database {
    /// The SQLite file (in the data dir).
    Sqlite(PathBuf),
    /// A `postgres://` URL (a fresh database in the binary's shared cluster).
    Postgres(String),
}

/// Quotes `value` as an SQL string literal (both engines: `'` doubled).
pub fn sql_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// SQL on a store: implemented by [`Server`] (its config's store) and [`Database`].
pub trait Sql {
    fn database(&self) -> &Database;

    fn is_postgres(&self) -> bool {
        matches!(self.database(), Database::Postgres(_))
    }

    /// For tests (or parts) about the SQLite file itself: under PostgreSQL prints why they do not
    /// apply and returns true (the caller skips them).
    fn sqlite_only(&self, why: &str) -> bool {
        if self.is_postgres() {
            eprintln!("SQLite only, skipped under PostgreSQL: {why}");
        }
        self.is_postgres()
    }

    /// Runs `statement` (one or several) and returns its output without the final newline.
    /// Panics with the statement and the CLI's stderr when it fails.
    fn sql(&self, statement: &str) -> String {
        let out = self.try_sql(statement);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{} failed ({}) on {statement:?}: {}",
            self.sql_cli(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end_matches(['\n', '\r']).to_string()
    }

    /// As [`Sql::sql`], for statements that may fail (e.g. a trigger refusing an edit).
    fn try_sql(&self, statement: &str) -> Output {
        let mut cmd = match self.database() {
            Database::Sqlite(file) => {
                let mut c = Command::new("sqlite3");
                // The server may hold the write lock for a moment: wait rather than fail.
                c.args(["-batch", "-cmd", ".timeout 10000"]).arg(file).arg(statement);
                c
            }
            Database::Postgres(url) => {
                let mut c = Command::new(pg_bin_dir().join("psql"));
                c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", statement]);
                c
            }
        };
        cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {} (is it installed?): {e}", self.sql_cli()))
    }

    /// The single integer `statement` selects.
    fn sql_i64(&self, statement: &str) -> i64 {
        let out = self.sql(statement);
        out.parse().unwrap_or_else(|_| panic!("{statement:?} gave {out:?}, not one integer"))
    }

    /// The single value `statement` selects, None for NULL or no row.
    fn sql_opt(&self, statement: &str) -> Option<String> {
        Some(self.sql(statement)).filter(|v| !v.is_empty())
    }

    /// Every row of `statement`, its columns split at `|`.
    fn sql_rows(&self, statement: &str) -> Vec<Vec<String>> {
        let out = self.sql(statement);
        if out.is_empty() {
            return vec![];
        }
        out.lines().map(|line| line.split('|').map(str::to_string).collect()).collect()
    }

    /// Runs `statements` as one write transaction that takes the store's writer lock first, as
    /// the server's own writes do (`BEGIN IMMEDIATE` on SQLite, the sequencer row on PostgreSQL),
    /// so it is serialised with them and allocated numbers stay in commit order.
    fn sql_write_transaction(&self, statements: &str) -> String {
        let begin = match self.database() {
            Database::Sqlite(_) => "BEGIN IMMEDIATE;",
            Database::Postgres(_) => "BEGIN; SELECT id FROM sequencer WHERE id = 1 FOR UPDATE;",
        };
        self.sql(&format!("{begin}\n{statements}\nCOMMIT;"))
    }

    /// Runs one INSERT, UPDATE or DELETE and returns how many rows it changed (through
    /// `RETURNING`, which both engines have).
    fn sql_changes(&self, statement: &str) -> usize {
        let out = self.sql(&format!("{} RETURNING 1", statement.trim_end().trim_end_matches(';')));
        out.lines().count()
    }

    /// The blob `column` of the one row of `table` matching `condition` (read as hex).
    fn sql_blob(&self, table: &str, column: &str, condition: &str) -> Vec<u8> {
        let hex = self.sql(&format!("SELECT {} FROM {table} WHERE {condition}", self.sql_hex(column)));
        assert!(hex.len().is_multiple_of(2) && !hex.contains('\n'), "not one blob from {table} where {condition}: {hex:?}");
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits")).collect()
    }

    /// `bytes` as a blob literal of this server's engine.
    fn sql_blob_literal(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self.database() {
            Database::Sqlite(_) => format!("X'{hex}'"),
            Database::Postgres(_) => format!("'\\x{hex}'::bytea"),
        }
    }

    /// Everything the store holds, as bytes to scan for clear text: the SQLite file and its WAL,
    /// or a `pg_dump` of the PostgreSQL database (blobs as hex there, so ciphertext stays opaque
    /// and only clear text can match). Named for assertion messages.
    fn store_contents(&self) -> Vec<(String, Vec<u8>)> {
        match self.database() {
            Database::Sqlite(file) => ["", "-wal"]
                .iter()
                .map(|suffix| {
                    let path = PathBuf::from(format!("{}{suffix}", file.display()));
                    (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap_or_default())
                })
                .collect(),
            Database::Postgres(url) => {
                let out = Command::new(pg_bin_dir().join("pg_dump"))
                    .args(["--data-only", "--no-owner", "-d", url])
                    .stdin(Stdio::null())
                    .output()
                    .expect("run pg_dump");
                assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
                vec![("pg_dump".to_string(), out.stdout)]
            }
        }
    }

    /// The tables (of the application's schema) that have a column `column`, by name.
    fn sql_tables_with_column(&self, column: &str) -> Vec<String> {
        let query = match self.database() {
            Database::Sqlite(_) => format!(
                "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND p.name = {} ORDER BY m.name",
                sql_quote(column)
            ),
            Database::Postgres(_) => format!(
                "SELECT table_name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND column_name = {} ORDER BY table_name",
                sql_quote(column)
            ),
        };
        self.sql(&query).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// A column that names one row of `table` and stays put when the row is updated: SQLite's
    /// `rowid`; on PostgreSQL the table's (single-column) primary key (`ctid` moves on UPDATE).
    fn sql_row_key(&self, table: &str) -> String {
        match self.database() {
            Database::Sqlite(_) => "rowid".to_string(),
            Database::Postgres(_) => {
                let key = self.sql(&format!(
                    "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                     WHERE i.indrelid = {}::regclass AND i.indisprimary",
                    sql_quote(table)
                ));
                assert!(!key.is_empty() && !key.contains('\n'), "{table} has no single-column primary key: {key:?}");
                key
            }
        }
    }

    /// An SQL expression naming the storage class of `expr`: `blob`, `text`, `integer`, `null` …
    /// (SQLite's `typeof`; PostgreSQL's `bytea` is `blob` here).
    fn sql_typeof(&self, expr: &str) -> String {
        match self.database() {
            Database::Sqlite(_) => format!("typeof({expr})"),
            Database::Postgres(_) => {
                format!(
                    "CASE WHEN {expr} IS NULL THEN 'null' WHEN pg_typeof({expr}) = 'bytea'::regtype THEN 'blob' ELSE pg_typeof({expr})::text END"
                )
            }
        }
    }

    /// An SQL expression giving the blob `expr` as lower-case hex on this server's engine.
    fn sql_hex(&self, expr: &str) -> String {
        match self.database() {
            Database::Sqlite(_) => format!("lower(hex({expr}))"),
            Database::Postgres(_) => format!("encode({expr}, 'hex')"),
        }
    }

    fn sql_cli(&self) -> &'static str {
        match self.database() {
            Database::Sqlite(_) => "sqlite3",
            Database::Postgres(_) => "psql",
        }
    }
}

impl Sql for Server {
    fn database(&self) -> &Database {
        &self.database
    }
}

impl Sql for Database {
    fn database(&self) -> &Database {
        self
    }
}
