//! The live reader against real MariaDB servers started by the integration harness.

use std::time::Duration;

use integration::{eventually, MariaDb, PUMP_PASSWORD, PUMP_USER};
use pump_reader::event::{Cell, RowsKind};
use pump_reader::{
    BinlogCoords, Change, Error, GtidSet, LiveOptions, LiveReader, ResumeBy, Rows, StartAt, Txn,
    TxnEvent, Upstream,
};

const WAIT: Duration = Duration::from_secs(30);

fn upstream(server: &MariaDb) -> Upstream {
    Upstream {
        server: link::Server::plain(server.host(), server.port(), PUMP_USER, PUMP_PASSWORD),
        server_id: 9000 + server.server_id(),
    }
}

/// Short timings, so lost connections are noticed and replaced quickly.
fn quick() -> LiveOptions {
    LiveOptions {
        heartbeat: Duration::from_millis(200),
        dead_after: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        resume_by: ResumeBy::Gtid,
        annotate: false,
    }
}

/// Kills the upstream's binlog dump thread (ours): the connection drops.
async fn kill_dump(server: &MariaDb) {
    let dump: Vec<u64> = server
        .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
        .await
        .unwrap();
    assert_eq!(dump.len(), 1, "one dump thread: ours");
    server.exec(&[&format!("KILL {}", dump[0])]).await.unwrap();
}

async fn reader(server: &MariaDb, start: StartAt) -> LiveReader {
    LiveReader::connect(upstream(server), start, quick())
        .await
        .unwrap()
}

async fn next_txn(reader: &mut LiveReader) -> Txn {
    tokio::time::timeout(WAIT, reader.next_txn())
        .await
        .expect("a transaction within 30 s")
        .unwrap()
}

async fn next_event(reader: &mut LiveReader) -> TxnEvent {
    tokio::time::timeout(WAIT, reader.next_event())
        .await
        .expect("an event within 30 s")
        .unwrap()
}

fn rows(txn: &Txn, i: usize) -> &Rows {
    match &txn.changes[i] {
        Change::Rows(r) => r,
        other => panic!("change {i} is not rows: {other:?}"),
    }
}

fn statement(txn: &Txn) -> &str {
    match &txn.changes[..] {
        [Change::Statement(s)] => &s.text,
        other => panic!("not one statement: {other:?}"),
    }
}

fn bytes(cell: &Cell) -> &[u8] {
    match cell {
        Cell::Bytes(b) => b,
        other => panic!("not bytes: {other:?}"),
    }
}

async fn setup(server: &MariaDb) {
    server
        .exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))",
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn from_now_inserts_updates_deletes_and_ddl_in_order() {
    let server = MariaDb::start().await.unwrap();
    setup(&server).await;
    let mut r = reader(&server, StartAt::Now).await;
    let before = r.position().clone();
    assert!(
        before.gtids.is_some(),
        "a MariaDB start knows its GTID state: {before}"
    );
    server
        .exec(&[
            "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')",
            "BEGIN",
            "UPDATE app.t SET id = 10, v = 'z' WHERE id = 1",
            "DELETE FROM app.t WHERE id = 2",
            "INSERT INTO app.t VALUES (3, 'c')",
            "COMMIT",
            "ALTER TABLE app.t ADD COLUMN n INT",
            "INSERT INTO app.t VALUES (4, 'd', 44)",
        ])
        .await
        .unwrap();

    let insert = next_txn(&mut r).await;
    let ins = rows(&insert, 0);
    assert_eq!((ins.kind, ins.rows.len()), (RowsKind::Insert, 2));
    assert_eq!(ins.rows[1].after.as_ref().unwrap()[0].as_signed(), Some(2));
    assert_eq!(insert.server_id, server.server_id());
    let gtid = insert.gtid.as_ref().unwrap().to_string();
    assert!(
        gtid.starts_with(&format!(
            "{}-{}-",
            server.gtid_domain_id(),
            server.server_id()
        )),
        "{gtid}"
    );

    let multi = next_txn(&mut r).await;
    let kinds: Vec<RowsKind> = (0..3).map(|i| rows(&multi, i).kind).collect();
    assert_eq!(
        kinds,
        [RowsKind::Update, RowsKind::Delete, RowsKind::Insert]
    );
    let pk_change = &rows(&multi, 0).rows[0];
    assert_eq!(pk_change.before.as_ref().unwrap()[0].as_signed(), Some(1));
    assert_eq!(pk_change.after.as_ref().unwrap()[0].as_signed(), Some(10));
    assert_eq!(bytes(&pk_change.after.as_ref().unwrap()[1]), b"z");

    let ddl = next_txn(&mut r).await;
    assert_eq!(statement(&ddl), "ALTER TABLE app.t ADD COLUMN n INT");
    let after_ddl = next_txn(&mut r).await;
    assert_eq!(
        rows(&after_ddl, 0).table.columns.len(),
        3,
        "the row has the new column"
    );

    // Positions only move forward, and each GTID state includes its transaction.
    let positions = [&insert, &multi, &ddl, &after_ddl].map(|t| t.position.clone());
    for pair in positions.windows(2) {
        assert!(
            pair[0].coords < pair[1].coords,
            "{} then {}",
            pair[0],
            pair[1]
        );
        assert!(
            pair[0].gtids < pair[1].gtids,
            "{} then {}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(r.position(), &after_ddl.position);
}

#[tokio::test]
async fn every_column_type_arrives_as_written() {
    let server = MariaDb::start().await.unwrap();
    server
        .exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.types (
                id INT PRIMARY KEY,
                ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
                mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
                bi BIGINT, biu BIGINT UNSIGNED,
                d DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, db DOUBLE,
                dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL,
                t0 TIME, t1 TIME(1), t2 TIME(2), t3 TIME(3), t6 TIME(6), y YEAR,
                c CHAR(10), vc VARCHAR(300), tx TEXT, l1 VARCHAR(10) CHARACTER SET latin1,
                bn BINARY(4), vb VARBINARY(10), bl BLOB,
                e ENUM('a','b','c'), s SET('x','y','z'), b1 BIT(1), b64 BIT(64),
                j JSON, u UUID, i6 INET6,
                longchar CHAR(255), wide DECIMAL(65,38)
            )",
        ])
        .await
        .unwrap();
    let mut r = reader(&server, StartAt::Now).await;
    let nines = format!("{}.{}", "9".repeat(35), "9".repeat(30));
    let emoji = "😀".repeat(300);
    let wide_max = format!("{}.{}", "9".repeat(27), "9".repeat(38));
    let max_row = format!(
        "INSERT INTO app.types VALUES (1,
            127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
            9223372036854775807, 18446744073709551615,
            {nines}, 99999999.99, 3.5, 1.7976931348623157e308,
            '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999',
            '2038-01-19 03:14:07', '2038-01-19 03:14:07.999999',
            '838:59:59', '838:59:59.9', '838:59:59.99', '838:59:59.999', '838:59:59.999999', 2155,
            'abcdefghij', '{emoji}', '😀 text', _latin1 x'e9', x'01000000', x'00ff00', x'{blob}',
            'c', 'x,z', b'1', x'ffffffffffffffff',
            '{{\"a\": [1, 2]}}', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '::1',
            '{long}', {wide})",
        long = "é".repeat(255),
        wide = wide_max,
        blob = (0..=255u8).map(|b| format!("{b:02x}")).collect::<String>(),
    );
    let min_row = format!(
        "INSERT INTO app.types VALUES (2,
            -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
            -{nines}, -0.01, -3.5, -2.2250738585072014e-308,
            '0000-00-00', '0000-00-00 00:00:00', '1000-01-01 00:00:00.000001',
            '1970-01-01 00:00:01', '1970-01-01 00:00:01.000001',
            '-838:59:59', '-00:00:00.1', '-01:02:03.45', '-00:00:01.001', '-838:59:59.999999', 0,
            '', '', '', '', '', '', '',
            'a', '', b'0', x'0000000000000000',
            '[]', '00000000-0000-0000-0000-000000000000', '::', 'x',
            -0.00000000000000000000000000000000000001)"
    );
    let null_row = "INSERT INTO app.types (id) VALUES (3)";
    server
        .exec(&["SET time_zone = '+00:00'", &max_row, &min_row, null_row])
        .await
        .unwrap();

    let txns = [
        next_txn(&mut r).await,
        next_txn(&mut r).await,
        next_txn(&mut r).await,
    ];
    let row = |t: usize| rows(&txns[t], 0).rows[0].after.clone().unwrap();
    let (max, min, null) = (row(0), row(1), row(2));
    let table = &rows(&txns[0], 0).table;
    assert_eq!(table.columns.len(), 42);

    // Integers: the bits as written; signedness is the schema's to apply.
    let signed = [
        (1, 127, -128),
        (3, 32767, -32768),
        (5, 8_388_607, -8_388_608),
        (7, 2_147_483_647, -2_147_483_648),
        (9, i64::MAX, i64::MIN),
    ];
    for (col, hi, lo) in signed {
        assert_eq!(
            (max[col].as_signed(), min[col].as_signed()),
            (Some(hi), Some(lo)),
            "column {col}"
        );
    }
    let unsigned = [
        (2, 255),
        (4, 65535),
        (6, 16_777_215),
        (8, 4_294_967_295),
        (10, u64::MAX),
    ];
    for (col, hi) in unsigned {
        assert_eq!(
            (max[col].as_unsigned(), min[col].as_unsigned()),
            (Some(hi), Some(0)),
            "column {col}"
        );
    }
    assert_eq!(max[11], Cell::Decimal(nines.clone()));
    assert_eq!(min[11], Cell::Decimal(format!("-{nines}")));
    assert_eq!(
        (max[12].clone(), min[12].clone()),
        (
            Cell::Decimal("99999999.99".into()),
            Cell::Decimal("-0.01".into())
        )
    );
    assert_eq!(
        (max[13].clone(), min[13].clone()),
        (Cell::Float(3.5), Cell::Float(-3.5))
    );
    assert_eq!(
        (max[14].clone(), min[14].clone()),
        (
            Cell::Double(f64::MAX),
            Cell::Double(-2.2250738585072014e-308)
        )
    );

    assert_eq!(
        max[15],
        Cell::Date {
            year: 9999,
            month: 12,
            day: 31
        }
    );
    assert_eq!(
        min[15],
        Cell::Date {
            year: 0,
            month: 0,
            day: 0
        }
    );
    let dt = |year, month, day, hour, minute, second, micros| Cell::DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros,
    };
    assert_eq!(max[16], dt(9999, 12, 31, 23, 59, 59, 0));
    assert_eq!(min[16], dt(0, 0, 0, 0, 0, 0, 0));
    assert_eq!(max[17], dt(9999, 12, 31, 23, 59, 59, 999_999));
    assert_eq!(min[17], dt(1000, 1, 1, 0, 0, 0, 1));
    assert_eq!(
        max[18],
        Cell::Timestamp {
            seconds: 2_147_483_647,
            micros: 0
        }
    );
    assert_eq!(
        min[19],
        Cell::Timestamp {
            seconds: 1,
            micros: 1
        }
    );
    assert_eq!(
        max[19],
        Cell::Timestamp {
            seconds: 2_147_483_647,
            micros: 999_999
        }
    );
    let time = |negative, hours, minutes, seconds, micros| Cell::Time {
        negative,
        hours,
        minutes,
        seconds,
        micros,
    };
    assert_eq!(max[20], time(false, 838, 59, 59, 0));
    assert_eq!(min[20], time(true, 838, 59, 59, 0));
    assert_eq!(max[21], time(false, 838, 59, 59, 900_000));
    assert_eq!(min[21], time(true, 0, 0, 0, 100_000));
    assert_eq!(max[22], time(false, 838, 59, 59, 990_000));
    assert_eq!(min[22], time(true, 1, 2, 3, 450_000));
    assert_eq!(max[23], time(false, 838, 59, 59, 999_000));
    assert_eq!(min[23], time(true, 0, 0, 1, 1_000));
    assert_eq!(max[24], time(false, 838, 59, 59, 999_999));
    assert_eq!(min[24], time(true, 838, 59, 59, 999_999));
    assert_eq!(
        (max[25].clone(), min[25].clone()),
        (Cell::Year(2155), Cell::Year(0))
    );

    assert_eq!(bytes(&max[26]), b"abcdefghij");
    assert_eq!(
        bytes(&max[27]),
        emoji.as_bytes(),
        "4-byte characters, 1200 bytes"
    );
    assert_eq!(bytes(&max[28]), "😀 text".as_bytes());
    assert_eq!(bytes(&max[29]), [0xe9], "latin1 é");
    assert_eq!(
        bytes(&max[30]),
        [0x01],
        "BINARY(4) arrives without its trailing zero bytes"
    );
    assert_eq!(bytes(&max[31]), [0x00, 0xff, 0x00]);
    assert_eq!(bytes(&max[32]), (0..=255u8).collect::<Vec<_>>());
    for (col, cell) in min.iter().enumerate().take(33).skip(26) {
        assert_eq!(bytes(cell), b"", "column {col}");
    }
    assert_eq!(
        (max[33].clone(), min[33].clone()),
        (Cell::Enum(3), Cell::Enum(1))
    );
    assert_eq!(
        (max[34].clone(), min[34].clone()),
        (Cell::Set(0b101), Cell::Set(0))
    );
    assert_eq!(
        (max[35].clone(), min[35].clone()),
        (Cell::Bit(1), Cell::Bit(0))
    );
    assert_eq!(
        (max[36].clone(), min[36].clone()),
        (Cell::Bit(u64::MAX), Cell::Bit(0))
    );
    assert_eq!(bytes(&max[37]), br#"{"a": [1, 2]}"#, "MariaDB JSON is text");
    assert_eq!(bytes(&min[37]), b"[]");
    assert_eq!(bytes(&max[38]).len(), 16, "UUID as 16 bytes");
    let mut loopback = [0u8; 16];
    loopback[15] = 1;
    assert_eq!(bytes(&max[39]), loopback, "INET6 ::1");
    // UUID and INET6 are stored like BINARY(16): trailing zero bytes are stripped, so the
    // all-zero values arrive empty; the schema restores the pad to 16 bytes.
    assert_eq!(bytes(&min[38]), b"");
    assert_eq!(bytes(&min[39]), b"");

    assert_eq!(
        bytes(&max[40]),
        "é".repeat(255).as_bytes(),
        "CHAR(255) in utf8mb4: 510 bytes"
    );
    assert_eq!(bytes(&min[40]), b"x");
    let wide = format!("{}.{}", "9".repeat(27), "9".repeat(38));
    assert_eq!(max[41], Cell::Decimal(wide), "DECIMAL(65,38)");
    assert_eq!(min[41], Cell::Decimal(format!("-0.{}1", "0".repeat(37))));

    assert_eq!(null[0].as_signed(), Some(3));
    for (col, cell) in null.iter().enumerate().skip(1) {
        assert_eq!(*cell, Cell::Null, "column {col} of the NULL row");
    }
}

#[tokio::test]
async fn a_rotation_mid_stream_continues_in_the_next_file() {
    let server = MariaDb::start().await.unwrap();
    setup(&server).await;
    let mut r = reader(&server, StartAt::Now).await;
    server
        .exec(&[
            "INSERT INTO app.t VALUES (1, 'a')",
            "FLUSH BINARY LOGS",
            "INSERT INTO app.t VALUES (2, 'b')",
        ])
        .await
        .unwrap();
    let first = next_txn(&mut r).await;
    let second = next_txn(&mut r).await;
    let (a, b) = (&first.position.coords, &second.position.coords);
    assert_ne!(a.file, b.file, "{a} then {b}");
    assert!(a < b);
    assert_eq!(
        rows(&second, 0).rows[0].after.as_ref().unwrap()[0].as_signed(),
        Some(2)
    );
}

#[tokio::test]
async fn starts_from_a_gtid_and_from_coordinates_read_the_next_transaction() {
    let server = MariaDb::start().await.unwrap();
    setup(&server).await;
    let mut r = reader(&server, StartAt::Now).await;
    for i in 1..=3 {
        server
            .exec(&[&format!("INSERT INTO app.t VALUES ({i}, 'v{i}')")])
            .await
            .unwrap();
    }
    let first = next_txn(&mut r).await;
    let second = next_txn(&mut r).await;
    let third = next_txn(&mut r).await;

    let by_gtid = StartAt::Gtid(first.position.gtids.clone().unwrap());
    let by_coords = StartAt::Coords(first.position.coords.clone());
    for start in [by_gtid, by_coords] {
        let mut again = reader(&server, start.clone()).await;
        assert_eq!(next_txn(&mut again).await.gtid, second.gtid, "{start:?}");
        assert_eq!(
            next_txn(&mut again).await.position,
            third.position,
            "{start:?}"
        );
    }
}

#[tokio::test]
async fn a_killed_connection_mid_transaction_resumes_without_loss_or_repeat() {
    let server = MariaDb::start().await.unwrap();
    server
        .exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.big (id INT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(600))",
        ])
        .await
        .unwrap();
    let mut r = reader(&server, StartAt::Now).await;
    // One transaction of 60,000 rows, about 36 MB of row events: far more than the socket
    // buffers, so the server is still sending it when its dump thread is killed.
    let mut big = vec!["USE app".to_string(), "BEGIN".to_string()];
    for _ in 0..60 {
        big.push("INSERT INTO app.big (pad) SELECT REPEAT('x', 600) FROM seq_1_to_1000".into());
    }
    big.push("COMMIT".into());
    big.push("INSERT INTO app.big (pad) VALUES ('after')".into());
    let statements: Vec<&str> = big.iter().map(String::as_str).collect();
    server.exec(&statements).await.unwrap();

    assert!(matches!(next_event(&mut r).await, TxnEvent::Begin(_)));
    assert!(matches!(next_event(&mut r).await, TxnEvent::Change(_)));
    kill_dump(&server).await;

    // Whatever was buffered arrives, then the rollback, then the whole transaction again.
    let mut saw_rollback = false;
    let mut rows_in_final_attempt = 0;
    let mut commits = Vec::new();
    while commits.len() < 2 {
        match next_event(&mut r).await {
            TxnEvent::Rollback => {
                saw_rollback = true;
                rows_in_final_attempt = 0;
            }
            TxnEvent::Begin(_) => rows_in_final_attempt = 0,
            TxnEvent::Change(Change::Rows(rows)) => rows_in_final_attempt += rows.rows.len(),
            TxnEvent::Commit { position, .. } => commits.push((position, rows_in_final_attempt)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_rollback, "the open transaction was discarded");
    assert!(r.reconnects() >= 1);
    assert_eq!(commits[0].1, 60_000, "the big transaction, whole, once");
    assert_eq!(commits[1].1, 1, "the next transaction, once");
    assert!(commits[0].0.coords < commits[1].0.coords);
}

#[tokio::test]
async fn a_purged_binlog_or_unknown_gtid_is_a_definite_error_saying_what_the_server_has() {
    let server = MariaDb::start().await.unwrap();
    setup(&server).await;
    let mut r = reader(&server, StartAt::Now).await;
    let before_first = r.position().gtids.clone().unwrap();
    server
        .exec(&["INSERT INTO app.t VALUES (1, 'a')"])
        .await
        .unwrap();
    let first = next_txn(&mut r).await;
    server
        .exec(&["FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (2, 'b')"])
        .await
        .unwrap();
    // Purge everything before the active file; the server may hold the previous file a
    // moment longer for crash recovery, so ask until it is gone.
    let active: String = server
        .query("SHOW BINARY LOGS")
        .await
        .unwrap()
        .into_iter()
        .map(|(f, _): (String, u64)| f)
        .next_back()
        .unwrap();
    eventually("the first binlog file to be purged", WAIT, || async {
        server
            .exec(&[&format!("PURGE BINARY LOGS TO '{active}'")])
            .await
            .map_err(|e| e.to_string())?;
        let left: Vec<(String, u64)> = server
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| e.to_string())?;
        if left.len() == 1 {
            Ok(())
        } else {
            Err(format!("still {left:?}"))
        }
    })
    .await;
    let has = format!("binlog file {active}");

    // By coordinates: refused before streaming.
    let e = LiveReader::connect(
        upstream(&server),
        StartAt::Coords(first.position.coords.clone()),
        quick(),
    )
    .await
    .err()
    .expect("a purged file cannot be a start");
    let shown = e.to_string();
    assert!(matches!(e, Error::Unavailable { .. }), "{shown}");
    assert!(
        shown.contains(&first.position.coords.to_string()),
        "says what was asked: {shown}"
    );
    assert!(
        shown.contains(&has),
        "says what the server has ({has}): {shown}"
    );

    // By GTID: the state after the first insert can still be served (the next
    // transaction is in a file that is left), the state before it cannot.
    let mut after_first = reader(
        &server,
        StartAt::Gtid(first.position.gtids.clone().unwrap()),
    )
    .await;
    assert_eq!(
        rows(&next_txn(&mut after_first).await, 0).rows[0]
            .after
            .as_ref()
            .unwrap()[0]
            .as_signed(),
        Some(2)
    );
    let mut by_gtid = reader(&server, StartAt::Gtid(before_first.clone())).await;
    let e = tokio::time::timeout(WAIT, by_gtid.next_event())
        .await
        .unwrap()
        .unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, Error::Unavailable { .. }), "{shown}");
    assert!(
        shown.contains(&before_first.to_string()),
        "says what was asked: {shown}"
    );
    assert!(
        shown.contains(&has),
        "says what the server has ({has}): {shown}"
    );

    // A GTID of a domain the server never had.
    let unknown: GtidSet = "77-77-5".parse().unwrap();
    let mut unknown_reader = reader(&server, StartAt::Gtid(unknown)).await;
    let e = tokio::time::timeout(WAIT, unknown_reader.next_event())
        .await
        .unwrap()
        .unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, Error::Unavailable { .. }), "{shown}");
    assert!(shown.contains("77-77-5"), "{shown}");
}

#[tokio::test]
async fn an_idle_upstream_still_advances_the_position() {
    let server = MariaDb::start().await.unwrap();
    setup(&server).await;
    let first_file: Vec<(String, u64)> = server.query("SHOW BINARY LOGS").await.unwrap();
    let start = BinlogCoords::new(first_file[0].0.clone(), 4);
    let mut r = reader(&server, StartAt::Coords(start.clone())).await;
    // The two DDL statements of the set-up, then heartbeats every 200 ms while nothing
    // happens, carrying the upstream's current position.
    next_txn(&mut r).await;
    next_txn(&mut r).await;
    let status: Vec<mysql_async::Row> = server.query("SHOW MASTER STATUS").await.unwrap();
    let file: String = status[0].get(0).unwrap();
    let pos: u64 = status[0].get(1).unwrap();
    match next_event(&mut r).await {
        TxnEvent::Idle { position } => {
            assert_eq!(
                position.coords,
                BinlogCoords::new(file, pos),
                "the upstream's position"
            );
            assert!(position.coords > start);
            assert_eq!(&position, r.position());
        }
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

#[tokio::test]
async fn resuming_by_coordinates_after_a_lost_connection() {
    let server = MariaDb::start().await.unwrap();
    setup(&server).await;
    let mut options = quick();
    options.resume_by = ResumeBy::Coords;
    let mut r = LiveReader::connect(upstream(&server), StartAt::Now, options)
        .await
        .unwrap();
    server
        .exec(&["INSERT INTO app.t VALUES (1, 'a')"])
        .await
        .unwrap();
    let first = next_txn(&mut r).await;
    kill_dump(&server).await;
    server
        .exec(&["INSERT INTO app.t VALUES (2, 'b')"])
        .await
        .unwrap();
    let second = next_txn(&mut r).await;
    assert_eq!(
        rows(&second, 0).rows[0].after.as_ref().unwrap()[0].as_signed(),
        Some(2)
    );
    assert!(first.position.coords < second.position.coords);
    assert!(r.reconnects() >= 1);
}

#[tokio::test]
async fn a_login_refused_on_reconnect_is_definite() {
    let server = MariaDb::start().await.unwrap();
    setup(&server).await;
    let mut r = reader(&server, StartAt::Now).await;
    server
        .exec(&["INSERT INTO app.t VALUES (1, 'a')"])
        .await
        .unwrap();
    next_txn(&mut r).await;
    // Not binlogged, so the reader has nothing new to read before the kill.
    server
        .exec(&[
            "SET sql_log_bin = 0",
            &format!("ALTER USER '{PUMP_USER}'@'127.0.0.1' IDENTIFIED BY 'changed'"),
        ])
        .await
        .unwrap();
    kill_dump(&server).await;
    let e = tokio::time::timeout(WAIT, r.next_event())
        .await
        .expect("an answer within 30 s")
        .unwrap_err();
    assert!(e.to_string().contains("Access denied"), "{e}");
    // And the reader stays stopped.
    let again = tokio::time::timeout(WAIT, r.next_event())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        again.to_string().contains("stopped after an earlier error"),
        "{again}"
    );
}

#[tokio::test]
async fn rows_larger_than_16_mib_and_minimal_row_images() {
    let server = MariaDb::builder()
        .arg("--max-allowed-packet=256M")
        .arg("--binlog-row-image=MINIMAL")
        .start()
        .await
        .unwrap();
    server
        .exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.blobs (id INT PRIMARY KEY, a LONGBLOB, b INT, c VARCHAR(10))",
        ])
        .await
        .unwrap();
    let mut r = reader(&server, StartAt::Now).await;
    server
        .exec(&[
            "INSERT INTO app.blobs VALUES (1, REPEAT('z', 20 * 1024 * 1024), 5, 'x')",
            "UPDATE app.blobs SET b = 6 WHERE id = 1",
        ])
        .await
        .unwrap();
    let insert = next_txn(&mut r).await;
    let row = rows(&insert, 0).rows[0].after.clone().unwrap();
    assert_eq!(
        bytes(&row[1]).len(),
        20 * 1024 * 1024,
        "a 20 MiB value in one event"
    );
    let update = next_txn(&mut r).await;
    let change = &rows(&update, 0).rows[0];
    // MINIMAL: the before image has the key only, the after image the changed column only.
    let before = change.before.as_ref().unwrap();
    let after = change.after.as_ref().unwrap();
    assert_eq!(before[0].as_signed(), Some(1));
    assert_eq!(before[1..], [Cell::Absent, Cell::Absent, Cell::Absent]);
    assert_eq!(after[2].as_signed(), Some(6));
    assert_eq!([&after[0], &after[1], &after[3]], [&Cell::Absent; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_is_noticed_and_the_connection_replaced() {
    let server = std::sync::Arc::new(MariaDb::start().await.unwrap());
    setup(&server).await;
    let mut r = reader(&server, StartAt::Now).await;
    server
        .exec(&["INSERT INTO app.t VALUES (1, 'a')"])
        .await
        .unwrap();
    next_txn(&mut r).await;

    // Freeze the server for longer than dead_after (3 s): no heartbeat, no answer.
    server.freeze();
    let thawer = {
        let server = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            server.thaw();
            server
                .exec(&["INSERT INTO app.t VALUES (2, 'b')"])
                .await
                .unwrap();
        })
    };
    let second = next_txn(&mut r).await;
    thawer.await.unwrap();
    assert_eq!(
        rows(&second, 0).rows[0].after.as_ref().unwrap()[0].as_signed(),
        Some(2)
    );
    assert!(r.reconnects() >= 1, "the silent connection was replaced");
}

#[tokio::test]
async fn wrong_credentials_are_definite() {
    let server = MariaDb::start().await.unwrap();
    let mut up = upstream(&server);
    up.server.password = "wrong".into();
    let e = LiveReader::connect(up, StartAt::Now, quick())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("Access denied"), "{e}");
}
