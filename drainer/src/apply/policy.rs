//! What a failed downstream transaction means, decided in one place: every applier (a
//! worker, the pipeline's own session, a streamed transaction) hands the error and what
//! it may still try ([`Attempt`]) to [`decide`], and acts on the [`Next`] step it returns.
//!
//! - A transient failure (lost connection, deadlock, lock wait timeout, server going
//!   away: see `downstream::classify`) tries the transaction again after a pause, its
//!   apply record read first (the COMMIT may have gone through). A streamed transaction
//!   cannot send its statements again in place: it is read again from its start.
//! - "Unknown column": the downstream table changed under the cached columns; they are
//!   looked at again and the transaction built again, once.
//! - Any other refusal of multi-row statements builds the transaction again with a
//!   statement per row change: the refusal then names the row.
//! - A conflict to settle finer (`CONFLICT_RECHECK`: a checked multi-row statement
//!   matched fewer rows than it carries, or a group met a conflict) applies a group one
//!   transaction at a time, and a transaction row by row.
//! - A worker's transaction refused as it stands may have run before an earlier one it
//!   depends on in a way its keys cannot see (a collation, a key only the downstream
//!   has): it waits until every earlier transaction is committed and tries once more.
//! - A group of upstream transactions refused as one downstream transaction applies
//!   them one at a time, so that the error names its transaction.
//! - Anything else stops the drainer with the statement and the server's message.
//!
//! Why the three appliers differ: only a worker runs out of upstream order (the others
//! run after every earlier transaction committed), so only it may wait; only a worker
//! groups; only a streamed transaction has statements already executed in an open
//! downstream transaction, so it reads the transaction again instead of retrying, and
//! once a DDL statement of it ran downstream (committing what came before) it can
//! neither be read again nor built again.

use super::changes::UNKNOWN_COLUMN;
use super::downstream::{DownstreamError, CONFLICT_RECHECK, CONFLICT_STOP};

/// What the applier may still try for the transaction that failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempt {
    /// Its statements joined rows in multi-row statements.
    pub merged: bool,
    /// The downstream's columns may be looked at again (not yet done for it).
    pub may_refresh: bool,
    /// It may wait for every earlier transaction and try again (a worker, once).
    pub may_wait: bool,
    /// It applies several upstream transactions at once.
    pub group: bool,
    /// It is streamed: its statements ran in an open downstream transaction.
    pub streamed: bool,
}

/// How to build a transaction again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// With the downstream's columns looked at again.
    FreshColumns,
    /// With a statement per row change, in upstream order.
    RowByRow,
}

/// What to do after a failure; each step carries its cause.
#[derive(Debug)]
pub enum Next {
    /// Pause, read the apply record (its COMMIT may have gone through), try again.
    Retry { reason: String },
    /// Build the transaction again as said, and try again.
    Rebuild { how: Rebuild, reason: String },
    /// Wait until every earlier transaction is committed, then try again.
    InOrder { reason: String },
    /// Apply the group's transactions one at a time.
    Split,
    /// Read the (streamed) transaction again from its start, built as said.
    ReadAgain {
        rebuild: Option<Rebuild>,
        reason: String,
    },
    /// Give up: the drainer stops with this.
    Stop(DownstreamError),
}

/// The one place a downstream failure is sorted.
pub fn decide(error: DownstreamError, attempt: Attempt) -> Next {
    let (code, reason) = match error {
        DownstreamError::Transient(reason) if attempt.streamed => {
            return Next::ReadAgain {
                rebuild: None,
                reason,
            }
        }
        DownstreamError::Transient(reason) => return Next::Retry { reason },
        // A conflict its table's policy stops at: as final as it reads.
        DownstreamError::Definite {
            code: CONFLICT_STOP,
            ..
        } => return Next::Stop(error),
        DownstreamError::Definite {
            code, ref reason, ..
        } => (code, reason.clone()),
    };
    // A conflict to settle finer: a group one transaction at a time first (each
    // record names its own), then row by row.
    if code == CONFLICT_RECHECK && attempt.group {
        return Next::Split;
    }
    let rebuild = if code == UNKNOWN_COLUMN && attempt.may_refresh {
        Some(Rebuild::FreshColumns)
    } else if attempt.merged {
        Some(Rebuild::RowByRow)
    } else {
        None
    };
    match rebuild {
        Some(how) if attempt.streamed => Next::ReadAgain {
            rebuild: Some(how),
            reason,
        },
        Some(how) => Next::Rebuild { how, reason },
        None if attempt.may_wait && !attempt.streamed => Next::InOrder { reason },
        None if attempt.group => Next::Split,
        None => Next::Stop(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16) -> DownstreamError {
        DownstreamError::Definite {
            statement: "INSERT …".into(),
            code,
            reason: format!("error {code}"),
        }
    }

    fn lost() -> DownstreamError {
        DownstreamError::Transient("Lost connection to server during query".into())
    }

    const DUPLICATE: u16 = 1062;

    /// A server error as the session sorts it (`downstream::classify`).
    fn server(code: u16) -> DownstreamError {
        crate::apply::downstream::classify(
            "INSERT …",
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: format!("error {code}"),
                state: "HY000".into(),
            }),
        )
    }

    /// Each class of server error, from the server's code to what a worker, the
    /// pipeline's session and a streamed transaction do next (first attempt: joined rows,
    /// columns not looked at again).
    #[test]
    fn each_server_error_class_has_its_next_step() {
        let worker = Attempt {
            merged: true,
            may_refresh: true,
            may_wait: true,
            group: false,
            streamed: false,
        };
        let session = Attempt {
            may_wait: false,
            ..worker
        };
        let streamed = Attempt {
            streamed: true,
            ..session
        };
        let step = |code: u16, attempt: Attempt| match decide(server(code), attempt) {
            Next::Retry { .. } => "retry",
            Next::Rebuild {
                how: Rebuild::FreshColumns,
                ..
            } => "fresh columns",
            Next::Rebuild {
                how: Rebuild::RowByRow,
                ..
            } => "row by row",
            Next::InOrder { .. } => "in order",
            Next::Split => "split",
            Next::ReadAgain { rebuild: None, .. } => "read again",
            Next::ReadAgain {
                rebuild: Some(Rebuild::FreshColumns),
                ..
            } => "read again, fresh columns",
            Next::ReadAgain {
                rebuild: Some(Rebuild::RowByRow),
                ..
            } => "read again, row by row",
            Next::Stop(_) => "stop",
        };
        // Lock wait timeout, deadlock, too many connections, shutdown, gone away, lost,
        // killed, idle disconnect, max_prepared_stmt_count.
        for code in [1205, 1213, 1040, 1053, 2006, 2013, 1927, 4031, 1461] {
            assert_eq!(step(code, worker), "retry", "{code}");
            assert_eq!(step(code, session), "retry", "{code}");
            assert_eq!(step(code, streamed), "read again", "{code}");
        }
        assert_eq!(step(UNKNOWN_COLUMN, worker), "fresh columns");
        assert_eq!(step(UNKNOWN_COLUMN, streamed), "read again, fresh columns");
        // Duplicate key, no such table, a packet over max_allowed_packet, data too long.
        for code in [DUPLICATE, 1146, 1153, 1406] {
            assert_eq!(step(code, worker), "row by row", "{code}");
            assert_eq!(step(code, streamed), "read again, row by row", "{code}");
            let unmerged = |a: Attempt| Attempt { merged: false, ..a };
            assert_eq!(step(code, unmerged(worker)), "in order", "{code}");
            assert_eq!(step(code, unmerged(session)), "stop", "{code}");
            assert_eq!(step(code, unmerged(streamed)), "stop", "{code}");
        }
    }

    #[test]
    fn transient_failures_retry_and_a_streamed_one_is_read_again() {
        for attempt in [
            Attempt::default(),
            Attempt {
                group: true,
                merged: true,
                ..Attempt::default()
            },
        ] {
            assert!(matches!(decide(lost(), attempt), Next::Retry { .. }));
        }
        let streamed = Attempt {
            streamed: true,
            ..Attempt::default()
        };
        assert!(matches!(
            decide(lost(), streamed),
            Next::ReadAgain { rebuild: None, .. }
        ));
    }

    #[test]
    fn an_unknown_column_looks_at_the_columns_again_once() {
        let fresh = Attempt {
            may_refresh: true,
            ..Attempt::default()
        };
        assert!(matches!(
            decide(refused(UNKNOWN_COLUMN), fresh),
            Next::Rebuild {
                how: Rebuild::FreshColumns,
                ..
            }
        ));
        // Looked at already: like any other refusal.
        assert!(matches!(
            decide(refused(UNKNOWN_COLUMN), Attempt::default()),
            Next::Stop(DownstreamError::Definite {
                code: UNKNOWN_COLUMN,
                ..
            })
        ));
        let streamed = Attempt {
            streamed: true,
            ..fresh
        };
        assert!(matches!(
            decide(refused(UNKNOWN_COLUMN), streamed),
            Next::ReadAgain {
                rebuild: Some(Rebuild::FreshColumns),
                ..
            }
        ));
    }

    #[test]
    fn a_refusal_goes_row_by_row_then_in_order_then_one_at_a_time_then_stops() {
        let worker = Attempt {
            merged: true,
            may_refresh: true,
            may_wait: true,
            group: true,
            streamed: false,
        };
        assert!(matches!(
            decide(refused(DUPLICATE), worker),
            Next::Rebuild {
                how: Rebuild::RowByRow,
                ..
            }
        ));
        let row_by_row = Attempt {
            merged: false,
            ..worker
        };
        assert!(matches!(
            decide(refused(DUPLICATE), row_by_row),
            Next::InOrder { .. }
        ));
        let waited = Attempt {
            may_wait: false,
            ..row_by_row
        };
        assert!(matches!(decide(refused(DUPLICATE), waited), Next::Split));
        let single = Attempt {
            group: false,
            ..waited
        };
        assert!(matches!(
            decide(refused(DUPLICATE), single),
            Next::Stop(DownstreamError::Definite {
                code: DUPLICATE,
                ..
            })
        ));
    }

    #[test]
    fn a_streamed_transaction_reads_again_row_by_row_and_never_waits() {
        let streamed = Attempt {
            merged: true,
            may_wait: true,
            streamed: true,
            ..Attempt::default()
        };
        assert!(matches!(
            decide(refused(DUPLICATE), streamed),
            Next::ReadAgain {
                rebuild: Some(Rebuild::RowByRow),
                ..
            }
        ));
        let unmerged = Attempt {
            merged: false,
            ..streamed
        };
        assert!(matches!(
            decide(refused(DUPLICATE), unmerged),
            Next::Stop(_)
        ));
    }

    #[test]
    fn a_conflict_to_settle_finer_splits_a_group_then_goes_row_by_row() {
        let finer = || refused(CONFLICT_RECHECK);
        let group = Attempt {
            merged: true,
            may_refresh: true,
            may_wait: true,
            group: true,
            streamed: false,
        };
        assert!(matches!(decide(finer(), group), Next::Split));
        let one = Attempt {
            group: false,
            ..group
        };
        assert!(matches!(
            decide(finer(), one),
            Next::Rebuild {
                how: Rebuild::RowByRow,
                ..
            }
        ));
    }

    #[test]
    fn a_conflict_the_policy_stops_at_is_final() {
        let conflict = DownstreamError::Definite {
            statement: "conflict on app.s id=1".into(),
            code: CONFLICT_STOP,
            reason: "update-differs: the table's conflict policy is stop".into(),
        };
        let attempt = Attempt {
            merged: true,
            may_refresh: true,
            may_wait: true,
            group: true,
            streamed: false,
        };
        assert!(matches!(decide(conflict, attempt), Next::Stop(_)));
    }
}
