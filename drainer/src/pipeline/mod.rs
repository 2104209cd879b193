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
//!   transactions are committed (replays that find it done count as applied); either way
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
//!   replicated (each site keeps its own).
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

mod resume;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use checkpoint::{Batch, Identity, ServerIdentity, Store};
use conf::{Config, Filter};
use mysql_async::prelude::Queryable;
use pump_reader::event::{MODE_ANSI_QUOTES, MODE_NO_BACKSLASH_ESCAPES};
use pump_reader::{
    Change, LiveOptions, LiveReader, Position, Rows, Savepoint, StartAt, TxnEvent, Upstream,
    XaOutcome,
};
use schema::{decode_row, read_upstream, Class, History, ObjectKind, SqlMode, Table};
use tokio::sync::watch;

use crate::apply::applier::{Applier, Close, Outcome, Place, Unit};
use crate::apply::changes::{add_ops, approx_size, one_table_inserts, Checks, Raw, RowChange};
use crate::apply::ctx::Ctx;
use crate::apply::downstream::{
    order, Applied, ApplyRecord, Downstream, DownstreamError, Mark, Stamp, Target,
};
use crate::apply::policy::{decide, Attempt, Next, Rebuild};
use crate::apply::sql::{quote, Stmt};
use crate::apply::workers::{links, Job, Pool};
use crate::error::{At, Cause, RunError};
use crate::failpoint;
use crate::metrics::{Metrics, Retry};
use crate::status::{State, Status};
use resume::{Found, Resume};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `SELECT @@server_id` (and MySQL's `@@server_uuid`) of a server.
async fn identify(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<ServerIdentity, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    let ask = async {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| format!("{host}:{port}: {e}"))?;
        let server_id: Option<u32> = conn
            .query_first("SELECT @@server_id")
            .await
            .map_err(|e| e.to_string())?;
        let uuid: Option<String> = conn
            .query_first("SELECT @@server_uuid")
            .await
            .ok()
            .flatten();
        conn.disconnect().await.ok();
        Ok(ServerIdentity {
            server_id: server_id.unwrap_or_default(),
            uuid,
            address: format!("{host}:{port}"),
        })
    };
    tokio::time::timeout(Duration::from_secs(30), ask)
        .await
        .map_err(|_| format!("no answer from {host}:{port} within 30 s"))?
}

/// The downstream's apply record, asked until the downstream answers (it may be
/// restarting); `None` when `stop` came first.
async fn read_record(
    down: &mut Downstream,
    stop: &mut watch::Receiver<bool>,
    status: &Status,
) -> Result<Option<Option<Applied>>, RunError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match down.applied().await {
            Ok(record) => return Ok(Some(record)),
            Err(DownstreamError::Transient(reason)) => {
                tracing::warn!(%reason, "cannot read the apply record on the downstream yet; retrying");
                status.failed(format!("reading the apply record: {reason}"), true);
            }
            Err(e) => return Err(RunError::apply(&At::Start, e)),
        }
        tokio::select! {
            _ = stop.changed() => return Ok(None),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn start_at(p: &Position) -> StartAt {
    match &p.gtids {
        Some(g) if !g.is_empty() => StartAt::Gtid(g.clone()),
        _ => StartAt::Coords(p.coords.clone()),
    }
}

/// Where `[pump]` says to start without a checkpoint: `initial-gtid`, else `initial-file`
/// and `initial-pos` (the caller knows one is set).
fn configured_position(pump: &conf::Pump) -> Result<Position, RunError> {
    if pump.initial_gtid.is_empty() {
        return Ok(Position {
            coords: pump_reader::BinlogCoords::new(pump.initial_file.clone(), pump.initial_pos),
            gtids: None,
        });
    }
    let gtids = pump
        .initial_gtid
        .parse()
        .map_err(|e: pump_reader::PositionError| {
            RunError::Config(format!("pump.initial-gtid: {e}"))
        })?;
    Ok(Position {
        coords: pump_reader::BinlogCoords::new(String::new(), 4),
        gtids: Some(gtids),
    })
}

/// A transaction whose buffered row changes pass either bound streams: they go into an
/// open downstream transaction, and so does every later batch of that size, so memory
/// stays bounded whatever the transaction's size.
const STREAM_ROWS: usize = 20_000;
const STREAM_BYTES: usize = 32 << 20;

/// How often the downstream's triggers are read again (a trigger created there directly
/// is seen within this).
const TRIGGERS_EVERY: Duration = Duration::from_secs(10);

/// Whether `sql` is an ALTER statement (after leading blanks and `/* */` comments).
fn starts_with_alter(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    while let Some(after) = rest.strip_prefix("/*") {
        rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
    }
    rest.get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case("ALTER"))
}

/// The `channel_id` of a mark-table row image (TiDB Binlog's layout: `id`, `channel_id`,
/// `val`, `channel_info`).
fn mark_channel(image: &Option<Vec<pump_reader::event::Cell>>) -> Option<i64> {
    match image.as_ref()?.get(1)? {
        pump_reader::event::Cell::Int { bits, .. } => Some(*bits as i64),
        _ => None,
    }
}

/// A statement to run downstream: its `USE` schema (empty: none) and the statement
/// with its session context.
struct Ddl {
    schema: String,
    statement: pump_reader::Statement,
    /// Statements run after it in its context (an event disabled downstream).
    then: Vec<String>,
}

/// The pipeline's state between events.
struct Run<'a> {
    config: &'a Config,
    filter: Filter,
    store: Store,
    history: History,
    /// This session: the transactions applied here (DDL, streamed, savepoints, XA).
    applier: Applier,
    started: Instant,
    /// The row changes of the transaction being read, applied at its commit.
    txn: Vec<RowChange>,
    /// DDL of the transaction being read to run downstream, each after the row changes
    /// before it.
    ddl: Vec<(usize, Ddl)>,
    /// The transaction being read: its GTID and where it starts.
    current: Option<pump_reader::TxnStart>,
    /// This direction's loopback mark (`loopback-control = true`).
    mark: Option<Mark>,
    /// Whether the transaction being read carries this channel's mark: it came from the
    /// reverse direction, and is dropped whole.
    looped: bool,
    /// The parallel workers, and the committed prefix.
    pool: Pool,
    /// DDL statements of the transaction being read that will not run downstream.
    ddl_not_run: u64,
    /// The last position checkpointed.
    saved: Option<Position>,
    last_save: Instant,
    /// Transactions past the resume position that workers committed before the last
    /// stop (out of upstream order): read again, they are passed over.
    applied_past: Vec<Position>,
    /// The transaction being read changes table definitions (run here or not): the
    /// downstream's columns are looked at again after it.
    tables_change: bool,
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
    /// The transaction being read staged statements in the schema history.
    staged: bool,
    /// About how many bytes the buffered row changes (`txn`) hold.
    txn_bytes: usize,
    /// Where the transaction being read starts (the position after the one before): a
    /// streamed transaction whose downstream part is lost is read again from here.
    txn_from: Option<Position>,
    /// The transaction being read streams into an open downstream transaction.
    streaming: bool,
    /// DDL of the transaction being read already ran downstream (before it streamed).
    ddl_ran: bool,
    /// The streamed transaction was built again once after "unknown column".
    stream_refreshed: bool,
    /// The downstream refused the transaction being read as multi-row statements: it is
    /// built with a statement per row change until it commits.
    row_by_row: bool,
    /// The statements last built joined rows where the keys allowed.
    merged: bool,
    /// Set when the open downstream transaction was lost: read the transaction again.
    reread: Option<String>,
    /// Inserts, updates and deletes streamed into the open downstream transaction.
    streamed_ops: [u64; 3],
    /// The streamed batch being applied while the next one is read and decoded.
    inflight: Option<Inflight>,
    /// The transaction being read's savepoints and rollbacks to them, each after the row
    /// changes before it (see [`Applier::build`]).
    savepoints: Vec<(usize, Savepoint)>,
    /// The transaction being read ends an XA transaction prepared earlier.
    xa_outcome: Option<XaOutcome>,
    /// The XA transaction being read is prepared downstream already (by a run before a
    /// restart): the rest of it is passed over.
    prepared_before: bool,
    /// The XA transaction being streamed ends in one phase (MySQL's `XA COMMIT … ONE
    /// PHASE`): it commits downstream so too, its apply record inside.
    one_phase: bool,
    /// The downstream's tables with triggers (schema, table), and when they were read.
    triggered: std::collections::HashSet<(String, String)>,
    triggers_read: Instant,
}

/// The pipeline's own session applies after every earlier transaction committed
/// (after [`Pool::barrier`]), with the apply record of this position when given.
struct AfterEarlier<'a>(Option<&'a Position>);

impl Place for AfterEarlier<'_> {
    fn stamp(&self, down: &Downstream) -> Option<Stamp> {
        self.0.map(|p| down.stamp(p, p))
    }

    fn others_failed(&self) -> bool {
        false
    }

    fn out_of_order(&self) -> bool {
        false
    }

    async fn wait_earlier(&self) -> Result<(), RunError> {
        Ok(())
    }
}

/// A streamed transaction's batch being applied on this session's connection, lent to a
/// task meanwhile (`Run::down` is then its [`Downstream::successor`]); `Run::settle`
/// takes the session back.
struct Inflight {
    task: tokio::task::JoinHandle<(Downstream, Result<(), DownstreamError>)>,
    /// Inserts, updates and deletes of the batch (counted once it applied).
    ops: [u64; 3],
    /// Table definitions changed meanwhile: the session's cached columns go on return.
    forget_columns: bool,
}

impl Run<'_> {
    /// Counts a downstream transaction committed with `changes` (and, for a streamed
    /// one, the batches streamed before).
    fn note_applied(&mut self, changes: &[RowChange]) {
        let ops = add_ops(std::mem::take(&mut self.streamed_ops), changes);
        self.applier.ctx.applied(ops, None);
    }

    /// The steps that let `changes` join in multi-row statements, and `merged` set to
    /// whether they do: not in safe mode (upstream order), once the transaction refused
    /// them, nor once its DDL ran downstream (it cannot be read again to build it row by
    /// row); inserts into one table only join without them.
    fn levels(&mut self, changes: &[RowChange], safe: bool) -> Option<Vec<u32>> {
        self.merged = !safe && !self.row_by_row && !self.ddl_ran && !one_table_inserts(changes);
        self.merged.then(|| self.pool.levels(changes))
    }

    /// The statements of a streamed batch (`changes` with the savepoint `markers`
    /// among them), on this session.
    async fn build_batch(
        &mut self,
        changes: &[RowChange],
        markers: &[(usize, Savepoint)],
        safe: bool,
    ) -> Result<Vec<Stmt>, RunError> {
        let levels = self.levels(changes, safe);
        let refs: Vec<&RowChange> = changes.iter().collect();
        let here = self.here();
        let unit = Unit {
            here: &here,
            changes: &refs,
            markers,
            levels: levels.as_deref(),
            safe,
            count: 1,
            close: Close::Commit,
        };
        self.applier.build(&unit, unit.levels).await
    }

    /// [`Ctx::on_failure`] at the transaction being read.
    async fn on_failure(
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

    fn safe_mode(&self) -> bool {
        self.config.syncer.safe_mode
            || self.started.elapsed()
                < Duration::from_secs(self.config.syncer.safe_mode_after_start_s)
    }

    /// The transaction being read, for messages: `gtid 0-1-5 at binlog.000002:1234`.
    fn here(&self) -> At {
        self.current.as_ref().map_or(At::Nowhere, At::txn)
    }

    /// How the operator names the current transaction in `skip-ddl`: its GTID, else its
    /// starting coordinates.
    fn skip_name(&self) -> String {
        match &self.current {
            Some(t) => t
                .gtid
                .as_ref()
                .map_or_else(|| t.start.to_string(), |g| g.to_string()),
            None => String::new(),
        }
    }

    /// Whether the operator asked to pass over the statements of the current transaction.
    fn skip_requested(&self) -> bool {
        let Some(t) = &self.current else { return false };
        self.config.syncer.skip_ddl.iter().any(|s| {
            t.gtid.as_ref().is_some_and(|g| g.to_string() == *s) || t.start.to_string() == *s
        })
    }

    /// Takes a statement of the transaction being read into the schema history at once
    /// (later rows of the transaction decode with it; it is recorded at the commit), read
    /// in the SQL mode it was written in, and queues it to run downstream at its place
    /// among the transaction's rows, in its session context.
    fn statement(&mut self, statement: pump_reader::Statement) -> Result<(), RunError> {
        self.tables.clear();
        self.staged = true;
        let filter = &self.filter;
        let wants = |schema: &str, table: &str| filter.wants_table(schema, table);
        let vars = &statement.vars;
        let mode = SqlMode {
            ansi_quotes: vars.sql_mode_has(MODE_ANSI_QUOTES),
            no_backslash_escapes: vars.sql_mode_has(MODE_NO_BACKSLASH_ESCAPES),
        };
        let (schema_name, text) = (statement.schema.clone(), statement.text.clone());
        let staged = match &statement.undecodable {
            // Its text cannot be trusted: the tracker must not read it.
            Some(e) => Err(schema::DdlError {
                statement: text.chars().take(300).collect(),
                reason: e.to_string(),
            }),
            None => self.history.stage(&schema_name, &text, mode, &wants),
        };
        let applied = match staged {
            Ok(applied) => applied,
            Err(source) if self.skip_requested() => {
                tracing::warn!(at = %self.here(), statement = %text, reason = %source.reason,
                    "passing over a statement the schema tracker cannot apply, as skip-ddl asks");
                self.history.stage_skip(&text);
                self.ddl_not_run += 1;
                return Ok(());
            }
            Err(source) => {
                let skip = self.skip_name();
                return Err(self.here_fail(Cause::Ddl { source, skip }));
            }
        };
        let replicated = match applied.class {
            Class::Table => !applied.tables.is_empty(),
            Class::Truncate => true,
            Class::Database => applied
                .databases
                .iter()
                .any(|(db, _)| self.filter.wants_schema(db)),
            // Views, triggers, routines and events follow their schema's filter.
            Class::Object => applied
                .objects
                .iter()
                .any(|o| self.filter.wants_schema(&o.schema)),
            _ => false,
        };
        if matches!(
            applied.class,
            Class::Table | Class::Database | Class::Object
        ) {
            // Run here or not (the other direction may run it), the downstream's tables
            // may change: look at them again (the workers, after this transaction).
            self.forget_columns();
            self.tables_change = true;
        }
        if self.looped {
            // This channel's own write, come back: tracked (above), never run again.
        } else if self.config.syncer.sync_ddl && replicated {
            if let Some(code) = statement.vars.unknown {
                tracing::warn!(at = %self.here(), code,
                    "the statement's event carries a status variable this drainer does not \
                     know: the session settings written after it are not replayed");
            }
            // CREATE and DROP DATABASE name their database, and their event's schema is
            // that database itself (not there yet for CREATE, perhaps gone for a replayed
            // DROP): they run without USE. ALTER DATABASE may rely on it.
            let schema = if applied.class == Class::Database && !starts_with_alter(&text) {
                String::new()
            } else {
                schema_name
            };
            // An event runs on the site it was created on, as MariaDB's replica has it:
            // downstream it is disabled (SLAVESIDE_DISABLED).
            let then = applied
                .objects
                .iter()
                .filter(|o| o.kind == ObjectKind::Event && !o.dropped)
                .map(|o| {
                    format!(
                        "ALTER EVENT {}.{} DISABLE ON SLAVE",
                        quote(&o.schema),
                        quote(&o.name)
                    )
                })
                .collect();
            self.ddl.push((
                self.txn.len(),
                Ddl {
                    schema,
                    statement,
                    then,
                },
            ));
        } else if replicated {
            tracing::info!(at = %self.here(), statement = %text, "not run downstream (sync-ddl = false)");
            self.ddl_not_run += 1;
        }
        Ok(())
    }

    /// Forgets the transaction being read (rolled back, or not to be applied).
    fn drop_transaction(&mut self) {
        if std::mem::take(&mut self.staged) {
            // Its statements leave the schema history.
            self.tables.clear();
        }
        self.looped = false;
        self.prepared_before = false;
        self.one_phase = false;
        self.savepoints.clear();
        self.xa_outcome = None;
        self.tables_change = false;
        self.ddl_not_run = 0;
        self.txn.clear();
        self.txn_bytes = 0;
        self.ddl.clear();
        self.ddl_ran = false;
        self.history.discard_staged();
        self.abandon_stream();
        self.applier.ctx.metrics.buffered(0);
    }

    /// Gives up the open downstream transaction of a streamed one, if any: the session is
    /// dropped and the server rolls it back.
    fn abandon_stream(&mut self) {
        self.streamed_ops = [0; 3];
        if let Some(batch) = self.inflight.take() {
            // Its session goes with the task; the successor standing in kills it at its
            // next connection, should the server still hold it.
            batch.task.abort();
        }
        if self.streaming {
            self.applier.down.reset();
            self.streaming = false;
        }
    }

    /// Whether the buffered row changes should stream now.
    fn large(&self) -> bool {
        !self.looped
            && !self.prepared_before
            && (self.txn.len() >= STREAM_ROWS || self.txn_bytes >= STREAM_BYTES)
    }

    /// Streams the buffered row changes into the open downstream transaction (opening it
    /// first: pending DDL of the transaction runs before, as at a commit), by a task, while
    /// the next batch is read. A batch's failure, seen when the next batch or the commit
    /// comes, sets `reread`: the transaction is read again from its start.
    async fn stream(&mut self) -> Result<(), RunError> {
        // The batch before this one first: its failure reads the transaction again.
        self.settle().await?;
        if self.reread.is_some() {
            return Ok(());
        }
        let safe = self.safe_mode();
        if !self.streaming {
            // It runs on this session, in upstream order: everything before it first.
            self.pool.barrier().await?;
            let mut txn = std::mem::take(&mut self.txn);
            let mut from = 0;
            for (upto, ddl) in std::mem::take(&mut self.ddl) {
                self.apply_rows(&txn[from..upto], &[], Close::Commit, None)
                    .await?;
                from = upto;
                self.apply_ddl(&ddl).await?;
                self.ddl_ran = true;
            }
            txn.drain(..from);
            self.txn = txn;
            // Savepoints before the DDL ended with its implicit commit.
            self.savepoints.retain(|(at, _)| *at >= from);
            for (at, _) in &mut self.savepoints {
                *at -= from;
            }
            tracing::info!(at = %self.here(), "a large transaction: streaming its rows into one downstream transaction");
            let begun = match self.current.as_ref().and_then(|c| c.xa.as_ref()) {
                Some(xid) => {
                    let xid = self.applier.down.xa_id(xid);
                    self.applier.down.begin_xa(&xid).await
                }
                None => self.applier.down.begin(1).await.map(|()| true),
            };
            match begun {
                Ok(true) => self.streaming = true,
                Ok(false) => {
                    // Prepared downstream before a restart: nothing more of it to apply.
                    tracing::info!(at = %self.here(), "the XA transaction is prepared downstream already (before the restart)");
                    self.prepared_before = true;
                    self.txn.clear();
                    self.txn_bytes = 0;
                    self.savepoints.clear();
                    return Ok(());
                }
                Err(DownstreamError::Transient(reason)) => {
                    self.reread = Some(reason);
                    return Ok(());
                }
                Err(e) => return Err(self.here_fail(e)),
            }
        }
        let chunk = std::mem::take(&mut self.txn);
        let markers = std::mem::take(&mut self.savepoints);
        self.txn_bytes = 0;
        self.applier.ctx.metrics.buffered(0);
        let stmts = self.build_batch(&chunk, &markers, safe).await?;
        let ops = add_ops([0; 3], &chunk);
        drop(chunk);
        // Applied while the next batch is read and decoded (the server executes one batch
        // as the drainer decodes the next).
        let successor = self.applier.down.successor();
        let mut down = std::mem::replace(&mut self.applier.down, successor);
        let task = tokio::spawn(async move {
            let result = down.exec_owned(stmts).await;
            (down, result)
        });
        self.inflight = Some(Inflight {
            task,
            ops,
            forget_columns: false,
        });
        Ok(())
    }

    /// Waits for the streamed batch in flight, if any, and takes the session back; its
    /// failure is sorted by [`Run::stream_failed`] (which may set `reread`). `merged`
    /// still describes the batch: the next one is built only after this.
    async fn settle(&mut self) -> Result<(), RunError> {
        let Some(batch) = self.inflight.take() else {
            return Ok(());
        };
        let result = match batch.task.await {
            Ok((down, result)) => {
                self.applier.down = down;
                result
            }
            // Only a panic ends the task otherwise (it is aborted only after `take`);
            // `down` stays the successor, which kills the lost session.
            Err(e) => {
                return Err(self.here_fail(Cause::Task {
                    what: "the task applying a streamed batch failed",
                    reason: e.to_string(),
                }))
            }
        };
        if batch.forget_columns {
            self.applier.down.forget_columns();
        }
        if result.is_ok() {
            for (total, n) in self.streamed_ops.iter_mut().zip(batch.ops) {
                *total += n;
            }
        }
        self.stream_failed(result)
    }

    /// Drops the downstream's cached columns (the session's, also while it is lent).
    fn forget_columns(&mut self) {
        if let Some(batch) = &mut self.inflight {
            batch.forget_columns = true;
        }
        self.applier.down.forget_columns();
    }

    /// Sorts a failure of the open downstream transaction: a lost session, "unknown
    /// column" (once, with the columns looked at again), or a refused multi-row statement
    /// (once, to build it with a statement per row change) reads the transaction again;
    /// the latter two not once a DDL statement of it ran downstream (what came before
    /// that is committed there and would apply twice).
    fn stream_failed(&mut self, result: Result<(), DownstreamError>) -> Result<(), RunError> {
        let Err(error) = result else { return Ok(()) };
        let attempt = Attempt {
            merged: self.merged,
            may_refresh: !self.stream_refreshed && !self.ddl_ran,
            streamed: true,
            ..Attempt::default()
        };
        match decide(error, attempt) {
            Next::ReadAgain { rebuild, reason } => {
                match rebuild {
                    None => self.applier.ctx.metrics.retry(Retry::Reread),
                    Some(Rebuild::FreshColumns) => {
                        self.forget_columns();
                        self.stream_refreshed = true;
                    }
                    Some(Rebuild::RowByRow) => {
                        tracing::info!(at = %self.here(), %reason, "refused as multi-row statements; applying the transaction again with a statement per row change");
                        self.row_by_row = true;
                    }
                }
                self.reread = Some(reason);
                Ok(())
            }
            Next::Stop(e) => Err(self.here_fail(e)),
            other => unreachable!("a streamed transaction is read again or stops: {other:?}"),
        }
    }

    /// Ends the downstream part of a streamed transaction before a DDL statement of it
    /// (DDL commits implicitly downstream). Like rows before DDL in an ordinary
    /// transaction, this part carries no apply record.
    async fn end_stream_piece(&mut self) -> Result<(), RunError> {
        if !self.streaming {
            return Ok(());
        }
        self.settle().await?;
        if self.reread.is_some() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.txn);
        let markers = std::mem::take(&mut self.savepoints);
        self.txn_bytes = 0;
        let stmts = self.build_batch(&chunk, &markers, self.safe_mode()).await?;
        let mut result = self.applier.down.exec(&stmts).await;
        if result.is_ok() {
            result = self.applier.down.commit(None).await;
        }
        self.streaming = false;
        if result.is_ok() {
            self.note_applied(&chunk);
        }
        self.stream_failed(result)
    }

    /// Decodes one rows event into the transaction's row changes (with the definitions in
    /// force at this position); their statements are built at the commit.
    fn rows(&mut self, rows: &Rows, at: &Position) -> Result<(), RunError> {
        let (schema_name, table_name) = (&rows.table.schema, &rows.table.table);
        if let Some(mark) = &self.mark {
            if *schema_name == mark.schema && *table_name == mark.table {
                let ours = |image: &Option<Vec<pump_reader::event::Cell>>| {
                    mark_channel(image) == Some(mark.channel_id)
                };
                if rows.rows.iter().any(|c| ours(&c.before) || ours(&c.after)) {
                    self.looped = true;
                    self.txn.clear();
                    self.txn_bytes = 0;
                    self.abandon_stream();
                }
                return Ok(());
            }
        }
        if self.looped || self.prepared_before {
            // Dropped whole at its commit: nothing of it needs decoding.
            return Ok(());
        }
        if !self.filter.wants_table(schema_name, table_name) {
            return Ok(());
        }
        let cached = self
            .tables
            .get(schema_name.as_str())
            .and_then(|t| t.get(table_name.as_str()));
        let table = match cached {
            Some(t) => Arc::clone(t),
            None => {
                let t = self
                    .history
                    .catalog()
                    .table(schema_name, table_name)
                    .cloned()
                    .map(Arc::new)
                    .ok_or_else(|| {
                        RunError::apply(
                            &At::Position(at.clone()),
                            Cause::Untracked {
                                schema: schema_name.clone(),
                                table: table_name.clone(),
                            },
                        )
                    })?;
                self.tables
                    .entry(schema_name.clone())
                    .or_default()
                    .insert(table_name.clone(), Arc::clone(&t));
                t
            }
        };
        if table.sequence {
            // Each site keeps its own sequences (docs/operations.md §7): the row NEXTVAL
            // rewrote is not replicated.
            return Ok(());
        }
        let checks = Checks {
            foreign_keys: rows.foreign_key_checks(),
            unique: rows.unique_checks(),
        };
        // System-versioned tables, and tables with triggers downstream, take the row
        // event itself (see `crate::apply::binlog`).
        let replay = rows.raw.format.is_some()
            && (table.versioning.is_some()
                || (!self.config.syncer.fire_triggers
                    && self
                        .triggered
                        .contains(&(schema_name.clone(), table_name.clone()))));
        let mut raw = replay.then(|| Raw::First(Arc::new(rows.raw.clone())));
        for change in &rows.rows {
            let decode = |image: &Option<Vec<pump_reader::event::Cell>>| {
                image
                    .as_ref()
                    .map(|cells| {
                        decode_row(&table, &rows.table, cells)
                            .map_err(|e| RunError::apply(&At::Position(at.clone()), e))
                    })
                    .transpose()
            };
            let (before, after) = (decode(&change.before)?, decode(&change.after)?);
            if before.is_some() || after.is_some() {
                self.txn_bytes += [&before, &after]
                    .into_iter()
                    .flatten()
                    .map(|row| row.iter().map(approx_size).sum::<usize>())
                    .sum::<usize>();
                self.txn.push(RowChange {
                    table: Arc::clone(&table),
                    before,
                    after,
                    checks,
                    raw: match raw.take() {
                        Some(first) => Some(first),
                        None if replay => Some(Raw::Rest),
                        None => None,
                    },
                });
            }
        }
        Ok(())
    }

    fn here_fail(&self, cause: impl Into<Cause>) -> RunError {
        RunError::apply(&self.here(), cause)
    }

    /// Commits the transaction read so far downstream: a plain one goes to a worker;
    /// one with DDL (or streamed) applies on this session once the workers are idle.
    /// `timestamp` is its upstream commit time.
    async fn commit(&mut self, position: Position, timestamp: u32) -> Result<(), RunError> {
        if self.streaming {
            return self.commit_streamed(position, timestamp).await;
        }
        self.history.commit_staged(&self.store, &position)?;
        if self.looped {
            // The reverse direction applied it here: it goes no further. Its DDL is in
            // the schema history (above); the downstream's tables are looked at again.
            tracing::debug!(at = %self.here(), "dropped a transaction carrying this channel's mark");
            let tables_change = self.tables_change;
            self.drop_transaction();
            self.applier.ctx.metrics.loop_dropped();
            self.applier.ctx.status.lock().loops_dropped += 1;
            if tables_change {
                self.columns_gen += 1;
                self.refresh_links().await?;
            }
            return self.committed(position, timestamp, 0, tables_change);
        }
        if self.applied_before(&position) {
            return self.committed(position, timestamp, 0, false);
        }
        if let Some(outcome) = self.xa_outcome.take() {
            return self.end_xa(outcome, position, timestamp).await;
        }
        let ddl_not_run = std::mem::take(&mut self.ddl_not_run);
        let txn = std::mem::take(&mut self.txn);
        let ddl = std::mem::take(&mut self.ddl);
        let had_ddl = !ddl.is_empty() || std::mem::take(&mut self.ddl_ran);
        let tables_change = std::mem::take(&mut self.tables_change);
        // Savepoints matter only where a ROLLBACK TO undoes part of the transaction.
        let mut markers = std::mem::take(&mut self.savepoints);
        if !markers.iter().any(|(_, s)| s.rollback) {
            markers.clear();
        } else if had_ddl {
            return Err(self.here_fail(Cause::DdlWithRollbackTo));
        }
        let xa = self.current.as_ref().and_then(|c| c.xa.clone());
        if let Some(xid) = xa {
            // Prepared upstream: prepared downstream, in upstream order.
            self.pool.barrier().await?;
            let xid = self.applier.down.xa_id(&xid);
            self.apply_rows(&txn, &markers, Close::Prepare(&xid), None)
                .await?;
            // Recorded once prepared (an XA transaction writes no record of its own): a
            // restart after its XA COMMIT must not find it unapplied and prepare it again.
            failpoint::hit("after-xa-prepare");
            self.record_alone(&position).await?;
            return self.committed(position, timestamp, ddl_not_run, false);
        }
        if !had_ddl && !tables_change && markers.is_empty() {
            if txn.is_empty() {
                // Nothing of it is replicated (filters).
                self.applier.ctx.metrics.filtered();
                return self.committed(position, timestamp, ddl_not_run, false);
            }
            let job = Job::new(
                txn,
                position.clone(),
                timestamp,
                self.safe_mode(),
                self.here(),
                self.columns_gen,
            );
            self.pool.dispatch(job).await?;
            self.applier.ctx.status.lock().upstream = Some(position);
            return self.save_if_due(false);
        }
        // DDL waits for every earlier transaction, and commits implicitly downstream: the
        // rows before each statement go in one transaction, the statement runs, then the
        // rows after it. The last piece carries the apply record (the whole transaction is
        // applied then); after a DDL statement with no rows after it, the record is
        // written on its own.
        self.pool.barrier().await?;
        let mut from = 0;
        let mut applied = false;
        for (upto, ddl) in ddl {
            applied |= self
                .apply_rows(&txn[from..upto], &[], Close::Commit, None)
                .await?;
            from = upto;
            self.apply_ddl(&ddl).await?;
        }
        if had_ddl && from == txn.len() {
            self.record_alone(&position).await?;
        } else {
            applied |= self
                .apply_rows(&txn[from..], &markers, Close::Commit, Some(&position))
                .await?;
        }
        if !applied && !had_ddl {
            self.applier.ctx.metrics.filtered();
        }
        if tables_change {
            self.columns_gen += 1;
            self.refresh_links().await?;
        }
        failpoint::hit("after-commit");
        self.committed(position, timestamp, ddl_not_run, had_ddl)
    }

    /// Commits a streamed transaction: its last rows and the apply record go into the
    /// open downstream transaction, then COMMIT. Its statements enter the schema history
    /// only then: a lost session reads the whole transaction again from its start.
    async fn commit_streamed(
        &mut self,
        position: Position,
        timestamp: u32,
    ) -> Result<(), RunError> {
        self.settle().await?;
        if self.reread.is_some() {
            // Read again, it commits then.
            return Ok(());
        }
        // Recorded before the downstream COMMIT, as for any transaction: a restart after
        // the commit resumes past it and must know its statements. A reread loads the
        // history again at the transaction's start.
        self.history.commit_staged(&self.store, &position)?;
        // A worker applied it before the last stop, when it did not stream (a narrower
        // filter): its streamed rows are rolled back. One whose DDL ran here never went
        // to a worker.
        if !self.ddl_ran && self.applied_before(&position) {
            return self.committed(position, timestamp, 0, false);
        }
        let chunk = std::mem::take(&mut self.txn);
        let markers = std::mem::take(&mut self.savepoints);
        self.txn_bytes = 0;
        let stmts = self.build_batch(&chunk, &markers, self.safe_mode()).await?;
        let stamp = self.applier.down.stamp(&position, &position);
        let mut result = self.applier.down.exec(&stmts).await;
        let xa = self.current.as_ref().and_then(|c| c.xa.clone());
        let one_phase = std::mem::take(&mut self.one_phase);
        if result.is_ok() {
            result = match &xa {
                Some(xid) if one_phase => {
                    let xid = self.applier.down.xa_id(xid);
                    self.applier.down.commit_one_phase(&xid, &stamp).await
                }
                // Prepared as upstream; a lost answer reads it again, and its XA START
                // then finds it prepared.
                Some(xid) => {
                    let xid = self.applier.down.xa_id(xid);
                    self.applier.down.end_prepare_xa(&xid).await
                }
                None => self.applier.down.commit(Some(&stamp)).await,
            };
        }
        let prepared = xa.is_some() && !one_phase;
        self.streaming = false;
        match result {
            Ok(()) => {}
            Err(DownstreamError::Transient(reason))
                if !prepared && self.recorded_at(&stamp).await? =>
            {
                tracing::info!(at = %self.here(), %reason, "the apply record shows the streamed transaction committed before the connection was lost");
            }
            Err(e) => return self.stream_failed(Err(e)),
        }
        if prepared {
            failpoint::hit("after-xa-prepare");
            self.record_alone(&position).await?;
        }
        self.note_applied(&chunk);
        failpoint::hit("after-commit");
        let ddl_not_run = std::mem::take(&mut self.ddl_not_run);
        let had_ddl = std::mem::take(&mut self.ddl_ran);
        if std::mem::take(&mut self.tables_change) {
            self.columns_gen += 1;
            self.refresh_links().await?;
        }
        self.committed(position, timestamp, ddl_not_run, had_ddl)
    }

    /// Ends an XA transaction prepared downstream earlier as the upstream ended it
    /// (`XA COMMIT` or `XA ROLLBACK`), then records the position on its own (an XA
    /// statement cannot share a transaction). A replay after a crash between the two
    /// finds nothing prepared and passes on.
    async fn end_xa(
        &mut self,
        outcome: XaOutcome,
        position: Position,
        timestamp: u32,
    ) -> Result<(), RunError> {
        self.pool.barrier().await?;
        let xid = self.applier.down.xa_id(&outcome.xid);
        let message = "cannot end the XA transaction downstream yet; retrying";
        let mut backoff = Duration::from_millis(100);
        let found = loop {
            match self.applier.down.end_xa(&xid, outcome.commit).await {
                Ok(found) => break found,
                Err(e) => {
                    self.on_failure(Retry::Transaction, message, e, &mut backoff)
                        .await?
                }
            }
        };
        failpoint::hit("after-xa-end");
        if found {
            self.applier.ctx.applied([0; 3], Some(timestamp));
        } else {
            tracing::info!(at = %self.here(), xid = %outcome.xid,
                "no XA transaction of this id is prepared downstream: it ended there before \
                 a restart, changed nothing replicated, or was prepared upstream before this \
                 channel began reading");
        }
        self.record_alone(&position).await?;
        self.committed(position, timestamp, 0, false)
    }

    /// Whether a worker committed the transaction ending at `position` before the last
    /// stop, out of upstream order (the apply records list it): then it is dropped here,
    /// a streamed one's open downstream transaction rolled back.
    fn applied_before(&mut self, position: &Position) -> bool {
        let same = |p: &Position| order(p, position) == Some(std::cmp::Ordering::Equal);
        let Some(i) = self.applied_past.iter().position(same) else {
            return false;
        };
        tracing::info!(at = %self.here(), "passing over a transaction applied before the restart");
        self.applied_past.remove(i);
        self.drop_transaction();
        true
    }

    /// Bookkeeping after a transaction applied on this session (or with nothing to apply):
    /// status, its place in the committed prefix, and the checkpoint (at once after DDL,
    /// else every `checkpoint-interval-ms`).
    fn committed(
        &mut self,
        position: Position,
        timestamp: u32,
        ddl_not_run: u64,
        had_ddl: bool,
    ) -> Result<(), RunError> {
        self.stream_refreshed = false;
        self.row_by_row = false;
        self.applier.ctx.metrics.ddl(0, ddl_not_run);
        self.applier.ctx.metrics.buffered(0);
        let mut s = self.applier.ctx.status.lock();
        s.ddl_skipped += ddl_not_run;
        s.last_commit = Some(s.last_commit.map_or(timestamp, |l| l.max(timestamp)));
        s.upstream = Some(position.clone());
        s.state = State::Running;
        drop(s);
        self.pool.pass(position);
        self.save_if_due(had_ddl)
    }

    /// Saves the checkpoint when `now`, or when `checkpoint-interval-ms` has passed.
    fn save_if_due(&mut self, now: bool) -> Result<(), RunError> {
        let interval = Duration::from_millis(self.config.syncer.checkpoint_interval_ms);
        if now || self.last_save.elapsed() >= interval {
            self.save()?;
        }
        Ok(())
    }

    /// Whether the committed prefix moved past the last checkpoint.
    fn unsaved(&self) -> bool {
        self.saved.as_ref() != Some(&self.pool.low())
    }

    /// Applies row changes (with the savepoint `markers` among them, positions into
    /// `changes`) as one downstream transaction on this session, once every earlier
    /// transaction is committed, closed as `close` says (with the apply record of
    /// `position` when given): see [`Applier::apply`]. Whether a downstream transaction
    /// was committed (none when `changes` make no statement).
    async fn apply_rows(
        &mut self,
        changes: &[RowChange],
        markers: &[(usize, Savepoint)],
        close: Close<'_>,
        position: Option<&Position>,
    ) -> Result<bool, RunError> {
        let safe = self.safe_mode();
        let levels = self.levels(changes, safe);
        let refs: Vec<&RowChange> = changes.iter().collect();
        let here = self.here();
        let unit = Unit {
            here: &here,
            changes: &refs,
            markers,
            levels: levels.as_deref(),
            safe,
            count: 1,
            close,
        };
        match self.applier.apply(&unit, &AfterEarlier(position)).await? {
            Outcome::Applied { row_by_row } => {
                self.row_by_row |= row_by_row;
                self.note_applied(changes);
                Ok(true)
            }
            Outcome::PreparedBefore => Ok(true),
            Outcome::Empty => Ok(false),
            Outcome::Split => unreachable!("one upstream transaction is not split"),
        }
    }

    /// Reads the downstream's foreign keys for the workers' conflict keys (at start, and
    /// after every transaction that changes tables).
    async fn refresh_links(&mut self) -> Result<(), RunError> {
        let schemas = self.tracked_schemas();
        let message = "cannot read the downstream's foreign keys yet; retrying";
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.applier.down.foreign_keys(&schemas).await {
                Ok(fks) => break self.pool.set_links(links(&fks)),
                Err(e) => {
                    self.on_failure(Retry::Columns, message, e, &mut backoff)
                        .await?
                }
            }
        }
        self.refresh_triggers(&schemas).await
    }

    /// The schemas of the tracked tables.
    fn tracked_schemas(&self) -> Vec<String> {
        let mut schemas: Vec<String> = self
            .history
            .catalog()
            .tables
            .keys()
            .map(|(schema, _)| schema.clone())
            .collect();
        schemas.dedup();
        schemas
    }

    /// Reads which downstream tables have triggers (their rows then apply as row
    /// events): at start, after DDL, and every `TRIGGERS_EVERY` (a trigger created on the
    /// downstream directly is seen then).
    async fn refresh_triggers(&mut self, schemas: &[String]) -> Result<(), RunError> {
        let message = "cannot read the downstream's triggers yet; retrying";
        let mut backoff = Duration::from_millis(100);
        let found = loop {
            match self.applier.down.triggered_tables(schemas).await {
                Ok(found) => break found,
                Err(e) => {
                    self.on_failure(Retry::Columns, message, e, &mut backoff)
                        .await?
                }
            }
        };
        if found != self.triggered && !self.config.syncer.fire_triggers {
            tracing::info!(tables = ?found, "downstream tables with triggers: their rows apply as row events, which fire none");
        }
        self.triggered = found;
        self.triggers_read = Instant::now();
        Ok(())
    }

    /// Whether this session's apply record says `stamp`'s transaction is committed.
    async fn recorded_at(&mut self, stamp: &Stamp) -> Result<bool, RunError> {
        let here = self.here();
        self.applier.recorded_at(&here, stamp).await
    }

    /// Writes the apply record of `position` on its own (after DDL), retrying transient
    /// failures. It touches only the drainer's schema, which no direction replicates, so
    /// it needs no mark.
    async fn record_alone(&mut self, position: &Position) -> Result<(), RunError> {
        let message = "cannot write the apply record yet; retrying";
        let mut backoff = Duration::from_millis(100);
        loop {
            let stamp = self.applier.down.stamp(position, position);
            match self.applier.down.write_record(&stamp).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.on_failure(Retry::Record, message, e, &mut backoff)
                        .await?
                }
            }
        }
    }

    /// Runs one DDL statement downstream, retrying transient failures.
    async fn apply_ddl(&mut self, ddl: &Ddl) -> Result<(), RunError> {
        failpoint::hit("before-ddl");
        let message = "downstream failed during DDL; retrying it";
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = self
            .applier
            .down
            .apply_ddl(&ddl.schema, &ddl.statement, &ddl.then)
            .await
        {
            self.on_failure(Retry::Ddl, message, e, &mut backoff)
                .await?;
        }
        failpoint::hit("after-ddl");
        self.applier.ctx.metrics.ddl(1, 0);
        let mut s = self.applier.ctx.status.lock();
        s.ddl_applied += 1;
        s.state = State::Running;
        Ok(())
    }

    /// Saves the committed prefix as the checkpoint.
    fn save(&mut self) -> Result<(), RunError> {
        if self.unsaved() {
            let p = self.pool.low();
            self.store.save_checkpoint(&p, now(), Batch::default())?;
            tracing::debug!(position = %p, "checkpoint saved");
            let mut s = self.applier.ctx.status.lock();
            s.checkpoint = Some(p.clone());
            s.checkpoint_saved = Some(Instant::now());
            drop(s);
            self.saved = Some(p);
        }
        self.last_save = Instant::now();
        Ok(())
    }
}

/// The upstream's position and table definitions as the process started: where a first
/// start (no checkpoint, no apply record, no configured start) begins, so that what is
/// written while the drainer checks the servers is replicated too.
pub struct StartNow {
    position: Position,
    snapshot: schema::Snapshot,
}

impl StartNow {
    pub fn position(&self) -> &Position {
        &self.position
    }
}

/// Whether the next start of `config` is a first one: no checkpoint nor schema history in
/// data-dir, and no start configured. A data-dir that cannot be read says no (the start
/// reports it).
pub fn first_start(config: &Config) -> bool {
    let pump = &config.pump;
    if !pump.initial_gtid.is_empty() || !pump.initial_file.is_empty() {
        return false;
    }
    if !config.data_dir.exists() {
        return true;
    }
    checkpoint::Store::open_read_only(&config.data_dir).is_ok_and(|store| {
        matches!(store.checkpoint(), Ok(None))
            && matches!(History::bootstrap_position(&store), Ok(None))
    })
}

/// Reads the upstream's current position, then the definitions of the tables the filters
/// replicate (in that order, as a first start's bootstrap does).
pub async fn capture_now(config: &Config) -> Result<StartNow, RunError> {
    let filter = Filter::new(&config.syncer).map_err(RunError::Config)?;
    let reader =
        LiveReader::connect(upstream(&config.pump), StartAt::Now, LiveOptions::default()).await?;
    let snapshot = read_definitions(&config.pump, &filter).await?;
    Ok(StartNow {
        position: reader.position().clone(),
        snapshot,
    })
}

fn upstream(pump: &conf::Pump) -> Upstream {
    Upstream {
        host: pump.host.clone(),
        port: pump.port,
        user: pump.user.clone(),
        password: pump.password.expose().to_owned(),
        server_id: pump.server_id,
    }
}

/// The upstream's definitions of the tables `filter` replicates, for a bootstrap.
async fn read_definitions(
    pump: &conf::Pump,
    filter: &Filter,
) -> Result<schema::Snapshot, RunError> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(pump.host.as_str())
        .tcp_port(pump.port)
        .user(Some(pump.user.as_str()))
        .pass(Some(pump.password.expose()))
        .prefer_socket(false);
    // Bounded: a hung upstream must not hold the start forever (many tables take a
    // while; ten minutes is far beyond what reading definitions needs).
    let read = async {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| RunError::Connect(e.to_string()))?;
        let snapshot = read_upstream(&mut conn, |s, t| filter.wants_table(s, t))
            .await
            .map_err(|e| RunError::Connect(format!("reading table definitions: {e}")))?;
        conn.disconnect().await.ok();
        Ok::<_, RunError>(snapshot)
    };
    tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .map_err(|_| {
            RunError::Connect("reading table definitions: no answer within 600 s".into())
        })?
}

/// Runs one direction until `stop` turns true (then the transaction in flight is
/// dropped, never half-applied, and the checkpoint saved) or a definite error, keeping
/// `status` current. `started_at`, from [`capture_now`] as the process started, is where a
/// first start begins (without it, where the upstream is when reading begins).
pub async fn run(
    config: &Config,
    mut stop: watch::Receiver<bool>,
    status: Arc<Status>,
    started_at: Option<StartNow>,
) -> Result<(), RunError> {
    let filter = Filter::new(&config.syncer).map_err(RunError::Config)?;
    let pump = &config.pump;
    let to = &config.syncer.to;
    let store = Store::open(&config.data_dir)?;
    let identity = Identity {
        upstream: identify(&pump.host, pump.port, &pump.user, pump.password.expose())
            .await
            .map_err(RunError::Connect)?,
        downstream: identify(&to.host, to.port, &to.user, to.password.expose())
            .await
            .map_err(RunError::Connect)?,
        channel_id: config.syncer.channel_id,
    };
    store.claim(&identity)?;

    let (mark_schema, mark_table) = config
        .syncer
        .mark_table
        .split_once('.')
        .unwrap_or(("retl", "_drainer_repl_mark"));
    let mark = match config.syncer.loopback_control {
        false => None,
        true => Some(Mark {
            schema: mark_schema.to_owned(),
            table: mark_table.to_owned(),
            channel_id: config.syncer.channel_id,
            rows: config.syncer.worker_count + 1,
            server_id: config.syncer.effective_mark_server_id().ok_or_else(|| {
                RunError::Config("syncer.mark-server-id must be set for this channel-id".into())
            })?,
        }),
    };
    let record = ApplyRecord {
        schema: mark_schema.to_owned(),
        channel_id: config.syncer.channel_id,
        source: identity
            .upstream
            .uuid
            .clone()
            .unwrap_or_else(|| format!("server_id:{}", identity.upstream.server_id)),
    };
    let mut down = Downstream::new(Target {
        host: to.host.clone(),
        port: to.port,
        user: to.user.clone(),
        password: to.password.expose().to_owned(),
        partial: to.sync_mode == 2,
        mark: mark.clone(),
        record: record.clone(),
        sessions: config.syncer.worker_count + 1,
    });

    // Where to resume: the data-dir's checkpoint (or bootstrap), unless the downstream's
    // apply record shows later transactions committed (see `resume`).
    let saved = store.checkpoint()?.map(|c| c.position);
    let bootstrap = match &saved {
        Some(_) => None,
        None => History::bootstrap_position(&store)?,
    };
    let Some(recorded) = read_record(&mut down, &mut stop, &status).await? else {
        return Ok(());
    };
    let configured_start = !pump.initial_gtid.is_empty() || !pump.initial_file.is_empty();
    let found = Found {
        configured: match saved.is_none() && bootstrap.is_none() && configured_start {
            true => Some(configured_position(pump)?),
            false => None,
        },
        checkpoint: saved.clone(),
        bootstrap,
        record: recorded,
    };
    let decided = resume::resume(found, &config.data_dir, &record.delete_hint())?;
    if let Some(note) = &decided.note {
        note.log();
    }
    let Resume {
        from: resume,
        past_checkpoint,
        applied_past,
        ..
    } = decided;
    if past_checkpoint {
        let recorded = resume.as_ref().expect("the record's position");
        store.save_checkpoint(recorded, now(), Batch::default())?;
    }
    if !applied_past.is_empty() {
        tracing::info!(
            transactions = applied_past.len(),
            "workers committed transactions past the resume position before the last stop: \
             they will be passed over"
        );
    }
    // The schema history as it stands where reading resumes: what was recorded after it
    // (statements whose transaction did not commit downstream before a crash, even
    // before the first checkpoint) is recorded again when it is read again.
    let history_at = resume.as_ref();
    let mut history = History::load(&store, history_at)?;
    status.lock().checkpoint = if past_checkpoint {
        resume.clone()
    } else {
        saved.clone()
    };
    // A first start begins where the upstream was as the process started, with the
    // definitions read then.
    let started_at =
        started_at.filter(|_| resume.is_none() && !configured_start && history.is_empty());
    let start = match (&resume, &started_at) {
        (Some(p), _) => start_at(p),
        (None, _) if configured_start => start_at(&configured_position(pump)?),
        (None, Some(now)) => start_at(&now.position),
        (None, None) => StartAt::Now,
    };
    let mut reader = LiveReader::connect(upstream(pump), start, LiveOptions::default()).await?;
    if history.is_empty() {
        // First start: the definitions where reading begins.
        let snapshot = match started_at {
            Some(now) => now.snapshot,
            None => read_definitions(pump, &filter).await?,
        };
        history.bootstrap(&store, reader.position(), &snapshot)?;
        tracing::info!(tables = history.catalog().tables.len(), position = %reader.position(), "schema bootstrapped");
    }
    tracing::info!(position = %reader.position(), "replicating");
    {
        let mut s = status.lock();
        s.state = State::Running;
        s.upstream = Some(reader.position().clone());
    }

    let ctx = Ctx {
        status: Arc::clone(&status),
        metrics: Metrics::new(),
        stop: stop.clone(),
        partial: to.sync_mode == 2,
    };
    // Every writer lists the transactions committed past the watermark before this
    // start until the watermark passes them: a writer's next record replaces its row,
    // and a second crash must still find them.
    down.seed_after(&applied_past);
    let pool = Pool::start(
        config.syncer.worker_count,
        config.syncer.txn_batch,
        &ctx,
        &down,
        reader.position().clone(),
    );
    let mut run = Run {
        config,
        filter,
        store,
        history,
        applier: Applier { down, ctx },
        started: Instant::now(),
        txn: Vec::new(),
        ddl: Vec::new(),
        current: None,
        mark,
        looped: false,
        ddl_not_run: 0,
        saved: resume.clone(),
        last_save: Instant::now(),
        txn_bytes: 0,
        txn_from: None,
        streaming: false,
        ddl_ran: false,
        stream_refreshed: false,
        row_by_row: false,
        merged: false,
        reread: None,
        inflight: None,
        pool,
        applied_past,
        tables_change: false,
        columns_gen: 0,
        idle: false,
        tables: HashMap::new(),
        staged: false,
        streamed_ops: [0; 3],
        savepoints: Vec::new(),
        xa_outcome: None,
        prepared_before: false,
        one_phase: false,
        triggered: std::collections::HashSet::new(),
        triggers_read: Instant::now(),
    };
    run.applier
        .down
        .set_upstream_mariadb(reader.flavor() == pump_reader::Flavor::MariaDb);
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
    let outcome = async { loop {
        let event = tokio::select! {
            biased;
            _ = stop.changed() => break,
            e = &mut failed => return Err(e),
            e = reader.next_event() => e?,
            // An idle upstream still gets its last commit saved in time, and caught up
            // shown once the workers are done.
            _ = tokio::time::sleep(interval), if run.unsaved() || run.idle => {
                run.save()?;
                if run.idle && run.pool.idle() {
                    run.applier.ctx.status.lock().caught_up = true;
                }
                continue;
            }
        };
        run.applier.ctx.metrics.event(match &event {
            TxnEvent::Begin(_) => 0,
            TxnEvent::Change(Change::Rows(_)) => 1,
            TxnEvent::Change(Change::Statement(_)) => 2,
            TxnEvent::Change(Change::Savepoint(_)) => 6,
            TxnEvent::Change(Change::Xa(_) | Change::XaOnePhase) => 7,
            TxnEvent::Commit { .. } => 3,
            TxnEvent::Rollback => 4,
            TxnEvent::Idle { .. } => 5,
        });
        if reader.reconnects() > reconnects {
            run.applier.ctx.metrics.reconnects(reader.reconnects() - reconnects);
            reconnects = reader.reconnects();
        }
        match event {
            TxnEvent::Begin(start) => {
                run.idle = false;
                run.drop_transaction();
                if run.triggers_read.elapsed() >= TRIGGERS_EVERY {
                    let schemas = run.tracked_schemas();
                    run.refresh_triggers(&schemas).await?;
                }
                // Written by this channel's own sessions (see `Mark::server_id`): every
                // event group, a non-transactional table's and DDL included.
                run.looped = run.mark.as_ref().is_some_and(|m| m.server_id == start.server_id);
                run.current = Some(start);
                run.txn_from = Some(reader.position().clone());
                run.applier.ctx.status.lock().caught_up = false;
            }
            TxnEvent::Change(Change::Rows(rows)) => {
                let at = reader.position().clone();
                run.rows(&rows, &at)?;
                // Its event goes once its decoded rows are applied (a large one streams).
                drop(rows);
                run.applier.ctx.metrics.buffered(run.txn.len());
                if run.large() {
                    run.stream().await?;
                }
            }
            TxnEvent::Change(Change::Statement(s)) => {
                run.statement(s)?;
                if run.streaming && !run.ddl.is_empty() {
                    // It runs downstream, which commits implicitly: the streamed part
                    // before it commits first, and the statement follows it.
                    run.end_stream_piece().await?;
                    for (upto, _) in &mut run.ddl {
                        *upto = 0;
                    }
                }
            }
            TxnEvent::Change(Change::Savepoint(savepoint)) => {
                if !run.looped && !run.prepared_before {
                    run.savepoints.push((run.txn.len(), savepoint));
                    if run.streaming {
                        // In order with the rows streamed before it.
                        run.stream().await?;
                    }
                }
            }
            TxnEvent::Change(Change::Xa(outcome)) => run.xa_outcome = Some(outcome),
            TxnEvent::Change(Change::XaOnePhase) => {
                if run.streaming {
                    // Begun downstream as an XA transaction: it ends as one.
                    run.one_phase = true;
                } else if let Some(current) = &mut run.current {
                    current.xa = None;
                }
            }
            TxnEvent::Commit {
                position,
                timestamp,
            } => run.commit(position, timestamp).await?,
            TxnEvent::Rollback => run.drop_transaction(),
            TxnEvent::Idle { position } => {
                if run.txn.is_empty() {
                    run.idle = true;
                    // Not under the status lock: the workers take the two locks the
                    // other way round.
                    let idle = run.pool.idle();
                    let mut s = run.applier.ctx.status.lock();
                    s.caught_up = idle;
                    s.upstream = Some(position.clone());
                    drop(s);
                    run.pool.pass(position);
                }
            }
        }
        if let Some(reason) = run.reread.take() {
            // The open downstream transaction of a streamed one is gone: read it again.
            let from = run
                .txn_from
                .clone()
                .expect("a streamed transaction began after its starting position was kept");
            tracing::warn!(at = %run.here(), %reason, "the streamed transaction's downstream part was lost or refused; reading the transaction again from its start");
            run.applier.ctx.status.failed(format!("{}: {reason}", run.here()), true);
            run.drop_transaction();
            // Statements of the transaction may be recorded already (at its commit).
            run.history = History::load(&run.store, Some(&from))?;
            run.tables.clear();
            reader.rewind(from);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok::<(), RunError>(())
    }
    .await;
    if run.streaming {
        tracing::info!(at = %run.here(), "rolling back the streamed transaction in flight; the next start reads it again");
        run.abandon_stream();
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
