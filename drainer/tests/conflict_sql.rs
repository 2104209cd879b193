//! The conflict statements against a real MariaDB: the server compares as the columns
//! store their values (a FLOAT as a FLOAT, NULL equal to NULL, microseconds kept), so a
//! row still as the upstream's before image matches and any other does not, and last
//! writer wins compares the same two rows oppositely from the two sides.

use bytes::Bytes;
use drainer::apply::conflict::record::{create, insert, Conflict};
use drainer::apply::conflict::sql::{checked_delete, checked_update, newer, probe};
use drainer::apply::conflict::{Kind, Resolution};
use drainer::apply::sql::{delete_many, update_many, Stmt};
use integration::MariaDb;
use mysql_async::prelude::Queryable;
use schema::{Catalog, Value};

const TABLE: &str = "CREATE TABLE c (id INT PRIMARY KEY, f FLOAT, d DOUBLE, \
                     s VARCHAR(20), n INT NULL, at DATETIME(6))";

fn at(second: u8, micros: u32) -> Option<Value> {
    Some(Value::DateTime {
        year: 2026,
        month: 12,
        day: 5,
        hour: 1,
        minute: 2,
        second,
        micros,
    })
}

fn row(id: i32, s: &str, when: Option<Value>) -> Vec<Option<Value>> {
    vec![
        Some(Value::Int(id.into())),
        Some(Value::Float(0.1)),
        Some(Value::Double(0.1)),
        Some(Value::Text(Bytes::copy_from_slice(s.as_bytes()))),
        Some(Value::Null),
        when,
    ]
}

async fn matched(conn: &mut mysql_async::Conn, stmt: &Stmt) -> u64 {
    conn.exec_drop(stmt.sql.as_str(), stmt.values())
        .await
        .unwrap();
    conn.affected_rows()
}

async fn first(conn: &mut mysql_async::Conn, stmt: &Stmt) -> Option<Vec<i64>> {
    let row: Option<mysql_async::Row> = conn
        .exec_first(stmt.sql.as_str(), stmt.values())
        .await
        .unwrap();
    row.map(|r| (0..r.len()).map(|i| r.get::<i64, _>(i).unwrap()).collect())
}

#[tokio::test]
async fn the_server_finds_the_facts_of_a_conflict() {
    let server = MariaDb::start().await.unwrap();
    server
        .exec(&[
            "CREATE DATABASE app",
            &format!("CREATE TABLE app.{}", &TABLE["CREATE TABLE ".len()..]),
            "INSERT INTO app.c VALUES (1, 0.1, 0.1, 'site a', NULL, '2026-12-05 01:02:03.000004')",
        ])
        .await
        .unwrap();
    let mut catalog = Catalog::new();
    catalog.apply("", "CREATE DATABASE app").unwrap();
    let table = catalog.apply("app", TABLE).unwrap().tables[0]
        .1
        .clone()
        .unwrap();
    let mut conn = server.conn().await.unwrap();
    // The applier's session settings (apply::downstream).
    conn.query_drop("SET NAMES binary").await.unwrap();
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    conn.query_drop("BEGIN").await.unwrap();

    // The row as the upstream saw it before its change: it matches, FLOAT and NULL too.
    let before = row(1, "site a", at(3, 4));
    let other = row(1, "site b", at(3, 4));
    let after = row(1, "site a", at(9, 0));
    assert_eq!(
        matched(&mut conn, &checked_update(&table, &other, &after).unwrap()).await,
        0
    );
    assert_eq!(
        matched(&mut conn, &checked_delete(&table, &other).unwrap()).await,
        0
    );
    // Text compares by the column's collation, even in the applier's session (binary
    // parameters): under utf8mb4_general_ci another case is the same value
    // (docs/conflicts.md says so).
    conn.query_drop("SAVEPOINT probe").await.unwrap();
    let upper = row(1, "SITE A", at(3, 4));
    assert_eq!(
        matched(&mut conn, &checked_delete(&table, &upper).unwrap()).await,
        1
    );
    conn.query_drop("ROLLBACK TO SAVEPOINT probe")
        .await
        .unwrap();
    // Another microsecond is another row.
    let close = row(1, "site a", at(3, 5));
    assert_eq!(
        matched(&mut conn, &checked_update(&table, &close, &after).unwrap()).await,
        0
    );

    // What the unmatched change finds: another row (0), the change's result (1), none.
    assert_eq!(
        first(&mut conn, &probe(&table, &other, Some(&after)).unwrap()).await,
        Some(vec![0])
    );
    assert_eq!(
        first(&mut conn, &probe(&table, &other, Some(&before)).unwrap()).await,
        Some(vec![1])
    );
    let absent = row(2, "x", at(0, 0));
    assert_eq!(
        first(&mut conn, &probe(&table, &absent, Some(&absent)).unwrap()).await,
        None
    );

    // Last writer wins: the later `at` is newer; the same two rows seen from the other
    // side compare oppositely, the whole image breaking a tie.
    let later = row(1, "site b", at(9, 0));
    assert_eq!(
        first(&mut conn, &newer(&table, &before, &later, 5).unwrap()).await,
        Some(vec![1, 1])
    );
    // (The image compares column by column in order: `s` decides before `at` does.)
    let earlier = row(1, "site b", at(1, 0));
    assert_eq!(
        first(&mut conn, &newer(&table, &before, &earlier, 5).unwrap()).await,
        Some(vec![-1, 1])
    );
    let tie = row(1, "site b", at(3, 4));
    let seen_here = first(&mut conn, &newer(&table, &before, &tie, 5).unwrap())
        .await
        .unwrap();
    assert_eq!(seen_here[0], 0);
    conn.exec_drop("UPDATE app.c SET s = 'site b' WHERE id = 1", ())
        .await
        .unwrap();
    let seen_there = first(&mut conn, &newer(&table, &tie, &before, 5).unwrap())
        .await
        .unwrap();
    assert_eq!(seen_there[0], 0);
    assert_eq!(seen_here[1], -seen_there[1]);
    assert_ne!(seen_here[1], 0);

    // Back as the before image: the checked change matches, and then is the result.
    conn.query_drop("UPDATE app.c SET s = 'site a' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        matched(&mut conn, &checked_update(&table, &before, &after).unwrap()).await,
        1
    );
    assert_eq!(
        first(&mut conn, &probe(&table, &before, Some(&after)).unwrap()).await,
        Some(vec![1])
    );
    assert_eq!(
        matched(&mut conn, &checked_delete(&table, &after).unwrap()).await,
        1
    );
    conn.query_drop("ROLLBACK").await.unwrap();

    // The record, in the same transaction, reads the downstream row by its key before
    // the resolution changes it; a missing row reads as NULL.
    conn.query_drop(create("app").sql).await.unwrap();
    conn.query_drop("BEGIN").await.unwrap();
    for (located, kind) in [
        (&before, Kind::UpdateDiffers),
        (&absent, Kind::UpdateMissing),
    ] {
        let c = Conflict {
            channel_id: 7,
            position: "gtid 0-1-9 at binlog.000001:400",
            table: &table,
            located,
            before: Some(located),
            after: Some(&after),
            kind,
            resolution: Resolution::Apply,
        };
        let stmt = insert("app", &c, &[0]).unwrap();
        conn.exec_drop(stmt.sql.as_str(), stmt.values())
            .await
            .unwrap();
    }
    conn.query_drop("COMMIT").await.unwrap();
    let records: Vec<(String, String, String, Option<String>)> = conn
        .query(
            "SELECT row_key, kind, upstream_after, downstream_row              FROM app._drainer_conflicts ORDER BY id",
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].0.as_str(), records[0].1.as_str()),
        ("id=1", "update-differs")
    );
    let found: serde_json::Value = serde_json::from_str(records[0].3.as_deref().unwrap()).unwrap();
    assert_eq!(found["s"], "site a");
    assert_eq!(found["n"], serde_json::Value::Null);
    let after_image: serde_json::Value = serde_json::from_str(&records[0].2).unwrap();
    assert_eq!(after_image["at"], "2026-12-05 01:02:09.000000");
    assert_eq!(records[1].1, "update-missing");
    assert_eq!(records[1].3, None);
}

/// Checked multi-row statements match each row only while it is still its before image,
/// by one key or several columns of one, and find their rows by the key (not by a range
/// of another index, whose gap locks would block the parallel workers).
#[tokio::test]
async fn checked_multi_row_statements_match_only_rows_as_expected() {
    let server = MariaDb::start().await.unwrap();
    server
        .exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.s (id INT PRIMARY KEY, k INT, v VARCHAR(8), KEY (k))",
            "CREATE TABLE app.p (a INT, b INT, v VARCHAR(8), PRIMARY KEY (a, b))",
            "INSERT INTO app.s VALUES (1, 1, 'x'), (2, 2, 'x'), (3, 3, NULL), (4, 4, 'x')",
            "INSERT INTO app.p VALUES (1, 1, 'x'), (1, 2, 'x'), (2, 1, 'x')",
        ])
        .await
        .unwrap();
    let mut catalog = Catalog::new();
    catalog.apply("", "CREATE DATABASE app").unwrap();
    let mut table = |sql: &str| {
        catalog.apply("app", sql).unwrap().tables[0]
            .1
            .clone()
            .unwrap()
    };
    let s = table("CREATE TABLE s (id INT PRIMARY KEY, k INT, v VARCHAR(8), KEY (k))");
    let p = table("CREATE TABLE p (a INT, b INT, v VARCHAR(8), PRIMARY KEY (a, b))");
    let int = |v: i64| Some(Value::Int(v));
    let text = |v: &str| Some(Value::Text(Bytes::copy_from_slice(v.as_bytes())));
    let mut conn = server.conn().await.unwrap();
    conn.query_drop("SET NAMES binary").await.unwrap();
    conn.query_drop("BEGIN").await.unwrap();

    // Rows 1 and 3 (NULL) as expected, row 2 not: two of three match.
    let (r1, r2, r3) = (
        vec![int(1), int(1), text("x")],
        vec![int(2), int(2), text("other")],
        vec![int(3), int(3), Some(Value::Null)],
    );
    let (a1, a2, a3) = (
        vec![int(1), int(10), text("y")],
        vec![int(2), int(20), text("y")],
        vec![int(3), int(30), text("y")],
    );
    let stmt = update_many(&s, &[0], &[(&r1, &a1), (&r2, &a2), (&r3, &a3)], true)
        .unwrap()
        .unwrap();
    let plan: Vec<mysql_async::Row> = conn
        .exec(format!("EXPLAIN {}", stmt.sql), stmt.values())
        .await
        .unwrap();
    assert_eq!(plan[0].get::<String, _>("key").as_deref(), Some("PRIMARY"));
    // So does a single row's: `k <=> ?` alone could choose the index on `k`.
    let one = checked_update(&s, &r2, &a2).unwrap();
    let plan: Vec<mysql_async::Row> = conn
        .exec(format!("EXPLAIN {}", one.sql), one.values())
        .await
        .unwrap();
    assert_eq!(plan[0].get::<String, _>("key").as_deref(), Some("PRIMARY"));
    assert_eq!(matched(&mut conn, &stmt).await, 2);
    let ks: Vec<i64> = conn.query("SELECT k FROM app.s ORDER BY id").await.unwrap();
    assert_eq!(ks, [10, 2, 30, 4]);
    let gone = [vec![int(4), int(4), text("x")], r2.clone()];
    let refs: Vec<&[Option<Value>]> = gone.iter().map(Vec::as_slice).collect();
    assert_eq!(
        matched(&mut conn, &delete_many(&s, &[0], &refs, true).unwrap()).await,
        1
    );

    // Two key columns.
    let (p1, p2) = (
        vec![int(1), int(1), text("x")],
        vec![int(1), int(2), text("other")],
    );
    let (q1, q2) = (
        vec![int(1), int(1), text("y")],
        vec![int(1), int(2), text("y")],
    );
    let stmt = update_many(&p, &[0, 1], &[(&p1, &q1), (&p2, &q2)], true)
        .unwrap()
        .unwrap();
    assert_eq!(matched(&mut conn, &stmt).await, 1);
    let rows = [
        vec![int(1), int(1), text("y")],
        vec![int(2), int(1), text("x")],
    ];
    let refs: Vec<&[Option<Value>]> = rows.iter().map(Vec::as_slice).collect();
    assert_eq!(
        matched(&mut conn, &delete_many(&p, &[0, 1], &refs, true).unwrap()).await,
        2
    );
    let left: Vec<(i64, i64, String)> = conn.query("SELECT a, b, v FROM app.p").await.unwrap();
    assert_eq!(left, [(1, 2, "x".to_owned())]);
    conn.query_drop("ROLLBACK").await.unwrap();
}
