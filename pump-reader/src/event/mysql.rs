//! MySQL's GTID events: GTID (33), ANONYMOUS_GTID (34) and PREVIOUS_GTIDS (35).

use super::{Cursor, DecodeError};
use crate::position::{MysqlGtid, MysqlGtidSet, Uuid};

/// A MySQL GTID or ANONYMOUS_GTID event: starts a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlGtidEvent {
    /// `None` for ANONYMOUS_GTID (`gtid_mode = OFF`).
    pub gtid: Option<MysqlGtid>,
}

impl MysqlGtidEvent {
    pub fn decode(body: &[u8], anonymous: bool) -> Result<MysqlGtidEvent, DecodeError> {
        let mut c = Cursor::new(body);
        c.skip(1, "GTID flags")?;
        let sid: [u8; 16] = c
            .bytes(16, "GTID source id")?
            .try_into()
            .map_err(|_| DecodeError::Unsupported("GTID source id".into()))?;
        let gno = c.u64_le("GTID number")?;
        if anonymous {
            return Ok(MysqlGtidEvent { gtid: None });
        }
        if gno == 0 || gno > i64::MAX as u64 {
            return Err(DecodeError::Invalid {
                what: "GTID number",
                offset: 17,
                reason: format!("{gno} is outside 1..2^63"),
            });
        }
        Ok(MysqlGtidEvent {
            gtid: Some(MysqlGtid {
                uuid: Uuid(sid),
                tag: String::new(),
                seq: gno,
            }),
        })
    }
}

/// PREVIOUS_GTIDS: the GTID set executed before the binlog file it starts.
pub fn decode_previous_gtids(body: &[u8]) -> Result<MysqlGtidSet, DecodeError> {
    let mut c = Cursor::new(body);
    let n_sids = c.u64_le("previous GTIDs count")?;
    if n_sids >> 56 != 0 {
        return Err(DecodeError::Unsupported(
            "PREVIOUS_GTIDS in the tagged-GTID format of MySQL 8.3+".into(),
        ));
    }
    let mut set = MysqlGtidSet::new();
    for _ in 0..n_sids {
        let sid: [u8; 16] = c
            .bytes(16, "previous GTIDs source id")?
            .try_into()
            .map_err(|_| DecodeError::Unsupported("source id".into()))?;
        let n_intervals = c.u64_le("previous GTIDs interval count")?;
        if n_intervals.saturating_mul(16) > c.remaining() as u64 {
            return Err(DecodeError::Truncated {
                what: "previous GTIDs intervals",
                offset: c.offset(),
                needed: usize::try_from(n_intervals.saturating_mul(16)).unwrap_or(usize::MAX),
                left: c.remaining(),
            });
        }
        for _ in 0..n_intervals {
            let start = c.u64_le("interval start")?;
            let end = c.u64_le("interval end")?; // exclusive
            if start == 0 || end <= start || end - 1 > i64::MAX as u64 {
                return Err(DecodeError::Invalid {
                    what: "previous GTIDs interval",
                    offset: c.offset() - 16,
                    reason: format!("[{start}, {end}) is empty or starts at 0"),
                });
            }
            set.add_interval(Uuid(sid), "", start, end - 1);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: [u8; 16] = [
        0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95,
        0x62,
    ];

    #[test]
    fn gtid_event() {
        let mut body = vec![1];
        body.extend(SID);
        body.extend(23u64.to_le_bytes());
        body.extend([2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]); // logical clock
        let e = MysqlGtidEvent::decode(&body, false).unwrap();
        assert_eq!(
            e.gtid.unwrap().to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
        );
        assert_eq!(MysqlGtidEvent::decode(&body, true).unwrap().gtid, None);
        assert!(MysqlGtidEvent::decode(&body[..20], false).is_err());
    }

    #[test]
    fn previous_gtids_event() {
        let mut body = 1u64.to_le_bytes().to_vec();
        body.extend(SID);
        body.extend(2u64.to_le_bytes());
        for (s, e) in [(1u64, 6u64), (7, 8)] {
            body.extend(s.to_le_bytes());
            body.extend(e.to_le_bytes());
        }
        assert_eq!(
            decode_previous_gtids(&body).unwrap().to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7"
        );
        assert!(decode_previous_gtids(&body[..40]).is_err());
    }
}
