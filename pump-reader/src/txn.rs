//! What the reader hands out: transactions, whole or as a stream of their parts.

use std::sync::Arc;

use bytes::Bytes;

use crate::assemble::RawEvent;
use crate::event::{RowChange, RowsKind, SessionVars, TableMap, Undecodable};
use crate::position::{BinlogCoords, Gtid, Position};

/// The rows one rows event changed, in one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// The table and its column layout, from the TABLE_MAP event before the rows.
    pub table: Arc<TableMap>,
    pub kind: RowsKind,
    pub rows: Vec<RowChange>,
    /// The rows event's flags (see [`Rows::foreign_key_checks`]).
    pub flags: u16,
    /// The event as the upstream wrote it.
    pub raw: RawRows,
}

impl Rows {
    /// Rows event flags: the last event of its statement; written with foreign-key checks
    /// off; with relaxed unique checks; complete rows.
    pub const STMT_END: u16 = 1;
    pub const NO_FOREIGN_KEY_CHECKS: u16 = 2;
    pub const RELAXED_UNIQUE_CHECKS: u16 = 4;

    /// Whether the session that wrote these rows checked foreign keys
    /// (`foreign_key_checks`: a dump restore turns it off and writes children first).
    pub fn foreign_key_checks(&self) -> bool {
        self.flags & Self::NO_FOREIGN_KEY_CHECKS == 0
    }

    /// Whether it checked unique keys strictly (`unique_checks`).
    pub fn unique_checks(&self) -> bool {
        self.flags & Self::RELAXED_UNIQUE_CHECKS == 0
    }
}

/// A rows event as the upstream wrote it, with the TABLE_MAP it refers to and the
/// binlog's FORMAT_DESCRIPTION: what a `BINLOG '…'` statement replays on another server,
/// as `mariadb-binlog | mariadb` does (row by row, as a replica applies it, without
/// firing the target's triggers). The bytes are shared with the decoded rows, not copied.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRows {
    /// The FORMAT_DESCRIPTION the events were written under (`None`: none was read yet).
    pub format: Option<Arc<RawEvent>>,
    pub table_map: Arc<RawEvent>,
    pub rows: RawEvent,
    /// The width of table ids in these events (6, or 4 for servers before 5.1.4).
    pub table_id_len: usize,
}

/// A statement the binlog carries as text: DDL, and also account and other
/// non-row statements (GRANT, CREATE USER, …); the schema crate tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The session's default schema when it ran (`USE db`), empty when none.
    pub schema: String,
    /// The statement as UTF-8, from the session's `character_set_client`.
    pub text: String,
    /// Set when the bytes are not valid text in that character set: `text` then holds
    /// replacement characters and must not be trusted.
    pub undecodable: Option<Undecodable>,
    /// The statement's bytes as the client sent them (what a replica runs, with
    /// `vars`' character sets).
    pub bytes: Bytes,
    /// The session context it ran in: SQL mode, character sets, time zone, checks.
    pub vars: SessionVars,
    /// Seconds since the epoch when it began (with `vars.micros`): what `NOW()` and
    /// `CURRENT_TIMESTAMP` were for it.
    pub timestamp: u32,
}

/// `SAVEPOINT x` or `ROLLBACK TO x` inside a transaction. MariaDB logs them when part of
/// the transaction must be undone by a later `ROLLBACK TO` (a non-transactional table
/// changed meanwhile); a replica runs them where they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Savepoint {
    /// The statement, its name in backticks whatever the SQL mode it was logged in
    /// (`SAVEPOINT `a``, `ROLLBACK TO SAVEPOINT `a``).
    pub text: String,
    /// `ROLLBACK TO`, not `SAVEPOINT`.
    pub rollback: bool,
}

/// An XA transaction id: format id, global transaction id and branch qualifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xid {
    pub format_id: u32,
    pub gtrid: Vec<u8>,
    pub bqual: Vec<u8>,
}

impl std::fmt::Display for Xid {
    /// As XA statements write it: `X'6131',X'',1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        write!(
            f,
            "X'{}',X'{}',{}",
            hex(&self.gtrid),
            hex(&self.bqual),
            self.format_id
        )
    }
}

/// `XA COMMIT` or `XA ROLLBACK` of a transaction prepared earlier (its own event group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XaOutcome {
    pub xid: Xid,
    pub commit: bool,
}

/// One change of a transaction, in binlog order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Rows(Rows),
    Statement(Statement),
    Savepoint(Savepoint),
    /// The only change of an event group that ends an XA transaction prepared earlier.
    Xa(XaOutcome),
    /// The text of the statement whose rows follow (MariaDB's ANNOTATE_ROWS, MySQL's
    /// ROWS_QUERY), as the client sent it, comments included: only when the reader asks
    /// for them (`LiveOptions::annotate`) and the server writes them.
    Annotation(String),
    /// The last change of a group whose own XA transaction ends in one phase (MySQL's
    /// `XA COMMIT … ONE PHASE`, known only at the group's end): the group commits as an
    /// ordinary transaction, it is not prepared ([`TxnStart::xa`] no longer holds).
    XaOnePhase,
}

/// How a transaction begins: everything known before its first change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnStart {
    /// Its GTID, when the upstream writes them (MariaDB always; MySQL with `gtid_mode = ON`).
    pub gtid: Option<Gtid>,
    /// The server that originally committed it (not the one we read from, in a chain).
    pub server_id: u32,
    /// Where its first event starts.
    pub start: BinlogCoords,
    /// The XA transaction this group prepares: its `Commit` is `XA PREPARE`, and a later
    /// group with a [`Change::Xa`] commits or rolls it back.
    pub xa: Option<Xid>,
}

/// A whole transaction, committed upstream. A statement (DDL) is a transaction of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    pub gtid: Option<Gtid>,
    pub server_id: u32,
    /// Set when the transaction was prepared (`XA PREPARE`), not committed (see
    /// [`TxnStart::xa`]).
    pub xa: Option<Xid>,
    /// Seconds since the epoch of the commit event.
    pub timestamp: u32,
    /// The position right after the commit: resuming there reads the next transaction.
    pub position: Position,
    pub changes: Vec<Change>,
}

/// One piece of the transaction stream, for consumers that must not hold a whole
/// transaction in memory: `Begin`, then its changes, then `Commit` or `Rollback`.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnEvent {
    Begin(TxnStart),
    Change(Change),
    /// The transaction committed upstream; `timestamp` is the commit event's.
    Commit {
        position: Position,
        timestamp: u32,
    },
    /// Discard everything since `Begin`: the upstream rolled back (a non-transactional
    /// table's statement that failed), or the connection was lost mid-transaction and the
    /// reader will send the transaction again from its `Begin`.
    Rollback,
    /// No transaction is open, and the upstream is at `position` (a heartbeat while idle, or
    /// events that belong to no transaction): a consumer may move its checkpoint there.
    Idle {
        position: Position,
    },
}

/// Collects a stream of [`TxnEvent`]s into whole [`Txn`]s.
#[derive(Debug, Default)]
pub struct Collector {
    open: Option<(TxnStart, Vec<Change>)>,
}

impl Collector {
    /// Feeds one piece; returns the transaction it completes. A piece out of order (a
    /// change or commit without its begin, a begin inside a transaction) is an error: it
    /// means pieces were lost, and a transaction must not be made up from what is left.
    pub fn push(&mut self, event: TxnEvent) -> Result<Option<Txn>, String> {
        match event {
            TxnEvent::Begin(start) => {
                if let Some((open, _)) = &self.open {
                    return Err(format!(
                        "a transaction begins inside the one that began at {}",
                        open.start
                    ));
                }
                self.open = Some((start, Vec::new()));
            }
            TxnEvent::Change(change) => match &mut self.open {
                Some((start, _)) if change == Change::XaOnePhase => start.xa = None,
                Some((_, changes)) => changes.push(change),
                None => return Err("a change outside a transaction".into()),
            },
            TxnEvent::Commit {
                position,
                timestamp,
            } => {
                let Some((start, changes)) = self.open.take() else {
                    return Err(format!("a commit at {position} without its begin"));
                };
                return Ok(Some(Txn {
                    gtid: start.gtid,
                    server_id: start.server_id,
                    xa: start.xa,
                    timestamp,
                    position,
                    changes,
                }));
            }
            TxnEvent::Rollback => self.open = None,
            TxnEvent::Idle { .. } => {}
        }
        Ok(None)
    }
}
