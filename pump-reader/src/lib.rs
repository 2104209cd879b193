//! # pump-reader: ordered, positioned transactions from an upstream binlog
//!
//! Turns the upstream's change log into whole transactions in commit order, each carrying
//! the position right after its commit, so nothing downstream has to know binlog framing.
//!
//! ## Data flow
//! ```text
//! replication stream (LiveReader) ─┐
//!                                   ├─ RawEvent ─▶ Assembler ─▶ TxnEvent (Begin, Change…, Commit | Rollback, Idle)
//! binlog file (EventFile)  ─────────┘                               └─▶ Collector ─▶ Txn
//! ```
//! Every event is decoded by this crate's own bounds-checked decoders ([`event`]): bad
//! bytes are an [`Error`] naming the event and its position, never a panic. The
//! replication connection is this crate's own too (`dump.rs`: login, registration, the
//! dump, each event read into one buffer of its size and its checksum checked), so an
//! event is never held twice, whatever its size; mysql_async serves the other
//! statements (positions, what the server has). mysql_common's binlog decoding is not
//! used (see `../shared/notes/dependencies.md` for why).
//!
//! ## Transactions
//! A [`Txn`] has its GTID (if any), the originating server id, the commit timestamp, its
//! [`Position`], and its changes in order: [`Rows`] (with the TABLE_MAP's table identity
//! and column layout, before and after images as raw [`event::Cell`]s) and [`Statement`]s
//! (DDL and other statements the binlog carries as text, each its own transaction).
//! Consumers that must not hold a large transaction in memory read the stream of
//! [`TxnEvent`]s instead: the changes as they arrive, then `Commit` or `Rollback`.
//! No `Commit` is ever made up: a partial transaction ends in `Rollback` (connection lost;
//! it is sent again whole) or an error (a file that ends inside it). `next_txn` is
//! cancel-safe (what it collected is kept for the next call).
//!
//! ## Values
//! Cells are the raw form: exact bytes and numbers as written, but integers without
//! signedness, ENUM/SET as numbers, BINARY/UUID/INET6 without their trailing zero bytes,
//! TIMESTAMP as UTC epoch seconds. The `schema` crate applies the table definition in force
//! at the row's position; that is the one place those corrections live.
//!
//! ## Positions and resume
//! [`BinlogCoords`] (`file:pos`), [`MariaGtidList`] (`domain-server-seq`, one per domain)
//! and [`MysqlGtidSet`] (`uuid:1-100:200-300`) print in the server's notation and parse it
//! back; [`GtidSet`] holds either flavour; comparisons are partial (`None` = incomparable).
//! Resuming at a [`Position`] reads the transaction after it: the [`LiveReader`] does so by
//! itself after a lost connection (by GTID when it has one, or as [`ResumeBy`] says), and a
//! restart does it from the checkpointed position. A GTID state is only ever advanced from
//! a known one (a start state, GTID_LIST, PREVIOUS_GTIDS), never made up from one GTID.
//!
//! ## Errors
//! Transient failures (lost connection, silent link, server restarting) are retried by the
//! live reader with backoff and never reach the caller. What reaches the caller is
//! definite: undecodable bytes, a binlog the server no longer has ([`Error::Unavailable`],
//! with what was asked and what the server has), a login refused, unsupported features, a
//! stream that fails again and again at one position. After a definite error a reader
//! hands out nothing more.
//!
//! ## Statements, savepoints, XA
//! A [`Statement`] carries its session context ([`event::SessionVars`]: SQL mode,
//! character sets, time zone, checks) and its bytes as sent, besides its text as UTF-8
//! (from the client's character set). `SAVEPOINT` / `ROLLBACK TO` come in place
//! ([`Change::Savepoint`]). A group that prepares an XA transaction says so at its begin
//! ([`TxnStart::xa`]); its `Commit` is the `XA PREPARE`, and a later group commits or rolls
//! it back ([`Change::Xa`]). Every [`Rows`] keeps its event as written ([`RawRows`]), for a
//! consumer that replays it as `BINLOG '…'`.
//!
//! ## Not supported (definite errors when met)
//! Two-phase ALTER (`binlog_alter_two_phase`), compressed events (`log_bin_compress`, MySQL
//! transaction compression), encrypted binlogs, partial JSON updates, MariaDB COMPRESSED
//! columns, MySQL 8.3 tagged GTIDs, MariaDB's pre-5.6 fractional temporal format
//! (`mysql56_temporal_format = OFF`: its TABLE_MAP metadata fails to decode). MySQL support is tested with synthesized binlogs only: no MySQL server can be
//! installed on the project's machines.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pump_reader::Error> {
//! use pump_reader::{LiveOptions, LiveReader, StartAt, Upstream};
//! let upstream = Upstream {
//!     server: link::Server::plain("10.0.0.1", 3306, "drainer", "…"),
//!     server_id: 4001,
//! };
//! let mut reader = LiveReader::connect(upstream, StartAt::Now, LiveOptions::default()).await?;
//! loop {
//!     let txn = reader.next_txn().await?;
//!     println!("{} changes, resume at {}", txn.changes.len(), txn.position);
//! }
//! # }
//! ```

mod assemble;
mod checksum;
mod dump;
mod error;
pub mod event;
mod file;
mod live;
mod position;
mod txn;

pub use assemble::{Assembler, RawEvent};
pub use error::Error;
pub use file::{EventFile, FileReader};
pub use live::{Flavor, LiveOptions, LiveReader, ResumeBy, StartAt, Upstream};
pub use txn::{
    Change, Collector, RawRows, Rows, Savepoint, Statement, Txn, TxnEvent, TxnStart, XaOutcome, Xid,
};

pub use position::{
    BinlogCoords, Gtid, GtidSet, MariaGtid, MariaGtidList, MysqlGtid, MysqlGtidSet, Position,
    PositionError, PositionRecord, Uuid,
};
