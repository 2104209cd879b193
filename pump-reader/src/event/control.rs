//! FORMAT_DESCRIPTION, ROTATE, QUERY and XID events.

use bytes::Bytes;

use super::session::{decode_text, SessionVars, Undecodable};
use super::{Cursor, DecodeError};

/// FORMAT_DESCRIPTION: how the events of a binlog file are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDescription {
    pub binlog_version: u16,
    /// `10.11.19-MariaDB-0+deb12u1-log`, say.
    pub server_version: String,
    pub header_len: u8,
    /// Post-header length of each event type, indexed by type code − 1.
    pub post_header_lens: Vec<u8>,
}

impl FormatDescription {
    /// Length of the FORMAT_DESCRIPTION trailer (checksum algorithm byte, then its CRC32)
    /// that servers from 5.6.1 (every MariaDB 10) write.
    pub const CHECKSUM_TRAILER: usize = 5;

    /// Decodes a body whose checksum trailer was already removed.
    pub fn decode(body: &[u8]) -> Result<FormatDescription, DecodeError> {
        let mut c = Cursor::new(body);
        let binlog_version = c.u16_le("binlog version")?;
        let version = c.bytes(50, "server version")?;
        let end = version
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(version.len());
        let server_version = String::from_utf8_lossy(&version[..end]).into_owned();
        c.skip(4, "creation timestamp")?;
        let header_len = c.u8("header length")?;
        if binlog_version != 4 || header_len != 19 {
            return Err(DecodeError::Unsupported(format!(
                "binlog version {binlog_version} with {header_len}-byte event headers \
                 (only version 4 with 19-byte headers is read)"
            )));
        }
        Ok(FormatDescription {
            binlog_version,
            server_version,
            header_len,
            post_header_lens: c.rest().to_vec(),
        })
    }

    /// Whether a server of this version writes checksum information: MySQL from 5.6.1,
    /// MariaDB from 5.3.
    pub fn server_writes_checksums(server_version: &str) -> bool {
        let numbers: Vec<u32> = server_version
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        let since: &[u32] = if server_version.contains("MariaDB") {
            &[5, 3]
        } else {
            &[5, 6, 1]
        };
        numbers.as_slice() >= since
    }

    /// The post-header length of event type `kind`, if this description lists it.
    pub fn post_header_len(&self, kind: u8) -> Option<u8> {
        self.post_header_lens
            .get(usize::from(kind).checked_sub(1)?)
            .copied()
    }
}

/// ROTATE: the stream continues in another binlog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotate {
    pub next_file: String,
    pub pos: u64,
}

impl Rotate {
    pub fn decode(body: &[u8]) -> Result<Rotate, DecodeError> {
        let mut c = Cursor::new(body);
        let pos = c.u64_le("rotate position")?;
        let name = c.rest();
        if name.is_empty() {
            return Err(DecodeError::Invalid {
                what: "rotate file name",
                offset: 8,
                reason: "empty".into(),
            });
        }
        Ok(Rotate {
            next_file: String::from_utf8_lossy(name).into_owned(),
            pos,
        })
    }
}

/// QUERY: a statement (DDL, `BEGIN`, `COMMIT`, `ROLLBACK`, XA commands, …) with the default
/// schema it ran in and the session context it ran with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub thread_id: u32,
    pub error_code: u16,
    /// The session's default schema (`USE db`), empty when none.
    pub schema: String,
    /// The statement's bytes as the client sent them, in its `character_set_client`.
    pub bytes: Bytes,
    /// The statement as UTF-8 (from the client's character set; bytes invalid there are
    /// replaced: see [`Query::text`]).
    pub statement: String,
    /// The session's status variables.
    pub vars: SessionVars,
}

impl Query {
    /// Decodes a QUERY body (`body` is the whole event body: the statement's bytes share
    /// its buffer).
    pub fn decode(body: &Bytes) -> Result<Query, DecodeError> {
        let mut c = Cursor::new(body);
        let thread_id = c.u32_le("query thread id")?;
        c.skip(4, "query execution time")?;
        let schema_len = usize::from(c.u8("query schema length")?);
        let error_code = c.u16_le("query error code")?;
        let status_len = usize::from(c.u16_le("query status variables length")?);
        let vars = SessionVars::decode(c.bytes(status_len, "query status variables")?)?;
        let schema = c.bytes(schema_len, "query schema")?;
        c.skip(1, "query schema terminator")?;
        let bytes = body.slice(c.offset()..);
        let statement = decode_text(&bytes, vars.charset.map(|c| c[0]))
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Ok(Query {
            thread_id,
            error_code,
            schema: String::from_utf8_lossy(schema).into_owned(),
            bytes,
            statement,
            vars,
        })
    }

    /// The statement as UTF-8, or why its bytes are not valid text in its character set.
    pub fn text(&self) -> Result<String, Undecodable> {
        decode_text(&self.bytes, self.vars.charset.map(|c| c[0]))
    }

    /// The statement without surrounding white space, upper-cased if it is one of the
    /// transaction-control keywords the reader acts on.
    pub fn control(&self) -> Option<QueryControl> {
        let s = self.statement.trim();
        let is = |kw: &str| s.eq_ignore_ascii_case(kw);
        if is("BEGIN") {
            Some(QueryControl::Begin)
        } else if is("COMMIT") {
            Some(QueryControl::Commit)
        } else if is("ROLLBACK") {
            Some(QueryControl::Rollback)
        } else if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("XA ")) {
            Some(QueryControl::Xa)
        } else {
            None
        }
    }
}

/// Transaction control carried by a QUERY event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryControl {
    Begin,
    Commit,
    Rollback,
    /// `XA START|END|PREPARE|COMMIT|ROLLBACK …`
    Xa,
}

/// XID: the commit of a transaction on a transactional engine; the body is its xid.
pub fn decode_xid(body: &[u8]) -> Result<u64, DecodeError> {
    Cursor::new(body).u64_le("xid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_event_body() {
        let mut body = Vec::new();
        body.extend(7u32.to_le_bytes()); // thread id
        body.extend(0u32.to_le_bytes()); // exec time
        body.push(3); // schema length
        body.extend(0u16.to_le_bytes()); // error code
        body.extend(2u16.to_le_bytes()); // status vars length
        body.extend([0xaa, 0xbb]);
        body.extend(b"app\0");
        body.extend(b"ALTER TABLE t ADD c INT");
        let body = Bytes::from(body);
        let q = Query::decode(&body).unwrap();
        assert_eq!((q.thread_id, q.schema.as_str()), (7, "app"));
        assert_eq!(q.statement, "ALTER TABLE t ADD c INT");
        assert_eq!(q.control(), None);
        let cut = Query::decode(&body.slice(..14)).unwrap_err();
        assert!(
            matches!(
                cut,
                DecodeError::Truncated {
                    what: "query status variables",
                    ..
                }
            ),
            "{cut}"
        );
    }

    #[test]
    fn transaction_control_statements() {
        let q = |s: &str| Query {
            thread_id: 0,
            error_code: 0,
            schema: String::new(),
            bytes: Bytes::copy_from_slice(s.as_bytes()),
            statement: s.into(),
            vars: SessionVars::default(),
        };
        assert_eq!(q(" begin ").control(), Some(QueryControl::Begin));
        assert_eq!(q("COMMIT").control(), Some(QueryControl::Commit));
        assert_eq!(q("ROLLBACK").control(), Some(QueryControl::Rollback));
        assert_eq!(q("XA COMMIT 'x'").control(), Some(QueryControl::Xa));
        assert_eq!(q("COMMIT_LOG").control(), None);
        assert_eq!(q("x").control(), None);
        assert_eq!(q("é€x").control(), None, "no panic on a multi-byte start");
    }

    #[test]
    fn rotate_and_xid() {
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend(b"binlog.000002");
        assert_eq!(
            Rotate::decode(&body).unwrap(),
            Rotate {
                next_file: "binlog.000002".into(),
                pos: 4
            }
        );
        assert!(Rotate::decode(&body[..8]).is_err());
        assert_eq!(decode_xid(&9u64.to_le_bytes()).unwrap(), 9);
    }

    #[test]
    fn checksum_capable_versions() {
        assert!(FormatDescription::server_writes_checksums(
            "10.11.19-MariaDB-log"
        ));
        assert!(FormatDescription::server_writes_checksums("5.6.1"));
        assert!(FormatDescription::server_writes_checksums("8.0.36"));
        assert!(!FormatDescription::server_writes_checksums("5.5.62-log"));
        assert!(FormatDescription::server_writes_checksums("5.5.68-MariaDB"));
        assert!(!FormatDescription::server_writes_checksums(
            "5.2.14-MariaDB"
        ));
        assert!(!FormatDescription::server_writes_checksums("5.6.0"));
    }
}
