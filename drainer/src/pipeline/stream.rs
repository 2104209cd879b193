//! A large transaction streams: its rows go into an open downstream transaction batch
//! by batch (a batch applied by a task holding the session while the next is read and
//! decoded), and its COMMIT carries the apply record as usual. A failure of the open
//! transaction is sorted by the failure policy: the transaction is read again, or the
//! drainer stops.

use super::*;

/// A transaction whose buffered row changes pass either bound streams: they go into an
/// open downstream transaction, and so does every later batch of that size, so memory
/// stays bounded whatever the transaction's size.
const STREAM_ROWS: usize = 20_000;
const STREAM_BYTES: usize = 32 << 20;

/// A streamed transaction's batch being applied on this session's connection, lent to a
/// task meanwhile (`Run::down` is then its [`Downstream::successor`]); `Run::settle`
/// takes the session back.
pub(super) struct Inflight {
    pub(super) task: tokio::task::JoinHandle<(Downstream, Result<(), DownstreamError>)>,
    /// Inserts, updates and deletes of the batch (counted once it applied).
    pub(super) ops: [u64; 3],
    /// Table definitions changed meanwhile: the session's cached columns go on return.
    pub(super) forget_columns: bool,
}

impl Run<'_> {
    /// The statements of a streamed batch (`changes` with the savepoint `markers`
    /// among them), on this session.
    pub(super) async fn build_batch(
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

    /// Gives up the open downstream transaction of a streamed one, if any: the session is
    /// dropped and the server rolls it back.
    pub(super) fn abandon_stream(&mut self) {
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
    pub(super) fn large(&self) -> bool {
        !self.looped
            && !self.prepared_before
            && (self.txn.len() >= STREAM_ROWS || self.txn_bytes >= STREAM_BYTES)
    }

    /// Streams the buffered row changes into the open downstream transaction (opening it
    /// first: pending DDL of the transaction runs before, as at a commit), by a task, while
    /// the next batch is read. A batch's failure, seen when the next batch or the commit
    /// comes, sets `reread`: the transaction is read again from its start.
    pub(super) async fn stream(&mut self) -> Result<(), RunError> {
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
    pub(super) async fn settle(&mut self) -> Result<(), RunError> {
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
    pub(super) fn forget_columns(&mut self) {
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
    pub(super) fn stream_failed(
        &mut self,
        result: Result<(), DownstreamError>,
    ) -> Result<(), RunError> {
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
    pub(super) async fn end_stream_piece(&mut self) -> Result<(), RunError> {
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

    /// Commits a streamed transaction: its last rows and the apply record go into the
    /// open downstream transaction, then COMMIT. Its statements enter the schema history
    /// only then: a lost session reads the whole transaction again from its start.
    pub(super) async fn commit_streamed(
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
}
