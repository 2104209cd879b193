//! Every Prometheus metric the drainer exports at `GET /metrics`, in one place.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `drainer_events_read_total` | counter | `type`: begin, rows, statement, commit, rollback, idle | transaction-stream events read from the upstream |
//! | `drainer_transactions_total` | counter | `outcome`: applied, loop_dropped, filtered | upstream transactions by what became of them |
//! | `drainer_rows_total` | counter | `op`: insert, update, delete | row changes applied downstream |
//! | `drainer_ddl_total` | counter | `outcome`: applied, skipped | DDL statements run downstream, or tracked only |
//! | `drainer_apply_seconds` | histogram | | one downstream transaction, BEGIN to COMMIT |
//! | `drainer_mark_update_seconds` | histogram | | BEGIN and the loopback mark (one round trip) at its start; for a transaction sent as one text, until the mark's answer; none for transactions sent together in one compound statement (one answer for them all) |
//! | `drainer_lag_seconds` | gauge | | as `/status` `lag_seconds` (0 when caught up; -1 before known) |
//! | `drainer_checkpoint_age_seconds` | gauge | | since the RocksDB checkpoint was last saved (-1 before the first save) |
//! | `drainer_buffered_rows` | gauge | | row changes of the transaction in flight held in memory (the queue before the downstream) |
//! | `drainer_retries_total` | counter | `kind`: transaction, ddl, record, columns, reread | a downstream step tried again after a transient failure |
//! | `drainer_errors_total` | counter | `kind`: transient, definite | failures; a definite one stops the drainer |
//! | `drainer_upstream_reconnects_total` | counter | | upstream connections replaced |
//! | `drainer_state` | gauge | `state`: starting, running, retrying, stopped | 1 for the current state |
//! | `drainer_up_seconds` | gauge | | since the process started |
//!
//! Counters start at 0 when the process starts. Counting goes through [`Metrics`], whose
//! handles are registered once; without an installed recorder (unit tests) they do
//! nothing.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use pump_reader::{Change, TxnEvent};

use crate::apply::changes::Ops;
use crate::status::{State, Status};

pub const EVENTS_READ: &str = "drainer_events_read_total";
pub const TRANSACTIONS: &str = "drainer_transactions_total";
pub const ROWS: &str = "drainer_rows_total";
pub const DDL: &str = "drainer_ddl_total";
pub const CONFLICTS: &str = "drainer_conflicts_total";
pub const APPLY_SECONDS: &str = "drainer_apply_seconds";
pub const MARK_UPDATE_SECONDS: &str = "drainer_mark_update_seconds";
pub const LAG_SECONDS: &str = "drainer_lag_seconds";
pub const CHECKPOINT_AGE_SECONDS: &str = "drainer_checkpoint_age_seconds";
pub const BUFFERED_ROWS: &str = "drainer_buffered_rows";
pub const RETRIES: &str = "drainer_retries_total";
pub const ERRORS: &str = "drainer_errors_total";
pub const UPSTREAM_RECONNECTS: &str = "drainer_upstream_reconnects_total";
pub const STATE: &str = "drainer_state";
pub const UP_SECONDS: &str = "drainer_up_seconds";

/// Latency buckets (seconds) of the two histograms: a millisecond to a minute.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Installs the Prometheus recorder for the process and describes every metric.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(APPLY_SECONDS.into()), BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(MARK_UPDATE_SECONDS.into()), BUCKETS))
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        EVENTS_READ,
        "Transaction-stream events read from the upstream."
    );
    describe_counter!(
        TRANSACTIONS,
        "Upstream transactions: applied, dropped as loops, or filtered out."
    );
    describe_counter!(ROWS, "Row changes applied downstream, by operation.");
    describe_counter!(
        CONFLICTS,
        "Row changes that found another row than they expect downstream, by kind and resolution."
    );
    describe_counter!(
        DDL,
        "DDL statements run downstream (applied) or only tracked (skipped)."
    );
    describe_histogram!(
        APPLY_SECONDS,
        Unit::Seconds,
        "One downstream transaction, BEGIN to COMMIT."
    );
    describe_histogram!(
        MARK_UPDATE_SECONDS,
        Unit::Seconds,
        "BEGIN and the loopback mark update that start each transaction (one round trip)."
    );
    describe_gauge!(LAG_SECONDS, Unit::Seconds, "Now minus the upstream commit time of the oldest transaction in flight, else of the last one handled; 0 when caught up, -1 before known.");
    describe_gauge!(
        CHECKPOINT_AGE_SECONDS,
        Unit::Seconds,
        "Seconds since the checkpoint was last saved."
    );
    describe_gauge!(
        BUFFERED_ROWS,
        "Row changes of the transaction in flight held in memory."
    );
    describe_counter!(
        RETRIES,
        "Downstream steps tried again after a transient failure."
    );
    describe_counter!(
        ERRORS,
        "Failures: transient (retried) or definite (the drainer stops)."
    );
    describe_counter!(UPSTREAM_RECONNECTS, "Upstream connections replaced.");
    describe_counter!(
        crate::seed::progress::SEED_ROWS,
        "Rows `drainer seed` copied downstream (committed), by table."
    );
    describe_gauge!(STATE, "1 for the drainer's current state.");
    describe_gauge!(
        UP_SECONDS,
        Unit::Seconds,
        "Seconds since the process started."
    );
    Ok(handle)
}

/// `GET /metrics`: the recorder's text, with the gauges read from `status` first.
pub fn render(handle: &PrometheusHandle, status: &Status) -> String {
    let s = status.lock().clone();
    let now = crate::status::unix_now();
    metrics::gauge!(LAG_SECONDS).set(Status::lag(&s, now).map_or(-1.0, |l| l as f64));
    metrics::gauge!(CHECKPOINT_AGE_SECONDS).set(
        s.checkpoint_saved
            .map_or(-1.0, |t| t.elapsed().as_secs_f64()),
    );
    for state in [
        State::Starting,
        State::Running,
        State::Retrying,
        State::Stopped,
    ] {
        metrics::gauge!(STATE, "state" => state.as_str())
            .set(f64::from(u8::from(state == s.state)));
    }
    metrics::gauge!(UP_SECONDS).set(status.uptime().as_secs_f64());
    handle.run_upkeep();
    handle.render()
}

/// Why a downstream step is tried again.
#[derive(Debug, Clone, Copy)]
pub enum Retry {
    /// A transaction (after a lost session, deadlock, lock wait timeout…).
    Transaction,
    Ddl,
    /// Reading or writing the apply record.
    Record,
    /// Reading the downstream's columns.
    Columns,
    /// A streamed transaction read again from its start.
    Reread,
}

/// The drainer's metric handles, registered once.
#[derive(Clone)]
pub struct Metrics {
    events: [Counter; 8],
    applied: Counter,
    loop_dropped: Counter,
    filtered: Counter,
    rows: [Counter; 3],
    ddl_applied: Counter,
    ddl_skipped: Counter,
    pub apply_seconds: Histogram,
    buffered: Gauge,
    retries: [Counter; 5],
    transient: Counter,
    reconnects: Counter,
}

/// The event types of `drainer_events_read_total`, in [`Metrics::event`]'s order.
pub const EVENT_TYPES: [&str; 8] = [
    "begin",
    "rows",
    "statement",
    "commit",
    "rollback",
    "idle",
    "savepoint",
    "xa",
];

impl Metrics {
    pub fn new() -> Metrics {
        let outcome = |o: &'static str| metrics::counter!(TRANSACTIONS, "outcome" => o);
        let retry = |k: &'static str| metrics::counter!(RETRIES, "kind" => k);
        Metrics {
            events: EVENT_TYPES.map(|t| metrics::counter!(EVENTS_READ, "type" => t)),
            applied: outcome("applied"),
            loop_dropped: outcome("loop_dropped"),
            filtered: outcome("filtered"),
            rows: ["insert", "update", "delete"].map(|op| metrics::counter!(ROWS, "op" => op)),
            ddl_applied: metrics::counter!(DDL, "outcome" => "applied"),
            ddl_skipped: metrics::counter!(DDL, "outcome" => "skipped"),
            apply_seconds: metrics::histogram!(APPLY_SECONDS),
            buffered: metrics::gauge!(BUFFERED_ROWS),
            retries: ["transaction", "ddl", "record", "columns", "reread"].map(retry),
            transient: metrics::counter!(ERRORS, "kind" => "transient"),
            reconnects: metrics::counter!(UPSTREAM_RECONNECTS),
        }
    }

    /// An event read (counted by its type, see [`EVENT_TYPES`]).
    pub fn event(&self, event: &TxnEvent) {
        let i = match event {
            TxnEvent::Begin(_) => 0,
            TxnEvent::Change(Change::Rows(_)) => 1,
            TxnEvent::Change(Change::Statement(_)) => 2,
            TxnEvent::Commit { .. } => 3,
            TxnEvent::Rollback => 4,
            TxnEvent::Idle { .. } => 5,
            TxnEvent::Change(Change::Savepoint(_)) => 6,
            TxnEvent::Change(Change::Xa(_) | Change::XaOnePhase) => 7,
            // Counted with the rows they annotate.
            TxnEvent::Change(Change::Annotation(_)) => 1,
        };
        self.events[i].increment(1);
    }

    pub fn applied(&self) {
        self.applied.increment(1);
    }

    pub fn loop_dropped(&self) {
        self.loop_dropped.increment(1);
    }

    pub fn filtered(&self) {
        self.filtered.increment(1);
    }

    /// Row changes applied.
    pub fn rows(&self, ops: Ops) {
        for (counter, n) in self
            .rows
            .iter()
            .zip([ops.inserts, ops.updates, ops.deletes])
        {
            if n > 0 {
                counter.increment(n);
            }
        }
    }

    pub fn ddl(&self, applied: u64, skipped: u64) {
        self.ddl_applied.increment(applied);
        self.ddl_skipped.increment(skipped);
    }

    pub fn buffered(&self, rows: usize) {
        self.buffered.set(rows as f64);
    }

    /// A transient failure, retried as `kind`.
    pub fn retry(&self, kind: Retry) {
        self.transient.increment(1);
        self.retries[kind as usize].increment(1);
    }

    pub fn reconnects(&self, n: u64) {
        self.reconnects.increment(n);
    }

    pub fn apply_time(&self, took: Duration) {
        self.apply_seconds.record(took.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The mark update's histogram, for the downstream session.
pub fn mark_update_seconds() -> Histogram {
    metrics::histogram!(MARK_UPDATE_SECONDS)
}
