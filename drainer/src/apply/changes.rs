//! Decoded row changes, and their statements against the downstream's columns as they
//! are now: shared by the pipeline's own session and the parallel workers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use schema::{Table, Value};
use tokio::sync::watch;

use super::downstream::{Downstream, DownstreamError, Stamp};
use super::sql::{self, Stmt};
use crate::metrics::{Metrics, Retry};
use crate::pipeline::RunError;
use crate::status::{State, Status};

/// Keeps the columns the downstream has (sync-mode 2): the narrower table, and which of
/// the upstream's columns it keeps.
fn project(table: &Table, downstream: &[String]) -> (Table, Vec<bool>) {
    let keep: Vec<bool> = table
        .columns
        .iter()
        .map(|c| downstream.iter().any(|d| d.eq_ignore_ascii_case(&c.name)))
        .collect();
    let mut narrow = table.clone();
    narrow.columns = table
        .columns
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(c, _)| c.clone())
        .collect();
    let kept: Vec<String> = narrow
        .columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    let has = |name: &String| kept.contains(&name.to_ascii_lowercase());
    narrow.primary_key = narrow
        .primary_key
        .take()
        .filter(|k| k.columns.iter().all(has));
    narrow.unique_keys.retain(|k| k.columns.iter().all(has));
    (narrow, keep)
}

/// Rows per multi-row INSERT, and the value bytes after which a batch closes (well under
/// the server's default 16 MiB `max_allowed_packet`).
const MAX_ROWS_PER_INSERT: usize = 500;
const MAX_INSERT_BYTES: usize = 4 << 20;

/// ER_BAD_FIELD_ERROR: "unknown column".
pub const UNKNOWN_COLUMN: u16 = 1054;

/// About how many bytes a value takes in a statement.
pub fn approx_size(value: &Option<Value>) -> usize {
    match value {
        Some(Value::Text(b) | Value::Bytes(b)) => b.len() + 8,
        Some(Value::Decimal(d)) => d.len() + 8,
        _ => 16,
    }
}

/// `counts` plus the inserts, updates and deletes among `changes`.
pub fn add_ops(mut counts: [u64; 3], changes: &[RowChange]) -> [u64; 3] {
    for c in changes {
        match (&c.before, &c.after) {
            (None, Some(_)) => counts[0] += 1,
            (Some(_), Some(_)) => counts[1] += 1,
            (Some(_), None) => counts[2] += 1,
            (None, None) => {}
        }
    }
    counts
}

/// One decoded row change of an upstream transaction.
pub struct RowChange {
    pub table: Arc<Table>,
    pub before: Option<Vec<Option<Value>>>,
    pub after: Option<Vec<Option<Value>>>,
}

/// What every applier (the pipeline's own session and each worker) shares besides its
/// session: where to report, and when to stop waiting.
#[derive(Clone)]
pub struct Ctx {
    pub status: Arc<Status>,
    pub metrics: Metrics,
    /// Turns true when the drainer is asked to stop (waits between retries end then).
    pub stop: watch::Receiver<bool>,
    /// `sync-mode = 2`: rows apply to the columns the downstream table has.
    pub partial: bool,
}

/// Resolves once `stop` turns true (never, if its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// An apply failure at `here` (a transaction, for messages).
pub fn fail(here: &str, reason: impl std::fmt::Display) -> RunError {
    RunError::Apply {
        at: here.to_owned(),
        reason: reason.to_string(),
    }
}

impl Ctx {
    /// A transient downstream failure of the step `kind` at `here`: logs `message` with
    /// the reason, counts it, shows it in `/status`, and waits `backoff` (doubling it, up
    /// to 10 s) before the caller tries again, unless asked to stop.
    pub async fn retry(
        &mut self,
        here: &str,
        kind: Retry,
        message: &str,
        reason: &str,
        backoff: &mut Duration,
    ) -> Result<(), RunError> {
        tracing::warn!(at = %here, %reason, "{message}");
        self.metrics.retry(kind);
        self.status.failed(format!("{here}: {reason}"), true);
        tokio::select! {
            _ = stopped(&mut self.stop) => Err(RunError::Interrupted),
            _ = tokio::time::sleep(*backoff) => {
                *backoff = (*backoff * 2).min(Duration::from_secs(10));
                Ok(())
            }
        }
    }

    /// Counts an upstream transaction applied with the row changes `ops` (inserts,
    /// updates, deletes); `timestamp` is its upstream commit time. (A transaction cut by
    /// DDL counts once per downstream piece.)
    pub fn applied(&self, ops: [u64; 3], timestamp: Option<u32>) {
        let mut s = self.status.lock();
        s.applied += 1;
        s.state = State::Running;
        if let Some(t) = timestamp {
            s.last_commit = Some(s.last_commit.map_or(t, |l| l.max(t)));
        }
        drop(s);
        let [inserts, updates, deletes] = ops;
        self.metrics.applied();
        self.metrics.rows(inserts, updates, deletes);
    }
}

/// Whether `down`'s apply record says `stamp`'s transaction is committed (its COMMIT's
/// answer was lost), asking until the downstream answers.
pub async fn recorded_at(
    ctx: &mut Ctx,
    down: &mut Downstream,
    here: &str,
    stamp: &Stamp,
) -> Result<bool, RunError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match down.record().await {
            Ok(record) => {
                let committed = record.as_ref() == Some(&stamp.position);
                if committed {
                    down.recorded(stamp);
                }
                return Ok(committed);
            }
            Err(DownstreamError::Transient(reason)) => {
                ctx.retry(
                    here,
                    Retry::Record,
                    "cannot read the apply record yet; asking again",
                    &reason,
                    &mut backoff,
                )
                .await?;
            }
            Err(e) => return Err(fail(here, e)),
        }
    }
}

/// The downstream's columns of `table`, checked against the upstream's: `None` when
/// they match, else the downstream's (sync-mode 2). In sync-mode 1 a mismatch is an
/// error naming both lists, after one fresh look (the cache may predate a change the
/// other direction made).
async fn downstream_shape(
    ctx: &mut Ctx,
    down: &mut Downstream,
    here: &str,
    table: &Table,
) -> Result<Option<Vec<String>>, RunError> {
    let upstream: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let matches = |downstream: &[String]| {
        upstream.len() == downstream.len()
            && upstream
                .iter()
                .zip(downstream)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    };
    let mut fresh = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let downstream = match down.columns(&table.schema, &table.name).await {
            Ok(columns) => columns,
            Err(DownstreamError::Transient(reason)) => {
                ctx.retry(
                    here,
                    Retry::Columns,
                    "cannot read the downstream's columns yet; retrying",
                    &reason,
                    &mut backoff,
                )
                .await?;
                continue;
            }
            Err(e) => return Err(fail(here, e)),
        };
        if matches(&downstream) {
            return Ok(None);
        }
        if downstream.is_empty() && fresh {
            return Err(fail(
                here,
                format!(
                    "{}: no such table on the downstream; create it there (or let DDL \
                 reach it with sync-ddl = true), or filter the table out",
                    table.qualified()
                ),
            ));
        }
        if ctx.partial && !downstream.is_empty() {
            return Ok(Some(downstream));
        }
        if fresh {
            return Err(fail(
                here,
                format!(
                    "{}: the upstream row has columns ({}), the downstream table ({}); \
                 sync-mode = 2 applies the columns both have",
                    table.qualified(),
                    upstream.join(", "),
                    downstream.join(", ")
                ),
            ));
        }
        down.forget_table(&table.schema, &table.name);
        fresh = true;
    }
}

/// The statements of the transaction's row changes, against the downstream's columns
/// as they are now. Consecutive inserts into one table share a multi-row INSERT (or
/// REPLACE), which means the same inside one transaction.
pub async fn build_changes<'c>(
    ctx: &mut Ctx,
    down: &mut Downstream,
    here: &str,
    txn: &[&'c RowChange],
    safe: bool,
) -> Result<Vec<Stmt>, RunError> {
    let mut stmts = Vec::new();
    // Per table of the transaction: the projection onto the downstream's columns
    // (sync-mode 2, when they differ), worked out once.
    type Narrow = Option<Arc<(Table, Vec<bool>)>>;
    let mut shapes: Vec<(Arc<Table>, Narrow)> = Vec::new();
    let mut i = 0;
    while i < txn.len() {
        let table = &txn[i].table;
        let narrow = match shapes.iter().find(|(t, _)| Arc::ptr_eq(t, table)) {
            Some((_, narrow)) => narrow.clone(),
            None => {
                let shape = downstream_shape(ctx, down, here, table).await?;
                let narrow = shape.map(|d| Arc::new(project(table, &d)));
                shapes.push((Arc::clone(table), narrow.clone()));
                narrow
            }
        };
        let target: &Table = narrow.as_deref().map_or(table, |(t, _)| t);
        // Rows as they are, unless the downstream table is narrower: no copy then.
        let fit = |row: &'c [Option<Value>]| -> Cow<'c, [Option<Value>]> {
            match narrow.as_deref() {
                Some((_, keep)) => row
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(v, _)| v.clone())
                    .collect(),
                None => Cow::Borrowed(row),
            }
        };
        let bad = |e: sql::BuildError| fail(here, e);
        match (&txn[i].before, &txn[i].after) {
            (None, Some(_)) => {
                // The run of inserts into this table, within the statement budget.
                let mut rows = Vec::new();
                let mut bytes = 0;
                while let Some(RowChange {
                    table: t,
                    before: None,
                    after: Some(after),
                }) = txn.get(i).copied()
                {
                    if !Arc::ptr_eq(t, table)
                        || rows.len() >= MAX_ROWS_PER_INSERT
                        || bytes >= MAX_INSERT_BYTES
                    {
                        break;
                    }
                    bytes += after.iter().map(approx_size).sum::<usize>();
                    rows.push(fit(after));
                    i += 1;
                }
                let refs: Vec<&[Option<Value>]> = rows.iter().map(|r| r.as_ref()).collect();
                stmts.push(sql::insert(target, &refs, safe).map_err(bad)?);
                continue;
            }
            (Some(before), None) => stmts.push(sql::delete(target, &fit(before)).map_err(bad)?),
            (Some(before), Some(after)) => {
                stmts.extend(sql::update(target, &fit(before), &fit(after), safe).map_err(bad)?)
            }
            (None, None) => {}
        }
        i += 1;
    }
    Ok(stmts)
}
