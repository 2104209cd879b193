//! Applies one downstream transaction: builds its statements against the downstream's
//! columns (savepoints where they stand), runs them after `BEGIN` and the channel's mark,
//! writes the apply record and commits (or prepares an XA transaction), and sorts every
//! failure through [`super::policy::decide`], acting on its answer until the
//! transaction is applied or the drainer must stop.
//!
//! Its callers differ only in where their transaction stands among the others, which
//! they say through [`Place`]: a worker runs out of upstream order (it may wait for the
//! earlier transactions; its record's watermark moves between attempts; another
//! worker's failure ends its retries), the pipeline's own session runs after every
//! earlier transaction committed. A streamed transaction builds its batches here
//! ([`Applier::build`]) and sorts its failures through the same policy (`pipeline`).

use std::future::Future;
use std::time::{Duration, Instant};

use pump_reader::{Savepoint, Xid};

use super::build::build_changes;
use super::changes::RowChange;
use super::ctx::Ctx;
use super::downstream::{Downstream, Stamp};
use super::policy::{decide, Attempt, Next, Rebuild};
use super::sql::Stmt;
use crate::error::{At, RunError};
use crate::metrics::Retry;

/// A downstream session and what it reports to.
pub struct Applier {
    pub down: Downstream,
    pub ctx: Ctx,
}

/// One downstream transaction to apply.
pub struct Unit<'a> {
    /// For messages: the (first) upstream transaction it applies.
    pub here: &'a At,
    /// Its row changes, in upstream order.
    pub changes: &'a [&'a RowChange],
    /// Savepoints and rollbacks to them: they run where they stand.
    pub markers: &'a [Marker],
    /// The steps that let rows join in multi-row statements (see `keys::levels`);
    /// `None`: one statement per row change (consecutive inserts into one table still
    /// share one).
    pub levels: Option<&'a [u32]>,
    /// Safe mode: INSERT as REPLACE, UPDATE as DELETE + REPLACE.
    pub safe: bool,
    /// The upstream transactions it applies (the mark counts them).
    pub count: u64,
    pub close: Close<'a>,
}

/// A savepoint (or a rollback to one) of a transaction, after its first `at` row
/// changes.
#[derive(Debug, Clone)]
pub struct Marker {
    pub at: usize,
    pub savepoint: Savepoint,
}

/// How the downstream transaction ends.
#[derive(Debug, Clone, Copy)]
pub enum Close<'a> {
    /// COMMIT, with the apply record [`Place::stamp`] gives, if any.
    Commit,
    /// `XA PREPARE` as this (downstream) xid.
    Prepare(&'a Xid),
}

/// Where a unit stands among the others: what only its caller knows.
pub trait Place {
    /// The apply record this attempt writes (the watermark may have moved since the
    /// last); `None`: none.
    fn stamp(&self, down: &Downstream) -> Option<Stamp>;

    /// Another applier stopped the drainer: a retry is left for the next start.
    fn others_failed(&self) -> bool;

    /// Whether it may have run before an earlier transaction it depends on, and so may
    /// wait for them all and try once more.
    fn out_of_order(&self) -> bool;

    /// Waits until every earlier transaction is committed.
    fn wait_earlier(&self) -> impl Future<Output = Result<(), RunError>> + Send;
}

/// How a unit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed (or prepared) downstream; `row_by_row`: after its multi-row statements
    /// were refused.
    Applied { row_by_row: bool },
    /// The XA transaction is prepared downstream already (by a run before a restart).
    PreparedBefore,
    /// Its changes made no statement (nothing of them is replicated).
    Empty,
    /// Refused as a group: apply its transactions one at a time.
    Split,
}

impl Applier {
    /// The statements of `unit` with `levels` (its own, or none), its savepoint markers
    /// run where they stand: the changes between two markers build as one piece.
    pub async fn build(
        &mut self,
        unit: &Unit<'_>,
        levels: Option<&[u32]>,
    ) -> Result<Vec<Stmt>, RunError> {
        let (ctx, down, here) = (&mut self.ctx, &mut self.down, unit.here);
        let piece = |from: usize, to: usize| levels.map(|l| &l[from..to]);
        let mut stmts = Vec::new();
        let mut from = 0;
        for marker in unit.markers {
            let at = marker.at;
            let changes = &unit.changes[from..at];
            stmts
                .extend(build_changes(ctx, down, here, changes, unit.safe, piece(from, at)).await?);
            stmts.push(Stmt {
                sql: marker.savepoint.text.clone(),
                params: Vec::new(),
                check: None,
            });
            from = at;
        }
        let (changes, to) = (&unit.changes[from..], unit.changes.len());
        stmts.extend(build_changes(ctx, down, here, changes, unit.safe, piece(from, to)).await?);
        Ok(stmts)
    }

    /// Applies `unit` as one downstream transaction (see the module note).
    pub async fn apply(
        &mut self,
        unit: &Unit<'_>,
        place: &impl Place,
    ) -> Result<Outcome, RunError> {
        let here = unit.here;
        let mut stmts = self.build(unit, unit.levels).await?;
        if stmts.is_empty() {
            return Ok(Outcome::Empty);
        }
        let mut attempt = Attempt {
            merged: unit.levels.is_some(),
            may_refresh: true,
            may_wait: place.out_of_order(),
            group: unit.count > 1,
            streamed: false,
        };
        let applied = |attempt: &Attempt| Outcome::Applied {
            row_by_row: unit.levels.is_some() && !attempt.merged,
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let stamp = place.stamp(&self.down);
            let started = Instant::now();
            let result = match unit.close {
                Close::Commit => {
                    self.down
                        .apply_txn(&stmts, unit.count, stamp.as_ref())
                        .await
                }
                Close::Prepare(xid) => match self.down.prepare_xa(xid, &stmts).await {
                    Ok(false) => {
                        tracing::info!(at = %here, "the XA transaction is prepared downstream already (before the restart)");
                        return Ok(Outcome::PreparedBefore);
                    }
                    other => other.map(drop),
                },
            };
            let error = match result {
                Ok(()) => {
                    self.ctx.metrics.apply_time(started.elapsed());
                    return Ok(applied(&attempt));
                }
                Err(e) => e,
            };
            match decide(error, attempt) {
                Next::Retry { reason } => {
                    if place.others_failed() {
                        // Another applier stopped the drainer: this one is left for the
                        // next start.
                        return Err(RunError::Interrupted);
                    }
                    self.ctx
                        .retry(
                            here,
                            Retry::Transaction,
                            "downstream failed; retrying the transaction",
                            &reason,
                            &mut backoff,
                        )
                        .await?;
                    if let Some(st) = &stamp {
                        if self.recorded_at(here, st).await? {
                            tracing::info!(at = %here, "the apply record shows the transaction committed before the connection was lost");
                            return Ok(applied(&attempt));
                        }
                    }
                }
                // The downstream table changed under the cached columns: look again, once.
                Next::Rebuild {
                    how: Rebuild::FreshColumns,
                    reason,
                } => {
                    tracing::warn!(at = %here, %reason, "downstream columns changed; building the transaction again");
                    self.down.forget_columns();
                    let levels = unit.levels.filter(|_| attempt.merged);
                    stmts = self.build(unit, levels).await?;
                    attempt.may_refresh = false;
                }
                Next::Rebuild {
                    how: Rebuild::RowByRow,
                    reason,
                } => {
                    tracing::info!(at = %here, %reason, "refused as multi-row statements; building it again with a statement per row change");
                    attempt.merged = false;
                    stmts = self.build(unit, None).await?;
                }
                Next::InOrder { reason } => {
                    tracing::info!(at = %here, %reason, "refused out of upstream order; applying it again once every earlier transaction is committed");
                    attempt.may_wait = false;
                    place.wait_earlier().await?;
                }
                Next::Split => return Ok(Outcome::Split),
                Next::ReadAgain { .. } => unreachable!("a unit applied here is not streamed"),
                Next::Stop(e) => return Err(RunError::apply(here, e)),
            }
        }
    }

    /// Whether the apply record says `stamp`'s transaction is committed (its COMMIT's
    /// answer was lost), asking until the downstream answers.
    pub async fn recorded_at(&mut self, here: &At, stamp: &Stamp) -> Result<bool, RunError> {
        Ok(self
            .recorded_of(here, std::slice::from_ref(stamp))
            .await?
            .is_some())
    }

    /// Which of `stamps` the apply record says was committed last (their COMMITs' answers
    /// were lost), asking until the downstream answers; `None`: none of them.
    pub async fn recorded_of(
        &mut self,
        here: &At,
        stamps: &[Stamp],
    ) -> Result<Option<usize>, RunError> {
        let message = "cannot read the apply record yet; asking again";
        let mut backoff = Duration::from_millis(100);
        // They record in the same row.
        let alternate = stamps.first().is_some_and(|st| st.alternate);
        let record = loop {
            match self.down.record_of(alternate).await {
                Ok(record) => break record,
                Err(e) => {
                    self.ctx
                        .on_failure(here, Retry::Record, message, e, &mut backoff)
                        .await?
                }
            }
        };
        let found = stamps
            .iter()
            .rposition(|st| record.as_ref() == Some(&st.position));
        if let Some(i) = found {
            self.down.recorded(&stamps[i]);
        }
        Ok(found)
    }
}
