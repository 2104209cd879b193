//! TABLE_MAP: which table the next row events change, and how its columns are stored.

use super::{Cursor, DecodeError};

/// How one column's values are laid out in row images, from its type code and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnMeta {
    /// Integers of 1, 2, 3, 4 or 8 bytes; signedness is not in the row image.
    Int {
        bytes: u8,
    },
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Year,
    Date,
    /// TIME before MySQL 5.6's format (`mysql56_temporal_format = OFF`).
    TimeOld,
    Time2 {
        fsp: u8,
    },
    DateTimeOld,
    DateTime2 {
        fsp: u8,
    },
    TimestampOld,
    Timestamp2 {
        fsp: u8,
    },
    /// VARCHAR / VARBINARY: a 1- or 2-byte length, then bytes. `max_len` is in bytes.
    VarString {
        max_len: u16,
    },
    /// CHAR / BINARY (and MariaDB UUID/INET6): a 1- or 2-byte length, then bytes.
    String {
        max_len: u16,
    },
    /// 1- or 2-byte member index (1-based; 0 for the empty string of an invalid value).
    Enum {
        bytes: u8,
    },
    /// 1- to 8-byte member bitmask.
    Set {
        bytes: u8,
    },
    Bit {
        bits: u16,
    },
    /// BLOB / TEXT (and MariaDB's JSON): a `len_bytes`-byte length, then bytes.
    Blob {
        len_bytes: u8,
    },
    Geometry {
        len_bytes: u8,
    },
    /// MySQL's binary JSON: a `len_bytes`-byte length, then JSONB.
    MysqlJson {
        len_bytes: u8,
    },
    Null,
    /// MariaDB compressed columns (`COMPRESSED` attribute).
    VarStringCompressed {
        max_len: u16,
    },
    BlobCompressed {
        len_bytes: u8,
    },
}

/// Column type codes (`enum_field_types`).
mod code {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const VARCHAR_COMPRESSED: u8 = 140;
    pub const BLOB_COMPRESSED: u8 = 141;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

impl ColumnMeta {
    /// Reads the metadata of a column of type `code` and returns its layout.
    fn decode(code: u8, c: &mut Cursor<'_>) -> Result<ColumnMeta, DecodeError> {
        use code::*;
        let meta = match code {
            TINY => ColumnMeta::Int { bytes: 1 },
            SHORT => ColumnMeta::Int { bytes: 2 },
            INT24 => ColumnMeta::Int { bytes: 3 },
            LONG => ColumnMeta::Int { bytes: 4 },
            LONGLONG => ColumnMeta::Int { bytes: 8 },
            FLOAT => {
                c.skip(1, "FLOAT metadata")?;
                ColumnMeta::Float
            }
            DOUBLE => {
                c.skip(1, "DOUBLE metadata")?;
                ColumnMeta::Double
            }
            NULL => ColumnMeta::Null,
            YEAR => ColumnMeta::Year,
            DATE | NEWDATE => ColumnMeta::Date,
            TIME => ColumnMeta::TimeOld,
            DATETIME => ColumnMeta::DateTimeOld,
            TIMESTAMP => ColumnMeta::TimestampOld,
            TIME2 => ColumnMeta::Time2 { fsp: fsp(c)? },
            DATETIME2 => ColumnMeta::DateTime2 { fsp: fsp(c)? },
            TIMESTAMP2 => ColumnMeta::Timestamp2 { fsp: fsp(c)? },
            VARCHAR | VAR_STRING => ColumnMeta::VarString {
                max_len: c.u16_le("VARCHAR metadata")?,
            },
            VARCHAR_COMPRESSED => ColumnMeta::VarStringCompressed {
                max_len: c.u16_le("compressed VARCHAR metadata")?,
            },
            BIT => {
                let extra_bits = c.u8("BIT metadata")?;
                let bytes = c.u8("BIT metadata")?;
                let bits = u16::from(bytes) * 8 + u16::from(extra_bits);
                if !(1..=64).contains(&bits) || extra_bits > 7 {
                    return Err(DecodeError::Invalid {
                        what: "BIT metadata",
                        offset: c.offset() - 2,
                        reason: format!("{bytes} bytes and {extra_bits} bits"),
                    });
                }
                ColumnMeta::Bit { bits }
            }
            NEWDECIMAL => {
                let precision = c.u8("DECIMAL precision")?;
                let scale = c.u8("DECIMAL scale")?;
                // MariaDB allows a scale of up to 38 (MySQL 30).
                if precision == 0 || precision > 65 || scale > 38 || scale > precision {
                    return Err(DecodeError::Invalid {
                        what: "DECIMAL metadata",
                        offset: c.offset() - 2,
                        reason: format!("DECIMAL({precision},{scale})"),
                    });
                }
                ColumnMeta::Decimal { precision, scale }
            }
            TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB => ColumnMeta::Blob {
                len_bytes: len_bytes(c, "BLOB metadata")?,
            },
            BLOB_COMPRESSED => ColumnMeta::BlobCompressed {
                len_bytes: len_bytes(c, "compressed BLOB metadata")?,
            },
            GEOMETRY => ColumnMeta::Geometry {
                len_bytes: len_bytes(c, "GEOMETRY metadata")?,
            },
            JSON => ColumnMeta::MysqlJson {
                len_bytes: len_bytes(c, "JSON metadata")?,
            },
            STRING | ENUM | SET => {
                let b0 = c.u8("CHAR metadata")?;
                let b1 = c.u8("CHAR metadata")?;
                // CHAR lengths above 255 borrow two bits of the type byte.
                let (real, max_len) = if b0 & 0x30 != 0x30 {
                    (
                        b0 | 0x30,
                        u16::from(b1) | (u16::from((b0 & 0x30) ^ 0x30) << 4),
                    )
                } else {
                    (b0, u16::from(b1))
                };
                match real {
                    ENUM if matches!(b1, 1 | 2) => ColumnMeta::Enum { bytes: b1 },
                    SET if (1..=8).contains(&b1) => ColumnMeta::Set { bytes: b1 },
                    STRING => ColumnMeta::String { max_len },
                    _ => {
                        return Err(DecodeError::Invalid {
                            what: "CHAR/ENUM/SET metadata",
                            offset: c.offset() - 2,
                            reason: format!("real type {real} with length {b1}"),
                        })
                    }
                }
            }
            DECIMAL => {
                return Err(DecodeError::Unsupported(
                    "the pre-5.0 DECIMAL column type (code 0)".into(),
                ))
            }
            other => {
                return Err(DecodeError::Unsupported(format!(
                    "column type code {other}"
                )));
            }
        };
        Ok(meta)
    }

    /// Whether the optional SIGNEDNESS metadata has a bit for this column.
    fn is_numeric(self) -> bool {
        matches!(
            self,
            ColumnMeta::Int { .. }
                | ColumnMeta::Float
                | ColumnMeta::Double
                | ColumnMeta::Decimal { .. }
        )
    }
}

fn fsp(c: &mut Cursor<'_>) -> Result<u8, DecodeError> {
    let fsp = c.u8("fractional seconds precision")?;
    if fsp > 6 {
        return Err(DecodeError::Invalid {
            what: "fractional seconds precision",
            offset: c.offset() - 1,
            reason: format!("{fsp} is above 6"),
        });
    }
    Ok(fsp)
}

fn len_bytes(c: &mut Cursor<'_>, what: &'static str) -> Result<u8, DecodeError> {
    let n = c.u8(what)?;
    if !(1..=4).contains(&n) {
        return Err(DecodeError::Invalid {
            what,
            offset: c.offset() - 1,
            reason: format!("length of {n} bytes"),
        });
    }
    Ok(n)
}

/// A TABLE_MAP event: binds a table id, for the row events that follow, to a table and
/// the storage layout of its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMap {
    pub table_id: u64,
    pub schema: String,
    pub table: String,
    pub columns: Vec<ColumnMeta>,
    /// Per column, whether it may hold NULL.
    pub nullable: Vec<bool>,
    /// Per column, whether it is UNSIGNED, when the server logs it
    /// (`binlog_row_metadata = MINIMAL` or `FULL`); `None` for non-numeric columns and
    /// under MariaDB's default `NO_LOG`.
    pub unsigned: Vec<Option<bool>>,
    /// Column names, when the server logs them (`binlog_row_metadata = FULL`).
    pub column_names: Option<Vec<String>>,
}

impl TableMap {
    /// Decodes a body; `table_id_len` is 6, or 4 when the format description gives
    /// TABLE_MAP a 6-byte post-header (servers before 5.1.4).
    pub fn decode(body: &[u8], table_id_len: usize) -> Result<TableMap, DecodeError> {
        let mut c = Cursor::new(body);
        let table_id = c.uint_le(table_id_len, "table id")?;
        c.skip(2, "table map flags")?;
        let schema = name(&mut c, "schema name")?;
        let table = name(&mut c, "table name")?;
        let n = c.lenenc("column count")?;
        let n = c.len_within(n, "column types")?;
        let types = c.bytes(n, "column types")?;
        let meta_len = c.lenenc("column metadata length")?;
        let meta_len = c.len_within(meta_len, "column metadata")?;
        let mut meta = Cursor::new(c.bytes(meta_len, "column metadata")?);
        let mut columns = Vec::with_capacity(n);
        for &code in types {
            columns.push(
                ColumnMeta::decode(code, &mut meta).map_err(|e| with_column(e, columns.len()))?,
            );
        }
        if !meta.is_empty() {
            return Err(DecodeError::Invalid {
                what: "column metadata",
                offset: c.offset(),
                reason: format!("{} bytes left over after {n} columns", meta.remaining()),
            });
        }
        let null_bits = c.bytes(n.div_ceil(8), "NULL bitmap")?;
        let nullable = (0..n)
            .map(|i| null_bits[i / 8] & (1 << (i % 8)) != 0)
            .collect();
        let mut map = TableMap {
            table_id,
            schema,
            table,
            unsigned: vec![None; n],
            columns,
            nullable,
            column_names: None,
        };
        map.read_optional_metadata(&mut c)?;
        Ok(map)
    }

    /// The type-length-value fields after the NULL bitmap; only signedness and column
    /// names are kept (others, such as charsets and ENUM members, come from the schema).
    fn read_optional_metadata(&mut self, c: &mut Cursor<'_>) -> Result<(), DecodeError> {
        const SIGNEDNESS: u8 = 1;
        const COLUMN_NAME: u8 = 4;
        while !c.is_empty() {
            let kind = c.u8("optional metadata type")?;
            let len = c.lenenc("optional metadata length")?;
            let len = c.len_within(len, "optional metadata")?;
            let mut field = Cursor::new(c.bytes(len, "optional metadata")?);
            match kind {
                SIGNEDNESS => {
                    let bits = field.rest();
                    let numeric = self
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| m.is_numeric());
                    for (bit, (i, _)) in numeric.enumerate() {
                        let byte = bits.get(bit / 8).copied().unwrap_or(0);
                        self.unsigned[i] = Some(byte & (0x80 >> (bit % 8)) != 0);
                    }
                }
                COLUMN_NAME => {
                    let mut names = Vec::with_capacity(self.columns.len());
                    while !field.is_empty() {
                        let len = field.lenenc("column name length")?;
                        let len = field.len_within(len, "column name")?;
                        names.push(
                            String::from_utf8_lossy(field.bytes(len, "column name")?).into_owned(),
                        );
                    }
                    self.column_names = Some(names);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn name(c: &mut Cursor<'_>, what: &'static str) -> Result<String, DecodeError> {
    let len = usize::from(c.u8(what)?);
    let bytes = c.bytes(len, what)?;
    c.skip(1, what)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn with_column(e: DecodeError, column: usize) -> DecodeError {
    match e {
        DecodeError::Unsupported(what) => {
            DecodeError::Unsupported(format!("{what} (column {})", column + 1))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TABLE_MAP body for `app.t` with the given types and metadata.
    fn body(types: &[u8], meta: &[u8], null_bits: &[u8], optional: &[u8]) -> Vec<u8> {
        let mut b = vec![18, 0, 0, 0, 0, 0, 1, 0];
        b.extend([3]);
        b.extend(b"app\0");
        b.extend([1]);
        b.extend(b"t\0");
        b.push(types.len() as u8);
        b.extend(types);
        b.push(meta.len() as u8);
        b.extend(meta);
        b.extend(null_bits);
        b.extend(optional);
        b
    }

    #[test]
    fn decodes_every_layout() {
        use code::*;
        let types = [
            TINY, LONGLONG, NEWDECIMAL, VARCHAR, STRING, STRING, STRING, BLOB, TIME2, BIT,
            DATETIME2, YEAR,
        ];
        let meta = [
            65, 30, // DECIMAL(65,30)
            0x2c, 0x01, // VARCHAR max 300 bytes
            254, 16, // CHAR(16) / BINARY(16)
            247, 1, // ENUM, 1 byte
            248, 2, // SET, 2 bytes
            4, // LONGBLOB
            2, // TIME(2)
            1, 1, // BIT(9): 1 byte + 1 bit
            6, // DATETIME(6)
        ];
        let map =
            TableMap::decode(&body(&types, &meta, &[0b1111_1110, 0b0000_1111], &[]), 6).unwrap();
        assert_eq!(
            (map.table_id, map.schema.as_str(), map.table.as_str()),
            (18, "app", "t")
        );
        assert_eq!(
            map.columns,
            [
                ColumnMeta::Int { bytes: 1 },
                ColumnMeta::Int { bytes: 8 },
                ColumnMeta::Decimal {
                    precision: 65,
                    scale: 30
                },
                ColumnMeta::VarString { max_len: 300 },
                ColumnMeta::String { max_len: 16 },
                ColumnMeta::Enum { bytes: 1 },
                ColumnMeta::Set { bytes: 2 },
                ColumnMeta::Blob { len_bytes: 4 },
                ColumnMeta::Time2 { fsp: 2 },
                ColumnMeta::Bit { bits: 9 },
                ColumnMeta::DateTime2 { fsp: 6 },
                ColumnMeta::Year,
            ]
        );
        assert_eq!(map.nullable[..2], [false, true]);
        assert!(map.nullable[11]);
        assert!(map.unsigned.iter().all(Option::is_none));
    }

    #[test]
    fn long_char_lengths_borrow_type_bits() {
        // CHAR(255) in utf8mb4 = 1020 bytes: 0xfe ^ ((1020 >> 4) & 0x30), 1020 & 0xff
        let b0 = 0xfe ^ ((1020u16 >> 4) as u8 & 0x30);
        let map = TableMap::decode(
            &body(&[code::STRING], &[b0, (1020 & 0xff) as u8], &[0], &[]),
            6,
        )
        .unwrap();
        assert_eq!(map.columns, [ColumnMeta::String { max_len: 1020 }]);
    }

    #[test]
    fn optional_signedness_and_names() {
        use code::*;
        // SIGNEDNESS over the numeric columns (TINY, LONG): second is unsigned.
        // COLUMN_NAME: "a", "b", "c".
        let optional = [1, 1, 0b0100_0000, 4, 6, 1, b'a', 1, b'b', 1, b'c'];
        let map =
            TableMap::decode(&body(&[TINY, VARCHAR, LONG], &[10, 0], &[0], &optional), 6).unwrap();
        assert_eq!(map.unsigned, [Some(false), None, Some(true)]);
        assert_eq!(map.column_names.unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn bad_maps_are_errors_not_panics() {
        let good = body(&[code::VARCHAR], &[10, 0], &[0], &[]);
        for cut in 0..good.len() {
            assert!(TableMap::decode(&good[..cut], 6).is_err(), "cut at {cut}");
        }
        let e = TableMap::decode(&body(&[99], &[], &[0], &[]), 6).unwrap_err();
        assert_eq!(e.to_string(), "unsupported: column type code 99 (column 1)");
        let e = TableMap::decode(&body(&[code::NEWDECIMAL], &[70, 2], &[0], &[]), 6).unwrap_err();
        assert!(e.to_string().contains("DECIMAL(70,2)"), "{e}");
        let e = TableMap::decode(&body(&[code::TINY], &[1], &[0], &[]), 6).unwrap_err();
        assert!(e.to_string().contains("left over"), "{e}");
    }
}
