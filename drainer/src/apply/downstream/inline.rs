//! A transaction as one text of statements, sent in one round trip (issue 24): BEGIN, the
//! mark, the row statements with their values written as literals, the apply record and
//! COMMIT. Round trips are what the drainer's CPU goes to with one downstream
//! transaction per upstream one (each costs a send, a wake-up and a receive, and on
//! loopback the send carries the server's receive too): three or more become one.
//!
//! Literals mean what the parameters meant: the sessions run with
//! `character_set_client = binary`, so a string parameter is a binary string, and
//! `_binary X'…'` is one too (an introduced hex literal is a string in every context,
//! never a number), as is `_binary'…'`, used for printable ASCII without a quote or
//! backslash (the same under every SQL mode; half the text, and no digits to make);
//! integers and floating-point values are written exactly (a FLOAT as
//! the double it is); dates and times as their text. A value whose text would not mean
//! the same (a zero date, which strict SQL modes refuse as text) leaves the transaction
//! to the prepared statements.

use mysql_async::Value as Plain;

use crate::apply::values::Param;

/// The most text sent in one round trip (one transaction, or a worker's queue of them);
/// a larger transaction goes statement by statement. Round trips matter for small
/// transactions, and this stays far below any server's `max_allowed_packet` (MariaDB's
/// default is 16 MiB).
pub const MAX_TEXT: usize = 256 << 10;

/// `sql` with each `?` placeholder (outside quotes) replaced by its parameter's literal;
/// `None` when a value has no literal that means the same, or the counts differ.
pub(super) fn inline(sql: &str, params: &[Param], out: &mut String) -> Option<()> {
    let mut params = params.iter();
    let bytes = sql.as_bytes();
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'`' | b'\'' | b'"' => i = schema::past_quoted(bytes, i),
            b'?' => {
                out.push_str(&sql[last..i]);
                literal(params.next()?, out)?;
                i += 1;
                last = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last..]);
    params.next().is_none().then_some(())
}

/// `param` as a literal that means what the parameter did.
fn literal(param: &Param, out: &mut String) -> Option<()> {
    use std::fmt::Write;
    let value = match param {
        Param::Shared(bytes) => {
            binary(bytes, out);
            return Some(());
        }
        Param::Plain(v) => v,
    };
    match value {
        Plain::NULL => out.push_str("NULL"),
        Plain::Bytes(b) => binary(b, out),
        Plain::Int(i) => write!(out, "{i}").ok()?,
        Plain::UInt(u) => write!(out, "{u}").ok()?,
        // Exactly the double (a FLOAT's value is one): the shortest text that reads back
        // as it, in the exponent form the server reads as a double.
        Plain::Float(f) if f.is_finite() => write!(out, "{:e}", f64::from(*f)).ok()?,
        Plain::Double(d) if d.is_finite() => write!(out, "{d:e}").ok()?,
        Plain::Date(y, mo, d, h, mi, s, us) if *mo != 0 && *d != 0 => {
            write!(out, "'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'").ok()?;
        }
        Plain::Time(negative, days, h, mi, s, us) => {
            let sign = if *negative { "-" } else { "" };
            let hours = u64::from(*days) * 24 + u64::from(*h);
            write!(out, "'{sign}{hours:02}:{mi:02}:{s:02}.{us:06}'").ok()?;
        }
        _ => return None,
    }
    Some(())
}

/// `bytes` as an introduced literal, a binary string whatever the context: quoted as
/// they are when they are printable ASCII without a quote or backslash (which mean
/// the same under every SQL mode), else in hex.
fn binary(bytes: &[u8], out: &mut String) {
    // Without an early exit, so that the compiler checks many bytes at a time.
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b.wrapping_sub(b' ') <= b'~' - b' ') & (b != b'\'') & (b != b'\\')
    });
    match std::str::from_utf8(bytes) {
        Ok(text) if plain => {
            out.reserve(text.len() + 10);
            out.push_str("_binary'");
            out.push_str(text);
            out.push('\'');
        }
        _ => {
            out.push_str("_binary X'");
            hex(bytes, out);
            out.push('\'');
        }
    }
}

/// `bytes` in lower-case hex, two digits each.
pub(super) fn hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    let mut buf = [0u8; 256];
    for chunk in bytes.chunks(buf.len() / 2) {
        for (i, b) in chunk.iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        out.push_str(std::str::from_utf8(&buf[..2 * chunk.len()]).expect("hex digits are ASCII"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sql: &str, params: Vec<Param>) -> Option<String> {
        let mut out = String::new();
        inline(sql, &params, &mut out).map(|()| out)
    }

    #[test]
    fn placeholders_become_literals_outside_quotes() {
        let params = vec![
            Param::Plain(Plain::Int(-7)),
            Param::Shared(bytes::Bytes::from_static(b"a'\\?")),
            Param::Plain(Plain::NULL),
        ];
        assert_eq!(
            text("UPDATE `t?` SET a = ?, b = ? WHERE c <=> ?", params).unwrap(),
            "UPDATE `t?` SET a = -7, b = _binary X'61275c3f' WHERE c <=> NULL"
        );
        assert_eq!(text("SELECT ?", vec![]), None, "too few values");
        assert_eq!(
            text("SELECT 1", vec![Param::Plain(Plain::Int(1))]),
            None,
            "too many"
        );
    }

    #[test]
    fn every_value_is_written_exactly_or_not_at_all() {
        let one = |v: Plain| text("?", vec![Param::Plain(v)]);
        assert_eq!(one(Plain::UInt(u64::MAX)).unwrap(), "18446744073709551615");
        assert_eq!(one(Plain::Double(0.1)).unwrap(), "1e-1");
        assert_eq!(one(Plain::Double(-1.5e300)).unwrap(), "-1.5e300");
        // The FLOAT 0.1 is the double 0.100000001490116…: written as that double.
        let f = one(Plain::Float(0.1)).unwrap();
        assert_eq!(f.parse::<f64>().unwrap() as f32, 0.1f32);
        assert_eq!(f, "1.0000000149011612e-1");
        assert_eq!(one(Plain::Double(f64::NAN)), None);
        assert_eq!(
            one(Plain::Date(2026, 12, 6, 1, 2, 3, 45)).unwrap(),
            "'2026-12-06 01:02:03.000045'"
        );
        assert_eq!(one(Plain::Date(0, 0, 0, 0, 0, 0, 0)), None, "a zero date");
        assert_eq!(
            one(Plain::Time(true, 1, 2, 3, 4, 5)).unwrap(),
            "'-26:03:04.000005'"
        );
        assert_eq!(one(Plain::Bytes(vec![0, 255])).unwrap(), "_binary X'00ff'");
        // Printable ASCII goes as it is; a quote, a backslash, a control character or
        // anything past ASCII sends the value in hex.
        assert_eq!(
            one(Plain::Bytes(b"12-ab ~".to_vec())).unwrap(),
            "_binary'12-ab ~'"
        );
        assert_eq!(
            one(Plain::Bytes(b"a\\b".to_vec())).unwrap(),
            "_binary X'615c62'"
        );
        assert_eq!(
            one(Plain::Bytes(b"a\tb".to_vec())).unwrap(),
            "_binary X'610962'"
        );
        assert_eq!(
            one(Plain::Bytes("é".as_bytes().to_vec())).unwrap(),
            "_binary X'c3a9'"
        );
        assert_eq!(one(Plain::Bytes(Vec::new())).unwrap(), "_binary''");
        let long: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let mut expected = String::from("_binary X'");
        for b in &long {
            expected.push_str(&format!("{b:02x}"));
        }
        expected.push('\'');
        assert_eq!(one(Plain::Bytes(long)).unwrap(), expected);
    }
}
