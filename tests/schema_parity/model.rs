//! What the parity test compares — tables, columns (name, order, type, NOT NULL, default), primary
//! and foreign keys, indexes — in one engine-neutral shape, and the comparison that names every
//! difference.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    /// By name; an index made by a `UNIQUE` constraint has an engine-chosen name and is keyed
    /// [`unique_key`] instead. Primary-key indexes are left out ([`Table::primary_key`] covers them).
    pub indexes: BTreeMap<String, Index>,
}

#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Each as "(columns) → table (columns)[ ON DELETE action]", sorted.
    pub foreign_keys: Vec<String>,
}

#[derive(Debug)]
pub struct Column {
    pub name: String,
    /// In PostgreSQL's words (`bigint`, `bytea`, `text`); SQLite's declared type is mapped first.
    pub ty: String,
    /// A primary-key column counts as NOT NULL on both engines (PostgreSQL implies it; SQLite
    /// reports 0 for its rowid alias although it can never be NULL).
    pub not_null: bool,
    /// The default's SQL as written (`'new'`, `0`), PostgreSQL's cast suffix (`::text`) removed.
    pub default: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Index {
    pub table: String,
    pub columns: Vec<String>,
    pub unique: bool,
    pub partial: bool,
}

impl Index {
    fn describe(&self) -> String {
        format!(
            "{}on {} ({}){}",
            if self.unique { "UNIQUE " } else { "" },
            self.table,
            self.columns.join(", "),
            if self.partial { " WHERE …" } else { "" }
        )
    }
}

/// The key of an index that a `UNIQUE` constraint made (its name differs per engine).
pub fn unique_key(table: &str, columns: &[String]) -> String {
    format!("UNIQUE constraint on {table} ({})", columns.join(", "))
}

/// One foreign key in the shape both readers produce; `on_delete` in SQL words ("CASCADE").
pub fn foreign_key(columns: &[String], table: &str, references: &[String], on_delete: &str) -> String {
    let action = if on_delete == "NO ACTION" { String::new() } else { format!(" ON DELETE {on_delete}") };
    format!("({}) → {table} ({}){action}", columns.join(", "), references.join(", "))
}

/// The common.md type rules: SQLite's INTEGER is PostgreSQL's BIGINT, BLOB is BYTEA, TEXT is TEXT.
pub fn sqlite_type_in_postgres(declared: &str) -> String {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" => "bigint".into(),
        "BLOB" => "bytea".into(),
        "TEXT" => "text".into(),
        other => format!("(no PostgreSQL type for SQLite {other})"),
    }
}

/// Every difference between the SQLite and the PostgreSQL schema, each naming its table, column
/// or index; empty when they agree. `postgres_only` lists the tables only PostgreSQL has.
pub fn differences(sqlite: &Schema, postgres: &Schema, postgres_only: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for name in sqlite.tables.keys().filter(|t| !postgres.tables.contains_key(*t)) {
        out.push(format!("table {name}: in SQLite only"));
    }
    for name in postgres.tables.keys().filter(|t| !sqlite.tables.contains_key(*t) && !postgres_only.contains(&t.as_str())) {
        out.push(format!("table {name}: in PostgreSQL only"));
    }
    for (name, lite) in &sqlite.tables {
        if let Some(pg) = postgres.tables.get(name) {
            table_differences(name, lite, pg, &mut out);
        }
    }
    for (key, lite) in &sqlite.indexes {
        match postgres.indexes.get(key) {
            None => out.push(format!("index {key}: in SQLite only ({})", lite.describe())),
            Some(pg) if pg != lite => out.push(format!("index {key}: SQLite {} but PostgreSQL {}", lite.describe(), pg.describe())),
            Some(_) => {}
        }
    }
    for (key, pg) in postgres.indexes.iter().filter(|(k, _)| !sqlite.indexes.contains_key(*k)) {
        if !postgres_only.contains(&pg.table.as_str()) {
            out.push(format!("index {key}: in PostgreSQL only ({})", pg.describe()));
        }
    }
    out
}

fn table_differences(table: &str, lite: &Table, pg: &Table, out: &mut Vec<String>) {
    let names = |t: &Table| t.columns.iter().map(|c| c.name.clone()).collect::<BTreeSet<_>>();
    let (lite_names, pg_names) = (names(lite), names(pg));
    for c in &lite.columns {
        match pg.columns.iter().find(|p| p.name == c.name) {
            None => out.push(format!("column {table}.{}: in SQLite only", c.name)),
            Some(p) => {
                if p.ty != c.ty {
                    out.push(format!("column {table}.{}: SQLite's type means {} but PostgreSQL has {}", c.name, c.ty, p.ty));
                }
                if p.default != c.default {
                    let shown = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
                    out.push(format!(
                        "column {table}.{}: default {} in SQLite, {} in PostgreSQL",
                        c.name,
                        shown(&c.default),
                        shown(&p.default)
                    ));
                }
                if p.not_null != c.not_null {
                    let null = |n: bool| if n { "NOT NULL" } else { "nullable" };
                    out.push(format!("column {table}.{}: {} in SQLite, {} in PostgreSQL", c.name, null(c.not_null), null(p.not_null)));
                }
            }
        }
    }
    for c in pg.columns.iter().filter(|c| !lite_names.contains(&c.name)) {
        out.push(format!("column {table}.{}: in PostgreSQL only", c.name));
    }
    // Order among the columns both have (one missing column is reported once, above).
    let order = |t: &Table, other: &BTreeSet<String>| {
        t.columns.iter().filter(|c| other.contains(&c.name)).map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    };
    let (lite_order, pg_order) = (order(lite, &pg_names), order(pg, &lite_names));
    if lite_order != pg_order {
        out.push(format!("table {table}: column order SQLite ({lite_order}) but PostgreSQL ({pg_order})"));
    }
    if lite.primary_key != pg.primary_key {
        out.push(format!(
            "table {table}: primary key SQLite ({}) but PostgreSQL ({})",
            lite.primary_key.join(", "),
            pg.primary_key.join(", ")
        ));
    }
    for fk in lite.foreign_keys.iter().filter(|fk| !pg.foreign_keys.contains(fk)) {
        out.push(format!("table {table}: foreign key {fk} in SQLite only"));
    }
    for fk in pg.foreign_keys.iter().filter(|fk| !lite.foreign_keys.contains(fk)) {
        out.push(format!("table {table}: foreign key {fk} in PostgreSQL only"));
    }
}
