//! # pump-reader: ordered, positioned transactions from an upstream binlog
//!
//! Owns reading the upstream's change log in commit order: the replication protocol
//! (registering as a replica with `[pump] server-id`, MariaDB and MySQL flavours) and
//! binlog files on disk; positions as types; and assembling whole transactions (`Txn`),
//! each carrying the position right after its commit, so that nothing downstream has to
//! know binlog framing.
//!
//! ## Positions
//! [`BinlogCoords`] (`file:pos`), [`MariaGtidList`] (`domain-server-seq`, one per domain)
//! and [`MysqlGtidSet`] (`uuid:1-100:200-300`) print in the server's notation and parse it
//! back; [`GtidSet`] holds either flavour. Their comparisons are partial: `None` means
//! incomparable (another server's files, states that each have something the other lacks).
//! A [`Position`] is where a transaction ends: resuming there reads the next transaction.
//!
//! Status: positions are done; the live reader, transactions and binlog files are not
//! built yet (issue 3). See `../shared/notes/dependencies.md` for what
//! mysql_async/mysql_common do and do not handle on MariaDB.

mod assemble;
mod error;
pub mod event;
mod file;
mod live;
mod position;
mod txn;

pub use assemble::{Assembler, RawEvent};
pub use error::Error;
pub use file::{EventFile, FileReader};
pub use live::{Flavor, LiveOptions, LiveReader, StartAt, Upstream};
pub use txn::{Change, Collector, Rows, Statement, Txn, TxnEvent, TxnStart};

pub use position::{
    BinlogCoords, Gtid, GtidSet, MariaGtid, MariaGtidList, MysqlGtid, MysqlGtidSet, Position,
    PositionError, Uuid,
};
