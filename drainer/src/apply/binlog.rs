//! Rows applied as the upstream's own row events, in `BINLOG '…'` statements (what
//! `mariadb-binlog | mariadb` runs): the downstream applies them as its replica applies
//! row events. Its triggers do not fire (MariaDB's default, `slave_run_triggers_for_rbr =
//! NO`: the rows the upstream's triggers wrote are in the binlog already), and a
//! system-versioned table takes the row start, row end and history rows as they are.
//! Needs the `BINLOG REPLAY` privilege (or `SUPER`).
//!
//! A session must first read the events' FORMAT_DESCRIPTION ([`format_statement`]); each
//! rows event then goes with its TABLE_MAP in one statement ([`rows_statement`]), marked
//! as the last of its statement so the server closes its tables after it. Every event
//! is written again whole: header (with its size), body, CRC32.

use pump_reader::event::EventHeader;
use pump_reader::{RawEvent, RawRows, Rows};

use super::sql::Stmt;

/// The checksum algorithm byte of a FORMAT_DESCRIPTION: CRC32.
const CHECKSUM_CRC32: u8 = 1;

/// `BINLOG '…'` of the FORMAT_DESCRIPTION `rows` were written under (`None`: unknown).
pub fn format_statement(rows: &RawRows) -> Option<Stmt> {
    let format = rows.format.as_ref()?;
    let mut event = Vec::new();
    write_event(&mut event, format, &format.body, Some(CHECKSUM_CRC32));
    Some(statement(&event))
}

/// `BINLOG '…'` of `rows`' TABLE_MAP and rows event, the latter marked as its
/// statement's last.
pub fn rows_statement(rows: &RawRows) -> Stmt {
    let mut events = Vec::new();
    write_event(&mut events, &rows.table_map, &rows.table_map.body, None);
    let mut body = rows.rows.body.to_vec();
    let at = rows.table_id_len;
    if let Some(flags) = body.get_mut(at..at + 2) {
        let value = u16::from_le_bytes([flags[0], flags[1]]) | Rows::STMT_END;
        flags.copy_from_slice(&value.to_le_bytes());
    }
    write_event(&mut events, &rows.rows, &body, None);
    statement(&events)
}

fn statement(events: &[u8]) -> Stmt {
    let mut sql = String::with_capacity(events.len() * 4 / 3 + 16);
    sql.push_str("BINLOG '");
    base64(events, &mut sql);
    sql.push('\'');
    Stmt {
        sql,
        params: Vec::new(),
        check: None,
    }
}

/// Appends `event` with `body`: its header (the size recomputed), the body, the
/// checksum algorithm byte of a FORMAT_DESCRIPTION, then the CRC32 of all that.
fn write_event(out: &mut Vec<u8>, event: &RawEvent, body: &[u8], algorithm: Option<u8>) {
    let start = out.len();
    let h: &EventHeader = &event.header;
    let size = EventHeader::LEN + body.len() + usize::from(algorithm.is_some()) + 4;
    out.extend(h.timestamp.to_le_bytes());
    out.push(h.kind);
    out.extend(h.server_id.to_le_bytes());
    out.extend((size as u32).to_le_bytes());
    out.extend(h.log_pos.to_le_bytes());
    out.extend(h.flags.to_le_bytes());
    out.extend_from_slice(body);
    if let Some(a) = algorithm {
        out.push(a);
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend(crc.to_le_bytes());
}

/// Standard base64, padded.
fn base64(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_the_standard_says() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xff, 0xfe, 0x00], "//4A"),
        ] {
            let mut out = String::new();
            base64(input, &mut out);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn events_are_written_whole_with_their_checksum() {
        let header = EventHeader {
            timestamp: 1,
            kind: 19,
            server_id: 7,
            size: 0,
            log_pos: 100,
            flags: 0,
        };
        let event = RawEvent {
            header,
            body: bytes::Bytes::from_static(b"abc"),
        };
        let mut out = Vec::new();
        write_event(&mut out, &event, &event.body, None);
        assert_eq!(out.len(), 19 + 3 + 4);
        assert_eq!(u32::from_le_bytes(out[9..13].try_into().unwrap()), 26);
        let crc = crc32fast::hash(&out[..22]);
        assert_eq!(out[22..], crc.to_le_bytes());
    }
}
