//! DATE, TIME, DATETIME and TIMESTAMP in row images, old formats and MySQL 5.6's
//! (`TIME2`, `DATETIME2`, `TIMESTAMP2`, with fractional seconds).

use super::cell::Cell;
use super::{Cursor, DecodeError};

/// Bytes of the fraction for a fractional seconds precision.
fn frac_bytes(fsp: u8) -> usize {
    usize::from(fsp).div_ceil(2)
}

/// The fraction of a `*2` temporal type as microseconds.
fn read_frac(c: &mut Cursor<'_>, fsp: u8) -> Result<u32, DecodeError> {
    let n = frac_bytes(fsp);
    let start = c.offset();
    let v = c.uint_be(n, "fractional seconds")? as u32;
    let (max, scale) = match n {
        0 => (0, 0),
        1 => (99, 10_000),
        2 => (9_999, 100),
        _ => (999_999, 1),
    };
    if v > max {
        return Err(bad_fraction(start, i64::from(v)));
    }
    Ok(v * scale)
}

fn bad_fraction(offset: usize, value: i64) -> DecodeError {
    DecodeError::Invalid {
        what: "fractional seconds",
        offset,
        reason: format!("{value} is out of range"),
    }
}

pub fn date(c: &mut Cursor<'_>) -> Result<Cell, DecodeError> {
    let v = c.uint_le(3, "DATE value")?;
    Ok(Cell::Date {
        year: (v >> 9) as u16,
        month: ((v >> 5) & 15) as u8,
        day: (v & 31) as u8,
    })
}

pub fn time_old(c: &mut Cursor<'_>) -> Result<Cell, DecodeError> {
    let raw = c.uint_le(3, "TIME value")?;
    let v = ((raw << 40) as i64) >> 40; // sign-extend 24 bits
    let abs = v.unsigned_abs();
    Ok(Cell::Time {
        negative: v < 0,
        hours: (abs / 10_000) as u16,
        minutes: ((abs / 100) % 100) as u8,
        seconds: (abs % 100) as u8,
        micros: 0,
    })
}

/// TIME2: 3 bytes big-endian offset by 0x800000 (hours, minutes, seconds packed), then
/// the fraction. Negative values with a fraction borrow from the integer part.
pub fn time2(c: &mut Cursor<'_>, fsp: u8) -> Result<Cell, DecodeError> {
    const INT_OFS: i64 = 0x80_0000;
    const OFS: i64 = 0x8000_0000_0000;
    let packed: i64 = match frac_bytes(fsp) {
        0 => (c.uint_be(3, "TIME value")? as i64 - INT_OFS) << 24,
        1 => {
            let mut int = c.uint_be(3, "TIME value")? as i64 - INT_OFS;
            let at = c.offset();
            let mut frac = c.uint_be(1, "TIME fraction")? as i64;
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x100;
            }
            if frac.abs() > 99 {
                return Err(bad_fraction(at, frac));
            }
            (int << 24) + frac * 10_000
        }
        2 => {
            let mut int = c.uint_be(3, "TIME value")? as i64 - INT_OFS;
            let at = c.offset();
            let mut frac = c.uint_be(2, "TIME fraction")? as i64;
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x1_0000;
            }
            if frac.abs() > 9_999 {
                return Err(bad_fraction(at, frac));
            }
            (int << 24) + frac * 100
        }
        _ => {
            let at = c.offset();
            let packed = c.uint_be(6, "TIME value")? as i64 - OFS;
            if packed.unsigned_abs() & 0xff_ffff > 999_999 {
                return Err(bad_fraction(at, packed));
            }
            packed
        }
    };
    let negative = packed < 0;
    let abs = packed.unsigned_abs();
    let hms = abs >> 24;
    Ok(Cell::Time {
        negative,
        hours: ((hms >> 12) & 0x3ff) as u16,
        minutes: ((hms >> 6) & 0x3f) as u8,
        seconds: (hms & 0x3f) as u8,
        micros: (abs & 0xff_ffff) as u32,
    })
}

pub fn datetime_old(c: &mut Cursor<'_>) -> Result<Cell, DecodeError> {
    let v = c.u64_le("DATETIME value")?;
    let (date, time) = (v / 1_000_000, v % 1_000_000);
    Ok(Cell::DateTime {
        year: (date / 10_000) as u16,
        month: ((date / 100) % 100) as u8,
        day: (date % 100) as u8,
        hour: (time / 10_000) as u8,
        minute: ((time / 100) % 100) as u8,
        second: (time % 100) as u8,
        micros: 0,
    })
}

/// DATETIME2: 5 bytes big-endian offset by 0x8000000000 — year×13+month (17 bits), day
/// (5), hour (5), minute (6), second (6) — then the fraction.
pub fn datetime2(c: &mut Cursor<'_>, fsp: u8) -> Result<Cell, DecodeError> {
    let start = c.offset();
    let raw = c.uint_be(5, "DATETIME value")?;
    let Some(int) = raw.checked_sub(0x80_0000_0000) else {
        return Err(DecodeError::Invalid {
            what: "DATETIME value",
            offset: start,
            reason: "negative".into(),
        });
    };
    let micros = read_frac(c, fsp)?;
    let ymd = int >> 17;
    let ym = ymd >> 5;
    let hms = int & 0x1_ffff;
    Ok(Cell::DateTime {
        year: (ym / 13) as u16,
        month: (ym % 13) as u8,
        day: (ymd & 31) as u8,
        hour: (hms >> 12) as u8,
        minute: ((hms >> 6) & 63) as u8,
        second: (hms & 63) as u8,
        micros,
    })
}

pub fn timestamp_old(c: &mut Cursor<'_>) -> Result<Cell, DecodeError> {
    Ok(Cell::Timestamp {
        seconds: c.u32_le("TIMESTAMP value")?,
        micros: 0,
    })
}

/// TIMESTAMP2: seconds since the epoch (UTC), 4 bytes big-endian, then the fraction.
pub fn timestamp2(c: &mut Cursor<'_>, fsp: u8) -> Result<Cell, DecodeError> {
    let seconds = c.uint_be(4, "TIMESTAMP value")? as u32;
    Ok(Cell::Timestamp {
        seconds,
        micros: read_frac(c, fsp)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a TIME2 the way the server does (MySQL's my_time_packed_to_binary): the
    /// integer part by arithmetic shift (floor), the fraction by C's truncating remainder.
    fn encode_time2(negative: bool, h: u64, m: u64, s: u64, micros: u64, fsp: u8) -> Vec<u8> {
        let hms = (h << 12) | (m << 6) | s;
        let mut packed = ((hms << 24) + micros) as i64;
        if negative {
            packed = -packed;
        }
        let int3 = |v: i64| ((v + 0x80_0000) as u32).to_be_bytes()[1..].to_vec();
        let frac = packed % (1 << 24);
        match frac_bytes(fsp) {
            0 => int3(packed >> 24),
            1 => {
                let mut v = int3(packed >> 24);
                v.push((frac / 10_000) as i8 as u8);
                v
            }
            2 => {
                let mut v = int3(packed >> 24);
                v.extend(((frac / 100) as i16).to_be_bytes());
                v
            }
            _ => ((packed + 0x8000_0000_0000) as u64).to_be_bytes()[2..].to_vec(),
        }
    }

    fn time(negative: bool, hours: u16, minutes: u8, seconds: u8, micros: u32) -> Cell {
        Cell::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        }
    }

    #[test]
    fn time2_every_precision_and_sign() {
        let cases = [
            (false, 0, 0, 0, 0),
            (false, 838, 59, 59, 0),
            (true, 838, 59, 59, 0),
            (true, 1, 2, 3, 450_000),
            (true, 0, 0, 0, 100_000),
            (false, 12, 34, 56, 780_000),
        ];
        for fsp in 0..=6u8 {
            let unit = 10u32.pow(6 - u32::from(fsp));
            for (neg, h, m, s, micros) in cases {
                let micros = micros / unit * unit; // what this precision keeps
                let bytes = encode_time2(neg, h, m, s, u64::from(micros), fsp);
                let mut c = Cursor::new(&bytes);
                let got = time2(&mut c, fsp).unwrap();
                assert!(c.is_empty());
                let zero = h == 0 && m == 0 && s == 0 && micros == 0;
                assert_eq!(
                    got,
                    time(neg && !zero, h as u16, m as u8, s as u8, micros),
                    "fsp {fsp}"
                );
            }
        }
    }

    #[test]
    fn negative_time_with_fraction_known_bytes() {
        // '-01:02:03.45' as TIME(2), as MariaDB 10.11 wrote it.
        let mut c = Cursor::new(&[0x7f, 0xef, 0x7c, 0xd3]);
        assert_eq!(time2(&mut c, 2).unwrap(), time(true, 1, 2, 3, 450_000));
    }

    #[test]
    fn datetime2_and_timestamp2() {
        // 2024-02-29 23:59:58.123456: ym = 2024*13+2
        let ym: u64 = 2024 * 13 + 2;
        let int = (((ym << 5) | 29) << 17) | (23 << 12) | (59 << 6) | 58;
        let mut bytes = (int + 0x80_0000_0000).to_be_bytes()[3..].to_vec();
        bytes.extend(&123_456u32.to_be_bytes()[1..]);
        let mut c = Cursor::new(&bytes);
        assert_eq!(
            datetime2(&mut c, 6).unwrap(),
            Cell::DateTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 23,
                minute: 59,
                second: 58,
                micros: 123_456
            }
        );
        // The zero datetime.
        let zero = 0x80_0000_0000u64.to_be_bytes()[3..].to_vec();
        assert_eq!(
            datetime2(&mut Cursor::new(&zero), 0).unwrap(),
            Cell::DateTime {
                year: 0,
                month: 0,
                day: 0,
                hour: 0,
                minute: 0,
                second: 0,
                micros: 0
            }
        );
        assert!(
            datetime2(&mut Cursor::new(&[0, 0, 0, 0, 0]), 0).is_err(),
            "below the offset"
        );
        let mut ts = 1_700_000_000u32.to_be_bytes().to_vec();
        ts.push(12);
        assert_eq!(
            timestamp2(&mut Cursor::new(&ts), 2).unwrap(),
            Cell::Timestamp {
                seconds: 1_700_000_000,
                micros: 120_000
            }
        );
    }

    #[test]
    fn out_of_range_fractions_are_errors() {
        let mut ts = 1u32.to_be_bytes().to_vec();
        ts.push(255);
        assert!(timestamp2(&mut Cursor::new(&ts), 2).is_err());
        let mut t = vec![0x80, 0x00, 0x01];
        t.push(200); // 200 hundredths
        assert!(time2(&mut Cursor::new(&t), 2).is_err());
        let dt = [0x80, 0, 0, 0, 0, 0xff, 0xff, 0xff];
        assert!(datetime2(&mut Cursor::new(&dt), 6).is_err());
    }

    #[test]
    fn old_formats() {
        // DATE 2024-02-29: (2024 << 9) | (2 << 5) | 29
        let v: u32 = (2024 << 9) | (2 << 5) | 29;
        assert_eq!(
            date(&mut Cursor::new(&v.to_le_bytes()[..3])).unwrap(),
            Cell::Date {
                year: 2024,
                month: 2,
                day: 29
            }
        );
        // TIME -838:59:59 as -8385959 in 3 bytes.
        let t = (-8_385_959i32 as u32).to_le_bytes();
        assert_eq!(
            time_old(&mut Cursor::new(&t[..3])).unwrap(),
            time(true, 838, 59, 59, 0)
        );
        let dt = 20_240_229_235_958u64.to_le_bytes();
        assert_eq!(
            datetime_old(&mut Cursor::new(&dt)).unwrap(),
            Cell::DateTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 23,
                minute: 59,
                second: 58,
                micros: 0
            }
        );
    }
}
