//! Why a direction stopped: [`RunError`], and for a failure in applying, where it
//! happened ([`At`]) and what failed ([`Cause`]), each kept typed (the leaf errors are
//! sources, not text) until a log line or `/status` writes them.

use std::path::PathBuf;
use std::sync::Arc;

use pump_reader::{BinlogCoords, Gtid, Position, TxnStart};

use crate::apply::downstream::DownstreamError;
use crate::apply::sql::BuildError;

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] checkpoint::Error),
    #[error(transparent)]
    Upstream(#[from] pump_reader::Error),
    #[error(transparent)]
    Schema(#[from] schema::HistoryError),
    /// Applying failed for good.
    #[error(transparent)]
    Apply(Box<Applying>),
    #[error("upstream: {0}")]
    Connect(String),
    /// A worker's failure, shared by everything that waited on the workers.
    #[error(transparent)]
    Worker(Arc<RunError>),
    /// Asked to stop while waiting to try a transaction again: a graceful stop.
    #[error("stopped while waiting to retry")]
    Interrupted,
}

impl RunError {
    /// An apply failure at `at`.
    pub fn apply(at: &At, cause: impl Into<Cause>) -> RunError {
        RunError::Apply(Box::new(Applying {
            at: at.clone(),
            cause: cause.into(),
        }))
    }

    /// Where and why applying failed, through a worker's shared failure too.
    pub fn applying(&self) -> Option<&Applying> {
        match self {
            RunError::Apply(a) => Some(a),
            RunError::Worker(e) => e.applying(),
            _ => None,
        }
    }

    /// A failure shared between the workers and the pipeline, as the pipeline returns
    /// it (a stop stays a stop).
    pub fn shared(e: &Arc<RunError>) -> RunError {
        match **e {
            RunError::Interrupted => RunError::Interrupted,
            _ => RunError::Worker(Arc::clone(e)),
        }
    }
}

/// An apply failure: where, and what failed.
#[derive(Debug, thiserror::Error)]
#[error("at {at}: {cause}")]
pub struct Applying {
    pub at: At,
    #[source]
    pub cause: Cause,
}

/// Where a failure happened, as messages name it.
#[derive(Debug, Clone, PartialEq)]
pub enum At {
    /// Deciding where to resume, before reading.
    Start,
    /// An upstream transaction: its GTID (when the upstream writes them) and where it
    /// starts; `more`: the transactions after it applied in the same downstream
    /// transaction.
    Txn {
        gtid: Option<Gtid>,
        start: BinlogCoords,
        more: usize,
    },
    /// An event at this position of the upstream (decoding its rows).
    Position(Position),
    /// A worker, outside any transaction.
    Worker(u32),
    /// Between transactions.
    Nowhere,
}

impl At {
    /// The transaction `start` begins.
    pub fn txn(start: &TxnStart) -> At {
        At::Txn {
            gtid: start.gtid.clone(),
            start: start.start.clone(),
            more: 0,
        }
    }

    /// This transaction, and the `more` applied with it.
    pub fn with_more(&self, more: usize) -> At {
        match self {
            At::Txn { gtid, start, .. } => At::Txn {
                gtid: gtid.clone(),
                start: start.clone(),
                more,
            },
            other => other.clone(),
        }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Start => f.write_str("start"),
            At::Txn { gtid, start, more } => {
                match gtid {
                    Some(g) => write!(f, "gtid {g} at {start}")?,
                    None => write!(f, "{start}")?,
                }
                if *more > 0 {
                    write!(f, " (and the {more} transactions after it)")?;
                }
                Ok(())
            }
            At::Position(p) => write!(f, "{p}"),
            At::Worker(n) => write!(f, "worker {n}"),
            At::Nowhere => f.write_str("(no transaction)"),
        }
    }
}

/// What failed while applying.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Row(#[from] schema::RowError),
    /// A statement the schema tracker cannot apply.
    #[error("{source}; to pass over it deliberately, add \"{skip}\" to [syncer] skip-ddl")]
    Ddl {
        #[source]
        source: schema::DdlError,
        /// How `skip-ddl` names its transaction.
        skip: String,
    },
    /// A statement `[[syncer.route]]` cannot give the downstream's names to.
    #[error(
        "cannot run `{statement}` downstream under [[syncer.route]]: {reason}; run it on \
         the downstream yourself (with the downstream's names), then add \"{skip}\" to \
         [syncer] skip-ddl"
    )]
    Route {
        statement: String,
        reason: String,
        skip: String,
    },
    /// An upstream table without a table rule of `[[syncer.route]]` whose downstream
    /// name is a table rule's target.
    #[error(
        "{table} would go to the downstream table that [[syncer.route]] routes {other} to, \
         and their rows would merge there: give one of them a table rule with another \
         target-tbl-name, or filter one out"
    )]
    RouteCollision { table: String, other: String },
    #[error("{schema}.{table} has rows but no tracked definition")]
    Untracked { schema: String, table: String },
    #[error(
        "{table}: no such table on the downstream; create it there (or let DDL reach it \
         with sync-ddl = true), or filter the table out"
    )]
    NoDownstreamTable { table: String },
    #[error(
        "{table}: the upstream row has columns ({upstream}), the downstream table \
         ({downstream}); sync-mode = 2 applies the columns both have"
    )]
    Columns {
        table: String,
        upstream: String,
        downstream: String,
    },
    #[error(
        "a transaction with both DDL and ROLLBACK TO SAVEPOINT cannot be replicated exactly \
         (the DDL commits implicitly downstream)"
    )]
    DdlWithRollbackTo,
    /// A DDL statement the downstream had done already, whose tables are not as it would
    /// leave them: the other site changed them at the same time.
    #[error(
        "{statement:?} failed downstream ({reason}): {table} changed there already, not as this \
         statement leaves it (the other site's DDL on the same table, at the same time?). \
         Downstream now: {downstream}; this statement makes it: {expected}. Make the downstream's \
         table as this statement leaves it (and the upstream's as the other site's \
         statement left the downstream's, if that one is to stay), then restart: the \
         statement runs again and counts as done"
    )]
    DdlConflict {
        statement: String,
        reason: String,
        table: String,
        downstream: String,
        expected: String,
    },
    /// A row filter that cannot be evaluated on a row (a column it names is gone).
    #[error("[[syncer.row-filter]]: {0}")]
    RowFilter(String),
    /// A row change the seed's window cannot place (see `crate::seed::record`).
    #[error("after the seed: {0}")]
    Seed(String),
    /// A task (a streamed batch, a worker) ended by a panic.
    #[error("{what}: {reason}")]
    Task { what: &'static str, reason: String },
    /// The apply record and the other start position belong to different histories.
    #[error(
        "the apply record on the downstream ({recorded}) and {name} ({other}) cannot be \
         ordered: they name different binlog histories; check which is right, then \
         `drainer checkpoint set` or [pump] initial-gtid, or remove the record (`{delete}`)"
    )]
    Unordered {
        recorded: Position,
        name: &'static str,
        other: Position,
        /// The statement that removes the record.
        delete: String,
    },
    #[error(
        "data-dir {} has no checkpoint, but the downstream's apply record says this \
         channel applied the upstream up to {recorded}: to resume there, set [pump] \
         initial-gtid (or initial-file and initial-pos) to it; to start afresh from \
         the upstream's current position, remove the record (`{delete}`)",
        data_dir.display()
    )]
    RecordWithoutCheckpoint {
        data_dir: PathBuf,
        recorded: Position,
        delete: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_read_as_the_logs_have_them() {
        let start = BinlogCoords::new("binlog.000002", 1234);
        let txn = At::Txn {
            gtid: Some(Gtid::MariaDb(pump_reader::MariaGtid {
                domain: 0,
                server: 1,
                seq: 5,
            })),
            start: start.clone(),
            more: 0,
        };
        assert_eq!(txn.to_string(), "gtid 0-1-5 at binlog.000002:1234");
        assert_eq!(
            txn.with_more(3).to_string(),
            "gtid 0-1-5 at binlog.000002:1234 (and the 3 transactions after it)"
        );
        let plain = At::Txn {
            gtid: None,
            start,
            more: 0,
        };
        assert_eq!(plain.to_string(), "binlog.000002:1234");
        let e = RunError::apply(
            &plain,
            Cause::Untracked {
                schema: "app".into(),
                table: "t".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "at binlog.000002:1234: app.t has rows but no tracked definition"
        );
        let shared = RunError::shared(&Arc::new(e));
        assert_eq!(shared.applying().map(|a| &a.at), Some(&plain));
        assert!(matches!(
            RunError::shared(&Arc::new(RunError::Interrupted)),
            RunError::Interrupted
        ));
    }
}
