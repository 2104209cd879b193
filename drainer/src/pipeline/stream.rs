//! A large transaction streams: its rows go into an open downstream transaction batch
//! by batch (a batch applied by a task holding the session while the next is read and
//! decoded), and its COMMIT carries the apply record as usual. A failure of the open
//! transaction is sorted by the failure policy: the transaction is read again, or the
//! drainer stops.

use super::*;

/// A streamed transaction's batch being applied on this session's connection, lent to a
/// task meanwhile (`Run::applier.down` is then its [`Downstream::successor`]);
/// [`Run::settle`] takes the session back.
pub(super) struct Inflight {
    task: tokio::task::JoinHandle<(Downstream, Result<(), DownstreamError>)>,
    /// The row changes of the batch (counted once it applied).
    ops: Ops,
    /// Its statements joined rows in multi-row statements.
    merged: bool,
    /// Table definitions changed meanwhile: the session's cached columns go on return.
    forget_columns: bool,
}

impl Run<'_> {
    /// The statements of a streamed batch (`changes` with the savepoint `markers`
    /// among them), on this session, and whether they join rows.
    async fn build_batch(
        &mut self,
        changes: &[RowChange],
        markers: &[Marker],
        safe: bool,
    ) -> Result<(Vec<Stmt>, bool), RunError> {
        let own = self.own(changes, safe);
        let unit = own.unit(markers, Close::Commit);
        let stmts = self.applier.build(&unit, unit.levels).await?;
        Ok((stmts, own.levels.is_some()))
    }

    /// Gives up `stream`, the transaction's open downstream transaction, if any: the
    /// session is dropped and the server rolls it back.
    pub(super) fn abandon(&mut self, stream: Stream) {
        match stream {
            Stream::Buffered => {}
            Stream::Open { inflight, .. } => {
                if let Some(batch) = inflight {
                    // Its session goes with the task; the successor standing in kills
                    // it at its next connection, should the server still hold it.
                    batch.task.abort();
                }
                self.applier.down.reset();
            }
            Stream::Lost { .. } => self.applier.down.reset(),
        }
    }

    /// Why the open downstream transaction was lost, if it was (the session is given up:
    /// the transaction is read again).
    pub(super) fn take_lost(&mut self) -> Option<String> {
        match std::mem::take(&mut self.reading.stream) {
            Stream::Lost { reason } => {
                self.applier.down.reset();
                Some(reason)
            }
            other => {
                self.reading.stream = other;
                None
            }
        }
    }

    /// Streams the buffered row changes into the open downstream transaction (opening it
    /// first: pending DDL of the transaction runs before, as at a commit), by a task, while
    /// the next batch is read. A batch's failure, seen when the next batch or the commit
    /// comes, loses the stream: the transaction is read again from its start.
    pub(super) async fn stream(&mut self) -> Result<(), RunError> {
        // The batch before this one first: its failure reads the transaction again.
        self.settle().await?;
        if self.reading.stream.is_lost() {
            return Ok(());
        }
        let safe = self.safe_mode();
        if !self.reading.stream.is_open() {
            // It runs on this session, in upstream order: everything before it first.
            self.pool.barrier().await?;
            let pending = std::mem::take(&mut self.reading.ddl);
            if !pending.is_empty() {
                let rows = std::mem::take(&mut self.reading.rows);
                let mut from = 0;
                for ddl in pending {
                    self.apply_rows(&rows[from..ddl.after], &[], Close::Commit, None)
                        .await?;
                    from = ddl.after;
                    self.apply_ddl(&ddl).await?;
                }
                self.reading.rows = rows;
                self.reading.ran_before(from);
            }
            tracing::info!(at = %self.here(), "a large transaction: streaming its rows into one downstream transaction");
            let begun = match self.reading.start.as_ref().and_then(|c| c.xa.as_ref()) {
                Some(xid) => {
                    let xid = self.applier.down.xa_id(xid);
                    self.applier.down.begin_xa(&xid).await
                }
                None => self.applier.down.begin(1).await.map(|()| true),
            };
            match begun {
                Ok(true) => {
                    self.reading.stream = Stream::Open {
                        inflight: None,
                        ops: Ops::default(),
                        one_phase: false,
                    }
                }
                Ok(false) => {
                    // Prepared downstream before a restart: nothing more of it to apply.
                    tracing::info!(at = %self.here(), "the XA transaction is prepared downstream already (before the restart)");
                    self.reading.prepared_before();
                    return Ok(());
                }
                Err(DownstreamError::Transient(reason)) => {
                    self.reading.stream = Stream::Lost { reason };
                    return Ok(());
                }
                Err(e) => return Err(self.here_fail(e)),
            }
        }
        let (chunk, markers) = self.reading.take_batch();
        self.applier.ctx.metrics.buffered(0);
        let (stmts, merged) = self.build_batch(&chunk, &markers, safe).await?;
        let ops = Ops::of(&chunk);
        drop(chunk);
        // Applied while the next batch is read and decoded (the server executes one batch
        // as the drainer decodes the next).
        let successor = self.applier.down.successor();
        let mut down = std::mem::replace(&mut self.applier.down, successor);
        let task = tokio::spawn(async move {
            let result = down.exec_owned(stmts).await;
            (down, result)
        });
        if let Stream::Open { inflight, .. } = &mut self.reading.stream {
            *inflight = Some(Inflight {
                task,
                ops,
                merged,
                forget_columns: false,
            });
        }
        Ok(())
    }

    /// Waits for the streamed batch in flight, if any, and takes the session back; its
    /// failure is sorted by [`Run::stream_failed`] (which may lose the stream).
    async fn settle(&mut self) -> Result<(), RunError> {
        let Stream::Open { inflight, .. } = &mut self.reading.stream else {
            return Ok(());
        };
        let Some(batch) = inflight.take() else {
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
        if let (Ok(()), Stream::Open { ops, .. }) = (&result, &mut self.reading.stream) {
            *ops += batch.ops;
        }
        self.stream_failed(result, batch.merged)
    }

    /// Drops the downstream's cached columns (the session's, also while it is lent).
    pub(super) fn forget_columns(&mut self) {
        if let Stream::Open {
            inflight: Some(batch),
            ..
        } = &mut self.reading.stream
        {
            batch.forget_columns = true;
        }
        self.applier.down.forget_columns();
    }

    /// Sorts a failure of the open downstream transaction (its statements joined rows:
    /// `merged`) by the failure policy: a lost session, "unknown column" (once, with the
    /// columns looked at again), or a refused multi-row statement (once, to build it with
    /// a statement per row change) loses the stream, and the transaction is read again;
    /// the latter two not once a DDL statement of it ran downstream (what came before
    /// that is committed there and would apply twice).
    fn stream_failed(
        &mut self,
        result: Result<(), DownstreamError>,
        merged: bool,
    ) -> Result<(), RunError> {
        let Err(error) = result else { return Ok(()) };
        let attempt = Attempt {
            merged,
            may_refresh: !self.retries.refreshed && !self.reading.ddl_ran,
            streamed: true,
            ..Attempt::default()
        };
        match decide(error, attempt) {
            Next::ReadAgain { rebuild, reason } => {
                match rebuild {
                    None => self.applier.ctx.metrics.retry(Retry::Reread),
                    Some(Rebuild::FreshColumns) => {
                        self.forget_columns();
                        self.retries.refreshed = true;
                    }
                    Some(Rebuild::RowByRow) => {
                        tracing::info!(at = %self.here(), %reason, "refused as multi-row statements; applying the transaction again with a statement per row change");
                        self.retries.row_by_row = true;
                    }
                }
                self.reading.stream = Stream::Lost { reason };
                Ok(())
            }
            Next::Stop(e) => Err(self.here_fail(e)),
            other => unreachable!("a streamed transaction is read again or stops: {other:?}"),
        }
    }

    /// Ends the downstream part of a streamed transaction before a DDL statement of it
    /// (DDL commits implicitly downstream). Like rows before DDL in an ordinary
    /// transaction, this part carries no apply record.
    pub(super) async fn end_stream_piece(&mut self) -> Result<(), RunError> {
        if !self.reading.stream.is_open() {
            return Ok(());
        }
        self.settle().await?;
        if self.reading.stream.is_lost() {
            return Ok(());
        }
        let (chunk, markers) = self.reading.take_batch();
        let (stmts, merged) = self.build_batch(&chunk, &markers, self.safe_mode()).await?;
        let mut result = self.applier.down.exec(&stmts).await;
        if result.is_ok() {
            result = self.applier.down.commit(None).await;
        }
        let streamed = std::mem::take(&mut self.reading.stream).ops();
        if result.is_ok() {
            self.note_applied(streamed, &chunk);
        }
        self.stream_failed(result, merged)
    }

    /// Commits a streamed transaction: its last rows and the apply record go into the
    /// open downstream transaction, then COMMIT. Its statements enter the schema history
    /// only then: a lost session reads the whole transaction again from its start.
    pub(super) async fn commit_streamed(
        &mut self,
        position: Position,
        timestamp: u32,
    ) -> Result<(), RunError> {
        self.settle().await?;
        if self.reading.stream.is_lost() {
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
        if !self.reading.ddl_ran && self.applied_before(&position) {
            return self.committed(position, timestamp, 0, false);
        }
        let (chunk, markers) = self.reading.take_batch();
        let (stmts, merged) = self.build_batch(&chunk, &markers, self.safe_mode()).await?;
        let stamp = self.applier.down.stamp(&position, &position);
        let mut result = self.applier.down.exec(&stmts).await;
        let xa = self.reading.start.as_ref().and_then(|c| c.xa.clone());
        let (streamed, one_phase) = match std::mem::take(&mut self.reading.stream) {
            Stream::Open { ops, one_phase, .. } => (ops, one_phase),
            _ => unreachable!("settled and not lost: open"),
        };
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
        match result {
            Ok(()) => {}
            Err(DownstreamError::Transient(reason))
                if !prepared && self.recorded_at(&stamp).await? =>
            {
                tracing::info!(at = %self.here(), %reason, "the apply record shows the streamed transaction committed before the connection was lost");
            }
            Err(e) => return self.stream_failed(Err(e), merged),
        }
        if prepared {
            failpoint::hit("after-xa-prepare");
            self.record_alone(&position).await?;
        }
        self.note_applied(streamed, &chunk);
        failpoint::hit("after-commit");
        let ddl_not_run = std::mem::take(&mut self.reading.ddl_not_run);
        let had_ddl = std::mem::take(&mut self.reading.ddl_ran);
        if std::mem::take(&mut self.reading.tables_change) {
            self.columns_gen += 1;
            self.refresh_links().await?;
        }
        self.committed(position, timestamp, ddl_not_run, had_ddl)
    }
}
