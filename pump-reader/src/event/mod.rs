//! Binlog events: the common header, and decoders for each event family this crate uses.
//!
//! Every decoder takes an event body (the bytes after the 19-byte header, checksum
//! removed) and returns a typed event or a [`DecodeError`]; none of them can panic on bad
//! bytes. The same decoders serve the replication stream and binlog files.

mod cell;
mod control;
mod cursor;
mod decimal;
mod mariadb;
mod mysql;
pub(crate) mod rows;
mod session;
mod table_map;
mod temporal;

use std::fmt;

pub use cell::Cell;
pub use control::{decode_xid, FormatDescription, Query, QueryControl, Rotate};
pub(crate) use cursor::Cursor;
pub use mariadb::{
    decode_annotate_rows, decode_binlog_checkpoint, decode_gtid_list, MariaGtidEvent,
    MariaGtidFlags,
};
pub use mysql::{decode_previous_gtids, MysqlGtidEvent};
pub use rows::{RowChange, RowsKind};
pub use session::{
    charset_of, decode_text, SessionVars, Undecodable, MODE_ANSI_QUOTES, MODE_NO_BACKSLASH_ESCAPES,
    MODE_ORACLE,
};
pub use table_map::{ColumnMeta, TableMap};

/// Why an event body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated at byte {offset} reading {what}: needed {needed} bytes, {left} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        left: usize,
    },
    #[error("invalid {what} at byte {offset}: {reason}")]
    Invalid {
        what: &'static str,
        offset: usize,
        reason: String,
    },
    /// Bytes the server writes that this crate cannot turn into rows (compressed events,
    /// encrypted binlogs, a column type it does not know).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Event type codes (`Log_event_type`) this crate handles or names.
pub mod kind {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const INTVAR: u8 = 5;
    pub const RAND: u8 = 13;
    pub const USER_VAR: u8 = 14;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    pub const IGNORABLE: u8 = 28;
    pub const ROWS_QUERY: u8 = 29;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const MYSQL_GTID: u8 = 33;
    pub const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub const MYSQL_PREVIOUS_GTIDS: u8 = 35;
    pub const TRANSACTION_CONTEXT: u8 = 36;
    pub const VIEW_CHANGE: u8 = 37;
    pub const XA_PREPARE: u8 = 38;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const HEARTBEAT_V2: u8 = 41;
    pub const MYSQL_GTID_TAGGED: u8 = 42;
    pub const MARIA_ANNOTATE_ROWS: u8 = 160;
    pub const MARIA_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIA_GTID: u8 = 162;
    pub const MARIA_GTID_LIST: u8 = 163;
    pub const MARIA_START_ENCRYPTION: u8 = 164;
    pub const MARIA_QUERY_COMPRESSED: u8 = 165;
    /// 166–171: MariaDB's compressed row events (`log_bin_compress = ON`).
    pub const MARIA_ROWS_COMPRESSED_FIRST: u8 = 166;
    pub const MARIA_ROWS_COMPRESSED_LAST: u8 = 171;
}

/// The 19-byte header every binlog event starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// Seconds since the epoch when the statement began (the commit time for XID events).
    pub timestamp: u32,
    pub kind: u8,
    /// The server that originally wrote the event.
    pub server_id: u32,
    /// The whole event, header and checksum included.
    pub size: u32,
    /// The position right after this event in its binlog file (0 for artificial events).
    pub log_pos: u32,
    pub flags: u16,
}

impl EventHeader {
    pub const LEN: usize = 19;
    /// Set on events the server makes up for the stream (the first ROTATE, say).
    pub const FLAG_ARTIFICIAL: u16 = 0x20;
    /// Set on events a reader that does not know them may skip.
    pub const FLAG_IGNORABLE: u16 = 0x80;

    pub fn decode(bytes: &[u8]) -> Result<EventHeader, DecodeError> {
        let mut c = Cursor::new(bytes);
        Ok(EventHeader {
            timestamp: c.u32_le("event header timestamp")?,
            kind: c.u8("event header type")?,
            server_id: c.u32_le("event header server id")?,
            size: c.u32_le("event header size")?,
            log_pos: c.u32_le("event header log position")?,
            flags: c.u16_le("event header flags")?,
        })
    }

    pub fn is_artificial(&self) -> bool {
        self.flags & Self::FLAG_ARTIFICIAL != 0 || self.log_pos == 0
    }
}

/// An event's name for messages: `TABLE_MAP (19)`.
pub struct KindName(pub u8);

impl fmt::Display for KindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use kind::*;
        let name = match self.0 {
            QUERY => "QUERY",
            STOP => "STOP",
            ROTATE => "ROTATE",
            FORMAT_DESCRIPTION => "FORMAT_DESCRIPTION",
            XID => "XID",
            TABLE_MAP => "TABLE_MAP",
            WRITE_ROWS_V1 | WRITE_ROWS_V2 => "WRITE_ROWS",
            UPDATE_ROWS_V1 | UPDATE_ROWS_V2 => "UPDATE_ROWS",
            DELETE_ROWS_V1 | DELETE_ROWS_V2 => "DELETE_ROWS",
            PARTIAL_UPDATE_ROWS => "PARTIAL_UPDATE_ROWS",
            HEARTBEAT | HEARTBEAT_V2 => "HEARTBEAT",
            MYSQL_GTID | MYSQL_GTID_TAGGED => "GTID",
            MYSQL_ANONYMOUS_GTID => "ANONYMOUS_GTID",
            MYSQL_PREVIOUS_GTIDS => "PREVIOUS_GTIDS",
            XA_PREPARE => "XA_PREPARE",
            TRANSACTION_PAYLOAD => "TRANSACTION_PAYLOAD",
            INCIDENT => "INCIDENT",
            MARIA_ANNOTATE_ROWS => "ANNOTATE_ROWS",
            MARIA_BINLOG_CHECKPOINT => "BINLOG_CHECKPOINT",
            MARIA_GTID => "GTID",
            MARIA_GTID_LIST => "GTID_LIST",
            MARIA_START_ENCRYPTION => "START_ENCRYPTION",
            MARIA_QUERY_COMPRESSED => "QUERY_COMPRESSED",
            MARIA_ROWS_COMPRESSED_FIRST..=MARIA_ROWS_COMPRESSED_LAST => "ROWS_COMPRESSED",
            _ => "event",
        };
        write!(f, "{name} ({})", self.0)
    }
}
