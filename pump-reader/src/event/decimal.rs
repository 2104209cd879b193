//! DECIMAL in row images: MySQL's packed binary decimal, turned into exact text.
//!
//! Digits are stored in groups of nine per 4-byte big-endian word, the integer part's
//! leftover digits first and the fraction's leftover digits last, each leftover in the
//! fewest bytes that hold it. The first byte's top bit is the sign (set for positive); a
//! negative number has every byte inverted.

use super::{Cursor, DecodeError};

/// Bytes that hold 0 to 9 decimal digits.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const DIGITS_PER_WORD: usize = 9;

/// Bytes a DECIMAL(precision, scale) value takes in a row image.
pub fn packed_len(precision: u8, scale: u8) -> usize {
    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);
    (intg / DIGITS_PER_WORD) * 4
        + DIG2BYTES[intg % DIGITS_PER_WORD]
        + (frac / DIGITS_PER_WORD) * 4
        + DIG2BYTES[frac % DIGITS_PER_WORD]
}

/// Reads a DECIMAL(precision, scale) and returns it as text: `-12.340`, `0.000001`, `0`.
/// The scale's digits are all printed, as the server prints them.
pub fn decode(c: &mut Cursor<'_>, precision: u8, scale: u8) -> Result<String, DecodeError> {
    let start = c.offset();
    let raw = c.bytes(packed_len(precision, scale), "DECIMAL value")?;
    if raw.is_empty() {
        return Ok("0".into());
    }
    let negative = raw[0] & 0x80 == 0;
    let mask = if negative { 0xff } else { 0x00 };
    let mut bytes: Vec<u8> = raw.iter().map(|b| b ^ mask).collect();
    bytes[0] ^= 0x80;

    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);
    let mut parts = Cursor::new(&bytes);
    let bad = |reason: String| DecodeError::Invalid {
        what: "DECIMAL value",
        offset: start,
        reason,
    };
    let mut group = |digits: usize| -> Result<String, DecodeError> {
        let n = DIG2BYTES[digits];
        let value = parts.uint_be(n, "DECIMAL digits")?;
        if value >= 10u64.pow(digits as u32) {
            return Err(bad(format!("{value} does not fit in {digits} digits")));
        }
        Ok(format!("{value:0digits$}"))
    };

    let mut int_digits = String::with_capacity(intg);
    if intg % DIGITS_PER_WORD > 0 {
        int_digits.push_str(&group(intg % DIGITS_PER_WORD)?);
    }
    for _ in 0..intg / DIGITS_PER_WORD {
        int_digits.push_str(&group(DIGITS_PER_WORD)?);
    }
    let mut frac_digits = String::with_capacity(frac);
    for _ in 0..frac / DIGITS_PER_WORD {
        frac_digits.push_str(&group(DIGITS_PER_WORD)?);
    }
    if frac % DIGITS_PER_WORD > 0 {
        frac_digits.push_str(&group(frac % DIGITS_PER_WORD)?);
    }

    let int_part = int_digits.trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let is_zero = int_part == "0" && frac_digits.bytes().all(|d| d == b'0');
    let mut text = String::with_capacity(int_part.len() + frac_digits.len() + 2);
    if negative && !is_zero {
        text.push('-');
    }
    text.push_str(int_part);
    if frac > 0 {
        text.push('.');
        text.push_str(&frac_digits);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `text` as DECIMAL(precision, scale), the way the server does (test oracle).
    fn encode(text: &str, precision: u8, scale: u8) -> Vec<u8> {
        let negative = text.starts_with('-');
        let text = text.trim_start_matches('-');
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let intg = usize::from(precision - scale);
        let frac_n = usize::from(scale);
        let int = if intg == 0 {
            String::new()
        } else {
            format!("{int:0>intg$}")
        };
        let frac = format!("{frac:0<frac_n$}");
        let mut out = Vec::new();
        let mut push = |digits: &str| {
            if digits.is_empty() {
                return;
            }
            let n = DIG2BYTES[digits.len()];
            let v: u64 = digits.parse().unwrap();
            out.extend(&v.to_be_bytes()[8 - n..]);
        };
        let lead = intg % 9;
        push(&int[..lead]);
        for w in int.as_bytes()[lead..].chunks(9) {
            push(std::str::from_utf8(w).unwrap());
        }
        for w in frac.as_bytes().chunks(9) {
            push(std::str::from_utf8(w).unwrap());
        }
        out[0] ^= 0x80;
        if negative {
            out.iter_mut().for_each(|b| *b ^= 0xff);
        }
        out
    }

    fn round_trip(text: &str, precision: u8, scale: u8) -> String {
        let bytes = encode(text, precision, scale);
        assert_eq!(bytes.len(), packed_len(precision, scale), "{text}");
        let mut c = Cursor::new(&bytes);
        let out = decode(&mut c, precision, scale).unwrap();
        assert!(c.is_empty());
        out
    }

    #[test]
    fn known_server_bytes() {
        // DECIMAL(10,2) 1234.56 as MySQL documents it: 80 00 04 d2 38
        let mut c = Cursor::new(&[0x80, 0x00, 0x04, 0xd2, 0x38]);
        assert_eq!(decode(&mut c, 10, 2).unwrap(), "1234.56");
        // -1234.56 is the same with every byte inverted.
        let mut c = Cursor::new(&[0x7f, 0xff, 0xfb, 0x2d, 0xc7]);
        assert_eq!(decode(&mut c, 10, 2).unwrap(), "-1234.56");
    }

    #[test]
    fn extremes_round_trip() {
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        for (text, p, s) in [
            ("0.000000000000000000000000000000", 65, 30),
            (max.as_str(), 65, 30),
            (&format!("-{max}"), 65, 30),
            ("0.000000000000000000000000000001", 65, 30),
            (
                "12345678901234567890123456789012345.123456789012345678901234567890",
                65,
                30,
            ),
            ("-1", 1, 0),
            ("9", 1, 0),
            ("0.5", 1, 1),
            ("-0.5", 1, 1),
            (
                "99999999999999999999999999999999999999999999999999999999999999999",
                65,
                0,
            ),
            ("123456789", 9, 0),
            ("1234567890", 10, 0),
            ("-0.000000001", 10, 9),
        ] {
            assert_eq!(round_trip(text, p, s), text, "DECIMAL({p},{s})");
        }
    }

    #[test]
    fn zero_is_never_negative_and_leading_zeros_go() {
        assert_eq!(round_trip("-0.00", 5, 2), "0.00");
        assert_eq!(round_trip("7.10", 5, 2), "7.10");
        assert_eq!(round_trip("0.10", 5, 2), "0.10");
    }

    #[test]
    fn corrupt_digits_and_short_input_are_errors() {
        let mut c = Cursor::new(&[0x80, 0x00, 0x04]);
        assert!(decode(&mut c, 10, 2).is_err());
        // A 1-byte leading group holding 99 where one digit fits.
        let mut c = Cursor::new(&[0x80 | 99]);
        assert!(decode(&mut c, 1, 0).is_err());
    }
}
