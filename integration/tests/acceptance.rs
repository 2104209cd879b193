//! Acceptance tests of one direction through the real `drainer` binary, each between two
//! fresh MariaDB servers, `a` upstream and `b` downstream:
//!
//! - every MariaDB 10.11 column type, edge values included (binary bytes 0x00 and 0xff,
//!   4-byte UTF-8, DECIMAL(65,30), zero dates, negative TIME, BIT, JSON, ENUM, SET, YEAR,
//!   FLOAT/DOUBLE, UUID, INET6, INET4, geometry, NULLs, unsigned extremes), arrives byte
//!   for byte through inserts, updates, a key change and deletes, also in a table with no
//!   key, where rows are located by every column;
//! - the filters (`ignore-schemas`, `replicate-do-db` with a regular expression,
//!   `replicate-do-table`, `ignore-table` with a regular expression) apply to rows and DDL
//!   alike;
//! - `sync-ddl = false` tracks DDL without running it downstream, and rows written after
//!   the operator's own downstream ALTER apply; `sync-ddl = true` replays a DDL sequence
//!   (ADD … AFTER/FIRST, DROP, MODIFY, CHANGE, RENAME, indexes, TRUNCATE, CREATE TABLE …
//!   SELECT, CREATE/DROP TABLE, CREATE/ALTER/DROP DATABASE, unqualified names after USE)
//!   until both sides' `SHOW CREATE TABLE` and rows agree;
//! - `sync-mode = 2` applies rows whose columns differ from the downstream table;
//!   `sync-mode = 1` stops on such a row with exit code 1, naming the table and both
//!   column lists.
//!
//! The drainer copies no existing data or schema (only the DDL it reads after it starts),
//! so each test creates its tables on both servers before it starts the drainer.
//! Rows are compared as the servers store them: the comparing session runs with
//! `SET NAMES binary`, so text arrives unconverted, and every cell is compared as raw
//! bytes (shown as text when it is UTF-8, as hex otherwise).

use std::time::Duration;

use conf::TableName;
use integration::{config_for, eventually, DrainerCommand, DrainerProcess, MariaDb};
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Two fresh servers: `a` (upstream) and `b` (downstream).
async fn servers() -> (MariaDb, MariaDb) {
    let (a, b) = tokio::join!(MariaDb::start(), MariaDb::start());
    (a.unwrap(), b.unwrap())
}

/// Runs the same statements on both servers (before the drainer starts).
async fn on_both(a: &MariaDb, b: &MariaDb, statements: &[&str]) {
    for server in [a, b] {
        server.exec(statements).await.unwrap();
    }
}

/// Starts the drainer and waits until it reads the upstream.
async fn start(config: &conf::Config) -> DrainerProcess {
    integration::replicating(config, WAIT).await.unwrap()
}

/// Stops the drainer with SIGTERM; it must exit cleanly.
async fn stop(mut drainer: DrainerProcess) {
    drainer.signal(libc::SIGTERM);
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(
        out.code(),
        Some(0),
        "the drainer stops cleanly:\n{}",
        out.stderr
    );
}

/// The last lines of the drainer's stderr, for failure messages.
fn log_tail(drainer: &DrainerProcess) -> String {
    let log = drainer.stderr();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "drainer stderr (last lines):\n{}",
        lines[lines.len().saturating_sub(15)..].join("\n")
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One cell as raw bytes: quoted (escaped) text when it is UTF-8, else `0x…`; `NULL`.
fn cell(value: Option<Vec<u8>>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => format!("{text:?}"),
            Err(e) => format!("0x{}", hex(e.as_bytes())),
        },
    }
}

fn render(row: &mysql_async::Row) -> String {
    (0..row.len())
        .map(|i| cell(row.get::<Option<Vec<u8>>, _>(i).flatten()))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The rows of `sql`, every cell as the server stores it (no charset conversion,
/// TIMESTAMPs in UTC), sorted.
async fn select(server: &MariaDb, sql: &str) -> Result<Vec<String>, String> {
    let mut conn = server.conn().await.map_err(|e| e.to_string())?;
    conn.query_drop("SET NAMES binary, time_zone = '+00:00'")
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<mysql_async::Row> = conn.query(sql).await.map_err(|e| format!("`{sql}`: {e}"))?;
    conn.disconnect().await.ok();
    let mut out: Vec<String> = rows.iter().map(render).collect();
    out.sort();
    Ok(out)
}

/// Every row of every table (qualified names), byte-exact, in a stable order.
async fn dump(server: &MariaDb, tables: &[&str]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for table in tables {
        let rows = select(server, &format!("SELECT * FROM {table}")).await?;
        out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    Ok(out)
}

/// `SHOW CREATE TABLE` of each table.
async fn definitions(server: &MariaDb, tables: &[&str]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for table in tables {
        let rows: Vec<(String, String)> = server
            .query(&format!("SHOW CREATE TABLE {table}"))
            .await
            .map_err(|e| e.to_string())?;
        out.extend(rows.into_iter().map(|(_, create)| create));
    }
    Ok(out)
}

/// The tables of `schemas`, as `schema.table`, sorted.
async fn tables_in(server: &MariaDb, schemas: &[&str]) -> Result<Vec<String>, String> {
    let list: Vec<String> = schemas.iter().map(|s| format!("'{s}'")).collect();
    let sql = format!(
        "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables \
         WHERE table_schema IN ({})",
        list.join(", ")
    );
    let mut tables = server
        .query::<String>(&sql)
        .await
        .map_err(|e| e.to_string())?;
    tables.sort();
    Ok(tables)
}

/// Every schema of the server, sorted.
async fn schemas(server: &MariaDb) -> Vec<String> {
    let mut names = server
        .query::<String>("SELECT schema_name FROM information_schema.schemata")
        .await
        .unwrap();
    names.sort();
    names
}

/// `text` from a little before byte `at`, cut to a readable length.
fn window(text: &str, at: usize) -> String {
    let mut start = at.saturating_sub(100).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let shown: String = text[start..].chars().take(300).collect();
    let before = if start > 0 { "…" } else { "" };
    let after = if start + shown.len() < text.len() {
        "…"
    } else {
        ""
    };
    format!("{before}{shown}{after}")
}

/// Where two listings first differ, readably (cells can be 100 KB long).
fn difference(up: &[String], down: &[String]) -> String {
    let line = up.iter().zip(down).take_while(|(p, q)| p == q).count();
    let (p, q) = (up.get(line), down.get(line));
    let at = match (p, q) {
        (Some(p), Some(q)) => p.bytes().zip(q.bytes()).take_while(|(x, y)| x == y).count(),
        _ => 0,
    };
    let show = |s: Option<&String>| s.map_or_else(|| "(no line)".to_owned(), |s| window(s, at));
    format!(
        "upstream {} lines, downstream {}; first difference at line {line}:\n  upstream:   {}\n  downstream: {}",
        up.len(),
        down.len(),
        show(p),
        show(q)
    )
}

/// What two servers are compared by.
#[derive(Clone, Copy)]
enum Listing {
    /// Every row, byte for byte.
    Rows,
    /// `SHOW CREATE TABLE`.
    Definitions,
}

async fn list(server: &MariaDb, what: Listing, tables: &[&str]) -> Result<Vec<String>, String> {
    match what {
        Listing::Rows => dump(server, tables).await,
        Listing::Definitions => definitions(server, tables).await,
    }
}

/// Waits until `what` of `tables` is the same on both servers.
async fn agree(drainer: &DrainerProcess, a: &MariaDb, b: &MariaDb, tables: &[&str], what: Listing) {
    let waiting_for = match what {
        Listing::Rows => "the downstream rows to match the upstream",
        Listing::Definitions => "the downstream definitions to match the upstream",
    };
    eventually(waiting_for, WAIT, || async {
        let (x, y) = (list(a, what, tables).await?, list(b, what, tables).await?);
        if x == y {
            Ok(())
        } else {
            Err(format!("{}\n{}", difference(&x, &y), log_tail(drainer)))
        }
    })
    .await;
}

/// Waits until the rows of `tables` are the same, byte for byte, on both servers.
async fn converged(drainer: &DrainerProcess, a: &MariaDb, b: &MariaDb, tables: &[&str]) {
    agree(drainer, a, b, tables, Listing::Rows).await;
}

/// Waits until `SHOW CREATE TABLE` of `tables` says the same on both servers.
async fn same_definitions(drainer: &DrainerProcess, a: &MariaDb, b: &MariaDb, tables: &[&str]) {
    agree(drainer, a, b, tables, Listing::Definitions).await;
}

/// Waits until `sql` finds a row on `server` (a sentinel the drainer wrote).
async fn arrives(drainer: &DrainerProcess, server: &MariaDb, sql: &str) {
    eventually(&format!("`{sql}` to find a row"), WAIT, || async {
        let found: Vec<mysql_async::Row> = server.query(sql).await.map_err(|e| e.to_string())?;
        if found.is_empty() {
            Err(format!("no row yet\n{}", log_tail(drainer)))
        } else {
            Ok(())
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Every column type
// ---------------------------------------------------------------------------------------

/// The insertable columns of `app.types`, in order: every column type of MariaDB 10.11
/// (the list of pump-reader's `every_column_type_arrives_as_written`, and more).
const TYPE_COLUMNS: &[(&str, &str)] = &[
    ("id", "INT PRIMARY KEY"),
    // integers
    ("ti", "TINYINT"),
    ("tiu", "TINYINT UNSIGNED"),
    ("si", "SMALLINT"),
    ("siu", "SMALLINT UNSIGNED"),
    ("mi", "MEDIUMINT"),
    ("miu", "MEDIUMINT UNSIGNED"),
    ("i", "INT"),
    ("iu", "INT UNSIGNED"),
    ("bi", "BIGINT"),
    ("biu", "BIGINT UNSIGNED"),
    ("bo", "BOOL"),
    // numbers
    ("d", "DECIMAL(65,30)"),
    ("d2", "DECIMAL(10,2)"),
    ("wide", "DECIMAL(65,38)"),
    ("f", "FLOAT"),
    ("db", "DOUBLE"),
    // dates and times
    ("dt", "DATE"),
    ("dtm", "DATETIME"),
    ("dtm6", "DATETIME(6)"),
    ("ts", "TIMESTAMP NULL"),
    ("ts6", "TIMESTAMP(6) NULL"),
    ("t0", "TIME"),
    ("t1", "TIME(1)"),
    ("t2", "TIME(2)"),
    ("t3", "TIME(3)"),
    ("t6", "TIME(6)"),
    ("y", "YEAR"),
    // text
    ("c", "CHAR(10)"),
    ("vc", "VARCHAR(300)"),
    ("tx", "TEXT"),
    ("l1", "VARCHAR(10) CHARACTER SET latin1"),
    ("nc", "NCHAR(5)"),
    ("u16", "VARCHAR(10) CHARACTER SET utf16"),
    ("longchar", "CHAR(255)"),
    ("tt", "TINYTEXT"),
    ("mt", "MEDIUMTEXT"),
    ("lt", "LONGTEXT"),
    // binary
    ("bn", "BINARY(4)"),
    ("vb", "VARBINARY(10)"),
    ("bl", "BLOB"),
    ("tb", "TINYBLOB"),
    ("mb", "MEDIUMBLOB"),
    ("lb", "LONGBLOB"),
    // enum, set, bit
    ("e", "ENUM('a','b','c')"),
    ("s", "SET('x','y','z')"),
    ("b1", "BIT(1)"),
    ("b7", "BIT(7)"),
    ("b64", "BIT(64)"),
    // json, uuid, inet, geometry
    ("j", "JSON"),
    ("u", "UUID"),
    ("i6", "INET6"),
    ("i4", "INET4"),
    ("g", "GEOMETRY"),
    ("pt", "POINT"),
];

/// `app.types`: the columns above, and two generated ones the downstream computes.
fn types_table() -> String {
    let columns: Vec<String> = TYPE_COLUMNS
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    format!(
        "CREATE TABLE app.types (\n  {},\n  gv INT AS (id * 2) VIRTUAL,\n  gs BIGINT AS (id + 1000) STORED\n)",
        columns.join(",\n  ")
    )
}

/// An INSERT into `app.types` of one SQL expression per column of [`TYPE_COLUMNS`].
fn types_insert(values: &[&str]) -> String {
    assert_eq!(
        values.len(),
        TYPE_COLUMNS.len(),
        "one value per column of app.types"
    );
    let names: Vec<&str> = TYPE_COLUMNS.iter().map(|(name, _)| *name).collect();
    format!(
        "INSERT INTO app.types ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

/// The largest value of every type (long text and blobs past the 16-bit lengths).
fn max_row(id: &str) -> String {
    let nines = format!("{}.{}", "9".repeat(35), "9".repeat(30));
    let wide = format!("{}.{}", "9".repeat(27), "9".repeat(38));
    let emoji = format!("'{}'", "😀".repeat(300));
    let long_char = format!("'{}'", "é".repeat(255));
    let every_byte = format!("x'{}'", hex(&(0..=255u8).collect::<Vec<u8>>()));
    types_insert(&[
        id,
        // integers
        "127",
        "255",
        "32767",
        "65535",
        "8388607",
        "16777215",
        "2147483647",
        "4294967295",
        "9223372036854775807",
        "18446744073709551615",
        "TRUE",
        // numbers
        nines.as_str(),
        "99999999.99",
        wide.as_str(),
        "3.4028234e38",
        "1.7976931348623157e308",
        // dates and times
        "'9999-12-31'",
        "'9999-12-31 23:59:59'",
        "'9999-12-31 23:59:59.999999'",
        "'2038-01-19 03:14:07'",
        "'2038-01-19 03:14:07.999999'",
        "'838:59:59'",
        "'838:59:59.9'",
        "'838:59:59.99'",
        "'838:59:59.999'",
        "'838:59:59.999999'",
        "2155",
        // text
        "'abcdefghij'",
        emoji.as_str(),
        "'😀 text'",
        "_latin1 x'e9'",
        "'ñandú'",
        "'é😀'",
        long_char.as_str(),
        "'tiny 😀'",
        "REPEAT('m😀', 20000)",
        "REPEAT('😀', 20000)",
        // binary
        "x'01000000'",
        "x'00ff00'",
        every_byte.as_str(),
        "x'00ff'",
        "REPEAT(x'00ff', 40000)",
        "REPEAT(x'ff00', 50000)",
        // enum, set, bit
        "'c'",
        "'x,z'",
        "b'1'",
        "b'1111111'",
        "x'ffffffffffffffff'",
        // json, uuid, inet, geometry
        r#"'{"a": [1, 2], "e": "😀", "n": null}'"#,
        "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'",
        "'255.255.255.255'",
        "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 1)')",
        "ST_GeomFromText('POINT(1.5 -2.25)')",
    ])
}

/// The smallest value of every type; empty strings and blobs.
fn min_row(id: &str) -> String {
    let nines = format!("-{}.{}", "9".repeat(35), "9".repeat(30));
    let tiny = format!("-0.{}1", "0".repeat(37));
    types_insert(&[
        id,
        // integers
        "-128",
        "0",
        "-32768",
        "0",
        "-8388608",
        "0",
        "-2147483648",
        "0",
        "-9223372036854775808",
        "0",
        "FALSE",
        // numbers
        nines.as_str(),
        "-0.01",
        tiny.as_str(),
        "-1.17549435e-38",
        "-2.2250738585072014e-308",
        // dates and times
        "'1000-01-01'",
        "'1000-01-01 00:00:00'",
        "'1000-01-01 00:00:00.000001'",
        "'1970-01-01 00:00:01'",
        "'1970-01-01 00:00:01.000001'",
        "'-838:59:59'",
        "'-00:00:00.1'",
        "'-01:02:03.45'",
        "'-00:00:01.001'",
        "'-838:59:59.999999'",
        "1901",
        // text
        "''",
        "''",
        "''",
        "''",
        "''",
        "''",
        "'x'",
        "''",
        "''",
        "''",
        // binary (BINARY(4) stores four zero bytes)
        "''",
        "''",
        "''",
        "''",
        "''",
        "''",
        // enum, set, bit
        "'a'",
        "''",
        "b'0'",
        "b'0'",
        "x'0000000000000000'",
        // json, uuid, inet, geometry (all-zero UUID/INET lose their bytes in the binlog)
        "'[]'",
        "'00000000-0000-0000-0000-000000000000'",
        "'::'",
        "'0.0.0.0'",
        "ST_GeomFromText('POINT(0 0)')",
        "ST_GeomFromText('POINT(0 0)')",
    ])
}

/// Zero dates (needs `sql_mode` without NO_ZERO_DATE), tiny negative times, control
/// characters, trailing zero bytes and spaces, the unsigned half above the signed range.
fn odd_row(id: &str) -> String {
    types_insert(&[
        id,
        // integers
        "-1",
        "1",
        "-1",
        "1",
        "-1",
        "1",
        "-1",
        "1",
        "-1",
        "9223372036854775808",
        "2",
        // numbers
        "0",
        "-0.5",
        "1.5",
        "0.1",
        "0.1",
        // dates and times
        "'0000-00-00'",
        "'0000-00-00 00:00:00'",
        "'0000-00-00 00:00:00.000000'",
        "'0000-00-00 00:00:00'",
        "'0000-00-00 00:00:00.000000'",
        "'00:00:00'",
        "'00:00:00.0'",
        "'-00:00:00.01'",
        "'12:34:56.789'",
        "'-00:00:00.000001'",
        "0",
        // text
        "'pad  '",
        "'trailing spaces   '",
        r"'nul\0byte, tab\t, quote '' and backslash \\'",
        "_latin1 x'ff'",
        "'abc'",
        "'a'",
        "'x'",
        "'t'",
        "'m'",
        "'l'",
        // binary (BINARY(4) with trailing zero bytes, which the binlog strips)
        "x'ff000000'",
        "x'00'",
        "x'00'",
        "x'ff'",
        "x'00ff'",
        "x'ff'",
        // enum, set, bit
        "'b'",
        "'x,y,z'",
        "b'0'",
        "b'1010101'",
        "x'8000000000000001'",
        // json, uuid, inet, geometry
        r#"'{"k": null, "n": -1.5e10}'"#,
        // A version-1 UUID: MariaDB stores versions 1 to 5 with their groups swapped.
        "'6ccd780c-baba-1026-9564-5b8c656024db'",
        "'fe80::1'",
        "'10.0.0.1'",
        "ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0))')",
        "ST_GeomFromText('POINT(-1 1)', 4326)",
    ])
}

/// Updates (to new values, to NULL, from NULL), a primary key change and a delete.
const TYPE_CHANGES: &[&str] = &[
    r#"UPDATE app.types SET vc = 'updated 😀', bl = x'ff00ff00', d = -d, e = 'a', s = 'y',
        ts6 = '2001-02-03 04:05:06.5', j = '{"updated": true}', i4 = '1.2.3.4',
        t1 = '-12:00:00.5', b64 = x'0102030405060708' WHERE id = 1"#,
    "UPDATE app.types SET ti = NULL, bn = NULL, t6 = NULL, u = NULL, g = NULL, \
     mb = REPEAT(x'01', 70000) WHERE id = 2",
    "UPDATE app.types SET ti = 1, vc = 'was NULL', b7 = b'1', dtm6 = '2024-02-29 12:34:56.000001', \
     i6 = '::1', pt = ST_GeomFromText('POINT(3 4)'), y = 2024 WHERE id = 4",
    "UPDATE app.types SET id = 30 WHERE id = 3",
    "DELETE FROM app.types WHERE id = 5",
];

/// A table without a key: UPDATE and DELETE locate their row by every column.
const NOKEY_TABLE: &str = "CREATE TABLE app.nokey (t TIME(6), d DECIMAL(65,30), dtm6 DATETIME(6), \
    ts6 TIMESTAMP(6) NULL, vb VARBINARY(10), tx TEXT, e ENUM('a','b'), s SET('x','y'), b BIT(5), \
    f FLOAT, db DOUBLE, j JSON, u UUID, i4 INET4, n INT)";

/// Rows of `app.nokey` (two identical ones), an update of one of the twins, an update of
/// the all-NULL row, a delete.
const NOKEY_ROWS: &[&str] = &[
    r#"INSERT INTO app.nokey VALUES
        ('-838:59:59.999999', -0.000000000000000000000000000001, '1000-01-01 00:00:00.000001',
         '1970-01-01 00:00:01.000001', x'00ff', 'é 😀', 'b', 'x,y', b'10101', 0.1, 0.1, '{"a": 1}',
         '123e4567-e89b-42d3-a456-426614174000', '10.0.0.1', 1),
        ('12:00:00.5', 123.456, '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999999', x'ff',
         'twin', 'a', 'y', b'1', -0.25, 1e300, '[1]', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
         '255.255.255.255', 2),
        ('12:00:00.5', 123.456, '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999999', x'ff',
         'twin', 'a', 'y', b'1', -0.25, 1e300, '[1]', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
         '255.255.255.255', 2),
        (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3)"#,
    "UPDATE app.nokey SET n = 20 WHERE n = 2 LIMIT 1",
    "UPDATE app.nokey SET tx = 'was NULL', u = '00000000-0000-0000-0000-000000000001' WHERE n = 3",
    "DELETE FROM app.nokey WHERE n = 1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_round_trips_byte_exactly() {
    let (a, b) = servers().await;
    let create = types_table();
    on_both(
        &a,
        &b,
        &["CREATE DATABASE app", create.as_str(), NOKEY_TABLE],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    // Safe mode off: UPDATE and DELETE run as themselves, located by key or by every
    // column (safe mode's DELETE + REPLACE is what the other tests run).
    config.syncer.safe_mode_after_start_s = 0;
    let drainer = start(&config).await;

    let rows = [max_row("1"), min_row("2"), odd_row("3"), max_row("5")];
    let mut statements = vec!["SET SESSION sql_mode = ''", "SET time_zone = '+00:00'"];
    statements.extend(rows.iter().map(String::as_str));
    statements.push("INSERT INTO app.types (id) VALUES (4)");
    statements.extend(NOKEY_ROWS);
    // One transaction: its updates of rows 1, 2 and 4 share no key, so the drainer sets
    // them in one multi-row UPDATE (a CASE per column), which must be as exact.
    statements.push("BEGIN");
    statements.extend(TYPE_CHANGES);
    statements.push("COMMIT");
    a.exec(&statements).await.unwrap();

    converged(&drainer, &a, &b, &["app.types", "app.nokey"]).await;
    assert!(
        !drainer.stderr().contains("refused as multi-row statements"),
        "the multi-row statements were taken as they are:\n{}",
        log_tail(&drainer)
    );
    // The test wrote what it meant to: the rows left, on the downstream too.
    let ids: Vec<i32> = b
        .query("SELECT id FROM app.types ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ids, [1, 2, 4, 30]);
    let ns: Vec<i32> = b.query("SELECT n FROM app.nokey ORDER BY n").await.unwrap();
    assert_eq!(ns, [2, 3, 20]);
    stop(drainer).await;
}

// ---------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------

const FILTER_SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.orders (id INT PRIMARY KEY, v VARCHAR(40))",
    "CREATE TABLE app.tmp_cache (id INT PRIMARY KEY, v VARCHAR(40))",
    "INSERT INTO app.tmp_cache VALUES (100, 'there before')",
    "CREATE DATABASE shop_1",
    "CREATE TABLE shop_1.carts (id INT PRIMARY KEY, v VARCHAR(40))",
    "CREATE DATABASE shop_9",
    "CREATE TABLE shop_9.carts (id INT PRIMARY KEY, v VARCHAR(40))",
    "CREATE DATABASE shop_x",
    "CREATE TABLE shop_x.carts (id INT PRIMARY KEY, v VARCHAR(40))",
    "INSERT INTO shop_x.carts VALUES (100, 'there before')",
    "CREATE DATABASE crm",
    "CREATE TABLE crm.leads (id INT PRIMARY KEY, v VARCHAR(40))",
    "CREATE TABLE crm.accounts (id INT PRIMARY KEY, v VARCHAR(40))",
    "INSERT INTO crm.accounts VALUES (100, 'there before')",
    "CREATE DATABASE other",
    "CREATE TABLE other.t (id INT PRIMARY KEY, v VARCHAR(40))",
    "INSERT INTO other.t VALUES (100, 'there before')",
];

/// Replicated: `app` and `shop_<digits>` (do-db), `crm.leads` (do-table), but not
/// `app.tmp_*` (ignore-table) nor `shop_9` (ignore-schemas, which comes first).
const WANTED: &[&str] = &["app.orders", "shop_1.carts", "shop_2.carts", "crm.leads"];
/// Not replicated; all exist downstream before the drainer starts and must stay as they are.
const UNWANTED: &[&str] = &[
    "app.tmp_cache",
    "shop_9.carts",
    "shop_x.carts",
    "crm.accounts",
    "other.t",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_apply_to_rows_and_ddl() {
    let (a, b) = servers().await;
    on_both(&a, &b, FILTER_SETUP).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    config.syncer.replicate_do_db = vec!["app".into(), "~^shop_[0-9]+$".into()];
    config.syncer.replicate_do_table = vec![TableName {
        db_name: "crm".into(),
        tbl_name: "leads".into(),
    }];
    config.syncer.ignore_schemas = "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql,shop_9".into();
    config.syncer.ignore_table = vec![TableName {
        db_name: "app".into(),
        tbl_name: "~^tmp_".into(),
    }];
    let rows_before = dump(&b, UNWANTED).await.unwrap();
    let definitions_before = definitions(&b, UNWANTED).await.unwrap();
    let drainer = start(&config).await;

    a.exec(&[
        // Rows everywhere.
        "INSERT INTO app.orders VALUES (1, 'wanted')",
        "INSERT INTO app.tmp_cache VALUES (1, 'ignored table')",
        "INSERT INTO shop_1.carts VALUES (1, 'wanted by the pattern')",
        "INSERT INTO shop_x.carts VALUES (1, 'not matched by the anchored pattern')",
        "INSERT INTO shop_9.carts VALUES (1, 'matched, but in ignore-schemas')",
        "INSERT INTO crm.leads VALUES (1, 'wanted table')",
        "INSERT INTO crm.accounts VALUES (1, 'table not listed')",
        "INSERT INTO other.t VALUES (1, 'schema not listed')",
        // One transaction over wanted and unwanted tables.
        "BEGIN",
        "INSERT INTO app.orders VALUES (2, 'mixed transaction')",
        "UPDATE app.tmp_cache SET v = 'changed upstream' WHERE id = 100",
        "DELETE FROM other.t WHERE id = 100",
        "UPDATE crm.accounts SET v = 'changed upstream' WHERE id = 100",
        "INSERT INTO shop_1.carts VALUES (2, 'mixed transaction')",
        "COMMIT",
        "UPDATE app.orders SET v = 'updated' WHERE id = 1",
        "DELETE FROM shop_1.carts WHERE id = 2",
        // DDL on unwanted tables and schemas: none of it runs downstream.
        "ALTER TABLE app.tmp_cache ADD COLUMN extra INT",
        "INSERT INTO app.tmp_cache VALUES (2, 'after its ALTER', 7)",
        "ALTER TABLE crm.accounts ADD COLUMN extra INT",
        "ALTER TABLE shop_9.carts ADD COLUMN extra INT",
        "ALTER TABLE other.t ADD COLUMN extra INT",
        "INSERT INTO other.t VALUES (2, 'after its ALTER', 7)",
        "CREATE TABLE other.created (id INT PRIMARY KEY)",
        "CREATE TABLE app.tmp_new (id INT PRIMARY KEY)",
        "INSERT INTO app.tmp_new VALUES (1)",
        "CREATE DATABASE junk",
        "CREATE TABLE junk.t (id INT PRIMARY KEY)",
        "INSERT INTO junk.t VALUES (1)",
        "TRUNCATE TABLE app.tmp_cache",
        "DROP TABLE shop_x.carts",
        // DDL on wanted tables and schemas: it runs downstream.
        "ALTER TABLE app.orders ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'n'",
        "INSERT INTO app.orders VALUES (3, 'after its ALTER', 'three')",
        "CREATE DATABASE shop_2",
        "CREATE TABLE shop_2.carts (id INT PRIMARY KEY, v VARCHAR(40))",
        "INSERT INTO shop_2.carts VALUES (1, 'new wanted schema')",
        "ALTER TABLE crm.leads ADD COLUMN score INT",
        "INSERT INTO crm.leads VALUES (2, 'after its ALTER', 5)",
        // The sentinel: once it is downstream, everything before it was handled.
        "INSERT INTO app.orders VALUES (999, 'sentinel', 'last')",
    ])
    .await
    .unwrap();
    arrives(&drainer, &b, "SELECT id FROM app.orders WHERE id = 999").await;

    converged(&drainer, &a, &b, WANTED).await;
    same_definitions(&drainer, &a, &b, WANTED).await;
    assert_eq!(
        dump(&b, UNWANTED).await.unwrap(),
        rows_before,
        "rows of unwanted tables were copied, or their DDL (TRUNCATE, DROP) ran downstream"
    );
    assert_eq!(
        definitions(&b, UNWANTED).await.unwrap(),
        definitions_before,
        "DDL of unwanted tables ran downstream"
    );
    assert_eq!(
        tables_in(&b, &["app", "crm", "other", "shop_x"])
            .await
            .unwrap(),
        [
            "app.orders",
            "app.tmp_cache",
            "crm.accounts",
            "crm.leads",
            "other.t",
            "shop_x.carts"
        ],
        "tables created upstream in unwanted places exist downstream, or a DROP ran"
    );
    let names = schemas(&b).await;
    assert!(
        !names.iter().any(|s| s == "junk"),
        "CREATE DATABASE of an unwanted schema ran downstream: {names:?}"
    );
    assert!(
        names.iter().any(|s| s == "shop_2"),
        "CREATE DATABASE of a wanted schema did not run downstream: {names:?}"
    );
    stop(drainer).await;
}

// ---------------------------------------------------------------------------------------
// DDL
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_ddl_false_tracks_ddl_without_running_it() {
    let (a, b) = servers().await;
    on_both(
        &a,
        &b,
        &[
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))",
            "CREATE TABLE app.marker (id INT PRIMARY KEY)",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    config.syncer.sync_ddl = false;
    config.syncer.checkpoint_interval_ms = 200;
    let drainer = start(&config).await;

    a.exec(&["INSERT INTO app.t VALUES (1, 'one')"])
        .await
        .unwrap();
    converged(&drainer, &a, &b, &["app.t"]).await;
    let before = definitions(&b, &["app.t"]).await.unwrap();

    const ALTER: &str = "ALTER TABLE app.t ADD COLUMN w INT NOT NULL DEFAULT 7 AFTER id";
    a.exec(&[ALTER, "INSERT INTO app.marker VALUES (1)"])
        .await
        .unwrap();
    arrives(&drainer, &b, "SELECT id FROM app.marker WHERE id = 1").await;
    assert_eq!(
        definitions(&b, &["app.t"]).await.unwrap(),
        before,
        "with sync-ddl = false the ALTER ran downstream"
    );
    // The schema history took it all the same.
    eventually(
        "`drainer schema show` to list the new column",
        WAIT,
        || async {
            let out = DrainerCommand::new()
                .map_err(|e| e.to_string())?
                .arg("schema")
                .arg("show")
                .arg("app.t")
                .config(&config)
                .map_err(|e| e.to_string())?
                .output(WAIT)
                .await
                .map_err(|e| e.to_string())?;
            if out.stdout.contains("`w` int") {
                Ok(())
            } else {
                Err(format!("{}{}", out.stdout, out.stderr))
            }
        },
    )
    .await;

    // The other direction (here: the test) changes the downstream; later rows apply.
    b.exec(&[ALTER]).await.unwrap();
    a.exec(&[
        "INSERT INTO app.t VALUES (2, 8, 'two')",
        "UPDATE app.t SET w = 9, v = 'uno' WHERE id = 1",
        "INSERT INTO app.marker VALUES (2)",
    ])
    .await
    .unwrap();
    converged(&drainer, &a, &b, &["app.t", "app.marker"]).await;
    same_definitions(&drainer, &a, &b, &["app.t"]).await;
    stop(drainer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_sequence_replays_downstream() {
    let (a, b) = servers().await;
    on_both(
        &a,
        &b,
        &[
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY, a VARCHAR(20), b INT)",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    assert!(config.syncer.sync_ddl, "sync-ddl is on by default");
    let drainer = start(&config).await;

    a.exec(&[
        "INSERT INTO app.t VALUES (1, 'one', 10), (2, 'two', 20)",
        "ALTER TABLE app.t ADD COLUMN c DATE NULL AFTER id",
        "INSERT INTO app.t VALUES (3, '2024-01-02', 'three', 30)",
        "ALTER TABLE app.t DROP COLUMN b",
        "INSERT INTO app.t VALUES (4, NULL, 'four')",
        "ALTER TABLE app.t MODIFY COLUMN a VARCHAR(100) NOT NULL DEFAULT ''",
        "UPDATE app.t SET a = CONCAT(a, ' is now longer than twenty characters 😀') WHERE id = 1",
        "ALTER TABLE app.t MODIFY COLUMN id BIGINT UNSIGNED NOT NULL",
        "INSERT INTO app.t VALUES (18446744073709551615, '2024-12-31', 'widest key')",
        "ALTER TABLE app.t CHANGE COLUMN a title VARCHAR(100) NOT NULL DEFAULT '', \
         ADD COLUMN flag TINYINT NOT NULL DEFAULT 1 FIRST",
        "INSERT INTO app.t (id, c, title, flag) VALUES (5, NULL, 'five', 0)",
        "RENAME TABLE app.t TO app.renamed",
        "INSERT INTO app.renamed (id, title) VALUES (6, 'after the rename')",
        "UPDATE app.renamed SET title = 'renamed too' WHERE id = 2",
        "CREATE TABLE app.fresh (k VARCHAR(10) PRIMARY KEY, n DECIMAL(10,3), seen DATETIME(3))",
        "INSERT INTO app.fresh VALUES ('x', 1.5, '2024-01-01 00:00:00.123'), ('y', NULL, NULL)",
        "CREATE INDEX by_seen ON app.fresh (seen)",
        "ALTER TABLE app.fresh ADD UNIQUE KEY by_n (n)",
        "TRUNCATE TABLE app.fresh",
        "INSERT INTO app.fresh VALUES ('z', 2.25, '2025-06-30 23:59:59.999')",
        "DROP INDEX by_seen ON app.fresh",
        // DDL and rows in one transaction: the rows need the table the statement creates.
        "CREATE TABLE app.copied SELECT k, n FROM app.fresh",
        "CREATE TABLE app.doomed (id INT PRIMARY KEY)",
        "INSERT INTO app.doomed VALUES (1)",
        "DROP TABLE app.doomed",
        "CREATE DATABASE app2",
        // Unqualified names: the drainer runs them in the statement's schema.
        "USE app2",
        "CREATE TABLE scoped (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO scoped VALUES (1, 'unqualified')",
        "ALTER TABLE scoped ADD COLUMN w INT",
        "INSERT INTO scoped VALUES (2, 'after', 2)",
        // ALTER DATABASE without a name relies on the schema; CREATE and DROP DATABASE
        // run without it (their event's schema is the database itself).
        "ALTER DATABASE COMMENT 'altered through USE'",
        "CREATE DATABASE gone",
        "DROP DATABASE gone",
        "INSERT INTO scoped VALUES (3, 'last', 3)",
    ])
    .await
    .unwrap();

    let tables = ["app.copied", "app.renamed", "app.fresh", "app2.scoped"];
    converged(&drainer, &a, &b, &tables).await;
    same_definitions(&drainer, &a, &b, &tables).await;
    let (up, down) = (
        tables_in(&a, &["app", "app2"]).await.unwrap(),
        tables_in(&b, &["app", "app2"]).await.unwrap(),
    );
    assert_eq!(
        up,
        ["app.copied", "app.fresh", "app.renamed", "app2.scoped"]
    );
    assert_eq!(
        down, up,
        "the downstream has other tables than the upstream"
    );
    let comment: Vec<String> = b
        .query("SELECT schema_comment FROM information_schema.schemata WHERE schema_name = 'app2'")
        .await
        .unwrap();
    assert_eq!(comment, ["altered through USE"]);
    let gone: Vec<String> = b
        .query("SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'gone'")
        .await
        .unwrap();
    assert!(gone.is_empty(), "DROP DATABASE did not run downstream");
    stop(drainer).await;
}

// ---------------------------------------------------------------------------------------
// Sync modes
// ---------------------------------------------------------------------------------------

/// The upstream table: `only_up` is not downstream.
const PEOPLE_UP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.people (id INT PRIMARY KEY, name VARCHAR(20), only_up INT, amount DECIMAL(10,2))",
];
/// The downstream table: other column order, `only_down` (with a default) is not upstream.
const PEOPLE_DOWN: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.people (id INT PRIMARY KEY, amount DECIMAL(10,2), \
     only_down VARCHAR(10) NOT NULL DEFAULT 'dflt', name VARCHAR(20))",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_mode_applies_rows_whose_columns_differ() {
    let (a, b) = servers().await;
    a.exec(PEOPLE_UP).await.unwrap();
    b.exec(PEOPLE_DOWN).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    config.syncer.to.sync_mode = 2;
    let drainer = start(&config).await;

    a.exec(&[
        "INSERT INTO app.people VALUES (1, 'ada', 5, 1.50), (2, 'bob', 6, 2.50), (3, 'cy', 7, 3.50)",
        "UPDATE app.people SET name = 'bobby', only_up = 60, amount = 20.00 WHERE id = 2",
        "UPDATE app.people SET only_up = 70 WHERE id = 3",
        "DELETE FROM app.people WHERE id = 1",
        "INSERT INTO app.people VALUES (4, NULL, NULL, NULL)",
    ])
    .await
    .unwrap();

    const COMMON: &str = "SELECT id, name, amount FROM app.people";
    eventually("the common columns to match", WAIT, || async {
        let (x, y) = (select(&a, COMMON).await?, select(&b, COMMON).await?);
        if x == y {
            Ok(())
        } else {
            Err(format!("{}\n{}", difference(&x, &y), log_tail(&drainer)))
        }
    })
    .await;
    let ids: Vec<i32> = b
        .query("SELECT id FROM app.people ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ids, [2, 3, 4]);
    let extra: Vec<String> = b
        .query("SELECT only_down FROM app.people ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        extra,
        ["dflt", "dflt", "dflt"],
        "the downstream-only column has its default"
    );
    stop(drainer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mode_stops_on_a_column_mismatch() {
    let (a, b) = servers().await;
    a.exec(PEOPLE_UP).await.unwrap();
    b.exec(PEOPLE_DOWN).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    config.syncer.to.sync_mode = 1;
    let mut drainer = start(&config).await;

    a.exec(&["INSERT INTO app.people VALUES (1, 'ada', 5, 1.50)"])
        .await
        .unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("only_down"))
        .unwrap_or_else(|| panic!("no line names the downstream columns:\n{}", out.stderr));
    for name in ["app.people", "id", "name", "only_up", "amount", "only_down"] {
        assert!(line.contains(name), "`{name}` in: {line}");
    }
    let count: Vec<i64> = b.query("SELECT COUNT(*) FROM app.people").await.unwrap();
    assert_eq!(count, [0i64], "no row was applied");
}
