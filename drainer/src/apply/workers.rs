//! Parallel apply: `worker-count` workers, each with its own downstream session, apply
//! upstream transactions out of upstream order where that cannot change the outcome.
//!
//! - **Keys.** Every row change names keys: its table with the values of the primary key
//!   and of each unique key, for the before and the after image (a table with neither
//!   names the table itself, so all its changes conflict; so does an image whose every
//!   key holds a NULL, which a unique key does not constrain, whatever the change's other
//!   image names). Text compares case-insensitively (Unicode case where it is UTF-8)
//!   and without trailing spaces, as the usual collations do; two
//!   transactions sharing a key conflict. Hashes stand for keys: a collision only makes
//!   two transactions wait for each other.
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
//!   share none, join in multi-row statements per table (`super::changes`). Refused,
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

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use pump_reader::Position;
use schema::{Table, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::applier::{Applier, Close, Outcome, Place, Unit};
use super::changes::{Ops, RowChange};
use super::ctx::Ctx;
use super::downstream::{Downstream, Stamp};
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

/// Per table (lower-case schema and name): the keys its foreign keys add to every change.
pub type Links = HashMap<(String, String), Vec<u64>>;

/// [`Links`] of the downstream's foreign keys: (child schema, child table, parent schema,
/// parent table) each.
pub fn links(foreign_keys: &[(String, String, String, String)]) -> Links {
    let key = |schema: &str, table: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        "foreign key parent".hash(&mut h);
        schema.to_ascii_lowercase().hash(&mut h);
        table.to_ascii_lowercase().hash(&mut h);
        h.finish()
    };
    let mut links = Links::new();
    let mut add = |schema: &str, table: &str, k: u64| {
        let entry = links
            .entry((schema.to_ascii_lowercase(), table.to_ascii_lowercase()))
            .or_default();
        if !entry.contains(&k) {
            entry.push(k);
        }
    };
    for (cs, ct, ps, pt) in foreign_keys {
        let k = key(ps, pt);
        add(cs, ct, k);
        add(ps, pt, k);
    }
    links
}

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

/// The transactions in flight and the committed prefix.
struct Progress {
    next: u64,
    /// Transactions not yet part of the committed prefix: position after each, the
    /// worker applying it (none: nothing to apply), whether it is done.
    open: BTreeMap<u64, (Position, Option<usize>, bool)>,
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
        self.times.remove(&seq);
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
    /// Where the oldest transaction in flight shows (its upstream commit time: the lag).
    status: Arc<Status>,
    /// Bumped on every change of `progress`: waits look again then.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update<R>(&self, f: impl FnOnce(&mut Progress) -> R) -> R {
        let (r, oldest, low) = {
            let mut p = self.lock();
            let before = p.next - p.open.len() as u64;
            let r = f(&mut p);
            // The prefix moved: `/status` shows where it ends.
            let moved = p.next - p.open.len() as u64 != before;
            (
                r,
                p.times.values().next().copied(),
                moved.then(|| p.low.clone()),
            )
        };
        // Not under the progress lock: the pipeline takes the two the other way round.
        let mut s = self.status.lock();
        s.pending_since = oldest;
        if low.is_some() {
            s.applied_to = low;
        }
        drop(s);
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
        r
    }

    /// Waits until `ready` holds; `Err` with the failure when a worker failed first.
    async fn wait(&self, ready: impl Fn(&Progress) -> bool) -> Result<(), RunError> {
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let p = self.lock();
                if let Some(f) = &p.failed {
                    return Err(RunError::shared(f));
                }
                if ready(&p) {
                    return Ok(());
                }
            }
            if changed.changed().await.is_err() {
                return Err(RunError::Interrupted);
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

    /// The downstream's foreign keys as they are now (see [`links`]).
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
        let placed = self.shared.update(|p| {
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
        async move {
            match shared.wait(|_| false).await {
                Err(e) => e,
                Ok(()) => unreachable!("waiting for nothing to be ready ends only on failure"),
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
            while batch.jobs.len() < self.batch {
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
            let result = match self.apply(&batch).await {
                Ok(true) => Ok(()),
                // Refused as a group: one at a time, so the error names its transaction.
                Ok(false) => self.apply_singly(batch.jobs).await,
                Err(e) => Err(e),
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
        // in safe mode (see `changes::statements`).
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

/// Hashes a key that is a hash already: the key itself.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map by key hash (no second hashing).
type KeyMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PassThrough>>;

/// Feeds text to a hasher through `write!` (no allocation).
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> std::fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

fn hash_value(h: &mut impl Hasher, value: Option<&Value>) {
    use std::fmt::Write;
    match value {
        // As the usual collations compare: case and trailing spaces aside (Unicode case
        // where the text is UTF-8 beyond ASCII; folding more only makes more conflicts).
        Some(Value::Text(b)) => {
            let trimmed = &b[..b.len() - b.iter().rev().take_while(|c| **c == b' ').count()];
            // The common all-ASCII value is never validated as UTF-8.
            let unicode = (!trimmed.is_ascii())
                .then(|| std::str::from_utf8(trimmed).ok())
                .flatten();
            match unicode {
                Some(text) => {
                    let mut buf = [0u8; 4];
                    for c in text.chars().flat_map(char::to_lowercase) {
                        for byte in c.encode_utf8(&mut buf).bytes() {
                            h.write_u8(byte);
                        }
                    }
                }
                None => {
                    for c in trimmed {
                        h.write_u8(c.to_ascii_lowercase());
                    }
                }
            }
            h.write_u8(0xff);
        }
        // The usual key types without formatting them.
        Some(Value::Int(i)) => {
            h.write_u8(1);
            h.write_i64(*i);
        }
        Some(Value::UInt(u)) => {
            h.write_u8(2);
            h.write_u64(*u);
        }
        Some(Value::Bytes(b)) => {
            h.write_u8(3);
            h.write(b);
            h.write_u8(0xff);
        }
        Some(v) => {
            write!(HashWriter(h), "{v:?}").ok();
        }
        None => h.write_u8(0),
    }
}

/// The keys of row changes: change `i`'s are `keys[ends[i - 1]..ends[i]]`.
#[derive(Default)]
pub struct ChangeKeys {
    keys: Vec<u64>,
    ends: Vec<usize>,
}

impl ChangeKeys {
    /// Each change's keys, in order.
    pub fn each(&self) -> impl Iterator<Item = &[u64]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.keys[a..b])
    }

    /// All the keys, once each, sorted.
    fn set(&self) -> Vec<u64> {
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// For each row change in order (given its keys), the step it may run in: one past the
/// latest step of an earlier change it shares a key with, else 0. Changes of one step
/// share no key; each change comes after every earlier one it shares a key with.
pub fn levels<'a>(keys: impl Iterator<Item = &'a [u64]>) -> Vec<u32> {
    let mut latest: KeyMap<u32> = KeyMap::default();
    keys.map(|keys| {
        let level = keys
            .iter()
            .filter_map(|k| latest.get(k))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        for k in keys {
            latest.insert(*k, level);
        }
        level
    })
    .collect()
}

/// The conflict keys of a transaction's row changes (see the module note), each
/// change's apart.
pub fn change_keys(changes: &[RowChange], links: &Links) -> ChangeKeys {
    /// What a table's changes need, worked out once per table of the transaction.
    struct Layout<'a> {
        table: &'a Arc<Table>,
        /// Hash of the table's name: the start of every key of its rows.
        name: u64,
        /// Column positions of its primary and unique keys.
        keys: Vec<Vec<usize>>,
        /// Keys its foreign keys add.
        links: &'a [u64],
    }
    let mut layouts: Vec<Layout> = Vec::new();
    let mut keys = Vec::with_capacity(changes.len() * 2);
    let mut ends = Vec::with_capacity(changes.len());
    for change in changes {
        let layout = match layouts
            .iter()
            .position(|l| Arc::ptr_eq(l.table, &change.table))
        {
            Some(i) => &layouts[i],
            None => {
                let table = &change.table;
                let lower = (
                    table.schema.to_ascii_lowercase(),
                    table.name.to_ascii_lowercase(),
                );
                let mut h = std::collections::hash_map::DefaultHasher::new();
                lower.hash(&mut h);
                layouts.push(Layout {
                    table,
                    name: h.finish(),
                    keys: super::sql::key_columns(table),
                    links: links.get(&lower).map_or(&[], Vec::as_slice),
                });
                layouts.last().expect("pushed")
            }
        };
        keys.extend(layout.links);
        let before = change.before.as_deref();
        let mut unkeyed = false;
        for image in [before, change.after.as_deref()].into_iter().flatten() {
            let start = keys.len();
            'key: for (k, columns) in layout.keys.iter().enumerate() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                h.write_u64(layout.name);
                k.hash(&mut h);
                for &c in columns {
                    // A column the after image lacks (MINIMAL, NOBLOB) kept its value.
                    let value = match image.get(c) {
                        Some(Some(v)) => Some(v),
                        _ => before.and_then(|b| b.get(c)).and_then(Option::as_ref),
                    };
                    if value == Some(&Value::Null) {
                        // A unique key holds any number of NULLs: no key.
                        continue 'key;
                    }
                    hash_value(&mut h, value);
                }
                keys.push(h.finish());
            }
            // An image without a key (none at all, or NULL in every one) is a row known
            // by all its columns: it conflicts with every such image of its table, and
            // with the change that gave it a key or takes it away, whose other image
            // names one.
            unkeyed |= keys.len() == start;
        }
        // Every change has an image, so a change without any key is unkeyed too.
        if unkeyed {
            keys.push(layout.name);
        }
        ends.push(keys.len());
    }
    ChangeKeys { keys, ends }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::apply::test_table as table;

    fn text(s: &str) -> Option<Value> {
        Some(Value::Text(Bytes::copy_from_slice(s.as_bytes())))
    }

    fn int(i: i64) -> Option<Value> {
        Some(Value::Int(i))
    }

    fn change(
        t: &Arc<Table>,
        before: Option<Vec<Option<Value>>>,
        after: Option<Vec<Option<Value>>>,
    ) -> RowChange {
        RowChange {
            table: Arc::clone(t),
            before,
            after,
            checks: Default::default(),
            raw: None,
        }
    }

    /// Whether two transactions (their changes) share a key.
    fn conflict(a: &[RowChange], b: &[RowChange], links: &Links) -> bool {
        let (ka, kb) = (change_keys(a, links).set(), change_keys(b, links).set());
        ka.iter().any(|k| kb.contains(k))
    }

    #[test]
    fn keys_link_rows_by_primary_and_unique_keys_in_either_image() {
        let t = table("CREATE TABLE t (id INT PRIMARY KEY, u VARCHAR(10), v INT, UNIQUE KEY (u))");
        let none = Links::new();
        let insert = |id, u: &str, v| vec![change(&t, None, Some(vec![int(id), text(u), int(v)]))];
        // Same primary key; a unique value written by one and held by the other (after
        // image of one, before image of the other); nothing shared.
        assert!(conflict(&insert(1, "a", 1), &insert(1, "b", 2), &none));
        let moved = vec![change(
            &t,
            Some(vec![int(2), text("x"), int(0)]),
            Some(vec![int(2), text("y"), int(0)]),
        )];
        assert!(
            conflict(&moved, &insert(3, "x", 0), &none),
            "the before image's unique value"
        );
        assert!(
            conflict(&moved, &insert(4, "y", 0), &none),
            "the after image's unique value"
        );
        assert!(!conflict(&insert(5, "p", 1), &insert(6, "q", 1), &none));
        // As the usual collations compare text: case and trailing spaces aside.
        assert!(conflict(
            &insert(7, "Key", 0),
            &insert(8, "kEY  ", 0),
            &none
        ));
        assert!(conflict(
            &insert(7, "José", 0),
            &insert(8, "JOSÉ", 0),
            &none
        ));
        // An after image lacking a key column (MINIMAL) kept the before image's value:
        // updates of two rows stay apart, and a unique key's other column counts.
        let minimal = |id, u: &str, v| {
            let before = Some(vec![int(id), text(u), int(0)]);
            vec![change(&t, before, Some(vec![None, None, int(v)]))]
        };
        assert!(!conflict(&minimal(10, "m", 1), &minimal(11, "n", 1), &none));
        assert!(conflict(&minimal(10, "m", 1), &minimal(10, "m", 2), &none));
        assert!(conflict(&minimal(12, "o", 1), &insert(13, "o", 0), &none));
        // A NULL in a unique key constrains nothing: two rows apart by their primary
        // keys; without one, such rows are known by all their columns (the table).
        let null = Some(Value::Null);
        let with_null = |id| vec![change(&t, None, Some(vec![int(id), null.clone(), int(0)]))];
        assert!(!conflict(&with_null(20), &with_null(21), &none));
        let u = table("CREATE TABLE u (a INT NULL, b INT, UNIQUE KEY (a))");
        let nulls = |b| vec![change(&u, Some(vec![null.clone(), int(b)]), None)];
        assert!(conflict(&nulls(1), &nulls(2), &none));
        // A row whose unique value goes from NULL to 7 (or back) conflicts with the
        // change that wrote (or deletes) it with the NULL, which only the table names:
        // else the UPDATE could run first, find no row, and the INSERT leave it NULL.
        let inserted = vec![change(&u, None, Some(vec![null.clone(), int(1)]))];
        let keyed = vec![change(
            &u,
            Some(vec![null.clone(), int(1)]),
            Some(vec![int(7), int(1)]),
        )];
        assert!(conflict(&inserted, &keyed, &none), "NULL to 7");
        let unkeyed = vec![change(
            &u,
            Some(vec![int(7), int(1)]),
            Some(vec![null.clone(), int(1)]),
        )];
        assert!(conflict(&unkeyed, &nulls(1), &none), "7 to NULL");
        // The same values in another table are other keys.
        let other = table("CREATE TABLE o (id INT PRIMARY KEY, u VARCHAR(10), v INT)");
        let in_other = vec![change(&other, None, Some(vec![int(1), text("a"), int(1)]))];
        assert!(!conflict(&insert(1, "a", 1), &in_other, &none));
    }

    #[test]
    fn a_table_without_keys_conflicts_with_itself_and_foreign_keys_link_tables() {
        let log = table("CREATE TABLE log (n INT, msg VARCHAR(10))");
        let row = |n| vec![change(&log, None, Some(vec![int(n), text("m")]))];
        assert!(conflict(&row(1), &row(2), &Links::new()));

        let parent = table("CREATE TABLE parent (id INT PRIMARY KEY)");
        let child = table("CREATE TABLE child (id INT PRIMARY KEY, p INT)");
        let p = vec![change(&parent, Some(vec![int(5)]), None)];
        let c = vec![change(&child, None, Some(vec![int(10), int(5)]))];
        assert!(!conflict(&p, &c, &Links::new()));
        let fks = links(&[("app".into(), "child".into(), "APP".into(), "Parent".into())]);
        assert!(conflict(&p, &c, &fks), "linked by the foreign key");
        let unrelated = table("CREATE TABLE other (id INT PRIMARY KEY)");
        let u = vec![change(&unrelated, None, Some(vec![int(5)]))];
        assert!(!conflict(&u, &c, &fks));
    }

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
