//! The reader's errors. Each says where in the binlog it happened.

use std::path::PathBuf;

use crate::event::DecodeError;
use crate::position::BinlogCoords;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An event whose bytes could not be decoded.
    #[error("cannot decode the {event} event at {at}: {source}")]
    Decode {
        at: BinlogCoords,
        event: String,
        #[source]
        source: DecodeError,
    },
    /// Events in an order a well-formed binlog never has, or a feature the reader does not
    /// support (XA transactions, compressed or encrypted binlogs).
    #[error("binlog at {at}: {reason}")]
    Stream { at: BinlogCoords, reason: String },
    /// A binlog file that is not one, is cut short, or fails its checksum.
    #[error("binlog file {} at byte {offset}: {reason}", path.display())]
    File {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The upstream refused us for good: access denied, missing privileges, a setting or
    /// a request it cannot serve.
    #[error("upstream: cannot {what}: {reason}")]
    Upstream { what: String, reason: String },
    /// The upstream does not have the binlog at our position (purged, or a GTID it never
    /// had): replication cannot resume there without losing transactions.
    #[error("the upstream cannot stream from {asked}: {server}; it has {has}")]
    Unavailable {
        asked: String,
        server: String,
        has: String,
    },
    #[error("cannot read binlog file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
