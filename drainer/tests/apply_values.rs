//! Every column type, read from one real MariaDB by pump-reader, decoded by schema, written
//! to another with the applier's statements and session settings: the two tables dump the
//! same, byte for byte.

use std::time::Duration;

use drainer::apply::sql;
use integration::{MariaDb, PUMP_PASSWORD, PUMP_USER};
use mysql_async::prelude::Queryable;
use pump_reader::{Change, LiveOptions, LiveReader, StartAt, Upstream};
use schema::{decode_row, Catalog};

const TABLE: &str = "CREATE TABLE app.types (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, biu BIGINT UNSIGNED,
    d DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, db DOUBLE,
    dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL,
    t0 TIME, t2 TIME(2), t6 TIME(6), y YEAR,
    c CHAR(10), vc VARCHAR(300), tx TEXT, l1 VARCHAR(10) CHARACTER SET latin1,
    bn BINARY(4), vb VARBINARY(10), bl BLOB,
    e ENUM('a','b','c'), s SET('x','y','z'), b1 BIT(1), b64 BIT(64),
    j JSON, u UUID, i6 INET6, g INT AS (id * 2) VIRTUAL
)";

const ROWS: &[&str] = &[
    "INSERT INTO app.types (id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d, d2, f, db, dt, dtm, dtm6, ts, ts6,
        t0, t2, t6, y, c, vc, tx, l1, bn, vb, bl, e, s, b1, b64, j, u, i6) VALUES (1,
        127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
        9223372036854775807, 18446744073709551615,
        99999999999999999999999999999999999.999999999999999999999999999999, 99999999.99, 3.5, 1.7976931348623157e308,
        '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999',
        '2038-01-19 03:14:07', '2038-01-19 03:14:07.999999',
        '838:59:59', '838:59:59.99', '838:59:59.999999', 2155,
        'abcdefghij', '😀😀 utf8mb4', '😀 text', _latin1 x'e9', x'01000000', x'00ff00', x'000102fffe',
        'c', 'x,z', b'1', x'ffffffffffffffff',
        '{\"a\": [1, 2]}', '00112233-4455-6677-8899-aabbccddeeff', 'fe80::1')",
    "INSERT INTO app.types (id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d, d2, f, db, dt, dtm, dtm6, ts, ts6,
        t0, t2, t6, y, c, vc, tx, l1, bn, vb, bl, e, s, b1, b64, j, u, i6) VALUES (2,
        -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
        -0.000000000000000000000000000001, -0.01, -3.5, -2.2250738585072014e-308,
        '0000-00-00', '0000-00-00 00:00:00', '1000-01-01 00:00:00.000001',
        '1970-01-01 00:00:01', '1970-01-01 00:00:01.000001',
        '-838:59:59', '-01:02:03.45', '-838:59:59.999999', 0,
        '', '', '', '', '', '', '',
        'a', '', b'0', x'0000000000000000',
        '[]', '00000000-0000-0000-0000-000000000000', '::')",
    "INSERT INTO app.types (id) VALUES (3)",
];

fn upstream(server: &MariaDb) -> Upstream {
    Upstream {
        server: link::Server::plain(server.host(), server.port(), PUMP_USER, PUMP_PASSWORD),
        server_id: 9200 + server.server_id(),
    }
}

/// Every column of every row, as the text protocol returns it, in id order.
async fn dump(server: &MariaDb) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut conn = server.conn().await.unwrap();
    let rows: Vec<mysql_async::Row> = conn
        .query("SELECT * FROM app.types ORDER BY id")
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<Option<Vec<u8>>, _>(i).unwrap())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn every_type_round_trips_byte_exactly() {
    let (a, b) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    for server in [&a, &b] {
        server.exec(&["CREATE DATABASE app", TABLE]).await.unwrap();
    }
    let mut catalog = Catalog::new();
    {
        let mut conn = a.conn().await.unwrap();
        let snapshot = schema::read_upstream(&mut conn, |s, _| s == "app")
            .await
            .unwrap();
        for (schema_name, sql) in &snapshot.statements {
            catalog.apply(schema_name, sql).unwrap();
        }
    }
    let table = catalog.table("app", "types").unwrap().clone();

    let options = LiveOptions {
        heartbeat: Duration::from_millis(200),
        ..LiveOptions::default()
    };
    let mut reader = LiveReader::connect(upstream(&a), StartAt::Now, options)
        .await
        .unwrap();
    let mut statements = vec!["SET time_zone = '+00:00'"];
    statements.extend(ROWS);
    a.exec(&statements).await.unwrap();

    // The applier's session: bytes as they are, instants in UTC.
    let mut down = b.conn().await.unwrap();
    down.query_drop("SET NAMES binary, time_zone = '+00:00'")
        .await
        .unwrap();
    for _ in ROWS {
        let txn = tokio::time::timeout(Duration::from_secs(30), reader.next_txn())
            .await
            .unwrap()
            .unwrap();
        for change in &txn.changes {
            let Change::Rows(rows) = change else { continue };
            for row in &rows.rows {
                let values = decode_row(&table, &rows.table, row.after.as_ref().unwrap()).unwrap();
                let stmt = sql::insert(&table, &[&values], false).unwrap();
                down.exec_drop(stmt.sql.as_str(), stmt.values())
                    .await
                    .unwrap();
            }
        }
    }
    down.disconnect().await.unwrap();

    let (upstream_rows, downstream_rows) = (dump(&a).await, dump(&b).await);
    assert_eq!(upstream_rows.len(), 3);
    for (up, down) in upstream_rows.iter().zip(&downstream_rows) {
        for (i, (x, y)) in up.iter().zip(down).enumerate() {
            assert_eq!(
                x, y,
                "row {:?} column {} ({})",
                up[0], i, table.columns[i].name
            );
        }
    }
    assert_eq!(upstream_rows, downstream_rows);
}
