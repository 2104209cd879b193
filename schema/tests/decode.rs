//! Raw row images to typed values with the table definition.

use bytes::Bytes;
use pump_reader::event::{Cell, ColumnMeta, TableMap};
use schema::{
    check_layout, cross_check, decode_row, Catalog, ColumnType, LobSize, RowError, Table, Value,
};

fn table(sql: &str) -> Table {
    let mut c = Catalog::new();
    c.apply("", "CREATE DATABASE app CHARACTER SET utf8mb4")
        .unwrap();
    let applied = c.apply("app", sql).unwrap();
    applied.tables[0].1.clone().unwrap()
}

/// The layout MariaDB uses for a column of this type (utf8mb4 text).
fn layout(ty: &ColumnType) -> ColumnMeta {
    let lob = |size: &LobSize| match size {
        LobSize::Tiny => 1,
        LobSize::Regular => 2,
        LobSize::Medium => 3,
        LobSize::Long => 4,
    };
    match ty {
        ColumnType::Int { bytes, .. } => ColumnMeta::Int { bytes: *bytes },
        ColumnType::Decimal {
            precision, scale, ..
        } => ColumnMeta::Decimal {
            precision: *precision,
            scale: *scale,
        },
        ColumnType::Date => ColumnMeta::Date,
        ColumnType::VarChar { chars } => ColumnMeta::VarString {
            max_len: (*chars * 4) as u16,
        },
        ColumnType::Char { chars } => ColumnMeta::String {
            max_len: (*chars * 4) as u16,
        },
        ColumnType::Binary { bytes } => ColumnMeta::String {
            max_len: *bytes as u16,
        },
        ColumnType::Text { size } | ColumnType::Blob { size } => ColumnMeta::Blob {
            len_bytes: lob(size),
        },
        ColumnType::Enum { .. } => ColumnMeta::Enum { bytes: 1 },
        ColumnType::Set { .. } => ColumnMeta::Set { bytes: 1 },
        ColumnType::Uuid | ColumnType::Inet6 => ColumnMeta::String { max_len: 16 },
        other => panic!("no layout for {other:?} in this test"),
    }
}

/// The TABLE_MAP the server writes for `t`.
fn map(t: &Table) -> TableMap {
    let n = t.columns.len();
    TableMap {
        table_id: 1,
        schema: t.schema.clone(),
        table: t.name.clone(),
        columns: t.columns.iter().map(|c| layout(&c.ty)).collect(),
        nullable: vec![true; n],
        unsigned: vec![None; n],
        column_names: None,
    }
}

fn int(bits: u64, bytes: u8) -> Cell {
    Cell::Int { bits, bytes }
}

#[test]
fn signedness_and_widths_come_from_the_definition() {
    let t = table("CREATE TABLE t (a TINYINT, b TINYINT UNSIGNED, c MEDIUMINT, d MEDIUMINT UNSIGNED, e BIGINT UNSIGNED, f INT)");
    let cells = [
        int(0xff, 1),
        int(0xff, 1),
        int(0xff_ffff, 3),
        int(0xff_ffff, 3),
        int(u64::MAX, 8),
        int(0x8000_0000, 4),
    ];
    let row = decode_row(&t, &map(&t), &cells).unwrap();
    let values: Vec<Value> = row.into_iter().map(Option::unwrap).collect();
    assert_eq!(
        values,
        [
            Value::Int(-1),
            Value::UInt(255),
            Value::Int(-1),
            Value::UInt(16_777_215),
            Value::UInt(u64::MAX),
            Value::Int(i32::MIN.into())
        ]
    );
}

#[test]
fn padding_enum_and_set_names() {
    let t = table("CREATE TABLE t (b BINARY(4), u UUID, i INET6, e ENUM('x','y'), s SET('p','q','r'), v VARCHAR(5), n INT, m INT)");
    let cells = [
        Cell::Bytes(Bytes::from_static(&[1])),
        Cell::Bytes(Bytes::new()),
        Cell::Bytes(Bytes::from_static(&[0xfe, 0x80])),
        Cell::Enum(2),
        Cell::Set(0b101),
        Cell::Bytes(Bytes::from_static(b"hi")),
        Cell::Null,
        Cell::Absent,
    ];
    let row = decode_row(&t, &map(&t), &cells).unwrap();
    assert_eq!(
        row[0],
        Some(Value::Bytes(Bytes::from_static(&[1, 0, 0, 0])))
    );
    assert_eq!(row[1], Some(Value::Uuid([0; 16])));
    let mut inet = [0u8; 16];
    inet[..2].copy_from_slice(&[0xfe, 0x80]);
    assert_eq!(row[2], Some(Value::Inet6(inet)));
    assert_eq!(
        row[3],
        Some(Value::Enum {
            index: 2,
            name: Some("y".into())
        })
    );
    assert_eq!(
        row[4],
        Some(Value::Set {
            bits: 0b101,
            names: vec!["p".into(), "r".into()]
        })
    );
    assert_eq!(row[5], Some(Value::Text(Bytes::from_static(b"hi"))));
    assert_eq!(row[6], Some(Value::Null));
    assert_eq!(row[7], None, "absent from the image");
    // The empty ENUM value (an invalid one stored as 0) has no name.
    let cells = [
        Cell::Null,
        Cell::Null,
        Cell::Null,
        Cell::Enum(0),
        Cell::Null,
        Cell::Null,
        Cell::Null,
        Cell::Null,
    ];
    assert_eq!(
        decode_row(&t, &map(&t), &cells).unwrap()[3],
        Some(Value::Enum {
            index: 0,
            name: None
        })
    );
}

#[test]
fn uuids_are_in_canonical_byte_order_in_row_images() {
    // The bytes MariaDB 10.11.19 wrote for '00112233-4455-6677-8899-aabbccddeeff' and the
    // time-based '6ccd780c-baba-1026-9564-5b8c656024db'.
    let t = table("CREATE TABLE t (u UUID)");
    for (bytes, text) in [
        (
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff,
            ],
            "00112233",
        ),
        (
            [
                0x6c, 0xcd, 0x78, 0x0c, 0xba, 0xba, 0x10, 0x26, 0x95, 0x64, 0x5b, 0x8c, 0x65, 0x60,
                0x24, 0xdb,
            ],
            "6ccd780c",
        ),
    ] {
        let row = decode_row(&t, &map(&t), &[Cell::Bytes(Bytes::copy_from_slice(&bytes))]).unwrap();
        assert_eq!(row[0], Some(Value::Uuid(bytes)), "{text}");
    }
}

#[test]
fn a_column_count_mismatch_names_the_table_and_both_column_lists() {
    let t = table("CREATE TABLE t (id INT, name VARCHAR(10))");
    let mut m = map(&t);
    m.columns.push(ColumnMeta::Date);
    let e = decode_row(&t, &m, &[int(1, 4), Cell::Null, Cell::Null]).unwrap_err();
    assert!(matches!(e, RowError::ColumnCount { .. }));
    assert_eq!(
        e.to_string(),
        "app.t: the binlog row has 3 columns (INT, VARSTRING, DATE), the tracked definition 2 (id, name)"
    );
}

#[test]
fn a_layout_that_does_not_fit_the_tracked_type_is_an_error() {
    let t = table("CREATE TABLE t (id INT, d DECIMAL(10,2), v VARCHAR(10), e ENUM('a','b'))");
    let good = map(&t);
    check_layout(&t, &good).unwrap();
    for (col, wrong, words) in [
        (0, ColumnMeta::Int { bytes: 8 }, "app.t.id: the binlog stores it as Int { bytes: 8 }, which does not fit its tracked type int"),
        (1, ColumnMeta::Decimal { precision: 12, scale: 2 }, "decimal(10,2)"),
        (2, ColumnMeta::VarString { max_len: 30 }, "varchar(10)"),
        (3, ColumnMeta::Date, "enum('a','b')"),
    ] {
        let mut m = good.clone();
        m.columns[col] = wrong;
        let e = check_layout(&t, &m).unwrap_err().to_string();
        assert!(e.contains(words), "{e}");
        let cells = [int(1, 4), Cell::Null, Cell::Null, Cell::Null];
        assert!(decode_row(&t, &m, &cells).is_err(), "decode_row checks layouts too");
    }
}

#[test]
fn a_value_of_another_type_is_an_error_naming_the_column() {
    let t = table("CREATE TABLE t (id INT, d DATE)");
    let e = decode_row(
        &t,
        &map(&t),
        &[int(1, 4), Cell::Bytes(Bytes::from_static(b"x"))],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("app.t.d: a string value in a Date column"),
        "{e}"
    );
}

#[test]
fn full_metadata_in_the_binlog_wins_for_signedness_and_stops_on_names() {
    let t = table("CREATE TABLE t (id INT, n INT)");
    let mut m = map(&t);
    assert_eq!(
        cross_check(&t, &m).unwrap(),
        None,
        "no metadata: nothing to compare"
    );
    m.column_names = Some(vec!["ID".into(), "n".into()]);
    m.unsigned = vec![Some(false), Some(false)];
    assert_eq!(
        cross_check(&t, &m).unwrap(),
        None,
        "agreeing metadata (names compare case-insensitively)"
    );
    m.unsigned = vec![Some(false), Some(true)];
    let (fixed, what) = cross_check(&t, &m).unwrap().unwrap();
    assert_eq!(what, "column `n` is UNSIGNED in the binlog");
    let row = decode_row(&fixed, &m, &[int(1, 4), int(0xffff_ffff, 4)]).unwrap();
    assert_eq!(row[1], Some(Value::UInt(4_294_967_295)));
    // Other names: the positions disagree, which no correction can fix.
    m.column_names = Some(vec!["id".into(), "renamed".into()]);
    let e = cross_check(&t, &m).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "app.t: the binlog's column names differ from the tracked definition: column `n` \
             is `renamed` (the binlog: id, renamed; tracked: id, n)"
        ),
        "{e}"
    );
}
