//! The events of the upstream's binlog, one by one, as the transaction being read takes
//! them ([`super::reading`]): its begin, its rows and statements, its savepoints and XA
//! steps, its commit or rollback, and the heartbeats of a quiet upstream.

use super::*;

impl Run<'_> {
    /// Takes one event of `reader`; a streamed transaction whose downstream part was
    /// lost is read again from its start (`reader` rewound). Built for every event: what
    /// few events do (stream, refresh) is boxed, so that this future stays small (a
    /// future is copied whole where it is awaited).
    pub(super) async fn on_event(
        &mut self,
        event: TxnEvent,
        reader: &mut LiveReader,
    ) -> Result<(), RunError> {
        match event {
            TxnEvent::Begin(start) => {
                self.idle = false;
                self.drop_transaction();
                if self.triggers_read.elapsed() >= TRIGGERS_EVERY {
                    let schemas = self.tracked_schemas();
                    Box::pin(self.refresh_triggers(&schemas)).await?;
                }
                // Written by this channel's own sessions (see `Mark::server_id`): every
                // event group, a non-transactional table's and DDL included.
                let looped = self
                    .mark
                    .as_ref()
                    .is_some_and(|m| m.server_id == start.server_id);
                self.reading = Reading::begin(start, reader.position().clone(), looped);
                self.applier.ctx.status.lock().caught_up = false;
            }
            TxnEvent::Change(Change::Rows(rows)) => {
                let at = reader.position().clone();
                self.rows(&rows, &at)?;
                // Its event goes once its decoded rows are applied (a large one streams).
                drop(rows);
                self.applier.ctx.metrics.buffered(self.reading.rows.len());
                if self.reading.large() {
                    Box::pin(self.stream()).await?;
                }
            }
            TxnEvent::Change(Change::Statement(s)) => {
                self.statement(s)?;
                if self.reading.stream.is_open() && !self.reading.ddl.is_empty() {
                    // It runs downstream, which commits implicitly: the streamed part
                    // before it commits first, and the statement follows it.
                    Box::pin(self.end_stream_piece()).await?;
                    self.reading.piece_committed();
                }
            }
            TxnEvent::Change(Change::Savepoint(savepoint)) => {
                if !self.reading.dropped() {
                    let at = self.reading.rows.len();
                    self.reading.markers.push(Marker { at, savepoint });
                    if self.reading.stream.is_open() {
                        // In order with the rows streamed before it.
                        Box::pin(self.stream()).await?;
                    }
                }
            }
            TxnEvent::Change(Change::Annotation(text)) => {
                // A statement this channel's drainer wrote (comment markers): the
                // transaction came back from the reverse direction.
                let ours = self
                    .mark
                    .as_ref()
                    .and_then(|m| m.comment.as_deref())
                    .is_some_and(|c| text.contains(c.trim_end()));
                if ours && !self.reading.dropped() {
                    self.reading.looped();
                    let stream = std::mem::take(&mut self.reading.stream);
                    self.abandon(stream);
                }
            }
            TxnEvent::Change(Change::Xa(outcome)) => self.reading.xa_outcome = Some(outcome),
            TxnEvent::Change(Change::XaOnePhase) => match &mut self.reading.stream {
                // Begun downstream as an XA transaction: it ends as one.
                Stream::Open { one_phase, .. } => *one_phase = true,
                _ => {
                    if let Some(start) = &mut self.reading.start {
                        start.xa = None;
                    }
                }
            },
            TxnEvent::Commit {
                position,
                timestamp,
            } => self.commit(position, timestamp).await?,
            TxnEvent::Rollback => self.drop_transaction(),
            TxnEvent::Idle { position } => {
                if self.reading.rows.is_empty() {
                    self.idle = true;
                    // Not under the status lock: the workers take the two locks the
                    // other way round.
                    let idle = self.pool.idle();
                    let mut s = self.applier.ctx.status.lock();
                    s.caught_up = idle;
                    s.upstream = Some(position.clone());
                    drop(s);
                    self.pool.pass(position);
                }
            }
        }
        if let Some(reason) = self.take_lost() {
            // The open downstream transaction of a streamed one is gone: read it again.
            let from = self
                .reading
                .from
                .clone()
                .expect("a streamed transaction began after its starting position was kept");
            tracing::warn!(at = %self.here(), %reason, "the streamed transaction's downstream part was lost or refused; reading the transaction again from its start");
            self.applier
                .ctx
                .status
                .failed(format!("{}: {reason}", self.here()), true);
            self.drop_transaction();
            // Statements of the transaction may be recorded already (at its commit).
            self.history = History::load(&self.store, Some(&from))?;
            self.tables.clear();
            reader.rewind(from);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    }
}
