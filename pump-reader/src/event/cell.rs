//! One column value of a row image, as the binlog stores it.
//!
//! A [`Cell`] is the raw form: exact, but not yet interpreted where the binlog alone is
//! ambiguous. Integers carry their bits and width, not their signedness (MariaDB's default
//! `binlog_row_metadata = NO_LOG` does not log it); ENUM and SET carry member numbers, not
//! names; strings carry bytes, not a charset; BINARY(n), and MariaDB's UUID and INET6
//! (stored like BINARY(16)), arrive without their trailing zero bytes. The `schema` crate turns cells into typed values with the table definition in
//! force at the row's position; that is the one place those corrections live.

use bytes::Bytes;

use super::decimal;
use super::table_map::ColumnMeta;
use super::temporal;
use super::{Cursor, DecodeError};

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// The column is not in this row image (`binlog_row_image` other than FULL).
    Absent,
    /// An integer of `bytes` bytes (1, 2, 3, 4 or 8), its bits zero-extended into `bits`.
    Int {
        bits: u64,
        bytes: u8,
    },
    Float(f32),
    Double(f64),
    /// DECIMAL as exact text, all scale digits printed: `-12.340`.
    Decimal(String),
    /// 0 (the zero year) or 1901–2155.
    Year(u16),
    /// Zero parts allowed (`0000-00-00`, `2024-00-00`).
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
    /// Seconds since the epoch, UTC (0 is the zero timestamp).
    Timestamp {
        seconds: u32,
        micros: u32,
    },
    /// CHAR, VARCHAR, TEXT, BINARY, VARBINARY, BLOB, MariaDB's JSON (text), GEOMETRY,
    /// MariaDB's UUID and INET6 (16 bytes): the stored bytes.
    Bytes(Bytes),
    /// ENUM member number, 1-based (0 is the empty string of an invalid value).
    Enum(u16),
    /// SET members as a bitmask, bit 0 for the first member.
    Set(u64),
    Bit(u64),
    /// MySQL's binary JSON, undecoded.
    MysqlJson(Bytes),
}

impl Cell {
    /// The integer read as signed (two's complement at its width).
    pub fn as_signed(&self) -> Option<i64> {
        match *self {
            Cell::Int { bits, bytes } => {
                let shift = 64 - 8 * u32::from(bytes);
                Some(((bits << shift) as i64) >> shift)
            }
            _ => None,
        }
    }

    /// The integer read as unsigned.
    pub fn as_unsigned(&self) -> Option<u64> {
        match *self {
            Cell::Int { bits, .. } => Some(bits),
            _ => None,
        }
    }
}

/// Reads one non-NULL value laid out as `meta`. `body` is the whole event body the cursor
/// reads, so byte values can share its buffer instead of being copied.
pub(crate) fn decode(
    meta: ColumnMeta,
    c: &mut Cursor<'_>,
    body: &Bytes,
) -> Result<Cell, DecodeError> {
    let bytes_of =
        |c: &mut Cursor<'_>, len: usize, what: &'static str| -> Result<Bytes, DecodeError> {
            let start = c.offset();
            c.skip(len, what)?;
            Ok(body.slice(start..start + len))
        };
    Ok(match meta {
        ColumnMeta::Int { bytes } => Cell::Int {
            bits: c.uint_le(usize::from(bytes), "integer value")?,
            bytes,
        },
        ColumnMeta::Float => Cell::Float(f32::from_bits(c.u32_le("FLOAT value")?)),
        ColumnMeta::Double => Cell::Double(f64::from_bits(c.u64_le("DOUBLE value")?)),
        ColumnMeta::Decimal { precision, scale } => {
            Cell::Decimal(decimal::decode(c, precision, scale)?)
        }
        ColumnMeta::Year => match c.u8("YEAR value")? {
            0 => Cell::Year(0),
            y => Cell::Year(1900 + u16::from(y)),
        },
        ColumnMeta::Date => temporal::date(c)?,
        ColumnMeta::TimeOld => temporal::time_old(c)?,
        ColumnMeta::Time2 { fsp } => temporal::time2(c, fsp)?,
        ColumnMeta::DateTimeOld => temporal::datetime_old(c)?,
        ColumnMeta::DateTime2 { fsp } => temporal::datetime2(c, fsp)?,
        ColumnMeta::TimestampOld => temporal::timestamp_old(c)?,
        ColumnMeta::Timestamp2 { fsp } => temporal::timestamp2(c, fsp)?,
        ColumnMeta::VarString { max_len } | ColumnMeta::String { max_len } => {
            let len_bytes = if max_len < 256 { 1 } else { 2 };
            let len = c.uint_le(len_bytes, "string length")?;
            let len = c.len_within(len, "string value")?;
            Cell::Bytes(bytes_of(c, len, "string value")?)
        }
        ColumnMeta::Blob { len_bytes } | ColumnMeta::Geometry { len_bytes } => {
            let len = c.uint_le(usize::from(len_bytes), "BLOB length")?;
            let len = c.len_within(len, "BLOB value")?;
            Cell::Bytes(bytes_of(c, len, "BLOB value")?)
        }
        ColumnMeta::MysqlJson { len_bytes } => {
            let len = c.uint_le(usize::from(len_bytes), "JSON length")?;
            let len = c.len_within(len, "JSON value")?;
            Cell::MysqlJson(bytes_of(c, len, "JSON value")?)
        }
        ColumnMeta::Enum { bytes } => {
            Cell::Enum(c.uint_le(usize::from(bytes), "ENUM value")? as u16)
        }
        ColumnMeta::Set { bytes } => Cell::Set(c.uint_le(usize::from(bytes), "SET value")?),
        ColumnMeta::Bit { bits } => {
            Cell::Bit(c.uint_be(usize::from(bits).div_ceil(8), "BIT value")?)
        }
        ColumnMeta::Null => Cell::Null,
        ColumnMeta::VarStringCompressed { .. } | ColumnMeta::BlobCompressed { .. } => {
            return Err(DecodeError::Unsupported(
                "MariaDB COMPRESSED columns (types 140/141)".into(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(meta: ColumnMeta, bytes: &[u8]) -> Cell {
        let body = Bytes::copy_from_slice(bytes);
        let mut c = Cursor::new(&body);
        let cell = decode(meta, &mut c, &body).unwrap();
        assert!(c.is_empty(), "{meta:?} left {} bytes", c.remaining());
        cell
    }

    #[test]
    fn integers_at_their_limits_both_ways() {
        for (bytes, raw, signed, unsigned) in [
            (1u8, vec![0xff], -1i64, 255u64),
            (1, vec![0x80], -128, 128),
            (2, vec![0x00, 0x80], -32768, 32768),
            (3, vec![0xff, 0xff, 0xff], -1, 16_777_215),
            (3, vec![0x00, 0x00, 0x80], -8_388_608, 8_388_608),
            (
                4,
                vec![0xff, 0xff, 0xff, 0x7f],
                2_147_483_647,
                2_147_483_647,
            ),
            (8, vec![0xff; 8], -1, u64::MAX),
            (8, vec![0, 0, 0, 0, 0, 0, 0, 0x80], i64::MIN, 1 << 63),
        ] {
            let cell = one(ColumnMeta::Int { bytes }, &raw);
            assert_eq!(cell.as_signed(), Some(signed), "{raw:?}");
            assert_eq!(cell.as_unsigned(), Some(unsigned), "{raw:?}");
        }
    }

    #[test]
    fn strings_keep_every_byte() {
        let text = "😀 ünïcode".as_bytes();
        let mut raw = vec![text.len() as u8];
        raw.extend(text);
        assert_eq!(
            one(ColumnMeta::VarString { max_len: 80 }, &raw),
            Cell::Bytes(Bytes::copy_from_slice(text))
        );
        // Two-byte length when the column may exceed 255 bytes.
        let mut raw = 3u16.to_le_bytes().to_vec();
        raw.extend([0, 0xff, 0]);
        assert_eq!(
            one(ColumnMeta::VarString { max_len: 300 }, &raw),
            Cell::Bytes(Bytes::from_static(&[0, 0xff, 0]))
        );
        let mut raw = 2u32.to_le_bytes()[..3].to_vec();
        raw.extend([1, 2]);
        assert_eq!(
            one(ColumnMeta::Blob { len_bytes: 3 }, &raw),
            Cell::Bytes(Bytes::from_static(&[1, 2]))
        );
    }

    #[test]
    fn enum_set_bit_year_float() {
        assert_eq!(
            one(ColumnMeta::Enum { bytes: 2 }, &[0x2c, 0x01]),
            Cell::Enum(300)
        );
        assert_eq!(
            one(ColumnMeta::Set { bytes: 8 }, &[0xff; 8]),
            Cell::Set(u64::MAX)
        );
        assert_eq!(
            one(ColumnMeta::Bit { bits: 9 }, &[0x01, 0x02]),
            Cell::Bit(0x0102)
        );
        assert_eq!(
            one(ColumnMeta::Bit { bits: 64 }, &[0xff; 8]),
            Cell::Bit(u64::MAX)
        );
        assert_eq!(one(ColumnMeta::Year, &[0]), Cell::Year(0));
        assert_eq!(one(ColumnMeta::Year, &[255]), Cell::Year(2155));
        assert_eq!(
            one(ColumnMeta::Float, &1.5f32.to_le_bytes()),
            Cell::Float(1.5)
        );
        assert_eq!(
            one(ColumnMeta::Double, &(-2.25f64).to_le_bytes()),
            Cell::Double(-2.25)
        );
    }

    #[test]
    fn corrupt_lengths_are_errors() {
        let body = Bytes::from_static(&[200, 1, 2]);
        let e = decode(
            ColumnMeta::VarString { max_len: 255 },
            &mut Cursor::new(&body),
            &body,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::Truncated {
                    what: "string value",
                    ..
                }
            ),
            "{e}"
        );
        let body = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert!(decode(
            ColumnMeta::Blob { len_bytes: 4 },
            &mut Cursor::new(&body),
            &body
        )
        .is_err());
        let e = decode(
            ColumnMeta::BlobCompressed { len_bytes: 2 },
            &mut Cursor::new(&body),
            &body,
        )
        .unwrap_err();
        assert!(e.to_string().contains("COMPRESSED"), "{e}");
    }
}
