//! Raw row images to typed values with the table definition.

use bytes::Bytes;
use pump_reader::event::{Cell, ColumnMeta, TableMap};
use schema::{cross_check, decode_row, Catalog, RowError, Table, Value};

fn table(sql: &str) -> Table {
    let mut c = Catalog::new();
    c.apply("", "CREATE DATABASE app").unwrap();
    let applied = c.apply("app", sql).unwrap();
    applied.tables[0].1.clone().unwrap()
}

/// A TABLE_MAP for `t` with `n` columns of no particular layout.
fn map(t: &Table) -> TableMap {
    let n = t.columns.len();
    TableMap {
        table_id: 1,
        schema: t.schema.clone(),
        table: t.name.clone(),
        columns: vec![ColumnMeta::Int { bytes: 4 }; n],
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
fn a_column_count_mismatch_names_the_table_and_both_column_lists() {
    let t = table("CREATE TABLE t (id INT, name VARCHAR(10))");
    let mut m = map(&t);
    m.columns.push(ColumnMeta::Date);
    let e = decode_row(&t, &m, &[int(1, 4), Cell::Null, Cell::Null]).unwrap_err();
    assert!(matches!(e, RowError::ColumnCount { .. }));
    assert_eq!(
        e.to_string(),
        "app.t: the binlog row has 3 columns (INT, INT, DATE), the tracked definition 2 (id, name)"
    );
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
fn full_metadata_in_the_binlog_wins() {
    let t = table("CREATE TABLE t (id INT, n INT)");
    let mut m = map(&t);
    assert_eq!(cross_check(&t, &m), None, "no metadata: nothing to compare");
    m.column_names = Some(vec!["id".into(), "n".into()]);
    m.unsigned = vec![Some(false), Some(false)];
    assert_eq!(cross_check(&t, &m), None, "agreeing metadata");
    m.column_names = Some(vec!["ID".into(), "renamed".into()]);
    m.unsigned = vec![Some(false), Some(true)];
    let (fixed, what) = cross_check(&t, &m).unwrap();
    assert_eq!(
        what,
        "column `n` is `renamed` in the binlog; column `renamed` is UNSIGNED in the binlog"
    );
    assert_eq!(fixed.columns[1].name, "renamed");
    assert_eq!(
        fixed.columns[0].name, "id",
        "names compare case-insensitively"
    );
    let row = decode_row(&fixed, &m, &[int(1, 4), int(0xffff_ffff, 4)]).unwrap();
    assert_eq!(row[1], Some(Value::UInt(4_294_967_295)));
}
