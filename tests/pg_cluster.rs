//! The test harness's throwaway PostgreSQL (`tests/common/pg.rs`) does what the PostgreSQL tests
//! rely on: a cluster starts and sqlx connects to its URL, each `database()` is fresh and separate,
//! a synchronous standby streams what the primary commits and refuses writes, and after the
//! primary dies a promoted standby has every committed row and accepts writes.

mod common;

use common::*;
use sqlx::{Connection, PgConnection, Row};

#[tokio::test]
async fn cluster_starts_and_serves_separate_fresh_databases() {
    let pg = PgCluster::start();
    let first = pg.database("first");
    let second = pg.database("second");

    let mut conn = PgConnection::connect(&first).await.expect("sqlx connects to the cluster's URL");
    sqlx::query("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO t (id, v) VALUES ($1, $2)").bind(7_i64).bind("seven").execute(&mut conn).await.unwrap();
    let row = sqlx::query("SELECT id, v, current_database()::text FROM t").fetch_one(&mut conn).await.unwrap();
    assert_eq!((row.get::<i64, _>(0), row.get::<String, _>(1), row.get::<String, _>(2)), (7, "seven".into(), "first".into()));
    conn.close().await.unwrap();

    // The second database is empty: no table leaks across.
    let mut conn = PgConnection::connect(&second).await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 0);

    // psql reaches the same data, and the server is on loopback only.
    assert_eq!(pg.sql("first", "SELECT v FROM t WHERE id = 7"), "seven");
    assert_eq!(pg.sql("postgres", "SHOW listen_addresses"), "127.0.0.1");
    assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"), "{}", pg.url());
}

#[test]
fn synchronous_standby_streams_and_takes_over_after_promotion() {
    let mut primary = PgCluster::start();
    primary.database("app");
    let standby = PgCluster::standby_of(&primary, "s1");
    assert_ne!(standby.port(), primary.port());
    primary.sync_standby("s1");

    // A synchronous commit: when it returns, the standby has the WAL; it applies it shortly after.
    primary.sql("app", "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO t VALUES (1, 'one')");
    standby.wait_for("app", "SELECT v FROM t WHERE id = 1", |v| v == "one", "row 1 on the standby");
    assert_eq!(standby.sql("app", "SELECT pg_is_in_recovery()"), "t");
    let refused = standby.try_sql("app", "INSERT INTO t VALUES (2, 'two')");
    assert!(!refused.status.success(), "a standby must refuse writes");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only transaction"), "{refused:?}");

    primary.sql("app", "INSERT INTO t VALUES (2, 'two')");
    primary.stop_immediate();
    standby.promote();

    assert_eq!(standby.sql("app", "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(standby.sql("app", "SELECT string_agg(v, ',' ORDER BY id) FROM t"), "one,two", "{}", standby.log());
    standby.sql("app", "INSERT INTO t VALUES (3, 'three')");
    assert_eq!(standby.sql("app", "SELECT count(*) FROM t"), "3");
}
