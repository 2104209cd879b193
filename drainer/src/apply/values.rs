//! Typed values to the parameters the downstream receives, exactly.
//!
//! The applier's sessions run with `character_set_client = binary` and
//! `time_zone = '+00:00'`: text travels as the bytes stored upstream (in the column's
//! charset, so it arrives byte-exact where both sides use the same charset), and a
//! TIMESTAMP, which the binlog gives as UTC epoch seconds, is written as that UTC
//! date-time, which is the same instant.

use bytes::Bytes;
use mysql_async::Value as Plain;
use schema::Value;

/// A statement parameter. Strings share the row image's bytes and become the driver's
/// value only when the statement runs, so a statement kept for a retry holds no copy of a
/// large value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Plain(Plain),
    Shared(Bytes),
}

impl Param {
    /// The driver's value (a string is copied here, for the one call that sends it).
    pub fn value(&self) -> Plain {
        match self {
            Param::Plain(v) => v.clone(),
            Param::Shared(b) => Plain::Bytes(b.to_vec()),
        }
    }

    /// The driver's value, taking this one (only a shared string is copied).
    pub fn into_value(self) -> Plain {
        match self {
            Param::Plain(v) => v,
            Param::Shared(b) => Plain::Bytes(b.to_vec()),
        }
    }
}

/// A value the applier cannot write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write {0} downstream")]
pub struct Unwritable(pub &'static str);

/// The parameter for `value`.
pub fn param(value: &Value) -> Result<Param, Unwritable> {
    Ok(Param::Plain(match value {
        Value::Text(bytes) | Value::Bytes(bytes) => return Ok(Param::Shared(bytes.clone())),
        Value::Null => Plain::NULL,
        Value::Int(i) => Plain::Int(*i),
        Value::UInt(u) => Plain::UInt(*u),
        Value::Float(f) => Plain::Float(*f),
        Value::Double(d) => Plain::Double(*d),
        Value::Decimal(text) => Plain::Bytes(text.clone().into_bytes()),
        Value::Year(y) => Plain::UInt(u64::from(*y)),
        Value::Date { year, month, day } => Plain::Date(*year, *month, *day, 0, 0, 0, 0),
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => Plain::Time(
            *negative,
            u32::from(*hours / 24),
            (*hours % 24) as u8,
            *minutes,
            *seconds,
            *micros,
        ),
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => Plain::Date(*year, *month, *day, *hour, *minute, *second, *micros),
        Value::Timestamp {
            seconds: 0,
            micros: 0,
        } => Plain::Date(0, 0, 0, 0, 0, 0, 0),
        Value::Timestamp { seconds, micros } => {
            let (year, month, day, hour, minute, second) = utc(i64::from(*seconds));
            Plain::Date(year, month, day, hour, minute, second, *micros)
        }
        // An ENUM or SET column takes its member number or bitmask.
        Value::Enum { index, .. } => Plain::UInt(u64::from(*index)),
        Value::Set { bits, .. } => Plain::UInt(*bits),
        Value::Bit { value, .. } => Plain::UInt(*value),
        // With a binary client charset, MariaDB takes these types in their binary form
        // (the one the binlog carries), and refuses their text form.
        Value::Uuid(b) | Value::Inet6(b) => Plain::Bytes(b.to_vec()),
        Value::Inet4(b) => Plain::Bytes(b.to_vec()),
        Value::MysqlJson(_) => return Err(Unwritable("MySQL binary JSON (not decoded yet)")),
    }))
}

/// Seconds since the epoch to the UTC civil date and time (proleptic Gregorian).
pub(crate) fn utc(seconds: i64) -> (u16, u8, u8, u8, u8, u8) {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year as u16,
        month as u8,
        day as u8,
        (secs / 3600) as u8,
        (secs % 3600 / 60) as u8,
        (secs % 60) as u8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value as V;

    #[test]
    fn timestamps_become_utc_date_times() {
        assert_eq!(utc(1), (1970, 1, 1, 0, 0, 1));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc(2_147_483_647), (2038, 1, 19, 3, 14, 7));
        assert_eq!(utc(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(
            param(&Value::Timestamp {
                seconds: 2_147_483_647,
                micros: 999_999
            })
            .unwrap()
            .value(),
            V::Date(2038, 1, 19, 3, 14, 7, 999_999)
        );
        assert_eq!(
            param(&Value::Timestamp {
                seconds: 0,
                micros: 0
            })
            .unwrap()
            .value(),
            V::Date(0, 0, 0, 0, 0, 0, 0)
        );
    }

    #[test]
    fn times_carry_days_and_sign() {
        let t = Value::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 999_999,
        };
        assert_eq!(
            param(&t).unwrap().value(),
            V::Time(true, 34, 22, 59, 59, 999_999)
        );
    }

    #[test]
    fn exact_forms() {
        assert_eq!(
            param(&Value::Decimal("-0.01".into())).unwrap().value(),
            V::Bytes(b"-0.01".to_vec())
        );
        assert_eq!(
            param(&Value::Text(Bytes::from_static(&[0xe9])))
                .unwrap()
                .value(),
            V::Bytes(vec![0xe9])
        );
        let uuid = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            param(&Value::Uuid(uuid)).unwrap().value(),
            V::Bytes(uuid.to_vec()),
            "binary form"
        );
        assert_eq!(
            param(&Value::Inet4([10, 1, 2, 3])).unwrap().value(),
            V::Bytes(vec![10, 1, 2, 3])
        );
        assert_eq!(
            param(&Value::Enum {
                index: 2,
                name: Some("b".into())
            })
            .unwrap()
            .value(),
            V::UInt(2)
        );
        assert_eq!(
            param(&Value::Set {
                bits: 5,
                names: vec![]
            })
            .unwrap()
            .value(),
            V::UInt(5)
        );
        assert_eq!(
            param(&Value::Bit {
                value: u64::MAX,
                bits: 64
            })
            .unwrap()
            .value(),
            V::UInt(u64::MAX)
        );
        assert!(param(&Value::MysqlJson(Bytes::new())).is_err());
    }
}
