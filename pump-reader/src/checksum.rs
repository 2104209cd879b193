//! A binlog's event checksums: which one its events carry (from its FORMAT_DESCRIPTION),
//! checked and taken off before any decoder sees an event. Shared by the replication
//! stream and binlog files.

use bytes::Bytes;

use crate::event::{kind, EventHeader, FormatDescription};

/// Which checksum a binlog's events carry: learned from its FORMAT_DESCRIPTION, whose
/// trailer (the algorithm, then its own CRC32) always comes; every later event then ends
/// with a CRC32 when the algorithm is CRC32. Events before the first FORMAT_DESCRIPTION
/// (the replication stream's artificial ROTATE) carry one when it matches.
#[derive(Debug, Default)]
pub(crate) struct Checksums {
    crc32: Option<bool>,
}

/// Set in the FORMAT_DESCRIPTION of a binlog file the server still writes; its checksum
/// is computed with the flag clear.
const FLAG_BINLOG_IN_USE: u8 = 0x1;
/// The checksum algorithm code for CRC32.
pub(crate) const CHECKSUM_CRC32: u8 = 1;

impl Checksums {
    /// `body` (after the header `head`) without its checksum, which must match.
    pub fn strip(
        &mut self,
        head: &[u8],
        header: &EventHeader,
        body: Bytes,
    ) -> Result<Bytes, String> {
        if header.kind == kind::FORMAT_DESCRIPTION {
            let version = body.get(2..52).unwrap_or_default();
            let end = version
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(version.len());
            let version = String::from_utf8_lossy(&version[..end]);
            if !FormatDescription::server_writes_checksums(&version) {
                self.crc32 = Some(false);
                return Ok(body);
            }
            let trailer = FormatDescription::CHECKSUM_TRAILER;
            if body.len() < trailer {
                return Err("format description too short".into());
            }
            let crc32 = body[body.len() - trailer] == CHECKSUM_CRC32;
            self.crc32 = Some(crc32);
            if crc32 {
                let mut closed = [0u8; EventHeader::LEN];
                closed.copy_from_slice(head);
                closed[17] &= !FLAG_BINLOG_IN_USE;
                // The server clears the in-use flag of the format description it sends
                // (MariaDB, not always reckoning the checksum again), and its position
                // when the dump starts past it (log_pos 0): a sent copy, checked where
                // it can be; its fields are checked as it is decoded.
                if verify(&closed, &body).is_err() && header.log_pos != 0 {
                    verify(head, &body)?;
                }
            }
            return Ok(body.slice(..body.len() - trailer));
        }
        match self.crc32 {
            Some(true) => {
                verify(head, &body)?;
                Ok(body.slice(..body.len() - 4))
            }
            Some(false) => Ok(body),
            // Before any format description: a checksum is there when it matches.
            None if body.len() >= 4 && verify(head, &body).is_ok() => {
                Ok(body.slice(..body.len() - 4))
            }
            None => Ok(body),
        }
    }
}

/// Checks the CRC32 in the last 4 bytes of `body` against `head` and the rest of `body`.
fn verify(head: &[u8], body: &[u8]) -> Result<(), String> {
    if body.len() < 4 {
        return Err("an event too short for its checksum".into());
    }
    let (data, stored) = body.split_at(body.len() - 4);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(data);
    let computed = hasher.finalize();
    let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
    if computed == stored {
        Ok(())
    } else {
        Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_checked_and_removed() {
        let header = |kind: u8| EventHeader {
            timestamp: 0,
            kind,
            server_id: 1,
            size: 0,
            log_pos: 0,
            flags: 0,
        };
        let head = [0u8; EventHeader::LEN];
        let mut body = b"abcdefgh".to_vec();
        let mut h = crc32fast::Hasher::new();
        h.update(&head);
        h.update(&body);
        body.extend(h.finalize().to_le_bytes());
        let mut c = Checksums::default();
        // Before a format description: taken off when it matches.
        assert_eq!(
            c.strip(&head, &header(kind::ROTATE), Bytes::from(body.clone()))
                .unwrap(),
            &b"abcdefgh"[..]
        );
        c.crc32 = Some(true);
        let mut bad = body.clone();
        bad[0] ^= 1;
        assert!(c
            .strip(&head, &header(kind::QUERY), Bytes::from(bad))
            .unwrap_err()
            .contains("checksum mismatch"));
    }
}
