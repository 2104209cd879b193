//! One direction, end to end: read upstream transactions, filter, decode, hand each to a
//! parallel worker (or apply it on this session), and checkpoint.
//!
//! - Parallel apply ([`crate::apply::workers`]): a plain DML transaction goes to one of
//!   `worker-count` workers, chosen by the keys its rows touch, in causal order; DDL, a
//!   streamed transaction, and anything else applied on this session first waits until
//!   every worker is idle. Every upstream transaction read takes its place in the
//!   committed prefix (dropped and filtered ones at once).
//! - Exactly once: every downstream transaction also writes its writer's apply record
//!   (see [`crate::apply::downstream`]) before its COMMIT. The RocksDB checkpoint holds
//!   the committed prefix's end (the low watermark), saved every `checkpoint-interval-ms`,
//!   at once after DDL, and at shutdown, so it may lag; at start the drainer resumes
//!   after whichever of the checkpoint and the records' furthest watermark is further
//!   (a new data-dir: of `[pump]`'s configured start and the record; with neither
//!   configured, a record alone is refused), and passes over the transactions the
//!   records list past it (workers commit out of upstream order). A process that died after a downstream commit therefore applies
//!   nothing twice; one that died before the commit lost nothing (the server rolled the
//!   transaction back).
//! - A transient downstream failure (lost connection, deadlock, lock wait timeout) retries
//!   the whole transaction with backoff; a COMMIT whose answer was lost is settled by
//!   reading the apply record first. Anything else stops with the position, table and
//!   statement.
//! - Safe mode (INSERT as REPLACE, UPDATE as DELETE + REPLACE, for `safe-mode-after-
//!   start-s` after every start, or always) is no longer needed for correctness; it
//!   remains for TiDB Binlog's users and for the one case the record does not cover: rows
//!   of a transaction that come before a DDL statement inside it (MariaDB never logs
//!   that; the rows after the statement, as in `CREATE TABLE … SELECT`, carry the record).
//! - DDL: with `sync-ddl = true` it runs downstream in its schema context once the earlier
//!   transactions are committed (one the downstream says is done already counts as
//!   applied when the downstream's tables are as it leaves them: a replay, or the same
//!   statement run on both sites; else the other site changed them too, and the drainer
//!   stops naming both definitions); either way
//!   the schema history takes it at once (later rows of its transaction, as in `CREATE
//!   TABLE … SELECT`, decode with it) and records it at the position of its commit. DDL
//!   runs downstream at its place among the transaction's rows. A statement the
//!   tracker cannot apply stops the drainer unless `skip-ddl` names its transaction.
//! - Rows are decoded as they are read, with the definitions in force there; their
//!   statements are built at the commit, against the downstream's columns (cached per
//!   table, dropped after any DDL, and looked at again once on "unknown column").
//!   Consecutive inserts into one table share a multi-row INSERT. Rows of
//!   system-versioned tables, and of tables with triggers downstream, keep their row
//!   event and replay it (see [`crate::apply::binlog`]); rows of sequences are not
//!   replicated (each site keeps its own). `[[syncer.row-filter]]` conditions and, after
//!   `drainer seed`, the seed's window decide per row image whether a change applies (an
//!   update may become the insert or the delete of one side).
//! - `SAVEPOINT` / `ROLLBACK TO` run where they stand (a transaction that rolls back to a
//!   savepoint applies on this session); an XA transaction prepared upstream is prepared
//!   downstream, and ended as upstream by the later group that ends it.
//! - A large transaction (more than `STREAM_ROWS` rows or `STREAM_BYTES` buffered)
//!   streams: its rows go into an open downstream transaction batch by batch (a batch is
//!   applied by a task holding the session while the next is read and decoded; at most
//!   two batches are held), and its COMMIT carries the apply record as usual. Losing
//!   that open transaction (a lost session, "unknown column") rewinds the reader to the
//!   transaction's start and reads it again; its statements enter the schema history only at its downstream commit.
//!   A DDL statement inside a streamed transaction commits the part before it (no
//!   record there, as for rows before DDL in any transaction).
//! - Loopback control: every downstream transaction begins with the channel's mark
//!   update, and every downstream session writes under the channel's server id (see
//!   [`crate::apply::downstream::Mark`]); an upstream transaction with a mark-table row of
//!   this channel, or whose event group carries that server id (a non-transactional
//!   table's rows, DDL), came from the reverse direction and is dropped whole (its DDL
//!   still enters the schema history; its position is checkpointed). The mark table's
//!   schema is never replicated.

mod commit;
mod events;
mod links;
mod reading;
mod resume;
mod rows;
mod start;
mod statement;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use checkpoint::{Batch, Identity, ServerIdentity, Store};
use conf::{Config, Filter};
use mysql_async::prelude::Queryable;
use pump_reader::event::{MODE_ANSI_QUOTES, MODE_NO_BACKSLASH_ESCAPES};
use pump_reader::{
    Change, LiveOptions, LiveReader, Position, Rows, StartAt, TxnEvent, Upstream, XaOutcome,
};
use schema::{decode_row, read_upstream, Class, History, ObjectKind, SqlMode, Table};
use tokio::sync::watch;

use crate::apply::applier::{Applier, Close, Marker, Outcome, Place, Unit};
use crate::apply::changes::{approx_size, one_table_inserts, Checks, Ops, Raw, RowChange};
use crate::apply::conflict::Policies;
use crate::apply::ctx::Ctx;
use crate::apply::downstream::{
    order, Applied, ApplyRecord, Downstream, DownstreamError, Mark, Stamp, Target,
};
use crate::apply::keys::links;
use crate::apply::policy::{decide, Attempt, Next, Rebuild};
use crate::apply::sql::{quote, Stmt};
use crate::apply::workers::{Job, Pool};
use crate::error::{At, Cause, RunError};
use crate::failpoint;
use crate::metrics::{Metrics, Retry};
use crate::servers::Servers;
use crate::status::{State, Status};
use link::Server;
use links::TRIGGERS_EVERY;
use reading::{Fate, Reading, Stream};
use resume::{Found, Resume};
use start::now;
use statement::Ddl;

pub use start::{capture_now, first_start, StartNow};
pub(crate) use start::{downstream_target, identify, read_definitions};

/// The pipeline's state between events.
struct Run<'a> {
    config: &'a Config,
    filter: Filter,
    store: Store,
    history: History,
    /// This session: the transactions applied here (DDL, streamed, savepoints, XA).
    applier: Applier,
    started: Instant,
    /// This direction's loopback mark (`loopback-control = true`).
    mark: Option<Mark>,
    /// The schema of the mark table (with loopback control or not), where `drainer
    /// verify` writes its requests.
    verify_schema: String,
    /// Until the stream is past the snapshots `drainer seed` copied in: which row changes
    /// the copy holds already.
    seed: Option<crate::seed::record::Window>,
    /// `[[syncer.row-filter]]`: the condition of each filtered table.
    /// By schema, then table name.
    row_filters: HashMap<String, HashMap<String, crate::rowfilter::Expr>>,
    /// `[[syncer.route]]`: the downstream names of upstream schemas and tables.
    routes: conf::Routes,
    /// The parallel workers, and the committed prefix.
    pool: Pool,
    /// The last position checkpointed.
    saved: Option<Position>,
    last_save: Instant,
    /// Transactions past the resume position that workers committed before the last
    /// stop (out of upstream order): read again, they are passed over.
    applied_past: Vec<Position>,
    /// Bumped after every transaction that changes table definitions; handed to the
    /// workers with each transaction (see [`Job::columns_gen`]).
    columns_gen: u64,
    /// The reader has nothing more for now (the last event was an idle one).
    idle: bool,
    /// Table definitions as rows decode with them, shared by their row changes (one
    /// table's consecutive inserts, across transactions too, share a statement); emptied
    /// whenever the schema history changes.
    /// By schema, then table name (looked up without building a key per event).
    tables: HashMap<String, HashMap<String, Arc<Table>>>,
    /// The transaction being read.
    reading: Reading,
    /// What the transaction being read tried already, kept when it is read again.
    retries: Retries,
    /// The downstream's tables with triggers (schema, table), and when they were read.
    triggered: std::collections::HashSet<(String, String)>,
    triggers_read: Instant,
}

/// What a transaction tried before it committed, kept when it is read again.
#[derive(Debug, Default)]
struct Retries {
    /// Its columns were looked at again after "unknown column" (streamed).
    refreshed: bool,
    /// The downstream refused it as multi-row statements: it builds with a statement per
    /// row change until it commits.
    row_by_row: bool,
}

impl Run<'_> {
    /// [`Ctx::on_failure`] at the transaction being read.
    pub(super) async fn on_failure(
        &mut self,
        kind: Retry,
        message: &str,
        error: DownstreamError,
        backoff: &mut Duration,
    ) -> Result<(), RunError> {
        let here = self.here();
        self.applier
            .ctx
            .on_failure(&here, kind, message, error, backoff)
            .await
    }

    pub(super) fn safe_mode(&self) -> bool {
        self.config.syncer.safe_mode
            || self.started.elapsed()
                < Duration::from_secs(self.config.syncer.safe_mode_after_start_s)
    }

    /// The transaction being read, for messages: `gtid 0-1-5 at binlog.000002:1234`.
    pub(super) fn here(&self) -> At {
        self.reading.start.as_ref().map_or(At::Nowhere, At::txn)
    }

    /// Forgets the transaction being read (rolled back, or not to be applied).
    pub(super) fn drop_transaction(&mut self) {
        if self.reading.staged {
            // Its statements leave the schema history.
            self.tables.clear();
        }
        let stream = self.reading.clear();
        self.abandon(stream);
        self.history.discard_staged();
        self.applier.ctx.metrics.buffered(0);
    }

    pub(super) fn here_fail(&self, cause: impl Into<Cause>) -> RunError {
        RunError::apply(&self.here(), cause)
    }
}

/// Runs one direction until `stop` turns true (then the transaction in flight is
/// dropped, never half-applied, and the checkpoint saved) or a definite error, keeping
/// `status` current. `started_at`, from [`capture_now`] as the process started, is where a
/// first start begins (without it, where the upstream is when reading begins).
///
/// The loop wires the parts: the reader's next event goes to `Run::on_event` (the
/// transaction being read, then the applier or the workers at its commit); while the
/// upstream is quiet or a commit is unsaved, the checkpoint is saved every
/// `checkpoint-interval-ms`; a worker's failure or `stop` ends it.
pub async fn run(
    config: &Config,
    servers: &Servers,
    mut stop: watch::Receiver<bool>,
    status: Arc<Status>,
    started_at: Option<StartNow>,
) -> Result<(), RunError> {
    let Some((mut run, mut reader)) =
        start::open(config, servers, &mut stop, &status, started_at).await?
    else {
        return Ok(());
    };
    let interval = Duration::from_millis(config.syncer.checkpoint_interval_ms);
    let mut reconnects = reader.reconnects();
    match run.refresh_links().await {
        Ok(()) => {}
        Err(RunError::Interrupted) => return Ok(()),
        Err(e) => return Err(e),
    }
    // A worker's failure ends the loop as soon as it happens.
    let failed = run.pool.failure();
    tokio::pin!(failed);
    // Fires once `interval` passed without an event. One timer, moved on when it fires
    // early: a timer made for every event costs two trips to the timer wheel each.
    let quiet = tokio::time::sleep(interval);
    tokio::pin!(quiet);
    let mut last_event = tokio::time::Instant::now();
    let outcome = async {
        loop {
            let event = tokio::select! {
                biased;
                _ = stop.changed() => break,
                e = &mut failed => return Err(e),
                e = reader.next_event() => e?,
                // An idle upstream still gets its last commit saved in time, and caught up
                // shown once the workers are done.
                () = &mut quiet, if run.unsaved() || run.idle => {
                    let now = tokio::time::Instant::now();
                    if now < last_event + interval {
                        quiet.as_mut().reset(last_event + interval);
                        continue;
                    }
                    run.save()?;
                    if run.idle && run.pool.idle() {
                        run.applier.ctx.status.lock().caught_up = true;
                    }
                    quiet.as_mut().reset(now + interval);
                    continue;
                }
            };
            last_event = tokio::time::Instant::now();
            run.applier.ctx.metrics.event(&event);
            if reader.reconnects() > reconnects {
                run.applier
                    .ctx
                    .metrics
                    .reconnects(reader.reconnects() - reconnects);
                reconnects = reader.reconnects();
            }
            run.on_event(event, &mut reader).await?;
        }
        Ok::<(), RunError>(())
    }
    .await;
    if run.reading.stream.is_open() {
        tracing::info!(at = %run.here(), "rolling back the streamed transaction in flight; the next start reads it again");
        let stream = std::mem::take(&mut run.reading.stream);
        run.abandon(stream);
    }
    // The workers finish what they hold (or stop at a failure); the checkpoint covers
    // what they committed.
    let closed = run.pool.close().await;
    run.save()?;
    for result in [outcome, closed] {
        match result {
            Ok(()) | Err(RunError::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    let mut s = status.lock();
    s.state = State::Stopped;
    tracing::info!(
        applied = s.applied,
        loops_dropped = s.loops_dropped,
        "stopped; checkpoint saved"
    );
    Ok(())
}
