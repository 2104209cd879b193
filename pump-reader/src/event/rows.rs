//! WRITE_ROWS, UPDATE_ROWS and DELETE_ROWS (v1, MariaDB's; v2, MySQL's): row images.

use bytes::Bytes;

use super::cell::{self, Cell};
use super::kind;
use super::table_map::TableMap;
use super::{Cursor, DecodeError};

/// What a rows event does to its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    Insert,
    Update,
    Delete,
}

impl RowsKind {
    /// The kind of a rows event type code, and whether it is a v2 event (extra data).
    pub fn of(code: u8) -> Option<(RowsKind, bool)> {
        Some(match code {
            kind::WRITE_ROWS_V1 => (RowsKind::Insert, false),
            kind::UPDATE_ROWS_V1 => (RowsKind::Update, false),
            kind::DELETE_ROWS_V1 => (RowsKind::Delete, false),
            kind::WRITE_ROWS_V2 => (RowsKind::Insert, true),
            kind::UPDATE_ROWS_V2 => (RowsKind::Update, true),
            kind::DELETE_ROWS_V2 => (RowsKind::Delete, true),
            _ => return None,
        })
    }
}

/// One changed row: the before image (UPDATE, DELETE) and the after image (INSERT,
/// UPDATE), one [`Cell`] per table column.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub before: Option<Vec<Cell>>,
    pub after: Option<Vec<Cell>>,
}

/// The table id a rows event refers to, read before the event is decoded (its table map
/// is needed for that).
pub fn table_id(body: &[u8], table_id_len: usize) -> Result<u64, DecodeError> {
    Cursor::new(body).uint_le(table_id_len, "table id")
}

/// A rows event's flags (see `crate::Rows`), read without decoding its rows.
pub fn flags(body: &[u8], table_id_len: usize) -> Result<u16, DecodeError> {
    let mut c = Cursor::new(body);
    c.skip(table_id_len, "table id")?;
    c.u16_le("rows flags")
}

/// Decodes the rows of a rows event of type `code` against its table map.
pub fn decode(
    code: u8,
    body: &Bytes,
    table_id_len: usize,
    map: &TableMap,
) -> Result<Vec<RowChange>, DecodeError> {
    let (rows_kind, v2) = RowsKind::of(code).ok_or_else(|| DecodeError::Invalid {
        what: "rows event type",
        offset: 0,
        reason: format!("{code} is not a rows event"),
    })?;
    let mut c = Cursor::new(body);
    c.skip(table_id_len, "table id")?;
    c.skip(2, "rows flags")?;
    if v2 {
        let extra = usize::from(c.u16_le("rows extra data length")?);
        c.skip(extra.saturating_sub(2), "rows extra data")?;
    }
    let n = c.lenenc("rows column count")?;
    if n != map.columns.len() as u64 {
        return Err(DecodeError::Invalid {
            what: "rows column count",
            offset: c.offset(),
            reason: format!(
                "{n} columns, but the table map of {}.{} has {}",
                map.schema,
                map.table,
                map.columns.len()
            ),
        });
    }
    let n = map.columns.len();
    let present_first = bitmap(c.bytes(n.div_ceil(8), "columns-present bitmap")?, n);
    let present_second = match rows_kind {
        RowsKind::Update => bitmap(c.bytes(n.div_ceil(8), "after-image columns bitmap")?, n),
        _ => Vec::new(),
    };
    let mut rows = Vec::new();
    while !c.is_empty() {
        let row = match rows_kind {
            RowsKind::Insert => RowChange {
                before: None,
                after: Some(image(&mut c, body, map, &present_first)?),
            },
            RowsKind::Delete => RowChange {
                before: Some(image(&mut c, body, map, &present_first)?),
                after: None,
            },
            RowsKind::Update => RowChange {
                before: Some(image(&mut c, body, map, &present_first)?),
                after: Some(image(&mut c, body, map, &present_second)?),
            },
        };
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(DecodeError::Invalid {
            what: "rows event",
            offset: c.offset(),
            reason: format!("no rows for {}.{}", map.schema, map.table),
        });
    }
    Ok(rows)
}

fn bitmap(bytes: &[u8], n: usize) -> Vec<bool> {
    (0..n).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect()
}

/// One row image: a NULL bitmap over the present columns, then their values.
fn image(
    c: &mut Cursor<'_>,
    body: &Bytes,
    map: &TableMap,
    present: &[bool],
) -> Result<Vec<Cell>, DecodeError> {
    let count = present.iter().filter(|p| **p).count();
    let nulls = c.bytes(count.div_ceil(8), "NULL bitmap")?;
    let mut cells = Vec::with_capacity(present.len());
    let mut k = 0;
    for (i, &is_present) in present.iter().enumerate() {
        if !is_present {
            cells.push(Cell::Absent);
            continue;
        }
        let null = nulls[k / 8] & (1 << (k % 8)) != 0;
        k += 1;
        if null {
            cells.push(Cell::Null);
            continue;
        }
        let cell = cell::decode(map.columns[i], c, body).map_err(|e| in_column(e, map, i))?;
        cells.push(cell);
    }
    Ok(cells)
}

/// Adds the column to an error: `… in column 3 of app.t`.
fn in_column(e: DecodeError, map: &TableMap, i: usize) -> DecodeError {
    let at = format!("column {} of {}.{}", i + 1, map.schema, map.table);
    match e {
        DecodeError::Unsupported(what) => DecodeError::Unsupported(format!("{what} in {at}")),
        DecodeError::Invalid {
            what,
            offset,
            reason,
        } => DecodeError::Invalid {
            what,
            offset,
            reason: format!("{reason} (in {at})"),
        },
        DecodeError::Truncated {
            what,
            offset,
            needed,
            left,
        } => DecodeError::Invalid {
            what,
            offset,
            reason: format!("truncated: needed {needed} bytes, {left} left (in {at})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::table_map::ColumnMeta;

    fn map(columns: Vec<ColumnMeta>) -> TableMap {
        let n = columns.len();
        TableMap {
            table_id: 18,
            schema: "app".into(),
            table: "t".into(),
            columns,
            nullable: vec![true; n],
            unsigned: vec![None; n],
            column_names: None,
        }
    }

    /// Body prefix of a v1 rows event for table 18 with `n` columns, all present.
    fn head(n: u8, update: bool) -> Vec<u8> {
        let mut b = vec![18, 0, 0, 0, 0, 0, 1, 0, n];
        let all = (1u16 << n) - 1;
        b.push(all as u8);
        if update {
            b.push(all as u8);
        }
        b
    }

    #[test]
    fn insert_update_delete_images() {
        let m = map(vec![
            ColumnMeta::Int { bytes: 4 },
            ColumnMeta::VarString { max_len: 20 },
        ]);
        // INSERT (1, 'a'), (2, NULL)
        let mut b = head(2, false);
        b.extend([0b00, 1, 0, 0, 0, 1, b'a']);
        b.extend([0b10, 2, 0, 0, 0]);
        let rows = decode(kind::WRITE_ROWS_V1, &Bytes::from(b), 6, &m).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].after.as_ref().unwrap()[1],
            Cell::Bytes(Bytes::from_static(b"a"))
        );
        assert_eq!(rows[1].after.as_ref().unwrap()[1], Cell::Null);
        assert!(rows[0].before.is_none());

        // UPDATE (1, 'a') -> (5, 'a')
        let mut b = head(2, true);
        b.extend([0, 1, 0, 0, 0, 1, b'a', 0, 5, 0, 0, 0, 1, b'a']);
        let rows = decode(kind::UPDATE_ROWS_V1, &Bytes::from(b), 6, &m).unwrap();
        assert_eq!(rows[0].before.as_ref().unwrap()[0].as_signed(), Some(1));
        assert_eq!(rows[0].after.as_ref().unwrap()[0].as_signed(), Some(5));

        // DELETE (5, 'a'), as a v2 event with 2 bytes of extra data.
        let mut b = vec![18, 0, 0, 0, 0, 0, 1, 0, 4, 0, 0xaa, 0xbb, 2, 0b11];
        b.extend([0, 5, 0, 0, 0, 1, b'a']);
        let rows = decode(kind::DELETE_ROWS_V2, &Bytes::from(b), 6, &m).unwrap();
        assert_eq!(rows[0].before.as_ref().unwrap()[0].as_signed(), Some(5));
        assert!(rows[0].after.is_none());
    }

    #[test]
    fn columns_missing_from_an_image_are_absent() {
        let m = map(vec![
            ColumnMeta::Int { bytes: 1 },
            ColumnMeta::Int { bytes: 1 },
        ]);
        // Only column 2 present (binlog_row_image = MINIMAL on a DELETE).
        let b = vec![18, 0, 0, 0, 0, 0, 1, 0, 2, 0b10, 0, 7];
        let rows = decode(kind::DELETE_ROWS_V1, &Bytes::from(b), 6, &m).unwrap();
        assert_eq!(rows[0].before.as_ref().unwrap()[0], Cell::Absent);
        assert_eq!(rows[0].before.as_ref().unwrap()[1].as_signed(), Some(7));
    }

    #[test]
    fn mismatches_and_cuts_are_errors_naming_the_table() {
        let m = map(vec![
            ColumnMeta::Int { bytes: 4 },
            ColumnMeta::VarString { max_len: 20 },
        ]);
        let mut b = head(2, false);
        b.extend([0b00, 1, 0, 0, 0, 1, b'a']);
        for cut in 1..b.len() {
            assert!(
                decode(
                    kind::WRITE_ROWS_V1,
                    &Bytes::copy_from_slice(&b[..cut]),
                    6,
                    &m
                )
                .is_err(),
                "cut {cut}"
            );
        }
        let e = decode(
            kind::WRITE_ROWS_V1,
            &Bytes::from(b[..b.len() - 1].to_vec()),
            6,
            &m,
        )
        .unwrap_err();
        assert!(e.to_string().contains("column 2 of app.t"), "{e}");
        let three = map(vec![ColumnMeta::Int { bytes: 4 }; 3]);
        let e = decode(kind::WRITE_ROWS_V1, &Bytes::from(b), 6, &three).unwrap_err();
        assert!(
            e.to_string()
                .contains("2 columns, but the table map of app.t has 3"),
            "{e}"
        );
    }
}
