//! Parallel apply: `worker-count` workers, each with its own downstream session, apply
//! upstream transactions out of upstream order where that cannot change the outcome.
//!
//! - **Keys.** Every row change names keys: its table with the values of the primary key
//!   and of each unique key, for the before and the after image (a table with neither
//!   names the table itself, so all its changes conflict). Text compares ASCII
//!   case-insensitively and without trailing spaces, as the usual collations do; two
//!   transactions sharing a key conflict. Hashes stand for keys: a collision only makes
//!   two transactions wait for each other.
//! - **Choice and waits.** A transaction that conflicts with work in flight goes to the
//!   worker that holds the latest of it (its queue keeps upstream order) and first waits
//!   for the conflicting transactions in flight on other workers; one that conflicts with
//!   nothing goes to the least loaded worker. Each transaction stays one marked downstream
//!   transaction with its apply record.
//! - **What the keys cannot see** (a foreign key between tables, a collation that makes
//!   other values equal) shows as an error of the downstream: the worker then waits until
//!   every earlier transaction is committed and applies it once more, so the error stands
//!   only if it would have come in upstream order too.
//! - **Progress.** Every upstream transaction read gets a sequence number; the low
//!   watermark is the position after the last transaction of the committed prefix. Only
//!   it is checkpointed, and every apply record carries it with the transactions its
//!   writer committed past it (see [`super::downstream`]), so a restart neither skips nor
//!   repeats a transaction. DDL, streamed transactions and anything the pipeline's own
//!   session applies wait until every worker is idle ([`Pool::barrier`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pump_reader::Position;
use schema::{Table, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::changes::{self, add_ops, build_changes, fail, Ctx, RowChange, UNKNOWN_COLUMN};
use super::downstream::{Downstream, DownstreamError};
use crate::failpoint;
use crate::metrics::Retry;
use crate::pipeline::RunError;

/// Transactions queued per worker before the reader waits.
const QUEUE: usize = 64;

/// Keys remembered for conflict detection before the ones of finished transactions are
/// dropped.
const MAX_KEYS: usize = 1 << 18;

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
    pub here: String,
    /// The downstream's tables may have changed since the last job with a smaller one:
    /// the worker forgets the columns it knows.
    pub columns_gen: u64,
    seq: u64,
    /// Transactions on other workers that must commit first.
    wait_for: Vec<u64>,
}

impl Job {
    pub fn new(
        changes: Vec<RowChange>,
        position: Position,
        timestamp: u32,
        safe: bool,
        here: String,
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
        }
    }
}

/// Why a worker stopped, kept for the pipeline.
#[derive(Clone)]
enum Failure {
    Apply { at: String, reason: String },
    Interrupted,
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Failure {
        match e {
            RunError::Interrupted => Failure::Interrupted,
            RunError::Apply { at, reason } => Failure::Apply { at, reason },
            other => Failure::Apply {
                at: "a worker".into(),
                reason: other.to_string(),
            },
        }
    }
}

impl From<Failure> for RunError {
    fn from(f: Failure) -> RunError {
        match f {
            Failure::Interrupted => RunError::Interrupted,
            Failure::Apply { at, reason } => RunError::Apply { at, reason },
        }
    }
}

/// The transactions in flight and the committed prefix.
struct Progress {
    next: u64,
    /// Transactions not yet part of the committed prefix: position after each, the
    /// worker applying it (none: nothing to apply), whether it is done.
    open: BTreeMap<u64, (Position, Option<usize>, bool)>,
    /// After the last transaction of the committed prefix.
    low: Position,
    /// Transactions in flight per worker.
    load: Vec<usize>,
    failed: Option<Failure>,
}

impl Progress {
    fn new(low: Position, workers: usize) -> Progress {
        Progress {
            next: 0,
            open: BTreeMap::new(),
            low,
            load: vec![0; workers],
            failed: None,
        }
    }

    fn is_done(&self, seq: u64) -> bool {
        match self.open.get(&seq) {
            Some((_, _, done)) => *done,
            None => seq < self.next,
        }
    }

    fn open(&mut self, position: Position, worker: Option<usize>) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.open.insert(seq, (position, worker, false));
        if let Some(w) = worker {
            self.load[w] += 1;
        }
        seq
    }

    fn finish(&mut self, seq: u64) {
        if let Some((_, worker, done)) = self.open.get_mut(&seq) {
            *done = true;
            if let Some(w) = worker.take() {
                self.load[w] -= 1;
            }
        }
        while let Some(entry) = self.open.first_entry() {
            if !entry.get().2 {
                break;
            }
            self.low = entry.remove().0;
        }
    }
}

/// What the pipeline and the workers share.
struct Shared {
    progress: Mutex<Progress>,
    /// Bumped on every change of `progress`: waits look again then.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update<R>(&self, f: impl FnOnce(&mut Progress) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
        r
    }

    /// Waits until `ready` holds; `Err` with the failure when a worker failed first.
    async fn wait(&self, ready: impl Fn(&Progress) -> bool) -> Result<(), Failure> {
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let p = self.lock();
                if let Some(f) = &p.failed {
                    return Err(f.clone());
                }
                if ready(&p) {
                    return Ok(());
                }
            }
            if changed.changed().await.is_err() {
                return Err(Failure::Interrupted);
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
    keys: HashMap<u64, (u64, usize)>,
}

impl Pool {
    /// Starts `count` workers, each with a session of its own to `down`'s server (writers
    /// 1 to `count`); `low` is where the committed prefix ends now.
    pub fn start(count: u32, ctx: &Ctx, down: &Downstream, low: Position) -> Pool {
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::new(low, count as usize)),
            changed: watch::channel(0).0,
        });
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        for w in 0..count {
            let (tx, rx) = mpsc::channel(QUEUE);
            queues.push(tx);
            let worker = Worker {
                ctx: ctx.clone(),
                down: down.for_worker(w + 1),
                shared: Arc::clone(&shared),
                columns_gen: 0,
            };
            handles.push(tokio::spawn(worker.run(rx)));
        }
        Pool {
            shared,
            queues,
            handles,
            keys: HashMap::new(),
        }
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
        let keys = keys_of(&job.changes);
        let (worker, seq) = {
            let mut p = self.shared.lock();
            if let Some(f) = &p.failed {
                return Err(f.clone().into());
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
            (worker, seq)
        };
        self.shared.changed.send_modify(|g| *g = g.wrapping_add(1));
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

    /// Waits until every transaction handed out is committed.
    pub async fn barrier(&self) -> Result<(), RunError> {
        self.shared
            .wait(|p| p.open.is_empty())
            .await
            .map_err(RunError::from)
    }

    /// Resolves when a worker has failed, with its error.
    pub async fn failure(&self) -> RunError {
        match self.shared.wait(|_| false).await {
            Err(f) => f.into(),
            Ok(()) => unreachable!("waiting for nothing to be ready ends only on failure"),
        }
    }

    /// Lets the workers apply what they hold, then stops them; the first failure, if any.
    /// Nothing may be handed out after.
    pub async fn close(&mut self) -> Result<(), RunError> {
        self.queues.clear();
        for h in self.handles.drain(..) {
            h.await.ok();
        }
        match self.shared.lock().failed.clone() {
            Some(f) => Err(f.into()),
            None => Ok(()),
        }
    }
}

/// One worker: a downstream session applying the transactions of its queue in order.
struct Worker {
    ctx: Ctx,
    down: Downstream,
    shared: Arc<Shared>,
    columns_gen: u64,
}

impl Worker {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            let waits = job.wait_for.clone();
            if self
                .shared
                .wait(|p| waits.iter().all(|s| p.is_done(*s)))
                .await
                .is_err()
            {
                break;
            }
            if job.columns_gen != self.columns_gen {
                self.down.forget_columns();
                self.columns_gen = job.columns_gen;
            }
            match self.apply(&job).await {
                Ok(()) => self.shared.update(|p| p.finish(job.seq)),
                Err(e) => {
                    if !matches!(e, RunError::Interrupted) {
                        tracing::error!(error = %e, "a worker stopped");
                    }
                    self.shared.update(|p| {
                        p.failed.get_or_insert(Failure::from(e));
                    });
                    break;
                }
            }
        }
    }

    /// Applies one transaction with its mark and apply record, retrying transient
    /// failures (unless the record shows the COMMIT went through), building it again
    /// once on "unknown column", and once more after every earlier transaction is
    /// committed on any other refusal.
    async fn apply(&mut self, job: &Job) -> Result<(), RunError> {
        let here = job.here.as_str();
        let ctx = &mut self.ctx;
        let mut stmts = build_changes(ctx, &mut self.down, here, &job.changes, job.safe).await?;
        if stmts.is_empty() {
            ctx.metrics.filtered();
            return Ok(());
        }
        let ops = add_ops([0; 3], &job.changes);
        let (mut refreshed, mut in_order) = (false, false);
        let mut backoff = Duration::from_millis(100);
        loop {
            let low = self.shared.lock().low.clone();
            let stamp = self.down.stamp(&job.position, &low);
            let started = Instant::now();
            match self.down.apply_txn(&stmts, Some(&stamp)).await {
                Ok(()) => {
                    ctx.metrics.apply_time(started.elapsed());
                    ctx.applied(ops, Some(job.timestamp));
                    failpoint::hit("after-commit");
                    return Ok(());
                }
                Err(DownstreamError::Transient(reason)) => {
                    ctx.retry(
                        here,
                        Retry::Transaction,
                        "downstream failed; retrying the transaction",
                        &reason,
                        &mut backoff,
                    )
                    .await?;
                    if changes::recorded_at(ctx, &mut self.down, here, &stamp).await? {
                        tracing::info!(at = %here, "the apply record shows the transaction committed before the connection was lost");
                        ctx.applied(ops, Some(job.timestamp));
                        return Ok(());
                    }
                }
                Err(DownstreamError::Definite {
                    code: UNKNOWN_COLUMN,
                    reason,
                    ..
                }) if !refreshed => {
                    tracing::warn!(at = %here, %reason, "downstream columns changed; building the transaction again");
                    self.down.forget_columns();
                    stmts =
                        build_changes(ctx, &mut self.down, here, &job.changes, job.safe).await?;
                    refreshed = true;
                }
                Err(DownstreamError::Definite { reason, .. }) if !in_order => {
                    tracing::info!(at = %here, %reason, "refused out of upstream order; applying it again once every earlier transaction is committed");
                    in_order = true;
                    let seq = job.seq;
                    self.shared
                        .wait(|p| p.open.first_key_value().is_none_or(|(s, _)| *s >= seq))
                        .await
                        .map_err(RunError::from)?;
                }
                Err(e) => return Err(fail(here, e)),
            }
        }
    }
}

/// Feeds text to a hasher through `write!` (no allocation).
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> std::fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

fn hash_value(h: &mut impl Hasher, value: &Option<Value>) {
    use std::fmt::Write;
    match value {
        // As the usual collations compare: ASCII case and trailing spaces aside.
        Some(Value::Text(b)) => {
            let trimmed = b.len() - b.iter().rev().take_while(|c| **c == b' ').count();
            for c in &b[..trimmed] {
                h.write_u8(c.to_ascii_lowercase());
            }
            h.write_u8(0xff);
        }
        Some(v) => {
            write!(HashWriter(h), "{v:?}").ok();
        }
        None => h.write_u8(0),
    }
}

/// The conflict keys of a transaction's row changes (see the module note).
pub fn keys_of(changes: &[RowChange]) -> Vec<u64> {
    // Per table: the column positions of its primary and unique keys.
    let mut layouts: Vec<(&Arc<Table>, Vec<Vec<usize>>)> = Vec::new();
    let mut keys = Vec::with_capacity(changes.len() * 2);
    for change in changes {
        let layout = match layouts
            .iter()
            .position(|(t, _)| Arc::ptr_eq(t, &change.table))
        {
            Some(i) => &layouts[i].1,
            None => {
                layouts.push((&change.table, key_columns(&change.table)));
                &layouts.last().expect("pushed").1
            }
        };
        let table = &change.table;
        let base = |h: &mut std::collections::hash_map::DefaultHasher| {
            table.schema.to_ascii_lowercase().hash(h);
            table.name.to_ascii_lowercase().hash(h);
        };
        if layout.is_empty() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            base(&mut h);
            keys.push(h.finish());
            continue;
        }
        for image in [&change.before, &change.after].into_iter().flatten() {
            for (k, columns) in layout.iter().enumerate() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                base(&mut h);
                k.hash(&mut h);
                for &c in columns {
                    hash_value(&mut h, image.get(c).unwrap_or(&None));
                }
                keys.push(h.finish());
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The column positions of `table`'s primary key and unique keys (a key naming a column
/// the table lacks is left out).
fn key_columns(table: &Table) -> Vec<Vec<usize>> {
    table
        .primary_key
        .iter()
        .chain(&table.unique_keys)
        .filter_map(|key| {
            key.columns
                .iter()
                .map(|name| {
                    table
                        .columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(name))
                })
                .collect::<Option<Vec<usize>>>()
        })
        .collect()
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
