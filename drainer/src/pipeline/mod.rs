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

mod commit;
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
use links::TRIGGERS_EVERY;
use reading::{Fate, Reading, Stream};
use resume::{Found, Resume};
use start::{
    configured_position, identify, now, read_definitions, read_record, start_at, upstream,
};
use statement::Ddl;

pub use start::{capture_now, first_start, StartNow};

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
        mark,
        saved: resume.clone(),
        last_save: Instant::now(),
        pool,
        applied_past,
        columns_gen: 0,
        idle: false,
        tables: HashMap::new(),
        reading: Reading::default(),
        retries: Retries::default(),
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
        run.applier.ctx.metrics.event(&event);
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
                let looped = run.mark.as_ref().is_some_and(|m| m.server_id == start.server_id);
                run.reading = Reading::begin(start, reader.position().clone(), looped);
                run.applier.ctx.status.lock().caught_up = false;
            }
            TxnEvent::Change(Change::Rows(rows)) => {
                let at = reader.position().clone();
                run.rows(&rows, &at)?;
                // Its event goes once its decoded rows are applied (a large one streams).
                drop(rows);
                run.applier.ctx.metrics.buffered(run.reading.rows.len());
                if run.reading.large() {
                    run.stream().await?;
                }
            }
            TxnEvent::Change(Change::Statement(s)) => {
                run.statement(s)?;
                if run.reading.stream.is_open() && !run.reading.ddl.is_empty() {
                    // It runs downstream, which commits implicitly: the streamed part
                    // before it commits first, and the statement follows it.
                    run.end_stream_piece().await?;
                    run.reading.piece_committed();
                }
            }
            TxnEvent::Change(Change::Savepoint(savepoint)) => {
                if !run.reading.dropped() {
                    let at = run.reading.rows.len();
                    run.reading.markers.push(Marker { at, savepoint });
                    if run.reading.stream.is_open() {
                        // In order with the rows streamed before it.
                        run.stream().await?;
                    }
                }
            }
            TxnEvent::Change(Change::Xa(outcome)) => run.reading.xa_outcome = Some(outcome),
            TxnEvent::Change(Change::XaOnePhase) => match &mut run.reading.stream {
                // Begun downstream as an XA transaction: it ends as one.
                Stream::Open { one_phase, .. } => *one_phase = true,
                _ => {
                    if let Some(start) = &mut run.reading.start {
                        start.xa = None;
                    }
                }
            },
            TxnEvent::Commit {
                position,
                timestamp,
            } => run.commit(position, timestamp).await?,
            TxnEvent::Rollback => run.drop_transaction(),
            TxnEvent::Idle { position } => {
                if run.reading.rows.is_empty() {
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
        if let Some(reason) = run.take_lost() {
            // The open downstream transaction of a streamed one is gone: read it again.
            let from = run
                .reading
                .from
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
