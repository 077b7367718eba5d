//! Moves one table's rows as they are (sealed columns stay sealed: nothing is decrypted), a page
//! at a time along the primary key, each page one multi-row INSERT into the target transaction.

use sqlx::sqlite::SqliteRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row, Sqlite, SqliteConnection};

use super::quoted;
use super::target::{Kind, Table};

/// One value of a row, typed as the column is.
#[derive(Clone, Debug)]
enum Value {
    Int(Option<i64>),
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
}

impl Value {
    fn read(row: &SqliteRow, index: usize, kind: Kind) -> Result<Value, sqlx::Error> {
        Ok(match kind {
            Kind::Int => Value::Int(row.try_get(index)?),
            Kind::Bytes => Value::Bytes(row.try_get(index)?),
            Kind::Text => Value::Text(row.try_get(index)?),
        })
    }

    fn size(&self) -> usize {
        match self {
            Value::Int(_) => 8,
            Value::Bytes(b) => b.as_ref().map_or(0, Vec::len),
            Value::Text(t) => t.as_ref().map_or(0, String::len),
        }
    }
}

/// Rows per page at most, and the page size (bytes) the copy adapts the row count to: large
/// sealed messages go a few at a time, small rows a thousand.
const MAX_ROWS: usize = 1000;
const PAGE_BYTES: usize = 8 << 20;
/// PostgreSQL's limit on the parameters of one statement.
const MAX_PARAMETERS: usize = 65_535;

/// Copies every row of `table` from `source` into `target`; returns how many.
pub(super) async fn copy_table(source: &mut SqliteConnection, target: &mut PgConnection, table: &Table) -> Result<u64, sqlx::Error> {
    let columns = table.columns.iter().map(|(name, _)| quoted(name)).collect::<Vec<_>>().join(", ");
    let key = table.key.iter().map(|&i| quoted(&table.columns[i].0)).collect::<Vec<_>>().join(", ");
    let row_cap = MAX_ROWS.min(MAX_PARAMETERS / table.columns.len());
    let mut limit = row_cap.min(100);
    let mut last_key: Option<Vec<Value>> = None;
    let mut copied = 0u64;
    loop {
        let mut select = QueryBuilder::<Sqlite>::new(format!("SELECT {columns} FROM {} ", quoted(&table.name)));
        if let Some(last) = &last_key {
            // Row-value comparison: the rows after the last one copied, in key order.
            select.push(format!("WHERE ({key}) > ("));
            let mut values = select.separated(", ");
            for value in last {
                match value.clone() {
                    Value::Int(v) => values.push_bind(v),
                    Value::Bytes(v) => values.push_bind(v),
                    Value::Text(v) => values.push_bind(v),
                };
            }
            select.push(") ");
        }
        select.push(format!("ORDER BY {key} LIMIT ")).push_bind(limit as i64);
        let rows = select.build().fetch_all(&mut *source).await?;
        if rows.is_empty() {
            return Ok(copied);
        }
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let values =
                table.columns.iter().enumerate().map(|(i, (_, kind))| Value::read(row, i, *kind)).collect::<Result<Vec<_>, _>>()?;
            page.push(values);
        }
        drop(rows);
        let bytes: usize = page.iter().flatten().map(Value::size).sum();
        insert(target, table, &columns, &page).await?;
        copied += page.len() as u64;
        last_key = page.last().map(|row| table.key.iter().map(|&i| row[i].clone()).collect());
        // Aim the next page at PAGE_BYTES.
        let per_row = (bytes / page.len()).max(1);
        limit = (PAGE_BYTES / per_row).clamp(1, row_cap);
    }
}

async fn insert(target: &mut PgConnection, table: &Table, columns: &str, page: &[Vec<Value>]) -> Result<(), sqlx::Error> {
    let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO {} ({columns}) ", quoted(&table.name)));
    insert.push_values(page, |mut b, row| {
        for value in row {
            match value {
                Value::Int(v) => b.push_bind(*v),
                Value::Bytes(v) => b.push_bind(v.clone()),
                Value::Text(v) => b.push_bind(v.clone()),
            };
        }
    });
    insert.build().execute(target).await?;
    Ok(())
}
