//! MariaDB's own events: GTID (162), GTID_LIST (163), BINLOG_CHECKPOINT (161) and
//! ANNOTATE_ROWS (160).

use super::{Cursor, DecodeError};
use crate::position::{MariaGtid, MariaGtidList};
use crate::txn::Xid;

/// The `flags2` byte of a MariaDB GTID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtidFlags(pub u8);

impl MariaGtidFlags {
    /// A statement outside any transaction (DDL, or an auto-committed non-transactional
    /// statement): the event group is this GTID and one QUERY.
    pub const STANDALONE: u8 = 1;
    pub const GROUP_COMMIT_ID: u8 = 2;
    pub const TRANSACTIONAL: u8 = 4;
    pub const DDL: u8 = 32;
    pub const PREPARED_XA: u8 = 64;
    pub const COMPLETED_XA: u8 = 128;
    /// `flags_extra` bits of a two-phase ALTER (`binlog_alter_two_phase = ON`).
    pub const EXTRA_ALTER_PHASES: u8 = 0x02 | 0x04 | 0x08;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// A MariaDB GTID event: starts an event group (a transaction or a standalone statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaGtidEvent {
    pub seq: u64,
    pub domain: u32,
    pub flags: MariaGtidFlags,
    /// The `flags_extra` byte of MariaDB 10.8+, 0 when absent.
    pub flags_extra: u8,
    /// The XA transaction the group prepares or completes (`PREPARED_XA`,
    /// `COMPLETED_XA`).
    pub xid: Option<Xid>,
}

impl MariaGtidEvent {
    pub fn decode(body: &[u8]) -> Result<MariaGtidEvent, DecodeError> {
        let mut c = Cursor::new(body);
        let seq = c.u64_le("GTID sequence number")?;
        let domain = c.u32_le("GTID domain id")?;
        let flags = MariaGtidFlags(c.u8("GTID flags")?);
        if flags.has(MariaGtidFlags::GROUP_COMMIT_ID) {
            c.skip(8, "GTID commit id")?;
        }
        let mut xid = None;
        if flags.has(MariaGtidFlags::PREPARED_XA) || flags.has(MariaGtidFlags::COMPLETED_XA) {
            let format_id = c.u32_le("GTID XA format id")?;
            let gtrid = usize::from(c.u8("GTID XA gtrid length")?);
            let bqual = usize::from(c.u8("GTID XA bqual length")?);
            let gtrid = c.bytes(gtrid, "GTID XA gtrid")?.to_vec();
            let bqual = c.bytes(bqual, "GTID XA bqual")?.to_vec();
            xid = Some(Xid {
                format_id,
                gtrid,
                bqual,
            });
        }
        let flags_extra = if c.is_empty() {
            0
        } else {
            c.u8("GTID extra flags")?
        };
        Ok(MariaGtidEvent {
            seq,
            domain,
            flags,
            flags_extra,
            xid,
        })
    }

    /// Part of a two-phase ALTER (START, COMMIT or ROLLBACK ALTER).
    pub fn is_alter_phase(&self) -> bool {
        self.flags_extra & MariaGtidFlags::EXTRA_ALTER_PHASES != 0
    }

    /// The GTID, with the server id from the event header.
    pub fn gtid(&self, server_id: u32) -> MariaGtid {
        MariaGtid {
            domain: self.domain,
            server: server_id,
            seq: self.seq,
        }
    }

    pub fn is_standalone(&self) -> bool {
        self.flags.has(MariaGtidFlags::STANDALONE)
    }

    /// The XA transaction this group prepares (`XA PREPARE` ends it).
    pub fn prepares(&self) -> Option<&Xid> {
        self.xid
            .as_ref()
            .filter(|_| self.flags.has(MariaGtidFlags::PREPARED_XA))
    }
}

/// GTID_LIST: the GTID state at the start of a binlog file (and after a purge).
pub fn decode_gtid_list(body: &[u8]) -> Result<MariaGtidList, DecodeError> {
    let mut c = Cursor::new(body);
    let count = c.u32_le("GTID list count")? & 0x0fff_ffff;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count.saturating_mul(16) > c.remaining() {
        return Err(DecodeError::Truncated {
            what: "GTID list entries",
            offset: c.offset(),
            needed: count.saturating_mul(16),
            left: c.remaining(),
        });
    }
    let mut list = MariaGtidList::new();
    for _ in 0..count {
        let domain = c.u32_le("GTID list domain")?;
        let server = c.u32_le("GTID list server id")?;
        let seq = c.u64_le("GTID list sequence number")?;
        let gtid = MariaGtid {
            domain,
            server,
            seq,
        };
        // A list names each domain once; keep the highest if a server repeats one.
        list.merge(&std::iter::once(gtid).collect());
    }
    Ok(list)
}

/// BINLOG_CHECKPOINT: the oldest binlog file still needed for crash recovery.
pub fn decode_binlog_checkpoint(body: &[u8]) -> Result<String, DecodeError> {
    let mut c = Cursor::new(body);
    let len = u64::from(c.u32_le("binlog checkpoint name length")?);
    let len = c.len_within(len, "binlog checkpoint name")?;
    Ok(String::from_utf8_lossy(c.bytes(len, "binlog checkpoint name")?).into_owned())
}

/// ANNOTATE_ROWS: the statement that produced the following row events.
pub fn decode_annotate_rows(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_event() {
        let mut body = 42u64.to_le_bytes().to_vec();
        body.extend(3u32.to_le_bytes());
        body.push(MariaGtidFlags::STANDALONE | MariaGtidFlags::DDL);
        let e = MariaGtidEvent::decode(&body).unwrap();
        assert_eq!(e.gtid(5).to_string(), "3-5-42");
        assert!(e.is_standalone() && e.prepares().is_none());
        assert!(MariaGtidEvent::decode(&body[..12]).is_err());
        // With a commit id and the extra flags of a START ALTER.
        let mut body = 1u64.to_le_bytes().to_vec();
        body.extend(0u32.to_le_bytes());
        body.push(MariaGtidFlags::STANDALONE | MariaGtidFlags::GROUP_COMMIT_ID);
        body.extend(77u64.to_le_bytes());
        body.push(0x02);
        let e = MariaGtidEvent::decode(&body).unwrap();
        assert!(e.is_alter_phase());
    }

    #[test]
    fn gtid_list_event() {
        let mut body = (2u32 | 0x1000_0000).to_le_bytes().to_vec(); // top bits are flags
        for (d, s, n) in [(1u32, 2u32, 7u64), (0, 1, 100)] {
            body.extend(d.to_le_bytes());
            body.extend(s.to_le_bytes());
            body.extend(n.to_le_bytes());
        }
        assert_eq!(
            decode_gtid_list(&body).unwrap().to_string(),
            "0-1-100,1-2-7"
        );
        let e = decode_gtid_list(&body[..20]).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::Truncated {
                    what: "GTID list entries",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            decode_gtid_list(&[0xff, 0xff, 0xff, 0x0f]).is_err(),
            "a huge count is refused, not allocated"
        );
    }

    #[test]
    fn checkpoint_and_annotate() {
        let mut body = 13u32.to_le_bytes().to_vec();
        body.extend(b"binlog.000001");
        assert_eq!(decode_binlog_checkpoint(&body).unwrap(), "binlog.000001");
        assert!(decode_binlog_checkpoint(&body[..10]).is_err());
        assert_eq!(
            decode_annotate_rows(b"INSERT INTO t VALUES (1)"),
            "INSERT INTO t VALUES (1)"
        );
    }
}
