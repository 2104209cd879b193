//! Row images to typed values: a raw row from pump-reader plus the definition in force.
//!
//! The corrections the binlog alone cannot make live here, and only here: integer
//! signedness (MariaDB's default `binlog_row_metadata = NO_LOG` does not log it; MEDIUMINT
//! negatives come out right at their width), BINARY(n), UUID and INET6 padding (the server
//! strips trailing zero bytes), ENUM and SET member names.

use bytes::Bytes;
use pump_reader::event::{Cell, ColumnMeta, TableMap};

use crate::model::{ColumnType, Table};

/// A column value, typed by the table definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact text, every scale digit: `-12.340`.
    Decimal(String),
    Year(u16),
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    Time {
        negative: bool,
        hours: u16,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// Seconds since the epoch, UTC; 0 is the zero timestamp.
    Timestamp {
        seconds: u32,
        micros: u32,
    },
    /// Text in the column's character set (see its [`crate::Column::charset`]).
    Text(Bytes),
    /// Binary strings, BLOBs, GEOMETRY (BINARY(n) padded back to n bytes).
    Bytes(Bytes),
    /// An ENUM member: its 1-based number and name (0 and no name: the empty value).
    Enum {
        index: u16,
        name: Option<String>,
    },
    /// SET members: the bitmask and the names of the bits set.
    Set {
        bits: u64,
        names: Vec<String>,
    },
    Bit {
        value: u64,
        bits: u16,
    },
    /// MySQL's binary JSON, undecoded.
    MysqlJson(Bytes),
    Uuid([u8; 16]),
    Inet4([u8; 4]),
    Inet6([u8; 16]),
}

/// A row image that does not fit the definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The binlog row has another number of columns than the tracked table: the schema
    /// history and the upstream disagree.
    #[error(
        "{table}: the binlog row has {binlog} columns ({binlog_columns}), the tracked definition {model} ({model_columns})"
    )]
    ColumnCount {
        table: String,
        binlog: usize,
        binlog_columns: String,
        model: usize,
        model_columns: String,
    },
    /// The TABLE_MAP stores a column in a layout its tracked type cannot have: the tracked
    /// definition is wrong (a DDL misread, or one the tracker passed over).
    #[error("{table}.{column}: the binlog stores it as {binlog}, which does not fit its tracked type {model}")]
    Layout {
        table: String,
        column: String,
        binlog: String,
        model: String,
    },
    /// Full binlog metadata names the columns differently: the positions disagree.
    #[error(
        "{table}: the binlog's column names differ from the tracked definition: {differences} \
         (the binlog: {binlog}; tracked: {model}); the table changed in a way the schema \
         history did not see (DDL outside the binlog?)"
    )]
    Names {
        table: String,
        differences: String,
        binlog: String,
        model: String,
    },
    #[error("{table}.{column}: a {cell} value in a {ty} column")]
    Type {
        table: String,
        column: String,
        cell: String,
        ty: String,
    },
}

/// Checks that every column's layout in the TABLE_MAP fits its tracked type (integer
/// width, DECIMAL precision and scale, string byte length for known charsets, TEXT/BLOB
/// length bytes, ENUM/SET size, BIT width, fractional seconds).
pub fn check_layout(table: &Table, map: &TableMap) -> Result<(), RowError> {
    for (column, meta) in table.columns.iter().zip(&map.columns) {
        if !layout_fits(*meta, column) {
            return Err(RowError::Layout {
                table: table.qualified(),
                column: column.name.clone(),
                binlog: format!("{meta:?}"),
                model: column.ty.to_string(),
            });
        }
    }
    Ok(())
}

fn layout_fits(meta: ColumnMeta, column: &crate::model::Column) -> bool {
    use crate::model::LobSize;
    use ColumnMeta as M;
    use ColumnType as T;
    let bytes_per_char = column.charset.as_deref().and_then(crate::ddl::mbmaxlen);
    let chars_fit =
        |chars: u32, max_len: u16| bytes_per_char.is_none_or(|mb| chars * mb == u32::from(max_len));
    let lob_bytes = |size: LobSize| match size {
        LobSize::Tiny => 1,
        LobSize::Regular => 2,
        LobSize::Medium => 3,
        LobSize::Long => 4,
    };
    match (&column.ty, meta) {
        (T::Int { bytes, .. }, M::Int { bytes: b }) => *bytes == b,
        (
            T::Decimal {
                precision, scale, ..
            },
            M::Decimal {
                precision: p,
                scale: s,
            },
        ) => *precision == p && *scale == s,
        (T::Float { .. }, M::Float)
        | (T::Double { .. }, M::Double)
        | (T::Year, M::Year)
        | (T::Date, M::Date) => true,
        (T::Bit { bits }, M::Bit { bits: b }) => *bits == b,
        (T::Time { fsp }, M::Time2 { fsp: f }) => *fsp == f,
        (T::DateTime { fsp }, M::DateTime2 { fsp: f }) => *fsp == f,
        (T::Timestamp { fsp }, M::Timestamp2 { fsp: f }) => *fsp == f,
        (T::Time { fsp: 0 }, M::TimeOld)
        | (T::DateTime { fsp: 0 }, M::DateTimeOld)
        | (T::Timestamp { fsp: 0 }, M::TimestampOld) => true,
        (T::Char { chars }, M::String { max_len }) => chars_fit(*chars, max_len),
        (T::VarChar { chars }, M::VarString { max_len }) => chars_fit(*chars, max_len),
        (T::Binary { bytes }, M::String { max_len }) => *bytes == u32::from(max_len),
        (T::VarBinary { bytes }, M::VarString { max_len }) => *bytes == u32::from(max_len),
        (T::Text { size } | T::Blob { size }, M::Blob { len_bytes }) => {
            lob_bytes(*size) == len_bytes
        }
        (T::Json, M::MysqlJson { .. } | M::Blob { .. }) => true,
        (T::Enum { members }, M::Enum { bytes }) => {
            bytes == if members.len() < 256 { 1 } else { 2 }
        }
        (T::Set { members }, M::Set { bytes }) => {
            bytes
                == match members.len() {
                    0..=8 => 1,
                    9..=16 => 2,
                    17..=24 => 3,
                    25..=32 => 4,
                    _ => 8,
                }
        }
        (T::Uuid | T::Inet6, M::String { max_len: 16 }) | (T::Inet4, M::String { max_len: 4 }) => {
            true
        }
        (T::Geometry { .. }, M::Geometry { .. }) => true,
        _ => false,
    }
}

/// Decodes one row image; `None` for a column absent from the image (not FULL). The
/// layouts are checked first ([`check_layout`]).
pub fn decode_row(
    table: &Table,
    map: &TableMap,
    cells: &[Cell],
) -> Result<Vec<Option<Value>>, RowError> {
    if cells.len() != table.columns.len() || map.columns.len() != table.columns.len() {
        return Err(RowError::ColumnCount {
            table: table.qualified(),
            binlog: cells.len(),
            binlog_columns: map
                .columns
                .iter()
                .map(|m| layout_name(*m))
                .collect::<Vec<_>>()
                .join(", "),
            model: table.columns.len(),
            model_columns: table
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    check_layout(table, map)?;
    table
        .columns
        .iter()
        .zip(cells)
        .map(|(column, cell)| match cell {
            Cell::Absent => Ok(None),
            cell => value(&column.ty, cell)
                .map(Some)
                .ok_or_else(|| RowError::Type {
                    table: table.qualified(),
                    column: column.name.clone(),
                    cell: cell_name(cell).into(),
                    ty: format!("{:?}", column.ty),
                }),
        })
        .collect()
}

/// One cell as the column's type says; `None` when the cell cannot be of that type.
fn value(ty: &ColumnType, cell: &Cell) -> Option<Value> {
    use ColumnType as T;
    if *cell == Cell::Null {
        return Some(Value::Null);
    }
    Some(match (ty, cell) {
        (
            T::Int {
                unsigned: false, ..
            },
            Cell::Int { .. },
        ) => Value::Int(cell.as_signed()?),
        (T::Int { unsigned: true, .. }, Cell::Int { .. }) => Value::UInt(cell.as_unsigned()?),
        (T::Float { .. }, Cell::Float(f)) => Value::Float(*f),
        (T::Double { .. }, Cell::Double(d)) => Value::Double(*d),
        (T::Decimal { .. }, Cell::Decimal(d)) => Value::Decimal(d.clone()),
        (T::Year, Cell::Year(y)) => Value::Year(*y),
        (T::Date, Cell::Date { year, month, day }) => Value::Date {
            year: *year,
            month: *month,
            day: *day,
        },
        (
            T::Time { .. },
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            },
        ) => Value::Time {
            negative: *negative,
            hours: *hours,
            minutes: *minutes,
            seconds: *seconds,
            micros: *micros,
        },
        (
            T::DateTime { .. },
            Cell::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            },
        ) => Value::DateTime {
            year: *year,
            month: *month,
            day: *day,
            hour: *hour,
            minute: *minute,
            second: *second,
            micros: *micros,
        },
        (T::Timestamp { .. }, Cell::Timestamp { seconds, micros }) => Value::Timestamp {
            seconds: *seconds,
            micros: *micros,
        },
        (T::Char { .. } | T::VarChar { .. } | T::Text { .. }, Cell::Bytes(b)) => {
            Value::Text(b.clone())
        }
        (T::Binary { bytes }, Cell::Bytes(b)) => Value::Bytes(pad(b, *bytes as usize)),
        (T::VarBinary { .. } | T::Blob { .. } | T::Geometry { .. }, Cell::Bytes(b)) => {
            Value::Bytes(b.clone())
        }
        (T::Json, Cell::MysqlJson(b)) => Value::MysqlJson(b.clone()),
        // MariaDB's JSON is text, should a table say JSON.
        (T::Json, Cell::Bytes(b)) => Value::Text(b.clone()),
        (T::Enum { members }, Cell::Enum(i)) => Value::Enum {
            index: *i,
            name: (*i as usize)
                .checked_sub(1)
                .and_then(|k| members.get(k))
                .cloned(),
        },
        (T::Set { members }, Cell::Set(bits)) => Value::Set {
            bits: *bits,
            names: members
                .iter()
                .enumerate()
                .filter(|(k, _)| *k < 64 && bits & (1 << k) != 0)
                .map(|(_, m)| m.clone())
                .collect(),
        },
        (T::Bit { bits }, Cell::Bit(v)) => Value::Bit {
            value: *v,
            bits: *bits,
        },
        (T::Uuid, Cell::Bytes(b)) => Value::Uuid(fixed(b)?),
        (T::Inet4, Cell::Bytes(b)) => Value::Inet4(fixed(b)?),
        (T::Inet6, Cell::Bytes(b)) => Value::Inet6(fixed(b)?),
        _ => return None,
    })
}

/// Trailing zero bytes back, to `len`.
fn pad(b: &Bytes, len: usize) -> Bytes {
    if b.len() >= len {
        return b.clone();
    }
    let mut v = b.to_vec();
    v.resize(len, 0);
    Bytes::from(v)
}

/// A fixed-size value whose trailing zero bytes the server stripped.
fn fixed<const N: usize>(b: &Bytes) -> Option<[u8; N]> {
    if b.len() > N {
        return None;
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Some(out)
}

/// Compares what a TABLE_MAP with full metadata says (column names, signedness) with the
/// tracked definition. Other names mean the column positions disagree: an error. Other
/// signedness is corrected, the binlog winning: returns the corrected definition and what
/// differed. `None` when they agree or the binlog says nothing.
pub fn cross_check(table: &Table, map: &TableMap) -> Result<Option<(Table, String)>, RowError> {
    if map.columns.len() != table.columns.len() {
        return Ok(None); // decode_row reports this, with both column lists.
    }
    if let Some(names) = &map.column_names {
        let differences: Vec<String> = table
            .columns
            .iter()
            .zip(names)
            .filter(|(column, name)| !column.name.eq_ignore_ascii_case(name))
            .map(|(column, name)| format!("column `{}` is `{name}`", column.name))
            .collect();
        if !differences.is_empty() {
            return Err(RowError::Names {
                table: table.qualified(),
                differences: differences.join(", "),
                binlog: names.join(", "),
                model: table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    // Most often they agree: no copy of the definition then.
    let differs = table
        .columns
        .iter()
        .zip(&map.unsigned)
        .any(|(column, binlog)| {
            let model = match &column.ty {
                ColumnType::Int { unsigned, .. }
                | ColumnType::Decimal { unsigned, .. }
                | ColumnType::Float { unsigned }
                | ColumnType::Double { unsigned } => *unsigned,
                _ => return false,
            };
            binlog.is_some_and(|b| b != model)
        });
    if !differs {
        return Ok(None);
    }
    let mut fixed = table.clone();
    let mut differences = Vec::new();
    for (column, unsigned) in fixed.columns.iter_mut().zip(&map.unsigned) {
        let Some(binlog) = unsigned else { continue };
        let model = match &mut column.ty {
            ColumnType::Int { unsigned, .. }
            | ColumnType::Decimal { unsigned, .. }
            | ColumnType::Float { unsigned }
            | ColumnType::Double { unsigned } => unsigned,
            _ => continue,
        };
        if model != binlog {
            differences.push(format!(
                "column `{}` is {} in the binlog",
                column.name,
                if *binlog { "UNSIGNED" } else { "signed" }
            ));
            *model = *binlog;
        }
    }
    Ok((!differences.is_empty()).then(|| (fixed, differences.join("; "))))
}

fn layout_name(meta: ColumnMeta) -> String {
    format!("{meta:?}")
        .split([' ', '{'])
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

fn cell_name(cell: &Cell) -> &'static str {
    match cell {
        Cell::Null => "NULL",
        Cell::Absent => "absent",
        Cell::Int { .. } => "integer",
        Cell::Float(_) => "FLOAT",
        Cell::Double(_) => "DOUBLE",
        Cell::Decimal(_) => "DECIMAL",
        Cell::Year(_) => "YEAR",
        Cell::Date { .. } => "DATE",
        Cell::Time { .. } => "TIME",
        Cell::DateTime { .. } => "DATETIME",
        Cell::Timestamp { .. } => "TIMESTAMP",
        Cell::Bytes(_) => "string",
        Cell::Enum(_) => "ENUM",
        Cell::Set(_) => "SET",
        Cell::Bit(_) => "BIT",
        Cell::MysqlJson(_) => "JSON",
    }
}
