//! What the reader hands out: transactions, whole or as a stream of their parts.

use std::sync::Arc;

use crate::event::{RowChange, RowsKind, TableMap};
use crate::position::{BinlogCoords, Gtid, Position};

/// The rows one rows event changed, in one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// The table and its column layout, from the TABLE_MAP event before the rows.
    pub table: Arc<TableMap>,
    pub kind: RowsKind,
    pub rows: Vec<RowChange>,
}

/// A statement the binlog carries as text: DDL, and also account and other
/// non-row statements (GRANT, CREATE USER, …); the schema crate tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The session's default schema when it ran (`USE db`), empty when none.
    pub schema: String,
    pub text: String,
}

/// One change of a transaction, in binlog order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Rows(Rows),
    Statement(Statement),
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
}

/// A whole transaction, committed upstream. A statement (DDL) is a transaction of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    pub gtid: Option<Gtid>,
    pub server_id: u32,
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
