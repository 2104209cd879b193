//! Reading binlog files: a real MariaDB 10.11 binlog captured into `tests/data`, and the
//! same file cut short or damaged.
//!
//! The fixture was written by MariaDB 10.11.19 (server_id 5, gtid_domain_id 3) for:
//! ```sql
//! CREATE DATABASE app;
//! CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20), n MEDIUMINT, u INT UNSIGNED, tm TIME(2));
//! INSERT INTO app.t VALUES (1, 'a', -1, 4294967295, '-01:02:03.45');
//! BEGIN; INSERT INTO app.t VALUES (2,'b',2,2,'00:00:00'); UPDATE app.t SET v='c' WHERE id=1;
//!        DELETE FROM app.t WHERE id=2; COMMIT;
//! FLUSH BINARY LOGS;
//! ```

use std::path::{Path, PathBuf};

use pump_reader::event::{Cell, RowsKind};
use pump_reader::{Change, Error, FileReader, Gtid, Txn, TxnEvent};

fn fixture() -> PathBuf {
    // At run time: a test binary built in another checkout sharing the target dir
    // would carry that checkout's path.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("tests/data/mariadb-10.11/binlog.000001")
}

fn all_txns(path: &Path) -> Result<Vec<Txn>, Error> {
    let mut reader = FileReader::open(path)?;
    let mut txns = Vec::new();
    while let Some(txn) = reader.next_txn()? {
        txns.push(txn);
    }
    Ok(txns)
}

fn gtid(txn: &Txn) -> String {
    txn.gtid.as_ref().map(Gtid::to_string).unwrap_or_default()
}

fn text(cell: &Cell) -> &str {
    match cell {
        Cell::Bytes(b) => std::str::from_utf8(b).unwrap(),
        other => panic!("not bytes: {other:?}"),
    }
}

#[test]
fn a_real_mariadb_binlog_reads_as_its_transactions() {
    let txns = all_txns(&fixture()).unwrap();
    assert_eq!(txns.len(), 4);
    let gtids: Vec<String> = txns.iter().map(gtid).collect();
    assert_eq!(gtids, ["3-5-1", "3-5-2", "3-5-3", "3-5-4"]);
    let ends: Vec<String> = txns.iter().map(|t| t.position.coords.to_string()).collect();
    assert_eq!(
        ends,
        [
            "binlog.000001:452",
            "binlog.000001:660",
            "binlog.000001:914",
            "binlog.000001:1474"
        ]
    );
    assert!(txns.iter().all(|t| t.server_id == 5));
    assert_eq!(
        txns[3].position.gtids.as_ref().unwrap().to_string(),
        "3-5-4"
    );
    assert_eq!(
        txns[0].position.to_string(),
        "binlog.000001:452 (gtid 3-5-1)"
    );

    // DDL: one statement per transaction, with its schema context.
    let Change::Statement(create_db) = &txns[0].changes[0] else {
        panic!("{:?}", txns[0])
    };
    assert_eq!(create_db.text, "CREATE DATABASE app");
    let Change::Statement(create_table) = &txns[1].changes[0] else {
        panic!("{:?}", txns[1])
    };
    assert_eq!(create_table.schema, "app");
    assert!(
        create_table.text.starts_with("CREATE TABLE t"),
        "{}",
        create_table.text
    );

    // The single-row insert, with the values as written.
    let Change::Rows(insert) = &txns[2].changes[0] else {
        panic!("{:?}", txns[2])
    };
    assert_eq!(
        (insert.table.schema.as_str(), insert.table.table.as_str()),
        ("app", "t")
    );
    assert_eq!(insert.kind, RowsKind::Insert);
    let row = insert.rows[0].after.as_ref().unwrap();
    assert_eq!(row[0].as_signed(), Some(1));
    assert_eq!(text(&row[1]), "a");
    assert_eq!(
        row[2].as_signed(),
        Some(-1),
        "MEDIUMINT -1, sign-extended at its width"
    );
    assert_eq!(row[3].as_unsigned(), Some(4_294_967_295));
    assert_eq!(
        row[4],
        Cell::Time {
            negative: true,
            hours: 1,
            minutes: 2,
            seconds: 3,
            micros: 450_000
        }
    );

    // The multi-statement transaction keeps its statements in order.
    let kinds: Vec<RowsKind> = txns[3]
        .changes
        .iter()
        .map(|c| match c {
            Change::Rows(r) => r.kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [RowsKind::Insert, RowsKind::Update, RowsKind::Delete]
    );
    let Change::Rows(update) = &txns[3].changes[1] else {
        unreachable!()
    };
    assert_eq!(text(&update.rows[0].before.as_ref().unwrap()[1]), "a");
    assert_eq!(text(&update.rows[0].after.as_ref().unwrap()[1]), "c");
}

#[test]
fn the_stream_shows_begin_changes_and_commit() {
    let mut reader = FileReader::open(&fixture()).unwrap();
    let mut shape = String::new();
    while let Some(event) = reader.next_event().unwrap() {
        shape.push(match event {
            TxnEvent::Begin(_) => 'B',
            TxnEvent::Change(_) => 'c',
            TxnEvent::Commit { .. } => 'C',
            TxnEvent::Rollback => 'R',
            TxnEvent::Idle { .. } => 'i',
        });
    }
    assert_eq!(shape, "BcCBcCBcCBcccC");
    // After the final ROTATE the reader stands at the start of the next file.
    assert_eq!(reader.position().coords.to_string(), "binlog.000002:4");
}

#[test]
fn a_cut_tail_is_an_error_after_the_whole_transactions() {
    let bytes = std::fs::read(fixture()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binlog.000001");
    // Every cut inside the last transaction (which starts at 914) or the ROTATE after it,
    // including the event boundaries inside the transaction (956, 1022, 1342, …).
    for cut in (915..bytes.len())
        .step_by(7)
        .chain([956, 1022, 1072, 1342, 1443])
    {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let mut reader = FileReader::open(&path).unwrap();
        let mut whole = 0;
        let err = loop {
            match reader.next_txn() {
                Ok(Some(_)) => whole += 1,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if cut == 1474 {
            // Exactly at an event boundary: a clean end, with the 4 transactions.
            assert!(err.is_none() && whole == 4);
            continue;
        }
        let err = err.unwrap_or_else(|| panic!("cut at {cut}: no error"));
        assert!(
            whole >= 3,
            "cut at {cut}: {whole} whole transactions before the error"
        );
        let shown = err.to_string();
        assert!(matches!(err, Error::File { .. }), "cut at {cut}: {shown}");
        let at_boundary =
            shown.contains("the file ends inside the transaction that starts at binlog.000001:914");
        assert!(
            shown.contains("the last event is cut") || at_boundary,
            "{shown}"
        );
        assert!(shown.contains("binlog.000001 at byte"), "{shown}");
    }
}

#[test]
fn a_damaged_byte_fails_the_checksum() {
    let mut bytes = std::fs::read(fixture()).unwrap();
    bytes[870] ^= 0x01; // inside the first WRITE_ROWS event (832..883)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binlog.000001");
    std::fs::write(&path, &bytes).unwrap();
    let e = all_txns(&path).unwrap_err().to_string();
    assert!(e.contains("at byte 832: checksum mismatch"), "{e}");
}

#[test]
fn a_binlog_still_in_use_verifies() {
    // The server sets LOG_EVENT_BINLOG_IN_USE_F in the format description of the file it
    // writes; the checksum is computed as if it were clear.
    let mut bytes = std::fs::read(fixture()).unwrap();
    bytes[4 + 17] |= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binlog.000001");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(all_txns(&path).unwrap().len(), 4);
}

#[test]
fn not_a_binlog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"hello").unwrap();
    let e = FileReader::open(&path).err().unwrap().to_string();
    assert!(e.contains("not a binlog file"), "{e}");
    let e = FileReader::open(&dir.path().join("absent"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot read binlog file"), "{e}");
}

/// Builds a binlog file event by event, with real headers, positions and CRC32s.
struct BinlogWriter {
    bytes: Vec<u8>,
}

impl BinlogWriter {
    fn new() -> Self {
        BinlogWriter {
            bytes: vec![0xfe, b'b', b'i', b'n'],
        }
    }

    fn event(&mut self, kind: u8, body: &[u8]) -> &mut Self {
        let size = (19 + body.len() + 4) as u32;
        let log_pos = self.bytes.len() as u32 + size;
        let mut event = Vec::new();
        event.extend(1_700_000_000u32.to_le_bytes());
        event.push(kind);
        event.extend(9u32.to_le_bytes()); // server id
        event.extend(size.to_le_bytes());
        event.extend(log_pos.to_le_bytes());
        event.extend(0u16.to_le_bytes());
        event.extend(body);
        let crc = crc32(&event);
        event.extend(crc.to_le_bytes());
        self.bytes.extend(event);
        self
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), independent of the crate the reader uses.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

const SID: [u8; 16] = [
    0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62,
];

fn query_body(schema: &str, statement: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(1u32.to_le_bytes()); // thread id
    b.extend(0u32.to_le_bytes()); // exec time
    b.push(schema.len() as u8);
    b.extend(0u16.to_le_bytes()); // error code
    b.extend(0u16.to_le_bytes()); // no status variables
    b.extend(schema.as_bytes());
    b.push(0);
    b.extend(statement.as_bytes());
    b
}

fn gtid_body(gno: u64) -> Vec<u8> {
    let mut b = vec![1];
    b.extend(SID);
    b.extend(gno.to_le_bytes());
    b.push(2); // logical clock
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b
}

#[test]
fn a_mysql_8_binlog_with_gtids_and_v2_rows() {
    let mut fde = 4u16.to_le_bytes().to_vec();
    let mut version = b"8.0.36".to_vec();
    version.resize(50, 0);
    fde.extend(version);
    fde.extend(0u32.to_le_bytes());
    fde.push(19);
    let mut post_headers = vec![0u8; 41];
    post_headers[19 - 1] = 8; // TABLE_MAP: 6-byte table ids
    fde.extend(post_headers);
    fde.push(1); // checksum algorithm: CRC32 (the writer appends the CRC)

    let mut previous = 1u64.to_le_bytes().to_vec();
    previous.extend(SID);
    previous.extend(1u64.to_le_bytes());
    previous.extend(1u64.to_le_bytes());
    previous.extend(6u64.to_le_bytes()); // [1, 6): 1-5

    let mut table_map = vec![7, 0, 0, 0, 0, 0, 1, 0, 3];
    table_map.extend(b"app\0");
    table_map.push(1);
    table_map.extend(b"t\0");
    table_map.extend([2, 3, 15, 2, 20, 0, 0b10]); // INT, VARCHAR(20); metadata; nullable
    let mut write_rows = vec![7, 0, 0, 0, 0, 0, 1, 0, 2, 0, 2, 0b11]; // v2: extra data length 2
    write_rows.extend([0, 42, 0, 0, 0, 2, b'h', b'i']);

    let mut w = BinlogWriter::new();
    w.event(15, &fde)
        .event(35, &previous)
        .event(33, &gtid_body(6))
        .event(2, &query_body("app", "BEGIN"))
        .event(19, &table_map)
        .event(30, &write_rows)
        .event(16, &77u64.to_le_bytes())
        .event(33, &gtid_body(7))
        .event(2, &query_body("app", "CREATE TABLE x (a INT)"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mysql-bin.000001");
    std::fs::write(&path, &w.bytes).unwrap();

    let txns = all_txns(&path).unwrap();
    assert_eq!(txns.len(), 2);
    let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    assert_eq!(gtid(&txns[0]), format!("{uuid}:6"));
    assert_eq!(txns[0].server_id, 9);
    assert_eq!(
        txns[0].position.gtids.as_ref().unwrap().to_string(),
        format!("{uuid}:1-6")
    );
    let Change::Rows(rows) = &txns[0].changes[0] else {
        panic!("{:?}", txns[0])
    };
    assert_eq!(rows.kind, RowsKind::Insert);
    let row = rows.rows[0].after.as_ref().unwrap();
    assert_eq!((row[0].as_signed(), text(&row[1])), (Some(42), "hi"));
    let Change::Statement(ddl) = &txns[1].changes[0] else {
        panic!("{:?}", txns[1])
    };
    assert_eq!(
        (ddl.schema.as_str(), ddl.text.as_str()),
        ("app", "CREATE TABLE x (a INT)")
    );
    assert_eq!(
        txns[1].position.gtids.as_ref().unwrap().to_string(),
        format!("{uuid}:1-7")
    );
    assert_eq!(txns[1].position.coords.pos, w.bytes.len() as u64);
}
