//! A transaction read to its end: handed to a worker, or applied on this session once
//! every earlier one is committed (DDL, savepoints, XA), or passed over (a loop, applied
//! before a restart); then its place in the committed prefix, and the checkpoint.

use super::*;

/// The pipeline's own session applies after every earlier transaction committed
/// (after [`Pool::barrier`]), with the apply record of this position when given.
pub(super) struct AfterEarlier<'a>(Option<&'a Position>);

/// What [`Run::commit_with_ddl`] applies: the transaction's row changes, its statements
/// and savepoints, and what it is.
struct Pieces {
    txn: Vec<RowChange>,
    ddl: Vec<Ddl>,
    markers: Vec<Marker>,
    had_ddl: bool,
    tables_change: bool,
    ddl_not_run: u64,
}

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

/// What a [`Unit`] of this session's borrows: its row changes, their steps for
/// multi-row statements (see [`Run::levels`]), where it stands for messages.
pub(super) struct Own<'c> {
    here: At,
    changes: Vec<&'c RowChange>,
    pub(super) levels: Option<Vec<u32>>,
    safe: bool,
}

impl<'c> Own<'c> {
    /// The unit of one upstream transaction (or a piece of one), with its `markers`.
    pub(super) fn unit<'u>(&'u self, markers: &'u [Marker], close: Close<'u>) -> Unit<'u> {
        Unit {
            here: &self.here,
            changes: &self.changes,
            markers,
            levels: self.levels.as_deref(),
            safe: self.safe,
            count: 1,
            close,
        }
    }
}

impl Run<'_> {
    /// `changes` of the transaction being read, to apply or build on this session.
    pub(super) fn own<'c>(&self, changes: &'c [RowChange], safe: bool) -> Own<'c> {
        Own {
            here: self.here(),
            changes: changes.iter().collect(),
            levels: self.levels(changes, safe),
            safe,
        }
    }

    /// Counts a downstream transaction committed with `changes` (and, for a streamed
    /// one, the row changes of the batches streamed before: `streamed`).
    pub(super) fn note_applied(&self, mut streamed: Ops, changes: &[RowChange]) {
        streamed += Ops::of(changes);
        self.applier.ctx.applied(streamed, None);
    }

    /// The steps that let `changes` join in multi-row statements: none in safe mode
    /// (upstream order), once the transaction refused them, nor once its DDL ran
    /// downstream (it cannot be read again to build it row by row); inserts into one
    /// table only join without them.
    pub(super) fn levels(&self, changes: &[RowChange], safe: bool) -> Option<Vec<u32>> {
        let merged = !safe
            && !self.retries.row_by_row
            && !self.reading.ddl_ran
            && !one_table_inserts(changes);
        merged.then(|| self.pool.levels(changes))
    }

    /// Commits the transaction read so far downstream: a plain one goes to a worker;
    /// one with DDL (or streamed) applies on this session once the workers are idle.
    /// `timestamp` is its upstream commit time.
    pub(super) async fn commit(
        &mut self,
        position: Position,
        timestamp: u32,
    ) -> Result<(), RunError> {
        // What is not a plain transaction goes through boxed futures: this one is
        // built for every commit, and would otherwise be as large as the largest path.
        if self.reading.stream.is_open() {
            return Box::pin(self.commit_streamed(position, timestamp)).await;
        }
        self.history.commit_staged(&self.store, &position)?;
        if self.reading.fate == Fate::Looped {
            // The reverse direction applied it here: it goes no further. Its DDL is in
            // the schema history (above); the downstream's tables are looked at again.
            tracing::debug!(at = %self.here(), "dropped a transaction carrying this channel's mark");
            let tables_change = self.reading.tables_change;
            self.drop_transaction();
            self.applier.ctx.metrics.loop_dropped();
            self.applier.ctx.status.lock().loops_dropped += 1;
            if tables_change {
                self.columns_gen += 1;
                Box::pin(self.refresh_links()).await?;
            }
            return self.committed(position, timestamp, 0, tables_change);
        }
        if self.applied_before(&position) {
            return self.committed(position, timestamp, 0, false);
        }
        if let Some(outcome) = self.reading.xa_outcome.take() {
            return Box::pin(self.end_xa(outcome, position, timestamp)).await;
        }
        let ddl_not_run = std::mem::take(&mut self.reading.ddl_not_run);
        let txn = std::mem::take(&mut self.reading.rows);
        let ddl = std::mem::take(&mut self.reading.ddl);
        let had_ddl = !ddl.is_empty() || std::mem::take(&mut self.reading.ddl_ran);
        let tables_change = std::mem::take(&mut self.reading.tables_change);
        // Savepoints matter only where a ROLLBACK TO undoes part of the transaction.
        let markers = self.reading.take_markers();
        if !markers.is_empty() && had_ddl {
            return Err(self.here_fail(Cause::DdlWithRollbackTo));
        }
        let xa = self.reading.start.as_ref().and_then(|c| c.xa.clone());
        if let Some(xid) = xa {
            // Prepared upstream: prepared downstream, in upstream order.
            Box::pin(async {
                self.pool.barrier().await?;
                let xid = self.applier.down.xa_id(&xid);
                self.apply_rows(&txn, &markers, Close::Prepare(&xid), None)
                    .await?;
                // Recorded once prepared (an XA transaction writes no record of its own):
                // a restart after its XA COMMIT must not find it unapplied and prepare it
                // again.
                failpoint::hit("after-xa-prepare");
                self.record_alone(&position).await
            })
            .await?;
            return self.committed(position, timestamp, ddl_not_run, false);
        }
        let requests = std::mem::take(&mut self.reading.verify);
        if !requests.is_empty() && !had_ddl {
            // `drainer verify`: answered once every earlier transaction is committed and
            // before any later one starts, so the downstream's chunk is as the upstream's
            // was when it was read.
            Box::pin(async {
                self.pool.barrier().await?;
                if !txn.is_empty() {
                    self.apply_rows(&txn, &markers, Close::Commit, None).await?;
                }
                self.answer(&requests, &position).await
            })
            .await?;
            failpoint::hit("after-commit");
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
        Box::pin(self.commit_with_ddl(
            position,
            timestamp,
            Pieces {
                txn,
                ddl,
                markers,
                had_ddl,
                tables_change,
                ddl_not_run,
            },
        ))
        .await
    }

    /// The rest of [`Run::commit`] for a transaction with DDL, savepoints or a change of
    /// the tables that link transactions. DDL waits for every earlier transaction, and
    /// commits implicitly downstream: the rows before each statement go in one
    /// transaction, the statement runs, then the rows after it. The last piece carries
    /// the apply record (the whole transaction is applied then); after a DDL statement
    /// with no rows after it, the record is written on its own.
    async fn commit_with_ddl(
        &mut self,
        position: Position,
        timestamp: u32,
        pieces: Pieces,
    ) -> Result<(), RunError> {
        let Pieces {
            txn,
            ddl,
            markers,
            had_ddl,
            tables_change,
            ddl_not_run,
        } = pieces;
        self.pool.barrier().await?;
        let mut from = 0;
        let mut applied = false;
        for statement in &ddl {
            applied |= self
                .apply_rows(&txn[from..statement.after], &[], Close::Commit, None)
                .await?;
            from = statement.after;
            self.apply_ddl(statement).await?;
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

    /// Ends an XA transaction prepared downstream earlier as the upstream ended it
    /// (`XA COMMIT` or `XA ROLLBACK`), then records the position on its own (an XA
    /// statement cannot share a transaction). A replay after a crash between the two
    /// finds nothing prepared and passes on.
    pub(super) async fn end_xa(
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
            self.applier.ctx.applied(Ops::default(), Some(timestamp));
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
    pub(super) fn applied_before(&mut self, position: &Position) -> bool {
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
    pub(super) fn committed(
        &mut self,
        position: Position,
        timestamp: u32,
        ddl_not_run: u64,
        had_ddl: bool,
    ) -> Result<(), RunError> {
        self.retries = Retries::default();
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
    pub(super) fn save_if_due(&mut self, now: bool) -> Result<(), RunError> {
        let interval = Duration::from_millis(self.config.syncer.checkpoint_interval_ms);
        if now || self.last_save.elapsed() >= interval {
            self.save()?;
        }
        Ok(())
    }

    /// Whether the committed prefix moved past the last checkpoint.
    pub(super) fn unsaved(&self) -> bool {
        self.saved.as_ref() != Some(&self.pool.low())
    }

    /// Applies row changes (with the savepoint `markers` among them, positions into
    /// `changes`) as one downstream transaction on this session, once every earlier
    /// transaction is committed, closed as `close` says (with the apply record of
    /// `position` when given): see [`Applier::apply`]. Whether a downstream transaction
    /// was committed (none when `changes` make no statement).
    pub(super) async fn apply_rows(
        &mut self,
        changes: &[RowChange],
        markers: &[Marker],
        close: Close<'_>,
        position: Option<&Position>,
    ) -> Result<bool, RunError> {
        let own = self.own(changes, self.safe_mode());
        match self
            .applier
            .apply(&own.unit(markers, close), &AfterEarlier(position))
            .await?
        {
            Outcome::Applied { row_by_row } => {
                self.retries.row_by_row |= row_by_row;
                self.note_applied(Ops::default(), changes);
                Ok(true)
            }
            Outcome::PreparedBefore => Ok(true),
            Outcome::Empty => Ok(false),
            Outcome::Split => unreachable!("one upstream transaction is not split"),
        }
    }

    /// Whether this session's apply record says `stamp`'s transaction is committed.
    pub(super) async fn recorded_at(&mut self, stamp: &Stamp) -> Result<bool, RunError> {
        let here = self.here();
        self.applier.recorded_at(&here, stamp).await
    }

    /// Writes the apply record of `position` on its own (after DDL), retrying transient
    /// failures. It touches only the drainer's schema, which no direction replicates, so
    /// it needs no mark.
    pub(super) async fn record_alone(&mut self, position: &Position) -> Result<(), RunError> {
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

    /// Answers `drainer verify`'s `requests` downstream with the apply record of
    /// `position`, retrying transient failures.
    pub(super) async fn answer(
        &mut self,
        requests: &[crate::verify::chunk::Verdict],
        position: &Position,
    ) -> Result<(), RunError> {
        let message = "cannot answer a verify request yet; retrying";
        let mut backoff = Duration::from_millis(100);
        let at = self.here().to_string();
        loop {
            let stamp = self.applier.down.stamp(position, position);
            match self.applier.down.answer(requests, &stamp, &at).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if self.recorded_at(&stamp).await? {
                        return Ok(());
                    }
                    self.on_failure(Retry::Transaction, message, e, &mut backoff)
                        .await?
                }
            }
        }
    }

    /// Runs one DDL statement downstream, retrying transient failures.
    pub(super) async fn apply_ddl(&mut self, ddl: &Ddl) -> Result<(), RunError> {
        failpoint::hit("before-ddl");
        let message = "downstream failed during DDL; retrying it";
        let mut backoff = Duration::from_millis(100);
        let done = loop {
            match self
                .applier
                .down
                .apply_ddl(&ddl.schema, &ddl.statement, &ddl.then)
                .await
            {
                Ok(done) => break done,
                Err(e) => {
                    self.on_failure(Retry::Ddl, message, e, &mut backoff)
                        .await?
                }
            }
        };
        if let Some(reason) = done {
            self.already_done(ddl, &reason).await?;
        }
        failpoint::hit("after-ddl");
        self.applier.ctx.metrics.ddl(1, 0);
        let mut s = self.applier.ctx.status.lock();
        s.ddl_applied += 1;
        s.state = State::Running;
        Ok(())
    }

    /// A statement the downstream says was done already: a replay of this drainer's own
    /// (its tables are as the statement leaves them), else the other site changed the
    /// same tables at the same time (DDL from both sites), which stops the drainer naming
    /// the statement and both definitions.
    async fn already_done(&mut self, ddl: &Ddl, reason: &str) -> Result<(), RunError> {
        let text = ddl.statement.text.as_str();
        for ((schema, table), expected) in &ddl.expect {
            let mut backoff = Duration::from_millis(100);
            let found = loop {
                match self.applier.down.show_create(schema, table).await {
                    Ok(found) => break found,
                    Err(e) => {
                        let message = "cannot read the downstream's table after DDL; retrying";
                        self.on_failure(Retry::Ddl, message, e, &mut backoff)
                            .await?
                    }
                }
            };
            let theirs = match &found {
                Some(create) => {
                    let mut catalog = schema::Catalog::new();
                    catalog.server = self.history.catalog().server.clone();
                    catalog.apply(schema, create).ok();
                    catalog.table(schema, table).cloned()
                }
                None => None,
            };
            if !same_shape(expected.as_ref(), theirs.as_ref()) {
                return Err(self.here_fail(Cause::DdlConflict {
                    statement: text.chars().take(500).collect(),
                    reason: reason.to_owned(),
                    table: format!("{schema}.{table}"),
                    downstream: found.unwrap_or_else(|| "(no such table)".into()),
                    expected: expected
                        .as_ref()
                        .map_or_else(|| "(no such table)".into(), shape_text),
                }));
            }
        }
        tracing::info!(at = %self.here(), statement = %text, %reason,
            "DDL already applied downstream, and its tables are as it leaves them");
        Ok(())
    }

    /// Saves the committed prefix as the checkpoint.
    pub(super) fn save(&mut self) -> Result<(), RunError> {
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

/// Whether two definitions of a table have the same columns (names, types, nullability)
/// and keys, in order (`None`: no table).
fn same_shape(a: Option<&Table>, b: Option<&Table>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => shape_text(a) == shape_text(b),
        _ => false,
    }
}

/// A table's columns and keys, as the stop message shows them.
fn shape_text(t: &Table) -> String {
    let columns: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} {}{}",
                c.name.to_ascii_lowercase(),
                c.ty,
                if c.nullable { "" } else { " NOT NULL" }
            )
        })
        .collect();
    let keys = |indexes: &[schema::Index]| {
        indexes
            .iter()
            .map(|i| format!("{:?}", i.columns))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "({}) primary key {:?}; unique ({})",
        columns.join(", "),
        t.primary_key.as_ref().map(|k| &k.columns),
        keys(&t.unique_keys)
    )
}
