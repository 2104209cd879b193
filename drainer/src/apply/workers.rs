//! Parallel apply: `worker-count` workers, each with its own downstream session, apply
//! upstream transactions out of upstream order where that cannot change the outcome.
//!
//! - **Keys.** Every row change names keys ([`super::keys`]); two transactions sharing a
//!   key conflict.
//! - **Choice and waits.** A transaction that conflicts with work in flight goes to the
//!   worker that holds the latest of it (its queue keeps upstream order) and first waits
//!   for the conflicting transactions in flight on other workers; one that conflicts with
//!   nothing goes to the least loaded worker. Each transaction stays whole inside one
//!   marked downstream transaction with its apply record.
//! - **Groups** (`txn-batch`): a worker takes what is already queued behind the
//!   transaction it starts (up to `txn-batch` transactions and 5,000 row changes,
//!   none waiting on another worker) into the same downstream transaction, in order; its
//!   mark counts them all and its record lists every one. A group the downstream refuses
//!   is applied again one transaction at a time.
//! - **Multi-row statements.** Inside what a worker applies (one transaction or a
//!   group), the same keys order the row changes: each runs one step ([`levels`]) after
//!   the latest earlier change it shares a key with, and the changes of one step, which
//!   share none, join in multi-row statements per table (`super::build`). Refused,
//!   the transaction is built again with a statement per row change, in upstream order.
//!   The pipeline's own session does the same for what it applies ([`Pool::levels`]).
//! - **Foreign keys** of the downstream link tables: a change of a child table names its
//!   parent table, and a change of a parent table names itself, so transactions on
//!   linked tables keep their order ([`Pool::set_links`], read at start and after DDL).
//! - **What the keys cannot see** (a collation that makes other than ASCII-case
//!   variants equal, a unique key the downstream has and the upstream lacks) shows as an
//!   error of the downstream when an earlier transaction runs late: the worker then
//!   waits until every earlier transaction is committed and applies it once more. An
//!   error that a *later* transaction caused by running early stands, and stops the
//!   drainer (nothing is lost: the next start applies from the watermark).
//! - **Progress.** Every upstream transaction read gets a sequence number; the low
//!   watermark is the position after the last transaction of the committed prefix. Only
//!   it is checkpointed, and every apply record carries it with the transactions its
//!   writer committed past it (see [`super::downstream`]), so a restart neither skips nor
//!   repeats a transaction. DDL, streamed transactions and anything the pipeline's own
//!   session applies wait until every worker is idle ([`Pool::barrier`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use pump_reader::Position;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::applier::{Applier, Close, Outcome, Place, Unit};
use super::changes::{Ops, RowChange};
use super::ctx::Ctx;
use super::downstream::{Downstream, Listed, Stamp};
use super::keys::{change_keys, levels, ChangeKeys, KeyMap, Links};
use crate::error::{At, Cause, RunError};
use crate::failpoint;
use crate::status::Status;

/// Transactions queued per worker before the reader waits.
const QUEUE: usize = 64;

/// Keys remembered for conflict detection before the ones of finished transactions are
/// dropped.
const MAX_KEYS: usize = 1 << 18;

/// Transactions in flight past the watermark, at most: the apply records list the ones
/// committed past it, so one transaction held back (a lock wait) must not let the
/// others run arbitrarily far ahead.
const MAX_AHEAD: usize = 1024;

/// One upstream transaction for a worker.
pub struct Job {
    pub changes: Vec<RowChange>,
    /// After its commit upstream.
    pub position: Position,
    /// Its upstream commit time.
    pub timestamp: u32,
    /// Apply in safe mode.
    pub safe: bool,
    /// For messages: its GTID and where it starts.
    pub here: At,
    /// The downstream's tables may have changed since the last job with a smaller one:
    /// the worker forgets the columns it knows.
    pub columns_gen: u64,
    seq: u64,
    /// Transactions on other workers that must commit first.
    wait_for: Vec<u64>,
    /// Each row change's keys.
    keys: ChangeKeys,
}

impl Job {
    pub fn new(
        changes: Vec<RowChange>,
        position: Position,
        timestamp: u32,
        safe: bool,
        here: At,
        columns_gen: u64,
    ) -> Job {
        Job {
            changes,
            position,
            timestamp,
            safe,
            here,
            columns_gen,
            seq: 0,
            wait_for: Vec::new(),
            keys: ChangeKeys::default(),
        }
    }
}

/// A transaction not yet part of the committed prefix.
struct Open {
    /// After it.
    position: Position,
    /// The worker applying it (none: nothing to apply, or done).
    worker: Option<usize>,
    done: bool,
}

/// The transactions in flight and the committed prefix.
struct Progress {
    next: u64,
    /// Transactions not yet part of the committed prefix, by sequence number.
    open: BTreeMap<u64, Open>,
    /// Upstream commit times of the transactions handed to workers, while in flight.
    times: BTreeMap<u64, u32>,
    /// After the last transaction of the committed prefix.
    low: Position,
    /// Transactions in flight per worker.
    load: Vec<usize>,
    /// The first failure of a worker: every wait ends with it.
    failed: Option<Arc<RunError>>,
}

impl Progress {
    fn new(low: Position, workers: usize) -> Progress {
        Progress {
            next: 0,
            open: BTreeMap::new(),
            times: BTreeMap::new(),
            low,
            load: vec![0; workers],
            failed: None,
        }
    }

    fn is_done(&self, seq: u64) -> bool {
        match self.open.get(&seq) {
            Some(o) => o.done,
            None => seq < self.next,
        }
    }

    fn open(&mut self, position: Position, worker: Option<usize>) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.open.insert(
            seq,
            Open {
                position,
                worker,
                done: false,
            },
        );
        if let Some(w) = worker {
            self.load[w] += 1;
        }
        seq
    }

    fn finish(&mut self, seq: u64) {
        self.times.remove(&seq);
        if let Some(o) = self.open.get_mut(&seq) {
            o.done = true;
            if let Some(w) = o.worker.take() {
                self.load[w] -= 1;
            }
        }
        while let Some(entry) = self.open.first_entry() {
            if !entry.get().done {
                break;
            }
            self.low = entry.remove().position;
        }
    }
}

/// What the pipeline and the workers share.
struct Shared {
    progress: Mutex<Progress>,
    /// Where the oldest transaction in flight shows (its upstream commit time: the lag).
    status: Arc<Status>,
    /// Bumped on every change of `progress`: waits look again then.
    changed: watch::Sender<u64>,
    /// Set once `progress` holds a failure: what [`Pool::failure`] waits on, so that the
    /// pipeline is not woken by every transaction a worker finishes.
    failed: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes `progress` and wakes whoever waits on it.
    fn update<R>(&self, f: impl FnOnce(&mut Progress) -> R) -> R {
        self.change(true, f)
    }

    /// Changes `progress`; `wake`: whoever waits on it looks again. Opening a
    /// transaction makes no wait's condition true (they wait for transactions to finish,
    /// or a failure): it wakes no one.
    fn change<R>(&self, wake: bool, f: impl FnOnce(&mut Progress) -> R) -> R {
        let (r, oldest, low, failed) = {
            let mut p = self.lock();
            let before = p.next - p.open.len() as u64;
            let r = f(&mut p);
            // The prefix moved: `/status` shows where it ends.
            let moved = p.next - p.open.len() as u64 != before;
            (
                r,
                p.times.values().next().copied(),
                moved.then(|| p.low.clone()),
                p.failed.is_some(),
            )
        };
        // Not under the progress lock: the pipeline takes the two the other way round.
        let mut s = self.status.lock();
        s.pending_since = oldest;
        if low.is_some() {
            s.applied_to = low;
        }
        drop(s);
        if wake || failed {
            self.changed.send_modify(|g| *g = g.wrapping_add(1));
        }
        if failed {
            self.failed
                .send_if_modified(|f| !std::mem::replace(f, true));
        }
        r
    }

    /// Waits until `ready` holds; `Err` with the failure when a worker failed first.
    async fn wait(&self, ready: impl Fn(&Progress) -> bool) -> Result<(), RunError> {
        // Subscribed only when the first look finds it not ready (the usual case is
        // ready); a change between that look and subscribing is seen by the next look.
        let mut changed: Option<watch::Receiver<u64>> = None;
        loop {
            if let Some(c) = &mut changed {
                c.borrow_and_update();
            }
            {
                let p = self.lock();
                if let Some(f) = &p.failed {
                    return Err(RunError::shared(f));
                }
                if ready(&p) {
                    return Ok(());
                }
            }
            match &mut changed {
                None => changed = Some(self.changed.subscribe()),
                Some(c) => {
                    if c.changed().await.is_err() {
                        return Err(RunError::Interrupted);
                    }
                }
            }
        }
    }
}

/// The workers, and what the pipeline needs to hand them transactions in order.
pub struct Pool {
    shared: Arc<Shared>,
    queues: Vec<mpsc::Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
    /// Key → the last transaction that named it, and its worker.
    keys: KeyMap<(u64, usize)>,
    /// The keys the downstream's foreign keys add.
    links: Links,
}

impl Pool {
    /// Starts `count` workers, each with a session of its own to `down`'s server (writers
    /// 1 to `count`), grouping up to `batch` queued transactions into one downstream
    /// transaction; `low` is where the committed prefix ends now.
    pub fn start(count: u32, batch: u32, ctx: &Ctx, down: &Downstream, low: Position) -> Pool {
        ctx.status.lock().applied_to = Some(low.clone());
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::new(low, count as usize)),
            status: Arc::clone(&ctx.status),
            changed: watch::channel(0).0,
            failed: watch::channel(false).0,
        });
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        for w in 0..count {
            let (tx, rx) = mpsc::channel(QUEUE);
            queues.push(tx);
            let worker = Worker {
                applier: Applier {
                    down: down.for_worker(w + 1),
                    ctx: ctx.clone(),
                },
                shared: Arc::clone(&shared),
                columns_gen: 0,
                batch: batch.max(1) as usize,
            };
            // A panic must not leave the pipeline waiting for this worker forever.
            let watch = Arc::clone(&shared);
            handles.push(tokio::spawn(async move {
                if let Err(e) = tokio::spawn(worker.run(rx)).await {
                    let cause = Cause::Task {
                        what: "the worker stopped unexpectedly",
                        reason: e.to_string(),
                    };
                    watch.update(|p| {
                        p.failed
                            .get_or_insert(Arc::new(RunError::apply(&At::Worker(w + 1), cause)));
                    });
                }
            }));
        }
        Pool {
            shared,
            queues,
            handles,
            keys: KeyMap::default(),
            links: Links::new(),
        }
    }

    /// The downstream's foreign keys as they are now (see [`super::keys::links`]).
    pub fn set_links(&mut self, links: Links) {
        self.links = links;
    }

    /// After the last transaction of the committed prefix.
    pub fn low(&self) -> Position {
        self.shared.lock().low.clone()
    }

    /// Whether no transaction is in flight.
    pub fn idle(&self) -> bool {
        self.shared.lock().open.is_empty()
    }

    /// A transaction the workers have nothing to do for (dropped, filtered, or applied
    /// by the pipeline's own session after [`Pool::barrier`]): done, in its place.
    pub fn pass(&self, position: Position) {
        self.shared.update(|p| {
            let seq = p.open(position, None);
            p.finish(seq);
        });
    }

    /// Hands `job` to a worker chosen by the keys its rows name (see the module note);
    /// waits while that worker's queue is full.
    pub async fn dispatch(&mut self, mut job: Job) -> Result<(), RunError> {
        self.shared.wait(|p| p.open.len() < MAX_AHEAD).await?;
        job.keys = change_keys(&job.changes, &self.links);
        let keys = job.keys.set();
        let placed = self.shared.change(false, |p| {
            if let Some(f) = &p.failed {
                return Err(RunError::shared(f));
            }
            if self.keys.len() > MAX_KEYS {
                self.keys.retain(|_, (seq, _)| !p.is_done(*seq));
            }
            let mut conflicts: Vec<(u64, usize)> = keys
                .iter()
                .filter_map(|k| self.keys.get(k).copied())
                .filter(|(seq, _)| !p.is_done(*seq))
                .collect();
            conflicts.sort_unstable();
            conflicts.dedup();
            let worker = match conflicts.last() {
                Some(&(_, w)) => w,
                None => (0..p.load.len())
                    .min_by_key(|&w| p.load[w])
                    .expect("at least one worker"),
            };
            job.wait_for = conflicts
                .iter()
                .filter(|(_, w)| *w != worker)
                .map(|(seq, _)| *seq)
                .collect();
            let seq = p.open(job.position.clone(), Some(worker));
            p.times.insert(seq, job.timestamp);
            Ok((worker, seq))
        });
        let (worker, seq) = placed?;
        job.seq = seq;
        for k in keys {
            self.keys.insert(k, (seq, worker));
        }
        if self.queues[worker].send(job).await.is_err() {
            // The worker stopped: it failed, and says why.
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// The steps of `changes` for multi-row statements (see [`levels`]), by the keys the
    /// workers use.
    pub fn levels(&self, changes: &[RowChange]) -> Vec<u32> {
        levels(change_keys(changes, &self.links).each())
    }

    /// Waits until every transaction handed out is committed.
    pub async fn barrier(&self) -> Result<(), RunError> {
        self.shared.wait(|p| p.open.is_empty()).await
    }

    /// Resolves when a worker has failed, with its error. Owns what it needs: made once,
    /// it can be awaited beside everything else the pipeline waits for.
    pub fn failure(&self) -> impl std::future::Future<Output = RunError> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let mut failed = shared.failed.subscribe();
        async move {
            // Set with the failure, under the same update; closed only with `shared`,
            // which this future holds.
            let _ = failed.wait_for(|f| *f).await;
            match &shared.lock().failed {
                Some(f) => RunError::shared(f),
                None => RunError::Interrupted,
            }
        }
    }

    /// Lets the workers apply what they hold, then stops them; the first failure, if any.
    /// Nothing may be handed out after.
    pub async fn close(&mut self) -> Result<(), RunError> {
        self.queues.clear();
        for h in self.handles.drain(..) {
            h.await.ok();
        }
        match &self.shared.lock().failed {
            Some(f) => Err(RunError::shared(f)),
            None => Ok(()),
        }
    }
}

/// Row changes in one downstream transaction, at most, when `txn-batch` groups.
const BATCH_ROWS: usize = 5_000;

/// With `txn-batch = 1`: upstream transactions sent in one round trip, at most (each its
/// own downstream transaction).
const PIPELINE: usize = 20;

/// One worker: a downstream session applying the transactions of its queue in order.
struct Worker {
    applier: Applier,
    shared: Arc<Shared>,
    columns_gen: u64,
    /// `txn-batch`: upstream transactions one downstream transaction may apply.
    batch: usize,
}

/// Upstream transactions applied as one downstream transaction: their row changes in
/// order, and where each one's end.
struct Batch {
    jobs: Vec<Job>,
}

impl Batch {
    fn changes(&self) -> usize {
        self.jobs.iter().map(|j| j.changes.len()).sum()
    }

    /// For messages: the first transaction, and how many follow.
    fn here(&self) -> At {
        self.jobs[0].here.with_more(self.jobs.len() - 1)
    }
}

impl Worker {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match jobs.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            let waits = first.wait_for.clone();
            if self
                .shared
                .wait(|p| waits.iter().all(|s| p.is_done(*s)))
                .await
                .is_err()
            {
                break;
            }
            if first.columns_gen != self.columns_gen {
                self.applier.down.forget_columns();
                self.columns_gen = first.columns_gen;
            }
            // What is queued already joins, while it needs no other wait: grouping never
            // holds a transaction back.
            let mut batch = Batch { jobs: vec![first] };
            // With `txn-batch = 1`, what is queued goes in one round trip, each
            // transaction still its own downstream one (`apply_pipelined`).
            let most = if self.batch == 1 && self.applier.down.conflicts().is_none() {
                PIPELINE
            } else {
                self.batch
            };
            while batch.jobs.len() < most {
                let Ok(job) = jobs.try_recv() else { break };
                let ready = {
                    let p = self.shared.lock();
                    job.wait_for.iter().all(|s| p.is_done(*s))
                };
                if ready
                    && job.columns_gen == self.columns_gen
                    && batch.changes() + job.changes.len() <= BATCH_ROWS
                {
                    batch.jobs.push(job);
                } else {
                    held = Some(job);
                    break;
                }
            }
            // (Not with conflict detection: its statements are read one by one.)
            let pipelined = self.batch == 1 && self.applier.down.conflicts().is_none();
            let result = if pipelined && batch.jobs.len() > 1 {
                self.apply_pipelined(batch.jobs).await
            } else {
                match self.apply(&batch).await {
                    Ok(true) => Ok(()),
                    // Refused as a group: one at a time, so the error names its transaction.
                    Ok(false) => self.apply_singly(batch.jobs).await,
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = result {
                if !matches!(e, RunError::Interrupted) {
                    tracing::error!(error = %e, "a worker stopped");
                }
                self.shared.update(|p| {
                    p.failed.get_or_insert(Arc::new(e));
                });
                break;
            }
        }
    }

    /// With `txn-batch = 1`: `jobs`, each its own downstream transaction (its mark,
    /// statements, apply record and COMMIT), sent one after the other in one round trip
    /// (`Downstream::apply_trips`). What cannot go so (a conflict check, a value with no
    /// literal, nothing to apply) and everything after a failure is applied one at a
    /// time as usual, its failures sorted by the one policy; a transaction whose answer
    /// was lost with the session is looked up in the apply record first.
    async fn apply_pipelined(&mut self, jobs: Vec<Job>) -> Result<(), RunError> {
        // (A session that cannot open is left to the usual policy.)
        if !matches!(self.applier.down.sends_together().await, Ok(true)) {
            return self.apply_singly(jobs).await;
        }
        let low = self.shared.lock().low.clone();
        // Its records go to one of the writer's two rows, the other than the last queue's
        // (see `downstream::ALTERNATE`): they need not list that queue's transactions.
        let alternate = self.applier.down.next_row();
        let (mut trips, mut stamps, mut positions) = (Vec::new(), Vec::new(), Vec::new());
        let mut size = 0;
        for job in &jobs {
            let changes: Vec<&RowChange> = job.changes.iter().collect();
            let levels = (!job.safe).then(|| levels(job.keys.each()));
            let unit = Unit {
                here: &job.here,
                changes: &changes,
                markers: &[],
                levels: levels.as_deref(),
                safe: job.safe,
                count: 1,
                close: Close::Commit,
            };
            let stmts = self.applier.build(&unit, unit.levels).await?;
            positions.push(Listed::new(job.position.clone()));
            let stamp = self.applier.down.stamp_on(alternate, &positions, &low);
            let trip = (!stmts.is_empty())
                .then(|| self.applier.down.trip(&stmts, 1, Some(&stamp)))
                .flatten();
            match trip {
                Some(trip) if size + trip.bytes() <= super::downstream::inline::MAX_TEXT => {
                    size += trip.bytes();
                    trips.push(trip);
                    stamps.push(stamp);
                }
                _ => break,
            }
        }
        if trips.len() < 2 {
            return self.apply_singly(jobs).await;
        }
        let started = std::time::Instant::now();
        let committed = match self.applier.down.apply_trips(&trips, &stamps).await {
            Ok(()) => trips.len(),
            Err(stop) => {
                let known = stop.committed;
                tracing::debug!(error = %stop.error, committed = known, of = trips.len(),
                    "transactions sent together: applying the rest one at a time");
                if stop.unsure {
                    // The apply record says which of the next ones committed.
                    let here = &jobs[known].here;
                    let found = self.applier.recorded_of(here, &stamps[known..]).await?;
                    found.map_or(known, |i| known + i + 1)
                } else {
                    known
                }
            }
        };
        // Each committed transaction's share of the round trip.
        let each = started.elapsed() / committed.max(1) as u32;
        let mut jobs = jobs.into_iter();
        let done: Vec<Job> = jobs.by_ref().take(committed).collect();
        let ctx = &self.applier.ctx;
        for job in &done {
            ctx.metrics.apply_time(each);
            ctx.applied(Ops::of(&job.changes), Some(job.timestamp));
        }
        // One update for them all: each wakes whoever waits on the progress.
        self.shared
            .update(|p| done.iter().for_each(|job| p.finish(job.seq)));
        for _ in &done {
            failpoint::hit("after-commit");
        }
        self.apply_singly(jobs.collect()).await
    }

    async fn apply_singly(&mut self, jobs: Vec<Job>) -> Result<(), RunError> {
        for job in jobs {
            let single = Batch { jobs: vec![job] };
            self.apply(&single).await?;
        }
        Ok(())
    }

    /// Applies a batch as one downstream transaction with its mark and apply record (see
    /// [`Applier::apply`]), and marks its transactions done. `Ok(false)`: a batch of
    /// several was refused (nothing of it applied); a single transaction's refusal is an
    /// error.
    async fn apply(&mut self, batch: &Batch) -> Result<bool, RunError> {
        let here = batch.here();
        let changes: Vec<&RowChange> = batch.jobs.iter().flat_map(|j| &j.changes).collect();
        let safe = batch.jobs.iter().any(|j| j.safe);
        // Rows join in multi-row statements where their keys allow, until refused; not
        // in safe mode (see `build::statements`).
        let levels = (!safe).then(|| levels(batch.jobs.iter().flat_map(|j| j.keys.each())));
        let seqs: Vec<u64> = batch.jobs.iter().map(|j| j.seq).collect();
        let place = InFlight {
            shared: &self.shared,
            positions: batch.jobs.iter().map(|j| j.position.clone()).collect(),
            first: seqs[0],
        };
        let unit = Unit {
            here: &here,
            changes: &changes,
            markers: &[],
            levels: levels.as_deref(),
            safe,
            count: batch.jobs.len() as u64,
            close: Close::Commit,
        };
        let outcome = self.applier.apply(&unit, &place).await?;
        let ctx = &self.applier.ctx;
        match outcome {
            Outcome::Empty => batch.jobs.iter().for_each(|_| ctx.metrics.filtered()),
            Outcome::Applied { .. } => {
                for job in &batch.jobs {
                    ctx.applied(Ops::of(&job.changes), Some(job.timestamp));
                }
            }
            Outcome::Split => return Ok(false),
            Outcome::PreparedBefore => unreachable!("a worker prepares no XA transaction"),
        }
        self.shared
            .update(|p| seqs.iter().for_each(|s| p.finish(*s)));
        // Counted per upstream transaction: `after-commit:3` fires after the commit that
        // applied the third.
        for _ in &batch.jobs {
            failpoint::hit("after-commit");
        }
        Ok(true)
    }
}

/// A worker's transactions stand among the others in flight: they may run before an
/// earlier one, their record's watermark moves, and another worker's failure ends
/// their retries.
struct InFlight<'a> {
    shared: &'a Shared,
    positions: Vec<Position>,
    /// The first of them.
    first: u64,
}

impl Place for InFlight<'_> {
    fn stamp(&self, down: &Downstream) -> Option<Stamp> {
        let low = self.shared.lock().low.clone();
        Some(down.stamp_all(&self.positions, &low))
    }

    fn others_failed(&self) -> bool {
        self.shared.lock().failed.is_some()
    }

    fn out_of_order(&self) -> bool {
        true
    }

    async fn wait_earlier(&self) -> Result<(), RunError> {
        let first = self.first;
        self.shared
            .wait(|p| p.open.first_key_value().is_none_or(|(s, _)| *s >= first))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pos: u64) -> Position {
        Position {
            coords: pump_reader::BinlogCoords::new("binlog.000001", pos),
            gtids: None,
        }
    }

    #[test]
    fn the_low_watermark_covers_only_a_committed_prefix() {
        let mut p = Progress::new(at(4), 2);
        let a = p.open(at(100), Some(0));
        let b = p.open(at(200), Some(1));
        let c = p.open(at(300), Some(0));
        p.finish(b);
        assert_eq!(p.low, at(4), "b is done but a is not");
        assert!(p.is_done(b) && !p.is_done(a));
        p.finish(a);
        assert_eq!(p.low, at(200));
        assert_eq!(p.load, vec![1, 0]);
        p.finish(c);
        assert_eq!(p.low, at(300));
        assert!(p.open.is_empty() && p.is_done(a));
    }
}
